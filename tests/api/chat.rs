//! Validation, sessions, persistence and the page itself.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, spawn_app_http, started};
use app::error::AppError;

async fn app() -> (crate::helpers::TestApp, crate::faults::Upstream) {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Fine", "."],
        usage: true,
    })
    .await;
    (
        spawn_app_http(&up.base_url, |s| s.chat.max_message_chars = 100).await,
        up,
    )
}

#[tokio::test]
async fn empty_message_is_400_and_nothing_is_stored() {
    let (app, up) = app().await;
    for text in ["", "   \n\t "] {
        let response = app.send_raw(None, text).await;
        assert_eq!(response.status(), 400);
        let error: AppError = response.json().await.unwrap();
        assert_eq!(error, AppError::BadRequest("The message is empty.".into()));
    }
    assert!(app.conversations().await.is_empty());
    assert!(
        up.seen.lock().unwrap().requests.is_empty(),
        "the model was not called"
    );
}

#[tokio::test]
async fn over_long_message_is_400_and_nothing_is_stored() {
    let (app, _up) = app().await;
    // 101 characters, but more bytes: the limit counts characters.
    let response = app.send_raw(None, &"é".repeat(101)).await;
    assert_eq!(response.status(), 400);
    let error: AppError = response.json().await.unwrap();
    assert!(
        matches!(&error, AppError::BadRequest(m) if m.contains("too long") && m.contains("100")),
        "{error:?}"
    );
    assert!(app.conversations().await.is_empty());
    // Exactly at the limit is fine.
    let events = app.chat(None, &"é".repeat(100)).await;
    assert_eq!(answer_text(&events), "Fine.");
}

#[tokio::test]
async fn malformed_json_is_400_and_the_server_stays_up() {
    let (app, _up) = app().await;
    for body in ["{not json", "{\"text\": 5}", "[]", ""] {
        let response = app
            .client
            .post(app.url("/api/chat"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "body {body:?}");
    }
    let events = app.chat(None, "still there?").await;
    assert_eq!(answer_text(&events), "Fine.");
}

#[tokio::test]
async fn session_cookie_is_http_only_and_same_site() {
    let (app, _up) = app().await;
    let response = app.send_raw(None, "hello").await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ragchat_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
}

#[tokio::test]
async fn conversations_get_titles_and_follow_ups_share_history() {
    let (app, up) = app().await;
    let events = app
        .chat(None, "What is a monad?\nPlease explain simply")
        .await;
    let (conversation_id, _) = started(&events);
    let events = app.chat(Some(&conversation_id), "And a functor?").await;
    assert_eq!(started(&events).0, conversation_id);
    let list = app.conversations().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].title, "What is a monad?");
    let view: app::wire::ConversationView = app
        .conversation(&conversation_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view.messages.len(), 4);
    // The follow-up's prompt carried the earlier turn.
    let second = up.seen.lock().unwrap().requests[1].clone();
    assert!(
        second.contains("What is a monad?")
            && second.contains("Fine.")
            && second.contains("And a functor?"),
        "{second}"
    );
    // Deleting removes it.
    assert_eq!(
        app.post_form("/api/delete_conversation", &[("id", &conversation_id)])
            .await
            .status(),
        200
    );
    assert!(app.conversations().await.is_empty());
    assert_eq!(app.conversation(&conversation_id).await.status(), 404);
}

#[tokio::test]
async fn history_survives_a_restart() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Persisted"],
        usage: true,
    })
    .await;
    let temp = tempfile::TempDir::new().unwrap();
    // Real restarts: the server process ends and a new one opens the same data dir.
    let env = [("APP__LLM__BASE_URL", up.base_url.as_str())];
    let browser = crate::helpers::client();
    let first = crate::crash_recovery::start_with(temp.path(), &env);
    let response = browser
        .post(format!("{}/api/chat", first.base))
        .json(&serde_json::json!({ "conversation_id": null, "text": "Remember me" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = crate::helpers::read_events(response).await;
    let (conversation_id, _) = started(&events);
    drop(first);

    // Same browser (same cookie jar), new server process.
    let second = crate::crash_recovery::start_with(temp.path(), &env);
    let view: app::wire::ConversationView = browser
        .post(format!("{}/api/conversation", second.base))
        .form(&[("id", &conversation_id)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view.messages[0].content, "Remember me");
    assert_eq!(view.messages[1].content, "Persisted");

    // The server-rendered page shows the history too.
    let page = browser
        .get(format!("{}/c/{conversation_id}", second.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Remember me") && html.contains("Persisted"));
}

#[tokio::test]
async fn home_page_renders() {
    let (app, _up) = app().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("What can I help with?"));
    assert!(html.contains("/pkg/ragchat"));
    let headers = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .headers()
        .clone();
    assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff");
}
