//! Behavioural suite for the vector index, run against every backend.
//!
//! Each case is a plain `async fn(Arc<dyn VectorIndex>)`; the macro at the
//! bottom instantiates it for Qdrant Edge (always) and for a Qdrant server
//! (only when `QDRANT_URL` is set, one fresh collection per test). Dense
//! vectors are synthetic: this tests the store, not the embeddings.

use std::sync::Arc;

use ragchat::index::bm25::Bm25;
use ragchat::index::edge::EdgeIndex;
use ragchat::index::server::QdrantServerIndex;
use ragchat::index::{
    candidate_pool, fuse_hits, rank_key, ChunkPayload, ChunkPoint, Fusion, FusionMethod, Hit,
    IndexError, Scope, SearchMode, SearchRequest, SparseVector, VectorIndex,
};
use uuid::Uuid;

const DIM: usize = 384;

// ---------------------------------------------------------------- fixtures

/// Deterministic pseudo-random unit vector: "topic" `seed`. Distinct seeds are
/// nearly orthogonal in 384 dimensions.
fn topic(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    normalize(v)
}

fn normalize(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// Unit vector with cosine ≈ `weight` to `a`, the rest towards `b`.
fn blend(a: &[f32], b: &[f32], weight: f32) -> Vec<f32> {
    let rest = (1.0 - weight * weight).sqrt();
    normalize(
        a.iter()
            .zip(b)
            .map(|(x, y)| weight * x + rest * y)
            .collect(),
    )
}

/// The embedder every test vector claims to come from.
const EMBEDDER: &str = "test-embedder@384";

fn chunk(owner: &str, document_id: &str, index: u32, text: &str, dense: Vec<f32>) -> ChunkPoint {
    ChunkPoint {
        id: Uuid::new_v4(),
        dense,
        sparse: Bm25::new().document(text),
        payload: ChunkPayload {
            owner: owner.into(),
            // Each test "owner" is a collection of its own.
            collection: owner.into(),
            embedder: EMBEDDER.into(),
            document_id: document_id.into(),
            document_name: format!("{document_id}.pdf"),
            chunk_index: index,
            text: text.into(),
            heading_path: vec!["Results".into(), format!("Section {index}")],
            page: index.is_multiple_of(2).then_some(index + 1),
            char_start: u64::from(index) * 1000,
            char_end: u64::from(index) * 1000 + text.chars().count() as u64,
        },
    }
}

fn request(
    owner: &str,
    dense: Vec<f32>,
    text: &str,
    limit: usize,
    mode: SearchMode,
) -> SearchRequest {
    SearchRequest {
        scope: Scope {
            collections: vec![owner.into()],
            embedder: EMBEDDER.into(),
            hidden_documents: Vec::new(),
        },
        dense,
        sparse: Bm25::new().query(text),
        limit,
        mode,
        fusion: Fusion::default(),
    }
}

const MODES: [SearchMode; 3] = [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid];

/// Three chunks on unrelated subjects; topic seeds 1, 2, 3.
fn clinical_document(owner: &str, document_id: &str) -> Vec<ChunkPoint> {
    vec![
        chunk(
            owner,
            document_id,
            0,
            "Extracorporeal shock wave lithotripsy fragments kidney stones.",
            topic(1),
        ),
        chunk(
            owner,
            document_id,
            1,
            "Beta blockers reduce mortality in chronic heart failure.",
            topic(2),
        ),
        chunk(
            owner,
            document_id,
            2,
            "Basal insulin lowers fasting glucose in type 2 diabetes.",
            topic(3),
        ),
    ]
}

async fn search(index: &Arc<dyn VectorIndex>, request: SearchRequest) -> Vec<Hit> {
    index.search(request).await.expect("search")
}

fn chunk_indices(hits: &[Hit]) -> Vec<u32> {
    hits.iter().map(|h| h.payload.chunk_index).collect()
}

// ------------------------------------------------------------------- cases

async fn upsert_and_search_each_mode(index: Arc<dyn VectorIndex>) {
    let points = clinical_document("alice", "doc-1");
    let stored: Vec<ChunkPayload> = points.iter().map(|p| p.payload.clone()).collect();
    index.upsert(points).await.expect("upsert");

    let question = "Do beta blockers help heart failure?";
    for mode in MODES {
        let hits = search(&index, request("alice", topic(2), question, 10, mode)).await;
        assert!(!hits.is_empty(), "{mode:?}: no hits");
        assert_eq!(hits[0].payload, stored[1], "{mode:?}: wrong best hit");
        assert!(
            hits.windows(2)
                .all(|w| rank_key(w[0].score) >= rank_key(w[1].score)),
            "{mode:?}: not sorted by score"
        );
    }

    // Dense finds all three chunks (cosine of the query with itself is 1);
    // sparse only those sharing a term.
    let dense = search(
        &index,
        request("alice", topic(2), question, 10, SearchMode::Dense),
    )
    .await;
    assert_eq!(dense.len(), 3);
    assert!(
        (dense[0].score - 1.0).abs() < 1e-3,
        "cosine {}",
        dense[0].score
    );
    let sparse = search(
        &index,
        request("alice", topic(2), question, 10, SearchMode::Sparse),
    )
    .await;
    assert_eq!(chunk_indices(&sparse), vec![1]);
    assert!(sparse[0].score > 0.0);
    // Sparse-only search needs no embedding.
    let unembedded = search(
        &index,
        request("alice", Vec::new(), question, 10, SearchMode::Sparse),
    )
    .await;
    assert_eq!(unembedded, sparse);

    // Each mode honours the limit.
    for mode in MODES {
        let hits = search(&index, request("alice", topic(1), "kidney", 1, mode)).await;
        assert_eq!(chunk_indices(&hits), vec![0], "{mode:?}");
    }
    for mode in MODES {
        let hits = search(&index, request("alice", topic(1), "kidney", 0, mode)).await;
        assert!(hits.is_empty(), "{mode:?}: limit 0");
    }
}

async fn payload_round_trips_exactly(index: Arc<dyn VectorIndex>) {
    let mut point = chunk(
        "alice",
        "doc-ü",
        7,
        "Ünïcödé text — with “quotes” and 数字",
        topic(9),
    );
    point.payload.heading_path = vec![];
    point.payload.page = None;
    point.payload.char_end = u64::MAX / 2;
    let expected = point.payload.clone();
    let id = point.id;
    index.upsert(vec![point]).await.expect("upsert");
    let hits = search(
        &index,
        request("alice", topic(9), "unicode text", 5, SearchMode::Dense),
    )
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, id);
    assert_eq!(hits[0].payload, expected);
}

