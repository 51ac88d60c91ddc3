//! The peers, run on the same documents and questions by
//! `benches/long_doc_peers.py`: LangChain's default splitter (1000/200)
//! with BM25 (rank_bm25, as LangChain's `BM25Retriever`) and with
//! all-MiniLM-L6-v2 through sentence-transformers, and the plain RRF of the
//! two.

use super::squad::LongDocSet;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Serialize)]
struct Input<'a> {
    documents: Vec<InputDocument<'a>>,
    questions: Vec<InputQuestion<'a>>,
}

#[derive(Serialize)]
struct InputDocument<'a> {
    id: &'a str,
    title: &'a str,
    text: &'a str,
    /// Questions search only the documents of their own scope.
    scope: &'a str,
}

#[derive(Serialize)]
struct InputQuestion<'a> {
    id: &'a str,
    document_id: &'a str,
    question: &'a str,
    scope: &'a str,
}

#[derive(Deserialize)]
pub struct Output {
    pub chunks: u64,
    /// Pipeline → question id → passages, best first.
    pub pipelines: HashMap<String, HashMap<String, Vec<Passage>>>,
    pub versions: HashMap<String, String>,
}

#[derive(Deserialize)]
pub struct Passage {
    pub document_id: String,
    pub text: String,
}

/// The Python with sentence-transformers, rank_bm25 and LangChain's
/// splitter (`scripts/peers-venv.sh` makes it).
fn python() -> PathBuf {
    std::env::var_os("RAGCHAT_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/ragchat/st-venv/bin/python")
        })
}

/// Runs the peers on `set` with the all-MiniLM-L6-v2 in `model_dir` (the
/// app's own copy); `scope_of` gives each document's scope.
pub fn run(
    set: &LongDocSet,
    model_dir: &std::path::Path,
    scope_of: &dyn Fn(&str) -> String,
) -> anyhow::Result<Output> {
    let scopes: HashMap<&str, String> = set
        .documents
        .iter()
        .map(|d| (d.key.as_str(), scope_of(&d.key)))
        .collect();
    let input = Input {
        documents: set
            .documents
            .iter()
            .map(|d| InputDocument {
                id: &d.key,
                title: &d.title,
                text: &d.text,
                scope: &scopes[d.key.as_str()],
            })
            .collect(),
        questions: set
            .questions
            .iter()
            .map(|q| InputQuestion {
                id: &q.id,
                document_id: &q.document,
                question: &q.question,
                scope: &scopes[q.document.as_str()],
            })
            .collect(),
    };
    let dir = std::env::temp_dir().join(format!("ragchat-peers-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = run_script(&input, model_dir, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_script(
    input: &Input,
    model_dir: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<Output> {
    let (input_path, output_path) = (dir.join("in.json"), dir.join("out.json"));
    std::fs::write(&input_path, serde_json::to_vec(input)?)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/long_doc_peers.py");
    let python = python();
    let status = std::process::Command::new(&python)
        .arg(script)
        .arg(&input_path)
        .arg(&output_path)
        .arg("--model-dir")
        .arg(model_dir)
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .with_context(|| {
            format!(
                "running the peers with {} (scripts/eval.sh installs them)",
                python.display()
            )
        })?;
    if !status.success() {
        bail!("the peers' script failed: {status}");
    }
    serde_json::from_slice(&std::fs::read(&output_path)?).context("reading the peers' results")
}
