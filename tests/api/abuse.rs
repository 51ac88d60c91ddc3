//! What strangers can't do: reset their allowance with a new cookie, make
//! guests without end, upload without limit, hog the ingestion queue, forge
//! their address, use an admin's key to administer, read metrics without
//! the token; and the headers every response carries.

use crate::documents::{outcomes, upload};
use crate::faults::{upstream, Behaviour};
use crate::helpers::{answer_text, client, spawn_app_http, TestApp, METRICS_TOKEN};
use app::wire::{ChatEvent, DocumentStatus, DocumentView, NewApiKey};
use std::time::{Duration, Instant};

fn answer() -> Behaviour {
    Behaviour::Stream {
        tokens: vec!["ok"],
        usage: true,
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db()).await.unwrap()
}

async fn guests(app: &TestApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM users WHERE role = 'guest'").await
}

/// Why an upload was refused: the error of its only file, or of the whole
/// request when it was refused before any file was read.
fn upload_error(body: serde_json::Value) -> String {
    match body {
        serde_json::Value::Array(_) => outcomes(body).remove(0).error.unwrap_or_default(),
        other => match &other["message"] {
            serde_json::Value::String(m) => m.clone(),
            message => message["message"].as_str().unwrap_or_default().to_owned(),
        },
    }
}

async fn refusal(response: reqwest::Response) -> (u16, Option<u64>, String) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: serde_json::Value = response.json().await.unwrap();
    let message = match &body["message"] {
        serde_json::Value::String(m) => m.clone(),
        other => other["message"].as_str().unwrap_or_default().to_owned(),
    };
    (status, retry_after, message)
}

#[tokio::test]
async fn a_guest_budget_is_the_address_s_and_a_new_cookie_does_not_reset_it() {
    let up = upstream(answer()).await;
    // The fake upstream reports 21 + 3 tokens per answer.
    let mut app = spawn_app_http(&up.base_url, |s| s.limits.guest.tokens_per_day = 40).await;
    app.chat(None, "one").await;
    app.client = client();
    app.chat(None, "two").await;
    app.client = client();
    let (status, retry_after, message) = refusal(app.send_raw(None, "three").await).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|s| (1..=86_400).contains(&s)));
    assert!(message.contains("budget of 40 tokens"), "{message}");
    assert_eq!(guests(&app).await, 2, "the refused browser got no guest");
}

#[tokio::test]
async fn guests_are_made_only_for_admitted_requests_and_only_so_many_per_address() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.limits.new_guests_per_hour = 2;
    })
    .await;
    // Reading pages and lists makes nobody.
    for path in ["/api/session", "/api/conversations", "/api/document_list"] {
        assert_eq!(app.post_form(path, &[]).await.status(), 200);
    }
    assert_eq!(
        app.client.get(app.url("/")).send().await.unwrap().status(),
        200
    );
    assert_eq!(guests(&app).await, 0);
    // An empty message is refused before anyone is made.
    assert_eq!(app.send_raw(None, "  ").await.status(), 400);
    assert_eq!(guests(&app).await, 0);

    for _ in 0..2 {
        app.client = client();
        app.chat(None, "hello").await;
    }
    assert_eq!(guests(&app).await, 2);
    app.client = client();
    let (status, retry_after, message) = refusal(app.send_raw(None, "hello").await).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    assert!(message.contains("new guest sessions"), "{message}");
    let (status, body) = upload(&app.client, &app.base(), &[("a.txt", b"text".to_vec())]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(guests(&app).await, 2);
}

#[tokio::test]
async fn a_rate_limited_browser_without_a_session_gets_no_guest() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.requests_per_minute = 1;
        s.limits.guest.burst = 1;
    })
    .await;
    app.chat(None, "first").await;
    for _ in 0..5 {
        app.client = client();
        assert_eq!(app.send_raw(None, "again").await.status(), 429);
    }
    assert_eq!(guests(&app).await, 1);
}

