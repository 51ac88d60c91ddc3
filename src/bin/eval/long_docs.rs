//! Retrieval on long documents with answer spans, the app beside its peers
//! on the same documents and questions.
//!
//! Every document is uploaded by a reader of its own and each question is
//! asked by the reader of its document, so a question searches that one long
//! document (the questions of the default set, PolicyQA, are asked of every
//! privacy policy alike, and only make sense about one).
//!
//! Found means a returned passage contains an answer text (after folding
//! case, width and whitespace). Recall@k counts passages; recall within the
//! context budget reads the passages in order up to 4,000 characters in all
//! (the last one cut at the budget), which is fair across chunk sizes.

use super::corpus::Corpus;
use super::peers;
use super::squad::{self, LongDocSet};
use ragchat::config::{FusionKind, RetrievalMode, RetrievalSettings, Settings};
use std::collections::HashMap;
use std::time::Instant;
use unicode_normalization::UnicodeNormalization;

/// Characters of context the budget column allows.
pub const BUDGET_CHARS: usize = 4_000;
/// Passages per question, as the chat would be asked with `top_k` 10.
const TOP_K: usize = 10;
const CUTOFFS: [usize; 3] = [1, 5, 10];

/// Span recall of one pipeline over a question set.
#[derive(Default, Clone)]
pub struct SpanRecall {
    found_at: [usize; 3],
    within_budget: usize,
    questions: usize,
    passages: usize,
    passage_chars: usize,
}

impl SpanRecall {
    /// Scores one question: `passages` best first, each with whether it
    /// comes from the question's own document; `answers` normalised.
    pub fn add(&mut self, passages: &[(&str, bool)], answers: &[String]) {
        self.questions += 1;
        self.passages += passages.len();
        self.passage_chars += passages
            .iter()
            .map(|(p, _)| p.chars().count())
            .sum::<usize>();
        let contains = |text: &str| answers.iter().any(|a| text.contains(a.as_str()));
        let found = |(text, own): &(&str, bool)| *own && contains(&normalize(text));
        if let Some(rank) = passages.iter().position(found) {
            for (i, cutoff) in CUTOFFS.iter().enumerate() {
                if rank < *cutoff {
                    self.found_at[i] += 1;
                }
            }
        }
        let mut left = BUDGET_CHARS;
        for (passage, own) in passages {
            if left == 0 {
                break;
            }
            let shown: String = passage.chars().take(left).collect();
            left -= shown.chars().count();
            if *own && contains(&normalize(&shown)) {
                self.within_budget += 1;
                break;
            }
        }
    }

    pub fn recall_at(&self, i: usize) -> f64 {
        self.found_at[i] as f64 / self.questions.max(1) as f64
    }

    pub fn budget_recall(&self) -> f64 {
        self.within_budget as f64 / self.questions.max(1) as f64
    }

    fn mean_chars(&self) -> f64 {
        self.passage_chars as f64 / self.passages.max(1) as f64
    }
}

