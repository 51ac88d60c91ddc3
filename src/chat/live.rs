//! Answers outlive their readers: a generation publishes its events to a
//! [`LiveAnswer`], and any number of readers (the tab that asked, the same
//! tab after a reload, another tab or browser of the same account) read it:
//! everything so far at once, then live, with no gap and nothing twice.
//! A reader on a replica that isn't generating the answer follows what the
//! generating replica stores as it grows ([`follow_stored`]).

use crate::store::Store;
use app::wire::{ChatEvent, FinishReason, MessageStatus, MessageView, Usage};
use futures::stream::{BoxStream, Stream};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// At most this many readers follow one answer at once.
pub const MAX_READERS: usize = 32;

/// One answer's events, kept while it is generated.
#[derive(Default)]
pub struct LiveAnswer {
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    /// Every event so far, consecutive tokens joined: what a new reader
    /// gets first.
    replay: Vec<ChatEvent>,
    readers: Vec<mpsc::UnboundedSender<ChatEvent>>,
    ended: bool,
}

impl LiveAnswer {
    /// Tells every reader, and keeps the event for readers yet to come. The
    /// answer's last event (`Done` or `Error`) ends every reader's stream.
    pub fn publish(&self, event: ChatEvent) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.ended {
            return;
        }
        let last = matches!(event, ChatEvent::Done { .. } | ChatEvent::Error { .. });
        state
            .readers
            .retain(|reader| reader.send(event.clone()).is_ok());
        match (state.replay.last_mut(), event) {
            (Some(ChatEvent::Token { text }), ChatEvent::Token { text: more }) => {
                text.push_str(&more);
            }
            (_, event) => state.replay.push(event),
        }
        if last {
            state.ended = true;
            state.readers.clear();
        }
    }

    /// A reader: everything so far, then live until the answer ends. `None`
    /// when [`MAX_READERS`] already follow it.
    pub fn subscribe(&self) -> Option<BoxStream<'static, ChatEvent>> {
        let mut state = self.state.lock().ok()?;
        let replay = futures::stream::iter(state.replay.clone());
        if state.ended {
            return Some(Box::pin(replay));
        }
        state.readers.retain(|reader| !reader.is_closed());
        if state.readers.len() >= MAX_READERS {
            return None;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        state.readers.push(tx);
        let live = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Some(Box::pin(futures::StreamExt::chain(replay, live)))
    }
}

/// A reader's stream that, when `cancel` is given, stops the generation if
/// the reader goes away before the answer ends (the old cancel-on-disconnect
/// behaviour, kept as a setting).
pub struct Reader {
    events: BoxStream<'static, ChatEvent>,
    cancel: Option<CancellationToken>,
    ended: bool,
}

impl Reader {
    pub fn new(events: BoxStream<'static, ChatEvent>, cancel: Option<CancellationToken>) -> Self {
        Self {
            events,
            cancel,
            ended: false,
        }
    }
}

impl Stream for Reader {
    type Item = ChatEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChatEvent>> {
        let next = self.events.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.ended = true;
        }
        next
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let (false, Some(cancel)) = (self.ended, &self.cancel) {
            cancel.cancel();
        }
    }
}

/// How often a reader on another replica looks at the stored answer.
const STORED_POLL: Duration = Duration::from_millis(250);
/// A follower gives up after this long (generation is bounded by
/// `max_tokens` long before).
const MAX_FOLLOW: Duration = Duration::from_secs(30 * 60);
/// At most this many readers follow stored answers from one replica.
pub const MAX_STORED_FOLLOWERS: usize = 256;
static STORED_FOLLOWERS: AtomicUsize = AtomicUsize::new(0);

/// One follower's place among [`MAX_STORED_FOLLOWERS`], freed when dropped.
struct FollowerSlot;

