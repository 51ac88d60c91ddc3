//! One usage event per chat turn: stage latencies, tokens, outcome. Written to
//! the database (for the dashboard and exports), to the log as one JSON line,
//! and to the Prometheus metrics.

use crate::metrics::Metrics;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
}

/// Where turn events go.
#[derive(Clone)]
pub struct EventRecorder {
    store: Store,
    metrics: Arc<Metrics>,
}

impl EventRecorder {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records a turn everywhere; a failing database write is logged, not
    /// passed on (the answer itself is already stored).
    pub async fn record_turn(&self, event: &ChatTurnEvent) {
        self.metrics.observe_turn(event);
        tracing::info!(
            target: "chat_turn",
            model = %event.model,
            provider = %event.provider,
            variant = event.variant.as_deref(),
            user_id = %event.user_id,
            conversation_id = %event.conversation_id,
            message_id = %event.message_id,
            embed_ms = event.embed_ms,
            retrieve_ms = event.retrieve_ms,
            prompt_build_ms = event.prompt_build_ms,
            queue_ms = event.queue_ms,
            ttft_ms = event.ttft_ms,
            upstream_ttft_ms = event.upstream_ttft_ms,
            total_ms = event.total_ms,
            prompt_tokens = event.prompt_tokens,
            completion_tokens = event.completion_tokens,
            tokens_estimated = event.tokens_estimated,
            tokens_per_s = event.tokens_per_s,
            cache_hit = event.cache_hit,
            retries = event.retries,
            fallback_used = event.fallback_used,
            sources = event.sources,
            outcome = %event.outcome,
            error_class = event.error_class.as_deref(),
            "chat turn"
        );
        if let Err(e) = self.store.record_turn(event).await {
            tracing::error!(error = %e, message_id = %event.message_id, "recording a chat turn event");
        }
    }
}
