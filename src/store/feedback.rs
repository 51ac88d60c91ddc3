//! Votes on answers and per-turn usage events, and their exports.

use super::{json_list, now_ms, Store, StoreError};
use crate::events::ChatTurnEvent;
use app::wire::{Rating, Source};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

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

impl Store {
    /// The user's own answer (an assistant message in one of their
    /// conversations), or `None`.
    pub async fn answer_for_feedback(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<Option<AnswerForFeedback>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT m.model, m.sources, \
               (SELECT e.variant FROM chat_events e WHERE e.message_id = m.id) AS variant \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = ? AND c.user_id = ? AND m.role = 'assistant'",
        )
        .bind(message_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let sources = json_list(&row, "sources")?;
        Ok(Some(AnswerForFeedback {
            model: row.try_get("model")?,
            variant: row.try_get("variant")?,
            sources,
        }))
    }

    /// The content hash (the version) of each listed document that still exists.
    pub async fn document_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(HashMap::new());
        }
        // One query per turn, not one per passage.
        let placeholders = vec!["?"; unique.len()].join(", ");
        let sql = format!("SELECT id, content_hash FROM documents WHERE id IN ({placeholders})");
        let mut query = sqlx::query_as::<_, (String, String)>(&sql);
        for id in unique {
            query = query.bind(id);
        }
        let versions: HashMap<String, String> =
            query.fetch_all(&self.pool).await?.into_iter().collect();
        Ok(versions)
    }

    /// Stores a vote, replacing the user's earlier one on the same message.
    pub async fn upsert_feedback(&self, vote: &FeedbackRecord) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO feedback (message_id, user_id, rating, comment, model, variant, retrieval, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_feedback(&self, user_id: &str, message_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM feedback WHERE message_id = ? AND user_id = ?")
            .bind(message_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Votes changed in `[since, until)`, oldest first.
    pub async fn export_feedback(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<FeedbackExport>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.message_id, m.conversation_id, f.user_id, u.username, f.rating, f.comment, \
               f.model, f.variant, f.retrieval, f.created_at, f.updated_at, m.content AS answer, \
               COALESCE((SELECT q.content FROM messages q WHERE q.conversation_id = m.conversation_id \
                 AND q.seq < m.seq AND q.role = 'user' ORDER BY q.seq DESC LIMIT 1), '') AS question \
             FROM feedback f JOIN messages m ON m.id = f.message_id JOIN users u ON u.id = f.user_id \
             WHERE f.updated_at >= ? AND f.updated_at < ? ORDER BY f.updated_at, f.message_id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let score: i64 = r.try_get("rating")?;
                Ok(FeedbackExport {
                    message_id: r.try_get("message_id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    rating: Rating::from_score(score)
                        .ok_or_else(|| StoreError::Corrupt(format!("rating {score}")))?
                        .as_str()
                        .to_owned(),
                    comment: r.try_get("comment")?,
                    model: r.try_get("model")?,
                    variant: r.try_get("variant")?,
                    retrieval: r.try_get("retrieval")?,
                    question: r.try_get("question")?,
                    answer: r.try_get("answer")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn record_turn(&self, e: &ChatTurnEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO chat_events (id, at, user_id, conversation_id, message_id, model, provider, variant, \
               embed_ms, retrieve_ms, prompt_build_ms, queue_ms, ttft_ms, upstream_ttft_ms, total_ms, \
               prompt_tokens, completion_tokens, tokens_estimated, tokens_per_s, cache_hit, retries, \
               fallback_used, sources, outcome, error_class) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(e.at)
        .bind(&e.user_id)
        .bind(&e.conversation_id)
        .bind(&e.message_id)
        .bind(&e.model)
        .bind(&e.provider)
        .bind(&e.variant)
        .bind(e.embed_ms)
        .bind(e.retrieve_ms)
        .bind(e.prompt_build_ms)
        .bind(e.queue_ms)
        .bind(e.ttft_ms)
        .bind(e.upstream_ttft_ms)
        .bind(e.total_ms)
        .bind(i64::from(e.prompt_tokens))
        .bind(i64::from(e.completion_tokens))
        .bind(e.tokens_estimated)
        .bind(e.tokens_per_s)
        .bind(e.cache_hit)
        .bind(i64::from(e.retries))
        .bind(e.fallback_used)
        .bind(i64::from(e.sources))
        .bind(&e.outcome)
        .bind(&e.error_class)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Turn events in `[since, until)`, oldest first.
    pub async fn export_turns(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ChatTurnEvent>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM chat_events WHERE at >= ? AND at < ? ORDER BY at, id")
                .bind(since)
                .bind(until)
                .fetch_all(&self.pool)
                .await?;
        let u32_of = |r: &sqlx::sqlite::SqliteRow, col: &str| -> Result<u32, StoreError> {
            Ok(u32::try_from(r.try_get::<i64, _>(col)?.max(0)).unwrap_or(u32::MAX))
        };
        rows.iter()
            .map(|r| {
                Ok(ChatTurnEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    user_id: r.try_get("user_id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    message_id: r.try_get("message_id")?,
                    model: r.try_get("model")?,
                    provider: r.try_get("provider")?,
                    variant: r.try_get("variant")?,
                    embed_ms: r.try_get("embed_ms")?,
                    retrieve_ms: r.try_get("retrieve_ms")?,
                    prompt_build_ms: r.try_get("prompt_build_ms")?,
                    queue_ms: r.try_get("queue_ms")?,
                    ttft_ms: r.try_get("ttft_ms")?,
                    upstream_ttft_ms: r.try_get("upstream_ttft_ms")?,
                    total_ms: r.try_get("total_ms")?,
                    prompt_tokens: u32_of(r, "prompt_tokens")?,
                    completion_tokens: u32_of(r, "completion_tokens")?,
                    tokens_estimated: r.try_get("tokens_estimated")?,
                    tokens_per_s: r.try_get("tokens_per_s")?,
                    cache_hit: r.try_get("cache_hit")?,
                    retries: u32_of(r, "retries")?,
                    fallback_used: r.try_get("fallback_used")?,
                    sources: u32_of(r, "sources")?,
                    outcome: r.try_get("outcome")?,
                    error_class: r.try_get("error_class")?,
                })
            })
            .collect()
    }
}

/// One turn as the dashboard needs it.
#[derive(Debug, Clone)]
pub struct TurnRow {
    pub at: i64,
    pub user: String,
    pub model: String,
    pub variant: Option<String>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_hit: bool,
    pub failed: bool,
}

/// One vote as the dashboard needs it.
#[derive(Debug, Clone)]
pub struct VoteRow {
    pub model: Option<String>,
    pub variant: Option<String>,
    pub up: bool,
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

/// The dashboard reads at most this many turns per request.
const MAX_TURNS: i64 = 500_000;

impl Store {
    pub async fn turns_between(&self, since: i64, until: i64) -> Result<Vec<TurnRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.at, COALESCE(u.username, 'guest ' || substr(e.user_id, 1, 8)) AS who, e.model, \
               e.variant, e.ttft_ms, e.total_ms, e.prompt_tokens, e.completion_tokens, e.cache_hit, \
               e.error_class IS NOT NULL AS failed \
             FROM chat_events e LEFT JOIN users u ON u.id = e.user_id \
             WHERE e.at >= ? AND e.at < ? ORDER BY e.at LIMIT ?",
        )
        .bind(since)
        .bind(until)
        .bind(MAX_TURNS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TurnRow {
                    at: r.try_get("at")?,
                    user: r.try_get("who")?,
                    model: r.try_get("model")?,
                    variant: r.try_get("variant")?,
                    ttft_ms: r.try_get("ttft_ms")?,
                    total_ms: r.try_get("total_ms")?,
                    prompt_tokens: r.try_get::<i64, _>("prompt_tokens")?.max(0) as u64,
                    completion_tokens: r.try_get::<i64, _>("completion_tokens")?.max(0) as u64,
                    cache_hit: r.try_get("cache_hit")?,
                    failed: r.try_get("failed")?,
                })
            })
            .collect()
    }

    pub async fn votes_between(&self, since: i64, until: i64) -> Result<Vec<VoteRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, variant, rating FROM feedback WHERE updated_at >= ? AND updated_at < ?",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VoteRow {
                    model: r.try_get("model")?,
                    variant: r.try_get("variant")?,
                    up: r.try_get::<i64, _>("rating")? > 0,
                })
            })
            .collect()
    }

    /// The answers with the most down-votes in the range, worst first.
    pub async fn most_downvoted(
        &self,
        since: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<DownvotedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.model, m.content, m.sources, \
               SUM(f.rating < 0) AS down, SUM(f.rating > 0) AS up, \
               json_group_array(f.comment) FILTER (WHERE f.comment IS NOT NULL) AS comments, \
               COALESCE((SELECT q.content FROM messages q WHERE q.conversation_id = m.conversation_id \
                 AND q.seq < m.seq AND q.role = 'user' ORDER BY q.seq DESC LIMIT 1), '') AS question \
             FROM feedback f JOIN messages m ON m.id = f.message_id \
             WHERE f.updated_at >= ? AND f.updated_at < ? \
             GROUP BY m.id HAVING down > 0 ORDER BY down DESC, up ASC, MAX(f.updated_at) DESC LIMIT ?",
        )
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let sources = json_list(r, "sources")?;
                let comments = json_list(r, "comments")?;
                Ok(DownvotedRow {
                    message_id: r.try_get("id")?,
                    model: r.try_get("model")?,
                    question: r.try_get("question")?,
                    answer: r.try_get("content")?,
                    sources,
                    down: r.try_get::<i64, _>("down")?.max(0) as u64,
                    up: r.try_get::<i64, _>("up")?.max(0) as u64,
                    comments,
                })
            })
            .collect()
    }
}

