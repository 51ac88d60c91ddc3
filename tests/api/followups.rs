//! Follow-ups retrieve in context: a follow-up is rewritten into a
//! standalone query before retrieval (by the model, or by the fallback when
//! the model is too slow), the reader sees what was searched for, and the
//! rewrite is its own stage in the turn's event.

use crate::documents::fixture;
use crate::faults::{upstream, Behaviour};
use crate::helpers::{spawn_app_http, started, TestApp};
use app::wire::{ChatEvent, DocumentStatus};
use sqlx::Row;

const FIRST: &str = "Who completed the Velloran bridge?";
const FOLLOW_UP: &str = "And in which year was it finished?";

fn usage(events: &[ChatEvent]) -> app::wire::Usage {
    events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Done { usage, .. } => Some(*usage),
            _ => None,
        })
        .expect("a done event")
}

fn searched_for(events: &[ChatEvent]) -> Option<Option<String>> {
    events.iter().find_map(|e| match e {
        ChatEvent::Sources { searched_for, .. } => Some(searched_for.clone()),
        _ => None,
    })
}

async fn rewrite_columns(app: &TestApp, message_id: &str) -> (Option<f64>, Option<String>) {
    let row =
        sqlx::query("SELECT rewrite_ms, rewrite_source FROM chat_events WHERE message_id = $1")
            .bind(message_id)
            .fetch_one(&app.db())
            .await
            .expect("the turn's event");
    (row.get("rewrite_ms"), row.get("rewrite_source"))
}

/// Asks the first question and the follow-up; the follow-up's events.
async fn two_turns(app: &TestApp) -> (Vec<ChatEvent>, Vec<ChatEvent>) {
    let doc = app
        .ingest("velloran-survey.pdf", fixture("velloran-survey.pdf"))
        .await;
    assert_eq!(doc.status, DocumentStatus::Indexed);
    let first = app.chat(None, FIRST).await;
    assert_eq!(
        searched_for(&first),
        Some(None),
        "a first question is searched as asked: {first:?}"
    );
    let (conversation, _) = started(&first);
    let second = app.chat(Some(&conversation), FOLLOW_UP).await;
    (first, second)
}

#[tokio::test]
async fn a_follow_up_is_searched_as_the_models_standalone_query() {
    let rewritten = "In which year was the Velloran bridge finished?";
    let up = upstream(Behaviour::Sequence(vec![
        Behaviour::Stream {
            tokens: vec!["Mara Quist completed it [1]."],
            usage: true,
        },
        // The rewrite, with a label and quotes the app strips.
        Behaviour::Stream {
            tokens: vec![
                "Query: \"In which year was the ",
                "Velloran bridge finished?\"",
            ],
            usage: true,
        },
        Behaviour::Stream {
            tokens: vec!["It was finished in 1873 [1]."],
            usage: true,
        },
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.rewrite.enabled = true).await;
    let (first, second) = two_turns(&app).await;
    assert_eq!(searched_for(&second), Some(Some(rewritten.to_owned())));
    // The rewrite's tokens are part of the turn's cost (the upstream reports
    // 21 + 3 per request).
    assert_eq!(usage(&first).prompt_tokens, 21);
    assert_eq!(usage(&second).prompt_tokens, 42);
    assert_eq!(usage(&second).completion_tokens, 6);

    // The rewrite request quoted the conversation and asked for a query.
    let requests = up.seen.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 3, "answer, rewrite, answer");
    assert!(requests[1].contains("Last question: And in which year was it finished?"));
    assert!(requests[1].contains(FIRST) && requests[1].contains("Mara Quist completed it"));
    // The answering model got the follow-up as the user wrote it.
    assert!(requests[2].contains(FOLLOW_UP), "{}", requests[2]);

    // The reader sees the query again after a reload.
    let (conversation, message) = started(&second);
    let view: app::wire::ConversationView =
        app.conversation(&conversation).await.json().await.unwrap();
    let answer = view.messages.iter().find(|m| m.id == message).unwrap();
    assert_eq!(answer.searched_for.as_deref(), Some(rewritten));
    assert_eq!(view.messages[1].searched_for, None, "the first answer");

    let (ms, source) = rewrite_columns(&app, &message).await;
    assert!(ms.is_some_and(|ms| ms > 0.0), "{ms:?}");
    assert_eq!(source.as_deref(), Some("model"));
    let (first_ms, _) = rewrite_columns(&app, &view.messages[1].id).await;
    assert_eq!(first_ms, None, "first questions skip the rewrite");
    assert!(app.metrics().await.contains("stage=\"rewrite\""));
}

#[tokio::test]
async fn a_slow_model_leaves_the_rewrite_to_the_fallback() {
    let up = upstream(Behaviour::Sequence(vec![
        Behaviour::Stream {
            tokens: vec!["Mara Quist completed it [1]."],
            usage: true,
        },
        // The rewrite never gets past its first byte.
        Behaviour::StallAfter(vec![]),
        Behaviour::Stream {
            tokens: vec!["It was finished in 1873 [1]."],
            usage: true,
        },
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.rewrite.enabled = true;
        s.rewrite.timeout_ms = 300;
    })
    .await;
    let (_, second) = two_turns(&app).await;
    let query = searched_for(&second).flatten().expect("a rewritten query");
    // The timed-out rewrite still cost its prompt (estimated).
    assert!(usage(&second).prompt_tokens > 21, "{:?}", usage(&second));
    assert_eq!(usage(&second).completion_tokens, 3);
    // The follow-up, with the first question's key terms added.
    assert!(query.starts_with(FOLLOW_UP), "{query}");
    assert!(
        query.contains("Velloran") && query.contains("bridge"),
        "{query}"
    );
    let sources = second
        .iter()
        .find_map(|e| match e {
            ChatEvent::Sources { sources, .. } => Some(sources.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        sources.iter().any(|s| s.text.contains("1873")),
        "the fallback query finds the passage: {sources:?}"
    );
    assert!(
        second.iter().any(|e| matches!(e, ChatEvent::Done { .. })),
        "the answer still comes: {second:?}"
    );
    let (_, message) = started(&second);
    let (ms, source) = rewrite_columns(&app, &message).await;
    assert!(
        ms.is_some_and(|ms| ms >= 300.0),
        "it waited for the model: {ms:?}"
    );
    assert_eq!(source.as_deref(), Some("fallback"));
}
