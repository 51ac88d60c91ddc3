//! The `/v1` routes, and OpenAI's 404 for any other path under `/v1`.

use super::request::OpenAiApi;
use super::{chat, embeddings, feedback, models, OpenAiError};
use axum::routing::{any, get, post};
use axum::{Extension, Router};

pub fn openai_router<S: Clone + Send + Sync + 'static>(api: OpenAiApi) -> Router<S> {
    Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/chat/completions/{id}/feedback", post(feedback::rate))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1", any(unknown_route))
        .route("/v1/{*rest}", any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(api))
}

async fn unknown_route(uri: axum::http::Uri) -> OpenAiError {
    OpenAiError::unknown_route(uri.path())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> OpenAiError {
    OpenAiError::method_not_allowed(method.as_str(), uri.path())
}
