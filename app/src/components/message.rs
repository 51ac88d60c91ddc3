//! One message bubble: markdown, streaming caret, status and errors.

use crate::browser;
use crate::markdown::render_markdown;
use crate::wire::{MessageStatus, MessageView, Role};
use leptos::prelude::*;

/// Where an answer is in its life, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum UiStatus {
    /// Sent; nothing back yet.
    Thinking,
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
    /// For a failed answer: the question to ask again.
    pub retry: RwSignal<Option<String>>,
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
            retry: RwSignal::new(None),
        }
    }

    pub fn from_view(message: MessageView) -> Self {
        let status = match message.status {
            MessageStatus::Complete => UiStatus::Complete,
            MessageStatus::Stopped => UiStatus::Stopped,
            MessageStatus::Incomplete | MessageStatus::Streaming => UiStatus::Failed,
        };
        let meta = meta_line(
            message.model.as_deref(),
            message.completion_tokens,
            message.ttft_ms,
            message.total_ms,
        );
        let ui = Self::new(message.id, message.role, message.content, status);
        let error = match message.status {
            MessageStatus::Streaming => Some("This answer was interrupted.".to_string()),
            _ => message.error,
        };
        ui.error.set(error);
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

#[component]
pub fn MessageBubble(
    message: UiMessage,
    #[prop(into)] on_retry: Callback<String>,
) -> impl IntoView {
    let UiMessage {
        role,
        content,
        status,
        error,
        meta,
        retry,
        ..
    } = message;
    let is_user = role == Role::User;
    let streaming = move || matches!(status.get(), UiStatus::Streaming);
    let body = move || {
        if is_user {
            view! { <div class="user-text">{move || content.get()}</div> }.into_any()
        } else {
            view! {
                <div
                    class="markdown"
                    class:streaming=streaming
                    inner_html=move || render_markdown(&content.get())
                ></div>
            }
            .into_any()
        }
    };
    let status_line = move || {
        match status.get() {
        UiStatus::Thinking => Some(view! { <div class="status thinking" role="status"><span class="dots"></span>"Thinking…"</div> }.into_any()),
        UiStatus::Waiting { position } => Some(
            view! {
                <div class="status waiting" role="status">
                    <span class="dots"></span>
                    {format!("Waiting for the model: {position} chat(s) ahead of you…")}
                </div>
            }
            .into_any(),
        ),
        UiStatus::Stopped => Some(view! { <div class="status stopped">"Stopped."</div> }.into_any()),
        _ => None,
    }
    };

    view! {
        <article
            class="message"
            class:user=is_user
            class:assistant=!is_user
            class:failed=move || status.get() == UiStatus::Failed
            aria-label=if is_user { "Your message" } else { "Answer" }
        >
            <div class="bubble">
                {body}
                {status_line}
                {move || {
                    error
                        .get()
                        .map(|e| {
                            view! {
                                <div class="error-box" role="alert">
                                    <span>{e}</span>
                                    {move || {
                                        retry
                                            .get()
                                            .map(|text| {
                                                view! {
                                                    <button
                                                        class="retry"
                                                        on:click=move |_| on_retry.run(text.clone())
                                                    >
                                                        "Retry"
                                                    </button>
                                                }
                                            })
                                    }}
                                </div>
                            }
                        })
                }}
            </div>
            <Show when=move || !is_user && !matches!(status.get(), UiStatus::Thinking | UiStatus::Waiting { .. })>
                <div class="message-footer">
                    <button
                        class="icon-button"
                        aria-label="Copy answer"
                        title="Copy"
                        on:click=move |_| browser::copy_text(&content.get_untracked())
                    >
                        <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                            <rect x="9" y="9" width="12" height="12" rx="2"></rect>
                            <path d="M5 15V5a2 2 0 0 1 2-2h10"></path>
                        </svg>
                    </button>
                    <span class="meta">{move || meta.get().unwrap_or_default()}</span>
                </div>
            </Show>
        </article>
    }
}
