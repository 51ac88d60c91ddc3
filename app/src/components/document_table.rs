//! The table of documents: each with its collection, status and version;
//! its earlier versions on demand; Replace and Delete for those who may
//! change its collection.

use super::uploads::{Destination, UploadState, ACCEPT};
use crate::api::{delete_document, document_versions};
use crate::dates::format_date;
use crate::error::human_size;
use crate::wire::{DocumentStatus, DocumentView};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Columns of the table (for the versions row that spans them).
const COLUMNS: &str = "7";

pub fn status_text(doc: &DocumentView) -> String {
    match doc.status {
        DocumentStatus::Queued => doc.queue_text(),
        DocumentStatus::Parsing => "Reading".into(),
        DocumentStatus::Chunking => "Splitting".into(),
        DocumentStatus::Embedding => format!(
            "Embedding {}/{}",
            doc.chunks_embedded,
            doc.chunks.unwrap_or(0)
        ),
        DocumentStatus::Indexed => "Indexed".into(),
        DocumentStatus::Failed => "Failed".into(),
    }
}

/// `open`: the document whose versions are shown (kept by the page, so it
/// stays open while the list is read again).
#[component]
pub fn DocumentTable(docs: Vec<DocumentView>, open: RwSignal<Option<String>>) -> impl IntoView {
    view! {
        <table class="documents">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col" class="num">"Size"</th>
                    <th scope="col" class="num">"Pages"</th>
                    <th scope="col" class="num">"Passages"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Added"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {docs.into_iter().map(|doc| view! { <DocumentRow doc open /> }).collect_view()}
            </tbody>
        </table>
    }
}

/// One document, and (opened) the row with its versions under it.
#[component]
fn DocumentRow(doc: DocumentView, open: RwSignal<Option<String>>) -> impl IntoView {
    let status = doc.status.as_str();
    let versions_id = format!("versions-{}", doc.id);
    let name = doc.name.clone();
    let id = doc.id.clone();
    let shown = {
        let id = id.clone();
        move || open.with(|o| o.as_deref() == Some(id.as_str()))
    };
    let toggle = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            open.update(|o| {
                *o = if o.as_deref() == Some(id.as_str()) {
                    None
                } else {
                    Some(id)
                }
            });
        }
    };
    view! {
        <tr
            class="document"
            class:linked=shown.clone()
            id=format!("document-{id}")
            data-status=status
            data-name=doc.name.clone()
        >
            <td class="name">
                <span class="kind">{doc.kind.to_uppercase()}</span>
                <span title=doc.name.clone()>{doc.name.clone()}</span>
                {(doc.version > 1)
                    .then(|| {
                        view! {
                            <span class="version-badge" title=format!("Version {}", doc.version)>
                                {format!("v{}", doc.version)}
                            </span>
                        }
                    })}
                <div class="doc-collection muted" title="Collection">{doc.collection_name.clone()}</div>
                {doc.error.clone().map(|e| view! { <div class="doc-error" role="note">{e}</div> })}
            </td>
            <td class="num">{human_size(doc.size_bytes)}</td>
            <td class="num">{doc.pages.map(|p| p.to_string()).unwrap_or_else(|| "—".into())}</td>
            <td class="num">{doc.chunks.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
            <td>
                <span class=format!("status-pill {status}")>{status_text(&doc)}</span>
            </td>
            <td class="muted">{format_date(doc.created_at_ms)}</td>
            <td class="actions">
                <button
                    type="button"
                    class="icon-button"
                    aria-label=format!("Versions of {}", doc.name)
                    title="Versions"
                    aria-expanded={
                        let shown = shown.clone();
                        move || shown().to_string()
                    }
                    aria-controls=versions_id
                    on:click=toggle
                >
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                        <path d="M3 12a9 9 0 1 0 3-6.7 M3 4v5h5 M12 8v4l3 2"></path>
                    </svg>
                </button>
                {doc.can_write.then(|| view! { <ChangeButtons doc=doc.clone() /> })}
            </td>
        </tr>
        <Show when=shown>
            <tr class="versions-row" id=format!("versions-{id}")>
                <td colspan=COLUMNS>
                    <VersionList id=id.clone() name=name.clone() />
                </td>
            </tr>
        </Show>
    }
}

