//! Chat: the service (validates a message, stores the turn, streams the
//! answer from the model and records how it ended), and the stages of a
//! turn: [`retrieve`] the user's passages, build the [`prompt`], reuse an
//! answer from the response [`cache`], and mark the [`citations`].

pub mod cache;
pub mod citations;
pub mod prompt;
pub mod retrieve;

use self::cache::{cache_key, CacheKeyParts, ResponseCache};
use self::prompt::{build_prompt, fit_sources, TEMPLATE_VERSION};
use self::retrieve::{sources_from, Retriever};
use crate::config::ChatSettings;
use crate::events::{ChatTurnEvent, EventRecorder};
use crate::experiments::{overrides_for, Experiment, Overrides};
use crate::ingest::chunk::TokenSpans;
use crate::llm::roster::ModelRoster;
use crate::llm::{ChatModel, CompletionRequest, LlmError, LlmEvent};
use crate::store::{AnswerRecord, CachedAnswer, HistoryMessage, Store, StoreError};
use app::error::AppError;
use app::ports::{Admission, ChatService, SendMessage, UserId};
use app::wire::{
    ChatEvent, ClientLimits, ConversationSummary, ConversationView, FinishReason, MessageStatus,
    Source, Usage,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What grounding answers in the user's documents needs.
pub struct Grounding {
    pub retriever: Retriever,
    /// Counts tokens of source text against the context budget.
    pub tokens: Arc<dyn TokenSpans>,
    pub context_tokens: usize,
    pub max_upload_bytes: u64,
}

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

type InFlight = Arc<Mutex<HashMap<String, (UserId, CancellationToken)>>>;

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

/// Where each turn's usage goes, the response cache (if on), and the
/// experiments users are assigned to.
#[derive(Clone)]
pub struct Operations {
    pub recorder: EventRecorder,
    pub cache: Option<ResponseCache>,
    pub experiments: Arc<Vec<Experiment>>,
}

impl ChatServiceImpl {
    pub fn new(
        store: Store,
        models: Arc<ModelRoster>,
        grounding: Arc<Grounding>,
        operations: Operations,
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
            recorder: operations.recorder,
            cache: operations.cache,
            experiments: operations.experiments,
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
                || title_from(&request.text),
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

struct Generation {
    store: Store,
    model: Arc<dyn ChatModel>,
    grounding: Arc<Grounding>,
    recorder: EventRecorder,
    cache: Option<ResponseCache>,
    owner: String,
    question: String,
    history: Vec<HistoryMessage>,
    system_prompt: String,
    history_chars: usize,
    max_tokens: u32,
    temperature: f32,
    /// An experiment's number of passages, instead of the configured one.
    top_k: Option<usize>,
    /// The user's experiment variants (`exp:variant`, comma-joined).
    variant: Option<String>,
    message_id: String,
    conversation_id: String,
    model_name: String,
    /// Which configured model (`default` or a name under `[llm.models]`).
    model_route: String,
    /// Told to the reader before the answer, and kept with it.
    notice: Option<String>,
    cancel: CancellationToken,
    in_flight: Arc<Mutex<HashMap<String, (UserId, CancellationToken)>>>,
    started: Instant,
}

/// How a generation ended.
enum Outcome {
    Finished(FinishReason),
    Failed(LlmError),
}

/// Timings of the retrieval stages, for the turn's log line.
#[derive(Default)]
struct RetrievalTimings {
    embed_ms: Option<f64>,
    search_ms: Option<f64>,
}

impl Generation {
    /// The user's passages for this question (none without indexed documents).
    /// Retrieval trouble is logged and the question answered without sources:
    /// a chat that still works beats one that fails.
    async fn sources(&self, timings: &mut RetrievalTimings) -> Vec<Source> {
        match self.store.has_indexed_documents(&self.owner).await {
            Ok(true) => {}
            Ok(false) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "checking for documents");
                return Vec::new();
            }
        }
        match self
            .grounding
            .retriever
            .retrieve_top(
                &self.owner,
                &self.question,
                self.top_k.unwrap_or(self.grounding.retriever.top_k()),
            )
            .await
        {
            Ok(retrieved) => {
                timings.embed_ms = Some(retrieved.embed_ms);
                timings.search_ms = Some(retrieved.search_ms);
                fit_sources(
                    sources_from(retrieved.hits),
                    self.grounding.tokens.as_ref(),
                    self.grounding.context_tokens,
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "retrieval failed; answering without sources");
                Vec::new()
            }
        }
    }

    /// The cache key of this request, or `None` if the document versions
    /// can't be read (then the cache is skipped).
    async fn cache_key(&self, request: &CompletionRequest, sources: &[Source]) -> Option<String> {
        let ids: Vec<String> = sources.iter().map(|s| s.document_id.clone()).collect();
        let versions = match self.store.document_versions(&ids).await {
            Ok(versions) => versions,
            Err(e) => {
                tracing::warn!(error = %e, "reading document versions for the cache");
                return None;
            }
        };
        // Everything before the final user message: system prompt and history.
        let earlier = &request.messages[..request.messages.len().saturating_sub(1)];
        let history: Vec<(&str, &str)> = earlier
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        let model = format!("{}/{}", self.model_route, self.model_name);
        Some(cache_key(&CacheKeyParts {
            model: &model,
            template_version: TEMPLATE_VERSION,
            question: &self.question,
            history: &history,
            sources,
            document_versions: &versions,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        }))
    }

    /// This turn's event with who and what filled in and nothing measured.
    fn turn_event(&self, model: String) -> ChatTurnEvent {
        ChatTurnEvent {
            id: uuid::Uuid::new_v4().to_string(),
            at: crate::store::now_ms(),
            user_id: self.owner.clone(),
            conversation_id: self.conversation_id.clone(),
            message_id: self.message_id.clone(),
            model,
            provider: String::new(),
            variant: self.variant.clone(),
            embed_ms: None,
            retrieve_ms: None,
            prompt_build_ms: None,
            queue_ms: None,
            ttft_ms: None,
            upstream_ttft_ms: None,
            total_ms: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            tokens_estimated: false,
            tokens_per_s: None,
            cache_hit: false,
            retries: 0,
            fallback_used: false,
            sources: 0,
            outcome: String::new(),
            error_class: None,
        }
    }

    /// Stores the answer, releases its Stop handle and records the turn:
    /// the end of every turn, from the model or from the cache.
    async fn finish(&self, record: &AnswerRecord, turn: &ChatTurnEvent) {
        if let Err(e) = self.store.finish_answer(&self.message_id, record).await {
            tracing::error!(error = %e, message_id = %self.message_id, "recording the answer failed");
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&self.message_id);
        }
        self.recorder.record_turn(turn).await;
    }

    /// Answers from the cache at once: the whole text in one piece. Costs no
    /// model tokens, so none are counted against budgets.
    async fn serve_cached(
        self,
        hit: CachedAnswer,
        tx: &mpsc::Sender<ChatEvent>,
        timings: RetrievalTimings,
        prompt_build_ms: f64,
    ) {
        let _ = tx
            .send(ChatEvent::Model {
                model: hit.model.clone(),
                retries: 0,
                fallback: false,
                cached: true,
            })
            .await;
        let _ = tx
            .send(ChatEvent::Token {
                text: hit.answer.clone(),
            })
            .await;
        let ttft_ms = elapsed_ms(self.started);
        if !hit.sources.is_empty() {
            let _ = tx
                .send(ChatEvent::Citations {
                    sources: hit.sources.clone(),
                })
                .await;
        }
        let total_ms = elapsed_ms(self.started);
        let record = AnswerRecord {
            model: hit.model.clone(),
            sources: hit.sources.clone(),
            content: hit.answer,
            status: MessageStatus::Complete,
            error: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            ttft_ms: Some(ttft_ms),
            total_ms,
            notice: self.notice.clone(),
        };
        let turn = ChatTurnEvent {
            provider: "cache".to_owned(),
            embed_ms: timings.embed_ms,
            retrieve_ms: timings.search_ms,
            prompt_build_ms: Some(prompt_build_ms),
            ttft_ms: Some(ttft_ms as f64),
            total_ms: total_ms as f64,
            cache_hit: true,
            sources: u32::try_from(record.sources.len()).unwrap_or(u32::MAX),
            outcome: "stop".to_owned(),
            ..self.turn_event(hit.model)
        };
        self.finish(&record, &turn).await;
        let _ = tx
            .send(ChatEvent::Done {
                usage: Usage {
                    prompt_tokens: 0,
                    completion_tokens: 0,
                },
                ttft_ms,
                total_ms,
                finish_reason: FinishReason::Stop,
            })
            .await;
    }

    async fn run(self, tx: mpsc::Sender<ChatEvent>) {
        let mut timings = RetrievalTimings::default();
        let mut sources = self.sources(&mut timings).await;
        if !sources.is_empty() {
            let _ = tx
                .send(ChatEvent::Sources {
                    sources: sources.clone(),
                })
                .await;
        }
        let prompt_started = Instant::now();
        let request = CompletionRequest {
            messages: build_prompt(
                &self.system_prompt,
                &self.history,
                self.history_chars,
                &sources,
                &self.question,
            ),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
        };
        let prompt_build_ms = elapsed_ms_f64(prompt_started);
        let cache_key = match &self.cache {
            Some(_) => self.cache_key(&request, &sources).await,
            None => None,
        };
        if let (Some(cache), Some(key)) = (&self.cache, &cache_key) {
            match cache.get(key).await {
                Ok(Some(hit)) => {
                    self.serve_cached(hit, &tx, timings, prompt_build_ms).await;
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the response cache"),
            }
        }
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let mut content = String::new();
        let mut usage: Option<Usage> = None;
        let mut pieces = 0u32;
        let mut ttft_ms = None;
        let mut first_token_at = None;
        let mut queue_ms = None;
        let mut answering_model = self.model_name.clone();
        let mut provider = self.model.provider();
        let mut retries = 0u32;
        let mut fallback_used = false;
        let model_called = Instant::now();
        let outcome = match self.model.stream(request, self.cancel.clone()).await {
            Err(e) => Outcome::Failed(e),
            Ok(mut stream) => loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    // The browser went away: stop generating.
                    () = tx.closed() => {
                        self.cancel.cancel();
                        break Outcome::Finished(FinishReason::Cancelled);
                    }
                };
                let event = match next {
                    None => break Outcome::Failed(LlmError::Truncated),
                    Some(Err(e)) => break Outcome::Failed(e),
                    Some(Ok(event)) => event,
                };
                match event {
                    LlmEvent::Queued { position } => {
                        let _ = tx.send(ChatEvent::Queued { position }).await;
                    }
                    LlmEvent::Started => {
                        queue_ms.get_or_insert_with(|| elapsed_ms_f64(model_called));
                    }
                    LlmEvent::Served {
                        model,
                        provider: served_provider,
                        retries: failed_attempts,
                        fallback,
                    } => {
                        answering_model = model.clone();
                        provider = served_provider;
                        retries = failed_attempts;
                        fallback_used = fallback;
                        let _ = tx
                            .send(ChatEvent::Model {
                                model,
                                retries: failed_attempts,
                                fallback,
                                cached: false,
                            })
                            .await;
                    }
                    LlmEvent::Token(text) => {
                        ttft_ms.get_or_insert_with(|| elapsed_ms(self.started));
                        first_token_at.get_or_insert_with(Instant::now);
                        pieces += 1;
                        content.push_str(&text);
                        let _ = tx.send(ChatEvent::Token { text }).await;
                    }
                    LlmEvent::Usage {
                        prompt_tokens,
                        completion_tokens,
                    } => {
                        usage = Some(Usage {
                            prompt_tokens,
                            completion_tokens,
                        });
                    }
                    LlmEvent::Finished(reason) => break Outcome::Finished(reason),
                }
            },
        };
        let total_ms = elapsed_ms(self.started);
        // Providers that omit usage get an estimate (about four characters a token).
        let usage_estimated = usage.is_none();
        let usage = usage.unwrap_or(Usage {
            prompt_tokens: u32::try_from(prompt_chars / 4).unwrap_or(u32::MAX),
            completion_tokens: pieces,
        });
        let (status, error, outcome_name, event) = match &outcome {
            Outcome::Finished(reason) => {
                let status = if *reason == FinishReason::Cancelled {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::Complete
                };
                let event = ChatEvent::Done {
                    usage,
                    ttft_ms: ttft_ms.unwrap_or(total_ms),
                    total_ms,
                    finish_reason: *reason,
                };
                (status, None, finish_name(*reason), event)
            }
            Outcome::Failed(e) => {
                let message = e.user_message();
                tracing::warn!(error = %e, message_id = %self.message_id, "generation failed");
                (
                    MessageStatus::Incomplete,
                    Some(message.clone()),
                    e.class(),
                    ChatEvent::Error { message },
                )
            }
        };
        if !sources.is_empty() {
            citations::annotate(&content, &mut sources);
            let _ = tx
                .send(ChatEvent::Citations {
                    sources: sources.clone(),
                })
                .await;
        }
        let completed =
            matches!(outcome, Outcome::Finished(FinishReason::Stop)) && !content.is_empty();
        if let (Some(cache), Some(key), true) = (&self.cache, &cache_key, completed) {
            let entry = CachedAnswer {
                model: answering_model.clone(),
                answer: content.clone(),
                sources: sources.clone(),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            };
            if let Err(e) = cache.put(key, &entry).await {
                tracing::warn!(error = %e, "writing the response cache");
            }
        }
        let record = AnswerRecord {
            model: answering_model.clone(),
            sources,
            content,
            status,
            error,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            ttft_ms,
            total_ms,
            notice: self.notice.clone(),
        };
        // Generation speed after the first token (the prompt is excluded).
        let tokens_per_s = first_token_at.and_then(|first| {
            let secs = first.elapsed().as_secs_f64();
            (usage.completion_tokens > 1 && secs > 0.0)
                .then(|| f64::from(usage.completion_tokens - 1) / secs)
        });
        let turn = ChatTurnEvent {
            provider: provider.to_owned(),
            embed_ms: timings.embed_ms,
            retrieve_ms: timings.search_ms,
            prompt_build_ms: Some(prompt_build_ms),
            queue_ms,
            // Sub-millisecond, so the stages compare exactly with each other.
            ttft_ms: first_token_at.map(|first| (first - self.started).as_secs_f64() * 1000.0),
            upstream_ttft_ms: first_token_at
                .map(|first| (first - model_called).as_secs_f64() * 1000.0),
            total_ms: elapsed_ms_f64(self.started),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            tokens_estimated: usage_estimated,
            tokens_per_s,
            retries,
            fallback_used,
            sources: u32::try_from(record.sources.len()).unwrap_or(u32::MAX),
            outcome: outcome_name.to_owned(),
            error_class: match &outcome {
                Outcome::Failed(e) => Some(e.class().to_owned()),
                Outcome::Finished(_) => None,
            },
            ..self.turn_event(answering_model)
        };
        self.finish(&record, &turn).await;
        let _ = tx.send(event).await;
    }
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn elapsed_ms_f64(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
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
