//! Votes on answers: stored, exported, and read for the dashboard.

use super::{json_list, now_ms, DbRow, Store, StoreError};
use app::wire::{Rating, Source};
use serde::Serialize;

/// What a vote needs to know about the answer it is on.
#[derive(Debug, Clone)]
pub struct AnswerForFeedback {
    pub model: Option<String>,
    pub variant: Option<String>,
    pub sources: Vec<Source>,
}

/// A vote to store.
#[derive(Debug, Clone)]
pub struct FeedbackRecord {
    pub message_id: String,
    pub user_id: String,
    pub rating: Rating,
    pub comment: Option<String>,
    pub model: Option<String>,
    pub variant: Option<String>,
    /// JSON: the chunks the answer used.
    pub retrieval: String,
}

/// One vote as exported (JSONL or CSV).
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackExport {
    pub message_id: String,
    pub conversation_id: String,
    pub user_id: String,
    pub username: Option<String>,
    pub rating: String,
    pub comment: Option<String>,
    pub model: Option<String>,
    pub variant: Option<String>,
    /// JSON array of `{chunk_id, document_id, document_version, score, cited}`.
    pub retrieval: String,
    pub question: String,
    pub answer: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One vote as the dashboard needs it.
#[derive(Debug, Clone, Default)]
pub struct VoteRow {
    pub model: Option<String>,
    pub variant: Option<String>,
    pub up: bool,
    /// Where the answer was asked (its turn event's `browser` or `api`);
    /// none when the answer has no turn event.
    pub source: Option<String>,
    /// The API key the answer was asked with, and that key's name then.
    pub api_key_id: Option<String>,
    pub api_key: Option<String>,
    /// Who asked, named as [`super::TurnRow::user`] names them.
    pub user: Option<String>,
}

/// An answer with at least one down-vote in the range.
#[derive(Debug, Clone)]
pub struct DownvotedRow {
    pub message_id: String,
    pub model: Option<String>,
    pub question: String,
    pub answer: String,
    pub sources: Vec<Source>,
    pub down: u64,
    pub up: u64,
    pub comments: Vec<String>,
}

impl Store {
    /// The user's own answer (an assistant message in one of their
    /// conversations), or `None`.
    pub async fn answer_for_feedback(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<Option<AnswerForFeedback>, StoreError> {
        on_db!(self, db => match sqlx::query(
            "SELECT m.model, m.sources, \
               (SELECT e.variant FROM chat_events e WHERE e.message_id = m.id LIMIT 1) AS variant \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = $1 AND c.user_id = $2 AND m.role = 'assistant'",
        )
        .bind(message_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?
        {
            Some(row) => Ok(Some(AnswerForFeedback {
                model: row.opt_text("model")?,
                variant: row.opt_text("variant")?,
                sources: json_list(&row, "sources")?,
            })),
            None => Ok(None),
        })
    }

    /// Stores a vote, replacing the user's earlier one on the same message.
    pub async fn upsert_feedback(&self, vote: &FeedbackRecord) -> Result<(), StoreError> {
        let now = now_ms();
        on_db!(self, db => sqlx::query(
            "INSERT INTO feedback (message_id, user_id, rating, comment, model, variant, retrieval, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (message_id, user_id) DO UPDATE SET \
               rating = excluded.rating, comment = excluded.comment, model = excluded.model, \
               variant = excluded.variant, retrieval = excluded.retrieval, updated_at = excluded.updated_at",
        )
        .bind(&vote.message_id)
        .bind(&vote.user_id)
        .bind(vote.rating.score())
        .bind(&vote.comment)
        .bind(&vote.model)
        .bind(&vote.variant)
        .bind(&vote.retrieval)
        .bind(now)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn delete_feedback(&self, user_id: &str, message_id: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query("DELETE FROM feedback WHERE message_id = $1 AND user_id = $2")
            .bind(message_id)
            .bind(user_id)
            .execute(db)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Votes changed in `[since, until)`, oldest first.
    pub async fn export_feedback(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<FeedbackExport>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT f.message_id, m.conversation_id, f.user_id, u.username, f.rating, f.comment, \
               f.model, f.variant, f.retrieval, f.created_at, f.updated_at, m.content AS answer, \
               COALESCE((SELECT q.content FROM messages q WHERE q.conversation_id = m.conversation_id \
                 AND q.seq < m.seq AND q.role = 'user' ORDER BY q.seq DESC LIMIT 1), '') AS question \
             FROM feedback f JOIN messages m ON m.id = f.message_id JOIN users u ON u.id = f.user_id \
             WHERE f.updated_at >= $1 AND f.updated_at < $2 ORDER BY f.updated_at, f.message_id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            let score = r.int("rating")?;
            Ok(FeedbackExport {
                message_id: r.text("message_id")?,
                conversation_id: r.text("conversation_id")?,
                user_id: r.text("user_id")?,
                username: r.opt_text("username")?,
                rating: Rating::from_score(score)
                    .ok_or_else(|| StoreError::Corrupt(format!("rating {score}")))?
                    .as_str()
                    .to_owned(),
                comment: r.opt_text("comment")?,
                model: r.opt_text("model")?,
                variant: r.opt_text("variant")?,
                retrieval: r.text("retrieval")?,
                question: r.text("question")?,
                answer: r.text("answer")?,
                created_at: r.int("created_at")?,
                updated_at: r.int("updated_at")?,
            })
        })
        .collect())
    }

    pub async fn votes_between(&self, since: i64, until: i64) -> Result<Vec<VoteRow>, StoreError> {
        // The answer's turn event (one per answer; the lowest id should
        // there ever be more) says where it was asked.
        on_db!(self, db => sqlx::query(
            "SELECT f.model, f.variant, f.rating, e.source, e.api_key_id, e.api_key_name, \
               COALESCE(u.username, 'guest ' || substr(e.user_id, 1, 8)) AS who \
             FROM feedback f \
             LEFT JOIN chat_events e ON e.id = \
               (SELECT MIN(x.id) FROM chat_events x WHERE x.message_id = f.message_id) \
             LEFT JOIN users u ON u.id = e.user_id \
             WHERE f.updated_at >= $1 AND f.updated_at < $2",
        )
        .bind(since)
        .bind(until)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(VoteRow {
                model: r.opt_text("model")?,
                variant: r.opt_text("variant")?,
                up: r.int("rating")? > 0,
                source: r.opt_text("source")?,
                api_key_id: r.opt_text("api_key_id")?,
                api_key: r.opt_text("api_key_name")?,
                user: r.opt_text("who")?,
            })
        })
        .collect())
    }

    /// The answers with the most down-votes in the range, worst first.
    pub async fn most_downvoted(
        &self,
        since: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<DownvotedRow>, StoreError> {
        // The comments as a JSON array of strings.
        let comments = if self.is_shared() {
            "CAST(json_agg(f.comment) FILTER (WHERE f.comment IS NOT NULL) AS TEXT)"
        } else {
            "json_group_array(f.comment) FILTER (WHERE f.comment IS NOT NULL)"
        };
        let down = "CAST(SUM(CASE WHEN f.rating < 0 THEN 1 ELSE 0 END) AS BIGINT)";
        let sql = format!(
            "SELECT m.id, m.model, m.content, m.sources, {down} AS down, \
               CAST(SUM(CASE WHEN f.rating > 0 THEN 1 ELSE 0 END) AS BIGINT) AS up, \
               {comments} AS comments, \
               COALESCE((SELECT q.content FROM messages q WHERE q.conversation_id = m.conversation_id \
                 AND q.seq < m.seq AND q.role = 'user' ORDER BY q.seq DESC LIMIT 1), '') AS question \
             FROM feedback f JOIN messages m ON m.id = f.message_id \
             WHERE f.updated_at >= $1 AND f.updated_at < $2 \
             GROUP BY m.id HAVING {down} > 0 ORDER BY down DESC, up ASC, MAX(f.updated_at) DESC LIMIT $3"
        );
        on_db!(self, db => sqlx::query(&sql)
            .bind(since)
            .bind(until)
            .bind(limit)
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| {
                Ok(DownvotedRow {
                    message_id: r.text("id")?,
                    model: r.opt_text("model")?,
                    question: r.text("question")?,
                    answer: r.text("content")?,
                    sources: json_list(r, "sources")?,
                    down: r.int("down")?.max(0) as u64,
                    up: r.int("up")?.max(0) as u64,
                    comments: json_list(r, "comments")?,
                })
            })
            .collect())
    }
}
