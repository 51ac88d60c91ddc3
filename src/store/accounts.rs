//! Users: guests (no username) and accounts, their roles and whether they are
//! disabled, and the token counts that budgets are checked against.

use super::{now_ms, DbRow, Store, StoreError};
use app::wire::{UserRole, UserSummary};
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

/// The role of a new account: admin for the first one when it may be (the
/// boolean parameter `may_be_admin`), else user. Evaluated inside the write,
/// under the accounts lock, so two simultaneous first sign-ups can't both
/// become admin.
fn role_for_new_account(may_be_admin: &str) -> String {
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM users WHERE role = 'admin') OR NOT {may_be_admin} \
         THEN 'user' ELSE 'admin' END"
    )
}

/// The user's tokens since `$1` (`u` is the user's row).
const TOKENS_OF_USER_SINCE: &str =
    "SELECT CAST(COALESCE(SUM(COALESCE(m.prompt_tokens, 0) + COALESCE(m.completion_tokens, 0)), 0) AS BIGINT) \
     FROM messages m JOIN conversations c ON c.id = m.conversation_id \
     WHERE c.user_id = u.id AND m.role = 'assistant' AND m.created_at >= $1";

/// Postgres runs writes side by side, so the writes that check "is there an
/// admin?" take this lock first; SQLite runs one write at a time anyway.
const ACCOUNTS_LOCK: &str = "SELECT pg_advisory_xact_lock(7243012)";

