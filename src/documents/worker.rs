//! The ingestion worker: one document at a time, fairly across owners,
//! through parse (in the sandbox) → chunk → embed → index, with progress in
//! the store; and recovery of what a stopped server left undone.

use super::chunk::{chunk_document, Chunk, ChunkConfig};
use super::parse::{Format, ParseLimits};
use super::sandbox::Sandbox;
use crate::config::DocumentSettings;
use crate::embed::{Embedder, TokenSpans};
use crate::index::{bm25, point_id, ChunkPayload, ChunkPoint, VectorIndex};
use crate::store::{now_ms, DocumentRow, Store, StoreError};
use app::ports::UsageLimits;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// With a shared database, a document in ingestion untouched this long was
/// left by a replica that stopped (a working one moves it every batch).
const INGESTION_ABANDONED_AFTER_MS: i64 = 10 * 60 * 1000;

/// Queued documents looked at per claim (replicas skip each other's uploads).
const CLAIM_WINDOW: i64 = 100;

/// How often one document's ingestion may be cut short by the server
/// stopping before it is failed rather than started again: a file that
/// kills the server must not do so on every start.
const MAX_INTERRUPTIONS: u32 = 3;

/// The documents' shared state: what the service and the ingestion worker
/// both use.
pub(super) struct Ingestion {
    pub(super) store: Store,
    pub(super) index: Arc<dyn VectorIndex>,
    pub(super) embedder: Arc<dyn Embedder>,
    pub(super) tokens: Arc<dyn TokenSpans>,
    pub(super) settings: DocumentSettings,
    pub(super) sandbox: Sandbox,
    pub(super) uploads: PathBuf,
    pub(super) wake: Notify,
    /// The document the worker is ingesting, and how to stop it.
    pub(super) running: Mutex<Option<(String, CancellationToken)>>,
    /// Upload quotas, checked and charged one upload at a time.
    pub(super) limits: Arc<dyn UsageLimits>,
    pub(super) admitting: Mutex<()>,
    /// Where ingestion time went, summed over documents.
    pub(super) stage_times: std::sync::Mutex<StageTimes>,
    /// What makes vectors now: recorded on every build, and the only
    /// vectors a search looks at.
    pub(super) embedder_id: String,
    pub(super) chunker_id: String,
}

/// What a chunking configuration is called in the records: a build made
/// with other settings is rebuilt by a re-index.
pub fn chunker_id(settings: &DocumentSettings) -> String {
    format!(
        "headings-v1/tokens={}/overlap={}",
        settings.chunk_tokens, settings.chunk_overlap_tokens
    )
}

/// Time spent in each ingestion stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// The sandboxed parser, process start included.
    pub parse: Duration,
    pub chunk: Duration,
    /// Embedding the chunks (and their BM25 vectors).
    pub embed: Duration,
    /// Writing the points to the index, flushed to disk.
    pub index: Duration,
    /// Status and progress writes to the database.
    pub bookkeeping: Duration,
}

impl StageTimes {
    fn add(&mut self, other: &StageTimes) {
        self.parse += other.parse;
        self.chunk += other.chunk;
        self.embed += other.embed;
        self.index += other.index;
        self.bookkeeping += other.bookkeeping;
    }
}

/// Why one document's ingestion ended early.
enum Stop {
    /// Deleted by its owner while being ingested.
    Deleted,
    /// A reason to show the user.
    Failed(String),
}

