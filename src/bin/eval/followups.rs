//! Follow-ups that retrieve in context: two-turn questions on the
//! long-document set (`tests/fixtures/followups/policyqa.json`, made by
//! `scripts/make-followups.py`): the first turn names the topic, the
//! follow-up refers to it by a pronoun. Each follow-up is searched as it
//! stands, rewritten by the chat's own rewriter (the configured model, and
//! the deterministic fallback alone), and — the ceiling — as the original
//! standalone question.

use super::corpus::Corpus;
use super::long_docs::{normalize, SpanRecall};
use super::squad;
use anyhow::Context;
use app::wire::Role;
use ragchat::chat::retrieve::Retriever;
use ragchat::chat::rewrite::{fallback, QueryRewriter, RewriteSource};
use ragchat::config::Settings;
use ragchat::llm::ChatModel;
use ragchat::startup::build_model;
use ragchat::store::HistoryMessage;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
struct Fixture {
    pairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    document: String,
    first: String,
    first_answer: String,
    follow_up: String,
    standalone: String,
    answers: Vec<String>,
}

/// Runs the follow-up evaluation; `Ok(false)` when rewritten follow-ups
/// fall more than 5 points of recall@5 below the standalone questions.
pub async fn run(paths: &str, fixture: &str, settings: &Settings) -> anyhow::Result<bool> {
    let set = squad::load(paths)?;
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(fixture)?)?;
    println!(
        "## Follow-ups: {} two-turn questions on {} documents\n",
        fixture.pairs.len(),
        set.documents.len()
    );
    let corpus = Corpus::ingest(settings.clone(), &set.uploads(None)).await?;
    let retriever = corpus.retriever(settings.retrieval.clone());
    let model = build_model(settings).await?;
    let rewriter = QueryRewriter::new(
        None,
        Duration::from_millis(settings.rewrite.timeout_ms),
        settings.rewrite.history_chars,
        true,
    );

    let asked = ask_all(&fixture.pairs, &corpus, &retriever, &rewriter, &model).await?;
    let Asked {
        standalone,
        as_is,
        rewritten,
        fallback_only,
        by_model,
        mut times,
    } = asked;
    anyhow::ensure!(!times.is_empty(), "the fixture has no follow-ups");
    times.sort_by(f64::total_cmp);
    let percentile = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "The model ({}) wrote {by_model} of {} queries within {} ms (rewrite p50 {:.0} ms, p95 {:.0} ms); the fallback wrote the rest.\n",
        model.name(),
        fixture.pairs.len(),
        settings.rewrite.timeout_ms,
        percentile(0.5),
        percentile(0.95)
    );
    println!("| follow-up searched as | recall@5 | recall within 4000 chars |");
    println!("|---|---|---|");
    for (name, recall) in [
        ("it stands (no rewrite)", &as_is),
        ("rewritten (model, fallback on timeout)", &rewritten),
        (
            "fallback only (earlier question's key terms added)",
            &fallback_only,
        ),
        ("the standalone question (ceiling)", &standalone),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} |",
            recall.recall_at(1),
            recall.budget_recall()
        );
    }
    let gap = standalone.recall_at(1) - rewritten.recall_at(1);
    let passed = gap <= 0.05;
    println!(
        "\nRewritten follow-ups are {:.1} points of recall@5 below standalone: {}",
        gap * 100.0,
        if passed { "within 5" } else { "MORE than 5" }
    );
    Ok(passed)
}

/// Each follow-up searched four ways, and how the rewrites went.
struct Asked {
    standalone: SpanRecall,
    as_is: SpanRecall,
    rewritten: SpanRecall,
    fallback_only: SpanRecall,
    /// Queries the model wrote (the rest came from the fallback).
    by_model: usize,
    /// Each rewrite's time (ms).
    times: Vec<f64>,
}

async fn ask_all(
    pairs: &[Pair],
    corpus: &Corpus,
    retriever: &Retriever,
    rewriter: &QueryRewriter,
    model: &Arc<dyn ChatModel>,
) -> anyhow::Result<Asked> {
    let [mut standalone, mut as_is, mut rewritten, mut fallback_only] =
        std::array::from_fn(|_| SpanRecall::default());
    let (mut by_model, mut times) = (0usize, Vec::new());
    for pair in pairs {
        let reader = &corpus
            .reader_of
            .get(&pair.document)
            .with_context(|| format!("the fixture names {}, not in the set", pair.document))?
            .0;
        let answers: Vec<String> = pair.answers.iter().map(|a| normalize(a)).collect();
        let history = [
            HistoryMessage {
                role: Role::User,
                content: pair.first.clone(),
            },
            HistoryMessage {
                role: Role::Assistant,
                content: pair.first_answer.clone(),
            },
        ];
        let rewrite = rewriter
            .rewrite(model, &history, &pair.follow_up, &Default::default())
            .await
            .ok_or_else(|| anyhow::anyhow!("a follow-up was not rewritten"))?;
        by_model += usize::from(rewrite.source == RewriteSource::Model);
        times.push(rewrite.ms);
        for (query, recall) in [
            (pair.standalone.clone(), &mut standalone),
            (pair.follow_up.clone(), &mut as_is),
            (rewrite.query, &mut rewritten),
            (fallback(&pair.first, &pair.follow_up), &mut fallback_only),
        ] {
            let hits = retriever
                .retrieve_top(&retriever.private_scope(reader), &query, 10)
                .await?
                .hits;
            recall.add(&corpus.passages(&hits, &pair.document), &answers);
        }
    }
    Ok(Asked {
        standalone,
        as_is,
        rewritten,
        fallback_only,
        by_model,
        times,
    })
}
