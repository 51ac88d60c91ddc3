//! Any OpenAI-compatible `/v1/chat/completions` endpoint with `stream: true`
//! (OpenAI, Cloudflare Workers AI, vLLM, Ollama, llama.cpp's server).

use super::{ChatModel, CompletionRequest, LlmError, LlmEvent, LlmStream};
use app::wire::FinishReason;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct OpenAiModel {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    display_name: String,
    api_key: Option<SecretString>,
    stall_timeout: Duration,
}

impl OpenAiModel {
    pub fn new(
        base_url: &str,
        model: String,
        api_key: Option<SecretString>,
        connect_timeout: Duration,
        stall_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| LlmError::Unreachable(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            display_name: model.clone(),
            model,
            api_key,
            stall_timeout,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChunkUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorField>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object(ErrorBody),
    Text(String),
}

/// Pulls a human-readable message out of an error body (OpenAI's
/// `{"error":{"message":…}}`, Ollama's `{"error":"…"}`, or plain text).
fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<ErrorEnvelope>(body).ok();
    let message = parsed.and_then(|e| match e.error {
        Some(ErrorField::Object(b)) => b.message,
        Some(ErrorField::Text(t)) => Some(t),
        None => e.message,
    });
    message.unwrap_or_else(|| body.trim().chars().take(300).collect())
}

/// Turns SSE `data:` payloads into events. Pure, so it can be tested on split
/// and odd inputs without a server.
#[derive(Debug, Default)]
pub struct ChunkParser {
    finish: Option<FinishReason>,
    pub done: bool,
}

impl ChunkParser {
    /// Parses one SSE data payload; returns the events it carries.
    pub fn parse(&mut self, data: &str) -> Result<Vec<LlmEvent>, LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(vec![LlmEvent::Finished(
                self.finish.unwrap_or(FinishReason::Stop),
            )]);
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| LlmError::Protocol(format!("{e}: {}", clip(data))))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Status {
                status: 500,
                message: error
                    .message
                    .unwrap_or_else(|| "error event in stream".into()),
                retry_after: None,
            });
        }
        let mut events = Vec::new();
        for choice in chunk.choices {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                if !text.is_empty() {
                    events.push(LlmEvent::Token(text));
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(if reason == "length" {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                });
            }
        }
        if let Some(usage) = chunk.usage {
            events.push(LlmEvent::Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            });
        }
        Ok(events)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

#[async_trait::async_trait]
impl ChatModel for OpenAiModel {
    fn name(&self) -> &str {
        &self.display_name
    }

    fn provider(&self) -> &'static str {
        "openai"
    }

    async fn stream(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<LlmStream, LlmError> {
        let messages: Vec<_> = request
            .messages
            .iter()
            .map(|m| serde_json::json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        if let Some(top_p) = request.top_p {
            body["top_p"] = top_p.into();
        }
        if !request.stop.is_empty() {
            body["stop"] = request.stop.clone().into();
        }
        let mut http = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key.expose_secret());
        }
        let response = tokio::select! {
            _ = cancel.cancelled() => return Ok(Box::pin(futures::stream::iter([Ok(LlmEvent::Finished(FinishReason::Cancelled))]))),
            r = tokio::time::timeout(self.stall_timeout, http.send()) => r,
        };
        let response = match response {
            Err(_) => return Err(LlmError::Stalled(self.stall_timeout.as_secs())),
            Ok(Err(e)) => return Err(LlmError::Unreachable(without_url(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            // Seconds only; an HTTP date falls back to our own backoff.
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = tokio::time::timeout(self.stall_timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(LlmError::Status {
                status: status.as_u16(),
                message: error_message(&body),
                retry_after,
            });
        }
        let stall = self.stall_timeout;
        let events = response.bytes_stream().eventsource();
        let state = (Box::pin(events), ChunkParser::default(), cancel, false);
        let stream = futures::stream::unfold(state, move |(mut events, mut parser, cancel, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => {
                        // Dropping `events` closes the connection, which stops the upstream.
                        return Some((vec![Ok(LlmEvent::Finished(FinishReason::Cancelled))], (events, parser, cancel, true)));
                    }
                    next = tokio::time::timeout(stall, events.next()) => next,
                };
                let item = match next {
                    Err(_) => return Some((vec![Err(LlmError::Stalled(stall.as_secs()))], (events, parser, cancel, true))),
                    Ok(None) => return Some((vec![Err(LlmError::Truncated)], (events, parser, cancel, true))),
                    Ok(Some(Err(e))) => {
                        let error = LlmError::Unreachable(format!("stream broke: {e}"));
                        return Some((vec![Err(error)], (events, parser, cancel, true)));
                    }
                    Ok(Some(Ok(event))) => event,
                };
                match parser.parse(&item.data) {
                    Ok(batch) if batch.is_empty() => continue,
                    Ok(batch) => {
                        let done = parser.done;
                        return Some((batch.into_iter().map(Ok).collect(), (events, parser, cancel, done)));
                    }
                    Err(e) => return Some((vec![Err(e)], (events, parser, cancel, true))),
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(Box::pin(stream))
    }
}

/// reqwest errors name the URL; keep only the cause (URLs can carry keys).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), "<endpoint>");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_usage_and_done() {
        let mut p = ChunkParser::default();
        let e = p
            .parse(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#)
            .unwrap();
        assert!(e.is_empty());
        let e = p
            .parse(r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#)
            .unwrap();
        assert_eq!(e, vec![LlmEvent::Token("Hel".into())]);
        let e = p
            .parse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#)
            .unwrap();
        assert!(e.is_empty());
        let e = p.parse(r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#).unwrap();
        assert_eq!(
            e,
            vec![LlmEvent::Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            }]
        );
        assert!(!p.done);
        let e = p.parse("[DONE]").unwrap();
        assert_eq!(e, vec![LlmEvent::Finished(FinishReason::Length)]);
        assert!(p.done);
    }

    #[test]
    fn error_inside_stream_and_garbage() {
        let mut p = ChunkParser::default();
        let err = p
            .parse(r#"{"error":{"message":"model overloaded"}}"#)
            .unwrap_err();
        assert!(
            matches!(err, LlmError::Status { ref message, .. } if message == "model overloaded")
        );
        assert!(matches!(p.parse("{not json"), Err(LlmError::Protocol(_))));
    }

    #[test]
    fn error_bodies_of_different_servers() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Rate limit","type":"x"}}"#),
            "Rate limit"
        );
        assert_eq!(
            error_message(r#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(error_message("upstream down\n"), "upstream down");
    }

    #[tokio::test]
    async fn sse_frames_split_anywhere_parse_the_same() {
        let body = ": keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Grüß \"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"dich 👋\"}}]}\r\n\r\n\
                    data: [DONE]\n\n";
        let bytes = body.as_bytes();
        for split in 1..bytes.len() {
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok(bytes::Bytes::copy_from_slice(&bytes[..split])),
                Ok(bytes::Bytes::copy_from_slice(&bytes[split..])),
            ];
            let mut events = futures::stream::iter(chunks).eventsource();
            let mut parser = ChunkParser::default();
            let mut text = String::new();
            while let Some(event) = events.next().await {
                for e in parser.parse(&event.unwrap().data).unwrap() {
                    if let LlmEvent::Token(t) = e {
                        text.push_str(&t);
                    }
                }
            }
            assert_eq!(text, "Grüß dich 👋", "split at {split}");
            assert!(parser.done, "split at {split}");
        }
    }
}
