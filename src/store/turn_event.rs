//! The record of one chat turn, as the turn-events table stores it.

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
