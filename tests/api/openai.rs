//! The OpenAI-compatible API under `/v1`: driven by the official `openai`
//! Python SDK against the real app (embedded model and embedder), and over
//! plain HTTP against a scripted upstream for what must hold exactly: the
//! wire format, errors in OpenAI's shape, whose documents an answer may
//! use, and that a revoked key stops working (and stops its stream).

use crate::documents::{fixture, wait_done};
use crate::faults::{upstream, Behaviour, Upstream};
use crate::helpers::{local_model_or_skip, signed_up, spawn_app, spawn_app_http, TestApp};
use app::wire::NewApiKey;
use futures::StreamExt;
use ragchat::config::RoleLimits;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const QUESTION: &str = "How often should the Kestrel runner beans be watered?";

/// A signed-in browser with an API key of its account.
struct Account {
    browser: reqwest::Client,
    user_id: String,
    key: NewApiKey,
}

async fn account(app: &TestApp, username: &str, key_name: &str) -> Account {
    let (browser, me) = signed_up(app, username).await;
    let key: NewApiKey = browser
        .post(app.url("/api/keys/create"))
        .form(&[("name", key_name)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Account {
        browser,
        user_id: me.user_id,
        key,
    }
}

impl Account {
    /// Revokes the account's key from its signed-in browser.
    async fn revoke_key(&self, app: &TestApp) {
        let revoked = self
            .browser
            .post(app.url("/api/keys/revoke"))
            .form(&[("id", self.key.key.id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
    }

    /// Uploads a fixture document from the browser and waits until it answers.
    async fn ingest(&self, app: &TestApp, name: &str) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(fixture(name)).file_name(name.to_owned()),
        );
        let response = self
            .browser
            .post(app.url("/api/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        let id = body[0]["document"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned();
        wait_done(&self.browser, &app.base(), &id).await;
    }
}

async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An OpenAI error body: its status, `type` and `code`.
async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        status,
        error["type"].as_str().unwrap_or_default().to_owned(),
        error["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The `data:` payloads of a Server-Sent Events body, in order.
fn sse_data(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data frame: {frame:?}"))
                .to_owned()
        })
        .collect()
}

async fn scripted(tokens: Vec<&'static str>) -> Upstream {
    upstream(Behaviour::Stream {
        tokens,
        usage: true,
    })
    .await
}

#[tokio::test]
async fn streams_and_answers_are_framed_as_openai_sends_them() {
    let up = scripted(vec!["Hello", " wor", "ld [1]."]).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let ada = account(&app, "ada", "notebook").await;
    let key = ada.key.secret.as_str();

    let models: Value = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(models["object"], "list");
    assert_eq!(ids[..2], ["rag", "test-model"], "{models}");
    assert!(ids.contains(&app.embedder().model()), "{models}");

    // Streaming, usage asked for.
    let request = json!({
        "model": "test-model",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let response = post(&app, key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    for chunk in &chunks {
        assert_eq!(chunk["id"], id.as_str());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "test-model");
        assert!(
            chunk.get("sources").is_none(),
            "a plain model has no sources"
        );
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello world [1].");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24})
    );

    // One answer, with a stop sequence cutting it short.
    let request = json!({
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ],
        "stop": " wor",
        "max_completion_tokens": 20,
    });
    let response = post(&app, key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(completion["choices"][0]["message"]["content"], "Hello");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    // Cut short before the upstream reported usage: estimated.
    let usage = &completion["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    // The client's system message is the plain model's system prompt.
    let prompt = up.seen.lock().unwrap().requests.last().cloned().unwrap();
    assert!(prompt.contains("Be brief."), "{prompt}");
}

#[tokio::test]
async fn api_answers_are_grounded_in_the_callers_documents_only() {
    let up = scripted(vec!["Every second evening [1]."]).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let ada = account(&app, "ada", "ada's script").await;
    let bea = account(&app, "bea", "bea's script").await;
    ada.ingest(&app, "garden-guide.md").await;
    let ask = json!({"model": "rag", "messages": [{"role": "user", "content": QUESTION}]});

    // Ada's key: grounded in her document, cited.
    let completion: Value = post(&app, &ada.key.secret, "/v1/chat/completions", &ask)
        .await
        .json()
        .await
        .unwrap();
    let sources = completion["sources"].as_array().unwrap();
    assert!(!sources.is_empty(), "{completion}");
    assert_eq!(sources[0]["document"], "garden-guide.md");
    assert_eq!(sources[0]["index"], 1);
    assert_eq!(sources[0]["cited"], true);
    assert!(sources
        .iter()
        .any(|s| s["text"].as_str().unwrap().contains("every second evening")));
    let ada_prompt = up.seen.lock().unwrap().requests.last().cloned().unwrap();
    assert!(ada_prompt.contains("Kestrel runner beans every second evening"));

    // Bea's key: the same question finds nothing of Ada's, and her prompt
    // holds none of it.
    let response = post(&app, &bea.key.secret, "/v1/chat/completions", &ask).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["sources"], json!([]), "{completion}");
    let bea_prompt = up.seen.lock().unwrap().requests.last().cloned().unwrap();
    for secret in ["every second evening", "Brindle Lane", "garden-guide"] {
        assert!(
            !bea_prompt.contains(secret),
            "{secret} leaked: {bea_prompt}"
        );
    }
    // Nor can she vote on Ada's answer by its id.
    let ada_answer = post(&app, &ada.key.secret, "/v1/chat/completions", &ask)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/chat/completions/{ada_answer}/feedback");
    let refused = post(&app, &bea.key.secret, &path, &json!({"rating": "down"})).await;
    assert_eq!(error_of(refused).await.0, 404);
    let voted = post(&app, &ada.key.secret, &path, &json!({"rating": "up"})).await;
    assert_eq!(voted.status(), 200);

    // API turns are events (with their source and key), not conversations
    // in the browser's list.
    let listed: Vec<Value> = ada
        .browser
        .post(app.url("/api/conversations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT source, api_key_name FROM chat_events WHERE user_id = $1")
            .bind(&ada.user_id)
            .fetch_all(&app.db())
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r == &("api".to_owned(), Some("ada's script".to_owned()))));
    let votes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM feedback WHERE message_id = $1")
        .bind(ada_answer.trim_start_matches("chatcmpl-"))
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert_eq!(votes, 1);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "ragchat_source_turns_total{key=\"ada's script\",outcome=\"stop\",source=\"api\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn errors_come_in_openai_shape_with_the_status_sdks_expect() {
    let up = scripted(vec!["Hi."]).await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.limits.user = RoleLimits {
            requests_per_minute: 6,
            burst: 2,
            ..RoleLimits::UNLIMITED
        };
    })
    .await;
    let admin = account(&app, "ada", "admin key").await;
    let bea = account(&app, "bea", "bea key").await;
    let key = bea.key.secret.as_str();
    let ask = |extra: Value| {
        let mut body =
            json!({"model": "test-model", "messages": [{"role": "user", "content": "Hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    // 401: no key, a malformed one, an unknown one; and no session is made.
    let bare = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert!(bare.headers().get("set-cookie").is_none());
    assert_eq!(
        error_of(bare).await,
        (
            401,
            "invalid_request_error".into(),
            "invalid_api_key".into()
        )
    );
    for bad in ["nonsense", &format!("rck_{}", "0".repeat(64))] {
        let response = post(&app, bad, "/v1/chat/completions", &ask(json!({}))).await;
        assert_eq!(error_of(response).await.0, 401, "{bad}");
    }

    // 404: an unknown model, an unknown route.
    let response = post(
        &app,
        key,
        "/v1/chat/completions",
        &ask(json!({"model": "gpt-9"})),
    )
    .await;
    assert_eq!(
        error_of(response).await,
        (
            404,
            "invalid_request_error".into(),
            "model_not_found".into()
        )
    );
    let response = post(&app, key, "/v1/completions", &json!({})).await;
    assert_eq!(error_of(response).await.0, 404);

    // 400: what isn't supported is refused, never ignored; and bad input.
    let refused = [
        json!({"n": 2}),
        json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
        json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}}]}]}),
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}),
        json!({"messages": [{"role": "tool", "content": "42"}]}),
        json!({"messages": [{"role": "user", "content": "   "}]}),
        json!({"stream_options": {"include_usage": true}}),
        json!({"temperature": 3}),
        json!({"logprobs": true}),
        json!({"response_format": {"type": "json_object"}}),
        json!({"stop": ["a", "b", "c", "d", "e"]}),
        json!({"messages": [{"role": "system", "content": "x".repeat(8_001)},
            {"role": "user", "content": "Hi"}]}),
        json!({"messages": [{"role": "assistant", "content": "x".repeat(60_000)},
            {"role": "user", "content": "x".repeat(8_000)},
            {"role": "assistant", "content": "x".repeat(60_000)},
            {"role": "user", "content": "Hi"}]}),
    ];
    for extra in refused {
        let response = post(&app, key, "/v1/chat/completions", &ask(extra.clone())).await;
        assert_eq!(error_of(response).await.0, 400, "{extra}");
    }
    let wrong_method = reqwest::Client::new()
        .delete(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong_method).await.0, 405);
    // Only API keys count here, never cookies: another site's page may call it.
    let cross_site = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("origin", "https://elsewhere.example")
        .json(&ask(json!({"n": 3})))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(cross_site).await.0, 400);
    let not_json = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .body("{\"model\":")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(not_json).await.0, 400);
    let huge = "x".repeat(1024 * 1024);
    let response = post(
        &app,
        key,
        "/v1/embeddings",
        &json!({"model": "m", "input": huge}),
    )
    .await;
    assert_eq!(error_of(response).await.0, 413);
    let embedding_model = app.embedder().model().to_owned();
    for input in [json!([]), json!(""), json!([1, 2, 3])] {
        let body = json!({"model": embedding_model, "input": input});
        let response = post(&app, key, "/v1/embeddings", &body).await;
        assert_eq!(error_of(response).await.0, 400, "{input}");
    }

    // 429 with Retry-After once the burst is spent (the refusals above
    // didn't count); an admin's key is under its own limits.
    for _ in 0..2 {
        let response = post(&app, key, "/v1/chat/completions", &ask(json!({}))).await;
        assert_eq!(response.status(), 200);
    }
    let limited = post(&app, key, "/v1/chat/completions", &ask(json!({}))).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert!(limited.headers().contains_key("retry-after-ms"));
    assert_eq!(
        error_of(limited).await,
        (429, "requests".into(), "rate_limit_exceeded".into())
    );

    // 403: a disabled account's key.
    let disabled = admin
        .browser
        .post(app.url("/api/admin/set_disabled"))
        .form(&[("user_id", bea.user_id.as_str()), ("disabled", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let response = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (403, "permission_error".into(), "account_disabled".into())
    );
}

#[tokio::test]
async fn when_every_model_fails_the_api_answers_5xx() {
    let up = upstream(Behaviour::Status(500, "upstream exploded")).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let ada = account(&app, "ada", "k").await;
    for stream in [false, true] {
        let body = json!({"model": "rag", "stream": stream,
            "messages": [{"role": "user", "content": "Hello?"}]});
        let response = post(&app, &ada.key.secret, "/v1/chat/completions", &body).await;
        let (status, kind, _) = error_of(response).await;
        assert_eq!(
            (status, kind.as_str()),
            (502, "server_error"),
            "stream {stream}"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_its_running_stream_stopped() {
    let words: Vec<&'static str> = vec!["word "; 400];
    let up = upstream(Behaviour::Paced(words, 50)).await;
    let app = spawn_app_http(&up.base_url, |s| s.llm.max_tokens = 1000).await;
    let ada = account(&app, "ada", "leaked").await;
    let key = ada.key.secret.clone();
    let body = json!({"model": "test-model", "stream": true,
        "messages": [{"role": "user", "content": "Write a long story."}]});
    let response = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("word") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }

    ada.revoke_key(&app).await;
    // The next request, while the long stream still runs: refused.
    let next = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(error_of(next).await.0, 401);

    // The running stream is stopped within a stop check, with an error
    // event instead of `[DONE]`; the upstream sees the app hang up.
    let revoked_at = Instant::now();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let stopped_after = revoked_at.elapsed();
    let last = sse_data(&seen).pop().unwrap();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert!(!seen.contains("[DONE]"));
    assert!(stopped_after < Duration::from_secs(5), "{stopped_after:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(up.seen.lock().unwrap().disconnected_at.is_some());
}

#[tokio::test]
async fn a_key_revoked_before_the_first_token_is_told_so() {
    // The model never says a word: the request waits for its first token.
    let up = upstream(Behaviour::StallAfter(vec![])).await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let ada = account(&app, "ada", "leaked").await;
    let (url, key) = (app.url("/v1/chat/completions"), ada.key.secret.clone());
    let waiting = tokio::spawn(async move {
        let body = json!({"model": "test-model", "messages": [{"role": "user", "content": "Hi"}]});
        reqwest::Client::new()
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.seen.lock().unwrap().requests.is_empty() {
        assert!(Instant::now() < deadline, "the upstream was never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ada.revoke_key(&app).await;
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting request ends")
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (
            401,
            "invalid_request_error".into(),
            "invalid_api_key".into()
        )
    );
}

/// The official `openai` Python SDK (pinned in scripts/llama-python.sh)
/// against the real app: the embedded model answers, the real embedder
/// embeds. `tests/openai_sdk.py` makes the checks.
#[tokio::test]
async fn the_official_openai_sdk_works_against_the_app() {
    let _cores = crate::helpers::exclusive_cpu().await;
    let Some(local) = local_model_or_skip("the_official_openai_sdk_works_against_the_app") else {
        return;
    };
    let Some(python) = std::env::var("RAGCHAT_OPENAI_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        println!("SKIP the_official_openai_sdk_works_against_the_app: RAGCHAT_OPENAI_PYTHON not set (scripts/test.sh sets it)");
        return;
    };
    // The first account is an admin: the limit the SDK's retry is tested
    // against is the admin's.
    let limited = RoleLimits {
        requests_per_minute: 20,
        burst: 20,
        ..RoleLimits::UNLIMITED
    };
    let app = spawn_app(|s| {
        s.llm.local = local;
        s.llm.temperature = 0.0;
        s.llm.max_tokens = 48;
        s.limits.admin = limited;
        s.limits.user = limited;
    })
    .await;
    let ada = account(&app, "ada", "sdk").await;
    ada.ingest(&app, "garden-guide.md").await;

    let texts = [
        "How often should runner beans be watered?",
        "The soil on the lower terraces is heavy clay.",
        "Ladybird larvae eat aphids.",
    ];
    let vectors = app
        .embedder()
        .embed_documents(texts.iter().map(|t| t.to_string()).collect())
        .await
        .unwrap();
    let own = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        own.path(),
        json!({"texts": texts, "vectors": vectors}).to_string(),
    )
    .unwrap();
    let models: Value = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .bearer_auth(&ada.key.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plain_model = models["data"][1]["id"].as_str().unwrap().to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .env("RAGCHAT_BASE_URL", app.url("/v1"))
        .env("RAGCHAT_API_KEY", &ada.key.secret)
        .env("RAGCHAT_GROUNDED_QUESTION", QUESTION)
        .env("RAGCHAT_DOCUMENT_NAME", "garden-guide.md")
        .env("RAGCHAT_EMBEDDING_MODEL", app.embedder().model())
        .env("RAGCHAT_OWN_EMBEDDINGS", own.path())
        .env("RAGCHAT_PLAIN_MODEL", &plain_model)
        .output()
        .await
        .expect("the SDK script runs");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the SDK's checks failed");

    // What the SDK did went through the same bookkeeping as the browser.
    let api_turns: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_events WHERE source = 'api' AND api_key_name = 'sdk'",
    )
    .fetch_one(&app.db())
    .await
    .unwrap();
    assert!(api_turns >= 4, "{api_turns}");
}
