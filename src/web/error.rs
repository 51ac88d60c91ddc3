//! The one place an [`AppError`] becomes an HTTP response.

use app::error::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An [`AppError`] as an HTTP response: its status and its JSON form.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Json(&self.0).into_response();
        error_status_and_headers(&self.0, &mut response);
        response
    }
}

/// The one place an [`AppError`] becomes an HTTP status (and, for rate
/// limits, a `Retry-After` header in whole seconds, rounded up).
pub fn error_status_and_headers(error: &AppError, response: &mut Response) {
    *response.status_mut() =
        StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
}
