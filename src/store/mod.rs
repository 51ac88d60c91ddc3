//! SQLite persistence for users, conversations, messages and documents.

mod accounts;
mod api_keys;
mod documents;
mod feedback;

pub use accounts::{AccountRow, SignUpRefused};
pub use documents::{DocumentRow, NewDocument};
pub use feedback::{
    AnswerForFeedback, CachedAnswer, DownvotedRow, FeedbackExport, FeedbackRecord, TurnRow, VoteRow,
};

use app::wire::{ConversationSummary, MessageStatus, MessageView, Rating, Role, Source};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

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
    pool: SqlitePool,
}

/// A message to put into the prompt.
#[derive(Debug, Clone)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: String,
}

/// What a finished (or failed, or stopped) answer leaves behind.
#[derive(Debug, Clone)]
pub struct AnswerRecord {
    /// The model that answered (a fallback may have taken over).
    pub model: String,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: Option<u64>,
    pub total_ms: u64,
    pub sources: Vec<Source>,
    /// What the reader was told about the answer (see `ChatEvent::Notice`).
    pub notice: Option<String>,
}

/// The rows created for one chat turn.
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub conversation_id: String,
    pub title: String,
    pub user_message_id: String,
    pub assistant_message_id: String,
    /// Earlier messages of the conversation, oldest first (not including this turn).
    pub history: Vec<HistoryMessage>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/ragchat.db` and runs migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(data_dir.join("ragchat.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Answers left "streaming" by a crash or restart can never finish.
    pub async fn mark_interrupted(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'incomplete', \
             error = 'The server restarted while this answer was being generated.' \
             WHERE status = 'streaming'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn list_conversations(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, title, updated_at FROM conversations WHERE user_id = ? ORDER BY updated_at DESC LIMIT 500",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConversationSummary {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                    updated_at_ms: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The conversation's title if `user_id` owns it.
    pub async fn owned_title(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT title FROM conversations WHERE id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("title")))
    }

    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<MessageView>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.role, m.content, m.status, m.error, m.model, m.completion_tokens, \
               m.ttft_ms, m.total_ms, m.sources, m.notice, f.rating \
             FROM messages m \
             LEFT JOIN feedback f ON f.message_id = m.id \
               AND f.user_id = (SELECT user_id FROM conversations c WHERE c.id = m.conversation_id) \
             WHERE m.conversation_id = ? ORDER BY m.seq",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Deletes a conversation the user owns; false if there was none.
    pub async fn delete_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM conversations WHERE id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores the user's message and an empty "streaming" answer in one
    /// transaction, creating the conversation when `conversation_id` is `None`.
    /// Returns `None` if the conversation is not the user's.
    pub async fn begin_turn(
        &self,
        user_id: &str,
        conversation_id: Option<&str>,
        text: &str,
        model: &str,
        new_title: impl FnOnce() -> String,
    ) -> Result<Option<NewTurn>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let (conversation_id, title) = match conversation_id {
            Some(id) => {
                let row =
                    sqlx::query("SELECT title FROM conversations WHERE id = ? AND user_id = ?")
                        .bind(id)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                match row {
                    Some(row) => (id.to_string(), row.get::<String, _>("title")),
                    None => return Ok(None),
                }
            }
            None => {
                let id = Uuid::new_v4().to_string();
                let title = new_title();
                sqlx::query(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(user_id)
                .bind(&title)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                (id, title)
            }
        };
        let history_rows = sqlx::query(
            "SELECT role, content FROM messages WHERE conversation_id = ? AND content != '' ORDER BY seq",
        )
        .bind(&conversation_id)
        .fetch_all(&mut *tx)
        .await?;
        let history = history_rows
            .iter()
            .map(|r| {
                Ok(HistoryMessage {
                    role: parse_role(r.try_get("role")?)?,
                    content: r.try_get("content")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next_seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM messages WHERE conversation_id = ?",
        )
        .bind(&conversation_id)
        .fetch_one(&mut *tx)
        .await?
        .get("next");
        let user_message_id = Uuid::new_v4().to_string();
        let assistant_message_id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at) \
             VALUES (?, ?, ?, 'user', ?, 'complete', ?)",
        )
        .bind(&user_message_id)
        .bind(&conversation_id)
        .bind(next_seq)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, role, content, status, model, created_at) \
             VALUES (?, ?, ?, 'assistant', '', 'streaming', ?, ?)",
        )
        .bind(&assistant_message_id)
        .bind(&conversation_id)
        .bind(next_seq + 1)
        .bind(model)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(&conversation_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(NewTurn {
            conversation_id,
            title,
            user_message_id,
            assistant_message_id,
            history,
        }))
    }

    /// Records how an answer ended.
    pub async fn finish_answer(
        &self,
        message_id: &str,
        record: &AnswerRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET model = ?, content = ?, status = ?, error = ?, prompt_tokens = ?, \
             completion_tokens = ?, ttft_ms = ?, total_ms = ?, sources = ?, notice = ? WHERE id = ?",
        )
        .bind(&record.model)
        .bind(&record.content)
        .bind(record.status.as_str())
        .bind(&record.error)
        .bind(record.prompt_tokens)
        .bind(record.completion_tokens)
        .bind(record.ttft_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
        .bind(i64::try_from(record.total_ms).unwrap_or(i64::MAX))
        .bind(sources_json(&record.sources))
        .bind(&record.notice)
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn parse_role(role: &str) -> Result<Role, StoreError> {
    match role {
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(StoreError::Corrupt(format!("role {other:?}"))),
    }
}

fn message_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<MessageView, StoreError> {
    let status: String = r.try_get("status")?;
    let to_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(MessageView {
        id: r.try_get("id")?,
        role: parse_role(r.try_get("role")?)?,
        content: r.try_get("content")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        error: r.try_get("error")?,
        model: r.try_get("model")?,
        completion_tokens: r
            .try_get::<Option<i64>, _>("completion_tokens")?
            .and_then(|v| u32::try_from(v).ok()),
        ttft_ms: to_u64(r.try_get("ttft_ms")?),
        total_ms: to_u64(r.try_get("total_ms")?),
        sources: json_list(r, "sources")?,
        notice: r.try_get("notice")?,
        rating: r
            .try_get::<Option<i64>, _>("rating")?
            .and_then(Rating::from_score),
    })
}

/// A nullable JSON-array column (sources, comments) as a list; NULL is empty.
fn json_list<T: serde::de::DeserializeOwned>(
    row: &sqlx::sqlite::SqliteRow,
    column: &str,
) -> Result<Vec<T>, StoreError> {
    match row.try_get::<Option<String>, _>(column)? {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        }
        None => Ok(Vec::new()),
    }
}

fn sources_json(sources: &[Source]) -> Option<String> {
    if sources.is_empty() {
        None
    } else {
        serde_json::to_string(sources).ok()
    }
}
