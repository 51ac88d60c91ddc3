//! Conversation list: new chat, switch, delete.

use super::account::AccountMenu;
use super::chat_state::ChatState;
use crate::api::{delete_conversation, list_conversations};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

#[component]
pub fn Sidebar(open: RwSignal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let conversations = Resource::new(move || state.list_version.get(), |_| list_conversations());
    let navigate = use_navigate();

    let new_chat = {
        let navigate = navigate.clone();
        move |_| {
            state.reset();
            open.set(false);
            navigate("/", Default::default());
        }
    };
    let delete = move |id: String| {
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
                Err(e) => leptos::logging::warn!("delete failed: {e}"),
            }
        });
    };

    view! {
        <nav class="sidebar" aria-label="Conversations">
            <div class="sidebar-head">
                <span class="brand">"RAG Chat"</span>
                <button class="new-chat" on:click=new_chat>
                    <span aria-hidden="true">"+"</span>
                    " New chat"
                </button>
                <A href="/documents" attr:class="nav-link" on:click=move |_| open.set(false)>
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                        <path d="M6 3h8l4 4v14H6z M14 3v4h4 M9 12h6 M9 16h6"></path>
                    </svg>
                    " Documents"
                </A>
            </div>
            <Transition fallback=|| view! { <p class="muted pad">"Loading…"</p> }>
                {move || {
                    let delete = delete.clone();
                    Suspend::new(async move {
                    match conversations.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted pad">"No conversations yet."</p> }.into_any()
                        }
                        Ok(list) => {
                            view! {
                                <ul class="conversation-list">
                                    {list
                                        .into_iter()
                                        .map(|c| {
                                            let id = c.id.clone();
                                            let href = format!("/c/{}", c.id);
                                            let delete = delete.clone();
                                            let is_active = {
                                                let id = id.clone();
                                                move || state.active_id.get().as_deref() == Some(id.as_str())
                                            };
                                            view! {
                                                <li class="conversation" class:active=is_active>
                                                    <A href=href on:click=move |_| open.set(false)>
                                                        <span class="title">{c.title}</span>
                                                    </A>
                                                    <button
                                                        class="icon-button delete"
                                                        aria-label="Delete conversation"
                                                        title="Delete"
                                                        on:click=move |_| delete(id.clone())
                                                    >
                                                        "×"
                                                    </button>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error pad">{e.to_string()}</p> }.into_any(),
                    }
                    })
                }}
            </Transition>
            <AccountMenu open=open />
        </nav>
    }
}
