//! The admin dashboard's figures, computed from the turn events and votes of
//! a time range: latency percentiles per model and per variant and over time,
//! thumbs-up rates with confidence intervals, error and cache-hit rates,
//! tokens and estimated cost per user and model, traffic by source (the
//! browser and each API key), and the most down-voted answers with their
//! sources; the knowledge gaps and weak sources come
//! from [`crate::ops::quality`].

use crate::config::Price;
use crate::ops::experiments::Experiment;
use crate::ops::quality::QualityReporter;
use crate::ops::statistics::{percentile, rate_ci, two_proportion_p_value, wilson};
use crate::store::{Store, TurnRow, VoteRow};
use app::error::AppError;
use app::ports::DashboardService;
use app::wire::{
    Dashboard, DownvotedAnswer, ExperimentView, GroupStats, Percentiles, QualityReport,
    SeriesPoint, SourceTraffic, StageLatency, TrafficSource, UsageRow, VariantComparison,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// About this many points per series, whatever the range.
const BUCKETS: i64 = 48;
const DOWNVOTED_SHOWN: i64 = 10;

pub struct DashboardServiceImpl {
    store: Store,
    prices: HashMap<String, Price>,
    experiments: Vec<Experiment>,
    quality: QualityReporter,
}

impl DashboardServiceImpl {
    pub fn new(
        store: Store,
        prices: HashMap<String, Price>,
        experiments: Vec<Experiment>,
        quality: QualityReporter,
    ) -> Self {
        Self {
            store,
            prices,
            experiments,
            quality,
        }
    }

    /// Each configured experiment's variants side by side.
    async fn compare_experiments(
        &self,
        turns: &[TurnRow],
        votes: &[VoteRow],
    ) -> Result<Vec<ExperimentView>, AppError> {
        let in_variant = |label: Option<&String>, wanted: &str| {
            label.is_some_and(|l| l.split(',').any(|part| part == wanted))
        };
        let mut views = Vec::new();
        for experiment in &self.experiments {
            let users: HashMap<String, i64> = self
                .store
                .exposures(&experiment.name)
                .await?
                .into_iter()
                .collect();
            let mut variants = Vec::new();
            let mut control: Option<(u64, u64)> = None;
            for variant in &experiment.variants {
                let label = format!("{}:{}", experiment.name, variant.name);
                let rows: Vec<&TurnRow> = turns
                    .iter()
                    .filter(|t| in_variant(t.variant.as_ref(), &label))
                    .collect();
                let voted: Vec<&VoteRow> = votes
                    .iter()
                    .filter(|v| in_variant(v.variant.as_ref(), &label))
                    .collect();
                let up = voted.iter().filter(|v| v.up).count() as u64;
                let tally = (up, voted.len() as u64);
                let p_value = match control {
                    None => {
                        control = Some(tally);
                        None
                    }
                    Some(control) => two_proportion_p_value(tally, control),
                };
                let ttft = percentiles(rows.iter().filter_map(|t| t.ttft_ms).collect());
                let cost: f64 = rows
                    .iter()
                    .map(|t| self.cost(&t.model, t.prompt_tokens, t.completion_tokens))
                    .sum();
                variants.push(VariantComparison {
                    name: variant.name.clone(),
                    users: users.get(&variant.name).copied().unwrap_or(0).max(0) as u64,
                    turns: rows.len() as u64,
                    up_rate: rate_ci(wilson(tally.0, tally.1)),
                    p_value,
                    ttft_p50: ttft.p50,
                    ttft_p90: ttft.p90,
                    cost_per_answer: (!rows.is_empty()).then(|| cost / rows.len() as f64),
                });
            }
            views.push(ExperimentView {
                name: experiment.name.clone(),
                variants,
            });
        }
        Ok(views)
    }

    fn cost(&self, model: &str, prompt: u64, completion: u64) -> f64 {
        self.prices.get(model).map_or(0.0, |price| {
            (prompt as f64 * price.prompt_per_million
                + completion as f64 * price.completion_per_million)
                / 1e6
        })
    }
}

fn percentiles(mut values: Vec<f64>) -> Percentiles {
    values.sort_by(f64::total_cmp);
    Percentiles {
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p99: percentile(&values, 99.0),
    }
}

/// Stats per group (model or variant); `key` picks the group of a turn or vote.
fn group_stats(
    turns: &[TurnRow],
    votes: &[VoteRow],
    turn_key: impl Fn(&TurnRow) -> Option<String>,
    vote_key: impl Fn(&VoteRow) -> Option<String>,
    cost: impl Fn(&TurnRow) -> f64,
) -> Vec<GroupStats> {
    let mut groups: BTreeMap<String, Vec<&TurnRow>> = BTreeMap::new();
    for turn in turns {
        if let Some(key) = turn_key(turn) {
            groups.entry(key).or_default().push(turn);
        }
    }
    let mut tally: HashMap<String, (u64, u64)> = HashMap::new();
    for vote in votes {
        if let Some(key) = vote_key(vote) {
            let entry = tally.entry(key).or_default();
            entry.0 += u64::from(vote.up);
            entry.1 += 1;
        }
    }
    for key in tally.keys() {
        groups.entry(key.clone()).or_default();
    }
    groups
        .into_iter()
        .map(|(name, rows)| {
            let (up, votes) = tally.get(&name).copied().unwrap_or_default();
            GroupStats {
                turns: rows.len() as u64,
                ttft: percentiles(rows.iter().filter_map(|t| t.ttft_ms).collect()),
                total: percentiles(rows.iter().map(|t| t.total_ms).collect()),
                errors: rows.iter().filter(|t| t.failed).count() as u64,
                up_rate: rate_ci(wilson(up, votes)),
                prompt_tokens: rows.iter().map(|t| t.prompt_tokens).sum(),
                completion_tokens: rows.iter().map(|t| t.completion_tokens).sum(),
                cost: rows.iter().map(|t| cost(t)).sum(),
                name,
            }
        })
        .collect()
}

/// Tokens and cost per user, the heaviest first.
fn usage_by_user(turns: &[TurnRow], cost: impl Fn(&TurnRow) -> f64) -> Vec<UsageRow> {
    let mut users: BTreeMap<String, UsageRow> = BTreeMap::new();
    for turn in turns {
        let row = users.entry(turn.user.clone()).or_insert_with(|| UsageRow {
            name: turn.user.clone(),
            turns: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: 0.0,
        });
        row.turns += 1;
        row.prompt_tokens += turn.prompt_tokens;
        row.completion_tokens += turn.completion_tokens;
        row.cost += cost(turn);
    }
    let mut by_user: Vec<UsageRow> = users.into_values().collect();
    by_user.sort_by(|a, b| {
        (b.prompt_tokens + b.completion_tokens).cmp(&(a.prompt_tokens + a.completion_tokens))
    });
    by_user
}

/// The group of a turn or of a voted answer: `None` for the browser, else
/// its API key's id (or name and owner, should an event lack the id).
fn origin(
    source: &str,
    key_id: Option<&str>,
    key_name: Option<&str>,
    owner: &str,
) -> (Option<String>, TrafficSource) {
    if source != "api" {
        return (None, TrafficSource::Browser);
    }
    let name = key_name.unwrap_or("unnamed key").to_owned();
    let id = key_id.map_or_else(|| format!("{name}\u{0}{owner}"), str::to_owned);
    let owner = owner.to_owned();
    (Some(id), TrafficSource::ApiKey { name, owner })
}

/// Turns, errors, TTFT, tokens, cost and votes of the browser and of each
/// API key: the browser first, then keys by turns, most first. Votes count
/// where their answer was asked; a vote on an answer without a turn event
/// counts nowhere. Empty when there are no turns.
fn traffic_by_source(
    turns: &[TurnRow],
    votes: &[VoteRow],
    cost: impl Fn(&TurnRow) -> f64,
) -> Vec<SourceTraffic> {
    #[derive(Default)]
    struct Tally<'a> {
        turns: Vec<&'a TurnRow>,
        up: u64,
        down: u64,
    }
    if turns.is_empty() {
        return Vec::new();
    }
    let mut groups: HashMap<Option<String>, (TrafficSource, Tally)> = HashMap::new();
    groups.insert(None, (TrafficSource::Browser, Tally::default()));
    for turn in turns {
        let key = turn.api_key_id.as_deref();
        let (id, source) = origin(&turn.source, key, turn.api_key.as_deref(), &turn.user);
        let group = groups
            .entry(id)
            .or_insert_with(|| (source, Tally::default()));
        group.1.turns.push(turn);
    }
    for vote in votes {
        let Some(asked) = vote.source.as_deref() else {
            continue;
        };
        let owner = vote.user.as_deref().unwrap_or_default();
        let (id, source) = origin(
            asked,
            vote.api_key_id.as_deref(),
            vote.api_key.as_deref(),
            owner,
        );
        let group = groups
            .entry(id)
            .or_insert_with(|| (source, Tally::default()));
        if vote.up {
            group.1.up += 1;
        } else {
            group.1.down += 1;
        }
    }
    let total = turns.len() as f64;
    let mut rows: Vec<SourceTraffic> = groups
        .into_values()
        .map(|(source, tally)| {
            let mut ttft: Vec<f64> = tally.turns.iter().filter_map(|t| t.ttft_ms).collect();
            ttft.sort_by(f64::total_cmp);
            SourceTraffic {
                source,
                turns: tally.turns.len() as u64,
                share: tally.turns.len() as f64 / total,
                errors: tally.turns.iter().filter(|t| t.failed).count() as u64,
                ttft_p50: percentile(&ttft, 50.0),
                ttft_p95: percentile(&ttft, 95.0),
                prompt_tokens: tally.turns.iter().map(|t| t.prompt_tokens).sum(),
                completion_tokens: tally.turns.iter().map(|t| t.completion_tokens).sum(),
                cost: tally.turns.iter().map(|t| cost(t)).sum(),
                up: tally.up,
                down: tally.down,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = |r: &SourceTraffic| {
            let name = match &r.source {
                TrafficSource::Browser => None,
                TrafficSource::ApiKey { name, owner } => Some((name.clone(), owner.clone())),
            };
            (name.is_some(), Reverse(r.turns), name)
        };
        order(a).cmp(&order(b))
    });
    rows
}

/// Percentiles of each stage over the turns that ran it, in the order a
/// turn runs them.
fn stage_latencies(turns: &[TurnRow]) -> Vec<StageLatency> {
    type Stage = (&'static str, fn(&TurnRow) -> Option<f64>);
    let stages: [Stage; 7] = [
        ("rewrite", |t| t.rewrite_ms),
        ("embed", |t| t.embed_ms),
        ("retrieve", |t| t.retrieve_ms),
        ("prompt_build", |t| t.prompt_build_ms),
        ("queue", |t| t.queue_ms),
        ("upstream_ttft", |t| t.upstream_ttft_ms),
        ("ttft", |t| t.ttft_ms),
    ];
    stages
        .into_iter()
        .map(|(stage, of)| {
            let values: Vec<f64> = turns.iter().filter_map(of).collect();
            StageLatency {
                stage: stage.to_owned(),
                turns: values.len() as u64,
                latency: percentiles(values),
            }
        })
        .collect()
}

/// A bucket width that is a round number of minutes or hours.
fn bucket_ms(since: i64, until: i64) -> i64 {
    const NICE: [i64; 10] = [1, 2, 5, 10, 15, 30, 60, 120, 360, 720];
    let wanted = ((until - since) / BUCKETS).max(1);
    NICE.iter()
        .map(|minutes| minutes * 60_000)
        .find(|&width| width >= wanted)
        .unwrap_or(86_400_000)
}

fn series(turns: &[TurnRow], since: i64, width: i64) -> Vec<SeriesPoint> {
    let mut buckets: BTreeMap<(i64, String), Vec<&TurnRow>> = BTreeMap::new();
    for turn in turns {
        let start = since + (turn.at - since).div_euclid(width) * width;
        buckets
            .entry((start, turn.model.clone()))
            .or_default()
            .push(turn);
    }
    buckets
        .into_iter()
        .map(|((start, model), rows)| {
            let ttft = percentiles(rows.iter().filter_map(|t| t.ttft_ms).collect());
            let total = percentiles(rows.iter().map(|t| t.total_ms).collect());
            SeriesPoint {
                start,
                model,
                turns: rows.len() as u64,
                ttft_p50: ttft.p50,
                ttft_p90: ttft.p90,
                total_p50: total.p50,
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl DashboardService for DashboardServiceImpl {
    async fn quality(&self, since: i64, until: i64) -> Result<QualityReport, AppError> {
        self.quality.report(since, until).await
    }

    async fn dashboard(&self, since: i64, until: i64) -> Result<Dashboard, AppError> {
        let turns = self.store.turns_between(since, until).await?;
        let votes = self.store.votes_between(since, until).await?;
        let downvoted = self
            .store
            .most_downvoted(since, until, DOWNVOTED_SHOWN)
            .await?;
        let cost = |t: &TurnRow| self.cost(&t.model, t.prompt_tokens, t.completion_tokens);
        let by_model = group_stats(
            &turns,
            &votes,
            |t| Some(t.model.clone()),
            |v| v.model.clone(),
            cost,
        );
        let by_variant = group_stats(
            &turns,
            &votes,
            |t| t.variant.clone(),
            |v| v.variant.clone(),
            cost,
        );
        let experiments = self.compare_experiments(&turns, &votes).await?;
        let total = turns.len() as u64;
        let width = bucket_ms(since, until);
        Ok(Dashboard {
            since,
            until,
            bucket_ms: width,
            turns: total,
            error_rate: rate_ci(wilson(
                turns.iter().filter(|t| t.failed).count() as u64,
                total,
            )),
            cache_hit_rate: rate_ci(wilson(
                turns.iter().filter(|t| t.cache_hit).count() as u64,
                total,
            )),
            regenerate_rate: rate_ci(wilson(
                turns.iter().filter(|t| t.regenerated).count() as u64,
                total,
            )),
            up_rate: rate_ci(wilson(
                votes.iter().filter(|v| v.up).count() as u64,
                votes.len() as u64,
            )),
            stages: stage_latencies(&turns),
            series: series(&turns, since, width),
            by_model,
            by_variant,
            by_user: usage_by_user(&turns, cost),
            by_source: traffic_by_source(&turns, &votes, cost),
            downvoted: downvoted
                .into_iter()
                .map(|d| DownvotedAnswer {
                    message_id: d.message_id,
                    model: d.model,
                    question: d.question,
                    answer: d.answer,
                    down: d.down,
                    up: d.up,
                    comments: d.comments,
                    sources: d.sources,
                })
                .collect(),
            experiments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(at: i64, model: &str, ttft: f64, failed: bool) -> TurnRow {
        TurnRow {
            at,
            user: "ada".into(),
            model: model.into(),
            variant: None,
            rewrite_ms: None,
            embed_ms: Some(ttft / 100.0),
            retrieve_ms: Some(ttft / 50.0),
            prompt_build_ms: None,
            queue_ms: None,
            upstream_ttft_ms: None,
            ttft_ms: Some(ttft),
            total_ms: ttft * 10.0,
            prompt_tokens: 100,
            completion_tokens: 10,
            cache_hit: false,
            failed,
            regenerated: false,
            source: "browser".into(),
            api_key_id: None,
            api_key: None,
        }
    }

    /// A `/v1` turn of `owner`'s key `id`, named `name`.
    fn api_turn(owner: &str, id: &str, name: &str, ttft: f64, failed: bool) -> TurnRow {
        TurnRow {
            user: owner.into(),
            source: "api".into(),
            api_key_id: Some(id.into()),
            api_key: Some(name.into()),
            ..turn(1, "a", ttft, failed)
        }
    }

    fn vote(source: Option<&str>, key: Option<(&str, &str, &str)>, up: bool) -> VoteRow {
        VoteRow {
            up,
            source: source.map(Into::into),
            user: Some(key.map_or("ada", |k| k.0).into()),
            api_key_id: key.map(|k| k.1.into()),
            api_key: key.map(|k| k.2.into()),
            ..VoteRow::default()
        }
    }

    #[test]
    fn stages_count_only_the_turns_that_ran_them() {
        let mut turns: Vec<TurnRow> = (1..=4).map(|i| turn(i, "a", 100.0, false)).collect();
        turns[0].rewrite_ms = Some(800.0);
        turns[1].rewrite_ms = Some(400.0);
        let stages = stage_latencies(&turns);
        let stage = |name: &str| stages.iter().find(|s| s.stage == name).expect(name);
        assert_eq!(stages[0].stage, "rewrite", "in the order a turn runs them");
        assert_eq!(stage("rewrite").turns, 2);
        assert_eq!(stage("embed").turns, 4);
        assert_eq!(stage("queue").turns, 0);
        assert_eq!(stage("queue").latency.p50, None);
        let rewrite = stage("rewrite").latency.p50.expect("a median");
        assert!((400.0..=800.0).contains(&rewrite), "{rewrite}");
    }

    #[test]
    fn groups_get_percentiles_votes_and_cost() {
        let turns: Vec<TurnRow> = (1..=10)
            .map(|i| turn(i, "a", f64::from(i as i32) * 100.0, i == 10))
            .chain([turn(5, "b", 50.0, false)])
            .collect();
        let votes = vec![
            VoteRow {
                model: Some("a".into()),
                variant: None,
                up: true,
                ..VoteRow::default()
            },
            VoteRow {
                model: Some("a".into()),
                variant: None,
                up: false,
                ..VoteRow::default()
            },
            VoteRow {
                model: Some("c".into()),
                variant: None,
                up: true,
                ..VoteRow::default()
            },
        ];
        let stats = group_stats(
            &turns,
            &votes,
            |t| Some(t.model.clone()),
            |v| v.model.clone(),
            |t| t.prompt_tokens as f64 * 0.01,
        );
        let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &stats[0];
        assert_eq!(a.turns, 10);
        assert_eq!(a.ttft.p50, Some(550.0));
        assert_eq!(a.errors, 1);
        assert_eq!(a.up_rate.unwrap().trials, 2);
        assert!((a.cost - 10.0).abs() < 1e-9);
        assert_eq!(stats[2].turns, 0, "votes alone still show the group");
    }

    #[test]
    fn traffic_splits_by_source_and_key() {
        // Both of these users named a key "ci": the owner tells them apart.
        let turns = vec![
            api_turn("bob", "k-bob", "ci", 300.0, false),
            turn(2, "a", 100.0, false),
            api_turn("cy", "k-cy", "ci", 50.0, false),
            api_turn("cy", "k-cy", "ci", 70.0, true),
            turn(3, "a", 200.0, false),
            api_turn("cy", "k-cy", "ci", 90.0, false),
        ];
        let votes = vec![
            vote(Some("browser"), None, true),
            vote(Some("api"), Some(("cy", "k-cy", "ci")), false),
            vote(Some("api"), Some(("cy", "k-cy", "ci")), true),
            vote(None, None, false),
        ];
        let rows = traffic_by_source(&turns, &votes, |t| t.prompt_tokens as f64 * 0.01);
        let sources: Vec<(String, u64)> = rows
            .iter()
            .map(|r| {
                let owner = match &r.source {
                    TrafficSource::Browser => String::new(),
                    TrafficSource::ApiKey { owner, .. } => format!(" ({owner})"),
                };
                (format!("{}{owner}", r.source.label()), r.turns)
            })
            .collect();
        assert_eq!(
            sources,
            [
                ("Browser".to_owned(), 2),
                ("API · ci (cy)".to_owned(), 3),
                ("API · ci (bob)".to_owned(), 1),
            ],
            "the browser first, then keys by turns"
        );
        let (browser, cy, bob) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!((browser.errors, cy.errors, bob.errors), (0, 1, 0));
        assert!((cy.share - 0.5).abs() < 1e-9);
        assert_eq!(browser.ttft_p50, Some(150.0));
        assert_eq!(cy.ttft_p50, Some(70.0));
        assert!(cy.ttft_p95.is_some_and(|p| (88.0..=90.0).contains(&p)));
        assert_eq!(cy.prompt_tokens + cy.completion_tokens, 330);
        assert!((cy.cost - 3.0).abs() < 1e-9);
        assert_eq!((browser.up, browser.down), (1, 0));
        assert_eq!(
            (cy.up, cy.down),
            (1, 1),
            "a vote without a turn event counts nowhere"
        );
        assert_eq!((bob.up, bob.down), (0, 0));
        assert!(traffic_by_source(&[], &votes, |_| 0.0).is_empty());
    }

    #[test]
    fn browser_row_shows_even_without_browser_turns() {
        let rows = traffic_by_source(&[api_turn("bob", "k", "ci", 1.0, false)], &[], |_| 0.0);
        assert_eq!(rows[0].source, TrafficSource::Browser);
        assert_eq!(rows[0].turns, 0);
        assert_eq!(rows[0].ttft_p50, None);
        assert!((rows[1].share - 1.0).abs() < 1e-9);
    }

    #[test]
    fn buckets_are_round_and_cover_the_range() {
        assert_eq!(bucket_ms(0, 3_600_000), 2 * 60_000);
        assert_eq!(bucket_ms(0, 24 * 3_600_000), 30 * 60_000);
        assert_eq!(bucket_ms(0, 7 * 24 * 3_600_000), 360 * 60_000);
        let points = series(
            &[
                turn(0, "a", 1.0, false),
                turn(59_999, "a", 3.0, false),
                turn(60_000, "a", 5.0, false),
            ],
            0,
            60_000,
        );
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].turns, 2);
        assert_eq!(points[0].ttft_p50, Some(2.0));
        assert_eq!(points[1].start, 60_000);
    }
}
