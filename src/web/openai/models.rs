//! `GET /v1/models`: the grounded model, each chat model without
//! retrieval, and the embedding model, in OpenAI's list format.

use super::request::{unix_now, KeyCaller, OpenAiApi};
use super::OpenAiError;
use axum::extract::Path;
use axum::{Extension, Json};
use serde_json::{json, Value};

/// Every model id the API answers to: the grounded one first.
pub(super) fn model_ids(api: &OpenAiApi) -> Vec<String> {
    let mut ids = vec![api.settings.grounded_model.clone()];
    for id in api
        .services
        .chat
        .api_models()
        .into_iter()
        .chain([api.embedder.model().to_owned()])
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn model(id: &str) -> Value {
    // When this server started: the same on every call.
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let created = *STARTED.get_or_init(unix_now);
    json!({ "id": id, "object": "model", "created": created, "owned_by": "ragchat" })
}

pub(super) async fn list(Extension(api): Extension<OpenAiApi>, _key: KeyCaller) -> Json<Value> {
    let data: Vec<Value> = model_ids(&api).iter().map(|id| model(id)).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub(super) async fn get(
    Extension(api): Extension<OpenAiApi>,
    _key: KeyCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    if model_ids(&api).contains(&id) {
        Ok(Json(model(&id)))
    } else {
        Err(OpenAiError::unknown_model(&id))
    }
}
