//! `POST /v1/chat/completions`: OpenAI's request, answered by the chat
//! service like a browser's turn (the request's messages are the
//! conversation), sent back as Server-Sent Events exactly as OpenAI frames
//! them or as one `chat.completion`. Nothing goes out until the answer's
//! first text (or its failure) is known, so a failure before it is an HTTP
//! error an SDK can act on; a failure after it is an `error` event.

use super::asked::parse;
use super::request::{admit, read_json, unix_now, KeyCaller, OpenAiApi};
use super::wire::{
    sources_body, AssistantMessage, ChatRequest, Chunk, ChunkChoice, Completion, CompletionChoice,
    Delta, UsageBody,
};
use super::OpenAiError;
use app::wire::{ChatEvent, FinishReason, Source};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::VecDeque;

pub(super) async fn create(
    Extension(api): Extension<OpenAiApi>,
    key: KeyCaller,
    body: axum::body::Body,
) -> Response {
    match answer(api, key, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    api: OpenAiApi,
    key: KeyCaller,
    body: axum::body::Body,
) -> Result<Response, OpenAiError> {
    let request: ChatRequest = read_json(body, api.settings.max_body_bytes).await?;
    let asked = parse(&api, &key, request)?;
    admit(&api, &key.caller).await?;
    // Its own task: a client that hangs up while the turn is being stored
    // can't leave it half begun (the answer then ends with its reader).
    let (chat, user) = (api.services.chat.clone(), key.user());
    let mut events = tokio::spawn(async move { chat.complete(&user, asked.turn).await })
        .await
        .map_err(|_| OpenAiError::from(app::error::AppError::Internal))??;
    let opening = match open(&mut events).await {
        Ok(opening) => opening,
        // Stopped before its first text: most likely its key was revoked
        // or its account disabled meanwhile, which the SDKs should hear as
        // such (and not retry), rather than as a server error.
        Err(stopped) if stopped.code == Some(STOPPED_CODE) => {
            key.recheck(&api).await?;
            return Err(stopped);
        }
        Err(e) => return Err(e),
    };
    let head = Head {
        id: opening.id.clone(),
        created: unix_now(),
        model: asked.model,
        grounded: asked.grounded,
    };
    if asked.stream {
        Ok(stream(head, asked.include_usage, opening, events))
    } else {
        Ok(Json(collect(head, opening, events).await?).into_response())
    }
}

/// What the answer had settled by its first text.
struct Opening {
    id: String,
    sources: Vec<Source>,
    /// The event that ended the wait (text, citations or the end).
    next: Option<ChatEvent>,
}

/// Reads the answer's events up to its first text; a failure before it is
/// an HTTP error (5xx when every model failed).
async fn open(events: &mut BoxStream<'static, ChatEvent>) -> Result<Opening, OpenAiError> {
    let mut opening = Opening {
        id: String::new(),
        sources: Vec::new(),
        next: None,
    };
    loop {
        match events.next().await {
            None => {
                return Err(OpenAiError::failed_answer(
                    "The answer ended before it began.",
                ))
            }
            Some(ChatEvent::Start { message_id, .. }) => {
                opening.id = format!("chatcmpl-{message_id}");
            }
            Some(ChatEvent::Sources { sources, .. }) => opening.sources = sources,
            Some(ChatEvent::Error { message }) => return Err(OpenAiError::failed_answer(message)),
            Some(ChatEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            }) => return Err(OpenAiError::failed_answer(STOPPED).with_code(STOPPED_CODE)),
            Some(
                event @ (ChatEvent::Token { .. }
                | ChatEvent::Citations { .. }
                | ChatEvent::Done { .. }),
            ) => {
                opening.next = Some(event);
                return Ok(opening);
            }
            Some(ChatEvent::Notice { .. } | ChatEvent::Queued { .. } | ChatEvent::Model { .. }) => {
            }
        }
    }
}

const STOPPED_CODE: &str = "answer_stopped";
const STOPPED: &str = "The answer was stopped before it finished (its API key was revoked, the account disabled, or the server is stopping).";

/// What every chunk of one answer repeats.
struct Head {
    id: String,
    created: u64,
    model: String,
    /// The grounded model's answers carry `sources`.
    grounded: bool,
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Cancelled => "stop",
        FinishReason::Length => "length",
    }
}

