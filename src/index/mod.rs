//! Vector index: one trait, two Qdrant backends with the same behaviour.
//!
//! * [`edge::EdgeIndex`] — Qdrant Edge, in-process, persisted under a data
//!   directory. The default: nothing to deploy.
//! * [`server::QdrantServerIndex`] — a Qdrant server over gRPC.
//!
//! Each chunk is stored as one point with two named vectors: `dense`
//! (384-d cosine, sentence embedding) and `bm25` (sparse, see [`bm25`]), plus a
//! [`ChunkPayload`]. Both backends keep a keyword index on `collection`
//! (marked as the tenant key), `embedder` and `document_id`, and every search
//! filters on a [`Scope`]: the collections the caller may read at that moment,
//! the embedder that made the query vector, and the documents not to show
//! (versions still being indexed or already replaced). Access is thus decided
//! inside the engine's query, never by dropping results afterwards.
//!
//! Hybrid search runs the dense and the sparse query for a candidate pool
//! each, orders both lists deterministically and fuses them here (see
//! [`Fusion`]), then fetches the payloads of the winners.
//!
//! Both Qdrant Edge 0.9 and the server could fuse natively (prefetch +
//! `Fusion::Rrf`), but they order *equal-score* candidates differently —
//! chunks with the same BM25 score are common (same terms, same length,
//! re-uploaded documents) — and Qdrant's RRF leaves fused ties in hash-map
//! order. Native fusion therefore gave different top-k lists on the two
//! backends, and even between two runs on one. Fusing here makes the ranking
//! a pure function of the candidate scores: identical on both backends.

pub mod bm25;
pub mod edge;
pub mod server;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x6a1d_4c35_8f0e_4b7a_9e21_5d3c_0b8f_2a47);

/// The vector index id of a document's chunk: stable across retries, so a
/// resumed ingestion overwrites rather than duplicates.
pub fn point_id(document_id: &str, chunk_index: u32) -> Uuid {
    Uuid::new_v5(
        &POINT_NAMESPACE,
        format!("{document_id}/{chunk_index}").as_bytes(),
    )
}

/// Name of the dense vector in both backends.
pub const DENSE_VECTOR: &str = "dense";
/// Name of the BM25 sparse vector in both backends.
pub const SPARSE_VECTOR: &str = "bm25";
/// Payload keys that carry a keyword index.
pub const COLLECTION_FIELD: &str = "collection";
pub const EMBEDDER_FIELD: &str = "embedder";
pub const DOCUMENT_ID_FIELD: &str = "document_id";
/// The indexed payload fields, and whether each is the tenant key.
const INDEXED_FIELDS: [(&str, bool); 3] = [
    (COLLECTION_FIELD, true),
    (EMBEDDER_FIELD, false),
    (DOCUMENT_ID_FIELD, false),
];
/// The constant of reciprocal rank fusion, in the textbook form
/// `1 / (k + rank)` with 1-based ranks (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;
/// Extra results fetched beyond a limit so ties straddling the cut can be
/// ordered deterministically (see [`sort_hits`]).
const TIE_SLACK: usize = 8;

/// Metadata stored with every chunk. Everything the chat needs to cite a
/// source travels with the vector, so a search needs no second lookup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkPayload {
    /// The user who uploaded the document.
    pub owner: String,
    /// The collection it belongs to: what access is decided on.
    /// (Empty on points from before collections, until labelled.)
    #[serde(default)]
    pub collection: String,
    /// The embedding model (and dimension) that made its dense vector.
    #[serde(default)]
    pub embedder: String,
    /// The document build (one version, one embedder) it is a chunk of.
    pub document_id: String,
    pub document_name: String,
    pub chunk_index: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// Char offsets into the document's extracted text.
    pub char_start: u64,
    pub char_end: u64,
}

