//! Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, Ollama,
//! llama.cpp's server, text-embeddings-inference, LiteLLM…).

use super::{normalize, EmbedError, Embedder};
use crate::llm::openai::without_url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// OpenAI's limit is 2,048 inputs per request; many compatible servers take
/// far fewer, and 100 keeps each request small enough to retry cheaply.
pub const MAX_INPUTS_PER_REQUEST: usize = 100;

#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// Up to and including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<SecretString>,
    /// Vector length; `None`: from the model's name if well known (see
    /// [`known_dimension`]), else [`OpenAiEmbedder::connect`] asks the server.
    pub dimension: Option<usize>,
    /// Inputs per request, at most [`MAX_INPUTS_PER_REQUEST`].
    pub batch_size: usize,
    pub connect_timeout: Duration,
    /// For one whole request, response body included.
    pub request_timeout: Duration,
}

impl OpenAiOptions {
    pub fn new(
        base_url: impl Into<String>,
        model: impl Into<String>,
        api_key: Option<SecretString>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key,
            dimension: None,
            batch_size: MAX_INPUTS_PER_REQUEST,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<SecretString>,
    dimension: usize,
    batch_size: usize,
    request_timeout: Duration,
}

/// Vector lengths of well-known embedding models, so the index can be
/// created before the first request.
pub fn known_dimension(model: &str) -> Option<usize> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let name = name.split(':').next().unwrap_or(&name);
    Some(match name {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        "all-minilm-l6-v2"
        | "all-minilm"
        | "all-minilm-l12-v2"
        | "bge-small-en-v1.5"
        | "multi-qa-minilm-l6-cos-v1" => 384,
        "nomic-embed-text" | "nomic-embed-text-v1.5" | "bge-base-en-v1.5" | "all-mpnet-base-v2" => {
            768
        }
        "mxbai-embed-large" | "mxbai-embed-large-v1" | "bge-large-en-v1.5" | "bge-m3" => 1024,
        _ => return None,
    })
}

impl OpenAiEmbedder {
    /// For a model whose dimension is known by name (see [`known_dimension`]);
    /// use [`OpenAiEmbedder::with_options`] or [`OpenAiEmbedder::connect`]
    /// for others.
    pub fn new(
        base_url: impl Into<String>,
        model: impl Into<String>,
        api_key: Option<SecretString>,
    ) -> Result<Self, EmbedError> {
        Self::with_options(OpenAiOptions::new(base_url, model, api_key))
    }

    /// Needs `options.dimension` or a model known by name.
    pub fn with_options(options: OpenAiOptions) -> Result<Self, EmbedError> {
        let dimension = options
            .dimension
            .or_else(|| known_dimension(&options.model))
            .ok_or_else(|| {
                EmbedError::Config(format!(
                    "the vector length of embedding model {:?} is not known; set it in the settings",
                    options.model
                ))
            })?;
        Self::build(options, dimension)
    }

    /// Like [`OpenAiEmbedder::with_options`], but when the dimension is not
    /// known it embeds one short text to learn it (which also proves the URL
    /// and key work).
    pub async fn connect(options: OpenAiOptions) -> Result<Self, EmbedError> {
        if let Some(dimension) = options
            .dimension
            .or_else(|| known_dimension(&options.model))
        {
            return Self::build(options, dimension);
        }
        // Any length passes validation until the probe has set the real one.
        let mut embedder = Self::build(options, 0)?;
        let probe = embedder.request(&["dimension probe".to_string()]).await?;
        let dimension = probe.first().map_or(0, Vec::len);
        if dimension == 0 {
            return Err(EmbedError::BadResponse("an empty embedding".into()));
        }
        embedder.dimension = dimension;
        Ok(embedder)
    }

    fn build(options: OpenAiOptions, dimension: usize) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|e| EmbedError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint: format!("{}/embeddings", options.base_url.trim_end_matches('/')),
            model: options.model,
            api_key: options.api_key,
            dimension,
            batch_size: options.batch_size.clamp(1, MAX_INPUTS_PER_REQUEST),
            request_timeout: options.request_timeout,
        })
    }

    /// One request for at most `batch_size` texts.
    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::json!({
            "model": self.model,
            "input": texts,
            "encoding_format": "float",
        });
        let mut http = self
            .client
            .post(&self.endpoint)
            .timeout(self.request_timeout)
            .json(&body);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key.expose_secret());
        }
        let response = http.send().await.map_err(|e| self.send_error(&e))?;
        let status = response.status();
        let retry_after = retry_after_secs(response.headers());
        let text = response.text().await.map_err(|e| self.send_error(&e))?;
        if status.as_u16() == 429 {
            return Err(EmbedError::RateLimited {
                retry_after_secs: retry_after,
                message: error_message(&text),
            });
        }
        if !status.is_success() {
            return Err(EmbedError::Status {
                status: status.as_u16(),
                message: error_message(&text),
            });
        }
        parse_response(&text, texts.len(), self.dimension)
    }

    fn send_error(&self, e: &reqwest::Error) -> EmbedError {
        if e.is_timeout() {
            EmbedError::Timeout(self.request_timeout)
        } else if e.is_decode() || e.is_body() {
            EmbedError::BadResponse(without_url(e))
        } else {
            EmbedError::Unreachable(without_url(e))
        }
    }
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn embed_documents(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.request(batch).await?);
        }
        Ok(out)
    }

    async fn embed_query(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        self.request(&[text])
            .await?
            .pop()
            .ok_or_else(|| EmbedError::BadResponse("no embedding for the query".into()))
    }
}

