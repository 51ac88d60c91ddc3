//! Versions of documents: the swap clock and the swap itself, what a search
//! must hide and which builds answered at a tick, removing replaced builds'
//! vectors, re-index builds, and labelling documents from before.

use super::{now_ms, placeholders, Store, StoreError};

/// Document builds a search hides at most; more means something is stuck,
/// and the search is refused rather than shown them.
pub const MAX_HIDDEN: usize = 10_000;

impl Store {
    /// The swap clock's tick, and the document builds in these collections
    /// whose vectors may be in the index but must not answer (being indexed
    /// or queued, replaced but not yet removed, failed, being deleted), read
    /// in one statement so both are of the same moment. Few at any time: only
    /// work in flight. More than [`MAX_HIDDEN`] is refused (`None`) rather
    /// than cut short.
    pub async fn hidden_documents(
        &self,
        collections: &[String],
    ) -> Result<Option<(i64, Vec<String>)>, StoreError> {
        let sql = format!(
            "SELECT CAST(tick AS TEXT) AS value, CAST(0 AS BIGINT) AS hidden FROM swap_clock WHERE id = 1 \
             UNION ALL \
             SELECT id AS value, CAST(1 AS BIGINT) AS hidden FROM documents WHERE collection_id IN ({}) \
               AND purged_at IS NULL AND (status != 'indexed' OR superseded_at IS NOT NULL) \
             LIMIT {}",
            placeholders(1, collections.len().max(1)),
            MAX_HIDDEN + 2
        );
        let rows: Vec<(String, i64)> = on_db!(self, db => {
            let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
            for id in collections {
                query = query.bind(id);
            }
            if collections.is_empty() {
                query = query.bind("");
            }
            query.fetch_all(db).await?
        });
        let mut tick = None;
        let mut hidden = Vec::new();
        for (value, is_hidden) in rows {
            match is_hidden {
                0 => tick = value.parse::<i64>().ok(),
                _ => hidden.push(value),
            }
        }
        let Some(tick) = tick else {
            return Err(StoreError::Corrupt("the swap clock is missing".into()));
        };
        if hidden.len() > MAX_HIDDEN {
            return Ok(None);
        }
        Ok(Some((tick, hidden)))
    }

