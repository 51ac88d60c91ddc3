//! One event per chat turn (latencies, tokens, outcome): stored, exported,
//! and read for the dashboard.

use super::{DbRow, Store, StoreError};
use serde::{Deserialize, Serialize};

/// What one chat turn cost and how it went. Milliseconds are wall-clock from
/// the request's arrival unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTurnEvent {
    pub id: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub user_id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub model: String,
    pub provider: String,
    pub variant: Option<String>,
    /// Rewriting a follow-up into a standalone search query.
    pub rewrite_ms: Option<f64>,
    /// How the query was written: `model` or `fallback` (none for first
    /// questions).
    pub rewrite_source: Option<String>,
    /// Query embedding (retrieval's first half).
    pub embed_ms: Option<f64>,
    /// Vector search and fusion.
    pub retrieve_ms: Option<f64>,
    pub prompt_build_ms: Option<f64>,
    /// Waiting for the embedded model while it served other chats.
    pub queue_ms: Option<f64>,
    /// Request arrival to the first token the app streamed.
    pub ttft_ms: Option<f64>,
    /// The model call to its first token: the upstream's own TTFT.
    pub upstream_ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// The provider reported no usage; tokens are estimated.
    pub tokens_estimated: bool,
    /// Completion tokens per second of generation (after the first token).
    pub tokens_per_s: Option<f64>,
    pub cache_hit: bool,
    pub retries: u32,
    pub fallback_used: bool,
    pub sources: u32,
    /// `stop`, `length`, `cancelled`, or an error class.
    pub outcome: String,
    pub error_class: Option<String>,
    /// Another version of an answer that existed (Regenerate): a sign the
    /// earlier one fell short.
    #[serde(default)]
    pub regenerated: bool,
    /// Documents were searched for it.
    #[serde(default)]
    pub searched: bool,
    /// The best passage's cosine similarity to the question.
    #[serde(default)]
    pub top_score: Option<f64>,
    /// Where the turn was asked: `browser` (the app's own pages and
    /// `/api/chat`) or `api` (the OpenAI-compatible `/v1`).
    #[serde(default = "browser")]
    pub source: String,
    /// The API key it was asked with (`/v1` turns), and that key's name
    /// when it was asked.
    #[serde(default)]
    pub api_key_id: Option<String>,
    #[serde(default)]
    pub api_key_name: Option<String>,
}

fn browser() -> String {
    "browser".to_owned()
}

/// One turn as the dashboard needs it.
#[derive(Debug, Clone)]
pub struct TurnRow {
    pub at: i64,
    pub user: String,
    pub model: String,
    pub variant: Option<String>,
    pub rewrite_ms: Option<f64>,
    pub embed_ms: Option<f64>,
    pub retrieve_ms: Option<f64>,
    pub prompt_build_ms: Option<f64>,
    pub queue_ms: Option<f64>,
    pub upstream_ttft_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_hit: bool,
    pub failed: bool,
    pub regenerated: bool,
    /// `browser` or `api` (see [`ChatTurnEvent::source`]).
    pub source: String,
    /// The API key it was asked with, and that key's name then.
    pub api_key_id: Option<String>,
    pub api_key: Option<String>,
}

/// The dashboard reads at most this many turns per request.
const MAX_TURNS: i64 = 500_000;

impl Store {
    pub async fn record_turn(&self, e: &ChatTurnEvent) -> Result<(), StoreError> {
        let _writer = self.chat_writer().await;
        on_db!(self, db => sqlx::query(
            "INSERT INTO chat_events (id, at, user_id, conversation_id, message_id, model, provider, variant, \
               embed_ms, retrieve_ms, prompt_build_ms, queue_ms, ttft_ms, upstream_ttft_ms, total_ms, \
               prompt_tokens, completion_tokens, tokens_estimated, tokens_per_s, cache_hit, retries, \
               fallback_used, sources, outcome, error_class, rewrite_ms, rewrite_source, regenerated, \
               searched, top_score, source, api_key_id, api_key_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
               $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33)",
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
        .bind(e.rewrite_ms)
        .bind(&e.rewrite_source)
        .bind(e.regenerated)
        .bind(e.searched)
        .bind(e.top_score)
        .bind(&e.source)
        .bind(&e.api_key_id)
        .bind(&e.api_key_name)
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
                rewrite_ms: r.opt_real("rewrite_ms")?,
                rewrite_source: r.opt_text("rewrite_source")?,
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
                regenerated: r.flag("regenerated")?,
                searched: r.flag("searched")?,
                top_score: r.opt_real("top_score")?,
                source: r.text("source")?,
                api_key_id: r.opt_text("api_key_id")?,
                api_key_name: r.opt_text("api_key_name")?,
            })
        })
        .collect())
    }

    pub async fn turns_between(&self, since: i64, until: i64) -> Result<Vec<TurnRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT e.at, COALESCE(u.username, 'guest ' || substr(e.user_id, 1, 8)) AS who, e.model, \
               e.variant, e.rewrite_ms, e.embed_ms, e.retrieve_ms, e.prompt_build_ms, e.queue_ms, \
               e.upstream_ttft_ms, e.ttft_ms, e.total_ms, e.prompt_tokens, e.completion_tokens, e.cache_hit, \
               e.regenerated, e.error_class IS NOT NULL AS failed, e.source, e.api_key_id, \
               e.api_key_name \
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
                rewrite_ms: r.opt_real("rewrite_ms")?,
                embed_ms: r.opt_real("embed_ms")?,
                retrieve_ms: r.opt_real("retrieve_ms")?,
                prompt_build_ms: r.opt_real("prompt_build_ms")?,
                queue_ms: r.opt_real("queue_ms")?,
                upstream_ttft_ms: r.opt_real("upstream_ttft_ms")?,
                ttft_ms: r.opt_real("ttft_ms")?,
                total_ms: r.real("total_ms")?,
                prompt_tokens: r.int("prompt_tokens")?.max(0) as u64,
                completion_tokens: r.int("completion_tokens")?.max(0) as u64,
                cache_hit: r.flag("cache_hit")?,
                failed: r.flag("failed")?,
                regenerated: r.flag("regenerated")?,
                source: r.text("source")?,
                api_key_id: r.opt_text("api_key_id")?,
                api_key: r.opt_text("api_key_name")?,
            })
        })
        .collect())
    }
}
