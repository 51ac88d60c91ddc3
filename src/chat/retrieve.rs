//! Retrieval: embed the question, search the chunks in the question's scope
//! (the collections the user may read; dense + BM25, fused), and number the
//! hits as sources for the prompt.

use crate::config::{FusionKind, RetrievalMode, RetrievalSettings};
use crate::embed::Embedder;
use crate::index::{
    bm25, Fusion, FusionMethod, Hit, Scope, SearchMode, SearchRequest, VectorIndex,
};
use app::wire::Source;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Hits fetched per passage wanted when neighbours are merged.
const POOL_FACTOR: usize = 2;

pub struct Retriever {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorIndex>,
    settings: RetrievalSettings,
}

/// The hits for one question and what each step cost.
pub struct Retrieved {
    pub hits: Vec<Hit>,
    /// The best passage's cosine similarity to the question, if the dense
    /// search ranked any.
    pub top_score: Option<f32>,
    pub embed_ms: f64,
    pub search_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("embedding the question failed: {0}")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("searching the index failed: {0}")]
    Index(#[from] crate::index::IndexError),
}

pub fn search_mode(mode: RetrievalMode) -> SearchMode {
    match mode {
        RetrievalMode::Dense => SearchMode::Dense,
        RetrievalMode::Sparse => SearchMode::Sparse,
        RetrievalMode::Hybrid => SearchMode::Hybrid,
    }
}

/// The index's fusion for the configured one.
pub fn fusion(settings: &RetrievalSettings) -> Fusion {
    Fusion {
        method: match settings.fusion {
            FusionKind::Rrf => FusionMethod::Rrf,
            FusionKind::Zscore => FusionMethod::ZScore,
        },
        dense_weight: settings.dense_weight,
        sparse_weight: settings.sparse_weight,
    }
}

impl Retriever {
    pub fn new(
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
        settings: RetrievalSettings,
    ) -> Self {
        Self {
            embedder,
            index,
            settings,
        }
    }

    /// The configured number of chunks per question.
    pub fn top_k(&self) -> usize {
        self.settings.top_k
    }

    /// What the embedder that embeds questions is called in the index.
    pub fn embedder_id(&self) -> String {
        crate::embed::embedder_id(self.embedder.as_ref())
    }

    /// The scope of one user's own documents only (their private
    /// collection has their id), for tools and evaluations.
    pub fn private_scope(&self, user_id: &str) -> Scope {
        Scope {
            collections: vec![user_id.to_owned()],
            embedder: self.embedder_id(),
            hidden_documents: Vec::new(),
        }
    }

    /// The `top_k` chunks within `scope` that best match `question`.
    pub async fn retrieve(
        &self,
        scope: &Scope,
        question: &str,
    ) -> Result<Retrieved, RetrieveError> {
        self.retrieve_top(scope, question, self.settings.top_k)
            .await
    }

    /// [`Retriever::retrieve`] with another number of chunks (experiments).
    #[tracing::instrument(skip_all, fields(collections = scope.collections.len()))]
    pub async fn retrieve_top(
        &self,
        scope: &Scope,
        question: &str,
        top_k: usize,
    ) -> Result<Retrieved, RetrieveError> {
        let query = self.embed(question).await?;
        let started = Instant::now();
        let hits = self.search(scope, &query, top_k).await?;
        Ok(self.passages(hits, top_k, query.embed_ms, started))
    }

