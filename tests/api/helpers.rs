use app::wire::{AccountView, ChatEvent};
use futures::StreamExt;
use ragchat::config::{LocalSettings, Settings};
use ragchat::index::VectorIndex;
use ragchat::startup::Application;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tempfile::TempDir;

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn ragchat::embed::Embedder>,
    db: sqlx::AnyPool,
    _temp: Option<TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// What test apps want from `/metrics` scrapers.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Settings for a test app: port 0, a temp data dir.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.data_dir = data_dir.to_path_buf();
    // The test binary can't parse documents in a child process; the server's can.
    settings.documents.parser_program = Some(env!("CARGO_BIN_EXE_ragchat").into());
    settings.llm.max_tokens = 48;
    settings.server.metrics_token = Some(METRICS_TOKEN.into());
    // The fault tests check single attempts; the resilience tests turn retries on.
    settings.llm.max_retries = 0;
    // Tests that repeat a question expect the model to answer it; the cache
    // tests turn the cache on.
    settings.cache.enabled = false;
    // A follow-up's rewrite is one more model request; tests that count or
    // sequence the upstream's requests would see it. The follow-up tests
    // turn it on.
    settings.rewrite.enabled = false;
    // Tests send many messages quickly; the limits tests set their own.
    settings.limits.lift_all();
    settings
}

/// An OpenAI-compatible model at `base_url`, for fallbacks and `[llm.models]`.
pub fn http_model(base_url: &str, model: &str) -> ragchat::config::ModelEndpoint {
    ragchat::config::ModelEndpoint {
        base_url: Some(base_url.to_owned()),
        model: Some(model.to_owned()),
        api_key: None,
        local: None,
    }
}

/// Spawns the app with the HTTP provider pointed at `base_url`.
pub async fn spawn_app_http(base_url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app(|s| {
        s.llm.base_url = Some(base_url.to_string());
        s.llm.model = Some("test-model".into());
        tweak(s);
    })
    .await
}

pub async fn spawn_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let temp = TempDir::new().unwrap();
    let mut app = spawn_app_in(temp.path().to_path_buf(), tweak).await;
    app._temp = Some(temp);
    app
}

/// The Postgres server the tests run against (`TEST_POSTGRES_URL`, an
/// account that may create databases), if any; otherwise every app uses
/// SQLite in its data dir.
pub fn test_postgres() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The database of the app on `data_dir`: its SQLite file, or with
/// `TEST_POSTGRES_URL` a Postgres database of its own (created on first use,
/// the same one again after a restart on the same dir).
pub async fn database_url(data_dir: &std::path::Path) -> String {
    let Some(server) = test_postgres() else {
        return format!("sqlite://{}", data_dir.join("ragchat.db").display());
    };
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    postgres_database(&server, &format!("ragchat_test_{:016x}", hasher.finish())).await
}

/// The URL of database `name` on the test Postgres server, created if new.
pub async fn postgres_database(server: &str, name: &str) -> String {
    let admin = sqlx::PgPool::connect(server)
        .await
        .expect("TEST_POSTGRES_URL connects");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&admin)
        .await
        .unwrap();
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
    let mut url = reqwest::Url::parse(server).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(name);
    url.to_string()
}

/// Spawns the app on an existing data dir (to test restarts).
pub async fn spawn_app_in(data_dir: PathBuf, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&data_dir);
    if test_postgres().is_some() {
        settings.database.url = Some(database_url(&data_dir).await.into());
        settings.database.max_connections = 4;
    }
    tweak(&mut settings);
    let url = match &settings.database.url {
        Some(url) => secrecy::ExposeSecret::expose_secret(url).to_owned(),
        None => database_url(&data_dir).await,
    };
    let app = Application::build(settings).await.expect("app builds");
    let address = app.address();
    let index = app.index();
    let embedder = app.embedder();
    let db = connect(&url).await;
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp {
        address,
        client: client(),
        index,
        embedder,
        db,
        _temp: None,
        server,
    }
}

/// The embedded model's settings if its GGUF is present; otherwise prints why
/// the test is skipped.
pub fn local_model_or_skip(test: &str) -> Option<LocalSettings> {
    let local = LocalSettings::default();
    if local.gguf_path().is_file() {
        Some(local)
    } else {
        println!(
            "SKIP {test}: embedded model not found at {} (run scripts/fetch-models.sh)",
            local.gguf_path().display()
        );
        None
    }
}

/// A pool on a test app's database, SQLite or Postgres alike (queries use
/// `$1` placeholders and types both read the same way).
pub async fn connect(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::pool::PoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("the test database connects")
}

impl TestApp {
    /// The app's database (to check what is stored).
    pub fn db(&self) -> sqlx::AnyPool {
        self.db.clone()
    }

    pub fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }

    /// The app's own embedding model.
    pub fn embedder(&self) -> Arc<dyn ragchat::embed::Embedder> {
        self.embedder.clone()
    }

    /// The user who owns a document (by looking at the database).
    pub async fn owner_of(&self, document_id: &str) -> Option<String> {
        sqlx::query_scalar("SELECT user_id FROM documents WHERE id = $1")
            .bind(document_id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// POSTs to the chat server function.
    pub async fn send_raw(&self, conversation_id: Option<&str>, text: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/chat"))
            .json(&serde_json::json!({ "conversation_id": conversation_id, "text": text }))
            .send()
            .await
            .unwrap()
    }

    /// Sends a message and collects every event of the answer.
    pub async fn chat(&self, conversation_id: Option<&str>, text: &str) -> Vec<ChatEvent> {
        let response = self.send_raw(conversation_id, text).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        read_events(response).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn conversations(&self) -> Vec<app::wire::ConversationSummary> {
        let response = self.post_form("/api/conversations", &[]).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn conversation(&self, id: &str) -> reqwest::Response {
        self.post_form("/api/conversation", &[("id", id)]).await
    }
}

/// A new browser (its own cookies) signed up as `username`, and its account.
pub async fn signed_up(app: &TestApp, username: &str) -> (reqwest::Client, AccountView) {
    let browser = client();
    let response = browser
        .post(app.url("/api/sign_up"))
        .form(&[
            ("username", username),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign up {username}");
    let account = response.json().await.unwrap();
    (browser, account)
}

pub async fn read_events(response: reqwest::Response) -> Vec<ChatEvent> {
    let mut decoder = app::ndjson::LineDecoder::new();
    let mut events = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        for event in decoder.push::<ChatEvent>(&chunk.unwrap()) {
            events.push(event.expect("valid event line"));
        }
    }
    assert!(!decoder.has_partial_line(), "stream ended mid-line");
    events
}

pub fn answer_text(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Token { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn started(events: &[ChatEvent]) -> (String, String) {
    match &events[0] {
        ChatEvent::Start {
            conversation_id,
            message_id,
            ..
        } => (conversation_id.clone(), message_id.clone()),
        other => panic!("first event is not start: {other:?}"),
    }
}

/// Tests that run a model hold this: two llama.cpp engines spinning on the
/// same two cores slow each other down many times over.
pub async fn exclusive_cpu() -> tokio::sync::MutexGuard<'static, ()> {
    static CPU: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    CPU.lock().await
}