async fn owner_filter_isolates_users(index: Arc<dyn VectorIndex>) {
    // Same documents, same vectors, same ids of documents, different owners.
    index
        .upsert(clinical_document("alice", "shared-name"))
        .await
        .expect("upsert alice");
    index
        .upsert(clinical_document("bob", "bobs-copy"))
        .await
        .expect("upsert bob");
    index
        .upsert(vec![chunk(
            "alice",
            "alice-only",
            0,
            "Confidential: alice's lithotripsy kidney notes",
            topic(1),
        )])
        .await
        .expect("upsert alice private");

    for mode in MODES {
        for query_topic in 1..=3 {
            let hits = search(
                &index,
                request(
                    "bob",
                    topic(query_topic),
                    "kidney stones beta blockers insulin alice",
                    50,
                    mode,
                ),
            )
            .await;
            assert!(!hits.is_empty(), "{mode:?}: bob sees nothing");
            assert!(
                hits.iter().all(|h| h.payload.owner == "bob"),
                "{mode:?}: bob saw another owner's chunk"
            );
        }
        let nobody = search(&index, request("carol", topic(1), "kidney", 50, mode)).await;
        assert!(nobody.is_empty(), "{mode:?}: carol sees chunks");
        // Owner matching is exact, not prefix or case-insensitive.
        let near = search(&index, request("Alice", topic(1), "kidney", 50, mode)).await;
        assert!(near.is_empty(), "{mode:?}: owner match is not exact");
    }
    assert_eq!(index.count("alice", None).await.expect("count"), 4);
    assert_eq!(index.count("bob", None).await.expect("count"), 3);
    assert_eq!(index.count("carol", None).await.expect("count"), 0);

    // Deleting Bob's document leaves Alice's alone.
    index.delete_document("bobs-copy").await.expect("delete");
    assert_eq!(index.count("bob", None).await.expect("count"), 0);
    assert_eq!(
        index
            .count("alice", Some("shared-name"))
            .await
            .expect("count"),
        3
    );
}

