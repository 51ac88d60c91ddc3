//! Regenerate, edit and branch; answers that outlive their reader; the cap
//! on answers generating at once.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, read_events, spawn_app_http, started, TestApp};
use app::wire::{ChatEvent, ConversationView, FinishReason, MessageStatus, Role};
use futures::StreamExt;
use std::time::Duration;

fn stream(tokens: Vec<&'static str>) -> Behaviour {
    Behaviour::Stream {
        tokens,
        usage: true,
    }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn view(&self, conversation: &str) -> ConversationView {
        let response = self.conversation(conversation).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Regenerates an answer and reads the new version to its end.
    pub async fn regenerate(&self, message_id: &str) -> Vec<ChatEvent> {
        let response = self
            .post_json(
                "/api/regenerate",
                serde_json::json!({ "message_id": message_id }),
            )
            .await;
        assert_eq!(response.status(), 200);
        read_events(response).await
    }
}

fn contents(view: &ConversationView) -> Vec<&str> {
    view.messages.iter().map(|m| m.content.as_str()).collect()
}

#[tokio::test]
async fn regenerating_keeps_both_versions_and_the_chosen_one_survives_a_reload() {
    let up = upstream(Behaviour::Sequence(vec![
        stream(vec!["First ", "answer."]),
        stream(vec!["Second ", "answer."]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.cache.enabled = true).await;
    let (conversation, first) = started(&app.chat(None, "Tell me something").await);

    let events = app.regenerate(&first).await;
    let (same_conversation, second) = started(&events);
    assert_eq!(same_conversation, conversation);
    assert_ne!(second, first);
    assert_eq!(answer_text(&events), "Second answer.");
    // Never from the response cache, though the question is the same.
    assert!(events
        .iter()
        .all(|e| !matches!(e, ChatEvent::Model { cached: true, .. })));

    let view = app.view(&conversation).await;
    assert_eq!(contents(&view), ["Tell me something", "Second answer."]);
    let versions = view.messages[1].versions.clone().expect("two versions");
    assert_eq!((versions.position, versions.count), (2, 2));
    assert_eq!(versions.previous.as_deref(), Some(first.as_str()));
    assert!(view.messages[0].versions.is_none());

    // Switching shows the first version, and a reload (any tab) keeps it.
    let switched: ConversationView = app
        .post_form("/api/switch_branch", &[("message_id", &first)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contents(&switched)[1], "First answer.");
    let reloaded = app.view(&conversation).await;
    assert_eq!(reloaded, switched);
    assert_eq!(reloaded.messages[1].versions.as_ref().unwrap().position, 1);

    // Each version is its own answer: its own vote and its own turn event,
    // the second marked as a regeneration.
    for (id, rating) in [(&first, "up"), (&second, "down")] {
        let voted = app
            .post_form("/api/rate", &[("message_id", id), ("rating", rating)])
            .await;
        assert_eq!(voted.status(), 200);
    }
    let turns: Vec<String> = sqlx::query_scalar("SELECT message_id FROM chat_events ORDER BY at")
        .fetch_all(&app.db())
        .await
        .unwrap();
    assert_eq!(turns, [first.clone(), second.clone()]);
    let regenerated: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM chat_events WHERE regenerated")
            .fetch_all(&app.db())
            .await
            .unwrap();
    assert_eq!(regenerated, std::slice::from_ref(&second));
    assert_eq!(up.seen.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn an_edited_question_branches_and_the_model_sees_only_the_active_branch() {
    let up = upstream(Behaviour::Sequence(vec![
        stream(vec!["Alpha."]),
        stream(vec!["Beta."]),
        stream(vec!["Gamma."]),
        stream(vec!["Delta."]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (conversation, _) = started(&app.chat(None, "Question one").await);
    app.chat(Some(&conversation), "Question two").await;
    let view = app.view(&conversation).await;
    let question_two = view.messages[2].id.clone();

    let response = app
        .post_json(
            "/api/edit",
            serde_json::json!({ "message_id": question_two, "text": "Question two, better" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let events = read_events(response).await;
    assert_eq!(answer_text(&events), "Gamma.");
    let edit_request = up.seen.lock().unwrap().requests[2].clone();
    assert!(edit_request.contains("Question two, better"));
    assert!(edit_request.contains("Alpha."));
    assert!(!edit_request.contains("Beta."), "the old branch stays out");

    let view = app.view(&conversation).await;
    assert_eq!(
        contents(&view),
        ["Question one", "Alpha.", "Question two, better", "Gamma."]
    );
    let versions = view.messages[2].versions.clone().unwrap();
    assert_eq!((versions.position, versions.count), (2, 2));
    assert_eq!(versions.previous.as_deref(), Some(question_two.as_str()));

    // The old branch, with its later turns, is still there.
    let old: ConversationView = app
        .post_form("/api/switch_branch", &[("message_id", &question_two)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        contents(&old),
        ["Question one", "Alpha.", "Question two", "Beta."]
    );
    // A question asked now follows the branch shown.
    app.chat(Some(&conversation), "Question three").await;
    let last_request = up.seen.lock().unwrap().requests[3].clone();
    assert!(last_request.contains("Beta.") && !last_request.contains("Gamma."));
    assert_eq!(app.view(&conversation).await.messages.len(), 6);
}

#[tokio::test]
async fn an_answer_keeps_generating_after_its_reader_leaves_and_can_be_followed() {
    let tokens = vec![
        "one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight ", "nine ", "ten.",
    ];
    let whole: String = tokens.concat();
    let up = upstream(Behaviour::Paced(tokens, 60)).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let response = app.send_raw(None, "Count to ten").await;
    let mut body = response.bytes_stream();
    let mut decoder = app::ndjson::LineDecoder::new();
    let mut seen = Vec::new();
    while !seen.iter().any(|e| matches!(e, ChatEvent::Token { .. })) {
        let chunk = body.next().await.unwrap().unwrap();
        seen.extend(
            decoder
                .push::<ChatEvent>(&chunk)
                .into_iter()
                .map(Result::unwrap),
        );
    }
    let (conversation, answer) = started(&seen);
    // The reader goes away (a reload), mid-answer.
    drop(body);
    tokio::time::sleep(Duration::from_millis(150)).await;

    // What is stored so far is a prefix of the answer, still streaming.
    let stored = app.view(&conversation).await.messages[1].clone();
    assert_eq!(stored.status, MessageStatus::Streaming);
    assert!(whole.starts_with(&stored.content));

    // Following it gives everything so far, then the rest: the same text
    // as an uninterrupted run, nothing twice.
    let followed = app
        .post_json("/api/follow", serde_json::json!({ "message_id": answer }))
        .await;
    assert_eq!(followed.status(), 200);
    let events = read_events(followed).await;
    assert_eq!(answer_text(&events), whole);
    assert!(matches!(
        events.last(),
        Some(ChatEvent::Done {
            finish_reason: FinishReason::Stop,
            ..
        })
    ));
    let stored = app.view(&conversation).await.messages[1].clone();
    assert_eq!(
        (stored.status, stored.content.as_str()),
        (MessageStatus::Complete, whole.as_str())
    );
    // A finished answer follows whole, at once.
    let again = read_events(
        app.post_json("/api/follow", serde_json::json!({ "message_id": answer }))
            .await,
    )
    .await;
    assert_eq!(answer_text(&again), whole);

    // Nobody else can follow or stop it.
    let stranger = spawn_app_http(&up.base_url, |_| {}).await;
    let other = reqwest::Client::new();
    for path in ["/api/follow"] {
        let refused = other
            .post(app.url(path))
            .json(&serde_json::json!({ "message_id": answer }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 404);
    }
    drop(stranger);
}

#[tokio::test]
async fn answers_generating_at_once_are_capped_per_user_and_per_conversation() {
    let up = upstream(Behaviour::Endless).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.max_tokens = 100_000;
        s.chat.max_generating_per_user = 2;
    })
    .await;
    let first = app.send_raw(None, "Talk forever").await;
    assert_eq!(first.status(), 200);
    let mut first = first.bytes_stream();
    let chunk = first.next().await.unwrap().unwrap();
    let mut decoder = app::ndjson::LineDecoder::new();
    let start: Vec<ChatEvent> = decoder
        .push::<ChatEvent>(&chunk)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let (conversation, answer) = started(&start);

    // The same conversation is busy until its answer ends.
    let busy = app.send_raw(Some(&conversation), "And then?").await;
    assert_eq!(busy.status(), 409);
    let second = app.send_raw(None, "Talk forever too").await;
    assert_eq!(second.status(), 200);
    let third = app.send_raw(None, "And a third").await;
    assert_eq!(third.status(), 429);
    assert!(third.text().await.unwrap().contains("2 answers"));

    // Stop frees a place.
    let stopped = app.post_form("/api/stop", &[("message_id", &answer)]).await;
    assert_eq!(stopped.status(), 200);
    let rest: Vec<u8> = first.map(|c| c.unwrap().to_vec()).concat().await;
    assert!(String::from_utf8_lossy(&rest).contains("cancelled"));
    let now = app.send_raw(None, "Now?").await;
    assert_eq!(now.status(), 200);
    let view = app.view(&conversation).await;
    assert_eq!(view.messages.len(), 2, "the refused turns stored nothing");
    assert_eq!(view.messages[0].role, Role::User);
}

#[tokio::test]
async fn turns_started_at_once_are_counted_one_at_a_time() {
    let up = upstream(Behaviour::Endless).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.llm.max_tokens = 100_000;
        s.chat.max_generating_per_user = 2;
    })
    .await;
    // A first turn makes the user (guest) that the racing ones share.
    let first = app.send_raw(None, "One").await;
    assert_eq!(first.status(), 200);
    let racing =
        futures::future::join_all(["Two", "Three", "Four"].map(|text| app.send_raw(None, text)))
            .await;
    let mut statuses: Vec<u16> = racing.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    // Never a server error (a deadlock), and never more than the cap.
    assert_eq!(statuses, [200, 429, 429]);
    drop((first, racing));
}
