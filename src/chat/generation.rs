//! One turn's answer, in its own task: retrieve the user's passages, build
//! the prompt, answer from the response cache or stream from the model,
//! then store the answer, record the turn and tell the reader how it ended.

use super::cache::{cache_key, CacheKeyParts, ResponseCache};
use super::citations;
use super::live::LiveAnswer;
use super::prompt::{build_prompt, fit_sources, TEMPLATE_VERSION};
use super::retrieve::{sources_from, Retriever};
use super::rewrite::{QueryRewriter, Rewrite};
use super::stops::StopSequences;
use super::tally::{elapsed_ms, elapsed_ms_f64, Outcome, Step, Tally};
use crate::documents::access::Access;
use crate::embed::TokenSpans;
use crate::llm::{ChatModel, CompletionRequest, LlmError};
use crate::ops::events::{ChatTurnEvent, EventRecorder};
use crate::store::{AnswerRecord, CachedAnswer, HistoryMessage, Store};
use app::ports::UserId;
use app::wire::{ChatEvent, FinishReason, MessageStatus, Source, Usage};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What grounding answers in the user's documents needs.
pub struct Grounding {
    pub retriever: Retriever,
    /// Which collections a question may search, decided when it is asked.
    pub access: Access,
    /// Turns follow-ups into standalone search queries.
    pub rewriter: QueryRewriter,
    /// Counts tokens of source text against the context budget.
    pub tokens: Arc<dyn TokenSpans>,
    pub context_tokens: usize,
    pub max_upload_bytes: u64,
}

/// An answer being generated on this replica.
#[derive(Clone)]
pub(super) struct Running {
    pub(super) owner: UserId,
    pub(super) conversation_id: String,
    pub(super) cancel: CancellationToken,
    /// Where its readers read it.
    pub(super) live: Arc<LiveAnswer>,
    /// The API key it was asked with: revoking the key stops it.
    pub(super) api_key_id: Option<String>,
}

/// Answers being generated on this replica, by message id.
pub(super) type InFlight = Arc<Mutex<HashMap<String, Running>>>;

/// How often a growing answer is stored, for readers who come back or
/// read from another replica.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Everything one turn's answer needs, taken from the service when the
/// turn begins.
pub(super) struct Generation {
    pub(super) store: Store,
    pub(super) model: Arc<dyn ChatModel>,
    pub(super) grounding: Arc<Grounding>,
    pub(super) recorder: EventRecorder,
    pub(super) cache: Option<ResponseCache>,
    pub(super) owner: String,
    pub(super) question: String,
    pub(super) history: Vec<HistoryMessage>,
    pub(super) system_prompt: String,
    pub(super) history_chars: usize,
    pub(super) max_tokens: u32,
    pub(super) temperature: f32,
    /// An experiment's number of passages, instead of the configured one.
    pub(super) top_k: Option<usize>,
    /// The user's experiment variants (`exp:variant`, comma-joined).
    pub(super) variant: Option<String>,
    pub(super) message_id: String,
    pub(super) conversation_id: String,
    pub(super) model_name: String,
    /// Which configured model (`default` or a name under `[llm.models]`).
    pub(super) model_route: String,
    /// Told to the reader before the answer, and kept with it.
    pub(super) notice: Option<String>,
    pub(super) cancel: CancellationToken,
    pub(super) in_flight: InFlight,
    pub(super) started: Instant,
    /// Another version of an existing answer: never from the response cache
    /// (its entry is replaced), and counted as a regeneration.
    pub(super) regenerated: bool,
    /// What differs for a turn asked through the API.
    pub(super) api: Option<ApiExtras>,
}

/// An API turn's own settings.
pub(super) struct ApiExtras {
    /// Retrieval first (the grounded model), or the model alone.
    pub(super) grounded: bool,
    pub(super) top_p: Option<f32>,
    pub(super) stop: Vec<String>,
    pub(super) key_id: String,
    pub(super) key_name: String,
}

