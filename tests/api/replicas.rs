//! Replicas sharing one Postgres database: a person may land on any of them
//! from one request to the next. Run when `TEST_POSTGRES_URL` is set.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{postgres_database, spawn_app_http, started, test_postgres, TestApp};
use app::wire::{Dashboard, NewApiKey};
use futures::StreamExt;

/// A fresh database on the test Postgres server, or `None` (and a SKIP
/// line) without one.
async fn shared_database(test: &str) -> Option<String> {
    let Some(server) = test_postgres() else {
        println!("SKIP {test}: TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("ragchat_test_{}", uuid::Uuid::new_v4().simple());
    Some(postgres_database(&server, &name).await)
}

/// An app instance (its own port, data dir and in-process state) on `database`.
async fn replica(database: &str, base_url: &str, max_tokens: u32) -> TestApp {
    let url = database.to_owned();
    spawn_app_http(base_url, move |s| {
        s.database.url = Some(url.into());
        s.llm.max_tokens = max_tokens;
    })
    .await
}

#[tokio::test]
async fn a_person_can_land_on_any_replica() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Both ", "replicas ", "agree."],
        usage: true,
    })
    .await;
    let Some(database) = shared_database("a_person_can_land_on_any_replica").await else {
        return;
    };
    let a = replica(&database, &up.base_url, 48).await;
    let mut b = replica(&database, &up.base_url, 48).await;
    // One browser: its cookie goes to both (cookies don't care about ports).
    b.client = a.client.clone();

    // Signed up on one, signed in on the other.
    let signed_up = a
        .post_form(
            "/api/sign_up",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let (conversation, answer) = started(&b.chat(None, "asked on replica b").await);
    let listed = a.conversations().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, conversation);
    assert_eq!(a.conversation(&conversation).await.status(), 200);

    // A vote on one shows in the other's dashboard, with the turn it rates.
    let voted = a
        .post_form("/api/rate", &[("message_id", &answer), ("rating", "up")])
        .await;
    assert_eq!(voted.status(), 200);
    let dashboard: Dashboard = b
        .post_form("/api/admin/dashboard", &[("hours", "1")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard.turns, 1);
    let up_rate = dashboard.by_model[0].up_rate.unwrap();
    assert_eq!((up_rate.successes, up_rate.trials), (1, 1));

    // A key made on one works on the other, until it is revoked there.
    let made: NewApiKey = a
        .post_form("/api/keys/create", &[("name", "script")])
        .await
        .json()
        .await
        .unwrap();
    let with_key = |app: &TestApp| {
        reqwest::Client::new()
            .post(app.url("/api/conversations"))
            .bearer_auth(&made.secret)
            .send()
    };
    assert_eq!(with_key(&b).await.unwrap().status(), 200);
    let revoked = b
        .post_form("/api/keys/revoke", &[("id", &made.key.id)])
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(with_key(&a).await.unwrap().status(), 401);

    // Bob, disabled on one replica, is refused by the other at once.
    let bob_browser = crate::helpers::client();
    let bob: app::wire::AccountView = bob_browser
        .post(b.url("/api/sign_up"))
        .form(&[("username", "bob"), ("password", "battery staple")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let disabled = a
        .post_form(
            "/api/admin/set_disabled",
            &[("user_id", &bob.user_id), ("disabled", "true")],
        )
        .await;
    assert_eq!(disabled.status(), 200);
    let refused = bob_browser
        .post(b.url("/api/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn a_replica_starting_leaves_the_others_answers_streaming() {
    let up = upstream(Behaviour::Endless).await;
    let test = "a_replica_starting_leaves_the_others_answers_streaming";
    let Some(database) = shared_database(test).await else {
        return;
    };
    let a = replica(&database, &up.base_url, 100_000).await;
    let response = a.send_raw(None, "Talk forever").await;
    let mut body = response.bytes_stream();
    let mut received = 0;
    while received < 5 {
        received += body.next().await.unwrap().unwrap().len().min(1);
    }
    // Another replica starts (a deploy, or a restart after a crash)…
    let _b = replica(&database, &up.base_url, 100_000).await;
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE role = 'assistant'")
        .fetch_one(&a.db())
        .await
        .unwrap();
    // …and leaves the answer that replica a is still streaming alone.
    assert_eq!(status, "streaming");
    drop(body);
}

/// Reads a chat response until its `Start` event; returns the answer's id
/// and the rest of the stream.
async fn until_started(
    response: reqwest::Response,
) -> (
    String,
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
) {
    let mut body = Box::pin(response.bytes_stream());
    let mut decoder = app::ndjson::LineDecoder::new();
    loop {
        let chunk = body.next().await.unwrap().unwrap();
        for event in decoder.push::<app::wire::ChatEvent>(&chunk) {
            if let app::wire::ChatEvent::Start { message_id, .. } = event.unwrap() {
                return (message_id, body);
            }
        }
    }
}

#[tokio::test]
async fn stop_sent_to_one_replica_ends_the_answer_generating_on_another_within_a_second() {
    let up = upstream(Behaviour::Endless).await;
    let Some(database) = shared_database("stop_reaches_the_generating_replica").await else {
        return;
    };
    let a = replica(&database, &up.base_url, 100_000).await;
    let mut b = replica(&database, &up.base_url, 100_000).await;
    b.client = a.client.clone();
    let (answer, mut stream) = until_started(a.send_raw(None, "Talk forever").await).await;

    let asked = std::time::Instant::now();
    let stopped = b.post_form("/api/stop", &[("message_id", &answer)]).await;
    assert_eq!(stopped.status(), 200);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let took = asked.elapsed();
    println!(
        "stopped on replica a {} ms after replica b was asked",
        took.as_millis()
    );
    assert!(String::from_utf8_lossy(&rest).contains("\"cancelled\""));
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    let conversation = &b.conversations().await[0].id;
    let view: app::wire::ConversationView =
        b.conversation(conversation).await.json().await.unwrap();
    assert_eq!(view.messages[1].status, app::wire::MessageStatus::Stopped);
    // Stopping it again: nothing is generating.
    let again = b.post_form("/api/stop", &[("message_id", &answer)]).await;
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn an_answer_generating_on_one_replica_can_be_followed_from_another() {
    let tokens = vec!["a ", "b ", "c ", "d ", "e ", "f ", "g ", "h ", "i ", "j."];
    let whole: String = tokens.concat();
    let up = upstream(Behaviour::Paced(tokens, 80)).await;
    let Some(database) = shared_database("followed_from_another_replica").await else {
        return;
    };
    let a = replica(&database, &up.base_url, 48).await;
    let mut b = replica(&database, &up.base_url, 48).await;
    b.client = a.client.clone();
    let (answer, stream) = until_started(a.send_raw(None, "Letters").await).await;
    drop(stream);
    let followed = b
        .client
        .post(b.url("/api/follow"))
        .json(&serde_json::json!({ "message_id": answer }))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    let events = crate::helpers::read_events(followed).await;
    assert_eq!(crate::helpers::answer_text(&events), whole);
    assert!(matches!(
        events.last(),
        Some(app::wire::ChatEvent::Done { .. })
    ));
}

#[tokio::test]
async fn an_answer_left_by_a_crashed_replica_stops_blocking_its_conversation() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Fine."],
        usage: true,
    })
    .await;
    let Some(database) = shared_database("answer_left_by_a_crashed_replica").await else {
        return;
    };
    let a = replica(&database, &up.base_url, 48).await;
    let (conversation, answer) = started(&a.chat(None, "Hello").await);
    // As a replica that crashed mid-answer leaves it: streaming, and its
    // replica silent for two minutes.
    sqlx::query(
        "UPDATE messages SET status = 'streaming', created_at = created_at - 120000, \
         heartbeat_at = NULL WHERE id = $1",
    )
    .bind(&answer)
    .execute(&a.db())
    .await
    .unwrap();
    let busy = a.send_raw(Some(&conversation), "And now?").await;
    assert_eq!(busy.status(), 409);
    // A replica starting (or any replica's sweep, every 30 s) gives it up.
    let _b = replica(&database, &up.base_url, 48).await;
    let view: app::wire::ConversationView =
        a.conversation(&conversation).await.json().await.unwrap();
    assert_eq!(
        view.messages[1].status,
        app::wire::MessageStatus::Incomplete
    );
    let now = a.send_raw(Some(&conversation), "And now?").await;
    assert_eq!(now.status(), 200);
    crate::helpers::read_events(now).await;
}
