//! Documents and their ingestion state. A row exists before any of its vectors
//! and outlives them, so the index never holds vectors the database doesn't know about.

use super::{db_int, now_ms, DbRow, Store, StoreError};
use app::wire::{DocumentStatus, DocumentView};

/// A file accepted for ingestion.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub kind: String,
    pub size_bytes: u64,
    pub content_hash: String,
}

/// A document as the ingestion worker needs it.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: String,
    pub user_id: String,
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
      SELECT d.id, d.user_id, d.name, d.kind, d.status, d.interruptions, d.created_at, \
             ROW_NUMBER() OVER (PARTITION BY d.user_id ORDER BY d.created_at, d.id) AS turn, \
             COALESCE(u.ingest_served_at, 0) AS served \
      FROM documents d JOIN users u ON u.id = d.user_id WHERE d.status = 'queued') \
    SELECT id, user_id, name, kind, status, interruptions, \
           ROW_NUMBER() OVER (ORDER BY turn, served, created_at, id) AS position \
    FROM queued";

const VIEW_COLUMNS: &str =
    "id, name, kind, size_bytes, status, error, pages, chunks, chunks_embedded, created_at";

impl Store {
    /// Inserts a queued document and logs the upload (for the daily
    /// quotas), or returns the id of this user's live document with the
    /// same content instead.
    pub async fn insert_document(
        &self,
        doc: &NewDocument,
    ) -> Result<Result<(), String>, StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO documents (id, user_id, name, kind, size_bytes, content_hash, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&doc.id)
            .bind(&doc.user_id)
            .bind(&doc.name)
            .bind(&doc.kind)
            .bind(db_int(doc.size_bytes))
            .bind(&doc.content_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                sqlx::query("INSERT INTO upload_log (user_id, bytes, at) VALUES ($1, $2, $3)")
                    .bind(&doc.user_id)
                    .bind(db_int(doc.size_bytes))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(Ok(()));
            }
            let existing: String = sqlx::query_scalar(
                "SELECT id FROM documents WHERE user_id = $1 AND content_hash = $2 \
                 AND status NOT IN ('failed', 'deleting')",
            )
            .bind(&doc.user_id)
            .bind(&doc.content_hash)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Err(existing))
        })
    }

    /// Whether the user keeps a document with these bytes (an upload of
    /// them again is recognised, not stored twice).
    pub async fn has_live_document(
        &self,
        user_id: &str,
        content_hash: &str,
    ) -> Result<bool, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "SELECT 1 FROM documents WHERE user_id = $1 AND content_hash = $2 \
             AND status NOT IN ('failed', 'deleting')",
        )
        .bind(user_id)
        .bind(content_hash)
        .fetch_optional(db)
        .await?
        .is_some()))
    }

    pub async fn list_documents(&self, user_id: &str) -> Result<Vec<DocumentView>, StoreError> {
        let mut documents: Vec<DocumentView> = on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE user_id = $1 AND status != 'deleting' \
             ORDER BY created_at DESC, id LIMIT 1000"
        ))
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(document_from_row)
        .collect::<Result<_, _>>()?);
        self.add_queue_positions(user_id, &mut documents).await?;
        Ok(documents)
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

    /// The document if `user_id` owns it (and it isn't being deleted).
    pub async fn owned_document(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<DocumentView>, StoreError> {
        let document = on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE id = $1 AND user_id = $2 AND status != 'deleting'"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(document_from_row)
        .transpose()?);
        let Some(mut document) = document else {
            return Ok(None);
        };
        self.add_queue_positions(user_id, std::slice::from_mut(&mut document))
            .await?;
        Ok(Some(document))
    }

    /// Whether the user has anything to retrieve from.
    pub async fn has_indexed_documents(&self, user_id: &str) -> Result<bool, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "SELECT 1 FROM documents WHERE user_id = $1 AND status = 'indexed' LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .is_some()))
    }

    /// Marks the user's document for deletion; false if it isn't theirs.
    pub async fn mark_deleting(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'deleting', updated_at = $1 \
             WHERE id = $2 AND user_id = $3 AND status != 'deleting'",
        )
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        if done == 1 {
            // Answers built on it are no longer served from the cache.
            self.invalidate_cache_for_document(id).await?;
        }
        Ok(done == 1)
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
            "SELECT id, user_id, name, kind, status, interruptions FROM documents \
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

    /// The user who owns a document, if it exists.
    pub async fn document_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            on_db!(self, db => sqlx::query_scalar("SELECT user_id FROM documents WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?),
        )
    }

    /// Whether a document is queued or being ingested (its upload is still needed).
    pub async fn awaits_ingestion(&self, id: &str) -> Result<bool, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "SELECT 1 FROM documents WHERE id = $1 \
             AND status IN ('queued', 'parsing', 'chunking', 'embedding')",
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

    pub async fn fail_document(&self, id: &str, error: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'failed', error = $1, updated_at = $2 \
             WHERE id = $3 AND status != 'deleting'",
        )
        .bind(error)
        .bind(now_ms())
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
    })
}
