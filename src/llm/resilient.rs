//! Retries and fallback around the model providers. Before the first token a
//! failed attempt is retried on the same model (429, 5xx, connection errors,
//! stalls) with exponential backoff and jitter, honouring `Retry-After`; when
//! a model keeps failing, the next one in the configured chain takes over.
//! After the first token nothing is retried: the reader has seen the text.

use super::{ChatModel, CompletionRequest, LlmError, LlmEvent, LlmStream};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries per model after its first attempt.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Giving up on an attempt that has produced no token in this long.
    pub first_token_timeout: Duration,
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (0-based): the server's
    /// `Retry-After` if it sent one, else `base · 2^retry` with "equal
    /// jitter" (half fixed, half random), capped at `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit_random: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        exp / 2 + exp.mul_f64(unit_random.clamp(0.0, 1.0) / 2.0)
    }
}

/// Worth another attempt on the same model.
fn retryable(e: &LlmError) -> bool {
    match e {
        LlmError::Status { status, .. } => *status == 429 || *status >= 500,
        LlmError::Unreachable(_) | LlmError::Stalled(_) | LlmError::Truncated => true,
        LlmError::Protocol(_) | LlmError::ContextOverflow { .. } | LlmError::Local(_) => false,
    }
}

/// Worth trying the next model (a prompt too long for one model may fit the next).
fn fall_back_after(e: &LlmError) -> bool {
    !matches!(e, LlmError::Status { status, .. } if *status == 400)
}

pub struct ResilientModel {
    chain: Vec<Arc<dyn ChatModel>>,
    policy: RetryPolicy,
}

impl ResilientModel {
    /// `chain[0]` is the primary model, the rest fallbacks in order.
    pub fn new(chain: Vec<Arc<dyn ChatModel>>, policy: RetryPolicy) -> Result<Self, LlmError> {
        if chain.is_empty() {
            return Err(LlmError::Local("no model configured".into()));
        }
        Ok(Self { chain, policy })
    }
}

#[async_trait::async_trait]
impl ChatModel for ResilientModel {
    fn name(&self) -> &str {
        self.chain[0].name()
    }

    fn provider(&self) -> &'static str {
        self.chain[0].provider()
    }

    async fn stream(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<LlmStream, LlmError> {
        let (tx, mut rx) = mpsc::channel(64);
        tokio::spawn(run_chain(
            self.chain.clone(),
            self.policy,
            request,
            cancel,
            tx,
        ));
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }
}

type Sender = mpsc::Sender<Result<LlmEvent, LlmError>>;

/// Uniform in [0, 1), from the OS's randomness (through a v4 UUID).
fn unit_random() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// How one attempt ended.
enum Attempt {
    /// The answer was streamed (or failed after its first token); done.
    Delivered,
    /// Failed before any token; the reader has seen nothing of it.
    FailedEarly(LlmError),
    /// The reader went away or asked to stop.
    Abandoned,
}

async fn run_chain(
    chain: Vec<Arc<dyn ChatModel>>,
    policy: RetryPolicy,
    request: CompletionRequest,
    cancel: CancellationToken,
    tx: Sender,
) {
    // Failed attempts so far, on any model.
    let mut failed = 0u32;
    let mut last_error = None;
    for (index, model) in chain.iter().enumerate() {
        for attempt in 0..=policy.max_retries {
            let served = LlmEvent::Served {
                model: model.name().to_owned(),
                provider: model.provider(),
                retries: failed,
                fallback: index > 0,
            };
            match attempt_once(model.as_ref(), &request, &cancel, &tx, served, policy).await {
                Attempt::Delivered | Attempt::Abandoned => return,
                Attempt::FailedEarly(e) => {
                    tracing::warn!(model = model.name(), attempt, error = %e, "model attempt failed before its first token");
                    failed += 1;
                    let again = retryable(&e) && attempt < policy.max_retries;
                    let wait = policy.delay(attempt, e.retry_after(), unit_random());
                    last_error = Some(e);
                    // A server asking for a long pause gets the next model instead.
                    if !again || wait > policy.max_delay.max(Duration::from_secs(30)) {
                        break;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tx.closed() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        if last_error.as_ref().is_some_and(|e| !fall_back_after(e)) {
            break;
        }
    }
    if let Some(e) = last_error {
        let _ = tx.send(Err(e)).await;
    }
}

async fn attempt_once(
    model: &dyn ChatModel,
    request: &CompletionRequest,
    cancel: &CancellationToken,
    tx: &Sender,
    served: LlmEvent,
    policy: RetryPolicy,
) -> Attempt {
    let mut stream = match model.stream(request.clone(), cancel.clone()).await {
        Ok(stream) => stream,
        Err(e) => return Attempt::FailedEarly(e),
    };
    let deadline = tokio::time::Instant::now() + policy.first_token_timeout;
    let mut served = Some(served);
    loop {
        let next = if served.is_some() {
            // Before the first token the whole wait is bounded.
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Attempt::FailedEarly(LlmError::Stalled(
                        policy.first_token_timeout.as_secs(),
                    ))
                }
            }
        } else {
            stream.next().await
        };
        let event = match next {
            None if served.is_some() => return Attempt::FailedEarly(LlmError::Truncated),
            None => return Attempt::Delivered,
            Some(Err(e)) if served.is_some() => return Attempt::FailedEarly(e),
            Some(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return Attempt::Delivered;
            }
            Some(Ok(event)) => event,
        };
        let first_output = matches!(event, LlmEvent::Token(_) | LlmEvent::Finished(_));
        if first_output {
            if let Some(served) = served.take() {
                if tx.send(Ok(served)).await.is_err() {
                    return Attempt::Abandoned;
                }
            }
        }
        let finished = matches!(event, LlmEvent::Finished(_));
        if tx.send(Ok(event)).await.is_err() {
            return Attempt::Abandoned;
        }
        if finished {
            return Attempt::Delivered;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        first_token_timeout: Duration::from_secs(10),
    };

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        // Equal jitter: between half and all of base · 2^n.
        assert_eq!(POLICY.delay(0, None, 0.0), Duration::from_millis(100));
        assert_eq!(POLICY.delay(0, None, 1.0), Duration::from_millis(200));
        assert_eq!(POLICY.delay(2, None, 0.0), Duration::from_millis(400));
        assert_eq!(POLICY.delay(2, None, 1.0), Duration::from_millis(800));
        assert_eq!(POLICY.delay(10, None, 1.0), Duration::from_secs(2));
        assert_eq!(POLICY.delay(40, None, 0.5), Duration::from_millis(1500));
    }

    #[test]
    fn retry_after_wins() {
        assert_eq!(
            POLICY.delay(0, Some(Duration::from_secs(3)), 0.9),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn what_is_retried() {
        let status = |status| LlmError::Status {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(retryable(&status(429)));
        assert!(retryable(&status(503)));
        assert!(!retryable(&status(401)));
        assert!(retryable(&LlmError::Unreachable("refused".into())));
        assert!(!retryable(&LlmError::Protocol("garbage".into())));
        assert!(!fall_back_after(&status(400)));
        assert!(fall_back_after(&status(401)));
    }
}
