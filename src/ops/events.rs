//! One usage event per chat turn: stage latencies, tokens, outcome. Written to
//! the database (for the dashboard and exports), to the log as one JSON line,
//! and to the Prometheus metrics.

use crate::ops::metrics::Metrics;
pub use crate::store::ChatTurnEvent;
use crate::store::Store;
use std::sync::Arc;

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
            rewrite_ms = event.rewrite_ms,
            rewrite_source = event.rewrite_source.as_deref(),
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
