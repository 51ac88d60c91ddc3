//! The admin dashboard: latency, quality, errors, cache, usage and cost over
//! a chosen time range, traffic by source (browser, each API key), the answers people liked least, and the quality loop
//! (knowledge gaps, weak sources; see [`crate::components::quality`]).

use crate::api::get_dashboard;
use crate::components::quality::QualitySections;
use crate::markdown::render_markdown;
use crate::wire::{
    Dashboard, DownvotedAnswer, ExperimentView, GroupStats, Percentiles, RateCi, SeriesPoint,
    SourceTraffic, StageLatency, TrafficSource, UsageRow,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

const RANGES: [(u32, &str); 4] = [
    (1, "1 hour"),
    (24, "24 hours"),
    (168, "7 days"),
    (720, "30 days"),
];
const PALETTE: [&str; 6] = [
    "#4f46e5", "#059669", "#d97706", "#dc2626", "#0891b2", "#7c3aed",
];

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let hours = move || {
        query
            .read()
            .get("hours")
            .and_then(|h| h.parse::<u32>().ok())
            .unwrap_or(24)
    };
    let data = Resource::new(hours, get_dashboard);
    view! {
        <Title text="Dashboard · RAG Chat" />
        <section class="admin-page dashboard">
            <div class="column wide">
                <header class="page-head">
                    <h1>"Dashboard"</h1>
                    <nav class="range-picker" aria-label="Time range">
                        {RANGES
                            .into_iter()
                            .map(|(h, label)| {
                                view! {
                                    <A
                                        href=format!("/admin?hours={h}")
                                        attr:class="range"
                                        attr:aria-current=move || (hours() == h).then_some("true")
                                    >
                                        {label}
                                    </A>
                                }
                            })
                            .collect_view()}
                    </nav>
                </header>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match data.await {
                            Ok(d) => body(d).into_any(),
                            Err(e) => view! { <p class="notice" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
                <QualitySections hours=Signal::derive(hours) />
            </div>
        </section>
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v >= 1_000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{v:.0} ms"),
    }
}

fn rate(r: Option<RateCi>) -> String {
    match r {
        None => "–".into(),
        Some(r) => format!(
            "{:.0}% ({:.0}–{:.0}%, n={})",
            r.rate * 100.0,
            r.low * 100.0,
            r.high * 100.0,
            r.trials
        ),
    }
}

fn cost(c: f64) -> String {
    if c == 0.0 {
        "$0".into()
    } else if c < 0.01 {
        format!("${c:.4}")
    } else {
        format!("${c:.2}")
    }
}

fn card(label: &'static str, value: String, detail: String) -> impl IntoView {
    view! {
        <div class="card">
            <div class="card-label">{label}</div>
            <div class="card-value">{value}</div>
            <div class="card-detail muted small">{detail}</div>
        </div>
    }
}

fn headline(r: Option<RateCi>) -> (String, String) {
    match r {
        None => ("–".into(), "no data".into()),
        Some(r) => (
            format!("{:.1}%", r.rate * 100.0),
            format!(
                "95% CI {:.1}–{:.1}% · {} of {}",
                r.low * 100.0,
                r.high * 100.0,
                r.successes,
                r.trials
            ),
        ),
    }
}

fn body(d: Dashboard) -> impl IntoView {
    let (up, up_detail) = headline(d.up_rate);
    let (errors, errors_detail) = headline(d.error_rate);
    let (cache, cache_detail) = headline(d.cache_hit_rate);
    let (regenerated, regenerated_detail) = headline(d.regenerate_rate);
    let models: Vec<String> = d.by_model.iter().map(|m| m.name.clone()).collect();
    view! {
        <div class="cards">
            {card(
                "Chat turns",
                d.turns.to_string(),
                match d.by_model.len() {
                    1 => "1 model".to_string(),
                    n => format!("{n} models"),
                },
            )}
            {card("Thumbs up", up, up_detail)}
            {card("Errors", errors, errors_detail)}
            {card("Cache hits", cache, cache_detail)}
            {card("Regenerated", regenerated, regenerated_detail)}
        </div>
        <h2>"Time to first token"</h2>
        {latency_chart(&d.series, &models, d.since, d.until)}
        <h2>"By model"</h2>
        {group_table("Model", d.by_model)}
        <h2>"Traffic by source"</h2>
        {if d.by_source.is_empty() {
            view! { <p class="muted">"No chat turns in this range."</p> }.into_any()
        } else {
            source_table(d.by_source).into_any()
        }}
        <h2>"Where a turn's time goes"</h2>
        {stage_table(d.stages)}
        <h2>"By experiment variant"</h2>
        {if d.by_variant.is_empty() {
            view! { <p class="muted">"No experiment variants in this range."</p> }.into_any()
        } else {
            group_table("Variant", d.by_variant).into_any()
        }}
        {(!d.experiments.is_empty())
            .then(|| {
                view! {
                    <h2>"Experiments"</h2>
                    {d.experiments.into_iter().map(experiment_table).collect_view()}
                }
            })}
        <h2>"Tokens and cost per user"</h2>
        {usage_table(d.by_user)}
        <h2>"Most down-voted answers"</h2>
        {if d.downvoted.is_empty() {
            view! { <p class="muted">"No down-votes in this range."</p> }.into_any()
        } else {
            downvoted_list(d.downvoted).into_any()
        }}
    }
}

/// Each stage of a turn: how many turns ran it and how long it took.
fn stage_table(stages: Vec<StageLatency>) -> impl IntoView {
    let label = |stage: &str| match stage {
        "rewrite" => "Follow-up rewritten into a search query",
        "embed" => "Question embedded",
        "retrieve" => "Passages searched and fused",
        "prompt_build" => "Prompt built",
        "queue" => "Waiting for the embedded model",
        "upstream_ttft" => "Model's own time to first token",
        "ttft" => "Time to first token, whole",
        _ => "Other",
    };
    view! {
        <div class="table-scroll">
            <table class="users stats stages">
                <thead>
                    <tr>
                        <th scope="col">"Stage"</th>
                        <th scope="col" class="num">"Turns"</th>
                        <th scope="col" class="num">"p50"</th>
                        <th scope="col" class="num">"p90"</th>
                        <th scope="col" class="num">"p99"</th>
                    </tr>
                </thead>
                <tbody>
                    {stages
                        .into_iter()
                        .map(|s| {
                            view! {
                                <tr data-stage=s.stage.clone()>
                                    <td>{label(&s.stage)}</td>
                                    <td class="num">{s.turns}</td>
                                    {percentile_cells(s.latency)}
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Turns and how they went, for the browser and for each API key.
fn source_table(rows: Vec<SourceTraffic>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="users stats by-source">
                <thead>
                    <tr>
                        <th scope="col">"Source"</th>
                        <th scope="col">"Owner"</th>
                        <th scope="col" class="num">"Turns"</th>
                        <th scope="col" class="num">"Share"</th>
                        <th scope="col" class="num">"Errors"</th>
                        <th scope="col" class="num">"TTFT p50"</th>
                        <th scope="col" class="num">"TTFT p95"</th>
                        <th scope="col" class="num">"Tokens"</th>
                        <th scope="col" class="num">"Est. cost"</th>
                        <th scope="col" class="num">"Thumbs up"</th>
                        <th scope="col" class="num">"Thumbs down"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|r| {
                            let (kind, owner) = match &r.source {
                                TrafficSource::Browser => ("browser", "–".to_owned()),
                                TrafficSource::ApiKey { owner, .. } => ("api", owner.clone()),
                            };
                            view! {
                                <tr class="source" data-source=kind>
                                    <td class="name">{r.source.label()}</td>
                                    <td>{owner}</td>
                                    <td class="num">{r.turns}</td>
                                    <td class="num">{format!("{:.1}%", r.share * 100.0)}</td>
                                    <td class="num">{r.errors}</td>
                                    <td class="num">{ms(r.ttft_p50)}</td>
                                    <td class="num">{ms(r.ttft_p95)}</td>
                                    <td class="num">{r.prompt_tokens + r.completion_tokens}</td>
                                    <td class="num">{cost(r.cost)}</td>
                                    <td class="num">{r.up}</td>
                                    <td class="num">{r.down}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Tokens and estimated cost per user.
fn usage_table(rows: Vec<UsageRow>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="users stats">
                <thead>
                    <tr>
                        <th scope="col">"User"</th>
                        <th scope="col" class="num">"Turns"</th>
                        <th scope="col" class="num">"Prompt tokens"</th>
                        <th scope="col" class="num">"Completion tokens"</th>
                        <th scope="col" class="num">"Est. cost"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|u| {
                            view! {
                                <tr>
                                    <td>{u.name}</td>
                                    <td class="num">{u.turns}</td>
                                    <td class="num">{u.prompt_tokens}</td>
                                    <td class="num">{u.completion_tokens}</td>
                                    <td class="num">{cost(u.cost)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// The most down-voted answers, each with its comments and the sources it was given.
fn downvoted_list(answers: Vec<DownvotedAnswer>) -> impl IntoView {
    view! {
        <ul class="downvoted">
            {answers
                .into_iter()
                .map(|a| {
                    view! {
                        <li>
                            <details>
                                <summary>
                                    <span class="question">{a.question}</span>
                                    <span class="muted small">
                                        {format!(
                                            " · {} · 👎 {} 👍 {}",
                                            a.model.unwrap_or_default(),
                                            a.down,
                                            a.up,
                                        )}
                                    </span>
                                </summary>
                                <div class="markdown" inner_html=render_markdown(&a.answer)></div>
                                {(!a.comments.is_empty())
                                    .then(|| {
                                        view! {
                                            <ul class="comments">
                                                {a.comments.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}
                                            </ul>
                                        }
                                    })}
                                <p class="muted small">
                                    {if a.sources.is_empty() { "No sources were used." } else { "Sources it was given:" }}
                                </p>
                                <ol class="used-sources">
                                    {a.sources
                                        .into_iter()
                                        .map(|s| {
                                            view! {
                                                <li class:cited=s.cited>
                                                    <strong>{s.location()}</strong>
                                                    {format!(" · score {:.3}{}", s.score, if s.cited { " · cited" } else { "" })}
                                                    <blockquote>{s.text}</blockquote>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ol>
                            </details>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

fn experiment_table(e: ExperimentView) -> impl IntoView {
    let id = e.name.clone();
    view! {
        <div class="table-scroll">
            <table class="users stats experiment" data-name=id>
                <caption>{e.name}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Variant"</th>
                        <th scope="col" class="num">"Users"</th>
                        <th scope="col" class="num">"Turns"</th>
                        <th scope="col">"Thumbs up (95% CI)"</th>
                        <th scope="col" class="num">"p vs control"</th>
                        <th scope="col" class="num">"TTFT p50"</th>
                        <th scope="col" class="num">"TTFT p90"</th>
                        <th scope="col" class="num">"Cost / answer"</th>
                    </tr>
                </thead>
                <tbody>
                    {e.variants
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| {
                            let id = v.name.clone();
                            view! {
                                <tr class="variant" data-name=id>
                                    <td>{v.name}{(i == 0).then_some(" (control)")}</td>
                                    <td class="num">{v.users}</td>
                                    <td class="num">{v.turns}</td>
                                    <td class="up-rate">{rate(v.up_rate)}</td>
                                    <td class="num p-value">
                                        {match (i, v.p_value) {
                                            (0, _) => "–".to_string(),
                                            (_, Some(p)) if p < 0.001 => "< 0.001".to_string(),
                                            (_, Some(p)) => format!("{p:.3}"),
                                            (_, None) => "n/a".to_string(),
                                        }}
                                    </td>
                                    <td class="num">{ms(v.ttft_p50)}</td>
                                    <td class="num">{ms(v.ttft_p90)}</td>
                                    <td class="num">{v.cost_per_answer.map_or("–".to_string(), cost)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn percentile_cells(p: Percentiles) -> impl IntoView {
    view! {
        <td class="num">{ms(p.p50)}</td>
        <td class="num">{ms(p.p90)}</td>
        <td class="num">{ms(p.p99)}</td>
    }
}

fn group_table(label: &'static str, groups: Vec<GroupStats>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="users stats">
                <thead>
                    <tr>
                        <th scope="col" rowspan="2">{label}</th>
                        <th scope="col" rowspan="2" class="num">"Turns"</th>
                        <th scope="colgroup" colspan="3" class="num">"TTFT p50 / p90 / p99"</th>
                        <th scope="colgroup" colspan="3" class="num">"Total p50 / p90 / p99"</th>
                        <th scope="col" rowspan="2">"Thumbs up (95% CI)"</th>
                        <th scope="col" rowspan="2" class="num">"Errors"</th>
                        <th scope="col" rowspan="2" class="num">"Tokens"</th>
                        <th scope="col" rowspan="2" class="num">"Est. cost"</th>
                    </tr>
                    <tr>
                        <th class="num">"p50"</th>
                        <th class="num">"p90"</th>
                        <th class="num">"p99"</th>
                        <th class="num">"p50"</th>
                        <th class="num">"p90"</th>
                        <th class="num">"p99"</th>
                    </tr>
                </thead>
                <tbody>
                    {groups
                        .into_iter()
                        .map(|g| {
                            let name = g.name.clone();
                            view! {
                                <tr class="group" data-name=name>
                                    <td>{g.name}</td>
                                    <td class="num">{g.turns}</td>
                                    {percentile_cells(g.ttft)}
                                    {percentile_cells(g.total)}
                                    <td class="up-rate">{rate(g.up_rate)}</td>
                                    <td class="num">{g.errors}</td>
                                    <td class="num">{g.prompt_tokens + g.completion_tokens}</td>
                                    <td class="num">{cost(g.cost)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// "14:05" (UTC) within a day's range, "11-23 14:00" beyond.
fn clock(ms: i64, with_date: bool) -> String {
    let minutes = ms.div_euclid(60_000);
    let (h, m) = ((minutes / 60) % 24, minutes % 60);
    if with_date {
        let date = crate::components::documents::format_date(ms);
        format!("{} {h:02}:{m:02}", &date[5..])
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// TTFT p50 (solid) and p90 (dashed) per model over time, as an SVG drawn
/// on the server.
fn latency_chart(
    series: &[SeriesPoint],
    models: &[String],
    since: i64,
    until: i64,
) -> impl IntoView {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    if series.is_empty() {
        return view! { <p class="muted">"No chat turns in this range."</p> }.into_any();
    }
    let top_ms = series
        .iter()
        .filter_map(|p| p.ttft_p90.or(p.ttft_p50))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let span = (until - since).max(1) as f64;
    let x = move |t: i64| LEFT + (t - since) as f64 / span * (W - LEFT - 8.0);
    let y = move |v: f64| TOP + (1.0 - v / top_ms) * (H - TOP - BOTTOM);
    let line = |model: &str, pick: fn(&SeriesPoint) -> Option<f64>| -> String {
        series
            .iter()
            .filter(|p| p.model == model)
            .filter_map(|p| pick(p).map(|v| format!("{:.1},{:.1}", x(p.start), y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let with_date = until - since > 86_400_000;
    let ticks = [0.0, 0.5, 1.0].map(|f| f * top_ms / 1.1);
    view! {
        <figure class="chart">
            <svg
                viewBox={format!("0 0 {W} {H}")}
                role="img"
                aria-label="Time to first token over time, by model: median solid, 90th percentile dashed"
            >
                {ticks
                    .into_iter()
                    .map(|v| {
                        view! {
                            <line class="grid" x1=LEFT x2={W - 8.0} y1={y(v)} y2={y(v)}></line>
                            <text class="tick" x={LEFT - 6.0} y={y(v) + 4.0} text-anchor="end">{ms(Some(v))}</text>
                        }
                    })
                    .collect_view()}
                <text class="tick" x=LEFT y={H - 6.0}>{clock(since, with_date)}</text>
                <text class="tick" x={W - 8.0} y={H - 6.0} text-anchor="end">{clock(until, with_date)}</text>
                {models
                    .iter()
                    .enumerate()
                    .map(|(i, model)| {
                        let colour = PALETTE[i % PALETTE.len()];
                        let p50 = line(model, |p| p.ttft_p50);
                        let p90 = line(model, |p| p.ttft_p90);
                        let dots: Vec<(f64, f64)> = series
                            .iter()
                            .filter(|p| &p.model == model)
                            .filter_map(|p| p.ttft_p50.map(|v| (x(p.start), y(v))))
                            .collect();
                        view! {
                            <polyline class="p90" points=p90 stroke=colour></polyline>
                            <polyline class="p50" points=p50 stroke=colour></polyline>
                            {dots
                                .into_iter()
                                .map(|(cx, cy)| view! { <circle cx=cx cy=cy r="2.5" fill=colour></circle> })
                                .collect_view()}
                        }
                    })
                    .collect_view()}
            </svg>
            <figcaption class="legend">
                {models
                    .iter()
                    .enumerate()
                    .map(|(i, model)| {
                        view! {
                            <span class="legend-item">
                                <span class="swatch" style=format!("background:{}", PALETTE[i % PALETTE.len()])></span>
                                {model.clone()}
                            </span>
                        }
                    })
                    .collect_view()}
                <span class="muted small">"solid: median · dashed: 90th percentile"</span>
            </figcaption>
        </figure>
    }
    .into_any()
}
