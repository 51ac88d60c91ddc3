//! Retrieval evaluations through the app's own ingestion and retrieval:
//!
//! * `pubmedqa PATH`: PubMedQA's 1,000 short abstracts ([`pubmedqa`]);
//! * `long PATH`: long documents with answer spans (SQuAD's dev set grouped
//!   by article), beside the peers run on the same documents ([`long_docs`]);
//! * `followups PATH FIXTURE`: two-turn follow-ups on the same documents,
//!   without and with the query rewrite ([`followups`]);
//! * `ingest PATH`: the long documents' upload-to-indexed time and where it
//!   goes, as one JSON line (for `scripts/bench-ingestion.sh`).
//!
//! `cargo run --release --features ssr --bin eval -- pubmedqa ../shared/data/pubmedqa/ori_pqal.json`
//! (a lone path is PubMedQA, as before). Exits non-zero when a bar is missed.

mod corpus;
mod followups;
mod long_docs;
mod peers;
mod pubmedqa;
mod squad;

use anyhow::{bail, Context};
use ragchat::config::Settings;

fn main() -> anyhow::Result<()> {
    // Documents are parsed by this same binary in a capped child process.
    ragchat::documents::sandbox::serve_if_worker();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The configured settings (file and APP__ variables), so a setting can
    // be evaluated without rebuilding.
    let settings = Settings::load().context("loading configuration")?;
    let passed = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["pubmedqa", path] | [path] => pubmedqa::run(path, &settings).await?,
        ["long", path] => long_docs::run(path, &settings).await?,
        ["followups", path, fixture] => followups::run(path, fixture, &settings).await?,
        ["ingest", path] => long_docs::ingest_only(path, &settings).await?,
        _ => bail!(
            "usage: eval pubmedqa ori_pqal.json | eval long SET.json[,…] | eval followups SET.json[,…] followups.json | eval ingest SET.json[,…]"
        ),
    };
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
