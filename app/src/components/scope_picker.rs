//! Which collections the conversation searches: "Search: All documents ▾"
//! above the message box opens a checkbox per collection the user can read.
//! A new chat sends the choice with its first message; an existing one
//! stores it at once.

use super::chat_state::ChatState;
use crate::api::{list_collections, set_conversation_scope};
use crate::wire::CollectionView;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// "All documents", one name, "A, B", or "A + 2 more".
fn scope_label(collections: &[CollectionView], scope: Option<&[String]>) -> String {
    let Some(scope) = scope else {
        return "All documents".into();
    };
    let names: Vec<&str> = collections
        .iter()
        .filter(|c| scope.contains(&c.id))
        .map(|c| c.name.as_str())
        .collect();
    match names.as_slice() {
        [] => "no collection you can read".into(),
        [one] => (*one).to_owned(),
        [a, b] => format!("{a}, {b}"),
        [first, rest @ ..] => format!("{first} + {} more", rest.len()),
    }
}

/// The scope after ticking (or unticking) one collection: unticking the
/// last one searches everything again.
fn toggled(scope: Option<Vec<String>>, id: &str, on: bool) -> Option<Vec<String>> {
    let mut ids = scope.unwrap_or_default();
    ids.retain(|x| x != id);
    if on {
        ids.push(id.to_owned());
    }
    (!ids.is_empty()).then_some(ids)
}

#[component]
pub fn ScopePicker() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let collections = LocalResource::new(list_collections);
    let open = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let readable = move || {
        collections
            .get()
            .and_then(Result::ok)
            .map(|list| list.collections)
            .unwrap_or_default()
    };
    let label = move || scope_label(&readable(), state.search_scope.get().as_deref());
    let choose = move |scope: Option<Vec<String>>| {
        let before = state.search_scope.get_untracked();
        state.search_scope.set(scope.clone());
        problem.set(None);
        // A new chat sends it with its first message.
        let Some(conversation) = state.active_id.get_untracked() else {
            return;
        };
        spawn_local(async move {
            if let Err(e) = set_conversation_scope(conversation, scope).await {
                state.search_scope.set(before);
                problem.set(Some(format!("The search was not changed: {e}")));
            }
        });
    };
    let root = NodeRef::<leptos::html::Details>::new();
    close_on_outside_click(root, open);
    let is_all = move || state.search_scope.with(Option::is_none);

    view! {
        <Show when=move || !readable().is_empty()>
            <details
                class="scope-picker"
                node_ref=root
                prop:open=move || open.get()
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Escape" {
                        open.set(false);
                    }
                }
            >
                <summary
                    title="Which documents answers are searched in"
                    on:click=move |ev| {
                        ev.prevent_default();
                        if !open.get_untracked() {
                            // Collections may have been shared since the page loaded.
                            collections.refetch();
                        }
                        open.update(|o| *o = !*o);
                    }
                >
                    <svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                        <circle cx="11" cy="11" r="6"></circle>
                        <path d="M20 20l-4.5-4.5"></path>
                    </svg>
                    <span class="scope-label">"Search: " {label}</span>
                    <span class="caret" aria-hidden="true">"▾"</span>
                </summary>
                <fieldset class="scope-options">
                    <legend>"Search in"</legend>
                    <label class="check">
                        <input
                            type="checkbox"
                            prop:checked=is_all
                            disabled=is_all
                            on:change=move |_| choose(None)
                        />
                        "All documents"
                    </label>
                    <For each=readable key=|c| c.id.clone() let:collection>
                        <ScopeOption collection choose />
                    </For>
                    <button type="button" class="link-button" on:click=move |_| open.set(false)>"Done"</button>
                </fieldset>
                {move || problem.get().map(|p| view! { <p class="form-error" role="alert">{p}</p> })}
            </details>
        </Show>
    }
}

#[component]
fn ScopeOption(
    collection: CollectionView,
    choose: impl Fn(Option<Vec<String>>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let id = collection.id.clone();
    let checked = {
        let id = id.clone();
        move || {
            state
                .search_scope
                .with(|s| s.as_ref().is_some_and(|s| s.contains(&id)))
        }
    };
    let detail = match (&collection.owner, collection.private) {
        (_, true) => "Yours · ".to_owned(),
        (Some(owner), false) => format!("Shared by {owner} · "),
        (None, false) => String::new(),
    };
    view! {
        <label class="check" title=format!("{detail}{} documents", collection.documents)>
            <input
                type="checkbox"
                prop:checked=checked
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    choose(toggled(state.search_scope.get_untracked(), &id, on));
                }
            />
            {collection.name.clone()}
        </label>
    }
}

/// Closes the popover when the page is clicked outside it.
fn close_on_outside_click(root: NodeRef<leptos::html::Details>, open: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let handle = window_event_listener(leptos::ev::click, move |ev| {
            if !open.get_untracked() {
                return;
            }
            let Some(root) = root.get_untracked() else {
                return;
            };
            let inside = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Node>().ok())
                .is_some_and(|node| root.contains(Some(&node)));
            if !inside {
                open.set(false);
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (root, open);
}

#[cfg(test)]
mod tests {
    use super::toggled;

    #[test]
    fn unticking_the_last_collection_searches_everything() {
        let a = || "a".to_string();
        assert_eq!(toggled(None, "a", true), Some(vec![a()]));
        assert_eq!(
            toggled(Some(vec![a()]), "b", true),
            Some(vec![a(), "b".into()])
        );
        assert_eq!(
            toggled(Some(vec![a(), "b".into()]), "a", false),
            Some(vec!["b".into()])
        );
        assert_eq!(toggled(Some(vec![a()]), "a", false), None);
    }
}
