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
}

const VIEW_COLUMNS: &str =
    "id, name, kind, size_bytes, status, error, pages, chunks, chunks_embedded, created_at";

impl Store {
    /// Inserts a queued document, or returns the id of this user's live
    /// document with the same content instead.
    pub async fn insert_document(
        &self,
        doc: &NewDocument,
    ) -> Result<Result<(), String>, StoreError> {
        let now = now_ms();
        let inserted = on_db!(self, db => sqlx::query(
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
        .execute(db)
        .await?
        .rows_affected());
        if inserted == 1 {
            return Ok(Ok(()));
        }
        let existing: String = on_db!(self, db => sqlx::query_scalar(
            "SELECT id FROM documents WHERE user_id = $1 AND content_hash = $2 \
             AND status NOT IN ('failed', 'deleting')",
        )
        .bind(&doc.user_id)
        .bind(&doc.content_hash)
        .fetch_one(db)
        .await?);
        Ok(Err(existing))
    }

    pub async fn list_documents(&self, user_id: &str) -> Result<Vec<DocumentView>, StoreError> {
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE user_id = $1 AND status != 'deleting' \
             ORDER BY created_at DESC, id LIMIT 1000"
        ))
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(document_from_row)
        .collect())
    }

    /// The document if `user_id` owns it (and it isn't being deleted).
    pub async fn owned_document(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<DocumentView>, StoreError> {
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE id = $1 AND user_id = $2 AND status != 'deleting'"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(document_from_row)
        .transpose())
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

    /// Documents waiting for ingestion, oldest first.
    pub async fn queued_documents(&self, limit: i64) -> Result<Vec<DocumentRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, user_id, name, kind, status FROM documents WHERE status = 'queued' \
             ORDER BY created_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(row_from)
        .collect())
    }

    /// Takes a queued document for ingestion (it moves to "parsing"); false
    /// if another worker took it first or it is being deleted.
    pub async fn claim_document(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'parsing', updated_at = $1 WHERE id = $2 AND status = 'queued'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Documents whose ingestion or deletion was left unfinished: untouched
    /// since `idle_before_ms` (a worker moves its document on every batch).
    pub async fn unfinished_documents(
        &self,
        idle_before_ms: i64,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, user_id, name, kind, status FROM documents \
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

    /// Back to the queue, with progress reset (after an interrupted run).
    pub async fn requeue_document(&self, id: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE documents SET status = 'queued', chunks_embedded = 0, error = NULL, updated_at = $1 \
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
    })
}
