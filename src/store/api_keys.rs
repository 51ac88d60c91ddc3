//! API keys: stored as a SHA-256 of the secret, listed by prefix, resolved
//! to their account (whose `disabled` flag is read on every use).

use super::accounts::{account_from, AccountRow};
use super::{now_ms, Store, StoreError};
use app::wire::ApiKeyView;
use sqlx::Row;

/// A key's last use is written at most this often (not on every request).
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn key_from(row: &sqlx::sqlite::SqliteRow) -> Result<ApiKeyView, StoreError> {
    Ok(ApiKeyView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
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
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, secret_sha256, created_at) \
             SELECT ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM api_keys WHERE user_id = ?) < ?",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(prefix)
        .bind(secret_sha256)
        .bind(created_at)
        .bind(user_id)
        .bind(i64::from(max))
        .execute(&self.pool)
        .await?;
        Ok((inserted.rows_affected() == 1).then(|| ApiKeyView {
            id,
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            created_at,
            last_used_at: None,
        }))
    }

    pub async fn api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyView>, StoreError> {
        sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_keys \
             WHERE user_id = ? ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from)
        .collect()
    }

    /// Deletes one of the user's keys; false if they have no such key.
    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND user_id = ?")
            .bind(key_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The account a key belongs to, and notes that the key was used.
    pub async fn account_for_api_key(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<AccountRow>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT u.id, u.username, u.role, u.disabled, k.id AS key_id, k.last_used_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.secret_sha256 = ?",
        )
        .bind(secret_sha256)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let now = now_ms();
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        if last_used.is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS) {
            // Bookkeeping: a busy database must not turn a valid key away.
            let noted = sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(row.try_get::<String, _>("key_id")?)
                .execute(&self.pool)
                .await;
            if let Err(e) = noted {
                tracing::warn!(error = %e, "noting an API key's last use");
            }
        }
        account_from(&row).map(Some)
    }
}