    /// The question as the search needs it (its embedding is the slow part,
    /// done before the scope is read).
    pub async fn embed(&self, question: &str) -> Result<Query, RetrieveError> {
        let started = Instant::now();
        let dense = match self.settings.mode {
            // Sparse-only search needs no embedding.
            RetrievalMode::Sparse => Vec::new(),
            _ => self.embedder.embed_query(question.to_string()).await?,
        };
        Ok(Query {
            dense,
            sparse: bm25::query_vector(question),
            embed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The best hits within `scope`, enough of them for `top_k` passages.
    pub async fn search(
        &self,
        scope: &Scope,
        query: &Query,
        top_k: usize,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let top_k = top_k.max(1);
        // Merging joins neighbours into one passage: more hits are needed
        // to fill `top_k` passages.
        let limit = match self.settings.merge_neighbours {
            true => top_k * POOL_FACTOR,
            false => top_k,
        };
        Ok(self
            .index
            .search(SearchRequest {
                scope: scope.clone(),
                dense: query.dense.clone(),
                sparse: query.sparse.clone(),
                limit,
                mode: search_mode(self.settings.mode),
                fusion: fusion(&self.settings),
            })
            .await?)
    }

    /// The hits as at most `top_k` passages (neighbours merged), timed from
    /// `search_started`.
    pub fn passages(
        &self,
        hits: Vec<Hit>,
        top_k: usize,
        embed_ms: f64,
        search_started: Instant,
    ) -> Retrieved {
        let top_k = top_k.max(1);
        let mut hits = match self.settings.merge_neighbours {
            true => merge_neighbours(hits, self.settings.max_passage_chars, top_k),
            false => hits,
        };
        hits.truncate(top_k);
        let top_score = hits
            .iter()
            .filter_map(|h| h.dense_score)
            .max_by(f32::total_cmp);
        Retrieved {
            hits,
            top_score,
            embed_ms,
            search_ms: search_started.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

/// An embedded question.
pub struct Query {
    pub dense: Vec<f32>,
    pub sparse: crate::index::SparseVector,
    pub embed_ms: f64,
}

/// Joins hits of one document whose text overlaps or touches (consecutive
/// chunks share their overlap) into one passage, in the place of the better
/// ranked one, as long as the passage stays within `max_chars`: the context
/// then holds each piece of text once, an answer cut by a chunk boundary
/// arrives whole, and a region where several hits cluster reads as one.
///
/// Only the best `passages` hits are merged. Hits after them fill the
/// places merging freed, with new ground only: one that touches a passage
/// already kept would spend the budget on more of the same region.
pub fn merge_neighbours(hits: Vec<Hit>, max_chars: usize, passages: usize) -> Vec<Hit> {
    let mut kept: Vec<Passage> = Vec::with_capacity(passages);
    for (rank, hit) in hits.into_iter().enumerate() {
        let mut merged = Passage::new(rank, hit);
        if rank >= passages {
            if kept.len() >= passages {
                break;
            }
            if !kept.iter().any(|p| p.touches(&merged)) {
                kept.push(merged);
            }
            continue;
        }
        // A hit may bridge two passages already kept: absorb them all.
        while let Some(i) = kept
            .iter()
            .position(|p| p.touches(&merged) && p.joined_chars(&merged) <= max_chars as u64)
        {
            merged = kept.swap_remove(i).join(merged);
        }
        kept.push(merged);
    }
    kept.sort_by_key(|p| p.rank);
    kept.into_iter().map(|p| p.hit).collect()
}

/// Consecutive chunks of one section, joined.
struct Passage {
    /// The rank of the best hit in it.
    rank: usize,
    hit: Hit,
    /// Its first and last chunk.
    chunks: (u32, u32),
}

impl Passage {
    fn new(rank: usize, hit: Hit) -> Self {
        let index = hit.payload.chunk_index;
        Self {
            rank,
            hit,
            chunks: (index, index),
        }
    }

    /// Of one section (same page and heading, so the joined passage is still
    /// cited correctly), and sharing text, meeting, or made of consecutive
    /// chunks.
    fn touches(&self, other: &Passage) -> bool {
        let (a, b) = (&self.hit.payload, &other.hit.payload);
        a.document_id == b.document_id
            && a.page == b.page
            && a.heading_path == b.heading_path
            && ((a.char_start <= b.char_end && b.char_start <= a.char_end)
                || (self.chunks.0 <= other.chunks.1.saturating_add(1)
                    && other.chunks.0 <= self.chunks.1.saturating_add(1)))
    }

    /// About how long the union is: both whole, and what lies between.
    fn joined_chars(&self, other: &Passage) -> u64 {
        let (a, b) = (&self.hit.payload, &other.hit.payload);
        let span = a.char_end.max(b.char_end) - a.char_start.min(b.char_start);
        span.min((a.char_end - a.char_start) + (b.char_end - b.char_start) + 2)
    }

    /// The union: the text in document order, the better rank, score and
    /// id, the first one's place (heading, page, chunk).
    fn join(self, other: Passage) -> Passage {
        let rank = self.rank.min(other.rank);
        let chunks = (
            self.chunks.0.min(other.chunks.0),
            self.chunks.1.max(other.chunks.1),
        );
        let (a, b) = (self.hit, other.hit);
        let dense_score = match (a.dense_score, b.dense_score) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        let (id, score) = if b.score > a.score {
            (b.id, b.score)
        } else {
            (a.id, a.score)
        };
        let (first, second) = if b.payload.char_start < a.payload.char_start {
            (b.payload, a.payload)
        } else {
            (a.payload, b.payload)
        };
        let mut payload = first;
        if second.char_end > payload.char_end {
            if second.char_start <= payload.char_end {
                let shared =
                    usize::try_from(payload.char_end - second.char_start).unwrap_or(usize::MAX);
                payload.text.extend(second.text.chars().skip(shared));
            } else {
                // Chunks end and start trimmed: what lay between was a
                // space (a sentence or word split) or a paragraph break.
                let gap = second.char_start - payload.char_end;
                payload.text.push_str(if gap > 1 { "\n\n" } else { " " });
                payload.text.push_str(&second.text);
            }
            payload.char_end = second.char_end;
        }
        payload.chunk_index = chunks.0;
        Passage {
            rank,
            hit: Hit {
                id,
                score,
                dense_score,
                payload,
            },
            chunks,
        }
    }
}

/// Numbers hits 1, 2, … as the model will cite them.
/// The hits as numbered sources, each naming its collection.
pub fn sources_from(hits: Vec<Hit>, collections: &HashMap<String, String>) -> Vec<Source> {
    hits.into_iter()
        .zip(1u32..)
        .map(|(hit, n)| {
            let heading = (!hit.payload.heading_path.is_empty())
                .then(|| hit.payload.heading_path.join(" › "));
            Source {
                n,
                document_id: hit.payload.document_id,
                collection: collections.get(&hit.payload.collection).cloned(),
                document_name: hit.payload.document_name,
                page: hit.payload.page,
                heading,
                chunk_index: hit.payload.chunk_index,
                text: hit.payload.text,
                score: hit.score,
                cited: false,
                highlights: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChunkPayload;

    /// Chunk `index` of `doc`, 100 characters from `index * 90` (consecutive
    /// chunks share 10), scored so that lower `rank` comes first.
    fn hit(doc: &str, index: u32, rank: u32) -> Hit {
        let start = u64::from(index) * 90;
        let text: String = (start..start + 100)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        Hit {
            id: uuid::Uuid::from_u128(u128::from(index) + 1000 * doc.len() as u128),
            score: 1.0 / (1.0 + rank as f32),
            dense_score: None,
            payload: ChunkPayload {
                owner: "u".into(),
                collection: "u".into(),
                embedder: "e".into(),
                document_id: doc.into(),
                document_name: format!("{doc}.txt"),
                chunk_index: index,
                text,
                heading_path: vec![],
                page: None,
                char_start: start,
                char_end: start + 100,
            },
        }
    }

    fn spans(hits: &[Hit]) -> Vec<(String, u64, u64)> {
        hits.iter()
            .map(|h| {
                (
                    h.payload.document_id.clone(),
                    h.payload.char_start,
                    h.payload.char_end,
                )
            })
            .collect()
    }

    #[test]
    fn overlapping_neighbours_become_one_passage_with_the_text_once() {
        let merged = merge_neighbours(
            vec![hit("a", 3, 0), hit("b", 0, 1), hit("a", 4, 2)],
            2_000,
            10,
        );
        assert_eq!(
            spans(&merged),
            vec![("a".into(), 270, 460), ("b".into(), 0, 100)]
        );
        let text = &merged[0].payload.text;
        assert_eq!(text.chars().count(), 190, "the shared 10 characters once");
        let expected: String = (270u64..460)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        assert_eq!(text, &expected);
        assert_eq!(merged[0].payload.chunk_index, 3);
        assert_eq!(merged[0].score, hit("a", 3, 0).score, "the better score");
    }

    #[test]
    fn a_hit_bridging_two_passages_joins_them_in_the_best_place() {
        let merged = merge_neighbours(
            vec![
                hit("a", 5, 0),
                hit("b", 9, 1),
                hit("a", 3, 2),
                hit("a", 4, 3),
            ],
            2_000,
            10,
        );
        assert_eq!(
            spans(&merged),
            vec![("a".into(), 270, 550), ("b".into(), 810, 910)]
        );
    }

    #[test]
    fn passages_stay_within_the_length_limit() {
        let hits = (0..6).map(|i| hit("a", i, i)).collect();
        let merged = merge_neighbours(hits, 300, 10);
        assert!(merged.iter().all(|p| p.payload.text.chars().count() <= 300));
        assert_eq!(merged.len(), 2, "{:?}", spans(&merged));
    }

    #[test]
    fn later_hits_only_fill_freed_places_with_new_ground() {
        // The best two are neighbours (one passage); of the later hits, the
        // one touching it is skipped and the one elsewhere fills the place.
        let merged = merge_neighbours(
            vec![
                hit("a", 1, 0),
                hit("a", 2, 1),
                hit("a", 3, 2),
                hit("a", 8, 3),
            ],
            2_000,
            2,
        );
        assert_eq!(
            spans(&merged),
            vec![("a".into(), 90, 280), ("a".into(), 720, 820)]
        );
    }

    #[test]
    fn passages_never_join_across_pages_or_sections() {
        let mut page_two = hit("a", 2, 1);
        page_two.payload.page = Some(2);
        let mut other_heading = hit("a", 3, 2);
        other_heading.payload.heading_path = vec!["Costs".into()];
        let merged = merge_neighbours(vec![hit("a", 1, 0), page_two, other_heading], 2_000, 10);
        assert_eq!(merged.len(), 3, "each keeps its own citation");
    }

    #[test]
    fn consecutive_chunks_with_a_paragraph_break_between_join() {
        let mut next = hit("a", 2, 1);
        next.payload.char_start += 20;
        next.payload.char_end += 20;
        let merged = merge_neighbours(vec![hit("a", 1, 0), next], 2_000, 10);
        assert_eq!(merged.len(), 1);
        assert!(merged[0].payload.text.contains("\n\n"));
        assert_eq!(merged[0].payload.char_end, 300);
    }

    /// Chunk `index` of one section without overlap: 100 characters every
    /// 101 (a space between).
    fn tiled(index: u32, rank: u32) -> Hit {
        let mut hit = hit("a", index, rank);
        hit.payload.char_start = u64::from(index) * 101;
        hit.payload.char_end = hit.payload.char_start + 100;
        hit
    }

    #[test]
    fn a_passage_grows_at_both_ends_without_overlap() {
        for order in [[3, 4, 5, 2], [4, 3, 2, 5], [5, 3, 4, 2]] {
            let hits = order.iter().zip(0..).map(|(&i, r)| tiled(i, r)).collect();
            let merged = merge_neighbours(hits, 2_000, 10);
            assert_eq!(merged.len(), 1, "{order:?}: {:?}", spans(&merged));
            assert_eq!(
                (merged[0].payload.char_start, merged[0].payload.char_end),
                (202, 605)
            );
            assert_eq!(merged[0].payload.chunk_index, 2);
            assert_eq!(
                merged[0].payload.text.chars().count(),
                403,
                "a space between each"
            );
        }
    }

    #[test]
    fn distant_chunks_and_other_documents_stay_apart() {
        let merged = merge_neighbours(
            vec![hit("a", 1, 0), hit("a", 5, 1), hit("bb", 2, 2)],
            2_000,
            10,
        );
        assert_eq!(merged.len(), 3);
    }
}
