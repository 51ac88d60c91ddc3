//! One message bubble: markdown, streaming caret, status and errors; the
//! version switcher, Regenerate on the latest answer and Edit on questions.

use super::chat_state::ChatState;
use super::ui_message::{UiMessage, UiStatus};
use crate::api::rate_answer;
use crate::browser;
use crate::markdown::render_markdown;
use crate::wire::{Rating, Role, Source, TextSpan, Versions};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// What the answer is waiting for, or that it was stopped.
fn status_view(status: UiStatus) -> Option<AnyView> {
    match status {
        UiStatus::Thinking => Some(view! { <div class="status thinking" role="status"><span class="dots"></span>"Thinking…"</div> }.into_any()),
        UiStatus::Reading { passages } => Some(
            view! {
                <div class="status thinking" role="status">
                    <span class="dots"></span>
                    {format!("Reading {passages} passage{} from your documents…", if passages == 1 { "" } else { "s" })}
                </div>
            }
            .into_any(),
        ),
        UiStatus::Waiting { position } => Some(
            view! {
                <div class="status waiting" role="status">
                    <span class="dots"></span>
                    {format!("Waiting for the model: {position} chat(s) ahead of you…")}
                </div>
            }
            .into_any(),
        ),
        UiStatus::Stopped => Some(view! { <div class="status stopped">"Stopped."</div> }.into_any()),
        _ => None,
    }
}

#[component]
pub fn MessageBubble(
    message: UiMessage,
    #[prop(into)] on_retry: Callback<String>,
    /// The last stored answer of the branch shown: it can be regenerated.
    #[prop(optional)]
    latest: bool,
) -> impl IntoView {
    let UiMessage {
        role,
        content,
        status,
        error,
        meta,
        notice,
        retry,
        sources,
        searched_for,
        server_id,
        rating,
        versions,
        ..
    } = message;
    let is_user = role == Role::User;
    let editing = RwSignal::new(false);
    // Only stored questions (the page knows their id) can be edited.
    let stored = server_id.get_untracked().is_some();
    let question_versions = versions.clone().filter(|_| is_user);
    let answer_versions = versions.filter(|_| !is_user);
    let streaming = move || matches!(status.get(), UiStatus::Streaming);
    let body = move || {
        if is_user && editing.get() {
            view! { <QuestionEditor content server_id editing /> }.into_any()
        } else if is_user {
            view! { <div class="user-text">{move || content.get()}</div> }.into_any()
        } else {
            view! {
                <div
                    class="markdown"
                    class:streaming=streaming
                    inner_html=move || render_markdown(&content.get())
                ></div>
            }
            .into_any()
        }
    };
    let status_line = move || status_view(status.get());

    view! {
        <article
            class="message"
            class:user=is_user
            class:assistant=!is_user
            class:failed=move || status.get() == UiStatus::Failed
            aria-label=if is_user { "Your message" } else { "Answer" }
        >
            <div class="bubble">
                {move || notice.get().map(|n| view! { <p class="answer-note" role="note">{n}</p> })}
                {body}
                {status_line}
                <ErrorBox error retry on_retry />
            </div>
            <SourceChips sources searched_for />
            <Show when=move || is_user && stored && !editing.get()>
                <QuestionFooter versions=question_versions.clone() editing />
            </Show>
            <Show when=move || !is_user && !matches!(status.get(), UiStatus::Thinking | UiStatus::Waiting { .. } | UiStatus::Reading { .. })>
                <AnswerFooter
                    content
                    status
                    meta
                    server_id
                    rating
                    versions=answer_versions.clone()
                    latest
                />
            </Show>
        </article>
    }
}

/// Why an answer failed, with Retry when the question can be asked again.
#[component]
fn ErrorBox(
    error: RwSignal<Option<String>>,
    retry: RwSignal<Option<String>>,
    on_retry: Callback<String>,
) -> impl IntoView {
    move || {
        error.get().map(|e| {
            view! {
                <div class="error-box" role="alert">
                    <span>{e}</span>
                    {move || {
                        retry
                            .get()
                            .map(|text| {
                                view! {
                                    <button class="retry" on:click=move |_| on_retry.run(text.clone())>
                                        "Retry"
                                    </button>
                                }
                            })
                    }}
                </div>
            }
        })
    }
}

