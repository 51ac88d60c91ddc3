//! The fake OpenAI-compatible upstream: it answers after a fixed TTFT, then
//! streams tokens at a fixed pace, and times its own TTFT for each request
//! (so the app's overhead is measured against what the upstream itself took,
//! not against the configured delay).

use axum::response::IntoResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tags a question so the upstream can tell which client request a model
/// call came from: the app forwards the question's text, so the tag arrives
/// in the upstream's request body whichever way the request came.
pub fn tag(text: &str, marker: u64) -> String {
    format!("{text} {OPEN}{marker}]")
}

const OPEN: &str = "[load#";

fn marker_in(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find(OPEN)? + OPEN.len()..];
    rest[..rest.find(']')?].parse().ok()
}

/// The upstream's own TTFT (request received → first token sent), for every
/// request and by the marker of tagged ones.
#[derive(Default)]
pub struct UpstreamClock {
    pub ttft_ms: Vec<f64>,
    pub by_marker: HashMap<u64, f64>,
}

/// How the fake upstream answers.
#[derive(Clone, Copy)]
pub struct Pace {
    pub ttft: Duration,
    pub gap: Duration,
    pub tokens: usize,
}

/// Starts the upstream on a free port; its base URL (`…/v1`).
pub async fn fake_upstream(pace: Pace, clock: Arc<Mutex<UpstreamClock>>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let clock = clock.clone();
            async move {
                let received = Instant::now();
                let marker = marker_in(&body);
                let stream = async_stream(received, marker, pace, clock);
                (
                    [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(stream),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

fn async_stream(
    received: Instant,
    marker: Option<u64>,
    pace: Pace,
    clock: Arc<Mutex<UpstreamClock>>,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    let Pace { ttft, gap, tokens } = pace;
    futures::stream::unfold(0usize, move |i| {
        let clock = clock.clone();
        async move {
            if i == 0 {
                tokio::time::sleep(ttft).await;
            } else if i <= tokens {
                tokio::time::sleep(gap).await;
            }
            let frame = if i < tokens {
                if i == 0 {
                    let ms = received.elapsed().as_secs_f64() * 1000.0;
                    if let Ok(mut c) = clock.lock() {
                        c.ttft_ms.push(ms);
                        if let Some(marker) = marker {
                            c.by_marker.insert(marker, ms);
                        }
                    }
                }
                let delta = serde_json::json!({"choices":[{"index":0,"delta":{"content":format!("word{i} ")}}]});
                format!("data: {delta}\n\n")
            } else if i == tokens {
                format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
                     data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":200,\"completion_tokens\":{tokens}}}}}\n\n\
                     data: [DONE]\n\n"
                )
            } else {
                return None;
            };
            Some((Ok(frame), i + 1))
        }
    })
}
