//! Retrieval latency: hybrid search over a 100k-chunk Qdrant Edge index.
//!
//! Builds (or reuses) an Edge index of `BENCH_POINTS` chunks (default 100,000)
//! with 384-d unit vectors and BM25 vectors, spread over 100 collections of
//! whole abstracts (each collection holds every chunk of 1 in 100 abstracts,
//! as a collection holds whole documents). It then runs `BENCH_QUERIES`
//! queries (default 1,000) and prints p50/p95/p99 of each stage: query
//! embedding, BM25 query encoding, search + fusion, and the total, with all
//! 100 collections readable.
//!
//! Then the scope-selectivity table: the same questions, hybrid, for a user
//! who can read 1, 10 or all 100 collections (and all 100 with 20 documents
//! hidden), the scope sizes interleaved query by query so that load on the
//! machine hits every row alike. Half of the questions of the 1- and
//! 10-collection rows are about an abstract inside the scope, half about one
//! outside it. Every hit is checked to lie within its scope. With
//! `QDRANT_URL` set (and optionally `QDRANT_API_KEY`) the table is repeated
//! on a Qdrant server, in the collection `ragchat_bench_retrieval`.
//!
//! Chunk text is PubMedQA abstract sentences recombined (falls back to
//! generated text if the file is missing). Queries are the PubMedQA questions,
//! embedded by the app's own all-MiniLM-L6-v2 embedder through the same async
//! call the chat makes (`Embedder::embed_query`). Embedding 100k chunks with
//! the model would take half an hour, so each chunk's dense vector is its
//! abstract's real embedding perturbed to cosine ≈ 0.8: chunks of one topic
//! cluster around the abstract, and a real question lands near its abstract,
//! as in the app. Without the model (or with `BENCH_EMBEDDER=synthetic`)
//! everything is synthetic and the line says so.
//!
//! Environment: `BENCH_POINTS`, `BENCH_QUERIES`, `BENCH_LIMIT` (default 12),
//! `BENCH_DIR` (keep/reuse the index there instead of a temp dir),
//! `BENCH_PUBMEDQA` (path of `ori_pqal.json`), `BENCH_EMBEDDER`
//! (`model`, the default, or `synthetic`), `BENCH_SCOPE_MODE` (search mode
//! of the selectivity table: `hybrid`, the default, `dense` or `sparse`),
//! `QDRANT_URL`, `QDRANT_API_KEY`.
//!
//! Run: `cargo bench --features ssr --bench retrieval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ragchat::embed::local::LocalEmbedder;
use ragchat::embed::Embedder;
use ragchat::index::bm25::Bm25;
use ragchat::index::edge::EdgeIndex;
use ragchat::index::server::QdrantServerIndex;
use ragchat::index::{
    ChunkPayload, ChunkPoint, Fusion, Hit, Scope, SearchMode, SearchRequest, VectorIndex,
};

const DIM: usize = 384;
const OWNER: &str = "bench-user";
/// What the synthetic vectors claim to be made by.
const EMBEDDER: &str = "bench-embedder@384";
const DEFAULT_PUBMEDQA: &str = "/work/shared/data/pubmedqa/ori_pqal.json";
const INGEST_BATCH: usize = 1_000;
/// Collections the chunks are spread over, whole abstracts each.
const COLLECTIONS: usize = 100;
/// Readable collections per row of the selectivity table.
const SCOPE_SIZES: [usize; 3] = [1, 10, COLLECTIONS];
/// Documents hidden in the last row (versions being indexed or replaced).
const HIDDEN_DOCUMENTS: usize = 20;
/// Queries that warm caches and thread pools before timing starts.
const WARMUP: usize = 50;
/// Collection of the Qdrant server run.
const SERVER_COLLECTION: &str = "ragchat_bench_retrieval";

