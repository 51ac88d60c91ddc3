//! Who may use a shared collection, for those who manage it (its owner and
//! administrators): members and their access, every signed-in account's
//! access, re-indexing (administrators) and deleting it.

use super::uploads::UploadState;
use crate::api::{
    delete_collection, reindex_collection, remove_collection_member, set_collection_everyone,
    set_collection_member,
};
use crate::error::AppError;
use crate::wire::{CollectionView, MemberAccess, MemberView};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::future::Future;

/// What the panel's parts share: reading the list again after a change,
/// which collection's access settings are open (kept across that reload),
/// and whether the user is an administrator.
#[derive(Clone, Copy)]
pub struct PanelState {
    pub version: RwSignal<u32>,
    pub managing: RwSignal<Option<String>>,
    pub is_admin: Signal<bool>,
    /// Where uploads go: forgotten when that collection is deleted.
    pub target: RwSignal<Option<String>>,
}

impl PanelState {
    pub fn reload(&self) {
        self.version.update(|v| *v += 1);
    }
}

/// `read`/`write`/`none` as a select's value.
fn access_value(access: Option<MemberAccess>) -> &'static str {
    access.map_or("none", MemberAccess::as_str)
}

/// Runs a change; on success the panel is read again, on failure `problem`
/// says why.
fn change<T: 'static>(
    state: PanelState,
    problem: RwSignal<Option<String>>,
    request: impl Future<Output = Result<T, AppError>> + 'static,
) {
    spawn_local(async move {
        match request.await {
            Ok(_) => {
                problem.set(None);
                state.reload();
            }
            Err(e) => problem.set(Some(e.to_string())),
        }
    });
}

/// The options of an access select.
fn access_options(current: Option<MemberAccess>, with_none: bool) -> impl IntoView {
    let option = move |value: Option<MemberAccess>, text: &'static str| {
        view! { <option value=access_value(value) selected=current == value>{text}</option> }
    };
    view! {
        {with_none.then(|| option(None, "No access"))}
        {option(Some(MemberAccess::Read), "Can read")}
        {option(Some(MemberAccess::Write), "Can edit")}
    }
}

#[component]
pub fn CollectionManager(collection: CollectionView, state: PanelState) -> impl IntoView {
    let problem = RwSignal::new(None::<String>);
    let id = collection.id.clone();
    let open = {
        let id = id.clone();
        move || state.managing.with(|m| m.as_deref() == Some(id.as_str()))
    };
    // The page keeps which one is open, so it stays open as the list is
    // read again after a change.
    let toggle = {
        let id = id.clone();
        move |ev: leptos::ev::MouseEvent| {
            ev.prevent_default();
            let id = id.clone();
            state.managing.update(|m| {
                *m = if m.as_deref() == Some(id.as_str()) {
                    None
                } else {
                    Some(id)
                }
            });
        }
    };
    let everyone_id = id.clone();
    let everyone = collection.everyone;
    view! {
        <details class="manage" prop:open=open>
            <summary on:click=toggle>"Manage access"</summary>
            <div class="manage-body">
                <label class="field">
                    <span>"Everyone signed in"</span>
                    <select on:change=move |ev| {
                        let access = MemberAccess::parse(&event_target_value(&ev));
                        change(state, problem, set_collection_everyone(everyone_id.clone(), access));
                    }>
                        {access_options(everyone, true)}
                    </select>
                </label>
                <MemberList id=id.clone() name=collection.name.clone() members=collection.members.clone() state problem />
                <AddMemberForm id=id.clone() state problem />
                <p class="form-error" role="alert">{move || problem.get()}</p>
                <ManageActions collection state />
            </div>
        </details>
    }
}

