#![recursion_limit = "256"]
//! The Leptos app: shell, routes, components, wire types and server functions.

pub mod api;
mod browser;
mod components;
mod dates;
pub mod error;
#[cfg(feature = "ssr")]
pub mod identity;
pub mod markdown;
pub mod ndjson;
#[cfg(feature = "ssr")]
pub mod ports;
pub mod wire;

use components::account::{LoginPage, SignupPage};
use components::admin::UsersPage;
use components::chat::ChatPage;
use components::chat_state::ChatState;
use components::dashboard::DashboardPage;
use components::documents::DocumentsPage;
use components::keys::ApiKeysPage;
use components::message::OpenSource;
use components::shares::SharedLinksPage;
use components::sidebar::Sidebar;
use components::uploads::UploadState;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app (server-rendered).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy: scripts only from this site or
/// inline with this response's nonce (Leptos puts it on its hydration and
/// streaming scripts), WebAssembly allowed, images only from this site (so
/// a model's answer can't make the browser fetch an attacker's URL), no
/// plugins, no framing, no foreign form targets. Inline styles stay allowed:
/// style attributes can't run code.
#[cfg(feature = "ssr")]
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&content_security_policy(&nonce)) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(ChatState::new());
    provide_context(UploadState::new());
    provide_context(OpenSource(RwSignal::new(None)));
    let sidebar_open = RwSignal::new(false);

    view! {
        <Stylesheet id="leptos" href="/pkg/ragchat.css" />
        <Title text="RAG Chat" />
        <Router>
            <div class="layout" class:sidebar-open=move || sidebar_open.get()>
                <Sidebar open=sidebar_open />
                <main class="main">
                    <button
                        class="menu-button"
                        aria-label="Open menu"
                        on:click=move |_| sidebar_open.update(|o| *o = !*o)
                    >
                        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                            <path d="M4 6h16M4 12h16M4 18h16"></path>
                        </svg>
                    </button>
                    <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                        <Route path=path!("/") view=ChatPage />
                        <Route path=path!("/c/:id") view=ChatPage />
                        <Route path=path!("/documents") view=DocumentsPage />
                        <Route path=path!("/login") view=LoginPage />
                        <Route path=path!("/signup") view=SignupPage />
                        <Route path=path!("/admin") view=DashboardPage />
                        <Route path=path!("/admin/users") view=UsersPage />
                        <Route path=path!("/keys") view=ApiKeysPage />
                        <Route path=path!("/shared") view=SharedLinksPage />
                    </Routes>
                </main>
            </div>
        </Router>
    }
}
