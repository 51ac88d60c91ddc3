//! The conversation view: stored messages, the live ones, the composer.

use super::chat_state::ChatState;
use super::composer::Composer;
use super::message::{MessageBubble, SourceViewer};
use super::ui_message::UiMessage;
use super::uploads::{DropZone, UploadTray};
use crate::api::get_conversation;
use crate::browser;
use crate::error::AppError;
use crate::wire::{ConversationView, MessageStatus, Role};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

const EXAMPLES: [&str; 4] = [
    "Explain the difference between a process and a thread.",
    "Write a Rust function that reverses the words in a sentence.",
    "What is retrieval-augmented generation, in three bullet points?",
    "Give me a markdown table of HTTP status code classes.",
];

#[component]
pub fn ChatPage() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let params = use_params_map();
    let route_id = Memo::new(move |_| params.read().get("id"));

    // Opening a conversation (or "/") through the router replaces what the page shows.
    Effect::new(move |_| state.open(route_id.get()));

    let history = Resource::new(
        move || route_id.get(),
        |id| async move {
            match id {
                Some(id) => get_conversation(id).await.map(Some),
                None => Ok(None),
            }
        },
    );

    // An answer still being written when the conversation opens (after a
    // reload, or started in another tab) continues live in its place; the
    // conversation's scope fills the composer's picker.
    Effect::new(move |_| {
        if let Some(Ok(Some(view))) = history.get() {
            // The picker shows the collections it searches.
            state.search_scope.set(view.scope.clone());
            let last = view.messages.last();
            if let Some(last) =
                last.filter(|m| m.role == Role::Assistant && m.status == MessageStatus::Streaming)
            {
                state.follow(last);
            }
        }
    });

    let scroller = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        // Re-run whenever any live message changes.
        state
            .live
            .with(|turns| turns.iter().for_each(|t| t.content.track()));
        if let Some(el) = scroller.get() {
            browser::stick_to_bottom(&el);
        }
    });

    let on_retry = Callback::new(move |text: String| state.send(text));
    let is_empty = move || {
        route_id.with(Option::is_none)
            && state.live.with(Vec::is_empty)
            && state.active_id.with(Option::is_none)
    };

    view! {
        <DropZone>
        <div class="chat">
            <div class="messages" node_ref=scroller on:click=|ev| browser::handle_copy_code_click(&ev)>
                <div class="column" aria-live="polite">
                    <History history on_retry />
                    <Show when=is_empty>
                        <EmptyState />
                    </Show>
                    <For each=move || state.live.get() key=|m| m.key.clone() let:message>
                        <MessageBubble message on_retry />
                    </For>
                </div>
            </div>
            <UploadTray />
            <Composer />
        </div>
        </DropZone>
        <SourceViewer />
    }
}

/// The stored messages of the conversation being opened (or as reloaded
/// after a change on this page), up to where live messages replace them.
#[component]
fn History(
    history: Resource<Result<Option<ConversationView>, AppError>>,
    on_retry: Callback<String>,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    view! {
        <Transition fallback=|| view! { <div class="loading">"Loading…"</div> }>
            {move || Suspend::new(async move {
                let loaded = history.await;
                let shown = match state.reloaded.get() {
                    Some(view) => Ok(Some(view)),
                    None => loaded,
                };
                match shown {
                    Ok(Some(conversation)) => {
                        let title = conversation.title.clone();
                        let cut = state.cut_at.get();
                        let messages: Vec<_> = conversation
                            .messages
                            .into_iter()
                            .take_while(|m| cut.as_deref() != Some(m.id.as_str()))
                            .collect();
                        let last = messages.len().saturating_sub(1);
                        state.tail.set_value(messages.last().map(|m| m.id.clone()));
                        let live_follows = cut.is_some();
                        view! {
                            <leptos_meta::Title text=title />
                            {messages
                                .into_iter()
                                .enumerate()
                                .map(|(i, m)| {
                                    let latest = i == last && !live_follows;
                                    view! { <MessageBubble message=UiMessage::from_view(m) on_retry latest /> }
                                })
                                .collect_view()}
                        }
                            .into_any()
                    }
                    Ok(None) => ().into_any(),
                    Err(AppError::NotFound) => {
                        view! {
                            <div class="notice" role="alert">
                                "This conversation does not exist or is not yours."
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <div class="notice" role="alert">{e.to_string()}</div> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// A new conversation: what the app does, and a few examples to start from.
#[component]
fn EmptyState() -> impl IntoView {
    let state = expect_context::<ChatState>();
    view! {
        <div class="empty-state">
            <h1>"What can I help with?"</h1>
            <p class="muted">
                "Answers stream from a model running on this server. Upload documents (📎 or drop them here) to get answers grounded in them, with sources."
            </p>
            <div class="examples">
                {EXAMPLES
                    .iter()
                    .map(|example| {
                        view! {
                            <button class="example" on:click=move |_| state.send(example.to_string())>
                                {*example}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
        </div>
    }
}
