//! Persistence for users, conversations, messages, documents, votes, events,
//! the response cache and sessions: SQLite in the data directory by default,
//! Postgres (shared by every replica) at scale. The SQL is written once, to
//! run on both. One file per group of tables: conversations (and their
//! messages), a turn's rows, search, shared links, documents, accounts, API
//! keys, usage (upload quotas), votes, turn events, the response cache,
//! experiment exposures, sessions, and what the quality view reads across
//! them.

/// Runs `$body` with `$db` bound to the store's pool. The body is compiled
/// once per backend, so every query is written (and reviewed) once.
macro_rules! on_db {
    ($store:expr, $db:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($db) => $body,
            $crate::store::Pool::Postgres($db) => $body,
        }
    };
}

mod accounts;
mod api_keys;
mod cache;
mod collections;
mod conversations;
mod documents;
mod experiments;
mod quality;
mod search;
mod sessions;
mod shares;
mod tree;
mod turn_events;
mod turns;
mod usage;
mod versions;
mod votes;

pub use accounts::{AccountRow, SignUpRefused};
pub use cache::CachedAnswer;
pub use collections::CollectionRow;
pub use documents::{DocumentRow, Inserted, NewDocument};
pub use quality::{DocumentLabel, GapCandidate, VotedAnswer};
pub use sessions::SessionBackend;
pub use shares::{ShareMade, MAX_SHARES_PER_USER};
pub use turn_events::{ChatTurnEvent, TurnRow};
pub use turns::{AnswerRecord, HistoryMessage, NewTurn, TurnBegun, TurnStart};
pub use usage::{FilesAndBytes, UsageOwner};
pub use versions::MAX_HIDDEN;
pub use votes::{AnswerForFeedback, DownvotedRow, FeedbackExport, FeedbackRecord, VoteRow};

use crate::config::DatabaseSettings;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// On SQLite, the chat path's writes (a turn's rows, its growing and
    /// finished answer, its event) take turns here first. SQLite runs one
    /// writer at a time anyway, but a connection that finds the lock taken
    /// sleeps 1, 2, 5, 10 ms… before it looks again; queued here, the next
    /// writer starts the moment the last one is done (at 64 concurrent
    /// streams those sleeps were most of the time-to-first-token tail).
    writers: Arc<tokio::sync::Mutex<()>>,
}

/// The database behind the store.
#[derive(Clone)]
pub enum Pool {
    /// One file in the data directory: one replica.
    Sqlite(SqlitePool),
    /// A server every replica shares.
    Postgres(PgPool),
}

/// Reads a column the same way from either backend's rows.
pub(crate) trait DbRow {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, column: &str) -> Result<f64, StoreError>;
    fn opt_real(&self, column: &str) -> Result<Option<f64>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
}

macro_rules! db_row {
    ($($row:ty),*) => {$(
        impl DbRow for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn real(&self, column: &str) -> Result<f64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_real(&self, column: &str) -> Result<Option<f64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    )*};
}
db_row!(SqliteRow, PgRow);

/// `$start, $start+1, …` for `n` bound values (an `IN (…)` list).
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count as stored (Postgres has no unsigned integers).
pub(crate) fn db_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How often the SQLite log is copied back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the SQLite write-ahead log back into the database every second,
/// beside the writers, until the store is dropped. Left to SQLite, the
/// commit that fills the log to its threshold does it, holding the write
/// lock for milliseconds: 2 % of turns paid that in time to first token at
/// 50 concurrent streams.
async fn checkpoint_wal(pool: SqlitePool, alive: std::sync::Weak<tokio::sync::Mutex<()>>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        // PASSIVE: never waits for (or blocks) readers and writers.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "checkpointing the SQLite log");
        }
    }
}

impl Store {
    /// Connects to Postgres when `database.url` is set, else opens (creating
    /// if needed) `<data_dir>/ragchat.db`; runs the migrations either way.
    pub async fn open(database: &DatabaseSettings, data_dir: &Path) -> Result<Self, StoreError> {
        let pool = match &database.url {
            Some(url) => {
                let pool = PgPoolOptions::new()
                    .max_connections(database.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url.expose_secret())
                    .await?;
                // Replicas starting together take turns (sqlx holds an advisory lock).
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Pool::Postgres(pool)
            }
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
                let options = SqliteConnectOptions::from_str("sqlite:")?
                    .filename(data_dir.join("ragchat.db"))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    // Checkpoints run beside the writers (`checkpoint_wal`);
                    // this is only the backstop (~40 MB of log).
                    .pragma("wal_autocheckpoint", "10000");
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                Pool::Sqlite(pool)
            }
        };
        let writers: Arc<tokio::sync::Mutex<()>> = Arc::default();
        if let Pool::Sqlite(pool) = &pool {
            tokio::spawn(checkpoint_wal(pool.clone(), Arc::downgrade(&writers)));
        }
        Ok(Self { pool, writers })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Waits for the chat path's turn to write (SQLite; Postgres writers
    /// don't exclude each other): hold it over the write.
    pub(crate) async fn chat_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.writers.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    /// How a transaction that reads and then writes begins: on SQLite it
    /// takes the write lock at once (waiting for it within the busy
    /// timeout), since a read transaction that later writes fails outright
    /// if another connection wrote in between.
    pub(crate) fn write_transaction(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
            Pool::Postgres(_) => "BEGIN",
        }
    }

    /// A `FOR NO KEY UPDATE OF <alias>` clause on Postgres (where replicas
    /// race for the same rows); nothing on SQLite, whose write transactions
    /// exclude each other. `NO KEY` so that the key-share locks foreign keys
    /// take (a new conversation on its user) don't deadlock with it.
    pub(crate) fn lock_row_of(&self, alias: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => String::new(),
            Pool::Postgres(_) => format!(" FOR NO KEY UPDATE OF {alias}"),
        }
    }

    /// Whether the database is shared by several replicas (Postgres).
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }
}

/// A nullable JSON-array column (sources, comments) as a list; NULL is empty.
fn json_list<T: serde::de::DeserializeOwned>(
    row: &impl DbRow,
    column: &str,
) -> Result<Vec<T>, StoreError> {
    match row.opt_text(column)? {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        }
        None => Ok(Vec::new()),
    }
}
