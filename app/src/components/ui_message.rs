//! A message as the page shows it: signals, so a streaming answer updates
//! in place, made from the server's stored message or built as it streams.

use crate::wire::{MessageStatus, MessageView, Rating, Role, Source, Versions};
use leptos::prelude::*;

/// Where an answer is in its life, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum UiStatus {
    /// Sent; nothing back yet.
    Thinking,
    /// Passages found in the user's documents; the model is reading them.
    Reading {
        passages: usize,
    },
    /// Other chats are being answered first.
    Waiting {
        position: usize,
    },
    Streaming,
    Complete,
    Stopped,
    Failed,
}

/// A message the page shows; fields are signals so a streaming answer updates in place.
#[derive(Clone)]
pub struct UiMessage {
    pub key: String,
    pub role: Role,
    pub content: RwSignal<String>,
    pub status: RwSignal<UiStatus>,
    pub error: RwSignal<Option<String>>,
    pub meta: RwSignal<Option<String>>,
    /// A note from the server about this answer (e.g. a smaller model
    /// because the day's budget is spent).
    pub notice: RwSignal<Option<String>>,
    /// For a failed answer: the question to ask again.
    pub retry: RwSignal<Option<String>>,
    /// The passages the answer is grounded in.
    pub sources: RwSignal<Vec<Source>>,
    /// What a follow-up was searched as (its standalone rewrite).
    pub searched_for: RwSignal<Option<String>>,
    /// The server's id of the message, once known (votes need it).
    pub server_id: RwSignal<Option<String>>,
    /// The reader's vote on this answer.
    pub rating: RwSignal<Option<Rating>>,
    /// The other versions of a stored message.
    pub versions: Option<Versions>,
}

impl UiMessage {
    pub fn new(key: String, role: Role, content: String, status: UiStatus) -> Self {
        Self {
            key,
            role,
            content: RwSignal::new(content),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            meta: RwSignal::new(None),
            notice: RwSignal::new(None),
            retry: RwSignal::new(None),
            sources: RwSignal::new(Vec::new()),
            searched_for: RwSignal::new(None),
            server_id: RwSignal::new(None),
            rating: RwSignal::new(None),
            versions: None,
        }
    }

    pub fn from_view(message: MessageView) -> Self {
        let status = match message.status {
            MessageStatus::Complete => UiStatus::Complete,
            MessageStatus::Stopped => UiStatus::Stopped,
            // Still being written: followed live once the page runs.
            MessageStatus::Streaming => UiStatus::Streaming,
            MessageStatus::Incomplete => UiStatus::Failed,
        };
        let meta = meta_line(
            message.model.as_deref(),
            message.completion_tokens,
            message.ttft_ms,
            message.total_ms,
        );
        let mut ui = Self::new(message.id.clone(), message.role, message.content, status);
        ui.versions = message.versions;
        ui.server_id.set(Some(message.id));
        ui.rating.set(message.rating);
        ui.notice.set(message.notice);
        ui.sources.set(message.sources);
        ui.searched_for.set(message.searched_for);
        ui.error.set(message.error);
        ui.meta.set(meta);
        ui
    }
}

/// "model · 120 tokens · 0.31 s to first token · 2.4 s"
pub fn meta_line(
    model: Option<&str>,
    tokens: Option<u32>,
    ttft_ms: Option<u64>,
    total_ms: Option<u64>,
) -> Option<String> {
    let model = model?;
    let mut parts = vec![model.to_string()];
    if let Some(tokens) = tokens {
        parts.push(format!("{tokens} tokens"));
    }
    if let Some(ttft) = ttft_ms {
        parts.push(format!("{:.2} s to first token", ttft as f64 / 1000.0));
    }
    if let Some(total) = total_ms {
        parts.push(format!("{:.1} s", total as f64 / 1000.0));
        if let (Some(tokens), Some(ttft)) = (tokens, ttft_ms) {
            let gen_ms = total.saturating_sub(ttft);
            if tokens > 1 && gen_ms > 0 {
                parts.push(format!(
                    "{:.0} tok/s",
                    f64::from(tokens - 1) * 1000.0 / gen_ms as f64
                ));
            }
        }
    }
    Some(parts.join(" · "))
}
