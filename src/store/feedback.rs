//! Votes on answers and per-turn usage events, and their exports.

use super::turn_event::ChatTurnEvent;
use super::{json_list, now_ms, DbRow, Store, StoreError};
use app::wire::{Rating, Source};
use serde::Serialize;
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
        let placeholders = (1..=unique.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT id, content_hash FROM documents WHERE id IN ({placeholders})");
        let versions: HashMap<String, String> = on_db!(self, db => {
            let mut query = sqlx::query_as::<_, (String, String)>(&sql);
            for id in &unique {
                query = query.bind(*id);
            }
            query.fetch_all(db).await?.into_iter().collect()
        });
        Ok(versions)
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

    pub async fn record_turn(&self, e: &ChatTurnEvent) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "INSERT INTO chat_events (id, at, user_id, conversation_id, message_id, model, provider, variant, \
               embed_ms, retrieve_ms, prompt_build_ms, queue_ms, ttft_ms, upstream_ttft_ms, total_ms, \
               prompt_tokens, completion_tokens, tokens_estimated, tokens_per_s, cache_hit, retries, \
               fallback_used, sources, outcome, error_class) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
               $19, $20, $21, $22, $23, $24, $25)",
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
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Turn events in `[since, until)`, oldest first.
    pub async fn export_turns(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ChatTurnEvent>, StoreError> {
        fn u32_of(r: &impl DbRow, column: &str) -> Result<u32, StoreError> {
            Ok(u32::try_from(r.int(column)?.max(0)).unwrap_or(u32::MAX))
        }
        on_db!(self, db => sqlx::query(
            "SELECT * FROM chat_events WHERE at >= $1 AND at < $2 ORDER BY at, id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(ChatTurnEvent {
                id: r.text("id")?,
                at: r.int("at")?,
                user_id: r.text("user_id")?,
                conversation_id: r.text("conversation_id")?,
                message_id: r.text("message_id")?,
                model: r.text("model")?,
                provider: r.text("provider")?,
                variant: r.opt_text("variant")?,
                embed_ms: r.opt_real("embed_ms")?,
                retrieve_ms: r.opt_real("retrieve_ms")?,
                prompt_build_ms: r.opt_real("prompt_build_ms")?,
                queue_ms: r.opt_real("queue_ms")?,
                ttft_ms: r.opt_real("ttft_ms")?,
                upstream_ttft_ms: r.opt_real("upstream_ttft_ms")?,
                total_ms: r.real("total_ms")?,
                prompt_tokens: u32_of(r, "prompt_tokens")?,
                completion_tokens: u32_of(r, "completion_tokens")?,
                tokens_estimated: r.flag("tokens_estimated")?,
                tokens_per_s: r.opt_real("tokens_per_s")?,
                cache_hit: r.flag("cache_hit")?,
                retries: u32_of(r, "retries")?,
                fallback_used: r.flag("fallback_used")?,
                sources: u32_of(r, "sources")?,
                outcome: r.text("outcome")?,
                error_class: r.opt_text("error_class")?,
            })
        })
        .collect())
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
        on_db!(self, db => sqlx::query(
            "SELECT e.at, COALESCE(u.username, 'guest ' || substr(e.user_id, 1, 8)) AS who, e.model, \
               e.variant, e.ttft_ms, e.total_ms, e.prompt_tokens, e.completion_tokens, e.cache_hit, \
               e.error_class IS NOT NULL AS failed \
             FROM chat_events e LEFT JOIN users u ON u.id = e.user_id \
             WHERE e.at >= $1 AND e.at < $2 ORDER BY e.at LIMIT $3",
        )
        .bind(since)
        .bind(until)
        .bind(MAX_TURNS)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(TurnRow {
                at: r.int("at")?,
                user: r.text("who")?,
                model: r.text("model")?,
                variant: r.opt_text("variant")?,
                ttft_ms: r.opt_real("ttft_ms")?,
                total_ms: r.real("total_ms")?,
                prompt_tokens: r.int("prompt_tokens")?.max(0) as u64,
                completion_tokens: r.int("completion_tokens")?.max(0) as u64,
                cache_hit: r.flag("cache_hit")?,
                failed: r.flag("failed")?,
            })
        })
        .collect())
    }

    pub async fn votes_between(&self, since: i64, until: i64) -> Result<Vec<VoteRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT model, variant, rating FROM feedback WHERE updated_at >= $1 AND updated_at < $2",
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
        let tokens = |n: i64| u32::try_from(n).unwrap_or(0);
        on_db!(self, db => match sqlx::query(
            "SELECT model, answer, sources, prompt_tokens, completion_tokens FROM response_cache \
             WHERE key = $1 AND expires_at > $2",
        )
        .bind(key)
        .bind(now_ms())
        .fetch_optional(db)
        .await?
        {
            Some(row) => Ok(Some(CachedAnswer {
                model: row.text("model")?,
                answer: row.text("answer")?,
                sources: json_list(&row, "sources")?,
                prompt_tokens: tokens(row.int("prompt_tokens")?),
                completion_tokens: tokens(row.int("completion_tokens")?),
            })),
            None => Ok(None),
        })
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
        let mut documents: Vec<&str> = answer
            .sources
            .iter()
            .map(|s| s.document_id.as_str())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM response_cache WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            for id in &documents {
                // Postgres: the row lock makes a concurrent delete of the
                // document wait for this entry (and then drop it), or makes
                // this check see the delete. SQLite holds its write lock already.
                let lock = if self.is_shared() { " FOR SHARE" } else { "" };
                let live = sqlx::query(&format!(
                    "SELECT 1 FROM documents WHERE id = $1 AND status = 'indexed'{lock}"
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    return Ok(());
                }
            }
            sqlx::query(
                "INSERT INTO response_cache \
                 (key, model, answer, sources, prompt_tokens, completion_tokens, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (key) DO UPDATE SET model = excluded.model, answer = excluded.answer, \
                   sources = excluded.sources, prompt_tokens = excluded.prompt_tokens, \
                   completion_tokens = excluded.completion_tokens, created_at = excluded.created_at, \
                   expires_at = excluded.expires_at",
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
                    "INSERT INTO response_cache_documents (key, document_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Drops every cached answer that used the document.
    pub async fn invalidate_cache_for_document(
        &self,
        document_id: &str,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "DELETE FROM response_cache WHERE key IN \
             (SELECT key FROM response_cache_documents WHERE document_id = $1)",
        )
        .bind(document_id)
        .execute(db)
        .await?
        .rows_affected()))
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
