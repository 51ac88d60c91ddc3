//! Accounts: sign-up (first is admin), log-in/out, admin-only routes,
//! disabling, and the CSRF check on writes.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, TestApp};
use app::wire::{AccountView, ApiKeyView, NewApiKey, SessionView, UserList, UserRole};

async fn sign_up(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_form(
        "/api/sign_up",
        &[("username", username), ("password", password)],
    )
    .await
}

async fn log_in(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_form(
        "/api/log_in",
        &[("username", username), ("password", password)],
    )
    .await
}

async fn session(app: &TestApp) -> SessionView {
    let response = app.post_form("/api/session", &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn users(app: &TestApp) -> reqwest::Response {
    app.post_form("/api/admin/users", &[]).await
}

async fn error_kind(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["kind"].as_str().unwrap_or_default().to_owned()
}

async fn chat_app() -> TestApp {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["fine"],
        usage: true,
    })
    .await;
    // The upstream lives as long as the test's runtime.
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    std::mem::forget(up);
    app
}

/// Ada signs up first (admin); `app.client` becomes a new browser signed up
/// as bob. Returns ada's browser and bob's account.
async fn admin_then_bob(app: &mut TestApp) -> (reqwest::Client, AccountView) {
    sign_up(app, "ada", "correct horse").await;
    let admin = std::mem::replace(&mut app.client, client());
    let bob = sign_up(app, "bob", "hunter2hunter2")
        .await
        .json()
        .await
        .unwrap();
    (admin, bob)
}

#[tokio::test]
async fn the_first_account_is_admin_and_a_guest_keeps_its_chats_when_signing_up() {
    let mut app = chat_app().await;
    app.chat(None, "a question asked as a guest").await;
    let guest = session(&app).await.account.expect("a guest after chatting");
    assert_eq!(guest.role, UserRole::Guest);
    assert!(session(&app).await.guests_allowed);

    let response = sign_up(&app, "ada", "correct horse").await;
    assert_eq!(response.status(), 200);
    let ada: AccountView = response.json().await.unwrap();
    assert_eq!(ada.role, UserRole::Admin);
    assert_eq!(ada.user_id, guest.user_id, "the guest became the account");
    assert_eq!(ada.username.as_deref(), Some("ada"));
    assert_eq!(app.conversations().await.len(), 1);

    // Another browser: a plain user; names are unique regardless of case.
    let ada_browser = std::mem::replace(&mut app.client, client());
    let bob: AccountView = sign_up(&app, "bob", "hunter2hunter2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bob.role, UserRole::User);
    assert!(app.conversations().await.is_empty());
    let taken = sign_up(&app, "ADA", "another password").await;
    assert_eq!(taken.status(), 409);
    assert_eq!(sign_up(&app, "x", "long enough pw").await.status(), 400);
    assert_eq!(
        sign_up(&app, "<script>", "long enough pw").await.status(),
        400
    );
    assert_eq!(sign_up(&app, "carol", "short").await.status(), 400);
    app.client = ada_browser;
    assert_eq!(
        session(&app).await.account.unwrap().username.as_deref(),
        Some("ada")
    );
}

#[tokio::test]
async fn logging_in_and_out_switches_identity_and_wrong_credentials_look_alike() {
    let mut app = chat_app().await;
    sign_up(&app, "ada", "correct horse").await;
    app.chat(None, "ada's question").await;

    let out = app.post_form("/api/log_out", &[]).await;
    assert_eq!(out.status(), 200);
    assert!(session(&app).await.account.is_none());
    assert!(app.conversations().await.is_empty());

    let wrong_password = log_in(&app, "ada", "wrong horse").await;
    assert_eq!(wrong_password.status(), 401);
    let wrong_user = log_in(&app, "nobody", "correct horse").await;
    assert_eq!(wrong_user.status(), 401);
    assert_eq!(
        wrong_password.text().await.unwrap(),
        wrong_user.text().await.unwrap(),
        "an unknown user and a wrong password get the same answer"
    );

    // Any case of the name works; the session now has ada's chats.
    let fresh = std::mem::replace(&mut app.client, client());
    drop(fresh);
    assert_eq!(log_in(&app, "ADA", "correct horse").await.status(), 200);
    assert_eq!(app.conversations().await.len(), 1);
    // The password is stored hashed.
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'ada'")
            .fetch_one(&app.db())
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains("correct horse"));
}

