//! The one error type server functions return, and its HTTP status.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// What a user (or API client) is told went wrong. Internal details stay in
/// the server log; the messages here are safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum AppError {
    /// The request is malformed or breaks a limit (empty message, too long, bad JSON).
    #[error("{0}")]
    BadRequest(String),
    /// An upload is over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// An upload is of a type we can't read.
    #[error("{0}")]
    Unsupported(String),
    /// Signing in is needed (or the credentials were wrong).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed (not an admin, or the account is disabled).
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or belongs to someone else.
    #[error("Not found")]
    NotFound,
    /// A name that must be unique is taken.
    #[error("{0}")]
    Conflict(String),
    /// Over a rate limit or budget; a request after `retry_after_ms` will be
    /// allowed again.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_ms: u64,
    },
    /// The model provider failed before anything could be streamed.
    #[error("{0}")]
    Upstream(String),
    /// The browser could not reach the server.
    #[error("Could not reach the server: {0}")]
    Network(String),
    /// Something broke on our side; the log has the details.
    #[error("Something went wrong on the server. Please try again.")]
    Internal,
}

impl AppError {
    /// A file over the upload size limit: the same words in the browser
    /// (before sending it), in the upload route and in the document service.
    pub fn file_too_large(name: &str, size: u64, limit: u64) -> Self {
        let (size, limit) = (human_size(size), human_size(limit));
        // Just over the limit, both round to the same figure.
        let size = if size == limit {
            format!("over {limit}")
        } else {
            size
        };
        Self::TooLarge(format!(
            "{name} is too large: {size} (the limit is {limit})."
        ))
    }

    /// The HTTP status for this error: the single mapping from errors to statuses.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound => 404,
            Self::Conflict(_) => 409,
            Self::RateLimited { .. } => 429,
            Self::TooLarge(_) => 413,
            Self::Unsupported(_) => 415,
            Self::Upstream(_) => 502,
            Self::Network(_) | Self::Internal => 500,
        }
    }

    /// The `Retry-After` header value (whole seconds, rounded up), if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms, .. } => Some(retry_after_ms.div_ceil(1000).max(1)),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(e) => Self::BadRequest(format!("Malformed request: {e}")),
            ServerFnErrorErr::MissingArg(e) => Self::BadRequest(format!("Missing argument: {e}")),
            ServerFnErrorErr::Request(e) => Self::Network(e),
            ServerFnErrorErr::UnsupportedRequestMethod(e) => Self::BadRequest(e),
            // On the server this can only be the request's arguments failing to
            // decode; in the browser it is a response we could not read.
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(e) => {
                Self::BadRequest(format!("Malformed request: {e}"))
            }
            #[cfg(not(feature = "ssr"))]
            ServerFnErrorErr::Deserialization(_) => Self::Internal,
            ServerFnErrorErr::Registration(_)
            | ServerFnErrorErr::ServerError(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Serialization(_)
            | ServerFnErrorErr::Response(_) => Self::Internal,
        }
    }
}

/// A file size for people: MiB with one decimal, else whole KiB.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", (bytes as f64 / 1024.0).ceil())
    }
}

#[cfg(test)]
mod size_tests {
    use super::human_size;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(50 * 1024 * 1024), "50.0 MiB");
        assert_eq!(human_size(1500), "2 KiB");
    }

    #[test]
    fn a_file_just_over_the_limit_says_so() {
        let limit = 50 * 1024 * 1024;
        let message = |size| super::AppError::file_too_large("a.pdf", size, limit).to_string();
        assert_eq!(
            message(limit + 1),
            "a.pdf is too large: over 50.0 MiB (the limit is 50.0 MiB)."
        );
        assert_eq!(
            message(60 * 1024 * 1024),
            "a.pdf is too large: 60.0 MiB (the limit is 50.0 MiB)."
        );
    }
}
