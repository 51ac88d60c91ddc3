//! Load test: N concurrent users chat with the app, and the app's own
//! overhead on time to first token is measured against its upstream.
//!
//! The app runs in this process on a temp data dir, with:
//! - `--upstream fake` (default): an OpenAI-compatible server, also in this
//!   process, that answers after `--upstream-ttft-ms` and then streams
//!   `--tokens` tokens `--token-ms` apart. The upstream's own TTFT is timed
//!   where it sends its first token, so overhead = app TTFT − upstream TTFT.
//! - `--upstream local`: the embedded llama.cpp model; the upstream TTFT is
//!   what the app recorded for the model call (`upstream_ttft_ms`).
//!
//! Each user is a browser of its own (cookie jar), asking `--turns` questions
//! one after another, without documents (retrieval is timed by
//! `benches/retrieval.rs`).
//!
//! The store is SQLite in the temp dir, or with `--database-url
//! postgres://…` that Postgres database (as replicas at scale use).
//!
//! `--read-delay-ms N` makes every client a slow reader (it waits N ms after
//! each chunk it reads), so answers back up into the server; the process's
//! resident memory is printed before, at its peak and after the run, to
//! show that held-up streams cost bounded memory and give it back;
//! `--rounds N` runs the whole load N times with the same users, printing
//! memory after each, so a leak would show as growth from round to round.
//!
//! `--api` measures the OpenAI-compatible `/v1/chat/completions` instead,
//! against the fake upstream called directly by the same clients (see
//! `api.rs`): `--streams 1,16,64` concurrency levels, `--turns` measured
//! answers per stream each way, `--block` turns before switching between
//! the two, `--csv FILE` every turn's timings.
//!
//! `cargo run --release --features ssr --bin load -- --users 16 --turns 5`
//!
//! `cargo run --release --features ssr --bin load -- --api --streams 1,16,64 --turns 20`

mod api;
mod upstream;

use anyhow::{bail, Context};
use app::ndjson::LineDecoder;
use app::wire::ChatEvent;
use futures::StreamExt;
use ragchat::config::Settings;
use ragchat::ops::statistics::percentile;
use ragchat::startup::Application;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use upstream::{fake_upstream, Pace, UpstreamClock};

struct Options {
    users: usize,
    turns: usize,
    upstream: String,
    upstream_ttft_ms: u64,
    token_ms: u64,
    tokens: usize,
    database_url: Option<String>,
    read_delay_ms: u64,
    rounds: usize,
    /// `--api`: the OpenAI-compatible API against the upstream called
    /// directly, instead of browsers on `/api/chat`.
    api: bool,
    /// `--streams 1,16,64`: the concurrency levels of `--api`.
    streams: Vec<usize>,
    /// `--block N`: measured turns per stream before `--api` switches
    /// between the app and the upstream called directly.
    block: usize,
    /// `--csv FILE`: every `--api` turn's timings, one row each.
    csv: Option<std::path::PathBuf>,
}

impl Options {
    fn pace(&self) -> Pace {
        Pace {
            ttft: Duration::from_millis(self.upstream_ttft_ms),
            gap: Duration::from_millis(self.token_ms),
            tokens: self.tokens,
        }
    }
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        users: 16,
        turns: 5,
        upstream: "fake".into(),
        upstream_ttft_ms: 150,
        token_ms: 15,
        tokens: 40,
        database_url: None,
        read_delay_ms: 0,
        rounds: 1,
        api: false,
        streams: vec![1, 16, 64],
        block: 5,
        csv: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        // The one option without a value.
        if args[i] == "--api" {
            o.api = true;
            i += 1;
            continue;
        }
        let value = args.get(i + 1).context("every option takes a value")?;
        match args[i].as_str() {
            "--users" => o.users = value.parse()?,
            "--turns" => o.turns = value.parse()?,
            "--upstream" => o.upstream = value.clone(),
            "--upstream-ttft-ms" => o.upstream_ttft_ms = value.parse()?,
            "--token-ms" => o.token_ms = value.parse()?,
            "--tokens" => o.tokens = value.parse()?,
            "--database-url" => o.database_url = Some(value.clone()),
            "--read-delay-ms" => o.read_delay_ms = value.parse()?,
            "--rounds" => o.rounds = value.parse::<usize>()?.max(1),
            "--streams" => {
                o.streams = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().map(|n| n.max(1)))
                    .collect::<Result<_, _>>()?
            }
            "--block" => o.block = value.parse::<usize>()?.max(1),
            "--csv" => o.csv = Some(value.into()),
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    Ok(o)
}