#[tokio::test]
async fn every_admin_route_refuses_anyone_but_an_admin() {
    let mut app = chat_app().await;
    let (admin, bob) = admin_then_bob(&mut app).await;

    let admin_calls: [(&str, Vec<(&str, &str)>); 3] = [
        ("/api/admin/users", vec![]),
        (
            "/api/admin/set_role",
            vec![("user_id", &bob.user_id), ("role", "admin")],
        ),
        (
            "/api/admin/set_disabled",
            vec![("user_id", &bob.user_id), ("disabled", "true")],
        ),
    ];
    // A plain user.
    for (path, form) in &admin_calls {
        let response = app.post_form(path, form).await;
        assert_eq!(response.status(), 403, "{path} as a user");
    }
    // A guest, and a browser with no session at all.
    app.client = client();
    app.chat(None, "guest question").await;
    for (path, form) in &admin_calls {
        assert_eq!(
            app.post_form(path, form).await.status(),
            403,
            "{path} as a guest"
        );
    }
    app.client = client();
    for (path, form) in &admin_calls {
        assert_eq!(
            app.post_form(path, form).await.status(),
            401,
            "{path} without a session"
        );
    }
    let unchanged: String = sqlx::query_scalar("SELECT role FROM users WHERE username = 'bob'")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(unchanged, "user");

    // The admin sees both accounts and the guest count.
    app.client = admin;
    let response = users(&app).await;
    assert_eq!(response.status(), 200);
    let list: UserList = response.json().await.unwrap();
    let names: Vec<&str> = list.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(list.guests, 1);
}

#[tokio::test]
async fn a_disabled_account_loses_access_at_once_and_can_be_enabled_again() {
    let mut app = chat_app().await;
    let (admin, bob) = admin_then_bob(&mut app).await;
    app.chat(None, "bob's question").await;
    let bob_browser = std::mem::replace(&mut app.client, admin);

    let disable = app
        .post_form(
            "/api/admin/set_disabled",
            &[("user_id", &bob.user_id), ("disabled", "true")],
        )
        .await;
    assert_eq!(disable.status(), 200);
    let admin = std::mem::replace(&mut app.client, bob_browser);

    // Bob's existing session stops working on the next request...
    let refused = app.send_raw(None, "still there?").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(error_kind(refused).await, "forbidden");
    // ... which ended it: the browser is nobody now (what bob could do as any
    // anonymous visitor is the guest policy's business), and bob can't sign
    // back in.
    assert!(app.conversations().await.is_empty());
    assert!(session(&app).await.account.is_none());
    let login = log_in(&app, "bob", "hunter2hunter2").await;
    assert_eq!(login.status(), 403);

    app.client = admin;
    let enable = app
        .post_form(
            "/api/admin/set_disabled",
            &[("user_id", &bob.user_id), ("disabled", "false")],
        )
        .await;
    assert_eq!(enable.status(), 200);
    app.client = client();
    assert_eq!(log_in(&app, "bob", "hunter2hunter2").await.status(), 200);
    assert_eq!(app.conversations().await.len(), 1);
}

#[tokio::test]
async fn admins_cannot_lock_themselves_out() {
    let mut app = chat_app().await;
    let ada: AccountView = sign_up(&app, "ada", "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let admin = std::mem::replace(&mut app.client, client());
    let bob: AccountView = sign_up(&app, "bob", "hunter2hunter2")
        .await
        .json()
        .await
        .unwrap();
    app.client = admin;

    let own_role = app
        .post_form(
            "/api/admin/set_role",
            &[("user_id", &ada.user_id), ("role", "user")],
        )
        .await;
    assert_eq!(own_role.status(), 400);
    let own_access = app
        .post_form(
            "/api/admin/set_disabled",
            &[("user_id", &ada.user_id), ("disabled", "true")],
        )
        .await;
    assert_eq!(own_access.status(), 400);
    let unknown = app
        .post_form(
            "/api/admin/set_role",
            &[("user_id", "no-such-user"), ("role", "admin")],
        )
        .await;
    assert_eq!(unknown.status(), 404);

    // Promote bob; then bob may demote ada (there is still an admin).
    let promote = app
        .post_form(
            "/api/admin/set_role",
            &[("user_id", &bob.user_id), ("role", "admin")],
        )
        .await;
    assert_eq!(promote.status(), 200);
    app.client = client();
    log_in(&app, "bob", "hunter2hunter2").await;
    let demote = app
        .post_form(
            "/api/admin/set_role",
            &[("user_id", &ada.user_id), ("role", "user")],
        )
        .await;
    assert_eq!(demote.status(), 200);
    let roles: Vec<(String, String)> = sqlx::query_as(
        "SELECT username, role FROM users WHERE username IS NOT NULL ORDER BY username",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(
        roles,
        [
            ("ada".into(), "user".into()),
            ("bob".into(), "admin".into())
        ]
    );
}

#[tokio::test]
async fn guests_can_be_turned_off() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["fine"],
        usage: true,
    })
    .await;
    let app = spawn_app_http(&up.base_url, |s| s.auth.allow_guests = false).await;
    assert!(!session(&app).await.guests_allowed);
    let refused = app.send_raw(None, "hello").await;
    assert_eq!(refused.status(), 401);
    assert_eq!(sign_up(&app, "ada", "correct horse").await.status(), 200);
    app.chat(None, "hello").await;
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let app = chat_app().await;
    let forged = app
        .client
        .post(app.url("/api/sign_up"))
        .header("Origin", "https://evil.example")
        .form(&[("username", "mallory"), ("password", "long enough pw")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let same_site = app
        .client
        .post(app.url("/api/sign_up"))
        .header("Origin", format!("http://{}", app.address))
        .form(&[("username", "ada"), ("password", "correct horse")])
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), 200);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username IS NOT NULL")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// A client with no cookies that sends `key` as a bearer token.
fn with_key(app: &TestApp, key: &str) -> impl Fn(&str) -> reqwest::RequestBuilder {
    let client = reqwest::Client::new();
    let base = app.url("");
    let auth = format!("Bearer {key}");
    move |path: &str| {
        client
            .post(format!("{base}{path}"))
            .header("authorization", auth.clone())
    }
}

