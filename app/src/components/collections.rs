//! The collections panel of the Documents page: each collection the user
//! can read, with its owner, size and the user's access; making a shared one.

use super::collection_manager::{CollectionManager, PanelState};
use crate::api::create_collection;
use crate::error::AppError;
use crate::wire::{CollectionAccess, CollectionList, CollectionView, MemberAccess};
use leptos::prelude::*;
use leptos::task::spawn_local;

fn access_text(access: CollectionAccess) -> &'static str {
    match access {
        CollectionAccess::Read => "You can read",
        CollectionAccess::Write => "You can add and change documents",
        CollectionAccess::Manage => "You manage it",
    }
}

#[component]
pub fn CollectionsPanel(
    collections: Resource<Result<CollectionList, AppError>>,
    version: RwSignal<u32>,
    is_admin: Signal<bool>,
    target: RwSignal<Option<String>>,
) -> impl IntoView {
    let state = PanelState {
        version,
        managing: RwSignal::new(None),
        is_admin,
        target,
    };
    view! {
        <section class="collections-section" aria-labelledby="collections-heading">
            <h2 id="collections-heading">"Collections"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match collections.await {
                        Ok(list) => view! {
                            <div class="collections">
                                {list
                                    .collections
                                    .into_iter()
                                    .map(|collection| view! { <CollectionCard collection state /> })
                                    .collect_view()}
                            </div>
                            {list.can_create.then(|| view! { <NewCollectionForm state /> })}
                        }
                        .into_any(),
                        Err(e) => view! { <div class="error-box" role="alert"><span>{e.to_string()}</span></div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn CollectionCard(collection: CollectionView, state: PanelState) -> impl IntoView {
    let name_id = format!("collection-{}", collection.id);
    let labelled_by = name_id.clone();
    let owner = match (&collection.owner, collection.private) {
        (_, true) => "Only you".to_owned(),
        (Some(owner), false) => format!("Owner: {owner}"),
        (None, false) => "Owner: a guest".to_owned(),
    };
    let count = match collection.documents {
        1 => "1 document".to_owned(),
        n => format!("{n} documents"),
    };
    let everyone = collection.everyone.map(|access| match access {
        MemberAccess::Read => "Everyone can read",
        MemberAccess::Write => "Everyone can edit",
    });
    let manages = collection.access == CollectionAccess::Manage && !collection.private;
    view! {
        <section
            class="collection"
            class:private=collection.private
            aria-labelledby=labelled_by
            data-name=collection.name.clone()
        >
            <div class="collection-head">
                <span class="collection-name" id=name_id>{collection.name.clone()}</span>
                {collection.private.then(|| view! { <span class="badge">"Private"</span> })}
                {everyone.map(|e| view! { <span class="badge everyone">{e}</span> })}
            </div>
            <p class="collection-meta muted small">
                {owner} " · " {count} " · " {access_text(collection.access)}
            </p>
            {manages.then(|| view! { <CollectionManager collection=collection.clone() state /> })}
        </section>
    }
}

/// "New collection": a name, and what every signed-in account may do.
#[component]
fn NewCollectionForm(state: PanelState) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let everyone = RwSignal::new(None::<MemberAccess>);
    let problem = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move || {
        let chosen = name.get_untracked();
        if chosen.trim().is_empty() || busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match create_collection(chosen, everyone.get_untracked()).await {
                Ok(created) => {
                    problem.set(None);
                    name.set(String::new());
                    state.managing.set(Some(created.id));
                    state.reload();
                }
                Err(e) => problem.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <form
            class="new-collection"
            aria-label="New collection"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <label class="field grow">
                <span>"Collection name"</span>
                <input
                    type="text"
                    name="name"
                    maxlength="100"
                    placeholder="e.g. HR handbook"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
            </label>
            <label class="field">
                <span>"Everyone signed in"</span>
                <select
                    name="everyone"
                    on:change=move |ev| everyone.set(MemberAccess::parse(&event_target_value(&ev)))
                >
                    <option value="none" selected>"No access"</option>
                    <option value="read">"Can read"</option>
                    <option value="write">"Can edit"</option>
                </select>
            </label>
            <button type="submit" class="primary" disabled=move || busy.get() || name.with(|n| n.trim().is_empty())>
                "Create collection"
            </button>
            <p class="form-error" role="alert">{move || problem.get()}</p>
        </form>
    }
}
