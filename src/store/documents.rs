//! Documents and their ingestion state. A row exists before any of its vectors
//! and outlives them, so the index never holds vectors the database doesn't know about.

use super::{db_int, now_ms, placeholders, DbRow, Store, StoreError};
use app::wire::{DocumentStatus, DocumentView};

/// A file accepted for ingestion.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub user_id: String,
    pub collection_id: String,
    /// A new version of this document (its lineage id); `None`: of the
    /// collection's document with the same name, if there is one.
    pub replaces: Option<String>,
    pub name: String,
    pub kind: String,
    pub size_bytes: u64,
    pub content_hash: String,
}

/// What [`Store::insert_document`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// Queued, as this version of its document.
    New { version: u32 },
    /// The collection already has a current document with these bytes.
    Duplicate(String),
    /// `replaces` names no document of the collection, or the collection
    /// was deleted meanwhile.
    NoSuchDocument,
}

/// A document as the ingestion worker needs it.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: String,
    pub user_id: String,
    pub collection_id: String,
    pub name: String,
    pub kind: String,
    pub status: String,
    /// How many times its ingestion was cut short by the server stopping.
    pub interruptions: u32,
}

/// The ingestion queue in the order it is served: round robin across
/// owners (each owner's oldest document first), owners served least
/// recently first, so one person's fifty uploads don't hold up everyone
/// else's. `position` counts from 1.
const QUEUE: &str = "WITH queued AS ( \
      SELECT d.id, d.user_id, d.collection_id, d.name, d.kind, d.status, d.interruptions, d.created_at, \
             ROW_NUMBER() OVER (PARTITION BY d.user_id ORDER BY d.created_at, d.id) AS turn, \
             COALESCE(u.ingest_served_at, 0) AS served \
      FROM documents d JOIN users u ON u.id = d.user_id WHERE d.status = 'queued') \
    SELECT id, user_id, collection_id, name, kind, status, interruptions, \
           ROW_NUMBER() OVER (ORDER BY turn, served, created_at, id) AS position \
    FROM queued";

const VIEW_COLUMNS: &str = "d.id, d.name, d.kind, d.size_bytes, d.status, d.error, d.pages, \
    d.chunks, d.chunks_embedded, d.created_at, d.collection_id, c.name AS collection_name, \
    d.lineage_id, d.version, d.superseded_at, d.embedder, d.chunker, d.user_id";

const VIEW_FROM: &str = "documents d JOIN collections c ON c.id = d.collection_id";

