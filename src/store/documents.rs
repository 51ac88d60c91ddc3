//! Documents and their ingestion state. A row exists before any of its vectors
//! and outlives them, so the index never holds vectors SQLite doesn't know about.

use super::{now_ms, Store, StoreError};
use app::wire::{DocumentStatus, DocumentView};
use sqlx::Row;

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
        let inserted = sqlx::query(
            "INSERT INTO documents (id, user_id, name, kind, size_bytes, content_hash, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&doc.id)
        .bind(&doc.user_id)
        .bind(&doc.name)
        .bind(&doc.kind)
        .bind(i64::try_from(doc.size_bytes).unwrap_or(i64::MAX))
        .bind(&doc.content_hash)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let existing: String = sqlx::query(
            "SELECT id FROM documents WHERE user_id = ? AND content_hash = ? \
             AND status NOT IN ('failed', 'deleting')",
        )
        .bind(&doc.user_id)
        .bind(&doc.content_hash)
        .fetch_one(&self.pool)
        .await?
        .try_get("id")?;
        Ok(Err(existing))
    }

    pub async fn list_documents(&self, user_id: &str) -> Result<Vec<DocumentView>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE user_id = ? AND status != 'deleting' \
             ORDER BY created_at DESC, id LIMIT 1000"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    /// The document if `user_id` owns it (and it isn't being deleted).
    pub async fn owned_document(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<DocumentView>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VIEW_COLUMNS} FROM documents WHERE id = ? AND user_id = ? AND status != 'deleting'"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// Whether the user has anything to retrieve from.
    pub async fn has_indexed_documents(&self, user_id: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM documents WHERE user_id = ? AND status = 'indexed' LIMIT 1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Marks the user's document for deletion; false if it isn't theirs.
    pub async fn mark_deleting(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET status = 'deleting', updated_at = ? \
             WHERE id = ? AND user_id = ? AND status != 'deleting'",
        )
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            // Answers built on it are no longer served from the cache.
            self.invalidate_cache_for_document(id).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_document(&self, id: &str) -> Result<(), StoreError> {
        self.invalidate_cache_for_document(id).await?;
        sqlx::query("DELETE FROM documents WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The oldest document waiting for ingestion.
    pub async fn next_queued_document(&self) -> Result<Option<DocumentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, name, kind, status FROM documents WHERE status = 'queued' \
             ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_from).transpose()
    }

    /// Documents whose ingestion or deletion an earlier run left unfinished.
    pub async fn unfinished_documents(&self) -> Result<Vec<DocumentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, kind, status FROM documents \
             WHERE status IN ('parsing', 'chunking', 'embedding', 'deleting')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Moves a document to the next stage; false if it is no longer there (deleted).
    pub async fn set_document_stage(
        &self,
        id: &str,
        status: DocumentStatus,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET status = ?, updated_at = ? WHERE id = ? AND status != 'deleting'",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user who owns a document, if it exists.
    pub async fn document_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM documents WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Whether a document waits in the ingestion queue.
    pub async fn is_queued(&self, id: &str) -> Result<bool, StoreError> {
        let queued: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM documents WHERE id = ? AND status = 'queued'")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(queued.is_some())
    }

    /// Back to the queue, with progress reset (after an interrupted run).
    pub async fn requeue_document(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE documents SET status = 'queued', chunks_embedded = 0, error = NULL, updated_at = ? \
             WHERE id = ? AND status != 'deleting'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_document_parsed(
        &self,
        id: &str,
        title: Option<&str>,
        pages: Option<u32>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET status = 'chunking', title = ?, pages = ?, updated_at = ? \
             WHERE id = ? AND status != 'deleting'",
        )
        .bind(title)
        .bind(pages)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_document_chunked(&self, id: &str, chunks: u32) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET status = 'embedding', chunks = ?, chunks_embedded = 0, updated_at = ? \
             WHERE id = ? AND status != 'deleting'",
        )
        .bind(chunks)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_chunks_embedded(&self, id: &str, done: u32) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE documents SET chunks_embedded = ?, updated_at = ? WHERE id = ? AND status = 'embedding'",
        )
        .bind(done)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn fail_document(&self, id: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE documents SET status = 'failed', error = ?, updated_at = ? \
             WHERE id = ? AND status != 'deleting'",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn row_from(r: &sqlx::sqlite::SqliteRow) -> Result<DocumentRow, StoreError> {
    Ok(DocumentRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        status: r.try_get("status")?,
    })
}

fn document_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<DocumentView, StoreError> {
    let status: String = r.try_get("status")?;
    let to_u32 = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    Ok(DocumentView {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        size_bytes: u64::try_from(r.try_get::<i64, _>("size_bytes")?).unwrap_or(0),
        status: DocumentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("document status {status:?}")))?,
        error: r.try_get("error")?,
        pages: to_u32(r.try_get("pages")?),
        chunks: to_u32(r.try_get("chunks")?),
        chunks_embedded: to_u32(Some(r.try_get("chunks_embedded")?)).unwrap_or(0),
        created_at_ms: r.try_get("created_at")?,
    })
}
