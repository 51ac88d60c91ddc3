//! Conversations outside the app's pages: a Markdown download of one of the
//! user's conversations, and the read-only page behind a shared link. The
//! shared page is served outside the session layer (it sets no cookie and
//! reads none), and asks search engines not to index it.

use super::error::ApiError;
use app::error::AppError;
use app::identity::Identity;
use app::markdown::{escape_html as escape, render_markdown};
use app::ports::{Services, UserId};
use app::wire::{ConversationView, Role};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

/// Routes that need the caller's session.
pub fn export_router<S: Clone + Send + Sync + 'static>(services: Services) -> Router<S> {
    Router::new()
        .route("/api/conversations/{id}/export", get(export))
        .layer(Extension(services))
}

/// The shared pages: no session, no cookie.
pub fn shared_router<S: Clone + Send + Sync + 'static>(services: Services) -> Router<S> {
    Router::new()
        .route("/s/{id}", get(shared_page))
        .layer(Extension(services))
}

async fn export(
    who: Identity,
    Extension(services): Extension<Services>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = who
        .account(services.accounts.as_ref())
        .await?
        .map(|account| UserId(account.user_id))
        .ok_or(ApiError(AppError::NotFound))?;
    let (name, markdown) = services.history.export_markdown(&user, &id).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"conversation.md\""));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/markdown; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        markdown,
    )
        .into_response())
}

async fn shared_page(Extension(services): Extension<Services>, Path(id): Path<String>) -> Response {
    let (status, html) = match services.history.shared(&id).await {
        Ok(view) => (StatusCode::OK, page(&view)),
        Err(AppError::NotFound) => (
            StatusCode::NOT_FOUND,
            shell(
                "Not found",
                "<p>This link does not exist or was revoked.</p>".into(),
            ),
        ),
        Err(e) => (
            StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            shell("Unavailable", format!("<p>{}</p>", escape(&e.to_string()))),
        ),
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow, noarchive"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    response
}

/// The shared conversation: each message, answers as sanitized Markdown,
/// with the passages they cite.
fn page(view: &ConversationView) -> String {
    let mut body = format!(
        "<header class=\"shared-header\"><h1>{}</h1><p class=\"muted\">A shared conversation, read-only, as it was when shared.</p></header>",
        escape(&view.title)
    );
    for message in &view.messages {
        let (class, label) = match message.role {
            Role::User => ("user", "Question"),
            Role::Assistant => ("assistant", "Answer"),
        };
        body.push_str(&format!(
            "<article class=\"message {class}\" aria-label=\"{label}\"><div class=\"bubble\">"
        ));
        match message.role {
            Role::User => body.push_str(&format!(
                "<div class=\"user-text\">{}</div>",
                escape(&message.content)
            )),
            Role::Assistant => body.push_str(&format!(
                "<div class=\"markdown\">{}</div>",
                render_markdown(&message.content)
            )),
        }
        body.push_str("</div>");
        if !message.sources.is_empty() {
            body.push_str("<section class=\"shared-sources\" aria-label=\"Sources\">");
            for source in &message.sources {
                body.push_str(&format!(
                    "<details><summary><span class=\"source-n\">{}</span> {}</summary><p class=\"source-text\">{}</p></details>",
                    source.n,
                    escape(&source.location()),
                    escape(&source.text)
                ));
            }
            body.push_str("</section>");
        }
        body.push_str("</article>");
    }
    shell(&view.title, body)
}

fn shell(title: &str, body: String) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow, noarchive\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/pkg/ragchat.css\"></head>\
         <body class=\"shared-page\"><main class=\"column\">{body}</main></body></html>",
        escape(title)
    )
}
