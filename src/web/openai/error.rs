//! Errors in OpenAI's shape (`{"error": {"message", "type", "param",
//! "code"}}`) with the statuses its SDKs turn into their exception classes:
//! the one place an [`AppError`] becomes an API response under `/v1`.

use app::error::AppError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// OpenAI's SDKs wait out a `Retry-After` of up to two minutes; a longer
/// refusal is a quota, not a rate.
const QUOTA_AFTER_MS: u64 = 120_000;

/// An error as an OpenAI client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `not_found_error`, `requests` (a rate limit),
    /// `server_error`.
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    pub retry_after_ms: Option<u64>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code: None,
            param: None,
            retry_after_ms: None,
        }
    }

    /// A request the API can't take, naming the field at fault.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// A request that asks for something this API doesn't do (several
    /// choices, tools, images): refused, never silently ignored.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self {
            code: Some("unsupported_parameter"),
            ..Self::invalid(param, message)
        }
    }

    pub fn unknown_model(model: &str) -> Self {
        Self {
            code: Some("model_not_found"),
            param: Some("model".to_owned()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{model}` does not exist or you do not have access to it. GET /v1/models lists the models you can use."),
            )
        }
    }

    pub fn unknown_route(path: &str) -> Self {
        Self {
            code: Some("unknown_url"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("Unknown route {path}: this API serves /v1/models, /v1/chat/completions, /v1/chat/completions/{{id}}/feedback and /v1/embeddings."),
            )
        }
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self {
            code: Some("method_not_allowed"),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                format!("{path} doesn't take {method}."),
            )
        }
    }

    pub fn missing_key() -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You didn't provide an API key. Send it as `Authorization: Bearer rck_…` (make one on the app's API keys page).",
            )
        }
    }

    /// The answer failed after the model was asked (every model failed,
    /// or the answer was stopped).
    pub fn failed_answer(message: impl Into<String>) -> Self {
        Self {
            code: Some("upstream_error"),
            ..Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
        }
    }

    /// The same error, with OpenAI's `code` for it.
    pub fn with_code(self, code: &'static str) -> Self {
        Self {
            code: Some(code),
            ..self
        }
    }

    /// The same error, blaming the request field `param`.
    pub fn with_param(self, param: &str) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..self
        }
    }

    /// The body as OpenAI sends it.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl From<AppError> for OpenAiError {
    fn from(e: AppError) -> Self {
        let status =
            StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = e.to_string();
        match e {
            AppError::BadRequest(_) | AppError::Unsupported(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            }
            AppError::TooLarge(_) => Self {
                code: Some("request_too_large"),
                ..Self::new(status, "invalid_request_error", message)
            },
            AppError::Unauthorized(_) => Self {
                code: Some("invalid_api_key"),
                ..Self::new(status, "invalid_request_error", message)
            },
            AppError::Forbidden(_) => Self {
                code: Some("account_disabled"),
                ..Self::new(status, "permission_error", message)
            },
            AppError::NotFound => Self {
                code: Some("not_found"),
                ..Self::new(status, "invalid_request_error", "Not found.")
            },
            AppError::Conflict(_) => Self::new(status, "invalid_request_error", message),
            // A wait longer than SDKs retry after is a spent quota (the
            // daily token budget), which OpenAI reports as such.
            AppError::RateLimited { retry_after_ms, .. } if retry_after_ms > QUOTA_AFTER_MS => {
                Self {
                    code: Some("insufficient_quota"),
                    retry_after_ms: Some(retry_after_ms),
                    ..Self::new(status, "insufficient_quota", message)
                }
            }
            AppError::RateLimited { retry_after_ms, .. } => Self {
                code: Some("rate_limit_exceeded"),
                retry_after_ms: Some(retry_after_ms),
                ..Self::new(status, "requests", message)
            },
            AppError::Upstream(_) => Self::failed_answer(message),
            AppError::Network(_) | AppError::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                AppError::Internal.to_string(),
            ),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(ms) = self.retry_after_ms {
            // Whole seconds (rounded up) for every client, and the exact
            // figure for OpenAI's SDKs, which prefer it.
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(ms.div_ceil(1000).max(1)),
            );
            headers.insert("retry-after-ms", HeaderValue::from(ms.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::OpenAiError;
    use app::error::AppError;

    #[test]
    fn app_errors_get_the_status_and_type_openai_clients_expect() {
        let cases = [
            (
                AppError::BadRequest("x".into()),
                400,
                "invalid_request_error",
            ),
            (
                AppError::Unauthorized("x".into()),
                401,
                "invalid_request_error",
            ),
            (AppError::Forbidden("x".into()), 403, "permission_error"),
            (AppError::NotFound, 404, "invalid_request_error"),
            (
                AppError::RateLimited {
                    message: "x".into(),
                    retry_after_ms: 1500,
                },
                429,
                "requests",
            ),
            (AppError::Upstream("x".into()), 502, "server_error"),
            (AppError::Internal, 500, "server_error"),
        ];
        let quota = AppError::RateLimited {
            message: "x".into(),
            retry_after_ms: 3_600_000,
        };
        assert_eq!(OpenAiError::from(quota).kind, "insufficient_quota");
        for (error, status, kind) in cases {
            let e = OpenAiError::from(error);
            assert_eq!((e.status.as_u16(), e.kind), (status, kind));
            assert!(e.body()["error"]["message"].is_string());
        }
        let limited = OpenAiError::from(AppError::RateLimited {
            message: "slow down".into(),
            retry_after_ms: 1500,
        });
        let response = axum::response::IntoResponse::into_response(limited);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(response.headers()["retry-after-ms"], "1500");
    }
}
