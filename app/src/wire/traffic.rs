//! The dashboard's traffic by source: the app's own pages (browser) and
//! each API key of the OpenAI-compatible `/v1`.

use serde::{Deserialize, Serialize};

/// Where chat turns were asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrafficSource {
    /// The app's own pages (and `/api/chat`).
    Browser,
    /// `/v1` with one API key. Key names are the owner's own and repeat
    /// across users, so the owner comes with them.
    ApiKey { name: String, owner: String },
}

impl TrafficSource {
    /// `Browser`, or `API · <key name>`.
    pub fn label(&self) -> String {
        match self {
            Self::Browser => "Browser".to_owned(),
            Self::ApiKey { name, .. } => format!("API · {name}"),
        }
    }
}

/// The turns of one source in the range and how they went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTraffic {
    pub source: TrafficSource,
    pub turns: u64,
    /// This source's share of all the range's turns (0–1).
    pub share: f64,
    /// Turns that ended in an error.
    pub errors: u64,
    /// Time to first token (ms).
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Estimated from the configured prices (USD).
    pub cost: f64,
    /// Votes in the range on this source's answers.
    pub up: u64,
    pub down: u64,
}
