//! What operators get: votes tied to retrieval, one usage event per turn,
//! Prometheus metrics, and admin-only exports.

use crate::documents::fixture;
use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, started, TestApp};
use app::wire::{ChatEvent, Rating};

fn cited_answer() -> Behaviour {
    Behaviour::Stream {
        tokens: vec!["The bridge was completed in 1873 ", "by Mara Quist [1]."],
        usage: true,
    }
}

async fn rate(app: &TestApp, message_id: &str, rating: Option<&str>, comment: Option<&str>) -> u16 {
    let mut form = vec![("message_id", message_id)];
    if let Some(rating) = rating {
        form.push(("rating", rating));
    }
    if let Some(comment) = comment {
        form.push(("comment", comment));
    }
    app.post_form("/api/rate", &form).await.status().as_u16()
}

async fn feedback_rows(app: &TestApp) -> Vec<(String, i64, Option<String>, String)> {
    sqlx::query_as("SELECT user_id, rating, comment, retrieval FROM feedback")
        .fetch_all(&app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_vote_is_one_per_user_changeable_and_records_the_chunks_the_answer_used() {
    let up = upstream(cited_answer()).await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    let doc = app
        .ingest("velloran-survey.pdf", fixture("velloran-survey.pdf"))
        .await;
    let events = app
        .chat(None, "When was the Velloran bridge completed?")
        .await;
    let (conversation_id, message_id) = started(&events);
    assert!(events
        .iter()
        .any(|e| matches!(e, ChatEvent::Sources { .. })));

    assert_eq!(rate(&app, &message_id, Some("up"), None).await, 200);
    assert_eq!(
        rate(
            &app,
            &message_id,
            Some("down"),
            Some("  The date is right, the name is not. ")
        )
        .await,
        200
    );
    let rows = feedback_rows(&app).await;
    assert_eq!(rows.len(), 1, "one vote per user per message");
    let (_, rating, comment, retrieval) = &rows[0];
    assert_eq!(*rating, -1);
    assert_eq!(
        comment.as_deref(),
        Some("The date is right, the name is not.")
    );
    let used: Vec<serde_json::Value> = serde_json::from_str(retrieval).unwrap();
    assert!(!used.is_empty());
    let hash: String = sqlx::query_scalar("SELECT content_hash FROM documents WHERE id = $1")
        .bind(&doc.id)
        .fetch_one(&app.db())
        .await
        .unwrap();
    for chunk in &used {
        assert_eq!(chunk["document_id"], doc.id.as_str());
        assert_eq!(chunk["document_version"], hash.as_str());
        // Fused scores are z-scores above each list's floor: the weakest
        // candidate may score exactly 0.
        assert!(chunk["score"].as_f64().unwrap() >= 0.0);
        let chunk_id = chunk["chunk_id"].as_str().unwrap();
        let index = chunk["chunk_index"].as_u64().unwrap() as u32;
        assert_eq!(
            chunk_id,
            ragchat::index::point_id(&doc.id, index).to_string(),
            "the id of the vector in the index"
        );
    }
    assert!(used.iter().any(|c| c["cited"] == true));
    let model: Option<String> = sqlx::query_scalar("SELECT model FROM feedback")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(model.as_deref(), Some("test-model"));

    // The vote shows when the conversation is opened again.
    let view: app::wire::ConversationView = app
        .conversation(&conversation_id)
        .await
        .json()
        .await
        .unwrap();
    let answer = view.messages.iter().find(|m| m.id == message_id).unwrap();
    assert_eq!(answer.rating, Some(Rating::Down));

    // Someone else can't vote on it; a user message can't be voted on.
    let owner = std::mem::replace(&mut app.client, client());
    app.chat(None, "hello").await;
    assert_eq!(rate(&app, &message_id, Some("up"), None).await, 404);
    app.client = owner;
    let user_message = view
        .messages
        .iter()
        .find(|m| m.role == app::wire::Role::User)
        .unwrap();
    assert_eq!(rate(&app, &user_message.id, Some("up"), None).await, 404);
    let too_long = "x".repeat(2_001);
    assert_eq!(
        rate(&app, &message_id, Some("up"), Some(&too_long)).await,
        400
    );

    // Withdrawing removes it.
    assert_eq!(rate(&app, &message_id, None, None).await, 200);
    assert!(feedback_rows(&app).await.is_empty());
}

#[tokio::test]
async fn every_turn_is_an_event_and_prometheus_counts_it() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["one ", "two ", "three"],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.requests_per_minute = 60;
        s.limits.guest.burst = 2;
    })
    .await;
    app.chat(None, "first").await;
    app.chat(None, "second").await;
    assert_eq!(app.send_raw(None, "third").await.status(), 429);

    type Row = (
        String,
        String,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        f64,
        i64,
        i64,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT model, provider, prompt_build_ms, ttft_ms, upstream_ttft_ms, total_ms, \
         prompt_tokens, completion_tokens, outcome FROM chat_events ORDER BY at",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for (model, provider, prompt_build, ttft, upstream_ttft, total, prompt, completion, outcome) in
        &rows
    {
        assert_eq!(model, "test-model");
        assert_eq!(provider, "openai");
        assert!(prompt_build.is_some());
        let (ttft, upstream_ttft) = (ttft.unwrap(), upstream_ttft.unwrap());
        assert!(
            upstream_ttft <= ttft && ttft <= *total,
            "{upstream_ttft} {ttft} {total}"
        );
        assert_eq!((*prompt, *completion), (21, 3));
        assert_eq!(outcome, "stop");
    }

    let metrics = app.metrics().await;
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .to_owned()
    };
    assert!(line(
        "ragchat_chat_turns_total{model=\"test-model\",outcome=\"stop\",provider=\"openai\"}"
    )
    .ends_with(" 2"));
    assert!(
        line("ragchat_stage_seconds_count{model=\"test-model\",stage=\"ttft\"}").ends_with(" 2")
    );
    assert!(line("ragchat_tokens_total{kind=\"prompt\",model=\"test-model\"}").ends_with(" 42"));
    assert!(line("ragchat_rate_limited_total{reason=\"rate\"}").ends_with(" 1"));
}

