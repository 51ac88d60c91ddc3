//! The dashboard's quality loop, over its time range: the questions the
//! documents didn't answer (knowledge gaps), and the document versions and
//! passages behind the answers people voted down (weak sources).

use crate::api::get_quality;
use crate::dates::format_date;
use crate::wire::{GapReasons, KnowledgeGap, QualityReport, RateCi, SourceAnswer, WeakSource};
use leptos::prelude::*;

/// Both sections; the report loads on its own, after the figures above it.
#[component]
pub fn QualitySections(#[prop(into)] hours: Signal<u32>) -> impl IntoView {
    let report = Resource::new(move || hours.get(), get_quality);
    let loading = || view! { <p class="muted">"Loading…"</p> };
    let shown = move |part: fn(QualityReport) -> AnyView| {
        Suspend::new(async move {
            match report.await {
                Ok(r) => part(r),
                Err(e) => view! { <p class="notice" role="alert">{e.to_string()}</p> }.into_any(),
            }
        })
    };
    view! {
        <section class="quality" aria-labelledby="knowledge-gaps">
            <h2 id="knowledge-gaps">"Knowledge gaps"</h2>
            <Transition fallback=loading>{move || shown(gaps_section)}</Transition>
        </section>
        <section class="quality" aria-labelledby="weak-sources">
            <h2 id="weak-sources">"Weak sources"</h2>
            <Transition fallback=loading>{move || shown(sources_section)}</Transition>
        </section>
    }
}

/// "0% (0–79%, n=1)": a rate with its 95% interval and how many votes.
fn percent_with_interval(r: &RateCi) -> String {
    format!(
        "{:.0}% ({:.0}–{:.0}%, n={})",
        r.rate * 100.0,
        r.low * 100.0,
        r.high * 100.0,
        r.trials
    )
}

/// "2026-12-02 14:05" (UTC, like the rest of the dashboard).
fn when(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    format!(
        "{} {:02}:{:02}",
        format_date(ms),
        (minutes / 60) % 24,
        minutes % 60
    )
}

fn gaps_section(r: QualityReport) -> AnyView {
    let grouping = if r.grouped_by_meaning {
        format!(
            "Similar questions (cosine ≥ {:.2}) are grouped under the latest.",
            r.similar_questions
        )
    } else {
        "The embedding model failed, so only identical questions are grouped.".to_owned()
    };
    let read = format!(
        " {} such question{} read{}.",
        r.gap_questions,
        if r.gap_questions == 1 { "" } else { "s" },
        if r.capped {
            " (the latest; there were more)"
        } else {
            ""
        }
    );
    view! {
        <p class="muted small">
            {format!(
                "Questions the documents didn't answer: the search found no passage, or none \
                 scoring {:.2} or more (cosine similarity); the answer said the documents \
                 don't cover it; or the answer was voted down. ",
                r.low_score
            )}
            {grouping}
            {read}
        </p>
        {if r.gaps.is_empty() {
            view! { <p class="muted">"No knowledge gaps in this range."</p> }.into_any()
        } else {
            gaps_table(r.gaps).into_any()
        }}
    }
    .into_any()
}

