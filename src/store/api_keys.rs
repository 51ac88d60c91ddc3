//! API keys: stored as a SHA-256 of the secret, listed by prefix, resolved
//! to their account (whose `disabled` flag is read on every use).

use super::accounts::{account_from, AccountRow};
use super::{now_ms, DbRow, Store, StoreError};
use app::wire::ApiKeyView;

/// A key's last use is written at most this often (not on every request).
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn key_from(row: &impl DbRow) -> Result<ApiKeyView, StoreError> {
    Ok(ApiKeyView {
        id: row.text("id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        created_at: row.int("created_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

impl Store {
    /// Adds a key unless the user already has `max` of them (then `None`).
    pub async fn create_api_key(
        &self,
        user_id: &str,
        name: &str,
        prefix: &str,
        secret_sha256: &str,
        max: u32,
    ) -> Result<Option<ApiKeyView>, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now_ms();
        let inserted = on_db!(self, db => {
            let mut tx = db.begin().await?;
            if self.is_shared() {
                // Two requests at once can't both take the last free place.
                sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query(
                "INSERT INTO api_keys (id, user_id, name, prefix, secret_sha256, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6 \
                 WHERE (SELECT COUNT(*) FROM api_keys WHERE user_id = $2) < $7",
            )
            .bind(&id)
            .bind(user_id)
            .bind(name)
            .bind(prefix)
            .bind(secret_sha256)
            .bind(created_at)
            .bind(i64::from(max))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.rows_affected()
        });
        Ok((inserted == 1).then(|| ApiKeyView {
            id,
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            created_at,
            last_used_at: None,
        }))
    }

    pub async fn api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyView>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_keys \
             WHERE user_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(key_from)
        .collect())
    }

    /// Deletes one of the user's keys; false if they have no such key.
    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "DELETE FROM api_keys WHERE id = $1 AND user_id = $2",
        )
        .bind(key_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Which of these keys no longer exist (revoked, or their account
    /// deleted).
    pub async fn revoked_api_keys(&self, key_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id FROM api_keys WHERE id IN ({})",
            super::placeholders(1, key_ids.len())
        );
        let existing: Vec<String> = on_db!(self, db => {
            let mut query = sqlx::query_scalar(&sql);
            for id in key_ids {
                query = query.bind(id);
            }
            query.fetch_all(db).await?
        });
        Ok(key_ids
            .iter()
            .filter(|id| !existing.contains(id))
            .cloned()
            .collect())
    }

    /// The account a key belongs to, with the key's id and name, and notes
    /// that the key was used.
    pub async fn account_for_api_key(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<(AccountRow, String, String)>, StoreError> {
        let found = on_db!(self, db => match sqlx::query(
            "SELECT u.id, u.username, u.role, u.disabled, k.id AS key_id, k.name AS key_name, \
               k.last_used_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.secret_sha256 = $1",
        )
        .bind(secret_sha256)
        .fetch_optional(db)
        .await?
        {
            Some(row) => Some((
                account_from(&row)?,
                row.text("key_id")?,
                row.text("key_name")?,
                row.opt_int("last_used_at")?,
            )),
            None => None,
        });
        let Some((account, key_id, key_name, last_used)) = found else {
            return Ok(None);
        };
        let now = now_ms();
        if last_used.is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS) {
            // Bookkeeping: a busy database must not turn a valid key away.
            let noted = on_db!(self, db => sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(&key_id)
            .execute(db)
            .await
            .map(|_| ()));
            if let Err(e) = noted {
                tracing::warn!(error = %e, "noting an API key's last use");
            }
        }
        Ok(Some((account, key_id, key_name)))
    }
}