#[derive(Debug, Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Checks an embeddings response against the request and puts the vectors in
/// input order (the spec orders them by `index`, not by position). Vectors
/// come back at unit length. `dimension` 0 accepts any (consistent) length.
fn parse_response(
    body: &str,
    inputs: usize,
    dimension: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let list: EmbeddingList = serde_json::from_str(body)
        .map_err(|e| EmbedError::BadResponse(format!("{e}: {}", clip(body))))?;
    if list.data.len() != inputs {
        return Err(EmbedError::BadResponse(format!(
            "{} embeddings for {inputs} inputs",
            list.data.len()
        )));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; inputs];
    let expected = if dimension > 0 {
        dimension
    } else {
        list.data.first().map_or(0, |d| d.embedding.len())
    };
    for item in list.data {
        if item.embedding.len() != expected || expected == 0 {
            return Err(EmbedError::BadResponse(format!(
                "an embedding of length {}, expected {expected}",
                item.embedding.len()
            )));
        }
        if item.embedding.iter().any(|x| !x.is_finite()) {
            return Err(EmbedError::BadResponse(
                "an embedding with NaN or infinity".into(),
            ));
        }
        let slot = out
            .get_mut(item.index)
            .ok_or_else(|| EmbedError::BadResponse(format!("index {} out of range", item.index)))?;
        if slot.is_some() {
            return Err(EmbedError::BadResponse(format!(
                "index {} twice",
                item.index
            )));
        }
        let mut v = item.embedding;
        normalize(&mut v);
        *slot = Some(v);
    }
    // Every slot is filled: as many items as inputs, each index in range, none twice.
    Ok(out.into_iter().flatten().collect())
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and ignored).
fn retry_after_secs(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.ceil() as u64)
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorField>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object { message: Option<String> },
    Text(String),
}