#[tokio::test]
async fn exports_are_for_admins_and_hold_every_vote_and_turn() {
    let up = upstream(cited_answer()).await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    let signed_up = app
        .post_form(
            "/api/sign_up",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let events = app.chat(None, "a question, with \"quotes\"").await;
    let (_, message_id) = started(&events);
    assert_eq!(
        rate(&app, &message_id, Some("up"), Some("good, \"really\"")).await,
        200
    );
    // A second answer whose comment a spreadsheet would run as a formula.
    let (_, second) = started(&app.chat(None, "=HYPERLINK(\"http://evil\")").await);
    assert_eq!(rate(&app, &second, Some("down"), Some("=1+2")).await, 200);

    let get = |app: &TestApp, name: &str| {
        let request = app
            .client
            .get(app.url(&format!("/api/admin/export/{name}")));
        async move { request.send().await.unwrap() }
    };
    let jsonl = get(&app, "feedback.jsonl").await;
    assert_eq!(jsonl.status(), 200);
    let text = jsonl.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["rating"], "up");
    assert_eq!(lines[1]["comment"], "=1+2", "JSONL keeps the text as it is");
    assert_eq!(lines[0]["username"], "ada");
    assert_eq!(lines[0]["question"], "a question, with \"quotes\"");
    assert_eq!(lines[0]["comment"], "good, \"really\"");

    let csv = get(&app, "feedback.csv").await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let bytes = csv.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(bytes.as_ref());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    let headers = reader.headers().unwrap().clone();
    let comment_at = headers.iter().position(|h| h == "comment").unwrap();
    let question_at = headers.iter().position(|h| h == "question").unwrap();
    assert_eq!(&records[0][comment_at], "good, \"really\"");
    assert_eq!(
        &records[1][comment_at], "'=1+2",
        "formulas are defused in CSV"
    );
    assert!(records[1][question_at].starts_with("'=HYPERLINK"));

    let turns = get(&app, "events.jsonl").await.text().await.unwrap();
    assert_eq!(turns.lines().count(), 2);
    let turns_csv = get(&app, "events.csv").await.text().await.unwrap();
    assert_eq!(turns_csv.lines().count(), 3, "header and two turns");
    // A time range that excludes everything.
    let none = app
        .client
        .get(app.url("/api/admin/export/events.jsonl?since=0&until=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.text().await.unwrap(), "");
    assert_eq!(get(&app, "secrets.txt").await.status(), 404);

    // A plain user and a stranger get nothing.
    app.client = client();
    app.post_form(
        "/api/sign_up",
        &[("username", "bob"), ("password", "hunter2hunter2")],
    )
    .await;
    for name in [
        "feedback.jsonl",
        "feedback.csv",
        "events.jsonl",
        "events.csv",
    ] {
        assert_eq!(get(&app, name).await.status(), 403, "{name} as a user");
    }
    app.client = client();
    for name in ["feedback.jsonl", "events.csv"] {
        assert_eq!(
            get(&app, name).await.status(),
            401,
            "{name} without a session"
        );
    }
}

#[tokio::test]
async fn the_dashboard_is_for_admins_and_adds_up() {
    let up = upstream(cited_answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.prices.insert(
            "test-model".into(),
            ragchat::config::Price {
                prompt_per_million: 1_000.0,
                completion_per_million: 2_000.0,
            },
        );
    })
    .await;
    app.post_form(
        "/api/sign_up",
        &[("username", "ada"), ("password", "correct horse")],
    )
    .await;
    let (_, first) = started(&app.chat(None, "first question").await);
    app.chat(None, "second question").await;
    assert_eq!(rate(&app, &first, Some("down"), Some("wrong")).await, 200);

    let response = app
        .post_form("/api/admin/dashboard", &[("hours", "24")])
        .await;
    assert_eq!(response.status(), 200);
    let d: app::wire::Dashboard = response.json().await.unwrap();
    assert_eq!(d.turns, 2);
    let model = &d.by_model[0];
    assert_eq!(model.name, "test-model");
    assert_eq!(model.turns, 2);
    assert!(model.ttft.p50.is_some() && model.total.p99.is_some());
    let up_rate = model.up_rate.unwrap();
    assert_eq!((up_rate.successes, up_rate.trials), (0, 1));
    assert_eq!((model.prompt_tokens, model.completion_tokens), (42, 6));
    // 42 prompt tokens at $1,000/M + 6 completion tokens at $2,000/M.
    assert!((model.cost - 0.054).abs() < 1e-9, "{}", model.cost);
    assert_eq!(d.by_user[0].name, "ada");
    assert_eq!(d.error_rate.unwrap().successes, 0);
    assert_eq!(d.downvoted.len(), 1);
    assert_eq!(d.downvoted[0].question, "first question");
    assert_eq!(d.downvoted[0].comments, ["wrong"]);
    assert!(!d.series.is_empty());

    app.client = client();
    app.chat(None, "a guest").await;
    let refused = app
        .post_form("/api/admin/dashboard", &[("hours", "24")])
        .await;
    assert_eq!(refused.status(), 403);
}
