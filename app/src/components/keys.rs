//! The account's API keys: make one (its secret is shown once), see when
//! each was last used, revoke it.

use crate::api::{create_api_key, list_api_keys, revoke_api_key};
use crate::browser;
use crate::components::documents::format_date;
use crate::wire::{ApiKeyView, NewApiKey};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let keys = Resource::new(move || version.get(), |_| list_api_keys());
    let name = RwSignal::new(String::new());
    let made = RwSignal::new(None::<NewApiKey>);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let key_name = name.get_untracked();
        pending.set(true);
        spawn_local(async move {
            match create_api_key(key_name).await {
                Ok(key) => {
                    made.set(Some(key));
                    name.set(String::new());
                    error.set(None);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            pending.set(false);
            version.update(|v| *v += 1);
        });
    };
    let revoke = move |id: String| {
        spawn_local(async move {
            match revoke_api_key(id.clone()).await {
                Ok(()) => {
                    error.set(None);
                    if made.get_untracked().is_some_and(|m| m.key.id == id) {
                        made.set(None);
                    }
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            version.update(|v| *v += 1);
        });
    };

    view! {
        <Title text="API keys · RAG Chat" />
        <section class="admin-page">
            <div class="column">
                <header class="page-head">
                    <h1>"API keys"</h1>
                </header>
                <p class="muted">
                    "Scripts and other programs can chat and upload documents as you with a key, sent as "
                    <code>"Authorization: Bearer <key>"</code>
                    ". A key stops working as soon as it is revoked or your account is disabled."
                </p>
                <form class="key-form" on:submit=create>
                    <label for="key-name">"Name"</label>
                    <input
                        id="key-name"
                        type="text"
                        required
                        maxlength="64"
                        placeholder="e.g. nightly report"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                    <button type="submit" class="primary" disabled=move || pending.get()>
                        "Create key"
                    </button>
                </form>
                <p class="form-error" role="alert">{move || error.get()}</p>
                {move || made.get().map(new_key_box)}
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match keys.await {
                            Ok(list) if list.is_empty() => {
                                view! { <p class="muted">"No keys yet."</p> }.into_any()
                            }
                            Ok(list) => key_table(list, revoke).into_any(),
                            Err(e) => view! { <p class="notice" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </section>
    }
}

/// The secret of a key just made, with a copy button and an example call.
fn new_key_box(made: NewApiKey) -> impl IntoView {
    let secret = made.secret.clone();
    let example = format!(
        "curl -N -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"text\":\"Hello\"}}' {}/api/chat",
        made.secret,
        browser::origin()
    );
    view! {
        <div class="new-key" role="status">
            <p>
                <strong>{format!("Key “{}” created.", made.key.name)}</strong>
                " Copy it now: it won't be shown again."
            </p>
            <div class="secret-row">
                <code class="secret">{made.secret}</code>
                <button class="retry" on:click=move |_| browser::copy_text(&secret)>"Copy"</button>
            </div>
            <p class="muted small">"Try it:"</p>
            <pre class="example"><code>{example}</code></pre>
        </div>
    }
}

fn key_table(keys: Vec<ApiKeyView>, revoke: impl Fn(String) + Copy + 'static) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="data-table keys">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Key"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {keys
                        .into_iter()
                        .map(|key| {
                            let id = key.id.clone();
                            let label = format!("Revoke {}", key.name);
                            let name = key.name.clone();
                            view! {
                                <tr class="api-key" data-name=name>
                                    <td>{key.name}</td>
                                    <td><code>{format!("{}…", key.prefix)}</code></td>
                                    <td>{format_date(key.created_at)}</td>
                                    <td>{key.last_used_at.map_or_else(|| "never".to_owned(), format_date)}</td>
                                    <td>
                                        <button
                                            class="link-button danger"
                                            aria-label=label
                                            on:click=move |_| revoke(id.clone())
                                        >
                                            "Revoke"
                                        </button>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
