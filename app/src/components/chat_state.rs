//! The client side of the streaming chat: the conversation shown, sending a
//! message, reading the answer's events as they stream, and Stop.

use super::message::{meta_line, UiMessage, UiStatus};
use crate::api::{send_message, stop_generation};
use crate::browser;
use crate::error::AppError;
use crate::ndjson::LineDecoder;
use crate::wire::{ChatEvent, FinishReason, Role};
use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// State shared by the sidebar and the chat.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// The conversation the next message goes to (`None`: a new one).
    pub active_id: RwSignal<Option<String>>,
    /// Turns sent from this page since the conversation was opened.
    pub live: RwSignal<Vec<UiMessage>>,
    /// Bumped whenever the conversation list may have changed.
    pub list_version: RwSignal<u32>,
    /// A generation is in flight.
    pub busy: RwSignal<bool>,
    /// The answer being generated, once the server has named it.
    pub streaming_id: RwSignal<Option<String>>,
    pub stop_requested: RwSignal<bool>,
    /// Rate-limited: no sending before this time (ms since the epoch).
    pub retry_at: RwSignal<Option<f64>>,
    /// The current time while counting down to `retry_at`.
    clock: RwSignal<f64>,
    next_key: RwSignal<u64>,
}

impl ChatState {
    pub fn new() -> Self {
        Self {
            active_id: RwSignal::new(None),
            live: RwSignal::new(Vec::new()),
            list_version: RwSignal::new(0),
            busy: RwSignal::new(false),
            streaming_id: RwSignal::new(None),
            stop_requested: RwSignal::new(false),
            retry_at: RwSignal::new(None),
            clock: RwSignal::new(0.0),
            next_key: RwSignal::new(0),
        }
    }

    fn key(&self) -> String {
        let n = self.next_key.get_untracked();
        self.next_key.set(n + 1);
        format!("live-{n}")
    }

    pub fn refresh_list(&self) {
        self.list_version.update(|v| *v += 1);
    }

    /// Starts a new, empty conversation.
    pub fn reset(&self) {
        self.active_id.set(None);
        self.live.set(Vec::new());
        // The address may name a conversation the router never navigated to.
        browser::replace_url("/");
    }

    /// Whole seconds until sending is allowed again, while rate-limited.
    pub fn wait_secs(&self) -> Option<u64> {
        let until = self.retry_at.get()?;
        Some(((until - self.clock.get()) / 1000.0).ceil().max(1.0) as u64)
    }

    /// Holds sending back until `until`, counting down, then re-enables it.
    fn hold_until(self, until: f64) {
        self.retry_at.set(Some(until));
        self.clock.set(browser::now_ms());
        let tick = move || {
            let now = browser::now_ms();
            self.clock.set(now);
            let done = self
                .retry_at
                .get_untracked()
                .is_none_or(|until| now >= until);
            if done {
                self.retry_at.set(None);
            }
            done
        };
        fn every_quarter_second(tick: impl Fn() -> bool + 'static) {
            set_timeout(
                move || {
                    if !tick() {
                        every_quarter_second(tick);
                    }
                },
                std::time::Duration::from_millis(250),
            );
        }
        every_quarter_second(tick);
    }

    /// Sends `text` and streams the answer into the page.
    pub fn send(self, text: String) {
        if self.busy.get_untracked() || self.retry_at.get_untracked().is_some() {
            return;
        }
        let user_message = UiMessage::new(self.key(), Role::User, text.clone(), UiStatus::Complete);
        let answer = UiMessage::new(
            self.key(),
            Role::Assistant,
            String::new(),
            UiStatus::Thinking,
        );
        self.live.update(|turns| {
            turns.push(user_message);
            turns.push(answer.clone());
        });
        self.busy.set(true);
        self.stop_requested.set(false);
        self.streaming_id.set(None);
        spawn_local(async move {
            self.stream_answer(text, &answer).await;
            self.busy.set(false);
            self.streaming_id.set(None);
            self.refresh_list();
        });
    }

