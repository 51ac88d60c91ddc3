//! Retrieval latency: hybrid search over a 100k-chunk Qdrant Edge index.
//!
//! Builds (or reuses) an Edge index of `BENCH_POINTS` chunks (default 100,000)
//! with 384-d unit vectors and BM25 vectors, then runs `BENCH_QUERIES` queries
//! (default 1,000) and prints p50/p95/p99 of each stage: query embedding, BM25
//! query encoding, search + fusion, and the total.
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
//! (`model`, the default, or `synthetic`).
//!
//! Run: `cargo +nightly bench --features ssr --bench retrieval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ragchat::embed::local::LocalEmbedder;
use ragchat::embed::Embedder;
use ragchat::index::bm25::Bm25;
use ragchat::index::edge::EdgeIndex;
use ragchat::index::{ChunkPayload, ChunkPoint, SearchMode, SearchRequest, VectorIndex};

const DIM: usize = 384;
const OWNER: &str = "bench-user";
const DEFAULT_PUBMEDQA: &str = "/work/shared/data/pubmedqa/ori_pqal.json";
const INGEST_BATCH: usize = 1_000;

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
    // Hybrid search fuses the way the app is configured to by default.
    let fusion = ragchat::chat::retrieve::fusion(&ragchat::config::RetrievalSettings::default());
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
    // An index kept in BENCH_DIR is only reused with the same kind of vectors.
    let kind = if model.is_some() {
        "model"
    } else {
        "synthetic"
    };
    let marker = dir.join("ragchat-bench-vectors");
    if let Ok(previous) = std::fs::read_to_string(&marker) {
        if previous != kind {
            return Err(format!(
                "{} holds {previous} vectors, this run makes {kind} ones; use another BENCH_DIR",
                dir.display()
            )
            .into());
        }
    }
    let index = EdgeIndex::open(&dir, DIM).await?;
    std::fs::write(&marker, kind)?;
    let existing = index.count(OWNER, None).await?;
    if existing as usize != points {
        build(&index, &corpus, &centroids, points, existing).await?;
    } else {
        println!("reusing {existing} points in {}", dir.display());
        index.optimize().await?;
    }
    let stats = index.stats().await?;
    println!(
        "index: {} segments, {} points, {} vectors in HNSW",
        stats.segments, stats.points, stats.indexed_vectors
    );
    // Timed through the trait, exactly as the app calls it.
    let engine: &dyn VectorIndex = &index;

    let bm25 = Bm25::new();
    let mut embedder = match model {
        Some(model) => QueryEmbedder::Model(model),
        None => QueryEmbedder::Synthetic(SyntheticEmbedder {
            centroids: centroids.clone(),
            rng: Rng(0xface),
        }),
    };
    let workload: Vec<BenchQuery> = (0..queries + 50)
        .map(|_| {
            let topic = rng.below(corpus.questions.len());
            BenchQuery {
                text: corpus.questions[topic].clone(),
                topic,
            }
        })
        .collect();

    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let mut embed_times = Vec::with_capacity(queries);
        let mut encode_times = Vec::with_capacity(queries);
        let mut search_times = Vec::with_capacity(queries);
        let mut total_times = Vec::with_capacity(queries);
        let mut relevant_at_1 = 0usize;
        for (i, query) in workload.iter().enumerate() {
            let start = Instant::now();
            let dense = embedder.embed(query).await?;
            let embedded = Instant::now();
            let sparse = bm25.query(&query.text);
            let encoded = Instant::now();
            let hits = engine
                .search(SearchRequest {
                    owner: OWNER.into(),
                    dense,
                    sparse,
                    limit,
                    mode,
                    fusion,
                })
                .await?;
            let done = Instant::now();
            // The first 50 queries warm caches and thread pools.
            if i < 50 {
                continue;
            }
            embed_times.push(embedded - start);
            encode_times.push(encoded - embedded);
            search_times.push(done - encoded);
            total_times.push(done - start);
            let main_topic =
                |h: &ragchat::index::Hit| h.payload.document_id == topic_id(query.topic);
            relevant_at_1 += usize::from(hits.first().is_some_and(main_topic));
        }
        println!("\n{mode:?} search, limit {limit}, {queries} queries");
        report(embedder.label(), &mut embed_times);
        report("  bm25 query encoding", &mut encode_times);
        report("  search + fusion", &mut search_times);
        report("  total", &mut total_times);
        println!(
            "  top-1 from the question's own abstract: {:.1} %",
            100.0 * relevant_at_1 as f64 / queries as f64
        );
    }
    index.close().await?;
    Ok(())
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

async fn build(
    index: &EdgeIndex,
    corpus: &Corpus,
    centroids: &[Vec<f32>],
    points: usize,
    existing: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    if existing > 0 {
        return Err(format!(
            "index holds {existing} points for {OWNER}, expected 0 or {points}; use another BENCH_DIR"
        )
        .into());
    }
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
    let ingested = start.elapsed();
    index.optimize().await?;
    println!(
        "built {points} points: ingest {:.1} s ({:.0} points/s, durable per {INGEST_BATCH}), \
         optimize (HNSW) {:.1} s",
        ingested.as_secs_f64(),
        points as f64 / ingested.as_secs_f64(),
        (start.elapsed() - ingested).as_secs_f64()
    );
    Ok(())
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
    times.sort_unstable();
    let pct = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1e3
    };
    if times.is_empty() {
        return;
    }
    println!(
        "{label:<34} p50 {:>7.3} ms   p95 {:>7.3} ms   p99 {:>7.3} ms",
        pct(0.50),
        pct(0.95),
        pct(0.99)
    );
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