#[tokio::test]
async fn api_keys_work_without_a_session_and_stop_when_revoked_or_disabled() {
    let mut app = chat_app().await;
    assert_eq!(sign_up(&app, "ada", "correct horse").await.status(), 200);
    let admin = std::mem::replace(&mut app.client, client());

    // Guests can't make keys.
    app.chat(None, "a guest's question").await;
    let refused = app
        .post_form("/api/keys/create", &[("name", "script")])
        .await;
    assert_eq!(refused.status(), 401);

    assert_eq!(sign_up(&app, "bob", "battery staple").await.status(), 200);
    let made: NewApiKey = app
        .post_form("/api/keys/create", &[("name", "nightly script")])
        .await
        .json()
        .await
        .unwrap();
    assert!(made.secret.starts_with(&made.key.prefix));
    let listed: Vec<ApiKeyView> = app.post_form("/api/keys", &[]).await.json().await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&made.key));
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT prefix, secret_sha256 FROM api_keys")
            .fetch_all(&app.db())
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].1.contains(&made.secret[4..]),
        "only a hash is kept"
    );

    // The key alone (no cookie) chats, lists and uploads as bob, and never
    // gets a session.
    let bob = with_key(&app, &made.secret);
    let chatted = bob("/api/chat")
        .json(&serde_json::json!({ "text": "asked from a script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(chatted.status(), 200);
    assert!(chatted.headers().get("set-cookie").is_none());
    let events = crate::helpers::read_events(chatted).await;
    assert_eq!(crate::helpers::answer_text(&events), "fine");
    let listed: Vec<app::wire::ConversationSummary> = bob("/api/conversations")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Bob's chats: the one he had as a guest, and the script's.
    let titles: Vec<&str> = listed.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["asked from a script", "a guest's question"]);
    let whoami: SessionView = bob("/api/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami.account.unwrap().username.as_deref(), Some("bob"));
    let documents = reqwest::Client::new()
        .get(app.url("/api/documents"))
        .bearer_auth(&made.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(documents.status(), 200);

    // The scheme is read in any case; a key can't make (or revoke) keys, so a
    // leaked one can't outlive its revocation.
    let lowercase = reqwest::Client::new()
        .post(app.url("/api/keys/create"))
        .header("authorization", format!("bearer {}", made.secret))
        .form(&[("name", "made with a key")])
        .send()
        .await
        .unwrap();
    assert_eq!(lowercase.status(), 403);
    assert_eq!(
        bob("/api/keys/revoke")
            .form(&[("id", made.key.id.as_str())])
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // A wrong key is refused, not treated as a new guest; so is a bearer
    // header without a token. Other schemes (a proxy's Basic auth) are left
    // to the session.
    let empty = with_key(&app, "");
    assert_eq!(
        empty("/api/conversations").send().await.unwrap().status(),
        401
    );
    let basic = reqwest::Client::new()
        .post(app.url("/api/conversations"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let wrong = with_key(&app, &made.secret.replace(&made.secret[10..14], "0000"));
    let refused = wrong("/api/chat")
        .json(&serde_json::json!({ "text": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(error_kind(refused).await, "unauthorized");

    // Disabling bob stops his key on the next request; enabling restores it.
    let bob_id = session(&app).await.account.unwrap().user_id;
    let set = |disabled: &'static str| {
        admin
            .post(app.url("/api/admin/set_disabled"))
            .form(&[("user_id", bob_id.as_str()), ("disabled", disabled)])
            .send()
    };
    assert_eq!(set("true").await.unwrap().status(), 200);
    let refused = bob("/api/conversations").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let refused = reqwest::Client::new()
        .get(app.url("/api/documents"))
        .bearer_auth(&made.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(set("false").await.unwrap().status(), 200);
    assert_eq!(
        bob("/api/conversations").send().await.unwrap().status(),
        200
    );

    // Only bob can revoke it; then it stops working.
    let foreign = admin
        .post(app.url("/api/keys/revoke"))
        .form(&[("id", made.key.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let revoked = app
        .post_form("/api/keys/revoke", &[("id", made.key.id.as_str())])
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        bob("/api/conversations").send().await.unwrap().status(),
        401
    );
    let listed: Vec<ApiKeyView> = app.post_form("/api/keys", &[]).await.json().await.unwrap();
    assert!(listed.is_empty());
}
