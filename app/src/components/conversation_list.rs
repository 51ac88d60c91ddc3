//! The conversation list: search over titles and messages (with the
//! matching snippet), and per conversation rename, pin, export, share and
//! delete (which asks first).

use super::chat_state::ChatState;
use crate::api::{
    delete_conversation, list_conversations, pin_conversation, rename_conversation,
    search_conversations, share_conversation,
};
use crate::browser;
use crate::error::AppError;
use crate::wire::{ConversationSummary, SearchHit, MATCH_END, MATCH_START};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

/// The search box and, below it, the conversations or the search's hits.
#[component]
pub fn ConversationList(open: RwSignal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let query = RwSignal::new(String::new());
    // Searches wait for a pause in typing.
    let settled = RwSignal::new(String::new());
    Effect::new(move |_| {
        let typed = query.get();
        set_timeout(
            move || {
                if query.get_untracked() == typed {
                    settled.set(typed.trim().to_owned());
                }
            },
            std::time::Duration::from_millis(250),
        );
    });
    let conversations = Resource::new(move || state.list_version.get(), |_| list_conversations());
    let hits = Resource::new(
        move || (settled.get(), state.list_version.get()),
        |(query, _)| async move {
            if query.is_empty() {
                Ok(None)
            } else {
                search_conversations(query).await.map(Some)
            }
        },
    );
    view! {
        <div class="search">
            <input
                type="search"
                placeholder="Search chats"
                aria-label="Search conversations"
                maxlength="200"
                prop:value=move || query.get()
                on:input=move |ev| query.set(event_target_value(&ev))
            />
        </div>
        <Transition fallback=|| view! { <p class="muted pad">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match hits.await {
                    Ok(Some(hits)) => search_results(hits, open).into_any(),
                    Err(e) => view! { <p class="error pad" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(None) => match conversations.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted pad">"No conversations yet."</p> }.into_any()
                        }
                        Ok(list) => view! {
                            <ul class="conversation-list">
                                {list
                                    .into_iter()
                                    .map(|c| view! { <ConversationItem conversation=c open /> })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any(),
                        Err(e) => view! { <p class="error pad">{e.to_string()}</p> }.into_any(),
                    },
                }
            })}
        </Transition>
    }
}