impl Ingestion {
    pub(super) fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads.join(id)
    }

    /// Removes a document build's vectors, then its file and row. If the
    /// index fails, the row stays "deleting" and the next start finishes
    /// the job.
    pub(super) async fn remove(&self, id: &str) -> anyhow::Result<()> {
        self.index.delete_document(id).await?;
        let _ = tokio::fs::remove_file(self.upload_path(id)).await;
        self.store.remove_document(id).await?;
        Ok(())
    }

    /// Removes a build marked for deletion, or, if the worker is ingesting
    /// it, stops the worker (which then removes it).
    pub(super) async fn remove_or_cancel(&self, id: &str) -> anyhow::Result<()> {
        {
            let running = self.running.lock().await;
            if let Some((running_id, cancel)) = running.as_ref() {
                if running_id == id {
                    cancel.cancel();
                    return Ok(());
                }
            }
        }
        self.remove(id).await
    }

    /// Removes the vectors and file of versions replaced a while ago
    /// (`documents.retire_after_secs`); their rows stay for the votes and
    /// events that point at them.
    pub(super) async fn purge_replaced(&self) -> anyhow::Result<()> {
        let retire_after =
            i64::try_from(self.settings.retire_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let due = now_ms().saturating_sub(retire_after.max(1000));
        for id in self.store.builds_to_purge(due).await? {
            // One that fails is tried again next time; the others go on.
            let purged = async {
                self.index.delete_document(&id).await?;
                let _ = tokio::fs::remove_file(self.upload_path(&id)).await;
                self.store.set_purged(&id).await?;
                anyhow::Ok(())
            }
            .await;
            match purged {
                Ok(()) => {
                    tracing::info!(document_id = %id, "removed a replaced or failed build's vectors")
                }
                Err(e) => {
                    tracing::warn!(error = %e, document_id = %id, "removing a replaced build's vectors")
                }
            }
        }
        Ok(())
    }

    /// Queues a new build of every answering document of a collection (or
    /// of those made by another embedder or chunker), from its kept
    /// original; each swaps in when indexed. Returns how many were queued.
    pub(super) async fn queue_rebuilds(
        &self,
        collection_id: &str,
        all: bool,
    ) -> Result<u32, StoreError> {
        let mut queued = 0;
        for id in self
            .store
            .documents_to_rebuild(collection_id, &self.embedder_id, &self.chunker_id, all)
            .await?
        {
            let new_id = uuid::Uuid::new_v4().to_string();
            let (from, to) = (self.upload_path(&id), self.upload_path(&new_id));
            let linked = match tokio::fs::hard_link(&from, &to).await {
                Ok(()) => Ok(()),
                Err(_) => tokio::fs::copy(&from, &to).await.map(|_| ()),
            };
            if let Err(e) = linked {
                tracing::warn!(error = %e, document_id = %id, "no original to rebuild from; skipped");
                continue;
            }
            if self.store.queue_rebuild(&id, &new_id).await? {
                queued += 1;
            } else {
                let _ = tokio::fs::remove_file(&to).await;
            }
        }
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// Labels the vectors of documents indexed before collections and
    /// embedders were recorded: they were made by this server's embedder,
    /// in their uploader's private collection.
    pub(super) async fn label_legacy(&self) -> anyhow::Result<()> {
        for (id, collection) in self.store.unlabelled_documents().await? {
            self.index
                .label_document(&id, &collection, &self.embedder_id)
                .await?;
            self.store
                .set_document_builder(&id, &self.embedder_id, &self.chunker_id)
                .await?;
            tracing::info!(document_id = %id, "labelled an older document's vectors");
        }
        Ok(())
    }

    /// After a crash or kill: finish deletions, and restart interrupted
    /// ingestions from scratch (their partial vectors are removed first).
    /// With a shared database, other replicas' work in progress is left
    /// alone: only documents untouched for a while count as interrupted.
    pub(super) async fn recover(&self) -> anyhow::Result<()> {
        let idle_before = if self.store.is_shared() {
            now_ms() - INGESTION_ABANDONED_AFTER_MS
        } else {
            i64::MAX
        };
        self.label_legacy().await?;
        for doc in self.store.unfinished_documents(idle_before).await? {
            self.index.delete_document(&doc.id).await?;
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
                        true,
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
                        true,
                    )
                    .await?;
            }
        }
        // Files of no current document are leftovers of interrupted
        // uploads or deletions.
        let mut entries = tokio::fs::read_dir(&self.uploads).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.store.keeps_file(&name).await? {
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
    pub(super) async fn work(self: Arc<Self>) {
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
        let mut times = StageTimes::default();
        let outcome = self.run_stages(doc, cancel, &mut times).await;
        if let Ok(mut total) = self.stage_times.lock() {
            total.add(&times);
        }
        // The original is kept while the document answers: a re-index
        // rebuilds from it.
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(self.upload_path(&doc.id)).await;
        }
        match outcome {
            Ok(chunks) => {
                tracing::info!(
                    target: "ingest",
                    document_id = %doc.id,
                    kind = %doc.kind,
                    chunks,
                    total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    parse_ms = times.parse.as_millis() as u64,
                    chunk_ms = times.chunk.as_millis() as u64,
                    embed_ms = times.embed.as_millis() as u64,
                    index_ms = times.index.as_millis() as u64,
                    bookkeeping_ms = times.bookkeeping.as_millis() as u64,
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
                let cleaned = self.index.delete_document(&doc.id).await;
                let recorded = self
                    .store
                    .fail_document(&doc.id, &reason, cleaned.is_ok())
                    .await;
                if let Err(e) = cleaned {
                    tracing::error!(error = %e, document_id = %doc.id, "removing vectors of a failed document");
                }
                if let Err(e) = recorded {
                    tracing::error!(error = %e, document_id = %doc.id, "recording a failed ingestion");
                }
            }
        }
    }

    /// Parse → chunk → embed + index in batches, timing each stage into
    /// `times`. Returns the chunk count.
    async fn run_stages(
        &self,
        doc: &DocumentRow,
        cancel: &CancellationToken,
        times: &mut StageTimes,
    ) -> Result<u32, Stop> {
        let internal = |e: &dyn std::fmt::Display| internal_error(&doc.id, e);
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
        let clock = Instant::now();
        let parsed = tokio::select! {
            parsed = self.sandbox.parse_file(format, &path, &limits) => parsed,
            () = cancel.cancelled() => return Err(Stop::Deleted),
        }
        .map_err(|e| internal(&e))?
        .map_err(|e| Stop::Failed(format!("{}: {e}", doc.name)))?;
        times.parse += clock.elapsed();
        if cancel.is_cancelled() {
            return Err(Stop::Deleted);
        }
        let clock = Instant::now();
        alive(
            self.store
                .set_document_parsed(&doc.id, parsed.title.as_deref(), parsed.pages)
                .await
                .map_err(|e| internal(&e))?,
        )?;

        times.bookkeeping += clock.elapsed();
        let clock = Instant::now();
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
        times.chunk += clock.elapsed();
        if chunks.is_empty() {
            return Err(Stop::Failed(format!("{} has no text to index.", doc.name)));
        }
        let total = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        let clock = Instant::now();
        alive(
            self.store
                .set_document_chunked(&doc.id, total)
                .await
                .map_err(|e| internal(&e))?,
        )?;
        times.bookkeeping += clock.elapsed();

        self.embed_and_index(doc, &chunks, cancel, times).await?;
        if cancel.is_cancelled() {
            return Err(Stop::Deleted);
        }
        let clock = Instant::now();
        // The swap: from here this build answers, and the version it
        // replaces doesn't.
        alive(
            self.store
                .finish_document(&doc.id, &self.embedder_id, &self.chunker_id)
                .await
                .map_err(|e| internal(&e))?,
        )?;
        times.bookkeeping += clock.elapsed();
        Ok(total)
    }
    /// Embeds and indexes the chunks batch by batch, recording progress.
    async fn embed_and_index(
        &self,
        doc: &DocumentRow,
        chunks: &[Chunk],
        cancel: &CancellationToken,
        times: &mut StageTimes,
    ) -> Result<(), Stop> {
        let internal = |e: &dyn std::fmt::Display| internal_error(&doc.id, e);
        let mut done = 0u32;
        for batch in chunks.chunks(self.settings.embed_batch.max(1)) {
            if cancel.is_cancelled() {
                return Err(Stop::Deleted);
            }
            let clock = Instant::now();
            let texts: Vec<String> = batch.iter().map(indexed_text).collect();
            let dense = self
                .embedder
                .embed_documents(texts.clone())
                .await
                .map_err(|e| Stop::Failed(format!("Embedding failed: {e}")))?;
            let points = chunk_points(doc, &self.embedder_id, batch, &texts, dense);
            times.embed += clock.elapsed();
            let clock = Instant::now();
            self.index.upsert(points).await.map_err(|e| internal(&e))?;
            times.index += clock.elapsed();
            done += u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let clock = Instant::now();
            if !self
                .store
                .set_chunks_embedded(&doc.id, done)
                .await
                .map_err(|e| internal(&e))?
            {
                return Err(Stop::Deleted);
            }
            times.bookkeeping += clock.elapsed();
        }
        Ok(())
    }
}

/// A server-side failure: logged in full, told to the user in general terms.
fn internal_error(document_id: &str, e: &dyn std::fmt::Display) -> Stop {
    tracing::error!(error = %e, document_id, "ingestion step failed");
    Stop::Failed("Something went wrong on the server while processing this file.".into())
}

/// The index's points for a batch of a document's chunks: their embedded
/// text's dense and BM25 vectors, and what a search hit shows.
fn chunk_points(
    doc: &DocumentRow,
    embedder: &str,
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
                collection: doc.collection_id.clone(),
                embedder: embedder.to_owned(),
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

pub(super) fn kind_of(format: Format) -> &'static str {
    match format {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Html => "html",
        Format::Pdf => "pdf",
        Format::Docx => "docx",
        Format::Csv => "csv",
    }
}

pub(super) fn format_of(kind: &str) -> Option<Format> {
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

/// What gets embedded and indexed for a chunk: its heading path gives a
/// passage deep in a long document the context its text alone lacks.
pub(super) fn indexed_text(chunk: &Chunk) -> String {
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
