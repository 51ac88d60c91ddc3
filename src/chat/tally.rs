//! What the model has streamed in one turn: the answer so far (short of
//! any stop sequence), its usage, and when each stage happened; and how the
//! turn ended.

use super::stops::StopSequences;
use crate::llm::{LlmError, LlmEvent};
use app::wire::{ChatEvent, FinishReason, Usage};
use std::time::Instant;

/// How a generation ended.
pub(super) enum Outcome {
    Finished(FinishReason),
    Failed(LlmError),
}

impl Outcome {
    /// The outcome's name in the turn event: the finish reason or the error's class.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Outcome::Finished(reason) => finish_name(*reason),
            Outcome::Failed(e) => e.class(),
        }
    }
}

/// What the model has streamed so far in this turn, and how it got there.
pub(super) struct Tally {
    pub(super) content: String,
    pub(super) usage: Option<Usage>,
    /// Token events received (the completion's size when there is no usage).
    pub(super) pieces: u32,
    pub(super) ttft_ms: Option<u64>,
    pub(super) first_token_at: Option<Instant>,
    pub(super) queue_ms: Option<f64>,
    /// The model that answered (a fallback's, if it came to that).
    pub(super) model: String,
    pub(super) provider: &'static str,
    pub(super) retries: u32,
    pub(super) fallback_used: bool,
    pub(super) model_called: Instant,
    /// Holds back what may be the start of a stop sequence.
    stops: StopSequences,
}

/// What one model event means for the reader.
pub(super) enum Step {
    Tell(ChatEvent),
    Quiet,
    End(FinishReason),
    /// The last text, then the end.
    Last(ChatEvent, FinishReason),
}

impl Tally {
    pub(super) fn new(model: String, provider: &'static str, stops: StopSequences) -> Self {
        Self {
            stops,
            content: String::new(),
            usage: None,
            pieces: 0,
            ttft_ms: None,
            first_token_at: None,
            queue_ms: None,
            model,
            provider,
            retries: 0,
            fallback_used: false,
            model_called: Instant::now(),
        }
    }

    /// Counts one event from the model; `started` is the request's arrival.
    pub(super) fn take(&mut self, event: LlmEvent, started: Instant) -> Step {
        match event {
            LlmEvent::Queued { position } => Step::Tell(ChatEvent::Queued { position }),
            LlmEvent::Started => {
                let called = self.model_called;
                self.queue_ms.get_or_insert_with(|| elapsed_ms_f64(called));
                Step::Quiet
            }
            LlmEvent::Served {
                model,
                provider,
                retries,
                fallback,
            } => {
                self.model = model.clone();
                self.provider = provider;
                self.retries = retries;
                self.fallback_used = fallback;
                Step::Tell(ChatEvent::Model {
                    model,
                    retries,
                    fallback,
                    cached: false,
                })
            }
            LlmEvent::Token(text) => {
                self.pieces += 1;
                let (text, stopped) = self.stops.feed(&text);
                if !text.is_empty() {
                    self.ttft_ms.get_or_insert_with(|| elapsed_ms(started));
                    self.first_token_at.get_or_insert_with(Instant::now);
                    self.content.push_str(&text);
                }
                match (text.is_empty(), stopped) {
                    (true, false) => Step::Quiet,
                    (true, true) => Step::End(FinishReason::Stop),
                    (false, false) => Step::Tell(ChatEvent::Token { text }),
                    (false, true) => Step::Last(ChatEvent::Token { text }, FinishReason::Stop),
                }
            }
            LlmEvent::Usage {
                prompt_tokens,
                completion_tokens,
            } => {
                self.usage = Some(Usage {
                    prompt_tokens,
                    completion_tokens,
                });
                Step::Quiet
            }
            LlmEvent::Finished(reason) => {
                let text = self.stops.flush();
                if text.is_empty() {
                    Step::End(reason)
                } else {
                    self.ttft_ms.get_or_insert_with(|| elapsed_ms(started));
                    self.first_token_at.get_or_insert_with(Instant::now);
                    self.content.push_str(&text);
                    Step::Last(ChatEvent::Token { text }, reason)
                }
            }
        }
    }

    /// The provider's usage, or an estimate (about four characters a token)
    /// for providers that report none; `true` when estimated.
    pub(super) fn usage(&self, prompt_chars: usize) -> (Usage, bool) {
        match self.usage {
            Some(usage) => (usage, false),
            None => (
                Usage {
                    prompt_tokens: u32::try_from(prompt_chars / 4).unwrap_or(u32::MAX),
                    completion_tokens: self.pieces,
                },
                true,
            ),
        }
    }

    /// Generation speed after the first token (the prompt is excluded).
    pub(super) fn tokens_per_s(&self, completion_tokens: u32) -> Option<f64> {
        self.first_token_at.and_then(|first| {
            let secs = first.elapsed().as_secs_f64();
            (completion_tokens > 1 && secs > 0.0).then(|| f64::from(completion_tokens - 1) / secs)
        })
    }
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}

pub(super) fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn elapsed_ms_f64(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
