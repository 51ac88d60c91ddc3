//! Retrieval on PubMedQA (PQA-L): the 1,000 abstracts ingested through the
//! app's own document service (parse → chunk → embed → index); each
//! question scores where its own abstract ranks, for dense only, BM25 only
//! and hybrid.

use super::corpus::Corpus;
use anyhow::Context;
use app::ports::UserId;
use ragchat::chat::retrieve::Retriever;
use ragchat::config::{RetrievalMode, RetrievalSettings, Settings};
use std::collections::HashMap;
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

/// Runs the PubMedQA evaluation on `path` (`ori_pqal.json`); `Ok(false)`
/// when hybrid does not beat both single retrievers.
pub async fn run(path: &str, settings: &Settings) -> anyhow::Result<bool> {
    let items: HashMap<String, Item> =
        serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {path}"))?)
            .with_context(|| format!("parsing {path}"))?;
    let mut items: Vec<(String, Item)> = items.into_iter().collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    println!(
        "## PubMedQA: {} abstracts, one question each\n",
        items.len()
    );
    let documents: Vec<(String, String, String)> = items
        .iter()
        .map(|(pmid, item)| {
            (
                "reader".to_owned(),
                format!("{pmid}.txt"),
                item.contexts.join("\n\n"),
            )
        })
        .collect();
    let corpus = Corpus::ingest(settings.clone(), &documents).await?;
    println!(
        "Indexed {} abstracts as {} chunks in {:.1} s ({:.1} chunks/s)\n",
        items.len(),
        corpus.chunks,
        corpus.ingest_secs,
        f64::from(corpus.chunks) / corpus.ingest_secs
    );
    let pmid_of: HashMap<String, String> = corpus
        .key_of
        .iter()
        .map(|(id, name)| (id.clone(), name.trim_end_matches(".txt").to_owned()))
        .collect();

    let mut rows = Vec::new();
    for (name, mode) in [
        ("dense (all-MiniLM-L6-v2)", RetrievalMode::Dense),
        ("BM25 (sparse)", RetrievalMode::Sparse),
        ("hybrid (the app's default fusion)", RetrievalMode::Hybrid),
    ] {
        // Enough chunks to rank ten distinct abstracts.
        let retriever = corpus.retriever(RetrievalSettings {
            top_k: 40,
            mode,
            ..settings.retrieval.clone()
        });
        let reader = &corpus.reader_of["reader"];
        let (scores, p50) = evaluate(&retriever, &items, &pmid_of, reader).await?;
        rows.push((name, scores, p50));
    }

    print_table(&rows);
    let (dense, sparse, hybrid) = (&rows[0].1, &rows[1].1, &rows[2].1);
    let beats = hybrid.mrr() > dense.mrr() && hybrid.mrr() > sparse.mrr();
    println!(
        "\nHybrid MRR {:.3} vs dense {:.3} and BM25 {:.3}: {}\n",
        hybrid.mrr(),
        dense.mrr(),
        sparse.mrr(),
        if beats {
            "hybrid beats both"
        } else {
            "hybrid does NOT beat both"
        }
    );
    Ok(beats)
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
    let scope = retriever.private_scope(&user.0);
    for (pmid, item) in items {
        let retrieved = retriever.retrieve(&scope, &item.question).await?;
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