/// Turns a query into its dense embedding: the real model embeds
/// `query.text`; the synthetic stand-in only looks at `topic`.
enum QueryEmbedder {
    Model(Arc<LocalEmbedder>),
    Synthetic(SyntheticEmbedder),
}

impl QueryEmbedder {
    async fn embed(&mut self, query: &BenchQuery) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        match self {
            Self::Model(model) => Ok(model.embed_query(query.text.clone()).await?),
            Self::Synthetic(synthetic) => Ok(synthetic.embed(query)),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Model(_) => "  query embedding (all-MiniLM-L6-v2)",
            Self::Synthetic(_) => "  query embedding (synthetic)",
        }
    }
}

struct BenchQuery {
    text: String,
    /// Source abstract the question was written about; hits from it count as
    /// relevant for the sanity recall figure.
    topic: usize,
}

/// Stand-in for the sentence-embedding model: the query lands near its topic
/// centroid, as a real question lands near the passages that answer it.
struct SyntheticEmbedder {
    centroids: Arc<Vec<Vec<f32>>>,
    rng: Rng,
}

impl SyntheticEmbedder {
    fn embed(&mut self, query: &BenchQuery) -> Vec<f32> {
        perturb(&self.centroids[query.topic], 0.9, &mut self.rng)
    }
}

/// What every timed search shares.
struct Workload {
    queries: Vec<BenchQuery>,
    /// Timed queries (after [`WARMUP`]).
    timed: usize,
    limit: usize,
    fusion: Fusion,
    bm25: Bm25,
    /// Search mode of the selectivity table.
    scope_mode: SearchMode,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let points = env_usize("BENCH_POINTS", 100_000);
    let queries = env_usize("BENCH_QUERIES", 1_000);
    // What the chat asks the index for by default: twice `top_k` hits, so
    // that merging neighbours still leaves `top_k` passages.
    let limit = env_usize("BENCH_LIMIT", 12);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(points, queries, limit))
}

