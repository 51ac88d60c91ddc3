//! The response cache: identical requests are answered at once without the
//! model; a deleted document takes its cached answers with it.

use crate::documents::fixture;
use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, spawn_app_http, started, TestApp};
use app::wire::ChatEvent;

fn requests(up: &crate::faults::Upstream) -> usize {
    up.seen.lock().unwrap().requests.len()
}

async fn cache_hits(app: &TestApp) -> Vec<bool> {
    let hits: Vec<i64> =
        sqlx::query_scalar("SELECT CAST(cache_hit AS INTEGER) FROM chat_events ORDER BY at")
            .fetch_all(&app.db())
            .await
            .unwrap();
    hits.into_iter().map(|hit| hit != 0).collect()
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_cache_without_the_model() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Paris ", "is the capital."],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.cache.enabled = true).await;
    let first = app.chat(None, "What is the capital of France?").await;
    assert_eq!(requests(&up), 1);

    // A new conversation, same question in another spelling: from the cache.
    let second = app.chat(None, "  what is the capital of   FRANCE? ").await;
    assert_eq!(requests(&up), 1, "the model was not asked again");
    assert_eq!(answer_text(&second), answer_text(&first));
    let tokens = second
        .iter()
        .filter(|e| matches!(e, ChatEvent::Token { .. }))
        .count();
    assert_eq!(tokens, 1, "the whole answer at once");
    assert!(second
        .iter()
        .any(|e| matches!(e, ChatEvent::Model { cached: true, .. })));
    assert!(matches!(second.last(), Some(ChatEvent::Done { .. })));
    assert_eq!(cache_hits(&app).await, [false, true]);

    // A follow-up in the first conversation has history: not the same request.
    let (conversation_id, _) = started(&first);
    app.chat(Some(&conversation_id), "What is the capital of France?")
        .await;
    assert_eq!(requests(&up), 2);

    // The hit is counted in the metrics, and it cost no tokens.
    let metrics = app.metrics().await;
    assert!(metrics.contains("ragchat_cache_hits_total 1"), "{metrics}");
    let tokens: i64 = sqlx::query_scalar(
        "SELECT prompt_tokens + completion_tokens FROM chat_events WHERE cache_hit",
    )
    .fetch_one(&app.db())
    .await
    .unwrap();
    assert_eq!(tokens, 0);
}

#[tokio::test]
async fn deleting_a_document_invalidates_the_answers_that_used_it() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Completed in 1873 [1]."],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.cache.enabled = true).await;
    let doc = app
        .ingest("velloran-survey.pdf", fixture("velloran-survey.pdf"))
        .await;
    let question = "When was the Velloran bridge completed?";
    let first = app.chat(None, question).await;
    assert!(first.iter().any(|e| matches!(e, ChatEvent::Sources { .. })));
    let cited = app.chat(None, question).await;
    assert_eq!(requests(&up), 1, "the second answer came from the cache");
    // The cached answer keeps its sources and citations.
    assert!(cited.iter().any(|e| matches!(
        e,
        ChatEvent::Citations { sources } if sources.iter().any(|s| s.cited)
    )));
    let entries: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM response_cache_documents WHERE document_id = $1")
            .bind(&doc.id)
            .fetch_one(&app.db())
            .await
            .unwrap();
    assert_eq!(entries, 1);

    let deleted = app
        .client
        .delete(format!("{}/api/documents/{}", app.base(), doc.id))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM response_cache")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(remaining, 0);
    let after = app.chat(None, question).await;
    assert_eq!(requests(&up), 2, "asked the model again");
    assert!(!after.iter().any(|e| matches!(e, ChatEvent::Sources { .. })));
}