async fn sparse_scores_ignore_other_owners(index: Arc<dyn VectorIndex>) {
    // IDF is computed over the searching owner's chunks only, so another
    // tenant's corpus cannot be probed through sparse scores.
    let text = "Statin therapy and myopathy";
    index
        .upsert(vec![
            chunk("alice", "a", 0, text, topic(1)),
            chunk("alice", "a", 1, "Warfarin dosing", topic(2)),
        ])
        .await
        .expect("upsert");
    let before = search(
        &index,
        request("alice", topic(1), "statin myopathy", 5, SearchMode::Sparse),
    )
    .await;

    let flood: Vec<ChunkPoint> = (0..30)
        .map(|i| {
            chunk(
                "mallory",
                "m",
                i,
                "statin statin myopathy",
                topic(100 + u64::from(i)),
            )
        })
        .collect();
    index.upsert(flood).await.expect("upsert flood");
    let after = search(
        &index,
        request("alice", topic(1), "statin myopathy", 5, SearchMode::Sparse),
    )
    .await;

    assert_eq!(chunk_indices(&before), vec![0]);
    assert_eq!(chunk_indices(&after), vec![0]);
    assert!(
        (before[0].score - after[0].score).abs() < 1e-5,
        "alice's BM25 score moved from {} to {} when mallory uploaded",
        before[0].score,
        after[0].score
    );
}

async fn delete_document_removes_only_that_document(index: Arc<dyn VectorIndex>) {
    index
        .upsert(clinical_document("alice", "keep"))
        .await
        .expect("upsert keep");
    let doomed = vec![
        chunk(
            "alice",
            "doomed",
            0,
            "Lithotripsy kidney stones follow-up",
            topic(1),
        ),
        chunk(
            "alice",
            "doomed",
            1,
            "Beta blockers heart failure follow-up",
            topic(2),
        ),
    ];
    index.upsert(doomed).await.expect("upsert doomed");
    assert_eq!(
        index.count("alice", Some("doomed")).await.expect("count"),
        2
    );

    index.delete_document("doomed").await.expect("delete");
    assert_eq!(
        index.count("alice", Some("doomed")).await.expect("count"),
        0
    );
    assert_eq!(index.count("alice", Some("keep")).await.expect("count"), 3);
    assert_eq!(index.count("alice", None).await.expect("count"), 3);
    for mode in MODES {
        for query_topic in 1..=2 {
            let hits = search(
                &index,
                request(
                    "alice",
                    topic(query_topic),
                    "kidney stones heart failure follow-up",
                    50,
                    mode,
                ),
            )
            .await;
            assert!(!hits.is_empty(), "{mode:?}");
            assert!(
                hits.iter().all(|h| h.payload.document_id == "keep"),
                "{mode:?}: deleted chunk still found"
            );
        }
    }
    // Deleting something that does not exist is not an error.
    index
        .delete_document("never-existed")
        .await
        .expect("delete missing");
    index.delete_document("doomed").await.expect("delete twice");
    assert_eq!(index.count("alice", None).await.expect("count"), 3);
}

async fn count_tracks_upserts_and_replacements(index: Arc<dyn VectorIndex>) {
    assert_eq!(index.count("alice", None).await.expect("count"), 0);
    index.upsert(Vec::new()).await.expect("empty upsert");
    let mut points = clinical_document("alice", "d1");
    points.extend(clinical_document("alice", "d2"));
    index.upsert(points.clone()).await.expect("upsert");
    assert_eq!(index.count("alice", None).await.expect("count"), 6);
    assert_eq!(index.count("alice", Some("d1")).await.expect("count"), 3);
    assert_eq!(index.count("alice", Some("d3")).await.expect("count"), 0);

    // Re-upserting the same ids replaces, never duplicates.
    let mut replaced = points[0].clone();
    replaced.payload.text = "Replaced text about lithotripsy.".into();
    replaced.sparse = Bm25::new().document(&replaced.payload.text);
    index.upsert(points.clone()).await.expect("re-upsert");
    index
        .upsert(vec![replaced.clone()])
        .await
        .expect("replace one");
    assert_eq!(index.count("alice", None).await.expect("count"), 6);
    let hits = search(
        &index,
        request("alice", topic(1), "replaced", 10, SearchMode::Sparse),
    )
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, replaced.id);
    assert_eq!(hits[0].payload.text, replaced.payload.text);

    // Batches larger than one write record.
    let many: Vec<ChunkPoint> = (0..600)
        .map(|i| {
            chunk(
                "bulk",
                "big",
                i,
                "bulk chunk text",
                topic(1000 + u64::from(i)),
            )
        })
        .collect();
    index.upsert(many).await.expect("bulk upsert");
    assert_eq!(index.count("bulk", Some("big")).await.expect("count"), 600);
}