/// A human-readable message from an error body (OpenAI's
/// `{"error":{"message":…}}`, Ollama's `{"error":"…"}`, or plain text).
fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<ErrorEnvelope>(body).ok();
    let message = parsed.and_then(|e| match e.error {
        Some(ErrorField::Object { message }) => message,
        Some(ErrorField::Text(t)) => Some(t),
        None => e.message,
    });
    message.unwrap_or_else(|| clip(body.trim()))
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn item(index: usize, v: &[f32]) -> serde_json::Value {
        serde_json::json!({ "object": "embedding", "index": index, "embedding": v })
    }

    fn body(items: Vec<serde_json::Value>) -> String {
        serde_json::json!({ "object": "list", "data": items, "model": "m",
            "usage": { "prompt_tokens": 3, "total_tokens": 3 } })
        .to_string()
    }

    #[test]
    fn vectors_come_back_in_index_order_at_unit_length() {
        let b = body(vec![item(1, &[0.0, 2.0]), item(0, &[3.0, 4.0])]);
        let got = parse_response(&b, 2, 2).map_err(|e| e.to_string());
        assert_eq!(got, Ok(vec![vec![0.6, 0.8], vec![0.0, 1.0]]));
    }

    #[test]
    fn wrong_count_length_index_or_values_are_rejected() {
        let cases = [
            (body(vec![item(0, &[1.0, 0.0])]), "1 embeddings for 2 inputs"),
            (body(vec![item(0, &[1.0, 0.0]), item(1, &[1.0])]), "length 1, expected 2"),
            (body(vec![item(0, &[1.0, 0.0]), item(0, &[0.0, 1.0])]), "index 0 twice"),
            (body(vec![item(0, &[1.0, 0.0]), item(2, &[0.0, 1.0])]), "index 2 out of range"),
            (r#"{"data": [{"index": 0, "embedding": [1.0, null]}, {"index": 1, "embedding": [1.0, 0.0]}]}"#.into(), "invalid type"),
            ("<html>bad gateway</html>".into(), "bad gateway"),
        ];
        for (b, expected) in cases {
            match parse_response(&b, 2, 2) {
                Err(EmbedError::BadResponse(m)) => {
                    assert!(m.contains(expected), "{m} / {expected}")
                }
                other => panic!("{b}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_dimension_takes_the_first_vector_length() {
        let b = body(vec![item(0, &[1.0, 0.0, 0.0])]);
        assert_eq!(parse_response(&b, 1, 0).map(|v| v[0].len()).ok(), Some(3));
    }

    #[test]
    fn error_messages_from_common_servers() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(r#"{"message":"overloaded"}"#), "overloaded");
        assert_eq!(error_message(" upstream timeout \n"), "upstream timeout");
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after_secs(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "2.5".parse().unwrap());
        assert_eq!(retry_after_secs(&headers), Some(3));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_secs(&headers), None);
    }

    #[test]
    fn dimension_of_known_models_by_name() {
        assert_eq!(known_dimension("text-embedding-3-small"), Some(1536));
        assert_eq!(
            known_dimension("sentence-transformers/all-MiniLM-L6-v2"),
            Some(384)
        );
        assert_eq!(known_dimension("nomic-embed-text:latest"), Some(768));
        assert_eq!(known_dimension("my-own-model"), None);
        assert!(matches!(
            OpenAiEmbedder::new("http://127.0.0.1:1/v1", "my-own-model", None),
            Err(EmbedError::Config(_))
        ));
    }

    /// A one-connection-per-request HTTP server on loopback answering every
    /// request with `reply(request number, request body)`.
    async fn serve<F>(reply: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize, serde_json::Value) -> (u16, String, String) + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // Read the head, then Content-Length bytes of body.
                    let (head_end, length) = loop {
                        let read = socket.read(&mut chunk).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let read = socket.read(&mut chunk).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                    }
                    let request = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
                    let (status, headers, body) = reply(n, request);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
                        body.len()
                    );
                    socket.write_all(response.as_bytes()).await.ok();
                });
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn batches_of_at_most_100_in_input_order() {
        // Each text is its own number; the server answers [n, 1] in reverse order.
        let (url, requests) = serve(|_, request| {
            let inputs = request["input"].as_array().cloned().unwrap_or_default();
            assert!(
                inputs.len() <= 100,
                "{} inputs in one request",
                inputs.len()
            );
            let items = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| {
                    let n: f32 = t.as_str().unwrap_or("0").parse().unwrap_or(0.0);
                    item(i, &[n, 1.0])
                })
                .collect();
            (200, String::new(), body(items))
        })
        .await;
        let mut options = OpenAiOptions::new(url, "m", Some(SecretString::from("sk-test")));
        options.dimension = Some(2);
        let embedder = OpenAiEmbedder::with_options(options).unwrap();
        let texts: Vec<String> = (0..250).map(|i| i.to_string()).collect();
        let vectors = embedder.embed_documents(texts).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 3);
        assert_eq!(vectors.len(), 250);
        for (i, v) in vectors.iter().enumerate() {
            let mut expected = vec![i as f32, 1.0];
            normalize(&mut expected);
            assert_eq!(v, &expected, "vector {i}");
        }
    }

    #[tokio::test]
    async fn rate_limit_and_server_errors_are_reported() {
        let (url, _) = serve(|n, _| match n {
            0 => (
                429,
                "retry-after: 12\r\n".into(),
                r#"{"error":{"message":"Rate limit reached"}}"#.into(),
            ),
            _ => (503, String::new(), "upstream unavailable".into()),
        })
        .await;
        let embedder = OpenAiEmbedder::new(url, "text-embedding-3-small", None).unwrap();
        let first = embedder
            .embed_query("q".into())
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            first.as_deref(),
            Some("the embedding server is rate limiting requests (retry after 12 s): Rate limit reached")
        );
        let second = embedder.embed_query("q".into()).await.err();
        assert!(
            matches!(&second, Some(EmbedError::Status { status: 503, message }) if message == "upstream unavailable"),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn connect_learns_the_dimension_and_bad_hosts_are_unreachable() {
        let (url, _) =
            serve(|_, _| (200, String::new(), body(vec![item(0, &[1.0, 2.0, 2.0])]))).await;
        let embedder = OpenAiEmbedder::connect(OpenAiOptions::new(url, "custom", None))
            .await
            .unwrap();
        assert_eq!(embedder.dimension(), 3);

        // Nothing listens on port 1.
        let embedder = OpenAiEmbedder::new("http://127.0.0.1:1/v1", "all-minilm", None).unwrap();
        let error = embedder.embed_query("q".into()).await.err();
        assert!(
            matches!(error, Some(EmbedError::Unreachable(_))),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        // Accepts and never answers.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut options = OpenAiOptions::new(url, "all-minilm", None);
        options.request_timeout = Duration::from_millis(300);
        let embedder = OpenAiEmbedder::with_options(options).unwrap();
        let error = embedder.embed_query("q".into()).await.err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some("the embedding server did not answer within 0.3 s")
        );
    }
}
