//! Uploading documents: the files being uploaded and ingested, their progress
//! through the stages, and the tray that shows them above the composer.

use crate::api::list_documents;
use crate::browser;
use crate::error::human_size;
use crate::wire::{DocumentStatus, DocumentView};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::time::Duration;

/// What the file picker and drop zone accept.
pub const ACCEPT: &str = ".pdf,.md,.markdown,.txt,.html,.htm,.docx,.csv";

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub enum UploadStage {
    /// Bytes going up: fraction sent.
    Uploading(f64),
    /// Accepted; the server is working through the stages.
    Processing(DocumentView),
    /// Indexed (or recognised as a duplicate of an earlier upload).
    Done {
        document: DocumentView,
        duplicate: bool,
    },
    Failed(String),
}

impl UploadStage {
    /// Overall progress for the bar: sending is the first 30%.
    pub fn progress(&self) -> f64 {
        match self {
            Self::Uploading(sent) => 0.3 * sent,
            Self::Processing(doc) => 0.3 + 0.7 * doc.progress(),
            Self::Done { .. } | Self::Failed(_) => 1.0,
        }
    }

    /// A stable name for the stage (for styling and tests).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Uploading(_) => "uploading",
            Self::Processing(doc) => doc.status.as_str(),
            Self::Done { .. } => "indexed",
            Self::Failed(_) => "failed",
        }
    }

    pub fn label(&self) -> String {
        match self {
            Self::Uploading(sent) => format!("Uploading… {:.0}%", sent * 100.0),
            Self::Processing(doc) => match doc.status {
                DocumentStatus::Queued => format!("{}…", doc.queue_text()),
                DocumentStatus::Parsing => "Reading the text…".into(),
                DocumentStatus::Chunking => "Splitting into passages…".into(),
                DocumentStatus::Embedding => format!(
                    "Embedding {} of {} passages…",
                    doc.chunks_embedded,
                    doc.chunks.unwrap_or(0)
                ),
                DocumentStatus::Indexed => "Indexed".into(),
                DocumentStatus::Failed => doc.error.clone().unwrap_or_else(|| "Failed".into()),
            },
            Self::Done {
                document,
                duplicate,
            } => {
                let chunks = document.chunks.unwrap_or(0);
                if *duplicate {
                    format!("Already in your documents · {chunks} passages")
                } else if document.version > 1 {
                    format!(
                        "Indexed as version {} · {chunks} passages",
                        document.version
                    )
                } else {
                    format!("Indexed · {chunks} passages")
                }
            }
            Self::Failed(reason) => reason.clone(),
        }
    }
}

/// Where uploaded files go: a collection (`None`: the uploader's own), and
/// the document they are a new version of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    pub collection: Option<String>,
    pub replace: Option<String>,
}

impl Destination {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn collection(collection: Option<String>) -> Self {
        Self {
            collection,
            replace: None,
        }
    }

    /// The upload's text fields, sent before the file.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn fields(&self) -> Vec<(&'static str, String)> {
        [("collection", &self.collection), ("replace", &self.replace)]
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
            .collect()
    }
}

#[derive(Clone)]
pub struct UploadItem {
    pub key: u64,
    pub file_name: String,
    pub size: u64,
    pub stage: RwSignal<UploadStage>,
}

/// Uploads of this page, shared by the composer, the drop zone and the documents page.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Copy)]
pub struct UploadState {
    pub items: RwSignal<Vec<UploadItem>>,
    /// Bumped when the document list may have changed.
    pub documents_version: RwSignal<u32>,
    /// Largest file the server accepts (checked before sending).
    pub max_bytes: RwSignal<u64>,
    next_key: RwSignal<u64>,
    /// Where the rows' signals belong: not to the button that started the
    /// upload (a document row's goes when the list is read again, the
    /// page's when another page opens), so every row keeps its progress.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    owner: StoredValue<Option<Owner>>,
    polling: RwSignal<bool>,
    /// Files waiting to be sent, across every pick and drop of this page.
    #[cfg(feature = "hydrate")]
    queue: StoredValue<std::collections::VecDeque<Queued>, LocalStorage>,
    /// A file is being sent.
    #[cfg(feature = "hydrate")]
    sending: RwSignal<bool>,
}

#[cfg(feature = "hydrate")]
type Queued = (web_sys::File, RwSignal<UploadStage>, Destination);

impl UploadState {
    pub fn new() -> Self {
        Self {
            items: RwSignal::new(Vec::new()),
            documents_version: RwSignal::new(0),
            max_bytes: RwSignal::new(50 * 1024 * 1024),
            next_key: RwSignal::new(0),
            owner: StoredValue::new(Owner::current().map(|owner| owner.child())),
            polling: RwSignal::new(false),
            #[cfg(feature = "hydrate")]
            queue: StoredValue::new_local(Default::default()),
            #[cfg(feature = "hydrate")]
            sending: RwSignal::new(false),
        }
    }