/// Sparse vector with indices sorted ascending and unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    fn validate(&self) -> Result<(), IndexError> {
        if self.indices.len() != self.values.len() {
            return Err(IndexError::InvalidInput(format!(
                "sparse vector has {} indices but {} values",
                self.indices.len(),
                self.values.len()
            )));
        }
        if !self.indices.windows(2).all(|w| w[0] < w[1]) {
            return Err(IndexError::InvalidInput(
                "sparse vector indices must be sorted and unique".into(),
            ));
        }
        if !self.values.iter().all(|v| v.is_finite()) {
            return Err(IndexError::InvalidInput(
                "sparse vector has a non-finite value".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPoint {
    pub id: uuid::Uuid,
    pub dense: Vec<f32>,
    pub sparse: SparseVector,
    pub payload: ChunkPayload,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Dense,
    Sparse,
    #[default]
    Hybrid,
}

/// How hybrid search combines the dense and the BM25 candidate lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub method: FusionMethod,
    /// Weight of the dense (embedding) list.
    pub dense_weight: f32,
    /// Weight of the BM25 list.
    pub sparse_weight: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusionMethod {
    /// Reciprocal rank fusion: `Σ weight / (k + rank)`. Looks at ranks only,
    /// so a retriever's confidence in its top candidate counts for nothing.
    Rrf,
    /// Distribution-based score fusion (as Qdrant's `Fusion::Dbsf`): each
    /// list's scores become z-scores over its candidate pool, so a candidate
    /// that stands far above the rest of its list (strong evidence: rare
    /// query terms matched, or an unusually close embedding) outweighs one
    /// that tops a flat list. Each retriever is thus weighed per query by how
    /// decisively it ranks, times its configured weight.
    ZScore,
}

impl Default for Fusion {
    fn default() -> Self {
        Self {
            method: FusionMethod::Rrf,
            dense_weight: 1.0,
            sparse_weight: 1.0,
        }
    }
}

/// What a search may see. Built from the database at the moment of the
/// question, and applied as the engine query's filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Collections the caller may read (and chose); never empty.
    pub collections: Vec<String>,
    /// Only vectors of this embedder (the one that embedded the query).
    pub embedder: String,
    /// Document builds whose vectors are in the index but must not answer:
    /// versions still being indexed, replaced or being deleted.
    pub hidden_documents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub scope: Scope,
    /// Query embedding; must have the index's dimension, except in
    /// [`SearchMode::Sparse`], where it is ignored (may be empty).
    pub dense: Vec<f32>,
    /// [`bm25::query_vector`] of the query text. May be empty (e.g. a query made
    /// only of stopwords): sparse search then finds nothing and hybrid search
    /// degenerates to the dense ranking.
    pub sparse: SparseVector,
    pub limit: usize,
    pub mode: SearchMode,
    /// How [`SearchMode::Hybrid`] combines the two lists.
    pub fusion: Fusion,
}

/// One search result. `score` is cosine similarity (dense), BM25 (sparse) or
/// the fused score (hybrid, ≥ 0); only its order is comparable across modes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: uuid::Uuid,
    pub score: f32,
    /// Cosine similarity of its embedding to the query's, when the dense
    /// search ranked it (how close the best passage is, whatever the fusion).
    pub dense_score: Option<f32>,
    pub payload: ChunkPayload,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("vector dimension mismatch: index has {expected}, got {actual}")]
    DimensionMismatch { expected: usize, actual: usize },
    /// The existing store or collection was created with other parameters.
    #[error("incompatible index: {0}")]
    Incompatible(String),
    /// Another handle, in this process or another, has the Edge store open.
    #[error("index directory {} is in use by another process or handle", .0.display())]
    InUse(std::path::PathBuf),
    #[error("{backend} error: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    #[error("stored payload of point {id} is malformed: {message}")]
    Payload { id: String, message: String },
    #[error("index I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[async_trait::async_trait]
pub trait VectorIndex: Send + Sync + 'static {
    /// "qdrant-edge" or "qdrant".
    fn backend(&self) -> &'static str;
    /// Inserts or replaces points by id. Durable when it returns.
    async fn upsert(&self, points: Vec<ChunkPoint>) -> Result<(), IndexError>;
    /// Removes every chunk of one document build. Durable when it returns.
    async fn delete_document(&self, document_id: &str) -> Result<(), IndexError>;
    /// Exact number of chunks in a collection, optionally of one document.
    async fn count(&self, collection: &str, document_id: Option<&str>) -> Result<u64, IndexError>;
    /// Best chunks within `request.scope` only, best first.
    async fn search(&self, request: SearchRequest) -> Result<Vec<Hit>, IndexError>;
    /// Sets the collection and embedder of a document's chunks (points
    /// written before the index had those fields). Durable when it returns.
    async fn label_document(
        &self,
        document_id: &str,
        collection: &str,
        embedder: &str,
    ) -> Result<(), IndexError>;
}