/// Timings of the retrieval stages, for the turn's log line, and how a
/// follow-up was rewritten (query, time, tokens).
#[derive(Default)]
struct RetrievalTimings {
    rewrite: Option<Rewrite>,
    embed_ms: Option<f64>,
    search_ms: Option<f64>,
    /// Documents were searched (something in scope had any).
    searched: bool,
    /// The best passage's similarity to the question.
    top_score: Option<f32>,
    /// The collections searched, sorted: part of the cache key.
    collections: Vec<String>,
}

impl RetrievalTimings {
    /// The standalone query a follow-up was searched as.
    fn searched_for(&self) -> Option<String> {
        self.rewrite.as_ref().map(|r| r.query.clone())
    }

    /// What the rewrite cost in model tokens.
    fn rewrite_usage(&self) -> Usage {
        self.rewrite.as_ref().map(|r| r.usage).unwrap_or_default()
    }
}

/// Ends an answer whose task ended without finishing it (a panic): its
/// row stops "streaming" (so the conversation takes new turns), its Stop
/// handle goes, and its readers are told.
struct Unfinished {
    store: Store,
    message_id: String,
    in_flight: InFlight,
    live: Arc<LiveAnswer>,
    finished: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        tracing::error!(message_id = %self.message_id, "an answer's task ended without finishing it");
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&self.message_id);
        }
        let message = "Something went wrong while writing this answer.".to_owned();
        self.live.publish(ChatEvent::Error {
            message: message.clone(),
        });
        let (store, id) = (self.store.clone(), self.message_id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.abandon_answer(&id, &message).await {
                    tracing::error!(error = %e, "marking an abandoned answer");
                }
            });
        }
    }
}

/// What was settled before the model is called.
struct Prepared {
    sources: Vec<Source>,
    timings: RetrievalTimings,
    prompt_build_ms: f64,
    /// Characters of the whole prompt, to estimate tokens when the provider
    /// reports none.
    prompt_chars: usize,
    cache_key: Option<String>,
}

impl Generation {
    pub(super) async fn run(self, live: Arc<LiveAnswer>) {
        let mut guard = Unfinished {
            store: self.store.clone(),
            message_id: self.message_id.clone(),
            in_flight: self.in_flight.clone(),
            live: live.clone(),
            finished: false,
        };
        self.answer(&live).await;
        guard.finished = true;
    }

