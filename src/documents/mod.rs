//! The document service: accepts uploads, runs ingestion (parse → chunk →
//! embed → index) one document at a time in the background, and keeps SQLite
//! and the vector index consistent across deletes, failures and crashes.
//!
//! Invariant: a document's row exists before any of its vectors and is removed
//! only after them, so on restart every vector can be accounted for.
//!
//! The stages: uploaded bytes → plain text with structure ([`parse()`], run
//! in a resource-capped child process: [`sandbox`]) → token-bounded chunks
//! for embedding ([`chunk_document`]) → the vector index.
//!
//! Typical use of the first two, inside `spawn_blocking` since both are
//! CPU-bound:
//!
//! ```ignore
//! let format = Format::detect(&file_name, &bytes)?;
//! let doc = parse(format, &bytes, &ParseLimits::default())?;
//! let chunks = chunk_document(&doc, &tokenizer, &ChunkConfig::default())?;
//! ```

pub mod chunk;
pub mod parse;
pub mod sandbox;

pub use chunk::{chunk_document, Chunk, ChunkConfig, ChunkError};
pub use parse::{parse, Format, LimitKind, ParseError, ParseLimits, ParsedDocument, Section};

use crate::config::DocumentSettings;
use crate::embed::{Embedder, TokenSpans};
use crate::index::{bm25, point_id, ChunkPayload, ChunkPoint, VectorIndex};
use crate::store::{now_ms, DocumentRow, NewDocument, Store, StoreError};
use app::error::AppError;
use app::ports::{Caller, DocumentService, UsageLimits, UserId};
use app::wire::{DocumentStatus, DocumentView};
use sandbox::{Sandbox, SandboxLimits};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Point ids are derived from (document, chunk), so re-running an interrupted
/// ingestion overwrites rather than duplicates.
/// With a shared database, a document in ingestion untouched this long was
/// left by a replica that stopped (a working one moves it every batch).
const INGESTION_ABANDONED_AFTER_MS: i64 = 10 * 60 * 1000;

/// Queued documents looked at per claim (replicas skip each other's uploads).
const CLAIM_WINDOW: i64 = 100;

/// How often one document's ingestion may be cut short by the server
/// stopping before it is failed rather than started again: a file that
/// kills the server must not do so on every start.
const MAX_INTERRUPTIONS: u32 = 3;

pub struct DocumentServiceImpl {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    index: Arc<dyn VectorIndex>,
    embedder: Arc<dyn Embedder>,
    tokens: Arc<dyn TokenSpans>,
    settings: DocumentSettings,
    sandbox: Sandbox,
    uploads: PathBuf,
    wake: Notify,
    /// The document the worker is ingesting, and how to stop it.
    running: Mutex<Option<(String, CancellationToken)>>,
    /// Upload quotas, checked and charged one upload at a time.
    limits: Arc<dyn UsageLimits>,
    admitting: Mutex<()>,
}

/// Why one document's ingestion ended early.
enum Stop {
    /// Deleted by its owner while being ingested.
    Deleted,
    /// A reason to show the user.
    Failed(String),
}

impl DocumentServiceImpl {
    /// Finishes what an earlier run left undone, then starts the ingestion worker.
    pub async fn start(
        store: Store,
        index: Arc<dyn VectorIndex>,
        embedder: Arc<dyn Embedder>,
        tokens: Arc<dyn TokenSpans>,
        limits: Arc<dyn UsageLimits>,
        settings: DocumentSettings,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let uploads = data_dir.join("uploads");
        tokio::fs::create_dir_all(&uploads).await?;
        let sandbox = Sandbox::new(
            settings.parser_program.clone(),
            SandboxLimits {
                memory_mib: settings.parse_memory_mib,
                timeout_secs: settings.parse_timeout_secs,
            },
        )?;
        let inner = Arc::new(Inner {
            store,
            index,
            embedder,
            tokens,
            settings,
            sandbox,
            uploads,
            wake: Notify::new(),
            running: Mutex::new(None),
            limits,
            admitting: Mutex::new(()),
        });
        inner.recover().await?;
        tokio::spawn(inner.clone().work());
        // Upload records only matter for today's quotas.
        let store = inner.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                if let Err(e) = store.prune_upload_log().await {
                    tracing::warn!(error = %e, "pruning the upload log");
                }
            }
        });
        Ok(Self { inner })
    }

    /// The vector index (tests count vectors through it).
    pub fn index(&self) -> Arc<dyn VectorIndex> {
        self.inner.index.clone()
    }
}

