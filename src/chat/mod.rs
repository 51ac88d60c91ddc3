//! Chat: the service (validates a message, stores the turn, streams the
//! answer from the model and records how it ended), and the stages of a
//! turn: [`rewrite`] a follow-up into a search query, [`retrieve`] the
//! user's passages, build the [`prompt`], reuse an answer from the response
//! [`cache`], and mark the [`citations`]. The OpenAI-compatible API's turns
//! bring their own history (`completion`). Answers outlive their readers
//! ([`live`]); the conversation list's tools are in [`history`], with
//! Markdown [`export`].

pub mod cache;
pub mod citations;
mod completion;
pub mod export;
mod generation;
pub mod history;
pub mod live;
pub mod prompt;
pub mod retrieve;
pub mod rewrite;
mod stops;
mod tally;

pub use generation::Grounding;
use generation::{ApiExtras, Generation, InFlight, Running};
use live::{LiveAnswer, Reader};

use self::cache::ResponseCache;
use crate::config::ChatSettings;
use crate::llm::roster::ModelRoster;
use crate::llm::ChatModel;
use crate::ops::events::EventRecorder;
use crate::ops::experiments::{overrides_for, Experiment, Overrides};
use crate::store::{Store, StoreError, TurnBegun, TurnStart};
use app::error::AppError;
use app::ports::{Admission, ApiTurn, ChatService, SendMessage, TurnRequest, UserId};
use app::wire::{ChatEvent, ClientLimits, ConversationSummary, ConversationView};
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct ChatServiceImpl {
    store: Store,
    models: Arc<ModelRoster>,
    grounding: Arc<Grounding>,
    recorder: EventRecorder,
    cache: Option<ResponseCache>,
    experiments: Arc<Vec<Experiment>>,
    settings: ChatSettings,
    max_tokens: u32,
    temperature: f32,
    /// Answers being generated on this replica.
    in_flight: InFlight,
}

/// How often this replica looks for answers it generates that were
/// stopped on another replica, or whose account was disabled.
const STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Every this many stop checks (5 s), this replica says which answers it is
/// still generating (`messages.heartbeat_at`), so a crashed replica's are
/// told apart from live ones.
const HEARTBEAT_EVERY_TICKS: u64 = 20;

/// Stops this replica's answers that someone stopped on another replica,
/// those of accounts disabled in the last minute (on any replica) and those
/// asked with an API key that has since been revoked,
/// within [`STOP_CHECK`] plus a query, and keeps the heartbeat of the
/// answers it generates. Ends when the chat service is dropped.
async fn watch_stops(
    store: Store,
    in_flight: std::sync::Weak<std::sync::Mutex<std::collections::HashMap<String, Running>>>,
) {
    let mut every = tokio::time::interval(STOP_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        every.tick().await;
        let Some(in_flight) = in_flight.upgrade() else {
            return;
        };
        let (running, keys): (Vec<String>, Vec<String>) = in_flight
            .lock()
            .map(|running| {
                let mut keys: Vec<String> = running
                    .values()
                    .filter_map(|r| r.api_key_id.clone())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                (running.keys().cloned().collect(), keys)
            })
            .unwrap_or_default();
        if running.is_empty() {
            continue;
        }
        if tick % HEARTBEAT_EVERY_TICKS == 0 {
            if let Err(e) = store.heartbeat(&running).await {
                tracing::warn!(error = %e, "saying this replica's answers are alive");
            }
        }
        let stopped = match store.stop_requests().await {
            Ok(stopped) => stopped,
            Err(e) => {
                tracing::warn!(error = %e, "looking for stop requests");
                Vec::new()
            }
        };
        let disabled = match store.disabled_since(crate::store::now_ms() - 60_000).await {
            Ok(disabled) => disabled,
            Err(e) => {
                tracing::warn!(error = %e, "looking for disabled accounts");
                Vec::new()
            }
        };
        let revoked = match store.revoked_api_keys(&keys).await {
            Ok(revoked) => revoked,
            Err(e) => {
                tracing::warn!(error = %e, "looking for revoked API keys");
                Vec::new()
            }
        };
        if stopped.is_empty() && disabled.is_empty() && revoked.is_empty() {
            continue;
        }
        let Ok(running) = in_flight.lock() else {
            continue;
        };
        for (message_id, answer) in running.iter() {
            if answer.cancel.is_cancelled() {
                continue;
            }
            if stopped.contains(message_id) {
                tracing::info!(%message_id, "stopped from another replica");
                answer.cancel.cancel();
            } else if disabled.contains(&answer.owner.0) {
                tracing::info!(user_id = %answer.owner.0, %message_id, "account disabled: stopping its answer");
                answer.cancel.cancel();
            } else if answer
                .api_key_id
                .as_ref()
                .is_some_and(|key| revoked.contains(key))
            {
                tracing::info!(%message_id, "API key revoked: stopping its answer");
                answer.cancel.cancel();
            }
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        AppError::Internal
    }
}

/// How answers are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub max_tokens: u32,
    pub temperature: f32,
}

