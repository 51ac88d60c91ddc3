//! The user's shared links: what each shows, when it was made, and Revoke
//! (a revoked link shows nothing).

use crate::api::{list_shares, revoke_share};
use crate::components::documents::format_date;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

#[component]
pub fn SharedLinksPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let shares = Resource::new(move || version.get(), |_| list_shares());
    let error = RwSignal::new(None::<String>);
    let revoke = move |id: String| {
        spawn_local(async move {
            match revoke_share(id).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e.to_string())),
            }
            version.update(|v| *v += 1);
        });
    };
    view! {
        <Title text="Shared links" />
        <div class="page shares-page">
            <h1>"Shared links"</h1>
            <p class="muted">
                "Anyone with a link sees that conversation as it was when you shared it, read-only, with the passages it cites. Revoke a link to end it."
            </p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match shares.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted">"You have not shared any conversation."</p> }.into_any()
                        }
                        Ok(list) => view! {
                            <table class="shares">
                                <thead>
                                    <tr><th>"Conversation"</th><th>"Shared"</th><th>"Link"</th><th></th></tr>
                                </thead>
                                <tbody>
                                    {list
                                        .into_iter()
                                        .map(|share| {
                                            let path = share.path();
                                            let id = share.id.clone();
                                            view! {
                                                <tr>
                                                    <td>{share.title.clone()}</td>
                                                    <td>{format_date(share.created_at_ms)}</td>
                                                    <td><a href=path.clone() target="_blank" rel="noopener">{path.clone()}</a></td>
                                                    <td>
                                                        <button class="danger" on:click=move |_| revoke(id.clone())>
                                                            "Revoke"
                                                        </button>
                                                    </td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                        }
                            .into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}
