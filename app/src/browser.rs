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

/// Loads `path` as a new page, so everything is rendered for the new session
/// (after signing in or out).
pub fn load_page(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().assign(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// Milliseconds since the epoch (0 on the server, where nothing counts down).
pub fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now();
    #[cfg(not(feature = "hydrate"))]
    0.0
}

/// This site's origin (`http://host:port`), for examples shown to the user
/// (a placeholder on the server, replaced when the page hydrates).
pub fn origin() -> String {
    #[cfg(feature = "hydrate")]
    if let Some(origin) = web_sys::window().and_then(|w| w.location().origin().ok()) {
        return origin;
    }
    "http://127.0.0.1:3000".to_owned()
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

/// Sends one file as `multipart/form-data` (text `fields` first, then the
/// file as field `file`) with progress reports; `fetch` can't report upload
/// progress, XMLHttpRequest can.
#[cfg(feature = "hydrate")]
pub fn upload_file(
    url: &str,
    fields: &[(&str, String)],
    file: web_sys::File,
    on_progress: impl Fn(f64) + 'static,
    on_done: impl FnOnce(Result<(u16, String), String>) + 'static,
) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    let start = || -> Result<web_sys::XmlHttpRequest, wasm_bindgen::JsValue> {
        let xhr = web_sys::XmlHttpRequest::new()?;
        xhr.open("POST", url)?;
        Ok(xhr)
    };
    let Ok(xhr) = start() else {
        on_done(Err("The browser could not start the upload.".into()));
        return;
    };
    type Done = Box<dyn FnOnce(Result<(u16, String), String>)>;
    let on_done: Rc<RefCell<Option<Done>>> = Rc::new(RefCell::new(Some(Box::new(on_done))));
    let finish = {
        let on_done = on_done.clone();
        move |result| {
            if let Some(done) = on_done.borrow_mut().take() {
                done(result);
            }
        }
    };
    let progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
            if ev.length_computable() && ev.total() > 0.0 {
                on_progress(ev.loaded() / ev.total());
            }
        });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    progress.forget();
    let loaded = {
        let xhr = xhr.clone();
        let finish = finish.clone();
        Closure::<dyn FnMut()>::new(move || {
            let status = xhr.status().unwrap_or(0);
            let body = xhr.response_text().ok().flatten().unwrap_or_default();
            finish(Ok((status, body)));
        })
    };
    xhr.set_onload(Some(loaded.as_ref().unchecked_ref()));
    loaded.forget();
    let failed = Closure::<dyn FnMut()>::new(move || {
        finish(Err(
            "The upload failed: the connection to the server broke.".into(),
        ));
    });
    xhr.set_onerror(Some(failed.as_ref().unchecked_ref()));
    xhr.set_onabort(Some(failed.as_ref().unchecked_ref()));
    failed.forget();

    let name = file.name();
    let sent = web_sys::FormData::new()
        .and_then(|form| {
            for (field, value) in fields {
                form.append_with_str(field, value)?;
            }
            form.append_with_blob_and_filename("file", &file, &name)?;
            Ok(form)
        })
        .and_then(|form| xhr.send_with_opt_form_data(Some(&form)));
    if sent.is_err() {
        if let Some(done) = on_done.borrow_mut().take() {
            done(Err("The browser could not send the file.".into()));
        }
    }
}

/// The files chosen in an `<input type=file>` (which is then reset, so the
/// same file can be chosen again).
#[cfg(feature = "hydrate")]
pub fn input_files(event: &leptos::ev::Event) -> Vec<web_sys::File> {
    use wasm_bindgen::JsCast;
    let Some(input) = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return Vec::new();
    };
    let files = file_list(input.files());
    input.set_value("");
    files
}

#[cfg(feature = "hydrate")]
fn file_list(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

#[cfg(feature = "hydrate")]
pub fn dropped_files(event: &leptos::ev::DragEvent) -> Vec<web_sys::File> {
    file_list(event.data_transfer().and_then(|d| d.files()))
}

/// Whether a drag carries files (not text or a link being dragged around).
pub fn drag_has_files(event: &leptos::ev::DragEvent) -> bool {
    #[cfg(feature = "hydrate")]
    {
        event.data_transfer().is_some_and(|d| {
            let types = d.types();
            (0..types.length()).any(|i| types.get(i).as_string().as_deref() == Some("Files"))
        })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = event;
        false
    }
}