/// What a turn does besides asking the model: where its usage goes, the
/// response cache (if on), and the experiments users are assigned to.
#[derive(Clone)]
pub struct TurnBookkeeping {
    pub recorder: EventRecorder,
    pub cache: Option<ResponseCache>,
    pub experiments: Arc<Vec<Experiment>>,
}

impl ChatServiceImpl {
    pub fn new(
        store: Store,
        models: Arc<ModelRoster>,
        grounding: Arc<Grounding>,
        bookkeeping: TurnBookkeeping,
        settings: ChatSettings,
        sampling: Sampling,
    ) -> Self {
        let in_flight: InFlight = Arc::default();
        tokio::spawn(watch_stops(store.clone(), Arc::downgrade(&in_flight)));
        Self {
            store,
            models,
            grounding,
            recorder: bookkeeping.recorder,
            cache: bookkeeping.cache,
            experiments: bookkeeping.experiments,
            settings,
            max_tokens: sampling.max_tokens,
            temperature: sampling.temperature,
            in_flight,
        }
    }

    fn check(&self, text: &str) -> Result<(), AppError> {
        if text.trim().is_empty() {
            return Err(AppError::BadRequest("The message is empty.".into()));
        }
        let chars = text.chars().count();
        if chars > self.settings.max_message_chars {
            return Err(AppError::BadRequest(format!(
                "The message is too long: {chars} characters (the limit is {}).",
                self.settings.max_message_chars
            )));
        }
        Ok(())
    }

    /// The answer `message_id` if this replica is generating it.
    fn running(&self, message_id: &str) -> Result<Option<Running>, AppError> {
        let in_flight = self.in_flight.lock().map_err(|_| AppError::Internal)?;
        Ok(in_flight.get(message_id).cloned())
    }

    /// Stores the turn's rows, or says why it can't start.
    async fn begin_turn(
        &self,
        user: &UserId,
        turn: &TurnRequest,
        model_name: &str,
    ) -> Result<crate::store::NewTurn, AppError> {
        let (start, title) = match turn {
            TurnRequest::Ask {
                conversation_id,
                after,
                text,
                ..
            } => (
                TurnStart::Ask {
                    conversation_id: conversation_id.as_deref(),
                    after: after.as_deref(),
                    text,
                },
                title_from(text),
            ),
            TurnRequest::Regenerate { message_id } => (
                TurnStart::Regenerate {
                    answer_id: message_id,
                },
                String::new(),
            ),
            TurnRequest::Edit { message_id, text } => (
                TurnStart::Edit {
                    question_id: message_id,
                    text,
                },
                String::new(),
            ),
        };
        let cap = self.settings.max_generating_per_user.max(1);
        match self
            .store
            .begin_turn(&user.0, start, model_name, &title, cap)
            .await?
        {
            TurnBegun::Started(started) => {
                if let TurnRequest::Ask {
                    conversation_id: None,
                    scope: Some(scope),
                    ..
                } = turn
                {
                    self.store
                        .set_conversation_scope(&user.0, &started.conversation_id, Some(scope))
                        .await?;
                }
                Ok(started)
            }
            refused => Err(turn_refused(refused)),
        }
    }

    /// The model for this turn: a spent budget moves to the cheaper model
    /// (and the reader is told), else the user's experiment variant may name
    /// one, else the default. Names were checked at start-up.
    fn pick_model(&self, admission: &Admission, variant_model: Option<&str>) -> ModelChoice {
        let named = |name: &str| {
            self.models.get(name).map(|model| ModelChoice {
                model: model.clone(),
                route: name.to_owned(),
                notice: None,
            })
        };
        let default = || ModelChoice {
            model: self.models.default_model().clone(),
            route: "default".to_owned(),
            notice: None,
        };
        match admission {
            Admission::OverBudget { model } => {
                let mut choice = named(model).unwrap_or_else(default);
                choice.notice = Some(format!(
                    "You have used today's token budget, so this answer comes from a smaller model ({}). Answers from the usual model resume at 00:00 UTC.",
                    choice.model.name()
                ));
                choice
            }
            Admission::Full => variant_model.and_then(named).unwrap_or_else(default),
        }
    }
}

/// A turn whose rows are stored, ready to be answered.
struct Launch {
    turn: crate::store::NewTurn,
    choice: ModelChoice,
    overrides: Overrides,
    system_prompt: String,
    temperature: f32,
    max_tokens: u32,
    cache: Option<ResponseCache>,
    api: Option<ApiExtras>,
    started: Instant,
}