/// Under a stored question: its versions, and Edit.
#[component]
fn QuestionFooter(versions: Option<Versions>, editing: RwSignal<bool>) -> impl IntoView {
    let state = expect_context::<ChatState>();
    view! {
        <div class="message-footer user-footer">
            {versions.map(|v| view! { <VersionSwitcher versions=v /> })}
            <button
                class="icon-button"
                aria-label="Edit"
                title="Edit this question"
                disabled=move || state.busy.get()
                on:click=move |_| editing.set(true)
            >
                <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                    <path d="M4 20h4L19 9l-4-4L4 16z M13 7l4 4"></path>
                </svg>
            </button>
        </div>
    }
}

/// Under an answer: Copy, the votes, its versions, Regenerate (on the
/// latest stored answer) and how it was made.
#[component]
fn AnswerFooter(
    content: RwSignal<String>,
    status: RwSignal<UiStatus>,
    meta: RwSignal<Option<String>>,
    server_id: RwSignal<Option<String>>,
    rating: RwSignal<Option<Rating>>,
    versions: Option<Versions>,
    latest: bool,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    view! {
        <div class="message-footer">
            <button
                class="icon-button"
                aria-label="Copy answer"
                title="Copy"
                on:click=move |_| browser::copy_text(&content.get_untracked())
            >
                <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                    <rect x="9" y="9" width="12" height="12" rx="2"></rect>
                    <path d="M5 15V5a2 2 0 0 1 2-2h10"></path>
                </svg>
            </button>
            <Show when=move || server_id.get().is_some() && status.get() != UiStatus::Failed>
                <Votes server_id rating />
            </Show>
            {versions.map(|v| view! { <VersionSwitcher versions=v /> })}
            <Show when=move || latest && server_id.get().is_some() && !state.busy.get() && status.get() != UiStatus::Streaming>
                <button
                    class="icon-button"
                    aria-label="Regenerate"
                    title="Regenerate this answer"
                    on:click=move |_| {
                        if let Some(id) = server_id.get_untracked() {
                            state.regenerate(id);
                        }
                    }
                >
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                        <path d="M20 11a8 8 0 1 0-2.3 5.7 M20 4v7h-7"></path>
                    </svg>
                </button>
            </Show>
            <span class="meta">{move || meta.get().unwrap_or_default()}</span>
        </div>
    }
}

/// "‹ 2/3 ›": moves between the versions of an answer or a question.
#[component]
fn VersionSwitcher(versions: Versions) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let Versions {
        position,
        count,
        previous,
        next,
    } = versions;
    let go = move |target: Option<String>| {
        if let Some(id) = target {
            state.switch_to(id);
        }
    };
    let no_previous = previous.is_none();
    let no_next = next.is_none();
    view! {
        <span class="versions" role="group" aria-label="Versions">
            <button
                class="icon-button"
                aria-label="Previous version"
                title="Previous version"
                disabled=move || no_previous || state.busy.get()
                on:click=move |_| go(previous.clone())
            >
                "‹"
            </button>
            <span class="version-position">{format!("{position}/{count}")}</span>
            <button
                class="icon-button"
                aria-label="Next version"
                title="Next version"
                disabled=move || no_next || state.busy.get()
                on:click=move |_| go(next.clone())
            >
                "›"
            </button>
        </span>
    }
}

/// A question opened for editing in place: sending makes a new branch
/// from there; the old question keeps its branch.
#[component]
fn QuestionEditor(
    content: RwSignal<String>,
    server_id: RwSignal<Option<String>>,
    editing: RwSignal<bool>,
) -> impl IntoView {
    let state = expect_context::<ChatState>();
    let draft = RwSignal::new(content.get_untracked());
    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        if let Some(id) = server_id.get_untracked() {
            editing.set(false);
            state.edit(id, text);
        }
    };
    let field = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(field) = field.get() {
            let _ = field.focus();
        }
    });
    view! {
        <form
            class="question-editor"
            on:submit=move |ev| {
                ev.prevent_default();
                send();
            }
        >
            <textarea
                node_ref=field
                aria-label="Edit your question"
                rows="3"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() {
                        ev.prevent_default();
                        send();
                    } else if ev.key() == "Escape" {
                        editing.set(false);
                    }
                }
            ></textarea>
            <div class="editor-actions">
                <button type="button" class="link-button" on:click=move |_| editing.set(false)>
                    "Cancel"
                </button>
                <button type="submit" class="primary" disabled=move || draft.with(|d| d.trim().is_empty())>
                    "Send"
                </button>
            </div>
        </form>
    }
}

