//! The conversation list's tools: search, rename, pin, Markdown export and
//! shared links; other users' conversations stay out of reach, and bad
//! input is refused without changing anything.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, started, TestApp};
use app::wire::{ConversationSummary, SearchHit, ShareView, MATCH_END, MATCH_START};
use reqwest::header;

fn answer(tokens: Vec<&'static str>) -> Behaviour {
    Behaviour::Stream {
        tokens,
        usage: true,
    }
}

/// What `client`'s search for `query` finds.
async fn search_as(client: &reqwest::Client, app: &TestApp, query: &str) -> Vec<SearchHit> {
    let response = client
        .post(app.url("/api/search"))
        .form(&[("query", query)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn search_finds_words_of_answers_and_titles_but_only_the_user_s() {
    let up = upstream(Behaviour::Sequence(vec![
        answer(vec!["The ", "zeppelin ", "landed ", "at Lakehurst."]),
        answer(vec!["Bread ", "needs ", "yeast."]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (airships, _) = started(&app.chat(None, "Tell me about airships").await);
    let (baking, _) = started(&app.chat(None, "How do I bake?").await);

    let search = |query: &'static str| search_as(&app.client, &app, query);
    // A word only the answer has.
    let hits = search("Zeppelin").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation_id, airships);
    assert!(
        hits[0]
            .snippet
            .contains(&format!("{MATCH_START}zeppelin{MATCH_END}")),
        "{:?}",
        hits[0].snippet
    );
    // Every word must match; word prefixes do.
    assert_eq!(search("zeppelin lakehurst").await.len(), 1);
    assert!(search("zeppelin yeast").await.is_empty());
    assert_eq!(search("yea").await[0].conversation_id, baking);
    // Titles match too, marked.
    let titled = search("airships").await;
    assert_eq!(titled[0].conversation_id, airships);
    assert!(titled[0].snippet.contains(MATCH_START));
    // Query syntax is just text.
    assert!(search("\"zeppelin\" OR NEAR(*)").await.len() <= 1);

    // Another user finds nothing of it.
    let stranger = client();
    assert!(search_as(&stranger, &app, "zeppelin").await.is_empty());
}

#[tokio::test]
async fn rename_and_pin_change_the_list() {
    let up = upstream(answer(vec!["Fine."])).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (older, _) = started(&app.chat(None, "First chat").await);
    let (newer, _) = started(&app.chat(None, "Second chat").await);
    assert_eq!(app.conversations().await[0].id, newer);

    let renamed = app
        .post_form(
            "/api/rename_conversation",
            &[("id", &older), ("title", "  Trip plans  ")],
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let pinned = app
        .post_form(
            "/api/pin_conversation",
            &[("id", &older), ("pinned", "true")],
        )
        .await;
    assert_eq!(pinned.status(), 200);
    let list: Vec<ConversationSummary> = app.conversations().await;
    assert_eq!(list[0].id, older, "pinned first");
    assert_eq!(list[0].title, "Trip plans");
    assert!(list[0].pinned && !list[1].pinned);
    app.post_form(
        "/api/pin_conversation",
        &[("id", &older), ("pinned", "false")],
    )
    .await;
    assert_eq!(app.conversations().await[0].id, newer);
}

#[tokio::test]
async fn export_is_markdown_of_the_branch_shown() {
    let up = upstream(answer(vec!["Use **rye** flour."])).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (conversation, _) = started(&app.chat(None, "Which flour?").await);
    let response = app
        .client
        .get(app.url(&format!("/api/conversations/{conversation}/export")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("Which-flour.md"));
    let markdown = response.text().await.unwrap();
    assert!(markdown.starts_with("# Which flour?\n"), "{markdown}");
    assert!(markdown.contains("**You:**\n\nWhich flour?"));
    assert!(markdown.contains("Use **rye** flour."));
}

#[tokio::test]
async fn a_shared_link_shows_the_conversation_as_it_was_until_revoked() {
    let up = upstream(Behaviour::Sequence(vec![
        answer(vec!["Shared <script>alert(1)</script> answer."]),
        answer(vec!["Later answer."]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (conversation, _) = started(&app.chat(None, "What is shared?").await);
    let share: ShareView = app
        .post_form("/api/share", &[("id", &conversation)])
        .await
        .json()
        .await
        .unwrap();
    app.chat(Some(&conversation), "And later?").await;

    // Anyone with the link, no session: the conversation when shared.
    let visitor = reqwest::Client::new();
    let page = visitor.get(app.url(&share.path())).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        page.headers()["x-robots-tag"],
        "noindex, nofollow, noarchive"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("What is shared?") && html.contains("Shared"));
    assert!(!html.contains("<script>alert(1)"), "model text stays inert");
    assert!(!html.contains("Later answer."), "later turns are not shown");
    assert!(html.contains("name=\"robots\" content=\"noindex"));

    let listed: Vec<ShareView> = app
        .post_form("/api/shares", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&share));
    // Someone else can't revoke it.
    let stranger = client();
    let refused = stranger
        .post(app.url("/api/shares/revoke"))
        .form(&[("id", &share.id)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let revoked = app
        .post_form("/api/shares/revoke", &[("id", &share.id)])
        .await;
    assert_eq!(revoked.status(), 200);
    let gone = visitor.get(app.url(&share.path())).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let listed: Vec<ShareView> = app
        .post_form("/api/shares", &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());
    for bad in ["/s/nope", "/s/00000000000000000000000000000000"] {
        assert_eq!(
            visitor.get(app.url(bad)).send().await.unwrap().status(),
            404
        );
    }
}

#[tokio::test]
async fn another_user_s_conversation_cant_be_shared_searched_exported_or_changed() {
    let up = upstream(Behaviour::Sequence(vec![
        answer(vec!["Private answer."]),
        answer(vec!["Their own answer."]),
    ]))
    .await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (conversation, answer_id) = started(&app.chat(None, "My private question").await);
    let question_id = app.view(&conversation).await.messages[0].id.clone();

    let stranger = client();
    // The stranger gets a session of their own first.
    let own = stranger
        .post(app.url("/api/chat"))
        .json(&serde_json::json!({ "conversation_id": null, "text": "hello" }))
        .send()
        .await
        .unwrap();
    crate::helpers::read_events(own).await;
    let (id, answer, question) = (&conversation, &answer_id, &question_id);
    let forms: [(&str, Vec<(&str, &str)>); 5] = [
        ("/api/share", vec![("id", id)]),
        ("/api/rename_conversation", vec![("id", id), ("title", "x")]),
        (
            "/api/pin_conversation",
            vec![("id", id), ("pinned", "true")],
        ),
        ("/api/switch_branch", vec![("message_id", answer)]),
        ("/api/stop", vec![("message_id", answer)]),
    ];
    for (path, fields) in forms {
        let response = stranger.post(app.url(path)).form(&fields).send().await;
        assert_eq!(response.unwrap().status(), 404, "{path}");
    }
    let bodies = [
        (
            "/api/regenerate",
            serde_json::json!({ "message_id": answer }),
        ),
        (
            "/api/edit",
            serde_json::json!({ "message_id": question, "text": "mine now" }),
        ),
        ("/api/follow", serde_json::json!({ "message_id": answer })),
    ];
    for (path, body) in bodies {
        let response = stranger.post(app.url(path)).json(&body).send().await;
        assert_eq!(response.unwrap().status(), 404, "{path}");
    }
    let export = stranger
        .get(app.url(&format!("/api/conversations/{conversation}/export")))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 404);
    assert!(search_as(&stranger, &app, "private").await.is_empty());

    // Nothing changed.
    let view = app.view(&conversation).await;
    assert_eq!(view.title, "My private question");
    assert_eq!(view.messages.len(), 2);
    assert!(!app.conversations().await[0].pinned);
}

#[tokio::test]
async fn every_new_endpoint_refuses_bad_input_and_changes_nothing() {
    let up = upstream(answer(vec!["An answer."])).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (conversation, answer_id) = started(&app.chat(None, "A question").await);
    let question_id = app.view(&conversation).await.messages[0].id.clone();
    let before = app.view(&conversation).await;
    let list_before = app.conversations().await;

    let status = |response: reqwest::Response| response.status().as_u16();
    let long = "x".repeat(201);
    for query in ["", "   ", "?!*", long.as_str()] {
        let got = status(app.post_form("/api/search", &[("query", query)]).await);
        assert_eq!(got, 400, "search {query:?}");
    }
    for title in ["", "  ", "two\nlines", long.as_str()] {
        let got = status(
            app.post_form(
                "/api/rename_conversation",
                &[("id", &conversation), ("title", title)],
            )
            .await,
        );
        assert_eq!(got, 400, "title {title:?}");
    }
    let too_long = "y".repeat(8_001);
    for text in ["", "   ", too_long.as_str()] {
        let got = status(
            app.post_json(
                "/api/edit",
                serde_json::json!({ "message_id": question_id, "text": text }),
            )
            .await,
        );
        assert_eq!(got, 400, "edit to {} chars", text.len());
    }
    // The wrong kind of message, or none.
    let cases = [
        (
            "/api/regenerate",
            serde_json::json!({ "message_id": question_id }),
        ),
        (
            "/api/regenerate",
            serde_json::json!({ "message_id": "nope" }),
        ),
        (
            "/api/edit",
            serde_json::json!({ "message_id": answer_id, "text": "an answer is no question" }),
        ),
        (
            "/api/follow",
            serde_json::json!({ "message_id": question_id }),
        ),
    ];
    for (path, body) in cases {
        assert_eq!(
            status(app.post_json(path, body.clone()).await),
            404,
            "{path} {body}"
        );
    }
    for (path, field) in [
        ("/api/switch_branch", "message_id"),
        ("/api/share", "id"),
        ("/api/shares/revoke", "id"),
    ] {
        assert_eq!(
            status(app.post_form(path, &[(field, "nope")]).await),
            404,
            "{path}"
        );
    }
    // Missing or malformed fields.
    assert_eq!(
        status(
            app.post_json("/api/regenerate", serde_json::json!({}))
                .await
        ),
        400
    );
    assert_eq!(
        status(
            app.post_form(
                "/api/pin_conversation",
                &[("id", &conversation), ("pinned", "maybe")]
            )
            .await
        ),
        400
    );
    // A finished answer can't be stopped.
    assert_eq!(
        status(
            app.post_form("/api/stop", &[("message_id", &answer_id)])
                .await
        ),
        404
    );

    assert_eq!(app.view(&conversation).await, before);
    assert_eq!(app.conversations().await, list_before);
    let shares: Vec<ShareView> = app
        .post_form("/api/shares", &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(shares.is_empty());
}