fn role_from(s: &str) -> Result<UserRole, StoreError> {
    UserRole::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

pub(super) fn account_from(row: &impl DbRow) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        id: row.text("id")?,
        username: row.opt_text("username")?,
        role: role_from(&row.text("role")?)?,
        disabled: row.flag("disabled")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Usernames match in any (ASCII) case.
    fn username_is(&self, param: &str) -> String {
        if self.is_shared() {
            format!("lower(username) = lower({param})")
        } else {
            format!("username = {param} COLLATE NOCASE")
        }
    }

    /// A new guest user (no username, no password), made from `address`
    /// (whose allowance it shares).
    pub async fn create_guest(&self, address: Option<&str>) -> Result<String, StoreError> {
        let id = Uuid::new_v4().to_string();
        on_db!(self, db => sqlx::query(
            "INSERT INTO users (id, created_at, role, created_from) VALUES ($1, $2, 'guest', $3)",
        )
        .bind(&id)
        .bind(now_ms())
        .bind(address)
        .execute(db)
        .await?
        .rows_affected());
        Ok(id)
    }

    pub async fn account(&self, user_id: &str) -> Result<Option<AccountRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, username, role, disabled FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(account_from)
        .transpose())
    }
    /// Creates an account: turns `guest` (if given) into one, keeping its
    /// chats and documents, or makes a new user.
    pub async fn sign_up(
        &self,
        guest: Option<&str>,
        username: &str,
        password_hash: &str,
        may_be_first_admin: bool,
    ) -> Result<Result<AccountRow, SignUpRefused>, StoreError> {
        let written: Result<u64, sqlx::Error> = on_db!(self, db => {
            let mut tx = db.begin().await?;
            if self.is_shared() {
                sqlx::query(ACCOUNTS_LOCK).execute(&mut *tx).await?;
            }
            let done = match guest {
                Some(id) => {
                    sqlx::query(&format!(
                        "UPDATE users SET username = $1, password_hash = $2, \
                         role = {} WHERE id = $3 AND username IS NULL",
                        role_for_new_account("$4")
                    ))
                    .bind(username)
                    .bind(password_hash)
                    .bind(id)
                    .bind(may_be_first_admin)
                    .execute(&mut *tx)
                    .await
                }
                None => {
                    sqlx::query(&format!(
                        "INSERT INTO users (id, created_at, username, password_hash, role) \
                         VALUES ($1, $2, $3, $4, {})",
                        role_for_new_account("$5")
                    ))
                    .bind(Uuid::new_v4().to_string())
                    .bind(now_ms())
                    .bind(username)
                    .bind(password_hash)
                    .bind(may_be_first_admin)
                    .execute(&mut *tx)
                    .await
                }
            };
            match done {
                Ok(done) => tx.commit().await.map(|()| done.rows_affected()),
                Err(e) => Err(e),
            }
        });
        match written {
            Err(e) if is_unique_violation(&e) => return Ok(Err(SignUpRefused::UsernameTaken)),
            Err(e) => return Err(e.into()),
            Ok(0) => return Ok(Err(SignUpRefused::AlreadyRegistered)),
            Ok(_) => {}
        }
        let sql = format!(
            "SELECT id, username, role, disabled FROM users WHERE {}",
            self.username_is("$1")
        );
        on_db!(self, db => account_from(&sqlx::query(&sql).bind(username).fetch_one(db).await?))
            .map(Ok)
    }

    /// The account with this username (any case) and its password hash.
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<Option<(AccountRow, String)>, StoreError> {
        let sql = format!(
            "SELECT id, username, role, disabled, password_hash FROM users \
             WHERE {} AND password_hash IS NOT NULL",
            self.username_is("$1")
        );
        on_db!(self, db => match sqlx::query(&sql).bind(username).fetch_optional(db).await? {
            Some(row) => Ok(Some((account_from(&row)?, row.text("password_hash")?))),
            None => Ok(None),
        })
    }

    /// Accounts (not guests) with their activity, oldest first, and the
    /// number of guests.
    pub async fn list_accounts(
        &self,
        tokens_since_ms: i64,
    ) -> Result<(Vec<UserSummary>, u64), StoreError> {
        let users = on_db!(self, db => sqlx::query(&format!(
            "SELECT u.id, u.username, u.role, u.disabled, u.can_share, u.created_at, \
               (SELECT COUNT(*) FROM conversations c WHERE c.user_id = u.id AND c.source = 'browser') AS conversations, \
               (SELECT COUNT(*) FROM documents d WHERE d.user_id = u.id AND d.status != 'deleting') AS documents, \
               ({TOKENS_OF_USER_SINCE}) AS tokens \
             FROM users u WHERE u.username IS NOT NULL ORDER BY u.created_at, u.id"
        ))
        .bind(tokens_since_ms)
        .fetch_all(db)
        .await?
        .iter()
        .map(|row| {
            let count = |column: &str| row.int(column).map(|n| n.max(0) as u64);
            Ok(UserSummary {
                id: row.text("id")?,
                username: row.opt_text("username")?.unwrap_or_default(),
                role: role_from(&row.text("role")?)?,
                disabled: row.flag("disabled")?,
                created_at: row.int("created_at")?,
                conversations: count("conversations")?,
                documents: count("documents")?,
                tokens_today: count("tokens")?,
                can_share: row.int("can_share")? != 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?);
        let guests: i64 = on_db!(self, db => sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE username IS NULL",
        )
        .fetch_one(db)
        .await?);
        Ok((users, guests.max(0) as u64))
    }

    /// Changes an account's role; false if there is no such account, or it is
    /// the last active admin (nobody could administer the app).
    pub async fn set_role(&self, user_id: &str, role: UserRole) -> Result<bool, StoreError> {
        let changed = on_db!(self, db => {
            let mut tx = db.begin().await?;
            if self.is_shared() {
                sqlx::query(ACCOUNTS_LOCK).execute(&mut *tx).await?;
            }
            let done = sqlx::query(
                "UPDATE users SET role = $1 WHERE id = $2 AND username IS NOT NULL \
                 AND ($1 = 'admin' OR role != 'admin' OR \
                      (SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled AND id != $2) > 0)",
            )
            .bind(role.as_str())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.rows_affected()
        });
        Ok(changed == 1)
    }

    pub async fn has_admin(&self) -> Result<bool, StoreError> {
        Ok(
            on_db!(self, db => sqlx::query("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1")
            .fetch_optional(db)
            .await?
            .is_some()),
        )
    }

    /// Keeps a setup code's hash (codes older than a week are dropped).
    pub async fn add_setup_code(&self, code_hash: &str) -> Result<(), StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            sqlx::query("DELETE FROM setup_codes WHERE created_at < $1")
                .bind(now - 7 * 86_400_000)
                .execute(db)
                .await?;
            sqlx::query("INSERT INTO setup_codes (code_hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(code_hash)
                .bind(now)
                .execute(db)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn setup_code_valid(&self, code_hash: &str) -> Result<bool, StoreError> {
        Ok(
            on_db!(self, db => sqlx::query("SELECT 1 FROM setup_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(db)
            .await?
            .is_some()),
        )
    }

    /// Once the first admin exists, no code makes another.
    pub async fn clear_setup_codes(&self) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query("DELETE FROM setup_codes").execute(db).await?.rows_affected());
        Ok(())
    }

    /// Accounts disabled at or after `since_ms` (replicas stop their answers).
    pub async fn disabled_since(&self, since_ms: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT id FROM users WHERE disabled AND disabled_at >= $1",
        )
        .bind(since_ms)
        .fetch_all(db)
        .await?))
    }

    /// Disables or re-enables an account; false if there is no such account,
    /// or it is the last active admin.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        let changed = on_db!(self, db => {
            let mut tx = db.begin().await?;
            if self.is_shared() {
                sqlx::query(ACCOUNTS_LOCK).execute(&mut *tx).await?;
            }
            let done = sqlx::query(
                "UPDATE users SET disabled = $1, disabled_at = $3 WHERE id = $2 AND username IS NOT NULL \
                 AND (NOT $1 OR role != 'admin' OR \
                      (SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled AND id != $2) > 0)",
            )
            .bind(disabled)
            .bind(user_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.rows_affected()
        });
        Ok(changed == 1)
    }
}