/// An answer kept in the response cache.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub model: String,
    pub answer: String,
    pub sources: Vec<Source>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Store {
    /// A live cache entry.
    pub async fn cached_answer(&self, key: &str) -> Result<Option<CachedAnswer>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT model, answer, sources, prompt_tokens, completion_tokens FROM response_cache \
             WHERE key = ? AND expires_at > ?",
        )
        .bind(key)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let sources = json_list(&row, "sources")?;
        Ok(Some(CachedAnswer {
            model: row.try_get("model")?,
            answer: row.try_get("answer")?,
            sources,
            prompt_tokens: u32::try_from(row.try_get::<i64, _>("prompt_tokens")?).unwrap_or(0),
            completion_tokens: u32::try_from(row.try_get::<i64, _>("completion_tokens")?)
                .unwrap_or(0),
        }))
    }

    /// Stores an answer with the documents it used; expired entries go too.
    /// An answer whose document was deleted meanwhile is not stored.
    pub async fn cache_answer(
        &self,
        key: &str,
        answer: &CachedAnswer,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM response_cache WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut documents: Vec<&str> = answer
            .sources
            .iter()
            .map(|s| s.document_id.as_str())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        for id in &documents {
            let live: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM documents WHERE id = ? AND status = 'indexed'")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if live.is_none() {
                return Ok(());
            }
        }
        sqlx::query(
            "INSERT OR REPLACE INTO response_cache \
             (key, model, answer, sources, prompt_tokens, completion_tokens, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key)
        .bind(&answer.model)
        .bind(&answer.answer)
        .bind(serde_json::to_string(&answer.sources).ok())
        .bind(i64::from(answer.prompt_tokens))
        .bind(i64::from(answer.completion_tokens))
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut *tx)
        .await?;
        for id in documents {
            sqlx::query(
                "INSERT OR IGNORE INTO response_cache_documents (key, document_id) VALUES (?, ?)",
            )
            .bind(key)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops every cached answer that used the document.
    pub async fn invalidate_cache_for_document(
        &self,
        document_id: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM response_cache WHERE key IN \
             (SELECT key FROM response_cache_documents WHERE document_id = ?)",
        )
        .bind(document_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Store {
    /// Counts a turn of `user_id` in each of its experiment variants.
    pub async fn record_exposures(
        &self,
        user_id: &str,
        assignments: &[(String, String)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for (experiment, variant) in assignments {
            sqlx::query(
                "INSERT INTO experiment_exposures (experiment, variant, user_id, first_at, last_at, turns) \
                 VALUES (?, ?, ?, ?, ?, 1) \
                 ON CONFLICT (experiment, user_id) DO UPDATE SET \
                   variant = excluded.variant, last_at = excluded.last_at, turns = turns + 1",
            )
            .bind(experiment)
            .bind(variant)
            .bind(user_id)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Users exposed to each variant of an experiment.
    pub async fn exposures(&self, experiment: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT variant, COUNT(*) FROM experiment_exposures WHERE experiment = ? GROUP BY variant",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?)
    }
}