async fn run(
    points: usize,
    queries: usize,
    limit: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Corpus::load(Path::new(
        &std::env::var("BENCH_PUBMEDQA").unwrap_or_else(|_| DEFAULT_PUBMEDQA.into()),
    ));
    println!(
        "corpus: {} topics, {} sentences ({})",
        corpus.questions.len(),
        corpus.sentences.len(),
        corpus.source
    );
    let mut rng = Rng(0x5eed);
    let model = load_model().await;
    let centroids: Arc<Vec<Vec<f32>>> = Arc::new(match &model {
        Some(model) => {
            let started = Instant::now();
            let abstracts = corpus.abstracts();
            let vectors = model.embed_documents(abstracts).await?;
            println!(
                "embedded {} abstracts as topic centroids in {:.1} s",
                vectors.len(),
                started.elapsed().as_secs_f64()
            );
            vectors
        }
        None => (0..corpus.questions.len())
            .map(|_| random_unit(&mut rng))
            .collect(),
    });

    let (dir, _temp) = match std::env::var_os("BENCH_DIR") {
        Some(dir) => (PathBuf::from(dir), None),
        None => {
            let temp = tempfile::tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    // An index kept in BENCH_DIR is only reused with the same kind of vectors
    // and the same collections.
    let kind = format!(
        "{} vectors in {COLLECTIONS} collections",
        if model.is_some() {
            "model"
        } else {
            "synthetic"
        }
    );
    let marker = dir.join("ragchat-bench-vectors");
    if let Ok(previous) = std::fs::read_to_string(&marker) {
        if previous != kind {
            return Err(format!(
                "{} holds {previous}, this run makes {kind}; use another BENCH_DIR",
                dir.display()
            )
            .into());
        }
    }
    let index = EdgeIndex::open(&dir, DIM).await?;
    std::fs::write(&marker, &kind)?;
    let existing = collection_sizes(&index).await?.iter().sum::<u64>();
    if existing as usize != points {
        refuse_partial(existing, points)?;
        let ingest = fill(&index, &corpus, &centroids, points).await?;
        let started = Instant::now();
        index.optimize().await?;
        println!(
            "built {points} points: ingest {:.1} s ({:.0} points/s, durable per {INGEST_BATCH}), \
             optimize (HNSW) {:.1} s",
            ingest.as_secs_f64(),
            points as f64 / ingest.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing {existing} points in {}", dir.display());
        index.optimize().await?;
    }
    let stats = index.stats().await?;
    println!(
        "index: {} segments, {} points, {} vectors in HNSW",
        stats.segments, stats.points, stats.indexed_vectors
    );

    let mut embedder = match model {
        Some(model) => QueryEmbedder::Model(model),
        None => QueryEmbedder::Synthetic(SyntheticEmbedder {
            centroids: centroids.clone(),
            rng: Rng(0xface),
        }),
    };
    let workload = Workload {
        queries: (0..queries + WARMUP)
            .map(|_| {
                let topic = rng.below(corpus.questions.len());
                BenchQuery {
                    text: corpus.questions[topic].clone(),
                    topic,
                }
            })
            .collect(),
        timed: queries,
        limit,
        // Hybrid search fuses the way the app is configured to by default.
        fusion: ragchat::chat::retrieve::fusion(&ragchat::config::RetrievalSettings::default()),
        bm25: Bm25::new(),
        scope_mode: match std::env::var("BENCH_SCOPE_MODE").as_deref() {
            Ok("dense") => SearchMode::Dense,
            Ok("sparse") => SearchMode::Sparse,
            _ => SearchMode::Hybrid,
        },
    };
    // Timed through the trait, exactly as the app calls it.
    modes(&index, &mut embedder, &workload).await?;
    let rows = scope_rows(&workload, corpus.questions.len(), &mut Rng(0x5c0e));
    selectivity(&index, "qdrant-edge", &mut embedder, &workload, &rows).await?;
    index.close().await?;

    match std::env::var("QDRANT_URL") {
        Ok(url) => {
            let server = server_index(&url, &corpus, &centroids, points).await?;
            let label = format!("qdrant server {}", server.server_version().await?);
            selectivity(&server, &label, &mut embedder, &workload, &rows).await?;
        }
        Err(_) => println!("\nqdrant server: skipped (QDRANT_URL not set)"),
    }
    Ok(())
}

/// Dense, BM25 and hybrid search with every collection readable: the cost
/// of each stage.
async fn modes(
    engine: &dyn VectorIndex,
    embedder: &mut QueryEmbedder,
    workload: &Workload,
) -> Result<(), Box<dyn std::error::Error>> {
    let everything = Scope {
        collections: (0..COLLECTIONS).map(collection_id).collect(),
        embedder: EMBEDDER.into(),
        hidden_documents: Vec::new(),
    };
    let Workload {
        queries,
        timed,
        limit,
        fusion,
        bm25,
        ..
    } = workload;
    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let mut embed_times = Vec::with_capacity(*timed);
        let mut encode_times = Vec::with_capacity(*timed);
        let mut search_times = Vec::with_capacity(*timed);
        let mut total_times = Vec::with_capacity(*timed);
        let mut relevant_at_1 = 0usize;
        for (i, query) in queries.iter().enumerate() {
            let start = Instant::now();
            let dense = embedder.embed(query).await?;
            let embedded = Instant::now();
            let sparse = bm25.query(&query.text);
            let encoded = Instant::now();
            let hits = engine
                .search(SearchRequest {
                    scope: everything.clone(),
                    dense,
                    sparse,
                    limit: *limit,
                    mode,
                    fusion: *fusion,
                })
                .await?;
            let done = Instant::now();
            if i < WARMUP {
                continue;
            }
            embed_times.push(embedded - start);
            encode_times.push(encoded - embedded);
            search_times.push(done - encoded);
            total_times.push(done - start);
            relevant_at_1 += usize::from(hits.first().is_some_and(|h| from_topic(h, query)));
        }
        println!(
            "\n{mode:?} search, limit {limit}, {timed} queries, all {COLLECTIONS} collections readable"
        );
        report(embedder.label(), &mut embed_times);
        report("  bm25 query encoding", &mut encode_times);
        report("  search + fusion", &mut search_times);
        report("  total", &mut total_times);
        println!(
            "  top-1 from the question's own abstract: {:.1} %",
            100.0 * relevant_at_1 as f64 / *timed as f64
        );
    }
    Ok(())
}

/// One row of the selectivity table: a scope per query.
struct ScopeRow {
    label: String,
    /// Collections readable per query (the scope lists their ids).
    readable: Vec<Vec<usize>>,
    scopes: Vec<Scope>,
}

impl ScopeRow {
    /// Whether query `i`'s own abstract is readable in this row.
    fn answerable(&self, i: usize, query: &BenchQuery) -> bool {
        self.readable[i].contains(&collection_of(query.topic))
            && !self.scopes[i]
                .hidden_documents
                .contains(&topic_id(query.topic))
    }
}

/// Scopes of 1, 10 and 100 readable collections, and of 100 with documents
/// hidden. A user reads a run of collections; for half the questions it
/// includes the collection of the question's abstract, for the other half
/// (where it can) it does not, as people also ask about what they can't see.
fn scope_rows(workload: &Workload, topics: usize, rng: &mut Rng) -> Vec<ScopeRow> {
    let mut rows: Vec<ScopeRow> = SCOPE_SIZES
        .iter()
        .map(|&size| {
            let readable: Vec<Vec<usize>> = workload
                .queries
                .iter()
                .enumerate()
                .map(|(i, query)| {
                    let home = collection_of(query.topic);
                    let first = if size == COLLECTIONS || i % 2 == 0 {
                        home + COLLECTIONS - rng.below(size)
                    } else {
                        home + 1 + rng.below(COLLECTIONS - size)
                    };
                    (0..size).map(|j| (first + j) % COLLECTIONS).collect()
                })
                .collect();
            ScopeRow {
                label: size.to_string(),
                scopes: readable.iter().map(|r| scope_of(r, Vec::new())).collect(),
                readable,
            }
        })
        .collect();
    let all: Vec<usize> = (0..COLLECTIONS).collect();
    let hidden_scopes = workload
        .queries
        .iter()
        .map(|query| {
            // Other documents than the one the question is about, so the
            // top-1 figure stays comparable with the unfiltered row.
            let mut hidden: Vec<String> = Vec::with_capacity(HIDDEN_DOCUMENTS);
            while hidden.len() < HIDDEN_DOCUMENTS.min(topics - 1) {
                let topic = rng.below(topics);
                let id = topic_id(topic);
                if topic != query.topic && !hidden.contains(&id) {
                    hidden.push(id);
                }
            }
            scope_of(&all, hidden)
        })
        .collect();
    rows.push(ScopeRow {
        label: format!("{COLLECTIONS}, {HIDDEN_DOCUMENTS} docs hidden"),
        readable: vec![all; workload.queries.len()],
        scopes: hidden_scopes,
    });
    rows
}

fn scope_of(collections: &[usize], hidden_documents: Vec<String>) -> Scope {
    Scope {
        collections: collections.iter().map(|&c| collection_id(c)).collect(),
        embedder: EMBEDDER.into(),
        hidden_documents,
    }
}

#[derive(Default)]
struct RowStats {
    search: Vec<Duration>,
    total: Vec<Duration>,
    chunks_in_scope: u64,
    fewest_results: Option<usize>,
    short: usize,
    answerable: usize,
    relevant_at_1: usize,
}

/// Hybrid search (the app's default; see `BENCH_SCOPE_MODE`) over the
/// scopes of `rows`; each query runs every row in turn, starting at another
/// row each time.
async fn selectivity(
    engine: &dyn VectorIndex,
    backend: &str,
    embedder: &mut QueryEmbedder,
    workload: &Workload,
    rows: &[ScopeRow],
) -> Result<(), Box<dyn std::error::Error>> {
    let sizes = collection_sizes(engine).await?;
    let total: u64 = sizes.iter().sum();
    let mut stats: Vec<RowStats> = rows.iter().map(|_| RowStats::default()).collect();
    for (i, query) in workload.queries.iter().enumerate() {
        for turn in 0..rows.len() {
            let r = (turn + i) % rows.len();
            let row = &rows[r];
            let start = Instant::now();
            let dense = embedder.embed(query).await?;
            let sparse = workload.bm25.query(&query.text);
            let encoded = Instant::now();
            let hits = engine
                .search(SearchRequest {
                    scope: row.scopes[i].clone(),
                    dense,
                    sparse,
                    limit: workload.limit,
                    mode: workload.scope_mode,
                    fusion: workload.fusion,
                })
                .await?;
            let done = Instant::now();
            // Access is the engine's job: a hit outside the scope is a bug,
            // not a figure.
            if let Some(hit) = hits.iter().find(|h| !in_scope(h, &row.scopes[i])) {
                return Err(format!(
                    "{backend}: scope {} returned chunk {} of {} in {}",
                    row.label, hit.id, hit.payload.document_id, hit.payload.collection
                )
                .into());
            }
            if i < WARMUP {
                continue;
            }
            let stats = &mut stats[r];
            stats.search.push(done - encoded);
            stats.total.push(done - start);
            stats.chunks_in_scope += row.readable[i].iter().map(|&c| sizes[c]).sum::<u64>();
            stats.fewest_results = Some(stats.fewest_results.unwrap_or(usize::MAX).min(hits.len()));
            stats.short += usize::from(hits.len() < workload.limit);
            if row.answerable(i, query) {
                stats.answerable += 1;
                stats.relevant_at_1 +=
                    usize::from(hits.first().is_some_and(|h| from_topic(h, query)));
            }
        }
    }

    let timed = workload.timed;
    println!(
        "\nScope selectivity ({backend}): {:?}, limit {}, {timed} queries per row, \
         {total} chunks in {COLLECTIONS} collections of whole abstracts",
        workload.scope_mode, workload.limit
    );
    println!(
        "{:<22} {:>9}  {:^26}  {:^26}  {:^13}  {:>7} {:>7}  {:>15}",
        "readable collections",
        "chunks",
        "search + fusion (ms)",
        "whole stage (ms)",
        "p95 vs all",
        "fewest",
        "short",
        "top-1 own"
    );
    println!(
        "{:<22} {:>9}  {:>8}{:>9}{:>9}  {:>8}{:>9}{:>9}  {:>6} {:>6}  {:>7} {:>7}  {:>15}",
        "",
        "in scope",
        "p50",
        "p95",
        "p99",
        "p50",
        "p95",
        "p99",
        "search",
        "stage",
        "results",
        "queries",
        "(answerable)"
    );
    let figures: Vec<([f64; 3], [f64; 3])> = stats
        .iter_mut()
        .map(|s| (percentiles(&mut s.search), percentiles(&mut s.total)))
        .collect();
    let base = rows
        .iter()
        .position(|row| row.label == COLLECTIONS.to_string())
        .map(|r| figures[r]);
    for ((row, stats), (search, whole)) in rows.iter().zip(&stats).zip(&figures) {
        let ratio = |value: f64, base: Option<f64>| match base {
            Some(base) if base > 0.0 => format!("{:.2}x", value / base),
            _ => "-".into(),
        };
        println!(
            "{:<22} {:>9.0}  {:>8.3}{:>9.3}{:>9.3}  {:>8.3}{:>9.3}{:>9.3}  {:>6} {:>6}  {:>7} {:>7}  {:>15}",
            row.label,
            stats.chunks_in_scope as f64 / timed.max(1) as f64,
            search[0],
            search[1],
            search[2],
            whole[0],
            whole[1],
            whole[2],
            ratio(search[1], base.map(|b| b.0[1])),
            ratio(whole[1], base.map(|b| b.1[1])),
            stats.fewest_results.unwrap_or(0),
            stats.short,
            format!(
                "{:.1} % of {}",
                100.0 * stats.relevant_at_1 as f64 / stats.answerable.max(1) as f64,
                stats.answerable
            ),
        );
    }
    println!(
        "  (whole stage = query embedding + BM25 encoding + search + fusion + payloads; \
         short = queries with fewer than {} results; every hit was within its scope)",
        workload.limit
    );
    Ok(())
}

fn in_scope(hit: &Hit, scope: &Scope) -> bool {
    scope.collections.contains(&hit.payload.collection)
        && hit.payload.embedder == scope.embedder
        && !scope.hidden_documents.contains(&hit.payload.document_id)
}

fn from_topic(hit: &Hit, query: &BenchQuery) -> bool {
    hit.payload.document_id == topic_id(query.topic)
}

/// Exact number of chunks in each collection.
async fn collection_sizes(
    engine: &dyn VectorIndex,
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut sizes = Vec::with_capacity(COLLECTIONS);
    for c in 0..COLLECTIONS {
        sizes.push(engine.count(&collection_id(c), None).await?);
    }
    Ok(sizes)
}

fn refuse_partial(existing: u64, points: usize) -> Result<(), Box<dyn std::error::Error>> {
    if existing > 0 {
        return Err(format!(
            "index holds {existing} bench points, expected 0 or {points}; use another BENCH_DIR"
        )
        .into());
    }
    Ok(())
}

/// The same index on a Qdrant server: filled (if it is not already) with the
/// same points, and fully indexed before it is timed.
async fn server_index(
    url: &str,
    corpus: &Corpus,
    centroids: &[Vec<f32>],
    points: usize,
) -> Result<QdrantServerIndex, Box<dyn std::error::Error>> {
    let api_key = std::env::var("QDRANT_API_KEY").ok();
    let server =
        QdrantServerIndex::connect(url, api_key.clone().map(Into::into), SERVER_COLLECTION, DIM)
            .await?;
    let existing = collection_sizes(&server).await?.iter().sum::<u64>();
    if existing as usize != points {
        refuse_partial(existing, points)?;
        let ingest = fill(&server, corpus, centroids, points).await?;
        println!(
            "\nqdrant server: ingested {points} points in {:.1} s",
            ingest.as_secs_f64()
        );
    } else {
        println!("\nqdrant server: reusing {existing} points in {SERVER_COLLECTION}");
    }
    // The server indexes in the background: time only a green collection
    // whose vectors are all in HNSW.
    let client = qdrant_client::Qdrant::from_url(url)
        .api_key(api_key)
        .skip_compatibility_check()
        .build()?;
    let started = Instant::now();
    let mut green_polls = 0;
    loop {
        let info = client
            .collection_info(SERVER_COLLECTION)
            .await?
            .result
            .ok_or("collection info missing")?;
        let indexed = info.indexed_vectors_count.unwrap_or(0);
        let green = info.status == qdrant_client::qdrant::CollectionStatus::Green as i32;
        // Green for 20 s with fewer vectors indexed: a collection below
        // the server's indexing threshold, searched by brute force.
        green_polls = if green { green_polls + 1 } else { 0 };
        if green && (indexed >= points as u64 || green_polls >= 10) {
            println!(
                "qdrant server: {} segments, {indexed} vectors indexed (waited {:.0} s)",
                info.segments_count,
                started.elapsed().as_secs_f64()
            );
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(1_800) {
            return Err("qdrant server: collection not indexed after 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The app's embedder on its default model directory, unless
/// `BENCH_EMBEDDER=synthetic` or the model is not installed.
async fn load_model() -> Option<Arc<LocalEmbedder>> {
    if std::env::var("BENCH_EMBEDDER").as_deref() == Ok("synthetic") {
        println!("query embedding: synthetic (BENCH_EMBEDDER=synthetic)");
        return None;
    }
    let dir = ragchat::config::EmbeddingSettings::default().local_model_dir();
    let loaded = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || LocalEmbedder::shared(&dir, 0, Default::default())
    })
    .await;
    match loaded {
        Ok(Ok(model)) => {
            println!("query embedding: all-MiniLM-L6-v2 from {}", dir.display());
            Some(model)
        }
        Ok(Err(err)) => {
            println!("query embedding: synthetic ({err}; run scripts/fetch-models.sh)");
            None
        }
        Err(err) => {
            println!("query embedding: synthetic (loading the model panicked: {err})");
            None
        }
    }
}

/// Writes the bench's `points` chunks (the same ones on every backend and
/// run) in batches of [`INGEST_BATCH`]; returns how long it took.
async fn fill(
    index: &dyn VectorIndex,
    corpus: &Corpus,
    centroids: &[Vec<f32>],
    points: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let bm25 = Bm25::new();
    let mut rng = Rng(0xb11d);
    let start = Instant::now();
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    for n in 0..points {
        batch.push(corpus.chunk(n, centroids, &bm25, &mut rng));
        if batch.len() == INGEST_BATCH || n + 1 == points {
            index.upsert(std::mem::take(&mut batch)).await?;
        }
    }
    Ok(start.elapsed())
}

/// The collection holding every chunk of an abstract.
fn collection_of(topic: usize) -> usize {
    topic % COLLECTIONS
}

/// Collection ids look like the app's (UUIDs).
fn collection_id(collection: usize) -> String {
    uuid::Uuid::from_u64_pair(0xc011_ec71, collection as u64).to_string()
}

fn topic_id(topic: usize) -> String {
    format!("abstract-{topic}")
}

struct Corpus {
    /// One question per topic (PubMedQA abstract).
    questions: Vec<String>,
    /// Sentences with the topic they came from.
    sentences: Vec<(usize, String)>,
    /// Sentence ranges per topic.
    by_topic: Vec<std::ops::Range<usize>>,
    source: &'static str,
}

impl Corpus {
    fn load(path: &Path) -> Self {
        match Self::pubmedqa(path) {
            Ok(corpus) => corpus,
            Err(err) => {
                eprintln!("{}: {err}; using generated text", path.display());
                Self::generated()
            }
        }
    }

    fn pubmedqa(path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let entries = json.as_object().ok_or("not a JSON object")?;
        let mut corpus = Self {
            questions: Vec::new(),
            sentences: Vec::new(),
            by_topic: Vec::new(),
            source: "PubMedQA",
        };
        for entry in entries.values() {
            let question = entry["QUESTION"].as_str().ok_or("QUESTION missing")?;
            let contexts = entry["CONTEXTS"].as_array().ok_or("CONTEXTS missing")?;
            let topic = corpus.questions.len();
            let first = corpus.sentences.len();
            for context in contexts.iter().filter_map(|c| c.as_str()) {
                for sentence in context.split_inclusive(". ") {
                    corpus.sentences.push((topic, sentence.trim().to_owned()));
                }
            }
            corpus.questions.push(question.to_owned());
            corpus.by_topic.push(first..corpus.sentences.len());
        }
        if corpus.questions.is_empty() {
            return Err("no entries".into());
        }
        Ok(corpus)
    }

    /// Each topic's sentences as one text (its abstract).
    fn abstracts(&self) -> Vec<String> {
        self.by_topic
            .iter()
            .map(|range| {
                self.sentences[range.clone()]
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// Zipf-ish synthetic vocabulary, 1,000 topics of 10 sentences each.
    fn generated() -> Self {
        let mut rng = Rng(7);
        let vocabulary: Vec<String> = (0..20_000).map(|i| format!("term{i}")).collect();
        let mut corpus = Self {
            questions: Vec::new(),
            sentences: Vec::new(),
            by_topic: Vec::new(),
            source: "generated",
        };
        for topic in 0..1_000 {
            let first = corpus.sentences.len();
            for _ in 0..10 {
                let words: Vec<&str> = (0..20)
                    .map(|_| {
                        let rank = (vocabulary.len() as f64).powf(rng.unit()) as usize;
                        vocabulary[rank.min(vocabulary.len() - 1)].as_str()
                    })
                    .collect();
                corpus.sentences.push((topic, words.join(" ")));
            }
            let question = corpus.sentences[first]
                .1
                .split(' ')
                .take(8)
                .collect::<Vec<_>>()
                .join(" ");
            corpus.questions.push(question);
            corpus.by_topic.push(first..corpus.sentences.len());
        }
        corpus
    }

    /// A chunk of 6–10 sentences: mostly from one abstract, some from others,
    /// so chunks of one topic are similar but never identical.
    fn chunk(&self, n: usize, centroids: &[Vec<f32>], bm25: &Bm25, rng: &mut Rng) -> ChunkPoint {
        let topic = rng.below(self.questions.len());
        let own = self.by_topic[topic].clone();
        let sentences = 6 + rng.below(5);
        let text = (0..sentences)
            .map(|_| {
                let pick = if rng.unit() < 0.75 && !own.is_empty() {
                    own.start + rng.below(own.len())
                } else {
                    rng.below(self.sentences.len())
                };
                self.sentences[pick].1.as_str()
            })
            .collect::<Vec<_>>()
            .join(" ");
        let dense = perturb(&centroids[topic], 0.8, rng);
        ChunkPoint {
            id: uuid::Uuid::from_u64_pair(0xbe9c, n as u64),
            dense,
            sparse: bm25.document(&text),
            payload: ChunkPayload {
                owner: OWNER.into(),
                collection: collection_id(collection_of(topic)),
                embedder: EMBEDDER.into(),
                document_id: topic_id(topic),
                document_name: format!("{}.pdf", topic_id(topic)),
                chunk_index: n as u32,
                heading_path: vec!["Abstract".into()],
                page: Some(1 + (n % 12) as u32),
                char_start: 0,
                char_end: text.chars().count() as u64,
                text,
            },
        }
    }
}

/// Unit vector with expected cosine ≈ `similarity` to `centre`.
fn perturb(centre: &[f32], similarity: f32, rng: &mut Rng) -> Vec<f32> {
    let noise = random_unit(rng);
    let rest = (1.0 - similarity * similarity).sqrt();
    normalize(
        centre
            .iter()
            .zip(&noise)
            .map(|(c, e)| similarity * c + rest * e)
            .collect(),
    )
}

fn random_unit(rng: &mut Rng) -> Vec<f32> {
    normalize((0..DIM).map(|_| rng.gaussian()).collect())
}

fn normalize(v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

fn report(label: &str, times: &mut [Duration]) {
    if times.is_empty() {
        return;
    }
    let [p50, p95, p99] = percentiles(times);
    println!("{label:<34} p50 {p50:>7.3} ms   p95 {p95:>7.3} ms   p99 {p99:>7.3} ms");
}

/// p50, p95 and p99 in milliseconds (nearest rank); zeros if empty.
fn percentiles(times: &mut [Duration]) -> [f64; 3] {
    times.sort_unstable();
    [0.50, 0.95, 0.99].map(|p| {
        if times.is_empty() {
            return 0.0;
        }
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1e3
    })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: deterministic, dependency-free, plenty for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    /// Standard normal via Box–Muller.
    fn gaussian(&mut self) -> f32 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}
