//! The layers every request passes through: security headers, same-origin
//! writes, the client's address, API-key identity, and error statuses.

use app::error::AppError;
use app::identity::{ApiKeyAccount, ClientIp};
use app::ports::AccountService;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;

/// Server functions report errors with status 500; this gives each
/// [`AppError`] its own status (400, 404, 502, …), in one place.
pub(super) async fn error_status(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if !response
        .headers()
        .contains_key(server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "error body too large").into_response();
    };
    let error = serde_json::from_slice::<AppError>(&bytes).ok();
    let mut response = Response::from_parts(parts, Body::from(bytes));
    if let Some(error) = error {
        super::error::error_status_and_headers(&error, &mut response);
    }
    response
}

/// Requests with `Authorization: Bearer <API key>` act as the key's account,
/// checked on every request (a revoked key or a disabled account stops
/// working at once); a bad or unreadable bearer token is refused here rather
/// than treated as a sessionless browser. Other schemes (a proxy's Basic
/// auth) are left alone.
pub(super) async fn api_key_identity(
    axum::extract::State(accounts): axum::extract::State<Arc<dyn AccountService>>,
    mut req: Request,
    next: Next,
) -> Response {
    // `/metrics` takes its own token, not an API key.
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .filter(|_| req.uri().path() != "/metrics")
        .and_then(|value| bearer_token(value.as_bytes()));
    if let Some(secret) = bearer {
        match accounts.api_key_account(&secret).await {
            Ok(holder) => {
                req.extensions_mut().insert(ApiKeyAccount(holder.account));
            }
            Err(refused) => return super::error::ApiError(refused).into_response(),
        }
    }
    next.run(req).await
}

/// The token of an `Authorization` header with the Bearer scheme (any case,
/// RFC 7235); an empty string for a Bearer header without a readable token
/// (so it is refused, not ignored); `None` for other schemes.
pub(super) fn bearer_token(value: &[u8]) -> Option<String> {
    let scheme_end = value
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(
        std::str::from_utf8(&value[scheme_end..])
            .map(|token| token.trim().to_owned())
            .unwrap_or_default(),
    )
}

/// Records the client's address for limits: the peer, or behind trusted
/// proxies the last entry they appended (see `limits::address`).
pub(super) async fn client_ip(
    header: Option<String>,
    trusted_proxies: usize,
    mut req: Request,
    next: Next,
) -> Response {
    // A proxy may add a header line of its own instead of appending to the
    // client's: the lines, in order, make one list.
    let forwarded = header.as_deref().map(|name| {
        req.headers()
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    });
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = forwarded.filter(|list| !list.is_empty());
    if let Some(ip) =
        crate::ops::limits::address::client_address(peer, forwarded.as_deref(), trusted_proxies)
    {
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

/// CSRF defence on top of SameSite=Lax cookies: a state-changing request
/// that names its origin must come from this site.
pub(super) async fn same_origin_writes(req: Request, next: Next) -> Response {
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest);
            if host.is_none() || origin_host != host {
                tracing::warn!(origin = ?origin, host = ?host, "cross-origin write refused");
                let error = AppError::Forbidden("Cross-site requests are not allowed.".into());
                return super::error::ApiError(error).into_response();
            }
        }
    }
    next.run(req).await
}

/// The usual headers on every response; pages set their own
/// Content-Security-Policy (with a nonce), everything else gets one that
/// allows nothing. HSTS when the app is served over HTTPS (secure cookies).
pub(super) async fn security_headers(hsts: bool, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        );
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_other_schemes_are_left_alone() {
        assert_eq!(bearer_token(b"Bearer rck_1").as_deref(), Some("rck_1"));
        assert_eq!(bearer_token(b"bearer\t rck_1 ").as_deref(), Some("rck_1"));
        assert_eq!(bearer_token(b"BEARER").as_deref(), Some(""));
        assert_eq!(bearer_token(b"Bearer \xff\xfe").as_deref(), Some(""));
        assert_eq!(bearer_token(b"Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_token(b"Bearerish x"), None);
    }
}
