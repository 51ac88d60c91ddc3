//! The client side of the streaming chat: the conversation shown, sending a
//! message, regenerating an answer, editing a question, following an answer
//! that is still being written (after a reload, or from another tab),
//! reading the answer's events as they stream, and Stop.

use super::ui_message::{meta_line, UiMessage, UiStatus};
use crate::api::{
    edit_message, follow_answer, get_conversation, regenerate, send_message, stop_generation,
    switch_branch,
};
use crate::browser;
use crate::error::AppError;
use crate::ndjson::LineDecoder;
use crate::wire::{ChatEvent, ConversationView, FinishReason, MessageView, Role};
use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use server_fn::codec::ByteStream;

/// State shared by the sidebar and the chat.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// The conversation the next message goes to (`None`: a new one).
    pub active_id: RwSignal<Option<String>>,
    /// Turns sent from this page since the conversation was last loaded.
    pub live: RwSignal<Vec<UiMessage>>,
    /// The conversation as last loaded after a change on this page
    /// (instead of the route's first load).
    pub reloaded: RwSignal<Option<ConversationView>>,
    /// While a regenerated answer or an edited question streams: the stored
    /// message from which on the branch shown is replaced by `live`.
    pub cut_at: RwSignal<Option<String>>,
    /// The last stored message shown: where this tab's next question goes.
    pub tail: StoredValue<Option<String>>,
    /// Bumped whenever the page opens another conversation: a reader of the
    /// one before stops reading (its answer goes on on the server).
    epoch: StoredValue<u64>,
    /// Where live messages' signals belong: not to the button that started
    /// them (a stored message's, which goes when the branch shown changes).
    scope: StoredValue<Option<Owner>>,
    /// The collections the conversation searches (`None`: every one the
    /// user may read): chosen in the composer, sent with a new
    /// conversation's first message and stored with it.
    pub search_scope: RwSignal<Option<Vec<String>>>,
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
            reloaded: RwSignal::new(None),
            cut_at: RwSignal::new(None),
            tail: StoredValue::new(None),
            epoch: StoredValue::new(0),
            scope: StoredValue::new(Owner::current().map(|owner| owner.child())),
            search_scope: RwSignal::new(None),
            list_version: RwSignal::new(0),
            busy: RwSignal::new(false),
            streaming_id: RwSignal::new(None),
            stop_requested: RwSignal::new(false),
            retry_at: RwSignal::new(None),
            clock: RwSignal::new(0.0),
            next_key: RwSignal::new(0),
        }
    }

    /// A live message, owned by the chat rather than by whatever created it.
    fn live_message(&self, role: Role, content: String, status: UiStatus) -> UiMessage {
        let key = self.key();
        let make = move || UiMessage::new(key, role, content, status);
        match self.scope.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
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

    /// Shows conversation `id` (`None`: a new one) from its stored state:
    /// whatever this page was reading stops.
    pub fn open(&self, id: Option<String>) {
        self.epoch.update_value(|e| *e += 1);
        self.live.set(Vec::new());
        self.reloaded.set(None);
        self.cut_at.set(None);
        self.tail.set_value(None);
        self.busy.set(false);
        self.streaming_id.set(None);
        self.stop_requested.set(false);
        // A conversation's own scope comes with it when it loads.
        self.search_scope.set(None);
        self.active_id.set(id);
    }

    /// Starts a new, empty conversation.
    pub fn reset(&self) {
        self.open(None);
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

    /// Whether a new turn may start now.
    fn can_start(&self) -> bool {
        !self.busy.get_untracked() && self.retry_at.get_untracked().is_none()
    }

    /// Sends `text` and streams the answer into the page.
    pub fn send(self, text: String) {
        if !self.can_start() {
            return;
        }
        let user_message = self.live_message(Role::User, text.clone(), UiStatus::Complete);
        let answer = self.thinking();
        self.live.update(|turns| {
            turns.push(user_message);
            turns.push(answer.clone());
        });
        let conversation = self.active_id.get_untracked();
        // After the last message this tab shows (its own earlier turns
        // included): another tab may have switched the branch since.
        let after = self
            .live
            .with_untracked(|live| live.iter().rev().find_map(|m| m.server_id.get_untracked()))
            .or_else(|| self.tail.get_value())
            .filter(|_| conversation.is_some());
        let retry = text.clone();
        // A new conversation takes the scope chosen; an existing one has it.
        let scope = self
            .search_scope
            .get_untracked()
            .filter(|_| conversation.is_none());
        self.run(answer, Some(retry), async move {
            send_message(conversation, text, after, scope).await
        });
    }

    /// Streams another version of the stored answer `message_id` in its place.
    pub fn regenerate(self, message_id: String) {
        if !self.can_start() {
            return;
        }
        let answer = self.thinking();
        self.cut_at.set(Some(message_id.clone()));
        self.live.set(vec![answer.clone()]);
        self.run(answer, None, async move { regenerate(message_id).await });
    }

    /// Sends `text` as a new version of the stored question `message_id`:
    /// the branch from there is replaced by the new question and its answer.
    pub fn edit(self, message_id: String, text: String) {
        if !self.can_start() {
            return;
        }
        let question = self.live_message(Role::User, text.clone(), UiStatus::Complete);
        let answer = self.thinking();
        self.cut_at.set(Some(message_id.clone()));
        self.live.set(vec![question, answer.clone()]);
        self.run(
            answer,
            None,
            async move { edit_message(message_id, text).await },
        );
    }

    /// Follows a stored answer that is still being written: it continues
    /// live in its place, from what it has so far.
    pub fn follow(self, stored: &MessageView) {
        let answer = self.live_message(Role::Assistant, String::new(), UiStatus::Streaming);
        answer.server_id.set(Some(stored.id.clone()));
        answer.meta.set(stored.model.clone());
        self.cut_at.set(Some(stored.id.clone()));
        self.live.set(vec![answer.clone()]);
        self.streaming_id.set(Some(stored.id.clone()));
        let id = stored.id.clone();
        self.run(answer, None, async move { follow_answer(id).await });
    }

    /// Shows another version of a message (and the branch after it).
    pub fn switch_to(self, message_id: String) {
        if self.busy.get_untracked() {
            return;
        }
        let epoch = self.epoch.get_value();
        spawn_local(async move {
            match switch_branch(message_id).await {
                Ok(view) if self.epoch.get_value() == epoch => self.show(view),
                Ok(_) => {}
                Err(e) => leptos::logging::warn!("switching versions failed: {e}"),
            }
        });
    }

    /// Shows `view` in place of what the page showed.
    fn show(&self, view: ConversationView) {
        self.search_scope.set(view.scope.clone());
        self.reloaded.set(Some(view));
        self.live.set(Vec::new());
        self.cut_at.set(None);
    }

    /// Loads the conversation again, as stored: after an answer ends, so
    /// every message has its versions and actions.
    async fn reload(&self) {
        let Some(id) = self.active_id.get_untracked() else {
            return;
        };
        let epoch = self.epoch.get_value();
        match get_conversation(id).await {
            Ok(view) if self.epoch.get_value() == epoch => self.show(view),
            Ok(_) => {}
            Err(e) => leptos::logging::warn!("reloading the conversation failed: {e}"),
        }
    }

    fn thinking(&self) -> UiMessage {
        self.live_message(Role::Assistant, String::new(), UiStatus::Thinking)
    }

    /// Starts `request` and streams its answer into `answer`; a finished
    /// answer is then shown as stored. `retry`: the question to offer again
    /// if it fails.
    fn run(
        self,
        answer: UiMessage,
        retry: Option<String>,
        request: impl std::future::Future<Output = Result<ByteStream<AppError>, AppError>> + 'static,
    ) {
        self.busy.set(true);
        self.stop_requested.set(false);
        if answer.server_id.get_untracked().is_none() {
            self.streaming_id.set(None);
        }
        let epoch = self.epoch.get_value();
        spawn_local(async move {
            let finished = self.stream_answer(request, retry, &answer, epoch).await;
            if self.epoch.get_value() != epoch {
                // The page opened another conversation meanwhile.
                return;
            }
            self.busy.set(false);
            self.streaming_id.set(None);
            self.refresh_list();
            if finished {
                self.reload().await;
            }
        });
    }

    /// Reads the answer's events into `answer`; true when it ended well
    /// (complete or stopped), false when it failed (and says so in place).
    async fn stream_answer(
        self,
        request: impl std::future::Future<Output = Result<ByteStream<AppError>, AppError>>,
        retry: Option<String>,
        answer: &UiMessage,
        epoch: u64,
    ) -> bool {
        let fail = |message: String| {
            answer.status.set(UiStatus::Failed);
            answer.error.set(Some(message));
            answer.retry.set(retry.clone());
        };
        let refused = |message: String| {
            // Nothing was started: show the branch as it was, with why.
            self.cut_at.set(None);
            answer.status.set(UiStatus::Failed);
            answer.error.set(Some(message));
        };
        let stream = match request.await {
            Ok(stream) => stream.into_inner(),
            Err(AppError::BadRequest(message) | AppError::Conflict(message)) => {
                refused(message);
                return false;
            }
            Err(AppError::RateLimited {
                message,
                retry_after_ms,
            }) => {
                self.cut_at.set(None);
                fail(message);
                self.hold_until(browser::now_ms() + retry_after_ms as f64);
                return false;
            }
            Err(e) => {
                self.cut_at.set(None);
                fail(e.to_string());
                return false;
            }
        };
        futures::pin_mut!(stream);
        let mut decoder = LineDecoder::new();
        while let Some(chunk) = stream.next().await {
            if self.epoch.get_value() != epoch {
                // Another conversation is shown: stop reading this answer
                // (it goes on on the server, for a later reader).
                return false;
            }
            let bytes = match chunk {
                Ok(bytes) => bytes,
                Err(e) => {
                    fail(format!("The answer stream broke: {e}"));
                    return false;
                }
            };
            for event in decoder.push::<ChatEvent>(&bytes) {
                match event {
                    Ok(event) => {
                        if let Some(ended_well) = self.apply(event, answer, &fail) {
                            return ended_well;
                        }
                    }
                    Err(e) => {
                        fail(format!("Could not read the server's answer: {e}"));
                        return false;
                    }
                }
            }
        }
        if self.stop_requested.get_untracked() {
            answer.status.set(UiStatus::Stopped);
            true
        } else {
            fail("The connection closed before the answer was complete.".into());
            false
        }
    }

    /// Applies one stream event; `Some` when the answer is finished (true:
    /// it ended well).
    fn apply(&self, event: ChatEvent, answer: &UiMessage, fail: &impl Fn(String)) -> Option<bool> {
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
                None
            }
            ChatEvent::Notice { message } => {
                answer.notice.set(Some(message));
                None
            }
            ChatEvent::Queued { position } => {
                answer.status.set(UiStatus::Waiting { position });
                None
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
                None
            }
            ChatEvent::Citations { sources } => {
                answer.sources.set(sources);
                None
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
                None
            }
            ChatEvent::Token { text } => {
                answer.status.set(UiStatus::Streaming);
                answer.content.update(|c| c.push_str(&text));
                None
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
                Some(true)
            }
            ChatEvent::Error { message } => {
                fail(message);
                Some(false)
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