impl Store {
    /// Inserts a queued document (a new document, or the next version of
    /// the one it replaces or of the collection's document with its name)
    /// and logs the upload (for the daily quotas), or finds the current
    /// document with the same content in the collection instead.
    pub async fn insert_document(&self, doc: &NewDocument) -> Result<Inserted, StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            // The collection, still there; on Postgres its row lock makes
            // uploads into one collection (and its deletion) take turns, so
            // two of one name can't both become version 2.
            let open: Option<String> = sqlx::query_scalar(&format!(
                "SELECT c.id FROM collections c WHERE c.id = $1 AND c.deleted_at IS NULL{}",
                self.lock_row_of("c")
            ))
            .bind(&doc.collection_id)
            .fetch_optional(&mut *tx)
            .await?;
            if open.is_none() {
                return Ok(Inserted::NoSuchDocument);
            }
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM documents WHERE collection_id = $1 AND content_hash = $2 \
                 AND status NOT IN ('failed', 'deleting') AND superseded_at IS NULL AND building = 0",
            )
            .bind(&doc.collection_id)
            .bind(&doc.content_hash)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(existing) = existing {
                return Ok(Inserted::Duplicate(existing));
            }
            // The document this is a version of: the named one, or the
            // newest with this name in the collection.
            let lineage: Option<(String, String)> = match &doc.replaces {
                Some(lineage) => {
                    let found = sqlx::query_as(
                        "SELECT lineage_id, name FROM documents WHERE lineage_id = $1 \
                         AND collection_id = $2 AND status != 'deleting' LIMIT 1",
                    )
                    .bind(lineage)
                    .bind(&doc.collection_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if found.is_none() {
                        return Ok(Inserted::NoSuchDocument);
                    }
                    found
                }
                None => sqlx::query_as(
                    "SELECT lineage_id, name FROM documents WHERE collection_id = $1 \
                     AND name = $2 AND status != 'deleting' ORDER BY version DESC LIMIT 1",
                )
                .bind(&doc.collection_id)
                .bind(&doc.name)
                .fetch_optional(&mut *tx)
                .await?,
            };
            let (lineage, name, version) = match lineage {
                Some((lineage, name)) => {
                    let newest: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(version), 0) FROM documents WHERE lineage_id = $1",
                    )
                    .bind(&lineage)
                    .fetch_one(&mut *tx)
                    .await?;
                    (lineage, name, newest + 1)
                }
                None => (doc.id.clone(), doc.name.clone(), 1),
            };
            sqlx::query(
                "INSERT INTO documents (id, user_id, collection_id, lineage_id, version, name, kind, \
                   size_bytes, content_hash, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $10)",
            )
            .bind(&doc.id)
            .bind(&doc.user_id)
            .bind(&doc.collection_id)
            .bind(&lineage)
            .bind(version)
            .bind(&name)
            .bind(&doc.kind)
            .bind(db_int(doc.size_bytes))
            .bind(&doc.content_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO upload_log (user_id, bytes, at) VALUES ($1, $2, $3)")
                .bind(&doc.user_id)
                .bind(db_int(doc.size_bytes))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Inserted::New {
                version: u32::try_from(version).unwrap_or(u32::MAX),
            })
        })
    }

    /// Whether the collection keeps a current document with these bytes
    /// (an upload of them again is recognised, not stored twice).
    pub async fn has_live_document(
        &self,
        collection_id: &str,
        content_hash: &str,
    ) -> Result<bool, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "SELECT 1 FROM documents WHERE collection_id = $1 AND content_hash = $2 \
             AND status NOT IN ('failed', 'deleting') AND superseded_at IS NULL AND building = 0",
        )
        .bind(collection_id)
        .bind(content_hash)
        .fetch_optional(db)
        .await?
        .is_some()))
    }

    /// The current documents of these collections (a version being indexed
    /// is listed beside the one still answering), newest first.
    pub async fn list_documents(
        &self,
        user_id: &str,
        collections: &[String],
    ) -> Result<Vec<DocumentView>, StoreError> {
        if collections.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {VIEW_COLUMNS} FROM {VIEW_FROM} WHERE d.collection_id IN ({}) \
             AND d.status != 'deleting' AND d.superseded_at IS NULL AND d.building = 0 \
             ORDER BY d.created_at DESC, d.id LIMIT 1000",
            placeholders(1, collections.len())
        );
        let mut documents: Vec<DocumentView> = on_db!(self, db => {
            let mut query = sqlx::query(&sql);
            for id in collections {
                query = query.bind(id);
            }
            query
                .fetch_all(db)
                .await?
                .iter()
                .map(document_from_row)
                .collect::<Result<_, _>>()?
        });
        self.add_queue_positions(user_id, &mut documents).await?;
        Ok(documents)
    }

    /// Every version of a document, newest first (re-index builds of one
    /// version: the newest only).
    pub async fn document_versions_of(
        &self,
        lineage_id: &str,
    ) -> Result<Vec<DocumentView>, StoreError> {
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM {VIEW_FROM} WHERE d.lineage_id = $1 \
             AND d.status != 'deleting' ORDER BY d.version DESC, d.created_at DESC LIMIT 200"
        ))
        .bind(lineage_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(document_from_row)
        .collect())
    }

    async fn add_queue_positions(
        &self,
        user_id: &str,
        documents: &mut [DocumentView],
    ) -> Result<(), StoreError> {
        if !documents.iter().any(|d| d.status == DocumentStatus::Queued) {
            return Ok(());
        }
        let positions: std::collections::HashMap<String, u32> =
            self.queue_positions(user_id).await?.into_iter().collect();
        for document in documents {
            document.queue_position = positions.get(&document.id).copied();
        }
        Ok(())
    }

    /// A document build (not being deleted), whoever owns it: the caller
    /// checks access to its collection.
    pub async fn document(&self, id: &str) -> Result<Option<DocumentView>, StoreError> {
        let document = on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM {VIEW_FROM} WHERE d.id = $1 AND d.status != 'deleting'"
        ))
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(|r| Ok::<_, StoreError>((document_from_row(r)?, r.text("user_id")?)))
        .transpose()?);
        let Some((mut document, uploader)) = document else {
            return Ok(None);
        };
        self.add_queue_positions(&uploader, std::slice::from_mut(&mut document))
            .await?;
        Ok(Some(document))
    }

    /// Whether any of these collections has something to retrieve from.
    pub async fn has_indexed_in(&self, collections: &[String]) -> Result<bool, StoreError> {
        if collections.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "SELECT 1 FROM documents WHERE collection_id IN ({}) AND status = 'indexed' \
             AND superseded_at IS NULL LIMIT 1",
            placeholders(1, collections.len())
        );
        Ok(on_db!(self, db => {
            let mut query = sqlx::query(&sql);
            for id in collections {
                query = query.bind(id);
            }
            query.fetch_optional(db).await?.is_some()
        }))
    }

    pub async fn remove_document(&self, id: &str) -> Result<(), StoreError> {
        self.invalidate_cache_for_document(id).await?;
        on_db!(self, db => sqlx::query("DELETE FROM documents WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Documents waiting for ingestion, in the order they are served.
    pub async fn queued_documents(&self, limit: i64) -> Result<Vec<DocumentRow>, StoreError> {
        on_db!(self, db => sqlx::query(&format!("{QUEUE} ORDER BY position LIMIT $1"))
        .bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(row_from)
        .collect())
    }

    /// Where each of the user's queued documents is in the queue.
    async fn queue_positions(&self, user_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        on_db!(self, db => sqlx::query(&format!(
            "SELECT id, position FROM ({QUEUE}) q WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok((r.text("id")?, u32::try_from(r.int("position")?).unwrap_or(u32::MAX))))
        .collect())
    }

    /// Takes a queued document for ingestion (it moves to "parsing" and its
    /// owner goes to the back of the round);
    /// false if another worker took it first or it is being deleted.
    pub async fn claim_document(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            let done = sqlx::query(
                "UPDATE documents SET status = 'parsing', updated_at = $1 \
                 WHERE id = $2 AND status = 'queued'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 1 {
                sqlx::query(
                    "UPDATE users SET ingest_served_at = $1 \
                     WHERE id = (SELECT user_id FROM documents WHERE id = $2)",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(done == 1)
        })
    }

    /// Documents whose ingestion or deletion was left unfinished: untouched
    /// since `idle_before_ms` (a worker moves its document on every batch).
    pub async fn unfinished_documents(
        &self,
        idle_before_ms: i64,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, user_id, collection_id, name, kind, status, interruptions FROM documents \
             WHERE status IN ('parsing', 'chunking', 'embedding', 'deleting') AND updated_at < $1",
        )
        .bind(idle_before_ms)
        .fetch_all(db)
        .await?
        .iter()
        .map(row_from)
        .collect())
    }

    /// Moves a document to the next stage; false if it is no longer there (deleted).
    pub async fn set_document_stage(
        &self,
        id: &str,
        status: DocumentStatus,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = $1, updated_at = $2 WHERE id = $3 AND status != 'deleting'",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Whether a build's uploaded file is still needed: for its ingestion,
    /// or kept as the original a re-index rebuilds from.
    pub async fn keeps_file(&self, id: &str) -> Result<bool, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "SELECT 1 FROM documents WHERE id = $1 \
             AND status NOT IN ('failed', 'deleting') AND purged_at IS NULL",
        )
        .bind(id)
        .fetch_optional(db)
        .await?
        .is_some()))
    }

    /// Back to the queue, with progress reset, after a run that the server's
    /// stopping cut short (which is counted).
    pub async fn requeue_document(&self, id: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'queued', chunks_embedded = 0, error = NULL, \
             interruptions = interruptions + 1, updated_at = $1 \
             WHERE id = $2 AND status != 'deleting'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn set_document_parsed(
        &self,
        id: &str,
        title: Option<&str>,
        pages: Option<u32>,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'chunking', title = $1, pages = $2, updated_at = $3 \
             WHERE id = $4 AND status != 'deleting'",
        )
        .bind(title)
        .bind(pages.map(i64::from))
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    pub async fn set_document_chunked(&self, id: &str, chunks: u32) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'embedding', chunks = $1, chunks_embedded = 0, updated_at = $2 \
             WHERE id = $3 AND status != 'deleting'",
        )
        .bind(i64::from(chunks))
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    pub async fn set_chunks_embedded(&self, id: &str, done: u32) -> Result<bool, StoreError> {
        let changed = on_db!(self, db => sqlx::query(
            "UPDATE documents SET chunks_embedded = $1, updated_at = $2 WHERE id = $3 AND status = 'embedding'",
        )
        .bind(i64::from(done))
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    /// Records a failed ingestion; `vectors_removed` if its partial vectors
    /// are gone from the index (else they stay hidden until it is deleted).
    pub async fn fail_document(
        &self,
        id: &str,
        error: &str,
        vectors_removed: bool,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'failed', error = $1, updated_at = $2, \
             purged_at = CASE WHEN $3 THEN $2 ELSE purged_at END \
             WHERE id = $4 AND status != 'deleting'",
        )
        .bind(error)
        .bind(now)
        .bind(vectors_removed)
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }
}