impl FollowerSlot {
    fn take() -> Option<Self> {
        let taken = STORED_FOLLOWERS.fetch_add(1, Ordering::SeqCst);
        if taken >= MAX_STORED_FOLLOWERS {
            STORED_FOLLOWERS.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Self)
    }
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        STORED_FOLLOWERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a stored answer can't be followed.
pub enum FollowRefused {
    NotFound,
    Busy,
}

/// Follows one of the user's answers as stored: what it has so far, then
/// what is added (only the new text is read each time), until it ends.
pub async fn follow_stored(
    store: Store,
    user_id: String,
    message_id: String,
) -> Result<Result<BoxStream<'static, ChatEvent>, FollowRefused>, crate::store::StoreError> {
    let Some(first) = store.owned_answer(&user_id, &message_id).await? else {
        return Ok(Err(FollowRefused::NotFound));
    };
    let Some(slot) = FollowerSlot::take() else {
        return Ok(Err(FollowRefused::Busy));
    };
    struct Follow {
        store: Store,
        user_id: String,
        message_id: String,
        first: Option<MessageView>,
        sent_chars: usize,
        ended: bool,
        since: tokio::time::Instant,
        _slot: FollowerSlot,
    }
    let follow = Follow {
        store,
        user_id,
        message_id,
        first: Some(first),
        sent_chars: 0,
        ended: false,
        since: tokio::time::Instant::now(),
        _slot: slot,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        let mut events = Vec::new();
        let (status, more) = match f.first.take() {
            Some(first) => {
                if !first.sources.is_empty() {
                    events.push(ChatEvent::Sources {
                        sources: first.sources.clone(),
                        searched_for: first.searched_for.clone(),
                    });
                }
                (first.status, first.content)
            }
            None => {
                tokio::time::sleep(STORED_POLL).await;
                let tail = f
                    .store
                    .answer_tail(&f.user_id, &f.message_id, f.sent_chars)
                    .await;
                match tail {
                    Ok(Some(tail)) => tail,
                    Ok(None) => {
                        f.ended = true;
                        let gone = ChatEvent::Error {
                            message: "This answer was deleted.".into(),
                        };
                        return Some((vec![gone], f));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "following a stored answer");
                        return Some((Vec::new(), f));
                    }
                }
            }
        };
        if !more.is_empty() {
            f.sent_chars += more.chars().count();
            events.push(ChatEvent::Token { text: more });
        }
        if status != MessageStatus::Streaming {
            f.ended = true;
            match f.store.owned_answer(&f.user_id, &f.message_id).await {
                Ok(Some(message)) => events.extend(ending(&message)),
                _ => events.push(ChatEvent::Error {
                    message: "This answer could not be read.".into(),
                }),
            }
        } else if f.since.elapsed() > MAX_FOLLOW {
            f.ended = true;
            events.push(ChatEvent::Error {
                message: "Stopped following this answer; reload to see it.".into(),
            });
        }
        Some((events, f))
    });
    Ok(Ok(Box::pin(futures::StreamExt::flat_map(
        events,
        futures::stream::iter,
    ))))
}

/// The last events of a stored answer that has ended.
fn ending(message: &MessageView) -> Vec<ChatEvent> {
    let mut events = Vec::new();
    if !message.sources.is_empty() {
        events.push(ChatEvent::Citations {
            sources: message.sources.clone(),
        });
    }
    let done = |finish_reason| ChatEvent::Done {
        usage: Usage {
            prompt_tokens: 0,
            completion_tokens: message.completion_tokens.unwrap_or(0),
        },
        ttft_ms: message.ttft_ms.unwrap_or(0),
        total_ms: message.total_ms.unwrap_or(0),
        finish_reason,
    };
    events.push(match message.status {
        MessageStatus::Complete | MessageStatus::Streaming => done(FinishReason::Stop),
        MessageStatus::Stopped => done(FinishReason::Cancelled),
        MessageStatus::Incomplete => ChatEvent::Error {
            message: message
                .error
                .clone()
                .unwrap_or_else(|| "This answer is incomplete.".into()),
        },
    });
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn token(text: &str) -> ChatEvent {
        ChatEvent::Token { text: text.into() }
    }

    fn done() -> ChatEvent {
        ChatEvent::Done {
            usage: Usage::default(),
            ttft_ms: 1,
            total_ms: 2,
            finish_reason: FinishReason::Stop,
        }
    }

    #[tokio::test]
    async fn a_late_reader_gets_everything_once_then_live() {
        let live = LiveAnswer::default();
        live.publish(token("Hel"));
        let early = live.subscribe().unwrap();
        live.publish(token("lo"));
        let late = live.subscribe().unwrap();
        live.publish(token(" world"));
        live.publish(done());
        let early: Vec<ChatEvent> = early.collect().await;
        let late: Vec<ChatEvent> = late.collect().await;
        assert_eq!(
            early,
            vec![token("Hel"), token("lo"), token(" world"), done()]
        );
        // The late reader's first event is everything so far, in one piece.
        assert_eq!(late, vec![token("Hello"), token(" world"), done()]);
        // After the end: the whole answer, and the stream ends.
        let after: Vec<ChatEvent> = live.subscribe().unwrap().collect().await;
        assert_eq!(after, vec![token("Hello world"), done()]);
    }

    #[tokio::test]
    async fn readers_are_bounded_and_gone_ones_free_their_place() {
        let live = LiveAnswer::default();
        let readers: Vec<_> = (0..MAX_READERS)
            .map(|_| live.subscribe().unwrap())
            .collect();
        assert!(live.subscribe().is_none());
        drop(readers);
        assert!(live.subscribe().is_some());
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_cancels_only_when_asked_to() {
        let live = LiveAnswer::default();
        let cancel = CancellationToken::new();
        drop(Reader::new(live.subscribe().unwrap(), None));
        assert!(!cancel.is_cancelled());
        drop(Reader::new(live.subscribe().unwrap(), Some(cancel.clone())));
        assert!(cancel.is_cancelled());
        // A reader that read to the end cancels nothing.
        let finished = CancellationToken::new();
        live.publish(done());
        let mut reader = Reader::new(live.subscribe().unwrap(), Some(finished.clone()));
        while reader.next().await.is_some() {}
        drop(reader);
        assert!(!finished.is_cancelled());
    }
}