/// Case, width and whitespace folded, invisible characters dropped: the
/// form in which an answer is looked for in a passage.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .nfkc()
        .filter(|c| !matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{FEFF}'))
        .flat_map(char::to_lowercase)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A named retrieval configuration of the app.
pub struct Variant {
    pub name: String,
    pub settings: RetrievalSettings,
}

/// The configurations compared: the configured one first, then what each
/// part adds (set `EVAL_ABLATIONS=0` to skip those).
fn variants(configured: &RetrievalSettings) -> Vec<Variant> {
    let with = |name: &str, change: &dyn Fn(&mut RetrievalSettings)| {
        let mut settings = configured.clone();
        change(&mut settings);
        Variant {
            name: name.to_owned(),
            settings,
        }
    };
    let mut list = vec![with("this app, as configured", &|_| {})];
    if std::env::var("EVAL_ABLATIONS").as_deref() != Ok("0") {
        list.extend([
            with("  dense only", &|s| s.mode = RetrievalMode::Dense),
            with("  BM25 only", &|s| s.mode = RetrievalMode::Sparse),
            with("  plain RRF, no merging", &|s| {
                s.fusion = FusionKind::Rrf;
                s.dense_weight = 1.0;
                s.sparse_weight = 1.0;
                s.merge_neighbours = false;
            }),
            with("  without merging", &|s| s.merge_neighbours = false),
            with("  RRF instead of z-scores", &|s| s.fusion = FusionKind::Rrf),
        ]);
    }
    list
}

/// Runs the evaluation on the SQuAD-format files in `paths` (comma-separated);
/// `Ok(false)` when the app falls behind the better peer.
pub async fn run(paths: &str, settings: &Settings) -> anyhow::Result<bool> {
    let set = squad::load(paths)?;
    let answers: HashMap<&str, Vec<String>> = set
        .questions
        .iter()
        .map(|q| {
            let normalized = q.answers.iter().map(|a| normalize(a)).collect();
            (q.id.as_str(), normalized)
        })
        .collect();
    print_set(&set, paths);

    let corpus = Corpus::ingest(settings.clone(), &set.uploads(None)).await?;
    println!(
        "The app indexed them as {} passages in {:.1} s.",
        corpus.chunks, corpus.ingest_secs
    );
    let started = Instant::now();
    let peers = if std::env::var("EVAL_PEERS").as_deref() == Ok("0") {
        None
    } else {
        let model_dir = settings.embedding.local_model_dir();
        let peers = peers::run(&set, &model_dir, &|key| key.to_owned())?;
        println!(
            "The peers split them into {} chunks (LangChain 1000/200) and ran in {:.1} s ({}).\n",
            peers.chunks,
            started.elapsed().as_secs_f64(),
            versions(&peers.versions)
        );
        Some(peers)
    };

    let mut rows: Vec<(String, SpanRecall)> = Vec::new();
    for variant in variants(&settings.retrieval) {
        let retriever = corpus.retriever(RetrievalSettings {
            top_k: TOP_K,
            ..variant.settings
        });
        let mut recall = SpanRecall::default();
        for question in &set.questions {
            let reader = &corpus.reader_of[&question.document];
            let retrieved = retriever
                .retrieve_top(
                    &retriever.private_scope(&reader.0),
                    &question.question,
                    TOP_K,
                )
                .await?;
            let passages = corpus.passages(&retrieved.hits, &question.document);
            recall.add(&passages, &answers[question.id.as_str()]);
        }
        rows.push((variant.name, recall));
    }
    for (pipeline, label) in [
        ("bm25", "BM25 alone, LangChain-default chunks (1000/200)"),
        (
            "minilm",
            "all-MiniLM-L6-v2 alone (sentence-transformers), same chunks",
        ),
        ("rrf", "plain RRF of the two, same chunks"),
    ] {
        let mut recall = SpanRecall::default();
        let Some(peers) = &peers else { break };
        let results = peers.pipelines.get(pipeline);
        for question in &set.questions {
            let passages: Vec<(&str, bool)> = results
                .and_then(|r| r.get(&question.id))
                .map(|list| {
                    list.iter()
                        .map(|p| (p.text.as_str(), p.document_id == question.document))
                        .collect()
                })
                .unwrap_or_default();
            recall.add(&passages, &answers[question.id.as_str()]);
        }
        rows.push((label.to_owned(), recall));
    }
    print_table(&rows);
    Ok(peers.is_none() || verdict(&rows))
}

/// Uploads the set's documents as one reader (a batch upload) and prints
/// the upload-to-indexed time and where it went, as one JSON line.
pub async fn ingest_only(paths: &str, settings: &Settings) -> anyhow::Result<bool> {
    let set = squad::load(paths)?;
    let corpus = Corpus::ingest(settings.clone(), &set.uploads(Some("reader"))).await?;
    let stages = corpus.stages;
    let line = serde_json::json!({
        "documents": set.documents.len(),
        "chars": set.documents.iter().map(|d| d.text.chars().count()).sum::<usize>(),
        "chunks": corpus.chunks,
        "total_s": corpus.ingest_secs,
        "parse_s": stages.parse.as_secs_f64(),
        "chunk_s": stages.chunk.as_secs_f64(),
        "embed_s": stages.embed.as_secs_f64(),
        "index_s": stages.index.as_secs_f64(),
        "bookkeeping_s": stages.bookkeeping.as_secs_f64(),
    });
    println!("{line}");
    Ok(true)
}

fn print_set(set: &LongDocSet, paths: &str) {
    let mut lengths: Vec<usize> = set
        .documents
        .iter()
        .map(|d| d.text.chars().count())
        .collect();
    lengths.sort_unstable();
    println!(
        "## Long documents: {} documents (median {} characters, longest {}), {} questions with answer spans\n   from {}\n",
        set.documents.len(),
        lengths.get(lengths.len() / 2).copied().unwrap_or(0),
        lengths.last().copied().unwrap_or(0),
        set.questions.len(),
        paths.replace(',', ", ")
    );
}

fn versions(versions: &HashMap<String, String>) -> String {
    let mut list: Vec<String> = versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    list.sort();
    list.join(", ")
}

fn print_table(rows: &[(String, SpanRecall)]) {
    println!(
        "| pipeline | recall@1 | recall@5 | recall@10 | recall within {BUDGET_CHARS} chars | chars per passage |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, r) in rows {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
            r.recall_at(0),
            r.recall_at(1),
            r.recall_at(2),
            r.budget_recall(),
            r.mean_chars()
        );
    }
}

/// Prints how the app compares with the better peer on recall@5 and on
/// recall within the budget, against the bar (5 points better, or
/// half of the peer's distance to 1.0 where that is smaller). `false` when
/// the app falls below the better peer on either: a regression.
fn verdict(rows: &[(String, SpanRecall)]) -> bool {
    let app = &rows[0].1;
    let peers = &rows[rows.len() - 3..];
    let mut ahead = true;
    for (label, get) in [
        (
            "recall@5",
            &(|r: &SpanRecall| r.recall_at(1)) as &dyn Fn(&SpanRecall) -> f64,
        ),
        ("recall within the budget", &|r: &SpanRecall| {
            r.budget_recall()
        }),
    ] {
        let best = peers.iter().map(|(_, r)| get(r)).fold(0.0, f64::max);
        let bar = (best + 0.05).min(best + (1.0 - best) / 2.0);
        let ours = get(app);
        ahead &= ours >= best;
        println!(
            "\nThe app's {label} {ours:.3} vs the better peer's {best:.3} ({:+.1} points; the bar is {bar:.3}): {}",
            (ours - best) * 100.0,
            if ours >= bar {
                "meets the bar"
            } else if ours >= best {
                "ahead, short of the bar"
            } else {
                "BEHIND the peer"
            }
        );
    }
    ahead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_by_rank_and_within_the_budget() {
        let mut r = SpanRecall::default();
        let far = "x".repeat(BUDGET_CHARS);
        let answer = [normalize("answer")];
        r.add(
            &[("nothing here", true), ("The  ANSWER is here", true)],
            &answer,
        );
        r.add(&[(far.as_str(), true), ("answer", true)], &answer);
        r.add(&[("answer from another document", false)], &answer);
        assert_eq!(r.found_at, [0, 2, 2]);
        assert_eq!(r.within_budget, 1, "the second one lies past the budget");
        assert_eq!(r.questions, 3);
    }
}
