//! The router: pages and server functions (Leptos), the documents and
//! operator routes, and the layers every request passes through.

use super::middleware::{
    api_key_identity, client_ip, error_status, same_origin_writes, security_headers,
};
use crate::store::SessionBackend;
use app::ports::Services;
use app::{shell, App};
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_sessions::SessionManagerLayer;

/// Every route of the app, behind its layers (the last added runs first:
/// security headers, client address, same-origin writes, session, API key,
/// error status; `/v1` has only the first two).
pub(crate) fn router(
    options: LeptosOptions,
    services: Services,
    documents: Router<LeptosOptions>,
    shared_pages: Router<LeptosOptions>,
    openai: Router<LeptosOptions>,
    sessions: SessionManagerLayer<SessionBackend>,
    edge: &crate::config::ServerSettings,
) -> Router {
    let client_ip_header = edge.client_ip_header.clone();
    let trusted_proxies = edge.trusted_proxies;
    let hsts = edge.secure_cookies;
    let routes = generate_route_list(App);
    let accounts = services.accounts.clone();
    // `leptos_routes_with_context` also mounts every server function (under
    // /api), with the same context.
    // Every render gets a fresh nonce for its inline scripts (see the shell's
    // Content-Security-Policy).
    let context = move || {
        provide_context(services.clone());
        leptos::nonce::provide_nonce();
    };
    Router::new()
        .merge(documents)
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context, shell,
        ))
        .layer(middleware::from_fn(error_status))
        .layer(middleware::from_fn_with_state(accounts, api_key_identity))
        .layer(sessions)
        // Shared pages carry no session: they are outside its layer.
        .merge(shared_pages)
        .layer(middleware::from_fn(same_origin_writes))
        // The OpenAI-compatible API takes only API keys (checked by its own
        // routes, errors in its own shape), never cookies: outside the
        // session, key and same-origin layers, since a cross-site request
        // can't borrow anyone's credentials there.
        .merge(openai)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            client_ip(client_ip_header.clone(), trusted_proxies, req, next)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            security_headers(hsts, req, next)
        }))
        .with_state(options)
}
