//! The admin dashboard's figures, computed from the turn events and votes of
//! a time range: latency percentiles per model and per variant and over time,
//! thumbs-up rates with confidence intervals, error and cache-hit rates,
//! tokens and estimated cost per user and model, and the most down-voted
//! answers with their sources; the knowledge gaps and weak sources come
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
    SeriesPoint, StageLatency, UsageRow, VariantComparison,
};
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
        let mut users: BTreeMap<String, UsageRow> = BTreeMap::new();
        for turn in &turns {
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
            by_user,
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
            },
            VoteRow {
                model: Some("a".into()),
                variant: None,
                up: false,
            },
            VoteRow {
                model: Some("c".into()),
                variant: None,
                up: true,
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
