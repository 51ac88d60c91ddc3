//! Which experiment variants each user was exposed to.

use super::{now_ms, Store, StoreError};

impl Store {
    /// Counts a turn of `user_id` in each of its experiment variants.
    pub async fn record_exposures(
        &self,
        user_id: &str,
        assignments: &[(String, String)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for (experiment, variant) in assignments {
            on_db!(self, db => sqlx::query(
                "INSERT INTO experiment_exposures (experiment, variant, user_id, first_at, last_at, turns) \
                 VALUES ($1, $2, $3, $4, $4, 1) \
                 ON CONFLICT (experiment, user_id) DO UPDATE SET variant = excluded.variant, \
                   last_at = excluded.last_at, turns = experiment_exposures.turns + 1",
            )
            .bind(experiment)
            .bind(variant)
            .bind(user_id)
            .bind(now)
            .execute(db)
            .await?
            .rows_affected());
        }
        Ok(())
    }

    /// Users exposed to each variant of an experiment.
    pub async fn exposures(&self, experiment: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_as(
            "SELECT variant, COUNT(*) FROM experiment_exposures WHERE experiment = $1 GROUP BY variant",
        )
        .bind(experiment)
        .fetch_all(db)
        .await?))
    }
}