fn search_results(hits: Vec<SearchHit>, open: RwSignal<bool>) -> impl IntoView {
    if hits.is_empty() {
        return view! { <p class="muted pad" role="status">"No conversation matches."</p> }
            .into_any();
    }
    view! {
        <ul class="conversation-list search-results" aria-label="Search results">
            {hits
                .into_iter()
                .map(|hit| {
                    view! {
                        <li class="conversation hit">
                            <A href=format!("/c/{}", hit.conversation_id) on:click=move |_| open.set(false)>
                                <span class="title">{hit.title}</span>
                                <span class="snippet">{marked(&hit.snippet)}</span>
                            </A>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// A snippet's text, its matched words in `<mark>` (as text, never HTML).
fn marked(snippet: &str) -> impl IntoView {
    let mut pieces = Vec::new();
    for (i, part) in snippet.split(MATCH_START).enumerate() {
        match part.split_once(MATCH_END) {
            Some((matched, rest)) if i > 0 => {
                pieces.push(view! { <mark>{matched.to_owned()}</mark> }.into_any());
                pieces.push(rest.replace(MATCH_END, "").into_any());
            }
            _ => pieces.push(part.replace(MATCH_END, "").into_any()),
        }
    }
    pieces
}

/// What an item's menu is showing.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Closed,
    Menu,
    Renaming,
    ConfirmDelete,
}

#[component]
fn ConversationItem(conversation: ConversationSummary, open: RwSignal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let ConversationSummary {
        id, title, pinned, ..
    } = conversation;
    let mode = RwSignal::new(Mode::Closed);
    let problem = RwSignal::new(None::<String>);
    let is_active = {
        let id = id.clone();
        move || state.active_id.get().as_deref() == Some(id.as_str())
    };
    view! {
        <li class="conversation" class:active=is_active class:pinned=pinned>
            <ItemTitle id=id.clone() title pinned mode problem open />
            <button
                class="icon-button more"
                aria-label="Conversation actions"
                aria-haspopup="true"
                aria-expanded=move || (mode.get() == Mode::Menu).to_string()
                title="More"
                on:click=move |_| mode.update(|m| *m = if *m == Mode::Menu { Mode::Closed } else { Mode::Menu })
            >
                "⋯"
            </button>
            <ItemMenu id pinned mode problem />
            {move || problem.get().map(|p| view! { <p class="error small" role="alert">{p}</p> })}
        </li>
    }
}

/// Tells the item how a change went: closes the menu and reloads the list,
/// or shows the problem.
fn report(
    state: ChatState,
    mode: RwSignal<Mode>,
    problem: RwSignal<Option<String>>,
    result: Result<(), AppError>,
) {
    match result {
        Ok(()) => {
            problem.set(None);
            mode.set(Mode::Closed);
            state.refresh_list();
        }
        Err(e) => problem.set(Some(e.to_string())),
    }
}

/// The conversation's link, or the field that renames it.
#[component]
fn ItemTitle(
    id: String,
    title: String,
    pinned: bool,
    mode: RwSignal<Mode>,
    problem: RwSignal<Option<String>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let draft = RwSignal::new(title.clone());
    let rename = {
        let id = id.clone();
        move || {
            let id = id.clone();
            let title = draft.get_untracked();
            spawn_local(async move {
                report(state, mode, problem, rename_conversation(id, title).await)
            });
        }
    };
    let on_key = rename.clone();
    let link = move || {
        let href = format!("/c/{id}");
        let title = title.clone();
        view! {
            <A href=href on:click=move |_| open.set(false)>
                {pinned.then(|| view! {
                    <span class="pin" role="img" aria-label="Pinned" title="Pinned">
                        <svg viewBox="0 0 24 24" width="12" height="12" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                            <path d="M9 3h6l-1 6 4 4H6l4-4zM12 13v8"></path>
                        </svg>
                    </span>
                })}
                <span class="title">{title}</span>
            </A>
        }
    };
    view! {
        <Show when=move || mode.get() == Mode::Renaming fallback=link>
            <form
                class="rename"
                on:submit={
                    let rename = rename.clone();
                    move |ev| {
                        ev.prevent_default();
                        rename();
                    }
                }
            >
                <input
                    type="text"
                    aria-label="New title"
                    maxlength="200"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown={
                        let rename = on_key.clone();
                        move |ev: leptos::ev::KeyboardEvent| {
                            if ev.key() == "Escape" {
                                mode.set(Mode::Closed);
                            } else if ev.key() == "Enter" {
                                ev.prevent_default();
                                rename();
                            }
                        }
                    }
                />
            </form>
        </Show>
    }
}

/// The item's menu (rename, pin, export, share, delete), the delete
/// confirmation and the link just shared.
#[component]
fn ItemMenu(
    id: String,
    pinned: bool,
    mode: RwSignal<Mode>,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let navigate = use_navigate();
    let shared_url = RwSignal::new(None::<String>);
    let pin = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn_local(async move {
                report(state, mode, problem, pin_conversation(id, !pinned).await)
            });
        }
    };
    let share = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn_local(async move {
                match share_conversation(id).await {
                    Ok(share) => {
                        shared_url.set(Some(format!("{}{}", browser::origin(), share.path())));
                        mode.set(Mode::Closed);
                        problem.set(None);
                    }
                    Err(e) => problem.set(Some(e.to_string())),
                }
            });
        }
    };
    let export_href = format!("/api/conversations/{id}/export");
    let delete = move |_| {
        let id = id.clone();
        let navigate = navigate.clone();
        spawn_local(async move {
            match delete_conversation(id.clone()).await {
                Ok(()) => {
                    if state.active_id.get_untracked().as_deref() == Some(id.as_str()) {
                        state.reset();
                        navigate("/", Default::default());
                    }
                    state.refresh_list();
                }
                Err(e) => problem.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <Show when=move || mode.get() == Mode::Menu>
            <div class="item-menu" role="menu">
                <button role="menuitem" on:click=move |_| mode.set(Mode::Renaming)>"Rename"</button>
                <button role="menuitem" on:click=pin.clone()>{if pinned { "Unpin" } else { "Pin" }}</button>
                <a role="menuitem" href=export_href.clone() download="">"Export as Markdown"</a>
                <button role="menuitem" on:click=share.clone()>"Share link"</button>
                <button role="menuitem" class="danger" on:click=move |_| mode.set(Mode::ConfirmDelete)>"Delete"</button>
            </div>
        </Show>
        <Show when=move || mode.get() == Mode::ConfirmDelete>
            <div class="confirm" role="alertdialog" aria-label="Delete this conversation?">
                <span>"Delete this conversation?"</span>
                <button class="danger" on:click=delete.clone()>"Delete"</button>
                <button class="link-button" on:click=move |_| mode.set(Mode::Closed)>"Cancel"</button>
            </div>
        </Show>
        {move || {
            shared_url
                .get()
                .map(|url| {
                    let copy = url.clone();
                    view! {
                        <div class="share-box" role="status">
                            <span>"Read-only link (shows the chat as it is now):"</span>
                            <input type="text" readonly aria-label="Shared link" prop:value=url />
                            <button class="link-button" on:click=move |_| browser::copy_text(&copy)>"Copy"</button>
                            <button class="link-button" on:click=move |_| shared_url.set(None)>"Done"</button>
                        </div>
                    }
                })
        }}
    }
}