fn gaps_table(gaps: Vec<KnowledgeGap>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="users stats gaps" data-testid="knowledge-gaps">
                <thead>
                    <tr>
                        <th scope="col">"Question"</th>
                        <th scope="col" class="num">"Asked"</th>
                        <th scope="col" class="num">"People"</th>
                        <th scope="col">"Why"</th>
                        <th scope="col" class="num">"Best passage"</th>
                        <th scope="col">"Last seen (UTC)"</th>
                    </tr>
                </thead>
                <tbody>
                    {gaps
                        .into_iter()
                        .map(|g| {
                            view! {
                                <tr class="gap">
                                    <td>
                                        <span class="question">{g.question}</span>
                                        {(!g.also_asked.is_empty())
                                            .then(|| {
                                                view! {
                                                    <ul class="also-asked muted small" aria-label="Also asked as">
                                                        {g.also_asked.into_iter().map(|q| view! { <li>{q}</li> }).collect_view()}
                                                    </ul>
                                                }
                                            })}
                                    </td>
                                    <td class="num">{g.count}</td>
                                    <td class="num">{g.people}</td>
                                    <td>
                                        <div class="reasons">{reason_chips(g.reasons)}</div>
                                    </td>
                                    <td class="num">{g.best_score.map_or("none found".to_owned(), |s| format!("{s:.2}"))}</td>
                                    <td class="nowrap">{when(g.last_seen)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn reason_chips(r: GapReasons) -> impl IntoView {
    [
        ("low-score", "low score", r.low_score),
        ("not-covered", "not covered", r.not_covered),
        ("down-voted", "down-voted", r.down_voted),
    ]
    .into_iter()
    .filter(|(_, _, n)| *n > 0)
    .map(|(class, label, n)| {
        view! { <span class="reason" data-reason=class>{format!("{label} {n}")}</span> }
    })
    .collect_view()
}

fn sources_section(r: QualityReport) -> AnyView {
    if r.documents.is_empty() {
        return view! { <p class="muted">"No votes on answers with sources in this range."</p> }
            .into_any();
    }
    view! {
        <p class="muted small">
            "The document versions and passages of the answers people voted on, weakest \
             first: ranked by the lower bound of the 95% Wilson interval of their down-vote \
             rate, so many down-votes outrank one. A vote counts toward the passages its \
             answer cites; an answer that cites none counts toward every passage it was given."
        </p>
        <h3>"Document versions"</h3>
        {sources_table(r.documents, false)}
        <h3>"Passages"</h3>
        {sources_table(r.passages, true)}
    }
    .into_any()
}

fn sources_table(rows: Vec<WeakSource>, passages: bool) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table
                class="users stats weak-sources"
                data-testid=if passages { "weak-passages" } else { "weak-documents" }
            >
                <thead>
                    <tr>
                        <th scope="col">{if passages { "Passage" } else { "Document version" }}</th>
                        <th scope="col">"Collection"</th>
                        <th scope="col" class="num">"Votes"</th>
                        <th scope="col">"Thumbs up (95% CI)"</th>
                        <th scope="col" class="num">"Down-vote rate, lower bound"</th>
                        <th scope="col">"Answers that used it"</th>
                    </tr>
                </thead>
                <tbody>{rows.into_iter().map(source_row).collect_view()}</tbody>
            </table>
        </div>
    }
}

fn source_row(s: WeakSource) -> impl IntoView {
    let href = format!("/documents?document={}", s.document_id);
    let version = s.version.map(|v| format!(" v{v}"));
    let place = s.chunk_index.map(|i| format!(" · passage {}", i + 1));
    view! {
        <tr class="weak-source" data-document=s.document_id.clone()>
            <td>
                <a href=href>{s.document_name}</a>
                <span class="muted small">{version}{place}</span>
                {s.passage.map(|text| view! { <blockquote class="passage">{text}</blockquote> })}
            </td>
            <td>{s.collection.unwrap_or_else(|| "–".to_owned())}</td>
            <td class="num votes">{format!("{} down · {} up", s.down, s.up)}</td>
            <td class="up-rate">{percent_with_interval(&s.up_rate)}</td>
            <td class="num">{format!("{:.0}%", s.down_rate.low * 100.0)}</td>
            <td>{source_answers(s.answers)}</td>
        </tr>
    }
}

fn source_answers(answers: Vec<SourceAnswer>) -> impl IntoView {
    let label = match answers.len() {
        1 => "The answer".to_owned(),
        n => format!("The latest {n}"),
    };
    view! {
        <details class="source-answers">
            <summary>{label}</summary>
            <ul>
                {answers
                    .into_iter()
                    .map(|a| {
                        view! {
                            <li>
                                <p class="question">{a.question}</p>
                                <p class="muted small">{a.answer}</p>
                                <p class="small">
                                    {format!("{} down · {} up · {}", a.down, a.up, when(a.voted_at))}
                                </p>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </details>
    }
}
