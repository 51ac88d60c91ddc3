//! A user only ever sees their own conversations.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, started};

#[tokio::test]
async fn another_users_conversation_is_404_on_every_verb() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["secret answer"],
        usage: true,
    })
    .await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    let events = app.chat(None, "my private question").await;
    let (conversation_id, message_id) = started(&events);

    // A second browser.
    let alice = std::mem::replace(&mut app.client, client());
    app.chat(None, "bob's own question").await;
    let bobs = app.conversations().await;
    assert_eq!(bobs.len(), 1);
    assert_ne!(bobs[0].id, conversation_id);

    let get = app.conversation(&conversation_id).await;
    assert_eq!(get.status(), 404);
    assert!(!get.text().await.unwrap().contains("private"));
    let send = app.send_raw(Some(&conversation_id), "let me in").await;
    assert_eq!(send.status(), 404);
    assert_eq!(
        app.post_form("/api/stop", &[("message_id", &message_id)])
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post_form("/api/delete_conversation", &[("id", &conversation_id)])
            .await
            .status(),
        404
    );
    let page = app
        .client
        .get(app.url(&format!("/c/{conversation_id}")))
        .send()
        .await
        .unwrap();
    assert!(!page.text().await.unwrap().contains("private question"));

    // A browser with no identity at all.
    let stranger = client();
    let anonymous = stranger
        .post(app.url("/api/conversation"))
        .form(&[("id", &conversation_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 404);

    // Alice still has everything.
    app.client = alice;
    let list = app.conversations().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, conversation_id);
    assert_eq!(app.conversation(&conversation_id).await.status(), 200);
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["x"],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    app.chat(None, "hi").await;
    assert_eq!(app.conversation("no-such-id").await.status(), 404);
    assert_eq!(app.send_raw(Some("no-such-id"), "hi").await.status(), 404);
}