    /// Marks every version of a document for deletion; returns their ids
    /// with the status each had (none if it is already gone). Answers built on any of them are no
    /// longer served from the cache.
    pub async fn mark_lineage_deleting(
        &self,
        lineage_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let marked: Vec<(String, String)> = on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            // The swap clock's lock first, as a swap takes it: the two never
            // wait for each other's rows.
            sqlx::query("UPDATE swap_clock SET tick = tick WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let marked: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, status FROM documents WHERE lineage_id = $1 AND status != 'deleting'",
            )
            .bind(lineage_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE documents SET status = 'deleting', updated_at = $1 \
                 WHERE lineage_id = $2 AND status != 'deleting'",
            )
            .bind(now_ms())
            .bind(lineage_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            marked
        });
        for (id, _) in &marked {
            self.invalidate_cache_for_document(id).await?;
        }
        Ok(marked)
    }

    /// The swap: the build becomes the document's answering version in one
    /// step (one tick of the swap clock), and every older one (lower
    /// version, or an earlier build of the same version) stops answering
    /// at that tick. If a newer one already answers, this build is
    /// superseded at once instead. Swaps take the clock's row lock first, so
    /// they run one at a time across replicas. False if the build was
    /// deleted (or taken back to the queue) meanwhile.
    pub async fn finish_document(
        &self,
        id: &str,
        embedder: &str,
        chunker: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            let tick: i64 = sqlx::query_scalar(
                "UPDATE swap_clock SET tick = tick + 1 WHERE id = 1 RETURNING tick",
            )
            .fetch_one(&mut *tx)
            .await?;
            let row: Option<(String, i64, i64)> = sqlx::query_as(
                "SELECT lineage_id, version, created_at FROM documents \
                 WHERE id = $1 AND status = 'embedding'",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((lineage, version, created_at)) = row else {
                return Ok(false);
            };
            let newer: Option<String> = sqlx::query_scalar(
                "SELECT id FROM documents WHERE lineage_id = $1 AND id != $2 AND status = 'indexed' \
                 AND superseded_at IS NULL AND (version > $3 OR (version = $3 AND created_at > $4)) LIMIT 1",
            )
            .bind(&lineage)
            .bind(id)
            .bind(version)
            .bind(created_at)
            .fetch_optional(&mut *tx)
            .await?;
            // The ones it replaces first: a rebuild repeats their content,
            // which only one current build may have.
            if newer.is_none() {
                sqlx::query(
                    "UPDATE documents SET superseded_at = $1, answering_until = $2 \
                     WHERE lineage_id = $3 AND id != $4 AND status = 'indexed' AND superseded_at IS NULL",
                )
                .bind(now)
                .bind(tick)
                .bind(&lineage)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE documents SET status = 'indexed', building = 0, embedder = $1, chunker = $2, \
                 superseded_at = $3, answering_from = $4, answering_until = $5, updated_at = $6 \
                 WHERE id = $7",
            )
            .bind(embedder)
            .bind(chunker)
            .bind(newer.as_ref().map(|_| now))
            .bind(tick)
            .bind(newer.as_ref().map(|_| tick))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Which of these builds answered at swap-clock `tick`.
    pub async fn answering_at(
        &self,
        ids: &[String],
        tick: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT id FROM documents WHERE id IN ({}) AND answering_from <= $1 \
             AND (answering_until IS NULL OR answering_until > $1)",
            placeholders(2, ids.len())
        );
        Ok(on_db!(self, db => {
            let mut query = sqlx::query_scalar::<_, String>(&sql).bind(tick);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(db).await?.into_iter().collect()
        }))
    }

    /// Builds whose vectors may now go: replaced before `before_ms` (a
    /// question that read the old state just before the swap has had time to
    /// finish its search), or failed with their vectors' removal failing.
    pub async fn builds_to_purge(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT id FROM documents WHERE purged_at IS NULL \
             AND ((superseded_at IS NOT NULL AND superseded_at < $1) OR status = 'failed') \
             ORDER BY updated_at LIMIT 100",
        )
        .bind(before_ms)
        .fetch_all(db)
        .await?))
    }

    /// Records that a build's vectors are gone from the index.
    pub async fn set_purged(&self, id: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query("UPDATE documents SET purged_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(db)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Indexed documents from before the index recorded collections and
    /// embedders: (id, collection).
    pub async fn unlabelled_documents(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_as(
            "SELECT id, collection_id FROM documents WHERE embedder IS NULL AND status = 'indexed' \
             AND purged_at IS NULL",
        )
        .fetch_all(db)
        .await?))
    }

    /// Records what made a document's vectors.
    pub async fn set_document_builder(
        &self,
        id: &str,
        embedder: &str,
        chunker: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE documents SET embedder = $1, chunker = $2 WHERE id = $3",
        )
        .bind(embedder)
        .bind(chunker)
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The answering builds of a collection not made by this embedder and
    /// chunker (all of them if `all`), with no rebuild already under way.
    pub async fn documents_to_rebuild(
        &self,
        collection_id: &str,
        embedder: &str,
        chunker: &str,
        all: bool,
    ) -> Result<Vec<String>, StoreError> {
        let base =
            "SELECT d.id FROM documents d WHERE d.collection_id = $1 AND d.status = 'indexed' \
             AND d.superseded_at IS NULL AND NOT EXISTS (SELECT 1 FROM documents b \
               WHERE b.lineage_id = d.lineage_id AND b.building = 1 \
               AND b.status NOT IN ('failed', 'deleting', 'indexed'))";
        Ok(on_db!(self, db => if all {
            sqlx::query_scalar(&format!("{base} LIMIT 10000"))
                .bind(collection_id)
                .fetch_all(db)
                .await?
        } else {
            sqlx::query_scalar(&format!(
                "{base} AND (d.embedder IS NULL OR d.embedder != $2 OR d.chunker IS NULL \
                 OR d.chunker != $3) LIMIT 10000"
            ))
            .bind(collection_id)
            .bind(embedder)
            .bind(chunker)
            .fetch_all(db)
            .await?
        }))
    }

    /// Queues a new build of a document's answering version (same version,
    /// same content), to be made with the current embedder and chunker.
    pub async fn queue_rebuild(&self, of: &str, new_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "INSERT INTO documents (id, user_id, collection_id, lineage_id, version, building, name, \
               kind, size_bytes, content_hash, status, title, pages, created_at, updated_at) \
             SELECT $1, user_id, collection_id, lineage_id, version, 1, name, kind, size_bytes, \
               content_hash, 'queued', title, pages, $2, $2 FROM documents \
             WHERE id = $3 AND status = 'indexed' AND superseded_at IS NULL",
        )
        .bind(new_id)
        .bind(now_ms())
        .bind(of)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}