    async fn stream_answer(self, text: String, answer: &UiMessage) {
        let fail = |message: String| {
            answer.status.set(UiStatus::Failed);
            answer.error.set(Some(message));
            answer.retry.set(Some(text.clone()));
        };
        let stream = match send_message(self.active_id.get_untracked(), text.clone()).await {
            Ok(stream) => stream.into_inner(),
            Err(AppError::BadRequest(message)) => {
                answer.status.set(UiStatus::Failed);
                answer.error.set(Some(message));
                return;
            }
            Err(AppError::RateLimited {
                message,
                retry_after_ms,
            }) => {
                fail(message);
                self.hold_until(browser::now_ms() + retry_after_ms as f64);
                return;
            }
            Err(e) => return fail(e.to_string()),
        };
        futures::pin_mut!(stream);
        let mut decoder = LineDecoder::new();
        let mut finished = false;
        while let Some(chunk) = stream.next().await {
            let bytes = match chunk {
                Ok(bytes) => bytes,
                Err(e) => {
                    fail(format!("The answer stream broke: {e}"));
                    return;
                }
            };
            for event in decoder.push::<ChatEvent>(&bytes) {
                match event {
                    Ok(event) => finished |= self.apply(event, answer, &fail),
                    Err(e) => {
                        fail(format!("Could not read the server's answer: {e}"));
                        return;
                    }
                }
            }
            if finished {
                return;
            }
        }
        if self.stop_requested.get_untracked() {
            answer.status.set(UiStatus::Stopped);
        } else {
            fail("The connection closed before the answer was complete.".into());
        }
    }

    /// Applies one stream event; true when the answer is finished.
    fn apply(&self, event: ChatEvent, answer: &UiMessage, fail: &impl Fn(String)) -> bool {
        match event {
            ChatEvent::Start {
                conversation_id,
                message_id,
                model,
                ..
            } => {
                if self.active_id.get_untracked().as_deref() != Some(conversation_id.as_str()) {
                    browser::replace_url(&format!("/c/{conversation_id}"));
                    self.active_id.set(Some(conversation_id));
                    self.refresh_list();
                }
                answer.meta.set(Some(model));
                answer.server_id.set(Some(message_id.clone()));
                if self.stop_requested.get_untracked() {
                    spawn_local(request_stop(message_id.clone()));
                }
                self.streaming_id.set(Some(message_id));
                false
            }
            ChatEvent::Notice { message } => {
                answer.notice.set(Some(message));
                false
            }
            ChatEvent::Queued { position } => {
                answer.status.set(UiStatus::Waiting { position });
                false
            }
            ChatEvent::Sources {
                sources,
                searched_for,
            } => {
                answer.status.set(UiStatus::Reading {
                    passages: sources.len(),
                });
                answer.sources.set(sources);
                answer.searched_for.set(searched_for);
                false
            }
            ChatEvent::Citations { sources } => {
                answer.sources.set(sources);
                false
            }
            ChatEvent::Model {
                model,
                fallback,
                cached,
                ..
            } => {
                answer.meta.set(Some(if cached {
                    format!("{model} (cached)")
                } else if fallback {
                    format!("{model} (fallback)")
                } else {
                    model
                }));
                false
            }
            ChatEvent::Token { text } => {
                answer.status.set(UiStatus::Streaming);
                answer.content.update(|c| c.push_str(&text));
                false
            }
            ChatEvent::Done {
                usage,
                ttft_ms,
                total_ms,
                finish_reason,
            } => {
                let model = answer.meta.get_untracked();
                answer.meta.set(meta_line(
                    model.as_deref(),
                    Some(usage.completion_tokens),
                    Some(ttft_ms),
                    Some(total_ms),
                ));
                answer.status.set(match finish_reason {
                    FinishReason::Cancelled => UiStatus::Stopped,
                    FinishReason::Stop | FinishReason::Length => UiStatus::Complete,
                });
                true
            }
            ChatEvent::Error { message } => {
                fail(message);
                true
            }
        }
    }

    /// Asks the server to stop the answer being generated.
    pub fn stop(&self) {
        self.stop_requested.set(true);
        if let Some(id) = self.streaming_id.get_untracked() {
            spawn_local(request_stop(id));
        }
    }
}

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}

async fn request_stop(message_id: String) {
    if let Err(e) = stop_generation(message_id).await {
        leptos::logging::warn!("stop failed: {e}");
    }
}
