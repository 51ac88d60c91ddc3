//! The message box: Enter sends, Shift+Enter adds a line, Stop while
//! streaming; above it, which collections the conversation searches.

use super::chat_state::ChatState;
use super::scope_picker::ScopePicker;
use super::uploads::{AttachButton, UploadState};
use crate::api::get_limits;
use leptos::prelude::*;

/// Used until the server's limit is known.
const DEFAULT_MAX_CHARS: usize = 8_000;

#[component]
pub fn Composer() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let draft = RwSignal::new(String::new());
    let uploads = expect_context::<UploadState>();
    let limits = OnceResource::new(get_limits());
    Effect::new(move |_| {
        if let Some(Ok(limits)) = limits.get() {
            uploads.max_bytes.set(limits.max_upload_bytes);
        }
    });
    let max_chars = move || {
        limits
            .get()
            .and_then(Result::ok)
            .map_or(DEFAULT_MAX_CHARS, |l| l.max_message_chars)
    };
    let length = move || draft.with(|d| d.chars().count());
    let too_long = move || length() > max_chars();
    let blank = move || draft.with(|d| d.trim().is_empty());
    let can_send =
        move || !blank() && !too_long() && !state.busy.get() && state.wait_secs().is_none();

    let submit = move || {
        if can_send() {
            state.send(draft.get_untracked());
            draft.set(String::new());
        }
    };

    view! {
        <form
            class="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <div class="composer-tools">
                <ScopePicker />
            </div>
            <div class="composer-box" class:invalid=too_long>
                <AttachButton />
                <textarea
                    name="message"
                    rows="1"
                    placeholder="Ask anything…"
                    title="Enter sends, Shift+Enter adds a line"
                    aria-label="Message"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            submit();
                        }
                    }
                ></textarea>
                {move || {
                    if state.busy.get() {
                        view! {
                            <button type="button" class="stop" aria-label="Stop generating" on:click=move |_| state.stop()>
                                <span class="stop-square" aria-hidden="true"></span>
                                "Stop"
                            </button>
                        }
                            .into_any()
                    } else {
                        view! {
                            <button type="submit" class="send" aria-label="Send message" disabled=move || !can_send()>
                                "Send"
                            </button>
                        }
                            .into_any()
                    }
                }}
            </div>
            <div class="composer-hint" aria-live="polite">
                {move || {
                    if let Some(secs) = state.wait_secs() {
                        format!("Rate limit reached: you can send again in {secs} s.")
                    } else if too_long() {
                        format!(
                            "Message is too long: {} of {} characters. Shorten it to send.",
                            length(),
                            max_chars(),
                        )
                    } else if length() > max_chars() * 9 / 10 {
                        format!("{} of {} characters", length(), max_chars())
                    } else {
                        String::new()
                    }
                }}
            </div>
        </form>
    }
}