/// The whole answer as one `chat.completion`.
async fn collect(
    head: Head,
    opening: Opening,
    mut events: BoxStream<'static, ChatEvent>,
) -> Result<Completion, OpenAiError> {
    let mut text = String::new();
    let mut sources = opening.sources;
    let mut next = opening.next;
    loop {
        let event = match next.take() {
            Some(event) => event,
            None => events
                .next()
                .await
                .ok_or_else(|| OpenAiError::failed_answer("The answer ended early."))?,
        };
        match event {
            ChatEvent::Token { text: piece } => text.push_str(&piece),
            ChatEvent::Citations { sources: cited } => sources = cited,
            ChatEvent::Error { message } => return Err(OpenAiError::failed_answer(message)),
            ChatEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            } => return Err(OpenAiError::failed_answer(STOPPED).with_code(STOPPED_CODE)),
            ChatEvent::Done {
                usage,
                finish_reason,
                ..
            } => {
                return Ok(Completion {
                    id: head.id,
                    object: "chat.completion",
                    created: head.created,
                    model: head.model,
                    choices: vec![CompletionChoice {
                        index: 0,
                        message: AssistantMessage {
                            role: "assistant",
                            content: text,
                            refusal: None,
                        },
                        finish_reason: finish_name(finish_reason),
                        logprobs: None,
                    }],
                    usage: usage.into(),
                    system_fingerprint: None,
                    sources: head.grounded.then(|| sources_body(&sources)),
                })
            }
            ChatEvent::Start { .. }
            | ChatEvent::Notice { .. }
            | ChatEvent::Queued { .. }
            | ChatEvent::Model { .. }
            | ChatEvent::Sources { .. } => {}
        }
    }
}

/// Turns the answer's events into OpenAI's chunks as they come.
struct Chunker {
    head: Head,
    events: BoxStream<'static, ChatEvent>,
    frames: VecDeque<Event>,
    include_usage: bool,
    sources: Vec<Source>,
    ended: bool,
}

impl Chunker {
    /// One `chat.completion.chunk` of this answer.
    fn frame(
        &self,
        choices: Vec<ChunkChoice>,
        usage: Option<UsageBody>,
        sources: Option<&[Source]>,
    ) -> Event {
        json_event(&Chunk {
            id: self.head.id.clone(),
            object: "chat.completion.chunk",
            created: self.head.created,
            model: self.head.model.clone(),
            system_fingerprint: None,
            choices,
            usage,
            sources: sources.filter(|_| self.head.grounded).map(sources_body),
        })
    }

    /// A chunk with one choice: some text, or how the answer finished.
    fn chunk(
        &self,
        delta: Delta,
        finish: Option<&'static str>,
        sources: Option<&[Source]>,
    ) -> Event {
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        };
        self.frame(vec![choice], None, sources)
    }

    fn error(&mut self, message: &str) {
        let error = OpenAiError::failed_answer(message);
        self.frames.push_back(json_event(&error.body()));
        self.ended = true;
    }

    fn take(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Token { text } => {
                let delta = Delta {
                    role: None,
                    content: Some(text),
                };
                let chunk = self.chunk(delta, None, None);
                self.frames.push_back(chunk);
            }
            ChatEvent::Citations { sources } => self.sources = sources,
            ChatEvent::Error { message } => self.error(&message),
            ChatEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            } => self.error(STOPPED),
            ChatEvent::Done {
                usage,
                finish_reason,
                ..
            } => {
                let last = self.chunk(
                    Delta::default(),
                    Some(finish_name(finish_reason)),
                    Some(&self.sources),
                );
                self.frames.push_back(last);
                if self.include_usage {
                    let usage = self.frame(Vec::new(), Some(usage.into()), None);
                    self.frames.push_back(usage);
                }
                self.frames.push_back(Event::default().data("[DONE]"));
                self.ended = true;
            }
            ChatEvent::Start { .. }
            | ChatEvent::Notice { .. }
            | ChatEvent::Queued { .. }
            | ChatEvent::Model { .. }
            | ChatEvent::Sources { .. } => {}
        }
    }
}

fn json_event(value: &impl serde::Serialize) -> Event {
    Event::default().data(serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned()))
}

/// The answer as Server-Sent Events: a first chunk with the role (and the
/// passages), the text as it comes, a last chunk with the finish reason
/// (and which passages the text cites), usage if asked, then `[DONE]`.
fn stream(
    head: Head,
    include_usage: bool,
    opening: Opening,
    events: BoxStream<'static, ChatEvent>,
) -> Response {
    let mut chunker = Chunker {
        head,
        events,
        frames: VecDeque::new(),
        include_usage,
        sources: opening.sources,
        ended: false,
    };
    let role = Delta {
        role: Some("assistant"),
        content: Some(String::new()),
    };
    let first = chunker.chunk(role, None, Some(&chunker.sources));
    chunker.frames.push_back(first);
    if let Some(event) = opening.next {
        chunker.take(event);
    }
    let frames = futures::stream::unfold(chunker, |mut chunker| async move {
        loop {
            if let Some(frame) = chunker.frames.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(frame), chunker));
            }
            if chunker.ended {
                return None;
            }
            match chunker.events.next().await {
                Some(event) => chunker.take(event),
                None => chunker.error("The answer ended early."),
            }
        }
    });
    // A comment line now and then keeps proxies from closing a quiet
    // stream; SSE clients skip it.
    Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response()
}
