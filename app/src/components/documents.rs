//! The Documents view: the user's documents, their status, and delete.

use super::uploads::{AttachButton, DropZone, UploadState, UploadTray};
use crate::api::{delete_document, list_documents};
use crate::error::human_size;
use crate::wire::{DocumentStatus, DocumentView};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use std::time::Duration;

#[component]
pub fn DocumentsPage() -> impl IntoView {
    let uploads = expect_context::<UploadState>();
    let documents = Resource::new(
        move || uploads.documents_version.get(),
        |_| list_documents(),
    );
    let error = RwSignal::new(None::<String>);

    // While anything is still being processed, refresh the list.
    Effect::new(move |_| {
        let pending = documents
            .get()
            .and_then(Result::ok)
            .is_some_and(|docs| docs.iter().any(|d| d.status.is_pending()));
        if pending {
            set_timeout(
                move || uploads.documents_version.update(|v| *v += 1),
                Duration::from_millis(1000),
            );
        }
    });

    let delete = move |doc: DocumentView| {
        spawn_local(async move {
            match delete_document(doc.id.clone()).await {
                Ok(()) => {
                    error.set(None);
                    uploads.documents_version.update(|v| *v += 1);
                }
                Err(e) => error.set(Some(format!("Could not delete {}: {e}", doc.name))),
            }
        });
    };

    view! {
        <Title text="Documents · RAG Chat" />
        <DropZone>
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
                        <AttachButton with_text=true />
                    </header>
                    <UploadTray />
                    {move || error.get().map(|e| view! { <div class="error-box" role="alert"><span>{e}</span></div> })}
                    <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                        {move || Suspend::new(async move {
                            match documents.await {
                                Ok(docs) if docs.is_empty() => {
                                    view! { <p class="empty-documents muted">"No documents yet. Upload some to ask questions about them."</p> }
                                        .into_any()
                                }
                                Ok(docs) => view! { <DocumentTable docs delete /> }.into_any(),
                                Err(e) => view! { <div class="error-box" role="alert"><span>{e.to_string()}</span></div> }.into_any(),
                            }
                        })}
                    </Transition>
                </div>
            </div>
        </DropZone>
    }
}

fn status_text(doc: &DocumentView) -> String {
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

/// A date as YYYY-MM-DD (UTC).
pub fn format_date(ms: i64) -> String {
    // Rendered the same on server and client (UTC), so hydration agrees.
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[component]
fn DocumentTable(
    docs: Vec<DocumentView>,
    delete: impl Fn(DocumentView) + Copy + Send + Sync + 'static,
) -> impl IntoView {
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
                {docs
                    .into_iter()
                    .map(|doc| {
                        let status = doc.status.as_str();
                        let doc_for_delete = doc.clone();
                        view! {
                            <tr class="document" data-status=status>
                                <td class="name">
                                    <span class="kind">{doc.kind.to_uppercase()}</span>
                                    <span title=doc.name.clone()>{doc.name.clone()}</span>
                                    {doc.error.clone().map(|e| view! { <div class="doc-error" role="note">{e}</div> })}
                                </td>
                                <td class="num">{human_size(doc.size_bytes)}</td>
                                <td class="num">{doc.pages.map(|p| p.to_string()).unwrap_or_else(|| "—".into())}</td>
                                <td class="num">{doc.chunks.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                                <td>
                                    <span class=format!("status-pill {status}")>{status_text(&doc)}</span>
                                </td>
                                <td class="muted">{format_date(doc.created_at_ms)}</td>
                                <td>
                                    <button
                                        type="button"
                                        class="icon-button delete"
                                        aria-label=format!("Delete {}", doc.name)
                                        title="Delete"
                                        on:click=move |_| delete(doc_for_delete.clone())
                                    >
                                        <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2">
                                            <path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3"></path>
                                        </svg>
                                    </button>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