impl ChatServiceImpl {
    /// Starts answering a stored turn in its own task and returns its
    /// first reader.
    async fn launch(
        &self,
        user: &UserId,
        launch: Launch,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        let Launch {
            turn,
            choice,
            overrides,
            ..
        } = launch;
        // Nobody can come back to an API answer: it ends with its reader.
        let ends_with_reader = self.settings.cancel_on_disconnect || launch.api.is_some();
        let model_name = choice.model.name().to_string();
        let cancel = CancellationToken::new();
        let live = Arc::new(LiveAnswer::default());
        self.in_flight
            .lock()
            .map_err(|_| AppError::Internal)?
            .insert(
                turn.assistant_message_id.clone(),
                Running {
                    owner: user.clone(),
                    conversation_id: turn.conversation_id.clone(),
                    cancel: cancel.clone(),
                    live: live.clone(),
                    api_key_id: launch.api.as_ref().map(|api| api.key_id.clone()),
                },
            );
        // The asking reader reads like any other; it is subscribed before
        // anything is published, so it misses nothing.
        let reader = live.subscribe().ok_or(AppError::Internal)?;
        live.publish(ChatEvent::Start {
            conversation_id: turn.conversation_id.clone(),
            user_message_id: turn.user_message_id.clone(),
            message_id: turn.assistant_message_id.clone(),
            model: model_name.clone(),
            title: turn.title.clone(),
        });
        if let Some(message) = choice.notice.clone() {
            live.publish(ChatEvent::Notice { message });
        }
        let generation = Generation {
            store: self.store.clone(),
            model: choice.model,
            grounding: self.grounding.clone(),
            recorder: self.recorder.clone(),
            cache: launch.cache,
            owner: user.0.clone(),
            question: turn.question,
            history: turn.history,
            system_prompt: launch.system_prompt,
            history_chars: self.settings.history_chars,
            max_tokens: launch.max_tokens,
            temperature: launch.temperature,
            top_k: overrides.top_k,
            variant: overrides.label(),
            message_id: turn.assistant_message_id,
            conversation_id: turn.conversation_id,
            model_name,
            model_route: choice.route,
            notice: choice.notice,
            cancel: cancel.clone(),
            in_flight: self.in_flight.clone(),
            started: launch.started,
            regenerated: turn.regenerated,
            api: launch.api,
        };
        // The answer is produced by its own task: it keeps going when the
        // reader goes away (unless `cancel_on_disconnect`), until it ends
        // or someone presses Stop.
        tokio::spawn(generation.run(live));
        // After the answer's task is running: nothing between storing the
        // turn and starting it can be cut short.
        if !overrides.assignments.is_empty() {
            if let Err(e) = self
                .store
                .record_exposures(&user.0, &overrides.assignments)
                .await
            {
                tracing::warn!(error = %e, "recording experiment exposures");
            }
        }
        let cancel = ends_with_reader.then_some(cancel);
        Ok(Box::pin(Reader::new(reader, cancel)))
    }
}

/// The model a turn is answered by.
struct ModelChoice {
    model: Arc<dyn ChatModel>,
    /// `default` or the model's name under `[llm.models]`: two endpoints may
    /// report the same model name, and the cache must tell them apart.
    route: String,
    /// What the reader should know about the choice.
    notice: Option<String>,
}

/// Why a turn that didn't start was refused.
fn turn_refused(begun: TurnBegun) -> AppError {
    match begun {
        TurnBegun::Started(_) | TurnBegun::NotFound => AppError::NotFound,
        TurnBegun::Busy => AppError::Conflict(
            "An answer in this conversation is still being written; wait for it or stop it first."
                .into(),
        ),
        TurnBegun::TooMany(cap) => AppError::RateLimited {
            message: format!(
                "You already have {cap} answers being written; wait for one to finish or stop it."
            ),
            retry_after_ms: 2_000,
        },
    }
}

/// A conversation title from its first question: first line, at most ~60 characters.
pub fn title_from(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        if let Some(cut) = title.rfind(' ').filter(|&i| i > 30) {
            title.truncate(cut);
        }
        title.push('…');
    }
    if title.is_empty() {
        "New chat".into()
    } else {
        title
    }
}

#[async_trait::async_trait]
impl ChatService for ChatServiceImpl {
    async fn list_conversations(
        &self,
        user: &UserId,
    ) -> Result<Vec<ConversationSummary>, AppError> {
        Ok(self.store.list_conversations(&user.0).await?)
    }

