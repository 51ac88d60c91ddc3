//! What every `/v1` request goes through: the API key (read on every
//! request), the body (within its limit, as JSON), and admission under the
//! caller's limits.

use super::OpenAiError;
use crate::config::ApiSettings;
use crate::embed::{Embedder, TokenSpans};
use app::identity::ClientIp;
use app::ports::{Admission, Caller, KeyHolder, Services, UserId};
use axum::extract::FromRequestParts;
use std::sync::Arc;

/// What the `/v1` routes need.
#[derive(Clone)]
pub struct OpenAiApi {
    pub services: Services,
    pub embedder: Arc<dyn Embedder>,
    /// Counts the embedding model's tokens (for `usage`).
    pub tokens: Arc<dyn TokenSpans>,
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    pub settings: ApiSettings,
}

/// The account behind the request's API key, checked on every request (a
/// revoked key is 401 at once, a disabled account's 403).
pub struct KeyCaller {
    pub caller: Caller,
    pub holder: KeyHolder,
    /// The key as sent, to look it up again (never logged).
    secret: String,
}

impl KeyCaller {
    pub fn user(&self) -> UserId {
        UserId(self.holder.account.user_id.clone())
    }

    /// Looks the key up again: why a request that was let in may no
    /// longer go on (revoked: 401; the account disabled: 403).
    pub async fn recheck(&self, api: &OpenAiApi) -> Result<(), OpenAiError> {
        api.services.accounts.api_key_account(&self.secret).await?;
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KeyCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let api = api_of(parts)?;
        let secret = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| super::super::middleware::bearer_token(value.as_bytes()))
            .filter(|secret| !secret.is_empty())
            .ok_or_else(OpenAiError::missing_key)?;
        let holder = api.services.accounts.api_key_account(&secret).await?;
        let caller = Caller {
            user: Some(UserId(holder.account.user_id.clone())),
            role: holder.account.role,
            ip: parts.extensions.get::<ClientIp>().map(|ip| ip.0),
            via_api_key: true,
        };
        Ok(Self {
            caller,
            holder,
            secret,
        })
    }
}

fn api_of(parts: &axum::http::request::Parts) -> Result<OpenAiApi, OpenAiError> {
    parts
        .extensions
        .get::<OpenAiApi>()
        .cloned()
        .ok_or_else(|| app::error::AppError::Internal.into())
}

/// Reads a JSON body of at most `limit` bytes; anything else is a 400 (or
/// 413) in OpenAI's shape, not axum's plain-text rejection.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, OpenAiError> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        OpenAiError::from(app::error::AppError::TooLarge(format!(
            "The request body is over the limit of {limit} bytes."
        )))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        OpenAiError::invalid(
            "body",
            format!("The request body is not valid JSON for this endpoint: {e}"),
        )
    })
}

/// Admits one request under the caller's rate limit and token budget. A
/// spent budget is a 429 until it renews: a script that named a model gets
/// that model or an error, never a cheaper one in its place.
pub(super) async fn admit(api: &OpenAiApi, caller: &Caller) -> Result<(), OpenAiError> {
    match api.services.limits.admit_chat(caller).await? {
        Admission::Full => Ok(()),
        Admission::OverBudget { .. } => Err(app::error::AppError::RateLimited {
            message: "You have used today's token budget. It renews at 00:00 UTC.".into(),
            retry_after_ms: crate::ops::limits::until_midnight_ms(),
        }
        .into()),
    }
}

/// Seconds since the epoch, for `created`.
pub(super) fn unix_now() -> u64 {
    u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0)
}