    async fn answer(self, live: &LiveAnswer) {
        let (prepared, request) = self.prepare(live).await;
        let cached = (!self.regenerated).then_some(self.cache.as_ref()).flatten();
        if let (Some(cache), Some(key)) = (cached, &prepared.cache_key) {
            match cache.get(key).await {
                Ok(Some(hit)) => {
                    self.serve_cached(hit, live, prepared).await;
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading the response cache"),
            }
        }
        let stops = StopSequences::new(
            self.api
                .as_ref()
                .map(|a| a.stop.clone())
                .unwrap_or_default(),
        );
        let mut tally = Tally::new(self.model_name.clone(), self.model.provider(), stops);
        let outcome = self.stream_answer(request, live, &mut tally).await;
        self.conclude(outcome, tally, prepared, live).await;
    }

    /// Retrieves the passages (telling the reader which), builds the
    /// model's request and the cache key.
    async fn prepare(&self, live: &LiveAnswer) -> (Prepared, CompletionRequest) {
        let mut timings = RetrievalTimings::default();
        let sources = self.sources(&mut timings).await;
        if !sources.is_empty() {
            let searched_for = timings.searched_for();
            if let Err(e) = self
                .store
                .save_answer_sources(&self.message_id, &sources, searched_for.as_deref())
                .await
            {
                tracing::warn!(error = %e, "storing an answer's sources");
            }
            live.publish(ChatEvent::Sources {
                sources: sources.clone(),
                searched_for,
            });
        }
        let prompt_started = Instant::now();
        let request = self.request(&sources);
        let prompt_build_ms = elapsed_ms_f64(prompt_started);
        let cache_key = match &self.cache {
            Some(_) => {
                self.cache_key(&request, &sources, &timings.collections)
                    .await
            }
            None => None,
        };
        let prepared = Prepared {
            prompt_chars: request.messages.iter().map(|m| m.content.len()).sum(),
            sources,
            timings,
            prompt_build_ms,
            cache_key,
        };
        (prepared, request)
    }

    fn request(&self, sources: &[Source]) -> CompletionRequest {
        CompletionRequest {
            messages: build_prompt(
                &self.system_prompt,
                &self.history,
                self.history_chars,
                sources,
                &self.question,
            ),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.api.as_ref().and_then(|a| a.top_p),
            stop: self
                .api
                .as_ref()
                .map(|a| a.stop.clone())
                .unwrap_or_default(),
        }
    }

    /// Streams the model's answer to its readers until it ends, fails or is
    /// stopped, storing it as it grows (a browser's: an API answer has no
    /// reader who could come back, so it is stored when it ends).
    async fn stream_answer(
        &self,
        request: CompletionRequest,
        live: &LiveAnswer,
        tally: &mut Tally,
    ) -> Outcome {
        let mut stream = match self.model.stream(request, self.cancel.clone()).await {
            Ok(stream) => stream,
            Err(e) => return Outcome::Failed(e),
        };
        let mut saved = Instant::now();
        let mut saved_len = 0;
        loop {
            let event = match stream.next().await {
                None => return Outcome::Failed(LlmError::Truncated),
                Some(Err(e)) => return Outcome::Failed(e),
                Some(Ok(event)) => event,
            };
            match tally.take(event, self.started) {
                Step::Tell(event) => live.publish(event),
                Step::Quiet => {}
                Step::End(reason) => return Outcome::Finished(reason),
                Step::Last(event, reason) => {
                    live.publish(event);
                    return Outcome::Finished(reason);
                }
            }
            if self.api.is_none()
                && saved.elapsed() >= SAVE_EVERY
                && tally.content.len() != saved_len
            {
                if let Err(e) = self
                    .store
                    .save_partial_answer(&self.message_id, &tally.content)
                    .await
                {
                    tracing::warn!(error = %e, "storing a growing answer");
                }
                saved = Instant::now();
                saved_len = tally.content.len();
            }
        }
    }

    /// After the model: citations, the cache, the stored answer, the turn
    /// event, and the reader's last event.
    async fn conclude(
        self,
        outcome: Outcome,
        tally: Tally,
        mut prepared: Prepared,
        live: &LiveAnswer,
    ) {
        let total_ms = elapsed_ms(self.started);
        let (answer_usage, usage_estimated) = tally.usage(prepared.prompt_chars);
        // The turn's cost includes its follow-up rewrite.
        let usage = plus(answer_usage, prepared.timings.rewrite_usage());
        let (status, error, last_event) = match &outcome {
            Outcome::Finished(reason) => {
                let status = if *reason == FinishReason::Cancelled {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::Complete
                };
                let event = ChatEvent::Done {
                    usage,
                    ttft_ms: tally.ttft_ms.unwrap_or(total_ms),
                    total_ms,
                    finish_reason: *reason,
                };
                (status, None, event)
            }
            Outcome::Failed(e) => {
                let message = e.user_message();
                tracing::warn!(error = %e, message_id = %self.message_id, "generation failed");
                (
                    MessageStatus::Incomplete,
                    Some(message.clone()),
                    ChatEvent::Error { message },
                )
            }
        };
        let mut sources = std::mem::take(&mut prepared.sources);
        if !sources.is_empty() {
            citations::annotate(&tally.content, &mut sources);
            live.publish(ChatEvent::Citations {
                sources: sources.clone(),
            });
        }
        let completed =
            matches!(outcome, Outcome::Finished(FinishReason::Stop)) && !tally.content.is_empty();
        if let (Some(cache), Some(key), true) = (&self.cache, &prepared.cache_key, completed) {
            let entry = CachedAnswer {
                model: tally.model.clone(),
                answer: tally.content.clone(),
                sources: sources.clone(),
                prompt_tokens: answer_usage.prompt_tokens,
                completion_tokens: answer_usage.completion_tokens,
            };
            if let Err(e) = cache.put(key, &entry).await {
                tracing::warn!(error = %e, "writing the response cache");
            }
        }
        let turn = ChatTurnEvent {
            provider: tally.provider.to_owned(),
            queue_ms: tally.queue_ms,
            // Sub-millisecond, so the stages compare exactly with each other.
            ttft_ms: tally
                .first_token_at
                .map(|first| (first - self.started).as_secs_f64() * 1000.0),
            upstream_ttft_ms: tally
                .first_token_at
                .map(|first| (first - tally.model_called).as_secs_f64() * 1000.0),
            total_ms: elapsed_ms_f64(self.started),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            tokens_estimated: usage_estimated,
            tokens_per_s: tally.tokens_per_s(answer_usage.completion_tokens),
            retries: tally.retries,
            fallback_used: tally.fallback_used,
            sources: u32::try_from(sources.len()).unwrap_or(u32::MAX),
            outcome: outcome.name().to_owned(),
            regenerated: self.regenerated,
            error_class: match &outcome {
                Outcome::Failed(e) => Some(e.class().to_owned()),
                Outcome::Finished(_) => None,
            },
            ..self.prepared_turn_event(tally.model.clone(), &prepared)
        };
        let record = AnswerRecord {
            model: tally.model,
            sources,
            content: tally.content,
            status,
            error,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            ttft_ms: tally.ttft_ms,
            total_ms,
            notice: self.notice.clone(),
            searched_for: prepared.timings.searched_for(),
        };
        self.finish(&record, &turn, live, last_event).await;
    }

    /// The passages for this question from the collections its
    /// conversation searches and the user may read now (none if nothing
    /// there is indexed). Retrieval trouble is logged and the question
    /// answered without sources: a chat that still works beats one that
    /// fails.
    async fn sources(&self, timings: &mut RetrievalTimings) -> Vec<Source> {
        if self.api.as_ref().is_some_and(|api| !api.grounded) {
            return Vec::new();
        }
        let access = &self.grounding.access;
        let embedder = self.grounding.retriever.embedder_id();
        let chosen = match self.store.conversation_scope(&self.conversation_id).await {
            Ok(chosen) => chosen,
            Err(e) => {
                tracing::error!(error = %e, "reading the conversation's scope");
                return Vec::new();
            }
        };
        let scoped = access
            .search_scope(&self.owner, chosen.as_deref(), &embedder)
            .await;
        match scoped {
            Ok(Some(_)) => {}
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "checking for documents");
                return Vec::new();
            }
        }
        timings.rewrite = self
            .grounding
            .rewriter
            .rewrite(&self.model, &self.history, &self.question, &self.cancel)
            .await;
        let query = timings
            .rewrite
            .as_ref()
            .map_or(self.question.as_str(), |r| r.query.as_str());
        let retriever = &self.grounding.retriever;
        let top_k = self.top_k.unwrap_or(retriever.top_k());
        let query = match retriever.embed(query).await {
            Ok(query) => query,
            Err(e) => {
                tracing::warn!(error = %e, "embedding the question failed; answering without sources");
                return Vec::new();
            }
        };
        // Access and versions as they are now, just before the search (the
        // rewrite and the embedding may have taken seconds).
        let scope = match access
            .search_scope(&self.owner, chosen.as_deref(), &embedder)
            .await
        {
            Ok(Some(scope)) => scope,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "checking for documents");
                return Vec::new();
            }
        };
        timings.searched = true;
        timings.collections = scope.scope.collections.clone();
        timings.collections.sort();
        let started = Instant::now();
        let hits = match retriever.search(&scope.scope, &query, top_k).await {
            Ok(hits) => access
                .keep_answering(&scope, hits)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match hits {
            Ok(hits) => {
                let retrieved = retriever.passages(hits, top_k, query.embed_ms, started);
                timings.embed_ms = Some(retrieved.embed_ms);
                timings.search_ms = Some(retrieved.search_ms);
                timings.top_score = retrieved.top_score;
                fit_sources(
                    sources_from(retrieved.hits, &scope.names),
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
    async fn cache_key(
        &self,
        request: &CompletionRequest,
        sources: &[Source],
        collections: &[String],
    ) -> Option<String> {
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
            collections,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        }))
    }

    /// This turn's event with who and what filled in, and the stages before
    /// the model measured.
    fn prepared_turn_event(&self, model: String, prepared: &Prepared) -> ChatTurnEvent {
        let timings = &prepared.timings;
        ChatTurnEvent {
            rewrite_ms: timings.rewrite.as_ref().map(|r| r.ms),
            rewrite_source: timings
                .rewrite
                .as_ref()
                .map(|r| r.source.as_str().to_owned()),
            embed_ms: timings.embed_ms,
            retrieve_ms: timings.search_ms,
            prompt_build_ms: Some(prepared.prompt_build_ms),
            searched: timings.searched,
            top_score: timings.top_score.map(f64::from),
            ..self.turn_event(model)
        }
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
            rewrite_ms: None,
            rewrite_source: None,
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
            regenerated: self.regenerated,
            searched: false,
            top_score: None,
            source: if self.api.is_some() { "api" } else { "browser" }.to_owned(),
            api_key_id: self.api.as_ref().map(|a| a.key_id.clone()),
            api_key_name: self.api.as_ref().map(|a| a.key_name.clone()),
        }
    }

    /// Stores the answer, releases its Stop handle, records the turn and
    /// tells the readers the last event: the end of every turn, from the
    /// model or from the cache.
    async fn finish(
        &self,
        record: &AnswerRecord,
        turn: &ChatTurnEvent,
        live: &LiveAnswer,
        last: ChatEvent,
    ) {
        if let Err(e) = self.store.finish_answer(&self.message_id, record).await {
            tracing::error!(error = %e, message_id = %self.message_id, "recording the answer failed");
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&self.message_id);
        }
        // Recorded before the readers hear the end: when a stream ends, its
        // turn is on the books.
        self.recorder.record_turn(turn).await;
        live.publish(last);
    }

    /// Answers from the cache at once: the whole text in one piece. The
    /// answer costs no model tokens; only a follow-up's rewrite is counted
    /// against budgets.
    async fn serve_cached(self, hit: CachedAnswer, live: &LiveAnswer, prepared: Prepared) {
        live.publish(ChatEvent::Model {
            model: hit.model.clone(),
            retries: 0,
            fallback: false,
            cached: true,
        });
        live.publish(ChatEvent::Token {
            text: hit.answer.clone(),
        });
        let ttft_ms = elapsed_ms(self.started);
        if !hit.sources.is_empty() {
            live.publish(ChatEvent::Citations {
                sources: hit.sources.clone(),
            });
        }
        let total_ms = elapsed_ms(self.started);
        let usage = prepared.timings.rewrite_usage();
        let record = AnswerRecord {
            model: hit.model.clone(),
            sources: hit.sources.clone(),
            content: hit.answer,
            status: MessageStatus::Complete,
            error: None,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            ttft_ms: Some(ttft_ms),
            total_ms,
            notice: self.notice.clone(),
            searched_for: prepared.timings.searched_for(),
        };
        let turn = ChatTurnEvent {
            provider: "cache".to_owned(),
            ttft_ms: Some(ttft_ms as f64),
            total_ms: total_ms as f64,
            cache_hit: true,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            sources: u32::try_from(record.sources.len()).unwrap_or(u32::MAX),
            outcome: "stop".to_owned(),
            ..self.prepared_turn_event(hit.model, &prepared)
        };
        let done = ChatEvent::Done {
            usage,
            ttft_ms,
            total_ms,
            finish_reason: FinishReason::Stop,
        };
        self.finish(&record, &turn, live, done).await;
    }
}

fn plus(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens.saturating_add(b.prompt_tokens),
        completion_tokens: a.completion_tokens.saturating_add(b.completion_tokens),
    }
}
