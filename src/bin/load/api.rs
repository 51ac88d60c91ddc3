//! `--api`: the TTFT the app adds on `/v1/chat/completions` over calling
//! the same upstream directly.
//!
//! At each level of `--streams`, N clients stream answers from the fake
//! upstream's own `/v1/chat/completions` (direct) and from the app's, with
//! an API key and the chat model without retrieval (app): the same request
//! body, the same HTTP clients, `stream: true`. TTFT is the request sent →
//! the first SSE frame whose `delta.content` is not empty.
//!
//! Direct and app alternate in blocks of `--block` turns per stream (in
//! ABBA order, so drift in the machine's state falls on both alike). In a
//! block, stream i starts i/N of an answer's length after stream 0, so
//! requests arrive spread out rather than all in the same millisecond, and
//! each stream's first turn of a block is not counted: while it runs the
//! other streams are still starting, so fewer than N are open.
//!
//! Each question carries a marker the upstream reads from the body it gets,
//! so every turn is paired with the upstream's own TTFT for that request;
//! app turns are also paired (by message id) with the app's turn event,
//! which splits the overhead into where it goes.

use super::upstream::{tag, UpstreamClock};
use super::{Options, QUESTIONS};
use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use ragchat::config::Settings;
use ragchat::ops::statistics::percentile;
use ragchat::startup::Application;
use ragchat::store::{ChatTurnEvent, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a client sends its request.
struct Target {
    url: String,
    model: String,
    /// The app's API key (the upstream takes none).
    key: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Direct,
    App,
}

/// One streamed answer as its client saw it.
struct Sample {
    via: Via,
    marker: u64,
    ttft_ms: Option<f64>,
    /// The app's message id (from the chunks' `chatcmpl-…` id).
    message_id: Option<String>,
    ok: bool,
}

static NEXT_MARKER: AtomicU64 = AtomicU64::new(1);

pub async fn run(
    o: &Options,
    mut settings: Settings,
    clock: Arc<Mutex<UpstreamClock>>,
) -> anyhow::Result<()> {
    if o.upstream != "fake" {
        bail!("--api compares the app with the fake upstream called directly: drop --upstream");
    }
    let most = o.streams.iter().copied().max().unwrap_or(1);
    // One account's key carries every stream (role limits are lifted by
    // `settings_for`).
    settings.chat.max_generating_per_user = most + 8;
    let upstream = settings.llm.base_url.clone().context("no upstream")?;
    let upstream_model = settings.llm.model.clone().unwrap_or_default();
    let grounded = settings.api.grounded_model.clone();
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.address());
    let store = app.store();
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });

    let key = api_key(&base).await?;
    let model = plain_model(&base, &key, &grounded).await?;
    println!("API key made; the app's model without retrieval: {model:?}");
    let direct = Target {
        url: format!("{upstream}/chat/completions"),
        model: upstream_model,
        key: None,
    };
    let app = Target {
        url: format!("{base}/v1/chat/completions"),
        model,
        key: Some(key),
    };
    let clients = (0..most).map(|_| client()).collect::<Result<Vec<_>, _>>()?;
    let length = o.pace().ttft + o.pace().gap * u32::try_from(o.tokens).unwrap_or(u32::MAX);
    // Warm-up: connections, the app's pools and caches, lazily made things.
    for (target, via) in [(&direct, Via::Direct), (&app, Via::App)] {
        block(&clients[..most.min(4)], target, via, 3, length).await?;
    }
    let mut rows = Vec::new();
    for &n in &o.streams {
        let since = ragchat::store::now_ms() - 1;
        let samples = level(&clients[..n], [&direct, &app], o, length).await?;
        let events = events_for(&store, since, &samples).await?;
        let by_marker = clock
            .lock()
            .map(|c| c.by_marker.clone())
            .unwrap_or_default();
        rows.push(report_level(n, &samples, &events, &by_marker));
        if let Some(path) = &o.csv {
            append_csv(path, n, &samples, &events, &by_marker)?;
        }
    }
    print_table(&rows);
    Ok(())
}

