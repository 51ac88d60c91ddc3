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
mod worker;

pub use chunk::{chunk_document, Chunk, ChunkConfig, ChunkError};
pub use parse::{parse, Format, LimitKind, ParseError, ParseLimits, ParsedDocument, Section};

use crate::config::DocumentSettings;
use crate::embed::{Embedder, TokenSpans};
use crate::index::VectorIndex;
use crate::store::{NewDocument, Store};
use app::error::AppError;
use app::ports::{Caller, DocumentService, UsageLimits, UserId};
use app::wire::DocumentView;
use sandbox::{Sandbox, SandboxLimits};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;
pub use worker::StageTimes;
use worker::{kind_of, Ingestion};

pub struct DocumentServiceImpl {
    inner: Arc<Ingestion>,
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
        let inner = Arc::new(Ingestion {
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
            stage_times: std::sync::Mutex::new(StageTimes::default()),
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

    /// Where ingestion time went since start-up, summed over documents.
    pub fn stage_times(&self) -> StageTimes {
        self.inner
            .stage_times
            .lock()
            .map(|times| *times)
            .unwrap_or_default()
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
            return Err(AppError::file_too_large(
                &name,
                size,
                inner.settings.max_file_bytes,
            ));
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
}