#[component]
fn MemberList(
    id: String,
    name: String,
    members: Vec<MemberView>,
    state: PanelState,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    if members.is_empty() {
        return view! { <p class="muted small">"No members yet: only you and administrators can use it."</p> }
            .into_any();
    }
    view! {
        <ul class="members" aria-label=format!("Members of {name}")>
            {members
                .into_iter()
                .map(|member| {
                    let (set_id, remove_id) = (id.clone(), id.clone());
                    let (set_name, remove_name) = (member.username.clone(), member.username.clone());
                    view! {
                        <li class="member" data-username=member.username.clone()>
                            <span class="member-name">{member.username.clone()}</span>
                            <select
                                aria-label=format!("Access of {}", member.username)
                                on:change=move |ev| {
                                    if let Some(access) = MemberAccess::parse(&event_target_value(&ev)) {
                                        change(state, problem, set_collection_member(set_id.clone(), set_name.clone(), access));
                                    }
                                }
                            >
                                {access_options(Some(member.access), false)}
                            </select>
                            <button
                                type="button"
                                class="link-button danger"
                                aria-label=format!("Remove {}", member.username)
                                on:click=move |_| change(state, problem, remove_collection_member(remove_id.clone(), remove_name.clone()))
                            >
                                "Remove"
                            </button>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
fn AddMemberForm(
    id: String,
    state: PanelState,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let access = RwSignal::new(MemberAccess::Read);
    view! {
        <form
            class="add-member"
            aria-label="Add a member"
            on:submit=move |ev| {
                ev.prevent_default();
                let who = username.get_untracked().trim().to_owned();
                if !who.is_empty() {
                    change(state, problem, set_collection_member(id.clone(), who, access.get_untracked()));
                }
            }
        >
            <label class="field grow">
                <span>"Add member"</span>
                <input
                    type="text"
                    placeholder="Username"
                    autocomplete="off"
                    prop:value=move || username.get()
                    on:input=move |ev| username.set(event_target_value(&ev))
                />
            </label>
            <label class="field">
                <span>"Access"</span>
                <select on:change=move |ev| {
                    access.set(MemberAccess::parse(&event_target_value(&ev)).unwrap_or(MemberAccess::Read))
                }>
                    {access_options(Some(MemberAccess::Read), false)}
                </select>
            </label>
            <button type="submit" class="secondary" disabled=move || username.with(|u| u.trim().is_empty())>
                "Add"
            </button>
        </form>
    }
}

/// Re-index (administrators) and Delete, which asks first.
#[component]
fn ManageActions(collection: CollectionView, state: PanelState) -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let confirming = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let reindexed = RwSignal::new(None::<String>);
    let all = RwSignal::new(false);
    let CollectionView {
        id,
        name,
        documents,
        ..
    } = collection;
    let reindex_id = id.clone();
    let reindex = move |_| {
        let id = reindex_id.clone();
        spawn_local(async move {
            match reindex_collection(id, all.get_untracked()).await {
                Ok(0) => reindexed.set(Some("Every document is up to date.".into())),
                Ok(n) => {
                    reindexed.set(Some(format!("Re-indexing {n} document(s)…")));
                    uploads.documents_version.update(|v| *v += 1);
                }
                Err(e) => reindexed.set(Some(e.to_string())),
            }
        });
    };
    let delete = move |_| {
        let id = id.clone();
        spawn_local(async move {
            match delete_collection(id.clone()).await {
                Ok(()) => {
                    if state.target.get_untracked().as_deref() == Some(id.as_str()) {
                        state.target.set(None);
                    }
                    state.reload();
                    uploads.documents_version.update(|v| *v += 1);
                }
                Err(e) => problem.set(Some(e.to_string())),
            }
        });
    };
    let question = format!("Delete “{name}” and its {documents} document(s)? Members lose access.");
    view! {
        <div class="manage-actions">
            <Show when=move || state.is_admin.get()>
                <span class="reindex">
                    <button type="button" class="secondary" on:click=reindex.clone()>"Re-index"</button>
                    <label class="check small">
                        <input type="checkbox" prop:checked=move || all.get() on:change=move |ev| all.set(event_target_checked(&ev)) />
                        " every document (not only outdated ones)"
                    </label>
                    <span class="muted small" role="status">{move || reindexed.get()}</span>
                </span>
            </Show>
            <Show
                when=move || confirming.get()
                fallback=move || view! {
                    <button type="button" class="link-button danger" on:click=move |_| confirming.set(true)>
                        "Delete collection"
                    </button>
                }
            >
                <span class="confirm" role="group" aria-label="Confirm delete">
                    <span>{question.clone()}</span>
                    <button type="button" class="danger" on:click=delete.clone()>"Delete"</button>
                    <button type="button" class="link-button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </span>
            </Show>
            <p class="form-error" role="alert">{move || problem.get()}</p>
        </div>
    }
}
