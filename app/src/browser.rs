//! Small browser-only helpers; no-ops when rendering on the server.

/// Changes the address bar without a router navigation (the page already
/// shows what the new address names).
pub fn replace_url(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// Copies text to the clipboard (best effort: the browser may refuse).
pub fn copy_text(text: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

/// Handles a click on a code block's "Copy" button inside rendered markdown
/// (the buttons are plain HTML, so the click is delegated to the container).
pub fn handle_copy_code_click(event: &leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(target) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let Ok(Some(button)) = target.closest(".copy-code") else {
            return;
        };
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let Some(code) = code {
            copy_text(&code);
            button.set_text_content(Some("Copied"));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = event;
}

/// Keeps a scrollable element pinned to the bottom while content streams in,
/// unless the reader has scrolled up.
pub fn stick_to_bottom(element: &leptos::web_sys::HtmlElement) {
    let distance = element.scroll_height() - element.scroll_top() - element.client_height();
    if distance < 120 {
        element.set_scroll_top(element.scroll_height());
    }
}
