//! Retrieval evaluation on PubMedQA (PQA-L): ingests the 1,000 abstracts
//! through the app's own document service (parse → chunk → embed → index),
//! then asks each question and scores where its own abstract ranks, for dense
//! only, BM25 only and hybrid (RRF).
//!
//! `cargo run --features ssr --bin eval -- ../shared/data/pubmedqa/ori_pqal.json`

use anyhow::{bail, Context};
use app::ports::{Caller, DocumentService, UserId};
use app::wire::{DocumentStatus, UserRole};
use ragchat::chat::retrieve::Retriever;
use ragchat::config::{RetrievalMode, RetrievalSettings, Settings};
use ragchat::documents::DocumentServiceImpl;
use ragchat::ops::limits::{Allowances, LimitSettings, LocalRateLimiter, RoleLimits};
use ragchat::ops::metrics::Metrics;
use ragchat::startup::{build_embedder, build_index};
use ragchat::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Item {
    #[serde(rename = "QUESTION")]
    question: String,
    #[serde(rename = "CONTEXTS")]
    contexts: Vec<String>,
}

#[derive(Default)]
struct Scores {
    hits_at: [usize; 3],
    reciprocal_ranks: f64,
    questions: usize,
}

const CUTOFFS: [usize; 3] = [1, 5, 10];

impl Scores {
    fn add(&mut self, rank: Option<usize>) {
        self.questions += 1;
        if let Some(rank) = rank {
            for (i, cutoff) in CUTOFFS.iter().enumerate() {
                if rank <= *cutoff {
                    self.hits_at[i] += 1;
                }
            }
            self.reciprocal_ranks += 1.0 / rank as f64;
        }
    }

    fn recall(&self, i: usize) -> f64 {
        self.hits_at[i] as f64 / self.questions.max(1) as f64
    }

    fn mrr(&self) -> f64 {
        self.reciprocal_ranks / self.questions.max(1) as f64
    }
}

fn main() -> anyhow::Result<()> {
    // Documents are parsed by this same binary in a capped child process.
    ragchat::documents::sandbox::serve_if_worker();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/pubmedqa/ori_pqal.json".into());
    let items: HashMap<String, Item> =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {path}"))?)
            .with_context(|| format!("parsing {path}"))?;
    let mut items: Vec<(String, Item)> = items.into_iter().collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));

    let data = std::env::temp_dir().join(format!("ragchat-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let settings = Settings {
        data_dir: data.clone(),
        ..Settings::default()
    };
    let store = Store::open(&settings.database, &settings.data_dir).await?;
    let (embedder, tokens) = build_embedder(&settings).await?;
    let index = build_index(&settings, embedder.dimension()).await?;
    println!(
        "Ingesting {} abstracts with {} into {} …",
        items.len(),
        embedder.model(),
        index.backend()
    );
    // One reader uploads the whole corpus: no quotas.
    let limits = Arc::new(Allowances::new(
        Arc::new(LocalRateLimiter::new()),
        store.clone(),
        LimitSettings {
            guest: RoleLimits::UNLIMITED,
            ..LimitSettings::default()
        },
        Arc::new(Metrics::new()?),
    ));
    let documents = DocumentServiceImpl::start(
        store.clone(),
        index.clone(),
        embedder.clone(),
        tokens,
        limits,
        settings.documents.clone(),
        &settings.data_dir,
    )
    .await?;
    let user = UserId(store.create_guest(None).await?);
    let caller = Caller {
        user: Some(user.clone()),
        role: UserRole::Guest,
        ip: None,
    };
    let started = Instant::now();
    let (pmid_of, chunks) = upload_all(&documents, &caller, &user, &items).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    println!(
        "Indexed {} abstracts as {chunks} chunks in {ingest_secs:.1} s ({:.1} chunks/s)\n",
        items.len(),
        f64::from(chunks) / ingest_secs
    );

    let mut rows = Vec::new();
    for (name, mode) in [
        ("dense (all-MiniLM-L6-v2)", RetrievalMode::Dense),
        ("BM25 (sparse)", RetrievalMode::Sparse),
        ("hybrid (RRF)", RetrievalMode::Hybrid),
    ] {
        // Enough chunks to rank ten distinct abstracts.
        let retriever = Retriever::new(
            embedder.clone(),
            index.clone(),
            RetrievalSettings {
                top_k: 40,
                mode,
                ..RetrievalSettings::default()
            },
        );
        let (scores, p50) = evaluate(&retriever, &items, &pmid_of, &user).await?;
        rows.push((name, scores, p50));
    }

    print_table(&rows);
    let (dense, sparse, hybrid) = (&rows[0].1, &rows[1].1, &rows[2].1);
    let beats = hybrid.mrr() > dense.mrr() && hybrid.mrr() > sparse.mrr();
    println!(
        "\nHybrid MRR {:.3} vs dense {:.3} and BM25 {:.3}: {}",
        hybrid.mrr(),
        dense.mrr(),
        sparse.mrr(),
        if beats {
            "hybrid beats both"
        } else {
            "hybrid does NOT beat both"
        }
    );
    let _ = std::fs::remove_dir_all(&data);
    if !beats {
        std::process::exit(1);
    }
    Ok(())
}