/// Replace (a new version from a file) and Delete (asked first).
#[component]
fn ChangeButtons(doc: DocumentView) -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let input = NodeRef::<leptos::html::Input>::new();
    let confirming = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let DocumentView {
        id,
        name,
        collection_id,
        ..
    } = doc;
    let delete = {
        let (id, name) = (id.clone(), name.clone());
        move || {
            let (id, name) = (id.clone(), name.clone());
            spawn_local(async move {
                match delete_document(id).await {
                    Ok(()) => uploads.documents_version.update(|v| *v += 1),
                    Err(e) => problem.set(Some(format!("Could not delete {name}: {e}"))),
                }
            });
        }
    };
    let replace_with = move |ev: leptos::ev::Event| {
        let destination = Destination {
            collection: Some(collection_id.clone()),
            replace: Some(id.clone()),
        };
        #[cfg(feature = "hydrate")]
        uploads.upload(crate::browser::input_files(&ev), destination);
        #[cfg(not(feature = "hydrate"))]
        let _ = (&ev, destination);
    };
    view! {
        <button
            type="button"
            class="icon-button"
            aria-label=format!("Replace {name}")
            title="Replace with a new version"
            on:click=move |_| {
                if let Some(input) = input.get() {
                    input.click();
                }
            }
        >
            <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                <path d="M12 16V4 M7 9l5-5 5 5 M5 20h14"></path>
            </svg>
        </button>
        <input type="file" class="replace-input" accept=ACCEPT node_ref=input hidden on:change=replace_with />
        <Show
            when=move || confirming.get()
            fallback={
                let name = name.clone();
                move || view! {
                    <button
                        type="button"
                        class="icon-button delete"
                        aria-label=format!("Delete {name}")
                        title="Delete"
                        on:click=move |_| confirming.set(true)
                    >
                        <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                            <path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3"></path>
                        </svg>
                    </button>
                }
            }
        >
            <span class="confirm inline-confirm" role="group" aria-label="Confirm delete">
                <button type="button" class="danger" on:click={
                    let delete = delete.clone();
                    move |_| delete()
                }>"Delete"</button>
                <button type="button" class="link-button" on:click=move |_| confirming.set(false)>"Cancel"</button>
            </span>
        </Show>
        {move || problem.get().map(|p| view! { <div class="doc-error" role="alert">{p}</div> })}
    }
}

/// Every version of a document, newest first.
#[component]
fn VersionList(id: String, name: String) -> impl IntoView {
    let versions = LocalResource::new(move || document_versions(id.clone()));
    let label = format!("Versions of {name}");
    view! {
        <div class="version-list" role="group" aria-label=label>
            {move || match versions.get() {
                None => view! { <p class="muted small">"Loading versions…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="doc-error" role="alert">{e.to_string()}</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <ol>
                        {list.into_iter().map(version_item).collect_view()}
                    </ol>
                }
                .into_any(),
            }}
        </div>
    }
}

fn version_item(doc: DocumentView) -> impl IntoView {
    let status = doc.status.as_str();
    let made_by = match (&doc.embedder, &doc.chunker) {
        (Some(embedder), Some(chunker)) => format!("{embedder} · {chunker}"),
        (Some(embedder), None) => embedder.clone(),
        (None, Some(chunker)) => chunker.clone(),
        (None, None) => "—".into(),
    };
    view! {
        <li class="version" class:superseded=doc.superseded>
            <span class="version-badge">{format!("v{}", doc.version.max(1))}</span>
            <span>{format_date(doc.created_at_ms)}</span>
            <span class=format!("status-pill {status}")>{status_text(&doc)}</span>
            <span class="muted small embedder" title="Embedding model and chunking">{made_by}</span>
            {(!doc.superseded).then(|| view! { <span class="current small">"current"</span> })}
        </li>
    }
}
