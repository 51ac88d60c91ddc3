//! `POST /v1/chat/completions/{id}/feedback`: a vote on an API answer by
//! the id its completion carried (so scripted evaluations feed the same
//! dashboard as thumbs in the browser). Only the key's account's answers.

use super::request::{read_json, KeyCaller, OpenAiApi};
use super::wire::FeedbackRequest;
use super::OpenAiError;
use app::wire::Rating;
use axum::extract::Path;
use axum::{Extension, Json};
use serde_json::{json, Value};

pub(super) async fn rate(
    Extension(api): Extension<OpenAiApi>,
    key: KeyCaller,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Value>, OpenAiError> {
    let request: FeedbackRequest = read_json(body, 64 * 1024).await?;
    let rating = match request.rating.as_deref() {
        Some("up") => Some(Rating::Up),
        Some("down") => Some(Rating::Down),
        None => None,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "rating",
                "`rating` is \"up\", \"down\", or null to withdraw the vote.",
            ))
        }
    };
    let message_id = id.strip_prefix("chatcmpl-").unwrap_or(&id);
    api.services
        .feedback
        .rate(&key.user(), message_id, rating, request.comment)
        .await?;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion.feedback",
        "rating": request.rating,
    })))
}