/// Thumbs up/down, changeable (a second click withdraws), with an optional
/// comment once voted.
#[component]
fn Votes(server_id: RwSignal<Option<String>>, rating: RwSignal<Option<Rating>>) -> impl IntoView {
    let comment = RwSignal::new(String::new());
    let commenting = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let send = move |vote: Option<Rating>, text: Option<String>| {
        let Some(id) = server_id.get_untracked() else {
            return;
        };
        let before = rating.get_untracked();
        rating.set(vote);
        spawn_local(async move {
            match rate_answer(id, vote, text).await {
                Ok(()) => problem.set(None),
                Err(e) => {
                    rating.set(before);
                    problem.set(Some(format!("Your vote was not saved: {e}")));
                }
            }
        });
    };
    let click = move |vote: Rating| {
        let next = if rating.get_untracked() == Some(vote) {
            None
        } else {
            Some(vote)
        };
        commenting.set(next.is_some());
        send(next, None);
    };
    view! {
        <button
            class="icon-button vote"
            class:chosen=move || rating.get() == Some(Rating::Up)
            aria-label="Good answer"
            title="Good answer"
            aria-pressed=move || (rating.get() == Some(Rating::Up)).to_string()
            on:click=move |_| click(Rating::Up)
        >
            <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                <path d="M7 10v11H3V10zM7 10l4-8a3 3 0 0 1 3 3v4h6a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18.6 21H7"></path>
            </svg>
        </button>
        <button
            class="icon-button vote"
            class:chosen=move || rating.get() == Some(Rating::Down)
            aria-label="Bad answer"
            title="Bad answer"
            aria-pressed=move || (rating.get() == Some(Rating::Down)).to_string()
            on:click=move |_| click(Rating::Down)
        >
            <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                <path d="M17 14V3h4v11zM17 14l-4 8a3 3 0 0 1-3-3v-4H4a2 2 0 0 1-2-2.3l1.4-8A2 2 0 0 1 5.4 3H17"></path>
            </svg>
        </button>
        <Show when=move || commenting.get()>
            <form
                class="vote-comment"
                on:submit=move |ev| {
                    ev.prevent_default();
                    let text = comment.get_untracked();
                    send(rating.get_untracked(), Some(text));
                    commenting.set(false);
                }
            >
                <input
                    type="text"
                    maxlength="2000"
                    placeholder="What was good or wrong? (optional)"
                    aria-label="Comment on this answer"
                    prop:value=move || comment.get()
                    on:input=move |ev| comment.set(event_target_value(&ev))
                />
                <button type="submit" class="link-button">"Send"</button>
            </form>
        </Show>
        {move || problem.get().map(|p| view! { <span class="error small" role="alert">{p}</span> })}
    }
}

/// The name every account's own collection has: its documents are cited
/// by name alone, shared ones with their collection's name.
const OWN_COLLECTION: &str = "My documents";

/// The shared collection a source comes from, to name on its chip.
fn shared_collection(source: &Source) -> Option<String> {
    source
        .collection
        .clone()
        .filter(|name| name != OWN_COLLECTION)
}

/// The source the reader opened, shown in the source viewer.
#[derive(Clone, Copy)]
pub struct OpenSource(pub RwSignal<Option<Source>>);