#[tokio::test]
async fn daily_upload_quotas_hold_per_address_and_deleting_gives_nothing_back() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.uploads_per_day = 2;
    })
    .await;
    let base = app.base();
    for i in 0..2 {
        let (status, body) = upload(
            &app.client,
            &base,
            &[(&format!("n{i}.txt"), format!("note {i}").into_bytes())],
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = upload(&app.client, &base, &[("n2.txt", b"note 2".to_vec())]).await;
    assert_eq!(status, 429, "{body}");
    let error = upload_error(body);
    assert!(error.contains("daily limit"), "{error}");

    // Deleting doesn't give the quota back; a new cookie doesn't either.
    let listed: Vec<DocumentView> = app
        .client
        .get(format!("{base}/api/documents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for doc in listed {
        app.client
            .delete(format!("{base}/api/documents/{}", doc.id))
            .send()
            .await
            .unwrap();
    }
    let response = app
        .client
        .post(format!("{base}/api/documents"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"note 3".to_vec()).file_name("n3.txt"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    app.client = client();
    let (status, _) = upload(&app.client, &base, &[("n4.txt", b"note 4".to_vec())]).await;
    assert_eq!(status, 429);
    assert_eq!(guests(&app).await, 1, "the refused browser got no guest");
}

#[tokio::test]
async fn storage_quotas_count_documents_and_bytes_kept() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.limits.guest.max_documents = 3;
        s.limits.guest.max_document_mib = 1;
    })
    .await;
    let base = app.base();
    let (status, body) = upload(&app.client, &base, &[("a.txt", b"alpha".to_vec())]).await;
    assert_eq!(status, 202, "{body}");
    // 1 MiB in all: 700 KB fits once, not twice.
    let big = "lorem ipsum dolor sit amet ".repeat(26_000).into_bytes();
    let (status, body) = upload(&app.client, &base, &[("big.txt", big.clone())]).await;
    assert_eq!(status, 202, "{body}");
    let mut other = big.clone();
    other.extend_from_slice(b" the end");
    let (status, body) = upload(&app.client, &base, &[("big2.txt", other)]).await;
    assert_eq!(status, 413, "{body}");
    let error = upload_error(body);
    assert!(error.contains("at most 1 MiB"), "{error}");
    // A small one still fits; then three documents are the most kept,
    // whatever the size of the next.
    let (status, body) = upload(&app.client, &base, &[("c.txt", b"gamma".to_vec())]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = upload(&app.client, &base, &[("d.txt", b"delta".to_vec())]).await;
    assert_eq!(status, 413, "{body}");
    let error = upload_error(body);
    assert!(error.contains("3 documents"), "{error}");
}

#[tokio::test]
async fn the_ingestion_queue_serves_owners_in_turn_and_says_where_each_document_is() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    let base = app.base();
    // Alice queues six long documents at once…
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("alice-{i}.md"), long_markdown(i)))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = upload(&app.client, &base, &named).await;
    assert_eq!(status, 202, "{body}");
    let alice_docs: Vec<String> = outcomes(body)
        .into_iter()
        .map(|o| o.document.unwrap().id)
        .collect();
    let alice = std::mem::replace(&mut app.client, client());
    // …then Bob one.
    let (status, body) = upload(&app.client, &base, &[("bob.md", long_markdown(99))]).await;
    assert_eq!(status, 202, "{body}");
    let bob_doc = outcomes(body).remove(0).document.unwrap();
    let position = bob_doc
        .queue_position
        .expect("a queued document has a place");
    assert!(
        position <= 2,
        "Bob waits for at most one of Alice's: {position}"
    );

    let alice_positions: Vec<u32> = {
        let listed: Vec<DocumentView> = alice
            .get(format!("{base}/api/documents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed.iter().filter_map(|d| d.queue_position).collect()
    };
    assert!(
        alice_positions.iter().any(|&p| p > position),
        "{alice_positions:?}"
    );

    // Bob's document is done before Alice's third.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let get = |browser: &reqwest::Client, id: &str| {
            browser.get(format!("{base}/api/documents/{id}")).send()
        };
        let bob_done: DocumentView = get(&app.client, &bob_doc.id)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let third: DocumentView = get(&alice, &alice_docs[2])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_ne!(bob_done.status, DocumentStatus::Failed, "{bob_done:?}");
        if bob_done.status == DocumentStatus::Indexed {
            assert!(
                third.status.is_pending(),
                "Alice's third finished first: {third:?}"
            );
            break;
        }
        assert!(
            third.status.is_pending(),
            "Alice's third finished before Bob's: {third:?}"
        );
        assert!(
            Instant::now() < deadline,
            "Bob's document never finished: {bob_done:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn long_markdown(seed: usize) -> Vec<u8> {
    let mut text = format!("# Logbook {seed}\n\n");
    for section in 0..12 {
        text.push_str(&format!("## Week {section}\n\n"));
        for day in 0..6 {
            text.push_str(&format!(
                "Day {day} of week {section} in logbook {seed}: the crew logged {} nautical miles, \
                 repaired the jib, and sighted {} dolphins off the northern cape before the wind turned.\n\n",
                seed * 31 + section * 7 + day,
                day + section
            ));
        }
    }
    text.into_bytes()
}

#[tokio::test]
async fn the_client_address_is_the_last_hop_the_proxy_added_and_ipv6_counts_per_64() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.server.client_ip_header = Some("x-forwarded-for".into());
        s.server.trusted_proxies = 1;
        s.limits.guest.requests_per_minute = 1;
        s.limits.guest.burst = 1;
    })
    .await;
    let send = |forwarded: &'static str| {
        let url = app.url("/api/chat");
        async move {
            client()
                .post(url)
                .header("x-forwarded-for", forwarded)
                .json(&serde_json::json!({ "conversation_id": null, "text": "hi" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("1.1.1.1, 203.0.113.5").await, 200);
    // Forged leading entries don't make a new client…
    assert_eq!(send("9.9.9.9, 8.8.8.8, 203.0.113.5").await, 429);
    // …the entry the proxy appended does.
    assert_eq!(send("203.0.113.6").await, 200);
    // A proxy that adds a header line of its own (instead of appending to
    // the client's) is read the same way.
    let split_lines = client()
        .post(app.url("/api/chat"))
        .header("x-forwarded-for", "203.0.113.99")
        .header("x-forwarded-for", "203.0.113.6")
        .json(&serde_json::json!({ "conversation_id": null, "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(split_lines.status(), 429, "the client is 203.0.113.6 again");
    assert_eq!(send("2001:db8:1:2::1").await, 200);
    assert_eq!(send("2001:db8:1:2:ffff:ffff:ffff:fffe").await, 429);
    assert_eq!(send("2001:db8:1:3::1").await, 200);
    let addresses: Vec<String> =
        sqlx::query_scalar("SELECT created_from FROM users ORDER BY created_at")
            .fetch_all(&app.db())
            .await
            .unwrap();
    assert_eq!(
        addresses,
        [
            "203.0.113.5",
            "203.0.113.6",
            "2001:db8:1:2::",
            "2001:db8:1:3::"
        ]
    );
}

#[tokio::test]
async fn admin_functions_refuse_an_admin_s_api_key() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let signed_up = app
        .post_form(
            "/api/sign_up",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let bob = client();
    let bob_account: app::wire::AccountView = bob
        .post(app.url("/api/sign_up"))
        .form(&[("username", "bob"), ("password", "battery staple")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: NewApiKey = app
        .post_form("/api/keys/create", &[("name", "admin script")])
        .await
        .json()
        .await
        .unwrap();
    let with_key = client();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        with_key
            .post(app.url(path))
            .bearer_auth(&key.secret)
            .form(&form)
            .send()
    };
    for (path, form) in [
        ("/api/admin/users", vec![]),
        (
            "/api/admin/set_role",
            vec![
                ("user_id", bob_account.user_id.clone()),
                ("role", "admin".into()),
            ],
        ),
        (
            "/api/admin/set_disabled",
            vec![
                ("user_id", bob_account.user_id.clone()),
                ("disabled", "true".into()),
            ],
        ),
        ("/api/admin/dashboard", vec![("hours", "24".into())]),
    ] {
        let response = post(path, form).await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let export = with_key
        .get(app.url("/api/admin/export/events.jsonl"))
        .bearer_auth(&key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 403);
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE username = 'bob'")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(role, "user");
    // The key still chats as ada, and her browser still administers.
    let chat = with_key
        .post(app.url("/api/chat"))
        .bearer_auth(&key.secret)
        .json(&serde_json::json!({ "text": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    assert_eq!(app.post_form("/api/admin/users", &[]).await.status(), 200);
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let get = |token: Option<&str>| {
        let mut request = client().get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let missing = get(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(get(Some("wrong")).await.unwrap().status(), 401);
    // A session (even an admin's) is not the token.
    app.post_form(
        "/api/sign_up",
        &[("username", "ada"), ("password", "correct horse")],
    )
    .await;
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.chat(None, "something to count").await;
    let ok = get(Some(METRICS_TOKEN)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok
        .text()
        .await
        .unwrap()
        .contains("ragchat_chat_turns_total"));

    let unset = spawn_app_http(&up.base_url, |s| s.server.metrics_token = None).await;
    let off = client()
        .get(unset.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 403);
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy_with_a_fresh_nonce() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let page = app.client.get(app.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        for directive in [
            "default-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "img-src 'self' data:",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        let scripts = csp
            .split(';')
            .find(|directive| directive.trim().starts_with("script-src"))
            .expect("a script-src directive");
        assert!(
            !scripts.contains("'unsafe-inline'") && !scripts.contains("'unsafe-eval'"),
            "{scripts}"
        );
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("a script nonce")
            .to_owned();
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        let html = page.text().await.unwrap();
        // Every inline script carries it.
        let scripts = html.matches("<script").count();
        assert!(scripts > 0);
        assert_eq!(
            html.matches(&format!("nonce=\"{nonce}\"")).count(),
            scripts,
            "{html}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce per response");
    // Other responses allow nothing at all; no HSTS over plain HTTP.
    let api = app.post_form("/api/session", &[]).await;
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert!(!api.headers().contains_key("strict-transport-security"));
    let https = spawn_app_http(&up.base_url, |s| s.server.secure_cookies = true).await;
    let page = client().get(https.url("/")).send().await.unwrap();
    assert!(page.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
}

#[tokio::test]
async fn disabling_an_account_ends_its_streaming_answer_within_a_second() {
    let up = upstream(Behaviour::Endless).await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    app.post_form(
        "/api/sign_up",
        &[("username", "ada"), ("password", "correct horse")],
    )
    .await;
    let admin = std::mem::replace(&mut app.client, client());
    let bob: app::wire::AccountView = app
        .post_form(
            "/api/sign_up",
            &[("username", "bob"), ("password", "battery staple")],
        )
        .await
        .json()
        .await
        .unwrap();
    let response = app.send_raw(None, "tell me everything").await;
    assert_eq!(response.status(), 200);
    let mut decoder = app::ndjson::LineDecoder::new();
    let mut body = futures::StreamExt::boxed(response.bytes_stream());
    // Tokens are flowing.
    let mut tokens = 0;
    while tokens < 3 {
        let chunk = futures::StreamExt::next(&mut body).await.unwrap().unwrap();
        for event in decoder.push::<ChatEvent>(&chunk) {
            tokens += usize::from(matches!(event.unwrap(), ChatEvent::Token { .. }));
        }
    }
    let disabled = admin
        .post(app.url("/api/admin/set_disabled"))
        .form(&[("user_id", bob.user_id.as_str()), ("disabled", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let at = Instant::now();
    let mut events = Vec::new();
    while let Some(chunk) =
        tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut body))
            .await
            .expect("the stream ends")
    {
        for event in decoder.push::<ChatEvent>(&chunk.unwrap()) {
            events.push(event.unwrap());
        }
    }
    let took = at.elapsed();
    println!(
        "the disabled account's stream ended {} ms after the admin's request",
        took.as_millis()
    );
    // The poll is every 400 ms; the margin is for a loaded machine.
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        matches!(
            events.last(),
            Some(ChatEvent::Done { .. } | ChatEvent::Error { .. })
        ),
        "{events:?}"
    );
    let _ = answer_text(&events);
}

#[tokio::test]
async fn an_address_can_make_only_so_many_accounts_an_hour() {
    let up = upstream(answer()).await;
    let mut app = spawn_app_http(&up.base_url, |s| s.limits.new_accounts_per_hour = 2).await;
    for name in ["ada", "bob"] {
        app.client = client();
        let made = app
            .post_form(
                "/api/sign_up",
                &[("username", name), ("password", "long enough pw")],
            )
            .await;
        assert_eq!(made.status(), 200);
    }
    app.client = client();
    let (status, retry_after, message) = refusal(
        app.post_form(
            "/api/sign_up",
            &[("username", "carol"), ("password", "long enough pw")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    assert!(message.contains("new accounts"), "{message}");
}

#[tokio::test]
async fn an_address_uploads_at_most_two_files_at_once() {
    let up = upstream(answer()).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    // Two uploads whose bodies are still coming (their senders are held).
    let mut held = Vec::new();
    let mut pending = Vec::new();
    for i in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let boundary = format!("held-upload-{i}");
        tx.send(Ok(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow{i}.txt\"\r\nContent-Type: text/plain\r\n\r\nThe start of a slow file."
        )
        .into_bytes()))
            .await
            .unwrap();
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        let request = app
            .client
            .post(app.url("/api/documents"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send();
        pending.push(tokio::spawn(request));
        held.push((tx, boundary));
    }
    // Let both reach the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = upload(
        &app.client,
        &app.base(),
        &[("third.txt", b"third".to_vec())],
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(upload_error(body).contains("2 uploads at a time"));
    // Once they finish, uploading works again.
    for (tx, boundary) in held {
        tx.send(Ok(format!(" The end.\r\n--{boundary}--\r\n").into_bytes()))
            .await
            .unwrap();
    }
    for request in pending {
        assert_eq!(request.await.unwrap().unwrap().status(), 202);
    }
    let (status, body) = upload(
        &app.client,
        &app.base(),
        &[("third.txt", b"third".to_vec())],
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

/// A stream of the chunks sent into `rx`, for a request body that arrives
/// when the test says so.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
