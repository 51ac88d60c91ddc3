//! The response cache's entries, and the document versions their keys use.

use super::{json_list, now_ms, DbRow, Store, StoreError};
use app::wire::Source;
use std::collections::HashMap;

/// An answer kept in the response cache.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub model: String,
    pub answer: String,
    pub sources: Vec<Source>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Store {
    /// A live cache entry.
    pub async fn cached_answer(&self, key: &str) -> Result<Option<CachedAnswer>, StoreError> {
        let tokens = |n: i64| u32::try_from(n).unwrap_or(0);
        on_db!(self, db => match sqlx::query(
            "SELECT model, answer, sources, prompt_tokens, completion_tokens FROM response_cache \
             WHERE key = $1 AND expires_at > $2",
        )
        .bind(key)
        .bind(now_ms())
        .fetch_optional(db)
        .await?
        {
            Some(row) => Ok(Some(CachedAnswer {
                model: row.text("model")?,
                answer: row.text("answer")?,
                sources: json_list(&row, "sources")?,
                prompt_tokens: tokens(row.int("prompt_tokens")?),
                completion_tokens: tokens(row.int("completion_tokens")?),
            })),
            None => Ok(None),
        })
    }

    /// Stores an answer with the documents it used; expired entries go too.
    /// An answer whose document was deleted meanwhile is not stored.
    pub async fn cache_answer(
        &self,
        key: &str,
        answer: &CachedAnswer,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut documents: Vec<&str> = answer
            .sources
            .iter()
            .map(|s| s.document_id.as_str())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM response_cache WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            for id in &documents {
                // Postgres: the row lock makes a concurrent delete of the
                // document wait for this entry (and then drop it), or makes
                // this check see the delete. SQLite holds its write lock already.
                let lock = if self.is_shared() { " FOR SHARE" } else { "" };
                let live = sqlx::query(&format!(
                    "SELECT 1 FROM documents WHERE id = $1 AND status = 'indexed'{lock}"
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    return Ok(());
                }
            }
            sqlx::query(
                "INSERT INTO response_cache \
                 (key, model, answer, sources, prompt_tokens, completion_tokens, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (key) DO UPDATE SET model = excluded.model, answer = excluded.answer, \
                   sources = excluded.sources, prompt_tokens = excluded.prompt_tokens, \
                   completion_tokens = excluded.completion_tokens, created_at = excluded.created_at, \
                   expires_at = excluded.expires_at",
            )
            .bind(key)
            .bind(&answer.model)
            .bind(&answer.answer)
            .bind(serde_json::to_string(&answer.sources).ok())
            .bind(i64::from(answer.prompt_tokens))
            .bind(i64::from(answer.completion_tokens))
            .bind(now)
            .bind(now.saturating_add(ttl_ms))
            .execute(&mut *tx)
            .await?;
            for id in documents {
                sqlx::query(
                    "INSERT INTO response_cache_documents (key, document_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Drops every cached answer that used the document.
    pub async fn invalidate_cache_for_document(
        &self,
        document_id: &str,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "DELETE FROM response_cache WHERE key IN \
             (SELECT key FROM response_cache_documents WHERE document_id = $1)",
        )
        .bind(document_id)
        .execute(db)
        .await?
        .rows_affected()))
    }

    /// The content hash (the version) of each listed document that still exists.
    pub async fn document_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(HashMap::new());
        }
        // One query per turn, not one per passage.
        let sql = format!(
            "SELECT id, content_hash FROM documents WHERE id IN ({})",
            super::placeholders(1, unique.len())
        );
        let versions: HashMap<String, String> = on_db!(self, db => {
            let mut query = sqlx::query_as::<_, (String, String)>(&sql);
            for id in &unique {
                query = query.bind(*id);
            }
            query.fetch_all(db).await?.into_iter().collect()
        });
        Ok(versions)
    }
}