/// Compact chips under an answer: the sources it cites (or, when it cites
/// none, the passages it was given), and what a follow-up was searched as.
/// A chip opens the passage.
#[component]
fn SourceChips(
    sources: RwSignal<Vec<Source>>,
    searched_for: RwSignal<Option<String>>,
) -> impl IntoView {
    let open = expect_context::<OpenSource>();
    let shown = move || {
        sources.with(|all| {
            let cited: Vec<Source> = all.iter().filter(|s| s.cited).cloned().collect();
            if cited.is_empty() {
                (false, all.clone())
            } else {
                (true, cited)
            }
        })
    };
    view! {
        <Show when=move || sources.with(|s| !s.is_empty())>
            <div class="sources" role="group" aria-label="Sources">
                <span class="sources-label muted">
                    {move || if shown().0 { "Sources" } else { "Passages given to the model" }}
                </span>
                {move || {
                    shown()
                        .1
                        .into_iter()
                        .map(|source| {
                            let label = source.location();
                            let n = source.n;
                            let collection = shared_collection(&source);
                            let title = match &collection {
                                Some(c) => format!("Open source {n}: {c} · {label}"),
                                None => format!("Open source {n}: {label}"),
                            };
                            view! {
                                <button
                                    type="button"
                                    class="source-chip"
                                    title=title
                                    on:click=move |_| open.0.set(Some(source.clone()))
                                >
                                    <span class="source-n">{n}</span>
                                    <span class="source-label">
                                        {collection.map(|c| view! { <span class="source-collection">{c}" · "</span> })}
                                        {label.clone()}
                                    </span>
                                </button>
                            }
                        })
                        .collect_view()
                }}
                {move || {
                    searched_for
                        .get()
                        .map(|query| {
                            view! {
                                <span class="searched-for muted" title="This follow-up was searched as a question of its own">
                                    "Searched for: " <q>{query}</q>
                                </span>
                            }
                        })
                }}
            </div>
        </Show>
    }
}

/// Splits `text` into (segment, highlighted) pieces at the given char spans.
pub fn highlight_segments(text: &str, spans: &[TextSpan]) -> Vec<(String, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut spans: Vec<TextSpan> = spans.to_vec();
    spans.sort_by_key(|s| s.start);
    let mut out = Vec::new();
    let mut at = 0usize;
    for span in spans {
        let start = (span.start as usize).clamp(at, chars.len());
        let end = (span.end as usize).clamp(start, chars.len());
        if start > at {
            out.push((chars[at..start].iter().collect(), false));
        }
        if end > start {
            out.push((chars[start..end].iter().collect(), true));
        }
        at = end;
    }
    if at < chars.len() {
        out.push((chars[at..].iter().collect(), false));
    }
    out
}

/// A dialog with the opened source's passage, the supporting part highlighted.
#[component]
pub fn SourceViewer() -> impl IntoView {
    let open = expect_context::<OpenSource>();
    let close = move || open.0.set(None);
    let panel = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if open.0.with(Option::is_some) {
            if let Some(panel) = panel.get() {
                let _ = panel.focus();
            }
        }
    });
    view! {
        {move || {
            open.0
                .get()
                .map(|source| {
                    let segments = highlight_segments(&source.text, &source.highlights);
                    view! {
                        <div class="scrim" on:click=move |_| close()></div>
                        <div
                            class="source-viewer"
                            role="dialog"
                            aria-modal="true"
                            aria-labelledby="source-viewer-title"
                            tabindex="-1"
                            node_ref=panel
                            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                                if ev.key() == "Escape" {
                                    close();
                                }
                            }
                        >
                            <header>
                                <span class="source-n">{source.n}</span>
                                <h2 id="source-viewer-title">{source.location()}</h2>
                                <button type="button" class="icon-button" aria-label="Close" on:click=move |_| close()>
                                    "×"
                                </button>
                            </header>
                            <p class="source-text">
                                {segments
                                    .into_iter()
                                    .map(|(text, marked)| {
                                        if marked {
                                            view! { <mark>{text}</mark> }.into_any()
                                        } else {
                                            view! { <span>{text}</span> }.into_any()
                                        }
                                    })
                                    .collect_view()}
                            </p>
                            <footer class="muted">
                                {format!("Passage {} of {}", source.chunk_index + 1, source.document_name)}
                                {source.collection.clone().map(|c| format!(" · in {c}"))}
                            </footer>
                        </div>
                    }
                })
        }}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_split_text_by_characters() {
        let spans = [TextSpan { start: 2, end: 4 }];
        assert_eq!(
            highlight_segments("äöüß!", &spans),
            vec![
                ("äö".to_string(), false),
                ("üß".to_string(), true),
                ("!".to_string(), false)
            ]
        );
        // Out-of-range spans are clamped, never panic.
        assert_eq!(
            highlight_segments("ab", &[TextSpan { start: 1, end: 99 }]),
            vec![("a".to_string(), false), ("b".to_string(), true)]
        );
    }
}
