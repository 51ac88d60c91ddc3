//! The Documents view: the collections the user can read, uploading into
//! one of them, and the documents with their versions.

use super::collections::CollectionsPanel;
use super::document_table::DocumentTable;
use super::uploads::{AttachButton, DropZone, UploadState, UploadTray};
use crate::api::{get_session, list_collections, list_documents};
use crate::error::human_size;
use crate::wire::{CollectionAccess, CollectionView, DocumentView, UserRole};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use std::time::Duration;

pub use crate::dates::format_date;

/// How many documents each collection holds, as the document list says:
/// when it changes, the collections' counts are read again.
fn counts_by_collection(docs: &[DocumentView]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for doc in docs {
        match counts.iter_mut().find(|(id, _)| *id == doc.collection_id) {
            Some((_, n)) => *n += 1,
            None => counts.push((doc.collection_id.clone(), 1)),
        }
    }
    counts.sort();
    counts
}

#[component]
pub fn DocumentsPage() -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let documents = Resource::new(
        move || uploads.documents_version.get(),
        |_| list_documents(),
    );
    // Read again after a change to a collection (not on every poll of the
    // documents: that would reset the forms in the panel).
    let collections_version = RwSignal::new(0u32);
    let collections = Resource::new(move || collections_version.get(), |_| list_collections());
    let session = OnceResource::new(get_session());
    let is_admin = Signal::derive(move || {
        session
            .get()
            .and_then(Result::ok)
            .and_then(|s| s.account)
            .is_some_and(|a| a.role == UserRole::Admin)
    });
    // Where new uploads go (`None`: the user's own collection).
    let target = RwSignal::new(None::<String>);

    // While anything is still being processed, refresh the list; when what
    // is in which collection changes, refresh the collections' counts.
    let counted = StoredValue::new(None::<Vec<(String, usize)>>);
    Effect::new(move |_| {
        let Some(Ok(docs)) = documents.get() else {
            return;
        };
        let counts = Some(counts_by_collection(&docs));
        if counted.get_value().is_some() && counted.get_value() != counts {
            collections_version.update(|v| *v += 1);
        }
        counted.set_value(counts);
        if docs.iter().any(|d| d.status.is_pending()) {
            set_timeout(
                move || uploads.documents_version.update(|v| *v += 1),
                Duration::from_millis(1000),
            );
        }
    });

    view! {
        <Title text="Documents · RAG Chat" />
        <DropZone collection=target>
            <div class="documents-page">
                <div class="column">
                    <header class="page-head">
                        <div>
                            <h1>"Documents"</h1>
                            <p class="muted">
                                "Answers are grounded in these files. PDF, Word (.docx), Markdown, HTML, text and CSV; up to "
                                {move || human_size(uploads.max_bytes.get())}
                                " each. Drop files anywhere on this page."
                            </p>
                        </div>
                        <div class="upload-control">
                            <Transition fallback=|| ()>
                                {move || Suspend::new(async move {
                                    collections
                                        .await
                                        .ok()
                                        .map(|list| view! { <UploadDestination collections=list.collections target /> })
                                })}
                            </Transition>
                            <AttachButton with_text=true collection=target />
                        </div>
                    </header>
                    <UploadTray />
                    <CollectionsPanel collections version=collections_version is_admin target />
                    <DocumentList documents />
                </div>
            </div>
        </DropZone>
    }
}

/// "Upload to: [My documents ▾]": the collections the user may add to.
#[component]
fn UploadDestination(
    collections: Vec<CollectionView>,
    target: RwSignal<Option<String>>,
) -> impl IntoView {
    let writable: Vec<CollectionView> = collections
        .into_iter()
        .filter(|c| c.access >= CollectionAccess::Write)
        .collect();
    // The user's own collection is where uploads go unless another is chosen.
    let own = writable
        .iter()
        .find(|c| c.private)
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let chosen = move || target.get().unwrap_or_else(|| own.clone());
    view! {
        <label class="upload-destination">
            <span>"Upload to"</span>
            <select
                name="collection"
                prop:value=chosen
                on:change=move |ev| target.set(Some(event_target_value(&ev)))
            >
                {writable
                    .into_iter()
                    .map(|c| {
                        let selected = chosen() == c.id;
                        view! { <option value=c.id.clone() selected=selected>{c.name}</option> }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

/// The documents the user can read, in every collection.
#[component]
fn DocumentList(
    documents: Resource<Result<Vec<DocumentView>, crate::error::AppError>>,
) -> impl IntoView {
    // `?document=<id>` (a link from the dashboard's weak sources): that
    // document's row opens with its versions, highlighted.
    let linked = use_query_map().with_untracked(|q| q.get("document"));
    let open = RwSignal::new(linked);
    view! {
        <section class="documents-section" aria-labelledby="files-heading">
            <h2 id="files-heading">"Files"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match documents.await {
                        Ok(docs) if docs.is_empty() => {
                            view! { <p class="empty-documents muted">"No documents yet. Upload some to ask questions about them."</p> }
                                .into_any()
                        }
                        Ok(docs) => view! { <DocumentTable docs open /> }.into_any(),
                        Err(e) => view! { <div class="error-box" role="alert"><span>{e.to_string()}</span></div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
