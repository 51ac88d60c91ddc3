//! Embedding benchmark: the local embedder vs sentence-transformers on the
//! same 1,000 real chunks (PubMedQA abstracts cut at sentence boundaries into
//! pieces of at most 1,000 characters), batch 32, same thread count.
//!
//!   scripts/bench-embedding.sh          # installs the peer, then runs this
//!
//! Environment: RAGCHAT_ST_PYTHON (a Python with sentence-transformers; unset:
//! ours only), RAGCHAT_MODEL_DIR, RAGCHAT_PUBMEDQA (the ori_pqal.json path),
//! RAGCHAT_BENCH_CHUNKS (1000), RAGCHAT_BENCH_RUNS (3), RAGCHAT_EMBED_THREADS
//! (all cores).

use ragchat::embed::cosine;
use ragchat::embed::local::{LocalEmbedder, LocalOptions};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BATCH: usize = 32;
const MAX_CHARS: usize = 1000;
const QUERIES: usize = 50;

#[derive(Deserialize)]
struct PubMedQa {
    #[serde(rename = "QUESTION")]
    question: String,
    #[serde(rename = "CONTEXTS")]
    contexts: Vec<String>,
}

/// What the Python peer prints (one JSON line).
#[derive(Deserialize)]
struct PeerReport {
    chunks_per_s: Vec<f64>,
    query_ms: Vec<f64>,
    vectors_file: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var_os("RAGCHAT_PUBMEDQA").map_or_else(
        || root.join("../shared/data/pubmedqa/ori_pqal.json"),
        PathBuf::from,
    );
    let model_dir = std::env::var_os("RAGCHAT_MODEL_DIR")
        .map_or_else(default_models, PathBuf::from)
        .join("all-minilm-l6-v2");
    let wanted = env_usize("RAGCHAT_BENCH_CHUNKS", 1000);
    let runs = env_usize("RAGCHAT_BENCH_RUNS", 3).max(1);
    let threads = env_usize("RAGCHAT_EMBED_THREADS", 0);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };

    let items: BTreeMap<String, PubMedQa> = serde_json::from_str(
        &std::fs::read_to_string(&data)
            .map_err(|e| format!("reading {} (set RAGCHAT_PUBMEDQA): {e}", data.display()))?,
    )?;
    let chunks: Vec<String> = items
        .values()
        .flat_map(|item| split(&item.contexts.join(" "), MAX_CHARS))
        .take(wanted)
        .collect();
    let queries: Vec<String> = items
        .values()
        .take(QUERIES)
        .map(|i| i.question.clone())
        .collect();
    let mean_chars = chunks.iter().map(|c| c.chars().count()).sum::<usize>() / chunks.len().max(1);
    println!(
        "{} chunks (mean {mean_chars} chars, at most {MAX_CHARS}), {} queries, batch {BATCH}, {threads} threads, {runs} runs",
        chunks.len(),
        queries.len()
    );
    println!("load average at start: {}", loadavg());

    let started = Instant::now();
    let options = LocalOptions {
        batch_size: BATCH,
        threads,
        ..LocalOptions::default()
    };
    let embedder = LocalEmbedder::load(&model_dir, &options)
        .map_err(|e| format!("{e} (model dir {})", model_dir.display()))?;
    println!("ours: loaded in {:.2} s", started.elapsed().as_secs_f64());

    let mut ours = Vec::new();
    let mut vectors = Vec::new();
    for run in 0..runs {
        let started = Instant::now();
        vectors = embedder.embed_blocking(&chunks)?;
        let rate = chunks.len() as f64 / started.elapsed().as_secs_f64();
        println!("ours: run {} {rate:.1} chunks/s", run + 1);
        ours.push(rate);
    }
    let mut query_ms = Vec::new();
    for query in &queries {
        let started = Instant::now();
        embedder.embed_blocking(std::slice::from_ref(query))?;
        query_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let ours_rate = median(&ours);
    println!(
        "ours (OpenVINO): {ours_rate:.1} chunks/s (median); query latency p50 {:.1} ms, p95 {:.1} ms",
        percentile(&query_ms, 50.0),
        percentile(&query_ms, 95.0)
    );

    let Some(python) = std::env::var_os("RAGCHAT_ST_PYTHON") else {
        println!("sentence-transformers: skipped (RAGCHAT_ST_PYTHON is not set; scripts/bench-embedding.sh sets it)");
        return Ok(());
    };
    let tmp = std::env::temp_dir().join(format!("ragchat-embedding-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let texts_file = tmp.join("texts.json");
    let queries_file = tmp.join("queries.json");
    std::fs::write(&texts_file, serde_json::to_string(&chunks)?)?;
    std::fs::write(&queries_file, serde_json::to_string(&queries)?)?;
    let output = Command::new(python)
        .arg(root.join("benches/embedding_sentence_transformers.py"))
        .arg("--model-dir")
        .arg(&model_dir)
        .arg("--texts")
        .arg(&texts_file)
        .arg("--queries")
        .arg(&queries_file)
        .arg("--out")
        .arg(&tmp)
        .args([
            "--runs",
            &runs.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args(["--batch", &BATCH.to_string()])
        .output()?;
    if !output.status.success() {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(format!(
            "sentence-transformers run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: PeerReport = serde_json::from_str(
        stdout
            .lines()
            .last()
            .ok_or("sentence-transformers printed nothing")?,
    )?;
    let theirs: Vec<Vec<f32>> =
        serde_json::from_str(&std::fs::read_to_string(&report.vectors_file)?)?;
    std::fs::remove_dir_all(&tmp).ok();

    let st_rate = median(&report.chunks_per_s);
    for (run, rate) in report.chunks_per_s.iter().enumerate() {
        println!("sentence-transformers: run {} {rate:.1} chunks/s", run + 1);
    }
    println!(
        "sentence-transformers (torch, float32): {st_rate:.1} chunks/s (median); query latency p50 {:.1} ms, p95 {:.1} ms",
        percentile(&report.query_ms, 50.0),
        percentile(&report.query_ms, 95.0)
    );
    let similarities: Vec<f32> = vectors
        .iter()
        .zip(&theirs)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let lowest = similarities.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = similarities.iter().sum::<f32>() / similarities.len().max(1) as f32;
    println!(
        "cosine ours vs sentence-transformers over {} chunks: min {lowest:.6}, mean {mean:.6}",
        similarities.len()
    );
    println!(
        "ratio: {:.2}x sentence-transformers' throughput",
        ours_rate / st_rate
    );
    println!("load average at end: {}", loadavg());
    Ok(())
}

/// Splits at sentence ends (., ! or ? then whitespace) and packs whole
/// sentences into pieces of at most `max` characters; a longer sentence is
/// cut at the last space before the limit.
fn split(text: &str, max: usize) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|(_, n)| n.is_whitespace()) {
            sentences.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    sentences.push(text[start..].trim());

    let mut pieces = Vec::new();
    let mut current = String::new();
    for sentence in sentences.into_iter().filter(|s| !s.is_empty()) {
        let mut sentence = sentence;
        while sentence.chars().count() > max {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            let limit = sentence
                .char_indices()
                .nth(max)
                .map_or(sentence.len(), |(i, _)| i);
            let cut = sentence[..limit]
                .rfind(' ')
                .filter(|&i| i > 0)
                .unwrap_or(limit);
            pieces.push(sentence[..cut].to_string());
            sentence = sentence[cut..].trim_start();
        }
        let needed = if current.is_empty() { 0 } else { 1 } + sentence.chars().count();
        if current.chars().count() + needed > max {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(sentence);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn default_models() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("ragchat")
        .join("models")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
