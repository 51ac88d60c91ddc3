//! Per-user rate limits and token budgets on the chat.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http};
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