/// One turn as the client saw it.
struct Turn {
    ttft_ms: Option<f64>,
    total_ms: f64,
    ok: bool,
    message_id: Option<String>,
}

async fn chat(client: &reqwest::Client, base: &str, text: &str, read_delay: Duration) -> Turn {
    let started = Instant::now();
    let mut turn = Turn {
        ttft_ms: None,
        total_ms: 0.0,
        ok: false,
        message_id: None,
    };
    let response = client
        .post(format!("{base}/api/chat"))
        .json(&serde_json::json!({ "conversation_id": null, "text": text }))
        .send()
        .await;
    let Ok(response) = response else {
        return turn;
    };
    if !response.status().is_success() {
        turn.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        return turn;
    }
    let mut body = response.bytes_stream();
    let mut decoder = LineDecoder::new();
    while let Some(Ok(chunk)) = body.next().await {
        if !read_delay.is_zero() {
            tokio::time::sleep(read_delay).await;
        }
        for event in decoder.push::<ChatEvent>(&chunk).into_iter().flatten() {
            match event {
                ChatEvent::Start { message_id, .. } => turn.message_id = Some(message_id),
                ChatEvent::Token { .. } => {
                    turn.ttft_ms
                        .get_or_insert(started.elapsed().as_secs_f64() * 1000.0);
                }
                ChatEvent::Done { .. } => turn.ok = true,
                _ => {}
            }
        }
    }
    turn.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    turn
}

const QUESTIONS: [&str; 8] = [
    "What is a haiku?",
    "Name three rivers in Europe.",
    "How do I reverse a list in Python?",
    "What is the boiling point of water at sea level?",
    "Explain recursion in one sentence.",
    "What does HTTP stand for?",
    "Give me a synonym for quick.",
    "What is 12 times 12?",
];