/// Dense and sparse disagree; the chunk that is good on both counts wins
/// only under hybrid fusion.
///
/// * X matches the query's meaning best but shares no query term;
/// * Y repeats the query terms but points the opposite way in embedding space;
/// * Z is second on both counts — the answer a user wants.
///
/// Fifty off-topic distractors push Y out of the dense candidate pool.
async fn hybrid_beats_each_mode_when_they_disagree(index: Arc<dyn VectorIndex>) {
    let query = topic(7);
    let anti: Vec<f32> = query.iter().map(|x| -x).collect();
    let x = chunk(
        "alice",
        "x",
        0,
        "Cholesterol-lowering drugs and muscle complaints.",
        blend(&query, &topic(8), 0.95),
    );
    let y = chunk(
        "alice",
        "y",
        0,
        "Statin myopathy. Statin myopathy. Statin myopathy index.",
        anti,
    );
    let z = chunk(
        "alice",
        "z",
        0,
        "Myopathy is a recognised adverse effect of statin therapy in older patients.",
        blend(&query, &topic(9), 0.80),
    );
    let mut points = vec![x.clone(), y.clone(), z.clone()];
    points.extend((0..50).map(|i| {
        chunk(
            "alice",
            "noise",
            i,
            &format!("Unrelated filler paragraph number {i} about hospital logistics."),
            topic(500 + u64::from(i)),
        )
    }));
    index.upsert(points).await.expect("upsert");

    let text = "statin myopathy";
    let limit = 5;
    let rank = |hits: &[Hit], id: Uuid| hits.iter().position(|h| h.id == id).map(|p| p + 1);

    let dense = search(
        &index,
        request("alice", query.clone(), text, limit, SearchMode::Dense),
    )
    .await;
    let sparse = search(
        &index,
        request("alice", query.clone(), text, limit, SearchMode::Sparse),
    )
    .await;
    let hybrid = search(
        &index,
        request("alice", query.clone(), text, limit, SearchMode::Hybrid),
    )
    .await;

    assert_eq!(rank(&dense, x.id), Some(1), "dense prefers the paraphrase");
    assert_eq!(
        rank(&sparse, y.id),
        Some(1),
        "sparse prefers the keyword stuffing"
    );
    assert_eq!(rank(&dense, z.id), Some(2));
    assert_eq!(rank(&sparse, z.id), Some(2));
    assert_eq!(
        rank(&hybrid, z.id),
        Some(1),
        "hybrid puts the all-rounder first"
    );
    assert_eq!(hybrid.len(), limit);

    // The engine's fusion equals the textbook one over the two candidate
    // lists, for each fusion method and weights.
    let pool = candidate_pool(limit);
    let dense_pool = search(
        &index,
        request("alice", query.clone(), text, pool, SearchMode::Dense),
    )
    .await;
    let sparse_pool = search(
        &index,
        request("alice", query.clone(), text, pool, SearchMode::Sparse),
    )
    .await;
    for fusion in [
        Fusion::default(),
        Fusion {
            method: FusionMethod::ZScore,
            dense_weight: 0.5,
            sparse_weight: 1.0,
        },
    ] {
        let fused = search(
            &index,
            SearchRequest {
                fusion,
                ..request("alice", query.clone(), text, limit, SearchMode::Hybrid)
            },
        )
        .await;
        let expected = fuse_hits(&dense_pool, Some(&sparse_pool), fusion, limit);
        assert_eq!(
            fused.iter().map(|h| h.id).collect::<Vec<_>>(),
            expected.iter().map(|h| h.id).collect::<Vec<_>>(),
            "{fusion:?}"
        );
        for (got, want) in fused.iter().zip(&expected) {
            assert!(
                (got.score - want.score).abs() < 1e-5,
                "{} vs {}",
                got.score,
                want.score
            );
            assert_eq!(got.payload, want.payload);
        }
    }

    // Ranking is deterministic: X (dense #1 only) and Y (sparse #1 only) tie
    // exactly and must come out in the same order every time.
    for _ in 0..5 {
        let again = search(
            &index,
            request("alice", query.clone(), text, limit, SearchMode::Hybrid),
        )
        .await;
        assert_eq!(
            again.iter().map(|h| h.id).collect::<Vec<_>>(),
            hybrid.iter().map(|h| h.id).collect::<Vec<_>>()
        );
    }
}

