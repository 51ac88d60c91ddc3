//! Chat: the service (validates a message, stores the turn, streams the
//! answer from the model and records how it ended), and the stages of a
//! turn: [`rewrite`] a follow-up into a search query, [`retrieve`] the
//! user's passages, build the [`prompt`], reuse an answer from the response
//! [`cache`], and mark the [`citations`].

pub mod cache;
pub mod citations;
mod generation;
pub mod prompt;
pub mod retrieve;
pub mod rewrite;

pub use generation::Grounding;
use generation::{Generation, InFlight};

use self::cache::ResponseCache;
use crate::config::ChatSettings;
use crate::llm::roster::ModelRoster;
use crate::llm::ChatModel;
use crate::ops::events::EventRecorder;
use crate::ops::experiments::{overrides_for, Experiment, Overrides};
use crate::store::{Store, StoreError};
use app::error::AppError;
use app::ports::{Admission, ChatService, SendMessage, UserId};
use app::wire::{ChatEvent, ClientLimits, ConversationSummary, ConversationView};
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
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
    /// Answers being generated: message id → (owner, cancel).
    in_flight: InFlight,
}

/// How often this replica looks for accounts disabled (on any replica)
/// whose answers it is still generating.
const DISABLED_CHECK: std::time::Duration = std::time::Duration::from_millis(400);

/// Stops the answers of accounts disabled in the last minute, within
/// [`DISABLED_CHECK`] plus a query, whichever replica disabled them. Ends
/// when the chat service is dropped.
async fn stop_disabled_accounts(
    store: Store,
    in_flight: std::sync::Weak<Mutex<HashMap<String, (UserId, CancellationToken)>>>,
) {
    let mut every = tokio::time::interval(DISABLED_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(in_flight) = in_flight.upgrade() else {
            return;
        };
        let idle = in_flight.lock().map_or(true, |running| running.is_empty());
        if idle {
            continue;
        }
        let disabled = match store.disabled_since(crate::store::now_ms() - 60_000).await {
            Ok(disabled) if !disabled.is_empty() => disabled,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "looking for disabled accounts");
                continue;
            }
        };
        let running = in_flight.lock();
        if let Ok(running) = running {
            for (message_id, (owner, cancel)) in running.iter() {
                if disabled.contains(&owner.0) && !cancel.is_cancelled() {
                    tracing::info!(user_id = %owner.0, %message_id, "account disabled: stopping its answer");
                    cancel.cancel();
                }
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
        tokio::spawn(stop_disabled_accounts(
            store.clone(),
            Arc::downgrade(&in_flight),
        ));
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

/// The model a turn is answered by.
struct ModelChoice {
    model: Arc<dyn ChatModel>,
    /// `default` or the model's name under `[llm.models]`: two endpoints may
    /// report the same model name, and the cache must tell them apart.
    route: String,
    /// What the reader should know about the choice.
    notice: Option<String>,
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
        let title = self
            .store
            .owned_title(&user.0, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let messages = self.store.messages(id).await?;
        Ok(ConversationView {
            id: id.to_string(),
            title,
            messages,
        })
    }

    async fn delete_conversation(&self, user: &UserId, id: &str) -> Result<(), AppError> {
        if self.store.delete_conversation(&user.0, id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    async fn send(
        &self,
        user: &UserId,
        request: SendMessage,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        self.check(&request.text)?;
        let started = Instant::now();
        // Over-budget turns are outside the experiments: they would mix the
        // cheaper model into a variant's figures.
        let overrides = match request.admission {
            Admission::Full => overrides_for(&self.experiments, &user.0),
            Admission::OverBudget { .. } => Overrides::default(),
        };
        let ModelChoice {
            model,
            route,
            notice,
        } = self.pick_model(&request.admission, overrides.model.as_deref());
        let model_name = model.name().to_string();
        let turn = self
            .store
            .begin_turn(
                &user.0,
                request.conversation_id.as_deref(),
                &request.text,
                &model_name,
                &title_from(&request.text),
            )
            .await?
            .ok_or(AppError::NotFound)?;
        let cancel = CancellationToken::new();
        self.in_flight
            .lock()
            .map_err(|_| AppError::Internal)?
            .insert(
                turn.assistant_message_id.clone(),
                (user.clone(), cancel.clone()),
            );

        let (tx, mut rx) = mpsc::channel::<ChatEvent>(64);
        let _ = tx
            .send(ChatEvent::Start {
                conversation_id: turn.conversation_id.clone(),
                user_message_id: turn.user_message_id.clone(),
                message_id: turn.assistant_message_id.clone(),
                model: model_name.clone(),
                title: turn.title.clone(),
            })
            .await;
        if let Some(message) = notice.clone() {
            let _ = tx.send(ChatEvent::Notice { message }).await;
        }
        if let Err(e) = self
            .store
            .record_exposures(&user.0, &overrides.assignments)
            .await
        {
            tracing::warn!(error = %e, "recording experiment exposures");
        }
        let generation = Generation {
            store: self.store.clone(),
            model,
            grounding: self.grounding.clone(),
            recorder: self.recorder.clone(),
            cache: self.cache.clone(),
            owner: user.0.clone(),
            question: request.text,
            history: turn.history,
            system_prompt: overrides
                .system_prompt
                .clone()
                .unwrap_or_else(|| self.settings.system_prompt.clone()),
            history_chars: self.settings.history_chars,
            max_tokens: self.max_tokens,
            temperature: overrides.temperature.unwrap_or(self.temperature),
            top_k: overrides.top_k,
            variant: overrides.label(),
            message_id: turn.assistant_message_id,
            conversation_id: turn.conversation_id,
            model_name,
            model_route: route,
            notice,
            cancel,
            in_flight: self.in_flight.clone(),
            started,
        };
        // The answer is produced by its own task, so it is recorded even when
        // the browser goes away; a closed stream cancels generation.
        tokio::spawn(generation.run(tx));
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    async fn stop(&self, user: &UserId, message_id: &str) -> Result<(), AppError> {
        let in_flight = self.in_flight.lock().map_err(|_| AppError::Internal)?;
        match in_flight.get(message_id) {
            Some((owner, cancel)) if owner == user => {
                cancel.cancel();
                Ok(())
            }
            _ => Err(AppError::NotFound),
        }
    }

    fn check_message(&self, text: &str) -> Result<(), AppError> {
        self.check(text)
    }

    fn limits(&self) -> ClientLimits {
        ClientLimits {
            max_message_chars: self.settings.max_message_chars,
            max_upload_bytes: self.grounding.max_upload_bytes,
        }
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
