//! Model providers behind one trait: the embedded llama.cpp model and any
//! OpenAI-compatible HTTP endpoint.

pub mod local;
pub mod openai;
pub mod resilient;
pub mod roster;

use app::wire::FinishReason;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptRole {
    System,
    User,
    Assistant,
}

impl PromptRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub messages: Vec<PromptMessage>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Nucleus sampling (an API client's `top_p`); `None`: the model's own.
    pub top_p: Option<f32>,
    /// Stop sequences, for a provider that can stop early (the answer is
    /// cut at them either way; see `chat::stops`).
    pub stop: Vec<String>,
}

/// What a provider streams back.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// Other requests are ahead of this one.
    Queued {
        position: usize,
    },
    /// The model has started on this request (after any queueing).
    Started,
    /// Which model is answering (sent before its first token), after how
    /// many failed attempts, and whether it is a fallback.
    Served {
        model: String,
        provider: &'static str,
        retries: u32,
        fallback: bool,
    },
    Token(String),
    /// Token counts, as the provider reports them.
    Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    /// The last event of a successful stream.
    Finished(FinishReason),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("could not reach the model server: {0}")]
    Unreachable(String),
    #[error("the model server answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The server's `Retry-After`.
        retry_after: Option<std::time::Duration>,
    },
    #[error("the model server sent nothing for {0} s")]
    Stalled(u64),
    #[error("the model server's stream ended before the answer was complete")]
    Truncated,
    #[error("the model server sent something unexpected: {0}")]
    Protocol(String),
    #[error("the prompt does not fit the model's context window ({needed} of {limit} tokens)")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("the local model failed: {0}")]
    Local(String),
}

impl LlmError {
    /// What the person in the chat is told.
    pub fn user_message(&self) -> String {
        match self {
            Self::Unreachable(_) => {
                "The model server could not be reached. Please try again.".into()
            }
            Self::Status { status: 429, .. } => {
                "The model server is rate limiting requests. Please wait a moment and retry.".into()
            }
            Self::Status {
                status, message, ..
            } if *status >= 500 => {
                format!(
                    "The model server failed ({status}). Please try again. Details: {}",
                    clip(message, 200)
                )
            }
            Self::Status {
                status, message, ..
            } => format!(
                "The model server rejected the request ({status}): {}",
                clip(message, 200)
            ),
            Self::Stalled(secs) => format!("The model stopped responding (nothing for {secs} s)."),
            Self::Truncated => {
                "The model's answer was cut off: the connection closed before it finished.".into()
            }
            Self::Protocol(_) => "The model server sent a response this app could not read.".into(),
            Self::ContextOverflow { .. } => {
                "This conversation is too long for the model. Start a new chat.".into()
            }
            Self::Local(_) => "The local model failed to generate an answer.".into(),
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short class name for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "upstream_5xx",
            Self::Status { .. } => "upstream_4xx",
            Self::Stalled(_) => "stalled",
            Self::Truncated => "truncated",
            Self::Protocol(_) => "protocol",
            Self::ContextOverflow { .. } => "context_overflow",
            Self::Local(_) => "local",
        }
    }
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

#[async_trait::async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// The model name shown to users and written to logs.
    fn name(&self) -> &str;

    /// Which engine serves it (`llama.cpp`, `openai`), for events and metrics.
    fn provider(&self) -> &'static str;

    /// Streams a completion. Generation stops soon after `cancel` fires or the
    /// returned stream is dropped.
    async fn stream(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<LlmStream, LlmError>;
}