/// Asks every question through `retriever`: the rank of its own abstract
/// among the first ten distinct abstracts found, and the median latency.
async fn evaluate(
    retriever: &Retriever,
    items: &[(String, Item)],
    pmid_of: &HashMap<String, String>,
    user: &UserId,
) -> anyhow::Result<(Scores, f64)> {
    let mut scores = Scores::default();
    let mut latencies = Vec::new();
    for (pmid, item) in items {
        let retrieved = retriever.retrieve(&user.0, &item.question).await?;
        latencies.push(retrieved.embed_ms + retrieved.search_ms);
        let mut ranked: Vec<&String> = Vec::new();
        for hit in &retrieved.hits {
            let Some(hit_pmid) = pmid_of.get(&hit.payload.document_id) else {
                continue;
            };
            if !ranked.contains(&hit_pmid) {
                ranked.push(hit_pmid);
            }
        }
        let rank = ranked
            .iter()
            .take(10)
            .position(|p| *p == pmid)
            .map(|i| i + 1);
        scores.add(rank);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((scores, latencies[latencies.len() / 2]))
}

fn print_table(rows: &[(&str, Scores, f64)]) {
    println!("| retrieval | recall@1 | recall@5 | recall@10 | MRR@10 | p50 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, scores, p50) in rows {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {p50:.1} |",
            scores.recall(0),
            scores.recall(1),
            scores.recall(2),
            scores.mrr()
        );
    }
}

/// Uploads every abstract as a text file and waits until all are indexed:
/// each document's PubMed id, and the number of chunks.
async fn upload_all(
    documents: &DocumentServiceImpl,
    caller: &Caller,
    user: &UserId,
    items: &[(String, Item)],
) -> anyhow::Result<(HashMap<String, String>, u32)> {
    let mut pmid_of = HashMap::new();
    for (pmid, item) in items {
        let text = item.contexts.join("\n\n");
        let (doc, _) = documents
            .upload(caller, &format!("{pmid}.txt"), text.into_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("uploading {pmid}: {e}"))?;
        pmid_of.insert(doc.id, pmid.clone());
    }
    let chunks = loop {
        let listed = documents
            .list(user)
            .await
            .map_err(|e| anyhow::anyhow!("listing: {e}"))?;
        if let Some(failed) = listed.iter().find(|d| d.status == DocumentStatus::Failed) {
            bail!("{} failed: {:?}", failed.name, failed.error);
        }
        if listed.iter().all(|d| d.status == DocumentStatus::Indexed) {
            break listed.iter().filter_map(|d| d.chunks).sum::<u32>();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    Ok((pmid_of, chunks))
}