/// A file name safe to show and store: no directories, no control characters.
fn clean_name(file_name: &str) -> String {
    let base = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let base = base.trim();
    if base.is_empty() {
        "untitled".into()
    } else {
        base.chars().take(200).collect()
    }
}

fn kind_of(format: Format) -> &'static str {
    match format {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Html => "html",
        Format::Pdf => "pdf",
        Format::Docx => "docx",
        Format::Csv => "csv",
    }
}

fn format_of(kind: &str) -> Option<Format> {
    Some(match kind {
        "txt" => Format::Text,
        "md" => Format::Markdown,
        "html" => Format::Html,
        "pdf" => Format::Pdf,
        "docx" => Format::Docx,
        "csv" => Format::Csv,
        _ => return None,
    })
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", (bytes as f64 / 1024.0).ceil())
    }
}

/// What gets embedded and indexed for a chunk: its heading path gives a
/// passage deep in a long document the context its text alone lacks.
pub fn indexed_text(chunk: &Chunk) -> String {
    let mut path: &[String] = &chunk.heading_path;
    // A section's first chunk already starts with its own heading.
    if let Some((last, parents)) = path.split_last() {
        if chunk.text.trim_start().starts_with(last.as_str()) {
            path = parents;
        }
    }
    if path.is_empty() {
        chunk.text.clone()
    } else {
        format!("{}\n{}", path.join(" › "), chunk.text)
    }
}

