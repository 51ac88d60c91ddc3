//! Conversations and their messages: listing, opening, deleting, and a
//! turn's question and answer from the moment it starts to how it ended.

use super::{db_int, json_list, now_ms, DbRow, Store, StoreError};
use app::wire::{ConversationSummary, MessageStatus, MessageView, Rating, Role, Source};
use uuid::Uuid;

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
    /// The standalone query a follow-up was searched as.
    pub searched_for: Option<String>,
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

impl Store {
    /// Answers left "streaming" by a crash or restart can never finish. With a
    /// shared database other replicas may still be streaming theirs, so only
    /// answers started before `started_before_ms` are touched.
    pub async fn mark_interrupted(&self, started_before_ms: i64) -> Result<u64, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE messages SET status = 'incomplete', \
             error = 'The server restarted while this answer was being generated.' \
             WHERE status = 'streaming' AND created_at < $1",
        )
        .bind(started_before_ms)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done)
    }

    pub async fn list_conversations(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, title, updated_at FROM conversations WHERE user_id = $1 \
             ORDER BY updated_at DESC LIMIT 500",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(ConversationSummary {
                id: r.text("id")?,
                title: r.text("title")?,
                updated_at_ms: r.int("updated_at")?,
            })
        })
        .collect())
    }

    /// The conversation's title if `user_id` owns it.
    pub async fn owned_title(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT title FROM conversations WHERE id = $1 AND user_id = $2",
        )
        .bind(conversation_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?))
    }

    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<MessageView>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT m.id, m.role, m.content, m.status, m.error, m.model, m.completion_tokens, \
               m.ttft_ms, m.total_ms, m.sources, m.notice, m.search_query, f.rating \
             FROM messages m \
             LEFT JOIN feedback f ON f.message_id = m.id \
               AND f.user_id = (SELECT user_id FROM conversations c WHERE c.id = m.conversation_id) \
             WHERE m.conversation_id = $1 ORDER BY m.seq",
        )
        .bind(conversation_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(message_from_row)
        .collect())
    }

    /// Deletes a conversation the user owns; false if there was none.
    pub async fn delete_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "DELETE FROM conversations WHERE id = $1 AND user_id = $2",
        )
        .bind(conversation_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// Stores the user's message and an empty "streaming" answer in one
    /// transaction, creating the conversation when `conversation_id` is `None`.
    /// A new conversation is called `new_title`. Returns `None` if the
    /// conversation is not the user's.
    pub async fn begin_turn(
        &self,
        user_id: &str,
        conversation_id: Option<&str>,
        text: &str,
        model: &str,
        new_title: &str,
    ) -> Result<Option<NewTurn>, StoreError> {
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            let now = now_ms();
            let (conversation_id, title) = match conversation_id {
                Some(id) => {
                    // Locks the conversation (Postgres) so two turns can't take one seq.
                    let lock = if self.is_shared() { " FOR UPDATE" } else { "" };
                    let title: Option<String> = sqlx::query_scalar(&format!(
                        "SELECT title FROM conversations WHERE id = $1 AND user_id = $2{lock}"
                    ))
                    .bind(id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match title {
                        Some(title) => (id.to_string(), title),
                        None => return Ok(None),
                    }
                }
                None => {
                    let id = Uuid::new_v4().to_string();
                    let title = new_title.to_owned();
                    sqlx::query(
                        "INSERT INTO conversations (id, user_id, title, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5)",
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
            let history = sqlx::query(
                "SELECT role, content FROM messages WHERE conversation_id = $1 AND content != '' \
                 ORDER BY seq",
            )
            .bind(&conversation_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(HistoryMessage {
                    role: parse_role(&r.text("role")?)?,
                    content: r.text("content")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let next_seq: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = $1",
            )
            .bind(&conversation_id)
            .fetch_one(&mut *tx)
            .await?;
            let user_message_id = Uuid::new_v4().to_string();
            let assistant_message_id = Uuid::new_v4().to_string();
            // The question, and its answer while it streams.
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, seq, role, content, status, model, created_at) \
                 VALUES ($1, $2, $3, 'user', $4, 'complete', NULL, $5), \
                        ($6, $2, $7, 'assistant', '', 'streaming', $8, $5)",
            )
            .bind(&user_message_id)
            .bind(&conversation_id)
            .bind(next_seq)
            .bind(text)
            .bind(now)
            .bind(&assistant_message_id)
            .bind(next_seq + 1)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
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
        })
    }

    /// Records how an answer ended.
    pub async fn finish_answer(
        &self,
        message_id: &str,
        record: &AnswerRecord,
    ) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE messages SET model = $1, content = $2, status = $3, error = $4, \
             prompt_tokens = $5, completion_tokens = $6, ttft_ms = $7, total_ms = $8, \
             sources = $9, notice = $10, search_query = $11 WHERE id = $12",
        )
        .bind(&record.model)
        .bind(&record.content)
        .bind(record.status.as_str())
        .bind(&record.error)
        .bind(i64::from(record.prompt_tokens))
        .bind(i64::from(record.completion_tokens))
        .bind(record.ttft_ms.map(db_int))
        .bind(db_int(record.total_ms))
        .bind(sources_json(&record.sources))
        .bind(&record.notice)
        .bind(&record.searched_for)
        .bind(message_id)
        .execute(db)
        .await?
        .rows_affected());
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

fn message_from_row(r: &impl DbRow) -> Result<MessageView, StoreError> {
    let status = r.text("status")?;
    let to_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(MessageView {
        id: r.text("id")?,
        role: parse_role(&r.text("role")?)?,
        content: r.text("content")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        error: r.opt_text("error")?,
        model: r.opt_text("model")?,
        completion_tokens: r
            .opt_int("completion_tokens")?
            .and_then(|v| u32::try_from(v).ok()),
        ttft_ms: to_u64(r.opt_int("ttft_ms")?),
        total_ms: to_u64(r.opt_int("total_ms")?),
        sources: json_list(r, "sources")?,
        notice: r.opt_text("notice")?,
        searched_for: r.opt_text("search_query")?,
        rating: r.opt_int("rating")?.and_then(Rating::from_score),
    })
}

fn sources_json(sources: &[Source]) -> Option<String> {
    if sources.is_empty() {
        None
    } else {
        serde_json::to_string(sources).ok()
    }
}