    /// Queues the files for upload; each gets its own row and outcome.
    /// One file at a time for the whole page, even across several picks: a
    /// browser without a session yet would otherwise get a new identity per
    /// parallel request, and keep only the last one's.
    #[cfg(feature = "hydrate")]
    pub fn upload(self, files: Vec<web_sys::File>, destination: Destination) {
        for file in files {
            let key = self.next_key.get_untracked();
            self.next_key.set(key + 1);
            let size = file.size() as u64;
            let item = UploadItem {
                key,
                file_name: file.name(),
                size,
                stage: self.new_stage(),
            };
            self.items.update(|items| items.push(item.clone()));
            let max = self.max_bytes.get_untracked();
            if size > max {
                item.stage.set(UploadStage::Failed(
                    crate::error::AppError::file_too_large(&item.file_name, size, max).to_string(),
                ));
                continue;
            }
            self.queue
                .update_value(|q| q.push_back((file, item.stage, destination.clone())));
        }
        if !self.sending.get_untracked() {
            self.upload_next();
        }
    }

    #[cfg(feature = "hydrate")]
    fn new_stage(&self) -> RwSignal<UploadStage> {
        let make = || RwSignal::new(UploadStage::Uploading(0.0));
        match self.owner.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
        }
    }

    #[cfg(feature = "hydrate")]
    fn upload_next(self) {
        let Some((file, stage, destination)) =
            self.queue.try_update_value(|q| q.pop_front()).flatten()
        else {
            self.sending.set(false);
            return;
        };
        self.sending.set(true);
        browser::upload_file(
            "/api/documents",
            &destination.fields(),
            file,
            move |sent| stage.set(UploadStage::Uploading(sent)),
            move |result| {
                self.uploaded(stage, result);
                self.upload_next();
            },
        );
    }

    #[cfg(feature = "hydrate")]
    fn uploaded(self, stage: RwSignal<UploadStage>, result: Result<(u16, String), String>) {
        let next = match result {
            Err(e) => UploadStage::Failed(e),
            Ok((status, body)) => {
                match serde_json::from_str::<Vec<crate::wire::UploadOutcome>>(&body) {
                    Ok(outcomes) => match outcomes.into_iter().next() {
                        Some(crate::wire::UploadOutcome {
                            document: Some(document),
                            duplicate,
                            ..
                        }) => stage_of(document, duplicate),
                        Some(crate::wire::UploadOutcome {
                            error: Some(error), ..
                        }) => UploadStage::Failed(error),
                        _ => UploadStage::Failed("The server sent an empty answer.".into()),
                    },
                    // Errors about the whole request come as one AppError.
                    Err(_) => match serde_json::from_str::<crate::error::AppError>(&body) {
                        Ok(error) => UploadStage::Failed(error.to_string()),
                        Err(_) => {
                            UploadStage::Failed(format!("The upload failed (HTTP {status})."))
                        }
                    },
                }
            }
        };
        stage.set(next);
        self.documents_version.update(|v| *v += 1);
        self.poll();
    }

    /// While any upload is still being processed, refreshes their stages.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn poll(self) {
        if self.polling.get_untracked() {
            return;
        }
        let pending = self.items.with_untracked(|items| {
            items
                .iter()
                .any(|i| matches!(i.stage.get_untracked(), UploadStage::Processing(_)))
        });
        if !pending {
            return;
        }
        self.polling.set(true);
        // Only rows already processing when the list is requested can be judged
        // by it: an upload answered while the request is in flight is newer
        // than the list and would look deleted.
        let asked_about: Vec<String> = self.items.with_untracked(|items| {
            items
                .iter()
                .filter_map(|i| match i.stage.get_untracked() {
                    UploadStage::Processing(d) => Some(d.id),
                    _ => None,
                })
                .collect()
        });
        spawn_local(async move {
            if let Ok(documents) = list_documents().await {
                let mut finished = false;
                self.items.with_untracked(|items| {
                    for item in items {
                        let UploadStage::Processing(current) = item.stage.get_untracked() else {
                            continue;
                        };
                        if !asked_about.contains(&current.id) {
                            continue;
                        }
                        let Some(latest) = documents.iter().find(|d| d.id == current.id) else {
                            item.stage
                                .set(UploadStage::Failed("The document was deleted.".into()));
                            finished = true;
                            continue;
                        };
                        let next = stage_of(latest.clone(), false);
                        finished |= !matches!(next, UploadStage::Processing(_));
                        if next != item.stage.get_untracked() {
                            item.stage.set(next);
                        }
                    }
                });
                if finished {
                    self.documents_version.update(|v| *v += 1);
                }
            }
            self.polling.set(false);
            set_timeout(move || self.poll(), Duration::from_millis(500));
        });
    }

    /// Removes finished rows from the tray.
    pub fn clear_finished(&self) {
        self.items.update(|items| {
            items.retain(|i| {
                matches!(
                    i.stage.get_untracked(),
                    UploadStage::Uploading(_) | UploadStage::Processing(_)
                )
            })
        });
    }
}