#[async_trait::async_trait]
impl DocumentService for DocumentServiceImpl {
    async fn upload(
        &self,
        caller: &Caller,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<(DocumentView, bool), AppError> {
        let inner = &self.inner;
        let user = caller.user.as_ref().ok_or(AppError::Internal)?;
        let name = clean_name(file_name);
        if bytes.is_empty() {
            return Err(AppError::BadRequest(format!("{name} is empty.")));
        }
        let size = bytes.len() as u64;
        if size > inner.settings.max_file_bytes {
            return Err(AppError::TooLarge(format!(
                "{name} is too large: {} (the limit is {}).",
                human_size(size),
                human_size(inner.settings.max_file_bytes)
            )));
        }
        let format = match Format::detect(&name, &bytes) {
            Ok(format) => format,
            Err(e) => return Err(AppError::Unsupported(format!("{name}: {e}"))),
        };
        let id = Uuid::new_v4().to_string();
        let hash = crate::hex(&Sha256::digest(&bytes));
        // The bytes are on disk before the row exists, so a queued row always
        // has its file; a crash in between leaves only a file, swept on start.
        let path = inner.upload_path(&id);
        let partial = path.with_extension("part");
        let written = async {
            tokio::fs::write(&partial, &bytes).await?;
            tokio::fs::rename(&partial, &path).await
        }
        .await;
        drop(bytes);
        if let Err(e) = written {
            tracing::error!(error = %e, "saving an upload");
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(AppError::Internal);
        }
        // The quota check and the insert are one step in this process, so
        // parallel uploads can't all pass the check before any of them
        // counts. (Replicas sharing a database may each let one through.)
        let admitted = async {
            let _admitting = inner.admitting.lock().await;
            if !inner.store.has_live_document(&user.0, &hash).await? {
                inner.limits.admit_upload(caller, size).await?;
            }
            Ok::<_, AppError>(
                inner
                    .store
                    .insert_document(&NewDocument {
                        id: id.clone(),
                        user_id: user.0.clone(),
                        name,
                        kind: kind_of(format).into(),
                        size_bytes: size,
                        content_hash: hash,
                    })
                    .await?,
            )
        }
        .await;
        let (id, duplicate) = match admitted {
            Ok(Ok(())) => (id, false),
            Ok(Err(existing)) => {
                let _ = tokio::fs::remove_file(&path).await;
                (existing, true)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        if !duplicate {
            inner.wake.notify_one();
        }
        let view = inner
            .store
            .owned_document(&user.0, &id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok((view, duplicate))
    }

    async fn list(&self, user: &UserId) -> Result<Vec<DocumentView>, AppError> {
        Ok(self.inner.store.list_documents(&user.0).await?)
    }

    async fn get(&self, user: &UserId, id: &str) -> Result<DocumentView, AppError> {
        self.inner
            .store
            .owned_document(&user.0, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    async fn delete(&self, user: &UserId, id: &str) -> Result<(), AppError> {
        let inner = &self.inner;
        {
            // Under the lock, the worker can't pick this document up between
            // the check and the mark.
            let running = inner.running.lock().await;
            if !inner.store.mark_deleting(&user.0, id).await? {
                return Err(AppError::NotFound);
            }
            if let Some((running_id, cancel)) = running.as_ref() {
                if running_id == id {
                    // The worker removes what it wrote, then the row.
                    cancel.cancel();
                    return Ok(());
                }
            }
        }
        inner.remove(id).await.map_err(|e| {
            tracing::error!(error = %e, document_id = id, "deleting a document");
            AppError::Internal
        })
    }
}

impl Inner {
    fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads.join(id)
    }

    /// Removes a document's vectors, then its file and row. If the index
    /// fails, the row stays "deleting" and the next start finishes the job.
    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let owner = self.owner_of(id).await?;
        if let Some(owner) = owner {
            self.index.delete_document(&owner, id).await?;
        }
        let _ = tokio::fs::remove_file(self.upload_path(id)).await;
        self.store.remove_document(id).await?;
        Ok(())
    }

    async fn owner_of(&self, id: &str) -> anyhow::Result<Option<String>> {
        Ok(self.store.document_owner(id).await?)
    }

    /// After a crash or kill: finish deletions, and restart interrupted
    /// ingestions from scratch (their partial vectors are removed first).
    /// With a shared database, other replicas' work in progress is left
    /// alone: only documents untouched for a while count as interrupted.
    async fn recover(&self) -> anyhow::Result<()> {
        let idle_before = if self.store.is_shared() {
            now_ms() - INGESTION_ABANDONED_AFTER_MS
        } else {
            i64::MAX
        };
        for doc in self.store.unfinished_documents(idle_before).await? {
            self.index.delete_document(&doc.user_id, &doc.id).await?;
            if doc.status == "deleting" {
                let _ = tokio::fs::remove_file(self.upload_path(&doc.id)).await;
                self.store.remove_document(&doc.id).await?;
                tracing::info!(document_id = %doc.id, "finished an interrupted delete");
            } else if doc.interruptions + 1 >= MAX_INTERRUPTIONS {
                self.store
                    .fail_document(
                        &doc.id,
                        &format!(
                            "Processing this file was cut short {MAX_INTERRUPTIONS} times (the server stopped each time), so it was not indexed."
                        ),
                    )
                    .await?;
                tracing::warn!(document_id = %doc.id, "gave up on a document whose ingestion keeps being cut short");
            } else if tokio::fs::try_exists(self.upload_path(&doc.id))
                .await
                .unwrap_or(false)
            {
                self.store.requeue_document(&doc.id).await?;
                tracing::info!(document_id = %doc.id, "resuming an interrupted ingestion");
            } else {
                self.store
                    .fail_document(
                        &doc.id,
                        "The server stopped while this file was being processed. Please upload it again.",
                    )
                    .await?;
            }
        }
        // Files of no document waiting for ingestion are leftovers of
        // interrupted uploads.
        let mut entries = tokio::fs::read_dir(&self.uploads).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.store.awaits_ingestion(&name).await? {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }

    /// Takes the oldest queued document this worker can ingest. Replicas
    /// sharing a database each ingest the uploads they hold, and a claim
    /// is atomic, so no document is ingested twice.
    async fn claim_next(&self) -> Result<Option<DocumentRow>, StoreError> {
        for doc in self.store.queued_documents(CLAIM_WINDOW).await? {
            let here = tokio::fs::try_exists(self.upload_path(&doc.id))
                .await
                .unwrap_or(false);
            // Alone, a lost upload is this worker's to report (as failed).
            if (here || !self.store.is_shared()) && self.store.claim_document(&doc.id).await? {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }

    /// The ingestion worker: one document at a time, oldest first. Embedding
    /// already uses every core; ingesting two at once would only interleave them.
    async fn work(self: Arc<Self>) {
        loop {
            let next = {
                let mut running = self.running.lock().await;
                match self.claim_next().await {
                    Ok(Some(doc)) => {
                        let cancel = CancellationToken::new();
                        *running = Some((doc.id.clone(), cancel.clone()));
                        Some((doc, cancel))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the ingestion queue");
                        None
                    }
                }
            };
            let Some((doc, cancel)) = next else {
                self.wake.notified().await;
                continue;
            };
            self.ingest(&doc, &cancel).await;
            let mut running = self.running.lock().await;
            *running = None;
            drop(running);
            // A delete that arrived after the last stage finished still needs doing.
            if cancel.is_cancelled() {
                if let Err(e) = self.remove(&doc.id).await {
                    tracing::error!(error = %e, document_id = %doc.id, "deleting a document");
                }
            }
        }
    }

    async fn ingest(&self, doc: &DocumentRow, cancel: &CancellationToken) {
        let started = Instant::now();
        let outcome = self.run_stages(doc, cancel).await;
        let _ = tokio::fs::remove_file(self.upload_path(&doc.id)).await;
        match outcome {
            Ok(chunks) => {
                tracing::info!(
                    target: "ingest",
                    document_id = %doc.id,
                    kind = %doc.kind,
                    chunks,
                    total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "document indexed"
                );
            }
            Err(Stop::Deleted) => {
                if let Err(e) = self.remove(&doc.id).await {
                    tracing::error!(error = %e, document_id = %doc.id, "cleaning up a deleted document");
                }
            }
            Err(Stop::Failed(reason)) => {
                tracing::warn!(document_id = %doc.id, reason, "ingestion failed");
                let cleaned = self.index.delete_document(&doc.user_id, &doc.id).await;
                let recorded = self.store.fail_document(&doc.id, &reason).await;
                if let Err(e) = cleaned {
                    tracing::error!(error = %e, document_id = %doc.id, "removing vectors of a failed document");
                }
                if let Err(e) = recorded {
                    tracing::error!(error = %e, document_id = %doc.id, "recording a failed ingestion");
                }
            }
        }
    }

    /// Parse → chunk → embed + index in batches. Returns the chunk count.
    async fn run_stages(&self, doc: &DocumentRow, cancel: &CancellationToken) -> Result<u32, Stop> {
        let internal = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, document_id = %doc.id, "ingestion step failed");
            Stop::Failed("Something went wrong on the server while processing this file.".into())
        };
        let alive = |still_there: bool| {
            if still_there {
                Ok(())
            } else {
                Err(Stop::Deleted)
            }
        };

        // `claim_next` moved the document to "parsing".
        let path = self.upload_path(&doc.id);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Stop::Failed(
                "The uploaded file was lost. Please upload it again.".into(),
            ));
        }
        let format =
            format_of(&doc.kind).ok_or_else(|| Stop::Failed("Unknown file type.".into()))?;
        let limits = ParseLimits {
            max_pages: self.settings.max_pages,
            ..ParseLimits::default()
        };
        let parsed = tokio::select! {
            parsed = self.sandbox.parse_file(format, &path, &limits) => parsed,
            () = cancel.cancelled() => return Err(Stop::Deleted),
        }
        .map_err(|e| internal(&e))?
        .map_err(|e| Stop::Failed(format!("{}: {e}", doc.name)))?;
        if cancel.is_cancelled() {
            return Err(Stop::Deleted);
        }
        alive(
            self.store
                .set_document_parsed(&doc.id, parsed.title.as_deref(), parsed.pages)
                .await
                .map_err(|e| internal(&e))?,
        )?;

        let tokens = self.tokens.clone();
        let config = ChunkConfig {
            max_tokens: self.settings.chunk_tokens,
            overlap_tokens: self.settings.chunk_overlap_tokens,
            max_chunks: self.settings.max_chunks,
        };
        let chunks =
            tokio::task::spawn_blocking(move || chunk_document(&parsed, tokens.as_ref(), &config))
                .await
                .map_err(|e| internal(&e))?
                .map_err(|e| Stop::Failed(format!("{}: {e}", doc.name)))?;
        if chunks.is_empty() {
            return Err(Stop::Failed(format!("{} has no text to index.", doc.name)));
        }
        let total = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        alive(
            self.store
                .set_document_chunked(&doc.id, total)
                .await
                .map_err(|e| internal(&e))?,
        )?;

        let mut done = 0u32;
        for batch in chunks.chunks(self.settings.embed_batch.max(1)) {
            if cancel.is_cancelled() {
                return Err(Stop::Deleted);
            }
            let texts: Vec<String> = batch.iter().map(indexed_text).collect();
            let dense = self
                .embedder
                .embed_documents(texts.clone())
                .await
                .map_err(|e| Stop::Failed(format!("Embedding failed: {e}")))?;
            let points = chunk_points(doc, batch, &texts, dense);
            self.index.upsert(points).await.map_err(|e| internal(&e))?;
            done += u32::try_from(batch.len()).unwrap_or(u32::MAX);
            alive(
                self.store
                    .set_chunks_embedded(&doc.id, done)
                    .await
                    .map_err(|e| internal(&e))?,
            )?;
        }
        if cancel.is_cancelled() {
            return Err(Stop::Deleted);
        }
        alive(
            self.store
                .set_document_stage(&doc.id, DocumentStatus::Indexed)
                .await
                .map_err(|e| internal(&e))?,
        )?;
        Ok(total)
    }
}

/// The index's points for a batch of a document's chunks: their embedded
/// text's dense and BM25 vectors, and what a search hit shows.
fn chunk_points(
    doc: &DocumentRow,
    batch: &[Chunk],
    texts: &[String],
    dense: Vec<Vec<f32>>,
) -> Vec<ChunkPoint> {
    batch
        .iter()
        .zip(texts)
        .zip(dense)
        .map(|((chunk, text), dense)| ChunkPoint {
            id: point_id(&doc.id, chunk.index),
            dense,
            sparse: bm25::document_vector(text),
            payload: ChunkPayload {
                owner: doc.user_id.clone(),
                document_id: doc.id.clone(),
                document_name: doc.name.clone(),
                chunk_index: chunk.index,
                text: chunk.text.clone(),
                heading_path: chunk.heading_path.clone(),
                page: chunk.page,
                char_start: chunk.char_start as u64,
                char_end: chunk.char_end as u64,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_directories_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\u{0}b\n.txt"), "ab.txt");
        assert_eq!(clean_name("  "), "untitled");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(50 * 1024 * 1024), "50.0 MiB");
        assert_eq!(human_size(1500), "2 KiB");
    }
}
