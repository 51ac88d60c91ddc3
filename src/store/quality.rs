//! What the operators' quality loop reads: the turns that may be knowledge
//! gaps (with their question, answer and signs), the voted answers with the
//! sources they were given, and the documents those sources name.

use super::{json_list, DbRow, Store, StoreError};
use app::wire::Source;

/// A turn that may be a knowledge gap, with what decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct GapCandidate {
    pub at: i64,
    pub user_id: String,
    /// The user message the answer follows.
    pub question: String,
    pub answer: String,
    /// Documents were searched for it.
    pub searched: bool,
    /// Passages given to the model.
    pub sources: u64,
    /// The best passage's cosine similarity to the question.
    pub top_score: Option<f64>,
    pub down_votes: u64,
}

/// An answer voted on in the range, with its votes and sources.
#[derive(Debug, Clone, PartialEq)]
pub struct VotedAnswer {
    pub question: String,
    pub answer: String,
    pub sources: Vec<Source>,
    pub up: u64,
    pub down: u64,
    /// The latest vote on it.
    pub voted_at: i64,
}

/// What the quality view shows of a document row (one build of a version).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentLabel {
    pub id: String,
    pub name: String,
    pub lineage_id: String,
    pub version: i64,
    pub collection: Option<String>,
    /// The build that answers now (not replaced by a newer build or version).
    pub current: bool,
}

/// Ids per `IN (…)` list: far below either backend's limit on parameters.
const IDS_PER_QUERY: usize = 500;

impl Store {
    /// The latest `limit` turns in `[since, until)` (newest first) that
    /// searched documents and found no passage or only ones scoring below
    /// `low_score`, whose answer was voted down, or whose answer contains
    /// any of `answer_words` (lowercase; a coarse filter the caller refines).
    pub async fn gap_candidates(
        &self,
        since: i64,
        until: i64,
        low_score: f64,
        answer_words: &[&str],
        limit: i64,
    ) -> Result<Vec<GapCandidate>, StoreError> {
        let down =
            "(SELECT COUNT(*) FROM feedback f WHERE f.message_id = e.message_id AND f.rating < 0)";
        let mentions: String = (0..answer_words.len())
            .map(|i| format!(" OR LOWER(m.content) LIKE ${}", i + 5))
            .collect();
        let sql = format!(
            "SELECT e.at, e.user_id, e.searched, e.sources, e.top_score, m.content AS answer, \
               COALESCE(q.content, '') AS question, {down} AS down \
             FROM chat_events e JOIN messages m ON m.id = e.message_id \
             LEFT JOIN messages q ON q.id = m.parent_id \
             WHERE e.at >= $1 AND e.at < $2 \
               AND ((e.searched AND (e.sources = 0 OR e.top_score < $3)) OR {down} > 0{mentions}) \
             ORDER BY e.at DESC LIMIT $4"
        );
        on_db!(self, db => {
            let mut query = sqlx::query(&sql).bind(since).bind(until).bind(low_score).bind(limit);
            for word in answer_words {
                query = query.bind(format!("%{word}%"));
            }
            query
                .fetch_all(db)
                .await?
                .iter()
                .map(|r| {
                    Ok(GapCandidate {
                        at: r.int("at")?,
                        user_id: r.text("user_id")?,
                        question: r.text("question")?,
                        answer: r.text("answer")?,
                        searched: r.flag("searched")?,
                        sources: r.int("sources")?.max(0) as u64,
                        top_score: r.opt_real("top_score")?,
                        down_votes: r.int("down")?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    /// The latest `limit` answers with votes changed in `[since, until)`
    /// that were given sources, newest vote first.
    pub async fn voted_answers(
        &self,
        since: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<VotedAnswer>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT m.sources, m.content, COALESCE(q.content, '') AS question, \
               CAST(SUM(CASE WHEN f.rating > 0 THEN 1 ELSE 0 END) AS BIGINT) AS up, \
               CAST(SUM(CASE WHEN f.rating < 0 THEN 1 ELSE 0 END) AS BIGINT) AS down, \
               MAX(f.updated_at) AS voted_at \
             FROM feedback f JOIN messages m ON m.id = f.message_id \
             LEFT JOIN messages q ON q.id = m.parent_id \
             WHERE f.updated_at >= $1 AND f.updated_at < $2 AND m.sources IS NOT NULL \
             GROUP BY m.id, q.id ORDER BY voted_at DESC, m.id LIMIT $3",
        )
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(VotedAnswer {
                question: r.text("question")?,
                answer: r.text("content")?,
                sources: json_list(r, "sources")?,
                up: r.int("up")?.max(0) as u64,
                down: r.int("down")?.max(0) as u64,
                voted_at: r.int("voted_at")?,
            })
        })
        .collect())
    }

    /// Name, version and collection of each listed document that still exists.
    pub async fn document_labels(&self, ids: &[String]) -> Result<Vec<DocumentLabel>, StoreError> {
        let mut labels = Vec::new();
        for batch in ids.chunks(IDS_PER_QUERY) {
            let placeholders = super::placeholders(1, batch.len());
            let sql = format!(
                "SELECT d.id, d.name, COALESCE(d.lineage_id, d.id) AS lineage_id, d.version, \
                   (d.status = 'indexed' AND d.superseded_at IS NULL) AS is_current, c.name AS collection \
                 FROM documents d LEFT JOIN collections c ON c.id = d.collection_id \
                 WHERE d.id IN ({placeholders})"
            );
            let rows: Vec<DocumentLabel> = on_db!(self, db => {
                let mut query = sqlx::query(&sql);
                for id in batch {
                    query = query.bind(id);
                }
                query
                    .fetch_all(db)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(DocumentLabel {
                            id: r.text("id")?,
                            name: r.text("name")?,
                            lineage_id: r.text("lineage_id")?,
                            version: r.int("version")?,
                            collection: r.opt_text("collection")?,
                            current: r.flag("is_current")?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?
            });
            labels.extend(rows);
        }
        Ok(labels)
    }
}