/// How many candidates each retriever contributes to hybrid fusion: deep
/// enough that a chunk ranked well by only one retriever still makes the cut.
pub fn candidate_pool(limit: usize) -> usize {
    (limit * 4).max(40)
}

/// How many results to ask an engine for so that ties at the cut-off can be
/// resolved identically on both backends (see [`sort_hits`]).
fn fetch_limit(limit: usize) -> usize {
    limit + TIE_SLACK
}

/// Orders one retriever's candidates (id, engine score) best first with the
/// same tie-break as [`sort_hits`] and keeps the best `pool`.
fn rank_candidates(mut candidates: Vec<(uuid::Uuid, f32)>, pool: usize) -> Vec<(uuid::Uuid, f32)> {
    candidates.sort_by(|a, b| ranking(a.0, a.1, b.0, b.1));
    candidates.truncate(pool);
    candidates
}

/// Fuses the dense and (if any) BM25 candidate lists, each best first, into
/// `(id, fused score)` best first, ties broken by id, at most `limit`. Scores
/// are summed in list order, so equal inputs give bit-identical outputs.
fn fuse(
    dense: &[(uuid::Uuid, f32)],
    sparse: Option<&[(uuid::Uuid, f32)]>,
    fusion: Fusion,
    limit: usize,
) -> Vec<(uuid::Uuid, f32)> {
    let lists = std::iter::once((dense, fusion.dense_weight))
        .chain(sparse.map(|list| (list, fusion.sparse_weight)));
    let mut scores: HashMap<uuid::Uuid, f32> = HashMap::new();
    for (list, weight) in lists {
        match fusion.method {
            FusionMethod::Rrf => {
                for (position, (id, _)) in list.iter().enumerate() {
                    *scores.entry(*id).or_insert(0.0) += weight / (RRF_K + (position + 1) as f32);
                }
            }
            FusionMethod::ZScore => {
                let z = z_scores(list);
                // A candidate missing from this list scored below its pool:
                // it gets the list's lowest z-score, not zero.
                let floor = z.last().copied().unwrap_or(0.0);
                for ((id, _), z) in list.iter().zip(&z) {
                    *scores.entry(*id).or_insert(0.0) += weight * (z - floor);
                }
            }
        }
    }
    let mut fused: Vec<(uuid::Uuid, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| ranking(a.0, a.1, b.0, b.1));
    fused.truncate(limit);
    fused
}

