//! Signing up, signing in and out, and the account corner of the sidebar.

use crate::api::{get_session, log_out, LogIn, SignUp};
use crate::browser;
use crate::error::AppError;
use crate::wire::{AccountView, UserRole};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::components::A;

/// The username and password inputs of both forms.
fn credential_fields(new_password: bool) -> impl IntoView {
    view! {
        <label>
            "Username"
            <input type="text" name="username" autocomplete="username" required minlength="3" maxlength="32" />
        </label>
        <label>
            "Password"
            <input
                type="password"
                name="password"
                required
                minlength={if new_password { "8" } else { "1" }}
                autocomplete={if new_password { "new-password" } else { "current-password" }}
            />
        </label>
        {new_password.then(|| view! { <p class="muted small">"At least 8 characters."</p> })}
    }
}

type Outcome = MappedSignal<Option<Result<AccountView, AppError>>>;

/// After signing in (or up), loads the chat as the new session.
fn load_chat_on_success(outcome: Outcome) {
    Effect::new(move |_| {
        if let Some(Ok(_)) = outcome.get() {
            browser::load_page("/");
        }
    });
}

fn error_of(outcome: Outcome) -> impl Fn() -> Option<String> + Copy {
    move || match outcome.get() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<LogIn>::new();
    let outcome = action.value();
    load_chat_on_success(outcome);
    view! {
        <Title text="Sign in · RAG Chat" />
        <section class="auth-page">
            <div class="column">
                <h1>"Sign in"</h1>
                <ActionForm action=action attr:class="auth-form">
                    {credential_fields(false)}
                    <p class="form-error" role="alert">{error_of(outcome)}</p>
                    <button type="submit" class="primary" disabled=move || action.pending().get()>
                        "Sign in"
                    </button>
                </ActionForm>
                <p class="muted">"No account yet? " <A href="/signup">"Create one"</A></p>
            </div>
        </section>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let outcome = action.value();
    load_chat_on_success(outcome);
    let session = OnceResource::new(get_session());
    // Only before the first admin of a public deployment exists.
    let setup_code_field = move || {
        Suspend::new(async move {
            session.await.ok().filter(|s| s.setup_code_pending).map(|_| {
                view! {
                    <label>
                        "Setup code"
                        <input type="text" name="setup_code" autocomplete="off" spellcheck="false" />
                    </label>
                    <p class="muted small">
                        "No administrator exists yet. The one-time code the server printed when it "
                        "started makes this account the administrator; without it, this is an "
                        "ordinary account."
                    </p>
                }
            })
        })
    };
    view! {
        <Title text="Create an account · RAG Chat" />
        <section class="auth-page">
            <div class="column">
                <h1>"Create an account"</h1>
                <ActionForm action=action attr:class="auth-form">
                    {credential_fields(true)}
                    <Transition fallback=|| ()>{setup_code_field}</Transition>
                    <p class="form-error" role="alert">{error_of(outcome)}</p>
                    <button type="submit" class="primary" disabled=move || action.pending().get()>
                        "Create account"
                    </button>
                </ActionForm>
                <p class="muted">
                    "Chats and documents from this browser move into the new account. "
                    "Already have one? " <A href="/login">"Sign in"</A>
                </p>
            </div>
        </section>
    }
}

/// Who is signed in, with sign-in/out and (for admins) the admin link.
#[component]
pub fn AccountMenu(open: RwSignal<bool>) -> impl IntoView {
    let session = OnceResource::new(get_session());
    let sign_out = move |_| {
        spawn_local(async move {
            if log_out().await.is_ok() {
                browser::load_page("/");
            }
        });
    };
    let close = move |_| open.set(false);
    view! {
        <div class="account">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match session.await {
                        Ok(info) => {
                            let guests_allowed = info.guests_allowed;
                            match info.account {
                            Some(AccountView { username: Some(name), role, .. }) => {
                                view! {
                                    {(role == UserRole::Admin)
                                        .then(|| {
                                            view! {
                                                <A href="/admin" exact=true attr:class="nav-link" on:click=close>
                                                    "Dashboard"
                                                </A>
                                                <A href="/admin/users" attr:class="nav-link" on:click=close>
                                                    "Users"
                                                </A>
                                            }
                                        })}
                                    <A href="/keys" attr:class="nav-link" on:click=close>
                                        "API keys"
                                    </A>
                                    <div class="account-row">
                                        <span class="account-name" title="Signed in">
                                            {name}
                                            {(role == UserRole::Admin)
                                                .then(|| view! { <span class="badge">"admin"</span> })}
                                        </span>
                                        <button class="link-button" on:click=sign_out>"Sign out"</button>
                                    </div>
                                }
                                    .into_any()
                            }
                            _ => {
                                view! {
                                    <div class="account-row">
                                        <span class="muted small">
                                            {if guests_allowed { "Guest" } else { "Not signed in" }}
                                        </span>
                                        <span>
                                            <A href="/login" attr:class="link-button" on:click=close>"Sign in"</A>
                                            " · "
                                            <A href="/signup" attr:class="link-button" on:click=close>"Sign up"</A>
                                        </span>
                                    </div>
                                }
                                    .into_any()
                            }
                        }
                        }
                        Err(e) => view! { <p class="error small">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}