async fn stopword_only_query_falls_back_to_dense(index: Arc<dyn VectorIndex>) {
    index
        .upsert(clinical_document("alice", "doc"))
        .await
        .expect("upsert");
    let sparse = search(
        &index,
        request("alice", topic(3), "what is it", 5, SearchMode::Sparse),
    )
    .await;
    assert!(sparse.is_empty());
    let hybrid = search(
        &index,
        request("alice", topic(3), "what is it", 5, SearchMode::Hybrid),
    )
    .await;
    assert_eq!(chunk_indices(&hybrid)[0], 2);
    let dense = search(
        &index,
        request("alice", topic(3), "what is it", 5, SearchMode::Dense),
    )
    .await;
    assert_eq!(chunk_indices(&hybrid), chunk_indices(&dense));
    // A point whose text has no indexable term is still stored and found by meaning.
    index
        .upsert(vec![chunk("alice", "empty", 0, "...", topic(4))])
        .await
        .expect("upsert empty sparse");
    let hits = search(
        &index,
        request("alice", topic(4), "", 1, SearchMode::Hybrid),
    )
    .await;
    assert_eq!(hits[0].payload.document_id, "empty");
}

async fn invalid_input_is_rejected(index: Arc<dyn VectorIndex>) {
    let mut short = chunk("alice", "d", 0, "text", topic(1));
    short.dense.truncate(10);
    assert!(matches!(
        index.upsert(vec![short]).await,
        Err(IndexError::DimensionMismatch {
            expected: DIM,
            actual: 10
        })
    ));
    let nobody = chunk("", "d", 0, "text", topic(1));
    assert!(matches!(
        index.upsert(vec![nobody]).await,
        Err(IndexError::InvalidInput(_))
    ));
    let mut unsorted = chunk("alice", "d", 0, "text", topic(1));
    unsorted.sparse = SparseVector {
        indices: vec![9, 3],
        values: vec![1.0, 1.0],
    };
    assert!(matches!(
        index.upsert(vec![unsorted]).await,
        Err(IndexError::InvalidInput(_))
    ));
    assert!(matches!(
        index
            .search(request("alice", vec![0.1; 3], "x", 5, SearchMode::Hybrid))
            .await,
        Err(IndexError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        index
            .search(request("", topic(1), "x", 5, SearchMode::Dense))
            .await,
        Err(IndexError::InvalidInput(_))
    ));
    assert!(matches!(
        index.count("", None).await,
        Err(IndexError::InvalidInput(_))
    ));
    assert!(matches!(
        index.delete_document("").await,
        Err(IndexError::InvalidInput(_))
    ));
    // Nothing of the rejected batches was written.
    assert_eq!(index.count("alice", None).await.expect("count"), 0);
}

async fn concurrent_writers_and_readers(index: Arc<dyn VectorIndex>) {
    let mut tasks = Vec::new();
    for writer in 0..8u32 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let document = format!("doc-{writer}");
            let points: Vec<ChunkPoint> = (0..40)
                .map(|i| {
                    chunk(
                        "alice",
                        &document,
                        i,
                        &format!("writer {writer} chunk {i} lithotripsy"),
                        topic(u64::from(writer * 100 + i)),
                    )
                })
                .collect();
            for batch in points.chunks(10) {
                index.upsert(batch.to_vec()).await.expect("upsert");
                let hits = index
                    .search(request(
                        "alice",
                        topic(1),
                        "lithotripsy",
                        5,
                        SearchMode::Hybrid,
                    ))
                    .await
                    .expect("search");
                assert!(!hits.is_empty());
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(index.count("alice", None).await.expect("count"), 320);
    for writer in 0..8 {
        assert_eq!(
            index
                .count("alice", Some(&format!("doc-{writer}")))
                .await
                .expect("count"),
            40
        );
    }
}

// ------------------------------------------------------------ edge-only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let points = clinical_document("alice", "doc-1");
    let before = {
        let index = EdgeIndex::open(dir.path(), DIM).await.expect("open");
        index.upsert(points).await.expect("upsert");
        let hits = index
            .search(request(
                "alice",
                topic(2),
                "heart failure",
                10,
                SearchMode::Hybrid,
            ))
            .await
            .expect("search");
        index.close().await.expect("close");
        hits
    };

    let index = EdgeIndex::open(dir.path(), DIM).await.expect("reopen");
    assert_eq!(index.count("alice", None).await.expect("count"), 3);
    let after = index
        .search(request(
            "alice",
            topic(2),
            "heart failure",
            10,
            SearchMode::Hybrid,
        ))
        .await
        .expect("search");
    assert_eq!(after, before);
    index.close().await.expect("close");

    // Dropping without close also persists; wait for the lock to be released.
    {
        let index = EdgeIndex::open(dir.path(), DIM).await.expect("reopen");
        index
            .upsert(clinical_document("alice", "doc-2"))
            .await
            .expect("upsert");
    }
    let index = open_with_retry(dir.path()).await;
    assert_eq!(index.count("alice", None).await.expect("count"), 6);
}

async fn open_with_retry(dir: &std::path::Path) -> EdgeIndex {
    for _ in 0..100 {
        if let Ok(index) = EdgeIndex::open(dir, DIM).await {
            return index;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    EdgeIndex::open(dir, DIM).await.expect("reopen after drop")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_rejects_wrong_dimension_and_double_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = EdgeIndex::open(dir.path(), DIM).await.expect("open");
    // A second handle on the same directory would corrupt it.
    assert!(matches!(
        EdgeIndex::open(dir.path(), DIM).await,
        Err(IndexError::InUse(_))
    ));
    index.close().await.expect("close");
    assert!(matches!(
        EdgeIndex::open(dir.path(), 768).await,
        Err(IndexError::Incompatible(_))
    ));
    let index = EdgeIndex::open(dir.path(), DIM).await.expect("reopen");
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_optimize_builds_hnsw_and_keeps_results() {
    // Enough vectors to cross Qdrant's indexing threshold, so search goes
    // through an HNSW segment after optimisation.
    let dir = tempfile::tempdir().expect("tempdir");
    let index = EdgeIndex::open(dir.path(), DIM).await.expect("open");
    let points: Vec<ChunkPoint> = (0..8000u32)
        .map(|i| {
            chunk(
                if i % 2 == 0 { "alice" } else { "bob" },
                &format!("doc-{}", i / 100),
                i,
                &format!("chunk {i} text about topic {}", i % 37),
                topic(u64::from(i)),
            )
        })
        .collect();
    index.upsert(points).await.expect("upsert");
    index.optimize().await.expect("optimize");
    let stats = index.stats().await.expect("stats");
    assert!(stats.indexed_vectors >= 8000, "{stats:?}");
    assert_eq!(index.count("alice", None).await.expect("count"), 4000);
    for probe in [0u32, 1234, 7998] {
        let hits = index
            .search(request(
                "alice",
                topic(u64::from(probe)),
                "topic",
                3,
                SearchMode::Dense,
            ))
            .await
            .expect("search");
        assert_eq!(hits[0].payload.chunk_index, probe);
        assert!(hits.iter().all(|h| h.payload.owner == "alice"));
    }
    index.close().await.expect("close");
    let index = EdgeIndex::open(dir.path(), DIM).await.expect("reopen");
    assert_eq!(index.count("bob", None).await.expect("count"), 4000);
    index.close().await.expect("close");
}

/// SIGKILLs a child process in the middle of ingestion (and, in the last
/// round, of background optimisation), then checks that every acknowledged
/// upsert survived and no batch was half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_survives_sigkill_mid_ingest() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acknowledged: Vec<u32> = Vec::new();
    for kill_after in [3usize, 20, 70] {
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "index::edge_kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut seen = 0;
        while let Some(line) = lines.next_line().await.expect("read child") {
            if let Some(batch) = line.strip_prefix("committed ") {
                acknowledged.push(batch.trim().parse().expect("batch number"));
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        assert_eq!(seen, kill_after, "child exited early");
        child.start_kill().expect("kill");
        child.wait().await.expect("wait");
        let index = EdgeIndex::open(dir.path(), DIM)
            .await
            .expect("reopen after kill");
        let total = index.count("crash", None).await.expect("count");
        let mut complete = 0;
        for batch in 0..(acknowledged.iter().max().copied().unwrap_or(0) + 2) {
            let n = index
                .count("crash", Some(&format!("batch-{batch}")))
                .await
                .expect("count");
            assert!(
                n == 0 || n == KILL_BATCH as u64,
                "batch {batch} half-applied: {n}"
            );
            if acknowledged.contains(&batch) {
                assert_eq!(n, KILL_BATCH as u64, "acknowledged batch {batch} lost");
            }
            complete += n;
        }
        assert_eq!(total, complete, "points outside known batches");
        let hits = index
            .search(request("crash", topic(5), "payload", 5, SearchMode::Hybrid))
            .await
            .expect("search after recovery");
        assert_eq!(hits.len(), 5);
        index.close().await.expect("close");
    }
}

const KILL_CHILD_DIR: &str = "INDEX_KILL_CHILD_DIR";
const KILL_BATCH: usize = 100;

/// Child half of `edge_survives_sigkill_mid_ingest`; does nothing unless
/// started by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for edge_survives_sigkill_mid_ingest"]
async fn edge_kill_child() {
    let Some(dir) = std::env::var_os(KILL_CHILD_DIR) else {
        return;
    };
    let index = EdgeIndex::open(&dir, DIM).await.expect("child open");
    let start = index.count("crash", None).await.expect("count") as u32 / KILL_BATCH as u32;
    // Batch numbers continue where the previous (killed) child got to; a
    // batch that was in flight is simply written again.
    for batch in start.saturating_sub(1)..start + 1000 {
        let points: Vec<ChunkPoint> = (0..KILL_BATCH as u32)
            .map(|i| {
                let seed = u64::from(batch) * 1000 + u64::from(i);
                let mut point = chunk(
                    "crash",
                    &format!("batch-{batch}"),
                    i,
                    &format!("payload {seed} for the crash test"),
                    topic(seed),
                );
                point.id = Uuid::from_u64_pair(u64::from(batch), u64::from(i));
                point
            })
            .collect();
        index.upsert(points).await.expect("child upsert");
        println!("committed {batch}");
    }
}

/// The access rule runs inside the engine's query: several collections at
/// once, never another one; the query's embedder only; hidden document
/// builds never; and labelling older points puts them in scope.
async fn scope_filters_collections_embedders_and_hidden_builds(index: Arc<dyn VectorIndex>) {
    for (collection, document) in [("hr", "hr-v1"), ("support", "sup-1"), ("secret", "sec-1")] {
        index
            .upsert(clinical_document(collection, document))
            .await
            .expect("upsert");
    }
    let mut other_embedder = clinical_document("hr", "hr-other-embedder");
    for point in &mut other_embedder {
        point.payload.embedder = "another-model@384".into();
    }
    index.upsert(other_embedder).await.expect("upsert");
    let scoped = |collections: &[&str], hidden: &[&str], mode: SearchMode| {
        let mut request = request("unused", topic(1), "kidney stones", 50, mode);
        request.scope = Scope {
            collections: collections.iter().map(|c| c.to_string()).collect(),
            embedder: EMBEDDER.into(),
            hidden_documents: hidden.iter().map(|d| d.to_string()).collect(),
        };
        request
    };
    for mode in MODES {
        let hits = search(&index, scoped(&["hr", "support"], &[], mode)).await;
        let mut documents: Vec<&str> = hits
            .iter()
            .map(|h| h.payload.document_id.as_str())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        assert_eq!(documents, ["hr-v1", "sup-1"], "{mode:?}");
        let hits = search(&index, scoped(&["hr", "support"], &["hr-v1"], mode)).await;
        assert!(
            !hits.is_empty(),
            "{mode:?}: the hidden build took the rest along"
        );
        assert!(
            hits.iter().all(|h| h.payload.document_id == "sup-1"),
            "{mode:?}: a hidden build answered"
        );
        let hits = search(&index, scoped(&["nobody"], &[], mode)).await;
        assert!(
            hits.is_empty(),
            "{mode:?}: an unreadable collection answered"
        );
    }
    // Hybrid results carry the dense cosine of their chunk.
    let hits = search(&index, scoped(&["hr"], &[], SearchMode::Hybrid)).await;
    assert!(hits[0].dense_score.is_some_and(|s| s > 0.5));
    // An empty scope is refused, not read as "everything".
    assert!(matches!(
        index.search(scoped(&[], &[], SearchMode::Dense)).await,
        Err(IndexError::InvalidInput(_))
    ));
    // Points labelled after the fact (documents from before collections).
    index
        .label_document("hr-other-embedder", "support", EMBEDDER)
        .await
        .expect("label");
    assert_eq!(
        index
            .count("support", Some("hr-other-embedder"))
            .await
            .expect("count"),
        3
    );
    let hits = search(&index, scoped(&["support"], &["sup-1"], SearchMode::Dense)).await;
    assert!(hits
        .iter()
        .all(|h| h.payload.document_id == "hr-other-embedder"));
    assert_eq!(hits.len(), 3);
}

// ------------------------------------------------------------ wrappers

async fn edge_index() -> (Arc<dyn VectorIndex>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = EdgeIndex::open(dir.path(), DIM)
        .await
        .expect("open edge index");
    assert_eq!(index.backend(), "qdrant-edge");
    (Arc::new(index), dir)
}

async fn server_index() -> Option<Arc<QdrantServerIndex>> {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        println!("SKIP: qdrant server tests (QDRANT_URL not set)");
        return None;
    };
    let api_key = std::env::var("QDRANT_API_KEY").ok().map(Into::into);
    let collection = format!("ragchat_test_{}", Uuid::new_v4().simple());
    let index = QdrantServerIndex::connect(&url, api_key, &collection, DIM)
        .await
        .expect("connect to qdrant server");
    assert_eq!(index.backend(), "qdrant");
    Some(Arc::new(index))
}

macro_rules! backend_suite {
    ($($case:ident),* $(,)?) => {
        mod edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (index, _dir) = super::edge_index().await;
                    super::$case(index).await;
                }
            )*
        }
        mod server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(index) = super::server_index().await else {
                        return;
                    };
                    super::$case(index.clone()).await;
                    index.drop_collection().await.expect("drop test collection");
                }
            )*
        }
    };
}