/// `(score − mean) / std` of each candidate over its list. A list whose
/// scores are all equal carries no evidence: all zeros.
fn z_scores(list: &[(uuid::Uuid, f32)]) -> Vec<f32> {
    if list.is_empty() {
        return Vec::new();
    }
    let n = list.len() as f64;
    let mean = list.iter().map(|(_, s)| f64::from(*s)).sum::<f64>() / n;
    let variance = list
        .iter()
        .map(|(_, s)| (f64::from(*s) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = variance.sqrt();
    list.iter()
        .map(|(_, s)| {
            if std > 1e-9 {
                ((f64::from(*s) - mean) / std) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Pairs fused ids with their payloads, in fused order. An id without a
/// payload was deleted between the candidate search and the payload fetch;
/// it is dropped rather than failing the search.
fn attach_payloads(
    fused: Vec<(uuid::Uuid, f32)>,
    mut payloads: HashMap<uuid::Uuid, ChunkPayload>,
) -> Vec<Hit> {
    fused
        .into_iter()
        .filter_map(|(id, score)| {
            payloads.remove(&id).map(|payload| Hit {
                id,
                score,
                dense_score: None,
                payload,
            })
        })
        .collect()
}

/// Gives each hit its cosine from the dense candidate list, if it is in it.
fn add_dense_scores(hits: &mut [Hit], dense: &[(uuid::Uuid, f32)]) {
    let scores: HashMap<uuid::Uuid, f32> = dense.iter().copied().collect();
    for hit in hits {
        hit.dense_score = scores.get(&hit.id).copied();
    }
}

/// Hits of a single-retriever search: with dense search, the score is the
/// cosine.
fn single_list(mut hits: Vec<Hit>, mode: SearchMode, limit: usize) -> Vec<Hit> {
    sort_hits(&mut hits);
    hits.truncate(limit);
    if mode == SearchMode::Dense {
        for hit in &mut hits {
            hit.dense_score = Some(hit.score);
        }
    }
    hits
}

/// Orders hits best first with a deterministic tie-break on id (see
/// [`rank_key`]).
///
/// Qdrant returns equal scores in an engine-specific order, and RRF produces
/// exact ties routinely (the dense-only hit at rank r and the sparse-only hit
/// at rank r score the same). Without this the two backends — or two runs of
/// one — could return different top-k lists.
pub fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| ranking(a.id, a.score, b.id, b.score));
}

/// Ranking key of a score: its position in float order with the lowest
/// [`TIE_BITS`] mantissa bits dropped, i.e. scores within ≈2.4·10⁻⁴ relative
/// of each other compare equal (and are then ordered by id).
///
/// Qdrant Edge and the Qdrant server compute the same BM25 score with
/// different summation orders, so exactly tied chunks (same terms, same
/// length — e.g. a document uploaded twice) come out one or two ULPs apart,
/// in a different direction on each backend. Comparing raw floats let those
/// ULPs reorder ties differently per backend; differences this small carry no
/// relevance signal, so they are treated as ties.
pub fn rank_key(score: f32) -> i32 {
    // Standard total-order transform: makes the bit pattern of negative
    // scores (cosine can be negative) sort correctly as a signed integer.
    let bits = score.to_bits() as i32;
    let ordered = bits ^ ((((bits >> 31) as u32) >> 1) as i32);
    ordered >> TIE_BITS
}

/// Mantissa bits ignored by [`rank_key`]: 2¹² ULPs per bucket, so a
/// ULP-level disagreement between backends lands in different buckets only
/// about once in a thousand exact ties.
const TIE_BITS: u32 = 12;

/// Best first: higher [`rank_key`], then smaller id.
fn ranking(a_id: uuid::Uuid, a_score: f32, b_id: uuid::Uuid, b_score: f32) -> std::cmp::Ordering {
    rank_key(b_score)
        .cmp(&rank_key(a_score))
        .then_with(|| a_id.cmp(&b_id))
}

/// Fuses ranked hit lists (best first, as the engines return them) the way
/// hybrid search does on both backends (on id lists, before fetching
/// payloads): for tests and tools that want the expected result.
pub fn fuse_hits(dense: &[Hit], sparse: Option<&[Hit]>, fusion: Fusion, limit: usize) -> Vec<Hit> {
    let scored = |list: &[Hit]| {
        list.iter()
            .map(|hit| (hit.id, hit.score))
            .collect::<Vec<_>>()
    };
    let mut payloads: HashMap<uuid::Uuid, ChunkPayload> = HashMap::new();
    for hit in dense.iter().chain(sparse.unwrap_or_default()) {
        payloads
            .entry(hit.id)
            .or_insert_with(|| hit.payload.clone());
    }
    let sparse = sparse.map(scored);
    attach_payloads(
        fuse(&scored(dense), sparse.as_deref(), fusion, limit),
        payloads,
    )
}

/// Checks shared by both backends before anything reaches an engine.
fn validate_points(points: &[ChunkPoint], dim: usize) -> Result<(), IndexError> {
    for point in points {
        if point.dense.len() != dim {
            return Err(IndexError::DimensionMismatch {
                expected: dim,
                actual: point.dense.len(),
            });
        }
        if !point.dense.iter().all(|v| v.is_finite()) {
            return Err(IndexError::InvalidInput(format!(
                "dense vector of point {} has a non-finite value",
                point.id
            )));
        }
        point.sparse.validate()?;
        validate_key("collection", &point.payload.collection)?;
        validate_key("embedder", &point.payload.embedder)?;
        if point.payload.document_id.is_empty() {
            return Err(IndexError::InvalidInput(format!(
                "point {} has an empty document_id",
                point.id
            )));
        }
    }
    Ok(())
}

fn validate_request(request: &SearchRequest, dim: usize) -> Result<(), IndexError> {
    validate_scope(&request.scope)?;
    // Sparse-only search never looks at the dense vector, so callers may
    // skip the embedding and pass an empty one.
    if request.mode != SearchMode::Sparse && request.dense.len() != dim {
        return Err(IndexError::DimensionMismatch {
            expected: dim,
            actual: request.dense.len(),
        });
    }
    request.sparse.validate()
}

/// The scope is the only thing separating users' documents, so an empty
/// one is refused rather than matched literally (or as "everything").
fn validate_scope(scope: &Scope) -> Result<(), IndexError> {
    if scope.collections.is_empty() {
        return Err(IndexError::InvalidInput(
            "a search needs at least one collection".into(),
        ));
    }
    for collection in &scope.collections {
        validate_key("collection", collection)?;
    }
    validate_key("embedder", &scope.embedder)
}

fn validate_key(what: &str, value: &str) -> Result<(), IndexError> {
    if value.is_empty() {
        return Err(IndexError::InvalidInput(format!(
            "{what} must not be empty"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(n: u128) -> Hit {
        Hit {
            id: uuid::Uuid::from_u128(n),
            score: 0.0,
            dense_score: None,
            payload: ChunkPayload {
                owner: "u".into(),
                collection: "c".into(),
                embedder: "e".into(),
                document_id: "d".into(),
                document_name: "d.txt".into(),
                chunk_index: n as u32,
                text: String::new(),
                heading_path: vec![],
                page: None,
                char_start: 0,
                char_end: 0,
            },
        }
    }

    fn ids(hits: &[Hit]) -> Vec<u128> {
        hits.iter().map(|h| h.id.as_u128()).collect()
    }

    const RRF: Fusion = Fusion {
        method: FusionMethod::Rrf,
        dense_weight: 1.0,
        sparse_weight: 1.0,
    };

    fn scored(hits: &[(u128, f32)]) -> Vec<Hit> {
        hits.iter()
            .map(|&(n, score)| Hit { score, ..hit(n) })
            .collect()
    }

    #[test]
    fn rrf_scores_are_reciprocal_ranks_summed() {
        let a = vec![hit(1), hit(2), hit(3)];
        let b = vec![hit(3), hit(1)];
        let fused = fuse_hits(&a, Some(&b), RRF, 10);
        assert_eq!(ids(&fused), vec![1, 3, 2]);
        let expect = |ranks: &[f32]| ranks.iter().map(|r| 1.0 / (60.0 + r)).sum::<f32>();
        assert!((fused[0].score - expect(&[1.0, 2.0])).abs() < 1e-7);
        assert!((fused[1].score - expect(&[3.0, 1.0])).abs() < 1e-7);
        assert!((fused[2].score - expect(&[2.0])).abs() < 1e-7);
    }

    #[test]
    fn rrf_weights_scale_each_list() {
        let dense = vec![hit(1), hit(2)];
        let sparse = vec![hit(2), hit(1)];
        let fusion = Fusion {
            sparse_weight: 2.0,
            ..RRF
        };
        let fused = fuse_hits(&dense, Some(&sparse), fusion, 10);
        assert_eq!(ids(&fused), vec![2, 1], "the heavier list's first wins");
        assert!((fused[0].score - (1.0 / 62.0 + 2.0 / 61.0)).abs() < 1e-7);
    }

    #[test]
    fn rrf_breaks_ties_by_id_and_truncates() {
        // 7 is first in one list, 5 first in the other: an exact tie.
        let fused = fuse_hits(&[hit(7), hit(9)], Some(&[hit(5)]), RRF, 2);
        assert_eq!(ids(&fused), vec![5, 7]);
        assert_eq!(fused[0].score, fused[1].score);
    }

    #[test]
    fn rrf_rewards_agreement_over_a_single_top_rank() {
        // 2 is second in both lists; 1 and 3 are each first in only one.
        let fused = fuse_hits(&[hit(1), hit(2)], Some(&[hit(3), hit(2)]), RRF, 3);
        assert_eq!(ids(&fused)[0], 2);
    }

    #[test]
    fn fusion_of_nothing_is_empty() {
        for method in [FusionMethod::Rrf, FusionMethod::ZScore] {
            let fusion = Fusion { method, ..RRF };
            assert!(fuse_hits(&[], None, fusion, 5).is_empty());
            assert!(fuse_hits(&[], Some(&[]), fusion, 5).is_empty());
            assert!(fuse_hits(&[hit(1)], None, fusion, 0).is_empty());
        }
    }

    #[test]
    fn fusion_keeps_the_payload_of_the_hit() {
        let fused = fuse_hits(&[hit(4)], None, RRF, 1);
        assert_eq!(fused[0].payload, hit(4).payload);
    }

    #[test]
    fn z_score_fusion_follows_the_decisive_list() {
        let zscore = Fusion {
            method: FusionMethod::ZScore,
            ..RRF
        };
        // Dense ranks twenty candidates evenly (no candidate stands out);
        // BM25's first, 8th for dense, stands far above the rest of its list.
        let mut dense_order: Vec<u128> = (1..=20).filter(|&n| n != 8).collect();
        dense_order.insert(7, 8);
        let dense: Vec<(u128, f32)> = dense_order
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, 0.60 - i as f32 * 0.01))
            .collect();
        let sparse: Vec<(u128, f32)> = std::iter::once((8, 14.0))
            .chain(
                (1..=20)
                    .filter(|&n| n != 8)
                    .map(|n| (n, 2.0 - n as f32 * 0.01)),
            )
            .collect();
        let (dense, sparse) = (scored(&dense), scored(&sparse));
        assert_eq!(ids(&fuse_hits(&dense, Some(&sparse), zscore, 3))[0], 8);
        // With ranks alone the dense #1 (also BM25 #2) wins.
        assert_eq!(ids(&fuse_hits(&dense, Some(&sparse), RRF, 3))[0], 1);
    }

    #[test]
    fn z_scores_of_a_flat_list_are_zero() {
        let list: Vec<(uuid::Uuid, f32)> =
            (0..3).map(|n| (uuid::Uuid::from_u128(n), 0.7)).collect();
        assert_eq!(z_scores(&list), vec![0.0; 3]);
        let z = z_scores(&[(uuid::Uuid::nil(), 1.0), (uuid::Uuid::max(), 3.0)]);
        assert_eq!(z, vec![-1.0, 1.0]);
    }

    #[test]
    fn candidates_are_ranked_by_score_then_id() {
        let id = uuid::Uuid::from_u128;
        let ranked = rank_candidates(
            vec![(id(3), 0.5), (id(2), 0.9), (id(1), 0.5), (id(4), 0.1)],
            3,
        );
        let ids: Vec<uuid::Uuid> = ranked.into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![id(2), id(1), id(3)]);
    }

    #[test]
    fn fusion_drops_hits_whose_payload_vanished() {
        let id = uuid::Uuid::from_u128;
        let fused = fuse(&[(id(1), 0.9), (id(2), 0.8)], None, RRF, 10);
        let payloads = HashMap::from([(id(2), hit(2).payload)]);
        let hits = attach_payloads(fused, payloads);
        assert_eq!(ids(&hits), vec![2]);
    }

    #[test]
    fn rank_key_is_monotonic_and_absorbs_ulp_noise() {
        let scores = [
            -1.0f32, -0.5, -1e-3, 0.0, 1e-3, 0.016, 0.5, 0.7, 1.0, 3.56, 20.0,
        ];
        for w in scores.windows(2) {
            assert!(rank_key(w[0]) < rank_key(w[1]), "{} vs {}", w[0], w[1]);
        }
        let x = 3.56151f32;
        let neighbours = [
            f32::from_bits(x.to_bits() - 1),
            f32::from_bits(x.to_bits() + 1),
        ];
        let same = neighbours
            .iter()
            .filter(|n| rank_key(**n) == rank_key(x))
            .count();
        assert!(same >= 1, "a 1-ULP neighbour shares the bucket");
    }

    #[test]
    fn near_ties_are_ordered_by_id() {
        let mut hits = vec![hit(9), hit(3), hit(5)];
        hits[0].score = 0.7;
        hits[1].score = 0.7 - 1e-6;
        hits[2].score = 0.5;
        sort_hits(&mut hits);
        assert_eq!(ids(&hits), vec![3, 9, 5]);
    }

    #[test]
    fn candidate_pool_has_a_floor() {
        assert_eq!(candidate_pool(1), 40);
        assert_eq!(candidate_pool(10), 40);
        assert_eq!(candidate_pool(25), 100);
    }

    #[test]
    fn sparse_validation_rejects_unsorted_and_ragged_vectors() {
        let ok = SparseVector {
            indices: vec![1, 5],
            values: vec![0.5, 1.0],
        };
        assert!(ok.validate().is_ok());
        let unsorted = SparseVector {
            indices: vec![5, 1],
            values: vec![0.5, 1.0],
        };
        assert!(unsorted.validate().is_err());
        let ragged = SparseVector {
            indices: vec![1],
            values: vec![],
        };
        assert!(ragged.validate().is_err());
    }

    #[test]
    fn search_mode_defaults_to_hybrid() {
        assert_eq!(SearchMode::default(), SearchMode::Hybrid);
    }
}
