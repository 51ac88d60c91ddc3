//! `POST /v1/embeddings`: the app's embedding model (the one retrieval
//! uses) in OpenAI's format: a string or a list of them, floats or base64
//! (little-endian f32, as OpenAI encodes them), embedded in one batch.

use super::request::{admit, read_json, KeyCaller, OpenAiApi};
use super::wire::{EmbeddingInput, EmbeddingRequest};
use super::OpenAiError;
use axum::{Extension, Json};
use base64::Engine;
use serde_json::{json, Value};

pub(super) async fn create(
    Extension(api): Extension<OpenAiApi>,
    key: KeyCaller,
    body: axum::body::Body,
) -> Result<Json<Value>, OpenAiError> {
    let request: EmbeddingRequest = read_json(body, api.settings.max_body_bytes).await?;
    let model = api.embedder.model().to_owned();
    if request.model != model {
        return Err(OpenAiError::unknown_model(&request.model));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "encoding_format",
                "`encoding_format` is \"float\" or \"base64\".",
            ))
        }
    };
    if request
        .dimensions
        .is_some_and(|d| d != api.embedder.dimension())
    {
        return Err(OpenAiError::unsupported(
            "dimensions",
            format!(
                "This model's embeddings have {} dimensions and can't be shortened.",
                api.embedder.dimension()
            ),
        ));
    }
    let texts = inputs(request.input, &api)?;
    admit(&api, &key.caller).await?;
    let inputs = texts.len();
    // Up to a megabyte of text: tokenized off the async threads (and
    // handed back, not copied).
    let counter = api.tokens.clone();
    let (texts, tokens): (Vec<String>, usize) = tokio::task::spawn_blocking(move || {
        let tokens = texts.iter().map(|t| counter.token_spans(t).len()).sum();
        (texts, tokens)
    })
    .await
    .map_err(|_| OpenAiError::from(app::error::AppError::Internal))?;
    let vectors = api.embedder.embed_documents(texts).await.map_err(|e| {
        tracing::warn!(error = %e, "embedding for the API failed");
        OpenAiError::failed_answer("The embedding model failed; try again.")
    })?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                json!(encode(vector))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    api.metrics.embedded(&key.holder.key_name, inputs, tokens);
    let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

/// The texts to embed, within the API's limits.
fn inputs(input: EmbeddingInput, api: &OpenAiApi) -> Result<Vec<String>, OpenAiError> {
    let texts = match input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Tokens(other) => {
            let got = if other.is_array() {
                "token ids"
            } else {
                "neither"
            };
            return Err(OpenAiError::unsupported(
                "input",
                format!("`input` is a string or a list of strings (got {got}; token ids are not supported)."),
            ));
        }
    };
    let (max_inputs, max_chars) = (
        api.settings.max_embedding_inputs,
        api.settings.max_embedding_input_chars,
    );
    if texts.is_empty() || texts.len() > max_inputs {
        return Err(OpenAiError::invalid(
            "input",
            format!("`input` holds 1 to {max_inputs} strings."),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(OpenAiError::invalid(
            "input",
            format!("`input[{i}]` is empty."),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.chars().count() > max_chars) {
        return Err(OpenAiError::invalid(
            "input",
            format!("`input[{i}]` is over {max_chars} characters."),
        ));
    }
    Ok(texts)
}

/// A vector as OpenAI's base64 encoding: its f32s, little-endian.
fn encode(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::encode;
    use base64::Engine;

    #[test]
    fn base64_holds_the_little_endian_floats() {
        let vector = [1.0f32, -0.5, 0.25];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encode(&vector))
            .unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(back, vector);
    }
}
