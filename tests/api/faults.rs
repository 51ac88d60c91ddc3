//! The HTTP provider against a fault injector: a tiny OpenAI-style SSE server
//! written here that answers with 429/500, stalls, truncates or streams
//! forever, and records what it was sent.

use crate::helpers::{answer_text, read_events, spawn_app_http, started};
use app::wire::{ChatEvent, FinishReason, MessageStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
pub enum Behaviour {
    Stream {
        tokens: Vec<&'static str>,
        usage: bool,
    },
    Status(u16, &'static str),
    StallAfter(Vec<&'static str>),
    TruncateAfter(Vec<&'static str>),
    Endless,
    /// The tokens one at a time, `delay_ms` apart, then a normal end.
    Paced(Vec<&'static str>, u64),
    /// A status with a `Retry-After` header (seconds).
    StatusRetryAfter(u16, u64),
    /// The n-th request gets the n-th behaviour (the last one repeats).
    Sequence(Vec<Behaviour>),
}

#[derive(Default)]
pub struct Seen {
    pub requests: Vec<String>,
    /// When the server noticed the client had gone.
    pub disconnected_at: Option<Instant>,
}

pub struct Upstream {
    pub base_url: String,
    pub seen: Arc<Mutex<Seen>>,
}

pub async fn upstream(behaviour: Behaviour) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    tokio::spawn(async move {
        let mut served = 0usize;
        while let Ok((socket, _)) = listener.accept().await {
            let this = match &behaviour {
                Behaviour::Sequence(steps) => steps[served.min(steps.len() - 1)].clone(),
                other => other.clone(),
            };
            served += 1;
            tokio::spawn(serve(socket, this, state.clone()));
        }
    });
    Upstream { base_url, seen }
}

fn frame(token: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"choices":[{"index":0,"delta":{"content":token}}]})
    )
}

async fn serve(mut socket: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Seen>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Headers, then a body of Content-Length bytes.
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if request.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    seen.lock()
        .unwrap()
        .requests
        .push(String::from_utf8_lossy(&request).to_string());
    let sse_head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    match behaviour {
        Behaviour::Sequence(_) => unreachable!("resolved per request"),
        Behaviour::StatusRetryAfter(code, secs) => {
            let body = "{\"error\":{\"message\":\"slow down\"}}";
            let head = format!(
                "HTTP/1.1 {code} Error\r\nRetry-After: {secs}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
        }
        Behaviour::Status(code, body) => {
            let head = format!(
                "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
        }
        Behaviour::Stream { tokens, usage } => {
            let mut out = format!("{sse_head}: keep-alive\n\n");
            for t in &tokens {
                out.push_str(&frame(t));
            }
            out.push_str(
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            );
            if usage {
                out.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":3,\"total_tokens\":24}}\n\n");
            }
            out.push_str("data: [DONE]\n\n");
            // Write in small pieces so frames are split across reads.
            for piece in out.as_bytes().chunks(7) {
                if socket.write_all(piece).await.is_err() {
                    return;
                }
                socket.flush().await.ok();
            }
        }
        Behaviour::Paced(tokens, delay_ms) => {
            if socket.write_all(sse_head.as_bytes()).await.is_err() {
                return;
            }
            for t in &tokens {
                if socket.write_all(frame(t).as_bytes()).await.is_err() {
                    seen.lock().unwrap().disconnected_at = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let end = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
            let _ = socket.write_all(end.as_bytes()).await;
        }
        Behaviour::StallAfter(tokens) => {
            let mut out = sse_head.to_string();
            tokens.iter().for_each(|t| out.push_str(&frame(t)));
            let _ = socket.write_all(out.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Behaviour::TruncateAfter(tokens) => {
            let mut out = sse_head.to_string();
            tokens.iter().for_each(|t| out.push_str(&frame(t)));
            let _ = socket.write_all(out.as_bytes()).await;
            // Close without [DONE].
        }
        Behaviour::Endless => {
            if socket.write_all(sse_head.as_bytes()).await.is_err() {
                return;
            }
            for i in 0.. {
                if socket
                    .write_all(frame(&format!("t{i} ")).as_bytes())
                    .await
                    .is_err()
                {
                    seen.lock().unwrap().disconnected_at = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn final_event(events: &[ChatEvent]) -> &ChatEvent {
    events.last().expect("at least one event")
}

#[tokio::test]
async fn streams_tokens_usage_and_sends_key_and_model() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Hel", "lo ", "wörld"],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.api_key = Some("sk-test-123".to_string().into())
    })
    .await;
    let events = app.chat(None, "Say hello").await;
    assert_eq!(answer_text(&events), "Hello wörld");
    match final_event(&events) {
        ChatEvent::Done {
            usage,
            finish_reason,
            ..
        } => {
            assert_eq!(usage.prompt_tokens, 21);
            assert_eq!(usage.completion_tokens, 3);
            assert_eq!(*finish_reason, FinishReason::Stop);
        }
        other => panic!("{other:?}"),
    }
    let request = up.seen.lock().unwrap().requests[0].clone();
    assert!(
        request.starts_with("POST /v1/chat/completions "),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-test-123"),
        "{request}"
    );
    assert!(request.contains("\"model\":\"test-model\""), "{request}");
    assert!(request.contains("\"stream\":true"), "{request}");
    assert!(request.contains("Say hello"), "{request}");

    // Stored as complete, with the same text.
    let (conversation_id, _) = started(&events);
    let view: app::wire::ConversationView = app
        .conversation(&conversation_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.messages[1].content, "Hello wörld");
    assert_eq!(view.messages[1].status, MessageStatus::Complete);
}

async fn assert_fails_and_keeps_partial(
    behaviour: Behaviour,
    expected_partial: &str,
    message_part: &str,
) {
    let up = upstream(behaviour).await;
    let app = spawn_app_http(&up.base_url, |s| s.llm.stall_timeout_secs = 1).await;
    let events = app.chat(None, "Question").await;
    assert_eq!(answer_text(&events), expected_partial);
    match final_event(&events) {
        ChatEvent::Error { message } => assert!(message.contains(message_part), "{message}"),
        other => panic!("expected an error event, got {other:?}"),
    }
    let (conversation_id, _) = started(&events);
    let view: app::wire::ConversationView = app
        .conversation(&conversation_id)
        .await
        .json()
        .await
        .unwrap();
    let answer = &view.messages[1];
    assert_eq!(answer.content, expected_partial);
    assert_eq!(answer.status, MessageStatus::Incomplete);
    assert!(answer.error.as_deref().unwrap().contains(message_part));
    // The server is still up.
    assert_eq!(
        app.client.get(app.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn rate_limited_upstream_is_a_clear_error() {
    assert_fails_and_keeps_partial(
        Behaviour::Status(429, r#"{"error":{"message":"Rate limit reached"}}"#),
        "",
        "rate limiting",
    )
    .await;
}

#[tokio::test]
async fn upstream_500_is_a_clear_error() {
    assert_fails_and_keeps_partial(
        Behaviour::Status(500, r#"{"error":"boom"}"#),
        "",
        "failed (500)",
    )
    .await;
}

#[tokio::test]
async fn stalled_stream_keeps_the_partial_answer() {
    assert_fails_and_keeps_partial(
        Behaviour::StallAfter(vec!["Partial ", "answer"]),
        "Partial answer",
        "stopped responding",
    )
    .await;
}

#[tokio::test]
async fn truncated_stream_keeps_the_partial_answer() {
    assert_fails_and_keeps_partial(
        Behaviour::TruncateAfter(vec!["Cut ", "off"]),
        "Cut off",
        "cut off",
    )
    .await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_clear_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let app = spawn_app_http(&base_url, |_| {}).await;
    let events = app.chat(None, "Anyone there?").await;
    match final_event(&events) {
        ChatEvent::Error { message } => {
            assert!(message.contains("could not be reached"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn with_cancel_on_disconnect_closing_the_browser_stream_cancels_the_upstream_request() {
    let up = upstream(Behaviour::Endless).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.max_tokens = 100_000;
        s.chat.cancel_on_disconnect = true;
    })
    .await;
    let response = app.send_raw(None, "Talk forever").await;
    let mut body = response.bytes_stream();
    use futures::StreamExt;
    let mut received = 0;
    while received < 5 {
        received += body.next().await.unwrap().unwrap().len().min(1);
    }
    let dropped_at = Instant::now();
    drop(body);
    let deadline = dropped_at + Duration::from_secs(5);
    let disconnected_at = loop {
        if let Some(t) = up.seen.lock().unwrap().disconnected_at {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "upstream still streaming 5 s after the browser left"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let latency = disconnected_at.duration_since(dropped_at);
    println!(
        "upstream cancelled {} ms after the client disconnected",
        latency.as_millis()
    );
    assert!(latency < Duration::from_secs(1), "took {latency:?}");

    // The partial answer is kept, marked stopped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let conversations = app.conversations().await;
    let view: app::wire::ConversationView = app
        .conversation(&conversations[0].id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view.messages[1].status, MessageStatus::Stopped);
    assert!(view.messages[1].content.starts_with("t0 "));
}

#[tokio::test]
async fn stop_endpoint_cancels_generation() {
    let up = upstream(Behaviour::Endless).await;
    let app = spawn_app_http(&up.base_url, |s| s.llm.max_tokens = 100_000).await;
    let response = app.send_raw(None, "Talk forever").await;
    let mut decoder = app::ndjson::LineDecoder::new();
    let mut body = response.bytes_stream();
    use futures::StreamExt;
    let mut message_id = None;
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        for event in decoder.push::<ChatEvent>(&chunk.unwrap()) {
            let event = event.unwrap();
            if let ChatEvent::Start { message_id: id, .. } = &event {
                message_id = Some(id.clone());
            }
            if matches!(event, ChatEvent::Token { .. }) && events.len() == 3 {
                let stop = app
                    .post_form(
                        "/api/stop",
                        &[("message_id", message_id.as_deref().unwrap())],
                    )
                    .await;
                assert_eq!(stop.status(), 200);
            }
            events.push(event);
        }
    }
    match events.last().unwrap() {
        ChatEvent::Done { finish_reason, .. } => {
            assert_eq!(*finish_reason, FinishReason::Cancelled)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        up.seen.lock().unwrap().disconnected_at.is_some() || {
            tokio::time::sleep(Duration::from_millis(300)).await;
            up.seen.lock().unwrap().disconnected_at.is_some()
        }
    );
    // A second stop of a finished answer: nothing to stop.
    let again = app
        .post_form(
            "/api/stop",
            &[("message_id", message_id.as_deref().unwrap())],
        )
        .await;
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn missing_usage_is_estimated() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["a", "b"],
        usage: false,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let events = read_events(app.send_raw(None, "hi").await).await;
    match final_event(&events) {
        ChatEvent::Done { usage, .. } => assert_eq!(usage.completion_tokens, 2),
        other => panic!("{other:?}"),
    }
}
