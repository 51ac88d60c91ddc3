//! Users: guests (no username) and accounts, their roles and whether they are
//! disabled, and the token counts that budgets are checked against.

use super::{now_ms, Store, StoreError};
use app::wire::{UserRole, UserSummary};
use sqlx::Row;
use uuid::Uuid;

/// What every request needs to know about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub username: Option<String>,
    pub role: UserRole,
    pub disabled: bool,
}

/// Why an account could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUpRefused {
    UsernameTaken,
    /// The session's user already has an account.
    AlreadyRegistered,
}

/// The first account becomes admin. Evaluated inside the write, which SQLite
/// serialises, so two simultaneous first sign-ups can't both become admin.
const ROLE_FOR_NEW_ACCOUNT: &str =
    "CASE WHEN EXISTS (SELECT 1 FROM users WHERE role = 'admin') THEN 'user' ELSE 'admin' END";

const TOKENS_OF_USER_SINCE: &str =
    "SELECT COALESCE(SUM(COALESCE(m.prompt_tokens, 0) + COALESCE(m.completion_tokens, 0)), 0) \
     FROM messages m JOIN conversations c ON c.id = m.conversation_id \
     WHERE c.user_id = u.id AND m.role = 'assistant' AND m.created_at >= ?";

fn role_from(s: &str) -> Result<UserRole, StoreError> {
    UserRole::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

pub(super) fn account_from(row: &sqlx::sqlite::SqliteRow) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: role_from(row.try_get::<&str, _>("role")?)?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// A new guest user (no username, no password).
    pub async fn create_user(&self) -> Result<String, StoreError> {
        let id = Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO users (id, created_at, role) VALUES (?, ?, 'guest')")
            .bind(&id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn account(&self, user_id: &str) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query("SELECT id, username, role, disabled FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()
    }

    /// Creates an account: turns `guest` (if given) into one, keeping its
    /// chats and documents, or makes a new user.
    pub async fn sign_up(
        &self,
        guest: Option<&str>,
        username: &str,
        password_hash: &str,
    ) -> Result<Result<AccountRow, SignUpRefused>, StoreError> {
        let result = match guest {
            Some(id) => {
                sqlx::query(&format!(
                "UPDATE users SET username = ?, password_hash = ?, role = {ROLE_FOR_NEW_ACCOUNT} \
                     WHERE id = ? AND username IS NULL"
            ))
                .bind(username)
                .bind(password_hash)
                .bind(id)
                .execute(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "INSERT INTO users (id, created_at, username, password_hash, role) \
                     VALUES (?, ?, ?, ?, {ROLE_FOR_NEW_ACCOUNT})"
                ))
                .bind(Uuid::new_v4().to_string())
                .bind(now_ms())
                .bind(username)
                .bind(password_hash)
                .execute(&self.pool)
                .await
            }
        };
        match result {
            Err(e) if is_unique_violation(&e) => return Ok(Err(SignUpRefused::UsernameTaken)),
            Err(e) => return Err(e.into()),
            Ok(done) if done.rows_affected() == 0 => {
                return Ok(Err(SignUpRefused::AlreadyRegistered))
            }
            Ok(_) => {}
        }
        let row = sqlx::query(
            "SELECT id, username, role, disabled FROM users WHERE username = ? COLLATE NOCASE",
        )
        .bind(username)
        .fetch_one(&self.pool)
        .await?;
        Ok(Ok(account_from(&row)?))
    }

    /// The account with this username (any case) and its password hash.
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<Option<(AccountRow, String)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, username, role, disabled, password_hash FROM users \
             WHERE username = ? COLLATE NOCASE AND password_hash IS NOT NULL",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((account_from(&row)?, row.try_get("password_hash")?)))
    }

    /// Accounts (not guests) with their activity, oldest first, and the
    /// number of guests.
    pub async fn list_accounts(
        &self,
        tokens_since_ms: i64,
    ) -> Result<(Vec<UserSummary>, u64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT u.id, u.username, u.role, u.disabled, u.created_at, \
               (SELECT COUNT(*) FROM conversations c WHERE c.user_id = u.id) AS conversations, \
               (SELECT COUNT(*) FROM documents d WHERE d.user_id = u.id AND d.status != 'deleting') AS documents, \
               ({TOKENS_OF_USER_SINCE}) AS tokens \
             FROM users u WHERE u.username IS NOT NULL ORDER BY u.created_at, u.id"
        ))
        .bind(tokens_since_ms)
        .fetch_all(&self.pool)
        .await?;
        let users = rows
            .iter()
            .map(|row| {
                Ok(UserSummary {
                    id: row.try_get("id")?,
                    username: row
                        .try_get::<Option<String>, _>("username")?
                        .unwrap_or_default(),
                    role: role_from(row.try_get::<&str, _>("role")?)?,
                    disabled: row.try_get::<i64, _>("disabled")? != 0,
                    created_at: row.try_get("created_at")?,
                    conversations: row.try_get::<i64, _>("conversations")?.max(0) as u64,
                    documents: row.try_get::<i64, _>("documents")?.max(0) as u64,
                    tokens_today: row.try_get::<i64, _>("tokens")?.max(0) as u64,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let guests: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE username IS NULL")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((users, guests.max(0) as u64))
    }

    /// Changes an account's role; false if there is no such account, or it is
    /// the last active admin (nobody could administer the app).
    pub async fn set_role(&self, user_id: &str, role: UserRole) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET role = ? WHERE id = ? AND username IS NOT NULL \
             AND (? = 'admin' OR role != 'admin' OR \
                  (SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?) > 0)",
        )
        .bind(role.as_str())
        .bind(user_id)
        .bind(role.as_str())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Disables or re-enables an account; false if there is no such account,
    /// or it is the last active admin.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET disabled = ? WHERE id = ? AND username IS NOT NULL \
             AND (? = 0 OR role != 'admin' OR \
                  (SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?) > 0)",
        )
        .bind(i64::from(disabled))
        .bind(user_id)
        .bind(i64::from(disabled))
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Prompt + completion tokens of the user's answers since `since_ms`.
    pub async fn tokens_used_since(&self, user_id: &str, since_ms: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query(&format!(
            "SELECT ({TOKENS_OF_USER_SINCE}) AS n FROM users u WHERE u.id = ?"
        ))
        .bind(since_ms)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get("n"))
        .transpose()?
        .unwrap_or(0);
        Ok(n.max(0) as u64)
    }
}