backend_suite!(
    upsert_and_search_each_mode,
    payload_round_trips_exactly,
    owner_filter_isolates_users,
    sparse_scores_ignore_other_owners,
    delete_document_removes_only_that_document,
    count_tracks_upserts_and_replacements,
    hybrid_beats_each_mode_when_they_disagree,
    stopword_only_query_falls_back_to_dense,
    invalid_input_is_rejected,
    concurrent_writers_and_readers,
    scope_filters_collections_embedders_and_hidden_builds,
);

/// The same data and queries give the same ranking on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_and_server_rank_identically() {
    let Some(server) = server_index().await else {
        return;
    };
    let (edge, _dir) = edge_index().await;
    let words = [
        "statin",
        "myopathy",
        "insulin",
        "glucose",
        "kidney",
        "stone",
        "lithotripsy",
        "beta",
        "blocker",
        "heart",
        "failure",
        "warfarin",
        "bleeding",
        "asthma",
        "steroid",
        "fracture",
    ];
    let points: Vec<ChunkPoint> = (0..300u32)
        .map(|i| {
            // Varied words and lengths; chunks 200–299 repeat the text of
            // 0–99 (a re-uploaded document), so BM25 scores also tie exactly.
            let source = u64::from(i % 200);
            let length = 6 + (topic(source)[0].to_bits() % 12);
            let text: Vec<&str> = (0..length)
                .map(|j| {
                    let pick = topic(source * 100 + u64::from(j))[1].to_bits();
                    words[pick as usize % words.len()]
                })
                .collect();
            chunk(
                if i % 3 == 0 { "bob" } else { "alice" },
                &format!("doc-{}", i / 10),
                i,
                &text.join(" "),
                blend(
                    &topic(u64::from(i % 25)),
                    &topic(10_000 + u64::from(i)),
                    0.7,
                ),
            )
        })
        .collect();
    edge.upsert(points.clone()).await.expect("edge upsert");
    server.upsert(points).await.expect("server upsert");

    for q in 0..20u64 {
        let text = format!(
            "{} {} {}",
            words[q as usize % 16],
            words[(q as usize * 5) % 16],
            words[(q as usize * 11 + 3) % 16]
        );
        let fusions = [
            Fusion::default(),
            Fusion {
                method: FusionMethod::ZScore,
                dense_weight: 1.0,
                sparse_weight: 1.0,
            },
        ];
        for (mode, fusion) in MODES.into_iter().flat_map(|m| fusions.map(|f| (m, f))) {
            for owner in ["alice", "bob"] {
                let req = SearchRequest {
                    fusion,
                    ..request(owner, topic(q % 25), &text, 10, mode)
                };
                let a = search(&edge, req.clone()).await;
                let b = search(&(server.clone() as Arc<dyn VectorIndex>), req).await;
                assert_eq!(
                    a.iter().map(|h| h.id).collect::<Vec<_>>(),
                    b.iter().map(|h| h.id).collect::<Vec<_>>(),
                    "query {q} {mode:?} {fusion:?} {owner}"
                );
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x.score - y.score).abs() < 1e-4,
                        "{mode:?}: {} vs {}",
                        x.score,
                        y.score
                    );
                    assert_eq!(x.payload, y.payload);
                }
            }
        }
    }
    server.drop_collection().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejects_collection_with_other_dimension() {
    let Some(index) = server_index().await else {
        return;
    };
    let url = std::env::var("QDRANT_URL").unwrap_or_default();
    let api_key = || std::env::var("QDRANT_API_KEY").ok().map(Into::into);
    let collection = index.collection().to_owned();
    let other = QdrantServerIndex::connect(&url, api_key(), &collection, 768).await;
    assert!(
        matches!(other, Err(IndexError::Incompatible(_))),
        "{other:?}"
    );
    // Reconnecting with the right dimension reuses the collection as is.
    let again = QdrantServerIndex::connect(&url, api_key(), &collection, DIM)
        .await
        .expect("reconnect");
    again
        .upsert(clinical_document("alice", "d"))
        .await
        .expect("upsert");
    assert_eq!(index.count("alice", None).await.expect("count"), 3);
    index.drop_collection().await.expect("drop");
}