impl Default for UploadState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn stage_of(document: DocumentView, duplicate: bool) -> UploadStage {
    match document.status {
        DocumentStatus::Indexed => UploadStage::Done {
            document,
            duplicate,
        },
        DocumentStatus::Failed => UploadStage::Failed(
            document
                .error
                .clone()
                .unwrap_or_else(|| format!("{} could not be processed.", document.name)),
        ),
        _ => UploadStage::Processing(document),
    }
}

/// A file picker button; files go to `collection` (default: the user's own).
#[component]
pub fn AttachButton(
    #[prop(optional)] with_text: bool,
    #[prop(optional, into)] collection: Option<Signal<Option<String>>>,
) -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let input = NodeRef::<leptos::html::Input>::new();
    view! {
        <button
            type="button"
            class="attach"
            class:with-text=with_text
            aria-label="Upload documents"
            title="Upload documents (PDF, Word, Markdown, HTML, text, CSV)"
            on:click=move |_| {
                if let Some(input) = input.get() {
                    input.click();
                }
            }
        >
            <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">
                <path d="M21 12.5l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l9.2-9.2a3.7 3.7 0 0 1 5.2 5.2l-9.2 9.2a1.8 1.8 0 0 1-2.6-2.6l8.5-8.5"></path>
            </svg>
            {with_text.then_some(" Upload files")}
        </button>
        <input
            type="file"
            class="file-input"
            multiple
            accept=ACCEPT
            node_ref=input
            hidden
            on:change=move |ev| {
                let _ = &ev;
                #[cfg(feature = "hydrate")]
                {
                    let files = browser::input_files(&ev);
                    let target = collection.and_then(|c| c.get_untracked());
                    uploads.upload(files, Destination::collection(target));
                }
                #[cfg(not(feature = "hydrate"))]
                let _ = (uploads, collection);
            }
        />
    }
}

/// The uploads of this page and where each one is.
#[component]
pub fn UploadTray() -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let any_finished = move || {
        uploads.items.with(|items| {
            items.iter().any(|i| {
                matches!(
                    i.stage.get(),
                    UploadStage::Done { .. } | UploadStage::Failed(_)
                )
            })
        })
    };
    view! {
        <Show when=move || uploads.items.with(|i| !i.is_empty())>
            <section class="upload-tray" aria-label="Uploads" aria-live="polite">
                <ul>
                    <For each=move || uploads.items.get() key=|i| i.key let:item>
                        <UploadRow item />
                    </For>
                </ul>
                <Show when=any_finished>
                    <button type="button" class="link-button" on:click=move |_| uploads.clear_finished()>
                        "Clear finished"
                    </button>
                </Show>
            </section>
        </Show>
    }
}

#[component]
fn UploadRow(item: UploadItem) -> impl IntoView {
    let stage = item.stage;
    view! {
        <li
            class="upload"
            data-stage=move || stage.with(UploadStage::name)
            class:failed=move || matches!(stage.get(), UploadStage::Failed(_))
            class:done=move || matches!(stage.get(), UploadStage::Done { .. })
        >
            <div class="upload-head">
                <span class="upload-name" title=item.file_name.clone()>{item.file_name.clone()}</span>
                <span class="upload-size muted">{human_size(item.size)}</span>
            </div>
            <div
                class="progress"
                role="progressbar"
                aria-label=format!("Progress of {}", item.file_name)
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=move || format!("{:.0}", stage.with(UploadStage::progress) * 100.0)
            >
                <div class="progress-fill" style:width=move || format!("{:.1}%", stage.with(UploadStage::progress) * 100.0)></div>
            </div>
            <div class="upload-stage" role=move || matches!(stage.get(), UploadStage::Failed(_)).then_some("alert")>
                {move || stage.with(UploadStage::label)}
            </div>
        </li>
    }
}

/// Lets files be dropped anywhere on `children` (into `collection`, default
/// the user's own); shows a hint while dragging.
#[component]
pub fn DropZone(
    children: Children,
    #[prop(optional, into)] collection: Option<Signal<Option<String>>>,
) -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let dragging = RwSignal::new(0i32);
    view! {
        <div
            class="drop-zone"
            class:dragging=move || { dragging.get() > 0 }
            on:dragenter=move |ev: leptos::ev::DragEvent| {
                if browser::drag_has_files(&ev) {
                    ev.prevent_default();
                    dragging.update(|d| *d += 1);
                }
            }
            on:dragover=move |ev: leptos::ev::DragEvent| {
                if browser::drag_has_files(&ev) {
                    ev.prevent_default();
                }
            }
            on:dragleave=move |_| dragging.update(|d| *d = (*d - 1).max(0))
            on:drop=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                dragging.set(0);
                #[cfg(feature = "hydrate")]
                uploads.upload(
                    browser::dropped_files(&ev),
                    Destination::collection(collection.and_then(|c| c.get_untracked())),
                );
                #[cfg(not(feature = "hydrate"))]
                let _ = (uploads, collection);
            }
        >
            {children()}
            <div class="drop-hint" aria-hidden="true">
                <div>"Drop files to add them to your documents"</div>
                <div class="muted">"PDF, Word, Markdown, HTML, text or CSV"</div>
            </div>
        </div>
    }
}
