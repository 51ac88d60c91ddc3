//! Retries with backoff (honouring Retry-After) and fallback to the next
//! model, against the fault-injecting upstream.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, spawn_app_http, started, TestApp};
use app::wire::ChatEvent;
use std::time::{Duration, Instant};

fn ok(tokens: Vec<&'static str>) -> Behaviour {
    Behaviour::Stream {
        tokens,
        usage: true,
    }
}

async fn event_row(app: &TestApp, message_id: &str) -> (String, i64, bool, Option<String>) {
    let (model, retries, fallback, error): (String, i64, i64, Option<String>) = sqlx::query_as(
        "SELECT model, retries, CAST(fallback_used AS INTEGER), error_class \
         FROM chat_events WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_one(&app.db())
    .await
    .unwrap();
    (model, retries, fallback != 0, error)
}

#[tokio::test]
async fn a_429_is_retried_after_the_time_the_server_asked_for() {
    let up = upstream(Behaviour::Sequence(vec![
        Behaviour::StatusRetryAfter(429, 1),
        ok(vec!["second ", "time ", "lucky"]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.llm.max_retries = 2).await;
    let asked = Instant::now();
    let events = app.chat(None, "hello").await;
    let waited = asked.elapsed();
    assert_eq!(answer_text(&events), "second time lucky");
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After honoured: {waited:?}"
    );
    assert_eq!(up.seen.lock().unwrap().requests.len(), 2);
    let model_event = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Model {
                retries, fallback, ..
            } => Some((*retries, *fallback)),
            _ => None,
        })
        .expect("a model event");
    assert_eq!(model_event, (1, false));
    let (_, message_id) = started(&events);
    let (model, retries, fallback, error) = event_row(&app, &message_id).await;
    assert_eq!(
        (model.as_str(), retries, fallback, error),
        ("test-model", 1, false, None)
    );
}

#[tokio::test]
async fn a_failing_model_falls_back_to_the_next_and_the_answer_says_which() {
    let primary = upstream(Behaviour::Status(500, "{\"error\":{\"message\":\"boom\"}}")).await;
    let backup = upstream(ok(vec!["from ", "the ", "backup"])).await;
    let backup_url = backup.base_url.clone();
    let app = spawn_app_http(&primary.base_url, move |s| {
        s.llm.max_retries = 1;
        s.llm.retry_base_ms = 10;
        s.llm.fallbacks = vec![crate::helpers::http_model(&backup_url, "backup-model")];
    })
    .await;
    let events = app.chat(None, "hello").await;
    assert_eq!(answer_text(&events), "from the backup");
    assert_eq!(
        primary.seen.lock().unwrap().requests.len(),
        2,
        "one try and one retry"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        ChatEvent::Model { model, fallback: true, retries: 2, cached: false } if model == "backup-model"
    )));
    let (conversation_id, message_id) = started(&events);
    let (model, retries, fallback, _) = event_row(&app, &message_id).await;
    assert_eq!(
        (model.as_str(), retries, fallback),
        ("backup-model", 2, true)
    );
    // The stored answer names the model that wrote it.
    let view: app::wire::ConversationView = app
        .conversation(&conversation_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view.messages[1].model.as_deref(), Some("backup-model"));
}

#[tokio::test]
async fn a_stall_before_the_first_token_is_retried_but_a_broken_stream_is_not() {
    let up = upstream(Behaviour::Sequence(vec![
        Behaviour::StallAfter(vec![]),
        ok(vec!["after ", "the ", "stall"]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.max_retries = 1;
        s.llm.retry_base_ms = 10;
        s.llm.first_token_timeout_secs = 1;
    })
    .await;
    assert_eq!(
        answer_text(&app.chat(None, "hello").await),
        "after the stall"
    );

    // Tokens already shown are never replaced by a retry.
    let truncated = upstream(Behaviour::Sequence(vec![
        Behaviour::TruncateAfter(vec!["half an "]),
        ok(vec!["a different answer"]),
    ]))
    .await;
    let app = spawn_app_http(&truncated.base_url, |s| s.llm.max_retries = 2).await;
    let events = app.chat(None, "hello").await;
    assert!(matches!(events.last(), Some(ChatEvent::Error { .. })));
    assert_eq!(answer_text(&events), "half an ");
    assert_eq!(truncated.seen.lock().unwrap().requests.len(), 1);
}

#[tokio::test]
async fn when_every_model_fails_the_last_error_is_reported() {
    let up = upstream(Behaviour::Status(
        503,
        "{\"error\":{\"message\":\"overloaded\"}}",
    ))
    .await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.max_retries = 2;
        s.llm.retry_base_ms = 10;
    })
    .await;
    let events = app.chat(None, "hello").await;
    match events.last() {
        Some(ChatEvent::Error { message }) => assert!(message.contains("503"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(up.seen.lock().unwrap().requests.len(), 3);
}
