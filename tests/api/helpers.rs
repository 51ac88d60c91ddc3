use app::wire::ChatEvent;
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
    db: sqlx::SqlitePool,
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

/// Settings for a test app: port 0, a temp data dir.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.data_dir = data_dir.to_path_buf();
    settings.llm.max_tokens = 48;
    // The fault tests check single attempts; the resilience tests turn retries on.
    settings.llm.max_retries = 0;
    // Tests that repeat a question expect the model to answer it; the cache
    // tests turn the cache on.
    settings.cache.enabled = false;
    // Tests send many messages quickly; the limits tests set their own.
    for role in [
        &mut settings.limits.guest,
        &mut settings.limits.user,
        &mut settings.limits.admin,
    ] {
        role.requests_per_minute = 0;
        role.tokens_per_day = 0;
    }
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

/// Spawns the app on an existing data dir (to test restarts).
pub async fn spawn_app_in(data_dir: PathBuf, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&data_dir);
    tweak(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let address = app.address();
    let index = app.index();
    let db = app.db();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp {
        address,
        client: client(),
        index,
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

impl TestApp {
    /// The app's SQLite pool (to check what is stored).
    pub fn db(&self) -> sqlx::SqlitePool {
        self.db.clone()
    }

    pub fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }

    /// The user who owns a document (by looking at the database).
    pub async fn owner_of(&self, document_id: &str) -> Option<String> {
        sqlx::query_scalar("SELECT user_id FROM documents WHERE id = ?")
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
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
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