/// This process's resident memory and thread count (Linux).
struct Memory {
    rss: u64,
    threads: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(label: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    println!(
        "{label:<34} p50 {:>8.1} ms   p90 {:>8.1} ms   p99 {:>8.1} ms   (n={})",
        percentile(values, 50.0).unwrap_or(f64::NAN),
        percentile(values, 90.0).unwrap_or(f64::NAN),
        percentile(values, 99.0).unwrap_or(f64::NAN),
        values.len()
    );
}

fn main() -> anyhow::Result<()> {
    // Documents are parsed by this same binary in a capped child process.
    ragchat::documents::sandbox::serve_if_worker();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let o = options()?;
    let data = std::env::temp_dir().join(format!("ragchat-load-{}", std::process::id()));
    let clock = Arc::new(Mutex::new(UpstreamClock::default()));
    let settings = settings_for(&o, &data, clock.clone()).await?;
    if o.api {
        let result = api::run(&o, settings, clock).await;
        let _ = std::fs::remove_dir_all(&data);
        return result;
    }
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.address());
    let store = app.store();
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });

    let mut clients = Vec::new();
    for _ in 0..o.users {
        clients.push(reqwest::Client::builder().cookie_store(true).build()?);
    }

    println!(
        "{} users × {} turns, each user's turns one after another{}",
        o.users,
        o.turns,
        if o.read_delay_ms > 0 {
            format!(", reading slowly ({} ms after each chunk)", o.read_delay_ms)
        } else {
            String::new()
        }
    );
    // One warm-up turn so lazily made things (connections, caches) are in
    // the baseline.
    chat(&reqwest::Client::new(), &base, "warm up", Duration::ZERO).await;
    let baseline = memory();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline.rss));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(memory().rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let read_delay = Duration::from_millis(o.read_delay_ms);
    let started = Instant::now();
    let mut turns = Vec::new();
    // The same users come back for each round: memory that a round leaks
    // would pile up from one round to the next.
    for round in 1..=o.rounds {
        turns.extend(round_of_turns(&clients, &base, o.turns, read_delay).await?);
        // Let the server finish the streams' bookkeeping, then look.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = memory();
        println!(
            "memory after round {round} (this process: app, upstream and clients): RSS {:.0} MiB before, {:.0} MiB at peak, {:.0} MiB after ({:+.1} MiB); {} threads before, {} after",
            mib(baseline.rss),
            mib(peak.load(std::sync::atomic::Ordering::Relaxed)),
            mib(after.rss),
            mib(after.rss) - mib(baseline.rss),
            baseline.threads,
            after.threads,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    sampler.abort();
    let ok = turns.iter().filter(|t| t.ok).count();
    println!(
        "throughput: {:.2} turns/s ({} turns in {:.1} s); errors: {} ({:.1} %)",
        ok as f64 / elapsed,
        turns.len(),
        elapsed,
        turns.len() - ok,
        100.0 * (turns.len() - ok) as f64 / turns.len().max(1) as f64
    );
    let mut app_ttft: Vec<f64> = turns.iter().filter_map(|t| t.ttft_ms).collect();
    let mut total: Vec<f64> = turns.iter().filter(|t| t.ok).map(|t| t.total_ms).collect();
    report("app TTFT (client-side)", &mut app_ttft);
    report("total (client-side)", &mut total);

    report_upstream(&turns, &store, &o, &clock).await?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// The app's settings for the run: a temporary data directory, no cache, no
/// limits, and the upstream asked for.
async fn settings_for(
    o: &Options,
    data: &std::path::Path,
    clock: Arc<Mutex<UpstreamClock>>,
) -> anyhow::Result<Settings> {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.data_dir = data.to_path_buf();
    settings.cache.enabled = false;
    if let Some(url) = &o.database_url {
        settings.database.url = Some(url.clone().into());
        println!("store: Postgres");
    } else {
        println!("store: SQLite");
    }
    // Every simulated user is a new guest from 127.0.0.1.
    settings.limits.lift_all();
    match o.upstream.as_str() {
        "fake" => {
            settings.llm.base_url = Some(fake_upstream(o.pace(), clock).await?);
            settings.llm.model = Some("fake-upstream".into());
            println!(
                "upstream: in-process OpenAI-compatible server, TTFT {} ms, {} tokens {} ms apart",
                o.upstream_ttft_ms, o.tokens, o.token_ms
            );
        }
        "local" => {
            settings.llm.max_tokens = u32::try_from(o.tokens).unwrap_or(64);
            println!(
                "upstream: the embedded model, {} tokens per answer",
                o.tokens
            );
        }
        other => bail!("--upstream is fake or local, not {other}"),
    }
    Ok(settings)
}

/// Every user asks `turns` questions, one after another, all users at once.
async fn round_of_turns(
    clients: &[reqwest::Client],
    base: &str,
    turns_each: usize,
    read_delay: Duration,
) -> anyhow::Result<Vec<Turn>> {
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .map(|(u, client)| {
            let base = base.to_owned();
            tokio::spawn(async move {
                let mut done = Vec::new();
                for t in 0..turns_each {
                    let question = QUESTIONS[(u + t) % QUESTIONS.len()];
                    done.push(
                        chat(
                            &client,
                            &base,
                            &format!("{question} (user {u}, turn {t})"),
                            read_delay,
                        )
                        .await,
                    );
                }
                done
            })
        })
        .collect();
    let mut turns = Vec::new();
    for task in tasks {
        turns.extend(task.await?);
    }
    Ok(turns)
}

/// The upstream's TTFT for each turn, and the app's overhead on it.
async fn report_upstream(
    turns: &[Turn],
    store: &ragchat::store::Store,
    o: &Options,
    clock: &Mutex<UpstreamClock>,
) -> anyhow::Result<()> {
    // The upstream's TTFT for each turn, from the app's own event (the model
    // call to its first token), to pair with the client's TTFT.
    let recorded: std::collections::HashMap<String, Option<f64>> = store
        .export_turns(0, i64::MAX)
        .await?
        .into_iter()
        .map(|e| (e.message_id, e.upstream_ttft_ms))
        .collect();
    let mut overhead = Vec::new();
    let mut upstream = Vec::new();
    for turn in turns {
        let (Some(id), Some(app_ms)) = (&turn.message_id, turn.ttft_ms) else {
            continue;
        };
        if let Some(Some(up)) = recorded.get(id).copied() {
            upstream.push(up);
            overhead.push(app_ms - up);
        }
    }
    if o.upstream == "fake" {
        let mut measured = clock.lock().map(|c| c.ttft_ms.clone()).unwrap_or_default();
        report("upstream TTFT (at the upstream)", &mut measured);
    }
    report("upstream TTFT (model call → token)", &mut upstream);
    report("app overhead on TTFT", &mut overhead);
    Ok(())
}
