//! Per-user rate limits and token budgets on the chat.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, client, spawn_app_http};
use app::wire::ChatEvent;
use std::time::Duration;

fn answer() -> Behaviour {
    Behaviour::Stream {
        tokens: vec!["ok"],
        usage: true,
    }
}

async fn messages_stored(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn over_the_rate_is_429_with_a_retry_after_that_is_accurate() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.requests_per_minute = 30; // one every 2 s
        s.limits.guest.burst = 2;
    })
    .await;
    app.chat(None, "one").await;
    app.chat(None, "two").await;
    let stored = messages_stored(&app).await;

    let limited = app.send_raw(None, "three").await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["kind"], "rate_limited");
    let wait_ms = body["message"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=2_000).contains(&wait_ms), "{wait_ms}");
    assert_eq!(retry_after, wait_ms.div_ceil(1000));
    assert!(body["message"]["message"]
        .as_str()
        .unwrap()
        .contains("too quickly"));
    assert_eq!(
        messages_stored(&app).await,
        stored,
        "a refused message is not stored"
    );

    // Retrying at the stated time works (the header's whole seconds, too).
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    app.chat(None, "three, later").await;
    assert_eq!(app.send_raw(None, "four").await.status(), 429);
}

#[tokio::test]
async fn guests_share_a_limit_per_address_and_accounts_have_their_own() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.requests_per_minute = 1;
        s.limits.guest.burst = 1;
        s.limits.user.requests_per_minute = 1;
        s.limits.user.burst = 1;
        s.limits.admin.requests_per_minute = 1;
        s.limits.admin.burst = 1;
    })
    .await;
    app.chat(None, "first guest").await;
    // A new cookie doesn't give a guest a new allowance.
    app.client = client();
    assert_eq!(app.send_raw(None, "second guest").await.status(), 429);

    // Accounts from the same address are limited one by one.
    for name in ["ada", "bob"] {
        app.client = client();
        let signed_up = app
            .post_form(
                "/api/sign_up",
                &[("username", name), ("password", "long enough pw")],
            )
            .await;
        assert_eq!(signed_up.status(), 200);
        app.chat(None, "my first question").await;
        assert_eq!(app.send_raw(None, "my second").await.status(), 429);
    }
}

#[tokio::test]
async fn a_spent_token_budget_blocks_until_the_day_is_over() {
    let up = upstream(answer()).await;
    // The fake upstream reports 21 + 3 tokens per answer.
    let app = spawn_app_http(&up.base_url, |s| s.limits.guest.tokens_per_day = 40).await;
    app.chat(None, "one").await;
    app.chat(None, "two").await;
    let refused = app.send_raw(None, "three").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let body: serde_json::Value = refused.json().await.unwrap();
    let message = body["message"]["message"].as_str().unwrap();
    assert!(message.contains("budget of 40 tokens"), "{message}");
}

#[tokio::test]
async fn a_spent_budget_moves_to_the_cheaper_model_and_says_so() {
    let main = upstream(Behaviour::Stream {
        tokens: vec!["From the main model."],
        usage: true,
    })
    .await;
    let small = upstream(Behaviour::Stream {
        tokens: vec!["From the small model."],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&main.base_url, |s| {
        s.limits.guest.tokens_per_day = 40;
        s.llm.models.insert(
            "small".into(),
            crate::helpers::http_model(&small.base_url, "small-model"),
        );
        s.limits.over_budget_model = Some("small".into());
        s.experiments = vec![ragchat::ops::experiments::Experiment {
            name: "tone".into(),
            variants: vec![ragchat::ops::experiments::Variant {
                name: "brief".into(),
                weight: 1,
                system_prompt: Some("Be brief.".into()),
                model: None,
                temperature: None,
                top_k: None,
            }],
        }];
    })
    .await;
    let notice = |events: &[ChatEvent]| {
        events.iter().find_map(|e| match e {
            ChatEvent::Notice { message } => Some(message.clone()),
            _ => None,
        })
    };
    for question in ["one", "two"] {
        let events = app.chat(None, question).await;
        assert_eq!(answer_text(&events), "From the main model.");
        assert_eq!(notice(&events), None);
    }
    // 48 tokens used of 40: answered, by the small model, and the reader is told.
    let events = app.chat(None, "three").await;
    assert_eq!(answer_text(&events), "From the small model.");
    let ChatEvent::Start { model, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(model, "small-model");
    let notice = notice(&events).expect("a notice");
    assert!(
        notice.contains("today's token budget") && notice.contains("small-model"),
        "{notice}"
    );
    assert_eq!(small.seen.lock().unwrap().requests.len(), 1);
    assert_eq!(main.seen.lock().unwrap().requests.len(), 2);
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT model FROM messages WHERE role = 'assistant' ORDER BY created_at",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(stored, ["test-model", "test-model", "small-model"]);
    // The note is kept with the answer, for after a reload.
    let notes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT notice FROM messages WHERE role = 'assistant' ORDER BY created_at",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(notes, [None, None, Some(notice.clone())]);
    // The over-budget turn is outside the experiment.
    let variants: Vec<Option<String>> =
        sqlx::query_scalar("SELECT variant FROM chat_events ORDER BY at")
            .fetch_all(&app.db())
            .await
            .unwrap();
    assert_eq!(
        variants,
        [Some("tone:brief".into()), Some("tone:brief".into()), None]
    );
    let exposures: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(turns) AS BIGINT) FROM experiment_exposures")
            .fetch_one(&app.db())
            .await
            .unwrap();
    assert_eq!(exposures, 2);
    assert!(!small.seen.lock().unwrap().requests[0].contains("Be brief."));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("ragchat_rate_limited_total{reason=\"budget_degraded\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_model_name_the_config_does_not_define_stops_the_start() {
    let up = upstream(answer()).await;
    let temp = tempfile::TempDir::new().unwrap();
    let mut settings = crate::helpers::test_settings(temp.path());
    settings.llm.base_url = Some(up.base_url.clone());
    settings.limits.over_budget_model = Some("tiny".into());
    let error = match ragchat::startup::Application::build(settings).await {
        Ok(_) => panic!("an undefined model name must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("limits.over_budget_model") && error.contains("\"tiny\""),
        "{error}"
    );
}

#[tokio::test]
async fn replicas_sharing_a_redis_share_the_limits() {
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        println!("SKIP replicas_sharing_a_redis_share_the_limits: REDIS_URL is not set");
        return;
    };
    let up = upstream(answer()).await;
    let prefix = format!("ragchat-test:{}:", uuid::Uuid::new_v4());
    let replica = || {
        let (url, prefix) = (redis_url.clone(), prefix.clone());
        spawn_app_http(&up.base_url, move |s| {
            s.limits.redis_url = Some(url.into());
            s.limits.redis_key_prefix = prefix;
            s.limits.guest.requests_per_minute = 2;
            s.limits.guest.burst = 2;
        })
    };
    let (a, b) = (replica().await, replica().await);
    a.chat(None, "one, on replica a").await;
    b.chat(None, "two, on replica b").await;
    // The guest's address has used its burst on the two replicas together.
    for app in [&a, &b] {
        let refused = app.send_raw(None, "three").await;
        assert_eq!(refused.status(), 429);
        let body: serde_json::Value = refused.json().await.unwrap();
        let wait_ms = body["message"]["retry_after_ms"].as_u64().unwrap();
        assert!((25_000..=30_000).contains(&wait_ms), "{wait_ms}");
    }
}