    async fn conversation(&self, user: &UserId, id: &str) -> Result<ConversationView, AppError> {
        self.store
            .owned_conversation(&user.0, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    async fn delete_conversation(&self, user: &UserId, id: &str) -> Result<(), AppError> {
        if !self.store.delete_conversation(&user.0, id).await? {
            return Err(AppError::NotFound);
        }
        // Its answers being written here have nowhere to go any more.
        if let Ok(running) = self.in_flight.lock() {
            running
                .values()
                .filter(|r| r.owner == *user && r.conversation_id == id)
                .for_each(|r| r.cancel.cancel());
        }
        Ok(())
    }

    async fn send(
        &self,
        user: &UserId,
        request: SendMessage,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        if let Some(text) = request.turn.text() {
            self.check(text)?;
        }
        let started = Instant::now();
        // Over-budget turns are outside the experiments: they would mix the
        // cheaper model into a variant's figures.
        let overrides = match request.admission {
            Admission::Full => overrides_for(&self.experiments, &user.0),
            Admission::OverBudget { .. } => Overrides::default(),
        };
        let choice = self.pick_model(&request.admission, overrides.model.as_deref());
        let turn = self
            .begin_turn(user, &request.turn, choice.model.name())
            .await?;
        self.launch(
            user,
            Launch {
                turn,
                choice,
                system_prompt: overrides
                    .system_prompt
                    .clone()
                    .unwrap_or_else(|| self.settings.system_prompt.clone()),
                temperature: overrides.temperature.unwrap_or(self.temperature),
                max_tokens: self.max_tokens,
                cache: self.cache.clone(),
                overrides,
                api: None,
                started,
            },
        )
        .await
    }

    async fn follow(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        match self.running(message_id)? {
            Some(running) if running.owner == *user => {
                running
                    .live
                    .subscribe()
                    .ok_or_else(|| AppError::RateLimited {
                        message: "Too many readers are following this answer.".into(),
                        retry_after_ms: 5_000,
                    })
            }
            Some(_) => Err(AppError::NotFound),
            None => {
                let stored =
                    live::follow_stored(self.store.clone(), user.0.clone(), message_id.to_owned())
                        .await?;
                stored.map_err(|refused| match refused {
                    live::FollowRefused::NotFound => AppError::NotFound,
                    live::FollowRefused::Busy => AppError::RateLimited {
                        message: "Too many readers are following answers here; try again soon."
                            .into(),
                        retry_after_ms: 5_000,
                    },
                })
            }
        }
    }

    async fn stop(&self, user: &UserId, message_id: &str) -> Result<(), AppError> {
        match self.running(message_id)? {
            Some(running) if running.owner == *user => {
                running.cancel.cancel();
                Ok(())
            }
            Some(_) => Err(AppError::NotFound),
            // Generated on another replica (which sees the request within
            // a second), or not generating at all.
            None => match self.store.request_stop(&user.0, message_id).await? {
                true => Ok(()),
                false => Err(AppError::NotFound),
            },
        }
    }

    async fn switch_branch(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<ConversationView, AppError> {
        let conversation = self
            .store
            .switch_branch(&user.0, message_id)
            .await?
            .ok_or(AppError::NotFound)?;
        self.conversation(user, &conversation).await
    }

    async fn check_turn(&self, user: &UserId, turn: &TurnRequest) -> Result<(), AppError> {
        let (message_id, role) = match turn {
            TurnRequest::Ask { scope, .. } => {
                return match scope {
                    Some(scope) => self.grounding.access.check_readable(&user.0, scope).await,
                    None => Ok(()),
                }
            }
            TurnRequest::Regenerate { message_id } => (message_id, "assistant"),
            TurnRequest::Edit { message_id, .. } => (message_id, "user"),
        };
        match self.store.owns_message(&user.0, message_id, role).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    fn check_message(&self, text: &str) -> Result<(), AppError> {
        self.check(text)
    }

    async fn set_scope(
        &self,
        user: &UserId,
        conversation_id: &str,
        scope: Option<Vec<String>>,
    ) -> Result<(), AppError> {
        if self
            .store
            .owned_title(&user.0, conversation_id)
            .await?
            .is_none()
        {
            return Err(AppError::NotFound);
        }
        if let Some(scope) = &scope {
            self.grounding.access.check_readable(&user.0, scope).await?;
        }
        self.store
            .set_conversation_scope(&user.0, conversation_id, scope.as_deref())
            .await?;
        Ok(())
    }

    fn limits(&self) -> ClientLimits {
        ClientLimits {
            max_message_chars: self.settings.max_message_chars,
            max_upload_bytes: self.grounding.max_upload_bytes,
        }
    }

    fn api_models(&self) -> Vec<String> {
        self.models.ids()
    }

    async fn complete(
        &self,
        user: &UserId,
        turn: ApiTurn,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        self.complete_api(user, turn).await
    }
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(
            title_from("  How do I bake bread?\nMore details"),
            "How do I bake bread?"
        );
        assert_eq!(title_from("   \n"), "New chat");
        let long = "word ".repeat(30);
        let title = title_from(&long);
        assert!(title.ends_with('…'));
        assert!(title.chars().count() <= 61);
    }
}