/// The same HTTP client for both targets.
fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().build()
}

/// Signs up (the first account, so admin) and makes an API key.
async fn api_key(base: &str) -> anyhow::Result<String> {
    let browser = reqwest::Client::builder().cookie_store(true).build()?;
    let signed_up = browser
        .post(format!("{base}/api/sign_up"))
        .form(&[("username", "loadtest"), ("password", "load test password")])
        .send()
        .await?;
    ensure!(
        signed_up.status().is_success(),
        "sign up: {}",
        signed_up.status()
    );
    let key: app::wire::NewApiKey = browser
        .post(format!("{base}/api/keys/create"))
        .form(&[("name", "load")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(key.secret)
}

/// The id `/v1/models` lists after the grounded model: the default chat
/// model without retrieval.
async fn plain_model(base: &str, key: &str, grounded: &str) -> anyhow::Result<String> {
    let list: serde_json::Value = client()?
        .get(format!("{base}/v1/models"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .context("no model list")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    let after = ids.iter().position(|id| *id == grounded).map(|i| i + 1);
    after
        .and_then(|i| ids.get(i))
        .map(|id| (*id).to_owned())
        .with_context(|| format!("no model after {grounded:?} in {ids:?}"))
}

/// One streamed answer, read to its end.
async fn turn(client: &reqwest::Client, target: &Target, via: Via, text: &str) -> Sample {
    let marker = NEXT_MARKER.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::json!({
        "model": target.model,
        "messages": [{ "role": "user", "content": tag(text, marker) }],
        "stream": true,
    });
    let mut sample = Sample {
        via,
        marker,
        ttft_ms: None,
        message_id: None,
        ok: false,
    };
    let mut request = client.post(&target.url).json(&body);
    if let Some(key) = &target.key {
        request = request.bearer_auth(key);
    }
    let started = Instant::now();
    let Ok(response) = request.send().await else {
        return sample;
    };
    if !response.status().is_success() {
        return sample;
    }
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            read_frame(&frame, &mut sample, started);
        }
    }
    sample
}

/// Notes the first text's time, the answer's id and its end.
fn read_frame(frame: &[u8], sample: &mut Sample, started: Instant) {
    for line in frame.split(|b| *b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            sample.ok = true;
            continue;
        }
        // Past the first text only the end matters: not parsing the rest
        // keeps the load generator's CPU out of the app's way.
        if sample.ttft_ms.is_some() {
            continue;
        }
        let Ok(chunk) = serde_json::from_slice::<serde_json::Value>(data) else {
            continue;
        };
        let text = chunk["choices"][0]["delta"]["content"].as_str();
        if text.is_some_and(|t| !t.is_empty()) {
            sample.ttft_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        if let Some(id) = chunk["id"].as_str() {
            let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
            sample.message_id.get_or_insert_with(|| id.to_owned());
        }
    }
}

/// Every client streams `1 + measured` answers one after another, client i
/// starting i/N of `length` after client 0; the first answer isn't kept.
async fn block(
    clients: &[reqwest::Client],
    target: &Target,
    via: Via,
    measured: usize,
    length: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let n = clients.len();
    let runs = clients.iter().enumerate().map(|(i, client)| async move {
        tokio::time::sleep(length.mul_f64(i as f64 / n as f64)).await;
        let mut kept = Vec::with_capacity(measured);
        for t in 0..=measured {
            let question = QUESTIONS[(i + t) % QUESTIONS.len()];
            let sample = turn(client, target, via, question).await;
            if t > 0 {
                kept.push(sample);
            }
        }
        kept
    });
    Ok(futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// `--turns` measured answers per stream each way, in blocks that alternate
/// direct and app in ABBA order.
async fn level(
    clients: &[reqwest::Client],
    [direct, app]: [&Target; 2],
    o: &Options,
    length: Duration,
) -> anyhow::Result<Vec<Sample>> {
    println!(
        "\n== {} stream(s): {} turns each way ({} per stream), blocks of {} ==",
        clients.len(),
        clients.len() * o.turns,
        o.turns,
        o.block
    );
    let mut samples = Vec::new();
    let (mut left, mut pair) = (o.turns, 0);
    while left > 0 {
        let measured = left.min(o.block);
        let order = if pair % 2 == 0 {
            [(direct, Via::Direct), (app, Via::App)]
        } else {
            [(app, Via::App), (direct, Via::Direct)]
        };
        for (target, via) in order {
            samples.extend(block(clients, target, via, measured, length).await?);
        }
        left -= measured;
        pair += 1;
    }
    Ok(samples)
}

/// The app's events for the level's app turns, by message id (waiting a
/// little for the last ones to be written).
async fn events_for(
    store: &Store,
    since: i64,
    samples: &[Sample],
) -> anyhow::Result<HashMap<String, ChatTurnEvent>> {
    let wanted = samples.iter().filter(|s| s.message_id.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: HashMap<String, ChatTurnEvent> = store
            .export_turns(since, i64::MAX)
            .await?
            .into_iter()
            .filter(|e| e.source == "api")
            .map(|e| (e.message_id.clone(), e))
            .collect();
        if events.len() >= wanted || Instant::now() > deadline {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every turn's timings (ms; empty where unknown), for looking past the
/// percentiles: e.g. at how the in-service times cluster.
fn append_csv(
    path: &std::path::Path,
    streams: usize,
    samples: &[Sample],
    events: &HashMap<String, ChatTurnEvent>,
    upstream: &HashMap<u64, f64>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let fresh = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if fresh {
        writeln!(file, "streams,via,marker,client_ttft_ms,upstream_own_ttft_ms,event_ttft_ms,event_upstream_ttft_ms,prompt_build_ms,queue_ms")?;
    }
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for s in samples {
        let event = s.message_id.as_deref().and_then(|id| events.get(id));
        let field = |f: fn(&ChatTurnEvent) -> Option<f64>| cell(event.and_then(f));
        writeln!(
            file,
            "{streams},{:?},{},{},{},{},{},{},{}",
            s.via,
            s.marker,
            cell(s.ttft_ms),
            cell(upstream.get(&s.marker).copied()),
            field(|e| e.ttft_ms),
            field(|e| e.upstream_ttft_ms),
            field(|e| e.prompt_build_ms),
            field(|e| e.queue_ms),
        )?;
    }
    Ok(())
}

/// p50, p95, p99 and how many.
#[derive(Clone, Copy, Default)]
struct Spread {
    p50: f64,
    p95: f64,
    p99: f64,
    n: usize,
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    let at = |p| percentile(&values, p).unwrap_or(f64::NAN);
    Spread {
        p50: at(50.0),
        p95: at(95.0),
        p99: at(99.0),
        n: values.len(),
    }
}

fn show(label: &str, s: Spread) {
    println!(
        "  {label:<58} p50 {:>7.2}  p95 {:>7.2}  p99 {:>7.2} ms  (n={})",
        s.p50, s.p95, s.p99, s.n
    );
}

/// One level's figures, for the closing table.
struct Row {
    streams: usize,
    direct: Spread,
    app: Spread,
    overhead: Spread,
    edge: Spread,
    service: Spread,
    hop: Spread,
    errors: usize,
}

/// The app's overhead on one turn, split where it goes.
struct Split {
    overhead: f64,
    edge: f64,
    service: f64,
    hop: f64,
    prompt_build: f64,
}

fn split(s: &Sample, e: &ChatTurnEvent, upstream: f64) -> Option<Split> {
    let client = s.ttft_ms?;
    let (ttft, model) = (e.ttft_ms?, e.upstream_ttft_ms?);
    Some(Split {
        overhead: client - upstream,
        edge: client - ttft,
        service: ttft - model,
        hop: model - upstream,
        prompt_build: e.prompt_build_ms.unwrap_or(0.0),
    })
}

fn report_level(
    n: usize,
    samples: &[Sample],
    events: &HashMap<String, ChatTurnEvent>,
    upstream: &HashMap<u64, f64>,
) -> Row {
    let ttft = |via| {
        spread(
            samples
                .iter()
                .filter(|s| s.via == via)
                .filter_map(|s| s.ttft_ms)
                .collect(),
        )
    };
    let own = |via| {
        spread(
            samples
                .iter()
                .filter(|s| s.via == via)
                .filter_map(|s| Some(s.ttft_ms? - upstream.get(&s.marker)?))
                .collect(),
        )
    };
    let errors = samples
        .iter()
        .filter(|s| !s.ok || s.ttft_ms.is_none())
        .count();
    let (direct, app) = (ttft(Via::Direct), ttft(Via::App));
    println!("client TTFT (request sent → first text), errors: {errors}");
    show("direct: the fake upstream's /v1/chat/completions", direct);
    show("app: /v1/chat/completions, no retrieval", app);
    println!(
        "  {:<58} p50 {:>+7.2}  p95 {:>+7.2}  p99 {:>+7.2} ms",
        "app − direct (each percentile)",
        app.p50 - direct.p50,
        app.p95 - direct.p95,
        app.p99 - direct.p99
    );
    println!("per turn, client TTFT − the upstream's own TTFT for that same request:");
    show("direct (client and loopback alone)", own(Via::Direct));
    let overhead = own(Via::App);
    show("app (the app's overhead)", overhead);
    let mut splits: Vec<(&Sample, Split)> = samples
        .iter()
        .filter(|s| s.via == Via::App)
        .filter_map(|s| {
            let event = events.get(s.message_id.as_deref()?)?;
            Some((s, split(s, event, *upstream.get(&s.marker)?)?))
        })
        .collect();
    let part = |f: fn(&Split) -> f64| spread(splits.iter().map(|(_, x)| f(x)).collect());
    let (edge, service, hop) = (part(|x| x.edge), part(|x| x.service), part(|x| x.hop));
    println!("where the app's overhead goes (app turns paired with their turn event):");
    show(
        "HTTP edge: body, key, admission, SSE (client − ttft_ms)",
        edge,
    );
    show(
        "service before the model call (ttft_ms − upstream_ttft_ms)",
        service,
    );
    show("  of which prompt_build_ms", part(|x| x.prompt_build));
    show(
        "model call → upstream and back (upstream_ttft_ms − own)",
        hop,
    );
    splits.sort_by(|a, b| b.1.overhead.total_cmp(&a.1.overhead));
    println!("  slowest app turns (overhead = edge + service + hop):");
    for (s, x) in splits.iter().take(5) {
        println!(
            "    #{:<6} {:>7.2} = {:>7.2} + {:>7.2} + {:>7.2} ms",
            s.marker, x.overhead, x.edge, x.service, x.hop
        );
    }
    Row {
        streams: n,
        direct,
        app,
        overhead,
        edge,
        service,
        hop,
        errors,
    }
}

fn print_table(rows: &[Row]) {
    println!("\n| streams | direct TTFT p50 / p95 / p99 | app TTFT p50 / p95 / p99 | app − direct p50 / p95 / p99 | app overhead per turn p50 / p95 / p99 | HTTP edge p50 / p99 | service p50 / p99 | app → upstream p50 / p99 | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:+.1} / {:+.1} / {:+.1} | **{:.2} / {:.2} / {:.2}** | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
            r.streams,
            r.direct.p50, r.direct.p95, r.direct.p99,
            r.app.p50, r.app.p95, r.app.p99,
            r.app.p50 - r.direct.p50, r.app.p95 - r.direct.p95, r.app.p99 - r.direct.p99,
            r.overhead.p50, r.overhead.p95, r.overhead.p99,
            r.edge.p50, r.edge.p99,
            r.service.p50, r.service.p99,
            r.hop.p50, r.hop.p99,
            r.errors,
        );
    }
}
