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

pub mod access;
pub mod chunk;
pub mod collections;
pub mod parse;
pub mod sandbox;
mod worker;

pub use chunk::{chunk_document, Chunk, ChunkConfig, ChunkError};
pub use parse::{parse, Format, LimitKind, ParseError, ParseLimits, ParsedDocument, Section};

use crate::config::DocumentSettings;
use crate::embed::{Embedder, TokenSpans};
use crate::index::VectorIndex;
use crate::store::{Inserted, NewDocument, Store};
use access::Access;
use app::error::AppError;
use app::ports::{Caller, DocumentService, UploadTarget, UsageLimits};
use app::wire::{CollectionAccess, DocumentView};
use collections::CollectionServiceImpl;
use sandbox::{Sandbox, SandboxLimits};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;
pub use worker::{chunker_id, StageTimes};
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
            embedder: embedder.clone(),
            tokens,
            settings: settings.clone(),
            sandbox,
            uploads,
            wake: Notify::new(),
            running: Mutex::new(None),
            limits,
            admitting: Mutex::new(()),
            stage_times: std::sync::Mutex::new(StageTimes::default()),
            embedder_id: crate::embed::embedder_id(embedder.as_ref()),
            chunker_id: chunker_id(&settings),
        });
        inner.recover().await?;
        tokio::spawn(inner.clone().work());
        // Replaced versions' vectors go once no question can still be
        // searching the state from before their swap.
        let purger = inner.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                if let Err(e) = purger.purge_replaced().await {
                    tracing::warn!(error = %e, "removing replaced versions");
                }
            }
        });
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

    /// The collection service over the same documents.
    pub fn collections(&self) -> CollectionServiceImpl {
        CollectionServiceImpl {
            inner: self.inner.clone(),
        }
    }

    fn access(&self) -> Access {
        Access::new(self.inner.store.clone())
    }

    /// A document the caller can read, with their access to its collection
    /// (at least `needed`).
    async fn document_for(
        &self,
        caller: &Caller,
        id: &str,
        needed: CollectionAccess,
    ) -> Result<DocumentView, AppError> {
        let mut document = self
            .inner
            .store
            .document(id)
            .await?
            .ok_or(AppError::NotFound)?;
        let access = self
            .access()
            .collection(caller, &document.collection_id, needed)
            .await?
            .access;
        document.can_write = access >= CollectionAccess::Write;
        Ok(document)
    }

    /// Where an upload goes: the collection (which the caller must be able
    /// to write to) and the document it is a new version of, if named.
    async fn upload_target(
        &self,
        caller: &Caller,
        user_id: &str,
        target: &UploadTarget,
    ) -> Result<(String, Option<String>), AppError> {
        if let Some(replaces) = &target.replaces {
            let document = self
                .document_for(caller, replaces, CollectionAccess::Write)
                .await?;
            if target
                .collection
                .as_ref()
                .is_some_and(|c| *c != document.collection_id)
            {
                return Err(AppError::BadRequest(
                    "The document to replace is in another collection.".into(),
                ));
            }
            return Ok((document.collection_id, Some(document.lineage_id)));
        }
        let collection = match &target.collection {
            Some(collection) => collection.clone(),
            None => {
                self.inner.store.ensure_private_collection(user_id).await?;
                user_id.to_owned()
            }
        };
        self.access()
            .collection(caller, &collection, CollectionAccess::Write)
            .await?;
        Ok((collection, None))
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
        target: &UploadTarget,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<(DocumentView, bool), AppError> {
        let inner = &self.inner;
        let user = caller.user.as_ref().ok_or(AppError::Internal)?;
        let (collection, replaces) = self.upload_target(caller, &user.0, target).await?;
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
            if !inner.store.has_live_document(&collection, &hash).await? {
                inner.limits.admit_upload(caller, size).await?;
            }
            Ok::<_, AppError>(
                inner
                    .store
                    .insert_document(&NewDocument {
                        id: id.clone(),
                        user_id: user.0.clone(),
                        collection_id: collection,
                        replaces,
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
            Ok(Inserted::New { .. }) => (id, false),
            Ok(Inserted::Duplicate(existing)) => {
                let _ = tokio::fs::remove_file(&path).await;
                (existing, true)
            }
            Ok(Inserted::NoSuchDocument) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(AppError::NotFound);
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        if !duplicate {
            inner.wake.notify_one();
        }
        let view = self
            .document_for(caller, &id, CollectionAccess::Read)
            .await?;
        Ok((view, duplicate))
    }

    async fn list(
        &self,
        caller: &Caller,
        collection: Option<&str>,
    ) -> Result<Vec<DocumentView>, AppError> {
        let Some(user) = caller.user.as_ref() else {
            return Ok(Vec::new());
        };
        let reachable: Vec<_> = self
            .access()
            .reachable(&user.0, caller.role, false)
            .await?
            .into_iter()
            .filter(|r| collection.is_none_or(|c| r.row.id == c))
            .collect();
        if collection.is_some() && reachable.is_empty() {
            return Err(AppError::NotFound);
        }
        let writable: std::collections::HashSet<&str> = reachable
            .iter()
            .filter(|r| r.access >= CollectionAccess::Write)
            .map(|r| r.row.id.as_str())
            .collect();
        let ids: Vec<String> = reachable.iter().map(|r| r.row.id.clone()).collect();
        let mut documents = self.inner.store.list_documents(&user.0, &ids).await?;
        for document in &mut documents {
            document.can_write = writable.contains(document.collection_id.as_str());
        }
        Ok(documents)
    }

    async fn get(&self, caller: &Caller, id: &str) -> Result<DocumentView, AppError> {
        self.document_for(caller, id, CollectionAccess::Read).await
    }

    async fn versions(&self, caller: &Caller, id: &str) -> Result<Vec<DocumentView>, AppError> {
        let document = self
            .document_for(caller, id, CollectionAccess::Read)
            .await?;
        let mut versions = self
            .inner
            .store
            .document_versions_of(&document.lineage_id)
            .await?;
        for version in &mut versions {
            version.can_write = document.can_write;
        }
        Ok(versions)
    }

    async fn delete(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        let document = self
            .document_for(caller, id, CollectionAccess::Write)
            .await?;
        let inner = &self.inner;
        let mut removing = Vec::new();
        {
            // Under the lock, the worker can't pick a version up between the
            // mark and the check.
            let running = inner.running.lock().await;
            let marked = inner
                .store
                .mark_lineage_deleting(&document.lineage_id)
                .await?;
            if marked.is_empty() {
                return Err(AppError::NotFound);
            }
            for (build, status) in marked {
                match running.as_ref() {
                    // The worker removes what it wrote, then the row.
                    Some((running_id, cancel)) if *running_id == build => cancel.cancel(),
                    // Another replica is ingesting it: its worker sees the
                    // mark at its next step and removes it (or, if that
                    // replica is gone, the next start's recovery does).
                    _ if inner.store.is_shared()
                        && ["parsing", "chunking", "embedding"].contains(&status.as_str()) => {}
                    _ => removing.push(build),
                }
            }
        }
        for build in removing {
            inner.remove(&build).await.map_err(|e| {
                tracing::error!(error = %e, document_id = %build, "deleting a document");
                AppError::Internal
            })?;
        }
        Ok(())
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
