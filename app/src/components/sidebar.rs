//! The sidebar: new chat, documents, shared links, the conversation list
//! and the account menu.

use super::account::AccountMenu;
use super::chat_state::ChatState;
use super::conversation_list::ConversationList;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

#[component]
pub fn Sidebar(open: RwSignal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let navigate = use_navigate();

    let new_chat = {
        let navigate = navigate.clone();
        move |_| {
            state.reset();
            open.set(false);
            navigate("/", Default::default());
        }
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
                <A href="/shared" attr:class="nav-link" on:click=move |_| open.set(false)>
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                        <path d="M10 14a5 5 0 0 0 7 0l3-3a5 5 0 0 0-7-7l-1 1 M14 10a5 5 0 0 0-7 0l-3 3a5 5 0 0 0 7 7l1-1"></path>
                    </svg>
                    " Shared links"
                </A>
            </div>
            <ConversationList open />
            <AccountMenu open=open />
        </nav>
    }
}