fn row_from(r: &impl DbRow) -> Result<DocumentRow, StoreError> {
    Ok(DocumentRow {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        collection_id: r.text("collection_id")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        status: r.text("status")?,
        interruptions: u32::try_from(r.int("interruptions")?).unwrap_or(u32::MAX),
    })
}

fn document_from_row(r: &impl DbRow) -> Result<DocumentView, StoreError> {
    let status = r.text("status")?;
    let to_u32 = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    Ok(DocumentView {
        id: r.text("id")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        size_bytes: u64::try_from(r.int("size_bytes")?).unwrap_or(0),
        status: DocumentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("document status {status:?}")))?,
        error: r.opt_text("error")?,
        pages: to_u32(r.opt_int("pages")?),
        chunks: to_u32(r.opt_int("chunks")?),
        chunks_embedded: to_u32(Some(r.int("chunks_embedded")?)).unwrap_or(0),
        created_at_ms: r.int("created_at")?,
        queue_position: None,
        collection_id: r.text("collection_id")?,
        collection_name: r.text("collection_name")?,
        lineage_id: r.text("lineage_id")?,
        version: to_u32(Some(r.int("version")?)).unwrap_or(1),
        superseded: r.opt_int("superseded_at")?.is_some(),
        embedder: r.opt_text("embedder")?,
        chunker: r.opt_text("chunker")?,
        can_write: false,
    })
}
