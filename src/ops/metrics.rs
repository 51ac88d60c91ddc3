//! Prometheus metrics, served at `/metrics`: stage latency histograms and
//! counters for turns, tokens, errors, cache hits, rate-limit rejections and
//! votes.

use crate::store::ChatTurnEvent;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    stage_seconds: HistogramVec,
    turns: IntCounterVec,
    tokens: IntCounterVec,
    errors: IntCounterVec,
    cache_hits: IntCounter,
    rate_limited: IntCounterVec,
    feedback: IntCounterVec,
}

/// From 1 ms to a minute: retrieval lives at the bottom, generation at the top.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("ragchat".into()), None)?;
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "stage_seconds",
                "Latency of each chat stage (embed, retrieve, prompt_build, queue, ttft, upstream_ttft, total)",
            )
            .buckets(BUCKETS.to_vec()),
            &["stage", "model"],
        )?;
        let turns = IntCounterVec::new(
            Opts::new(
                "chat_turns_total",
                "Chat turns by model, provider and outcome",
            ),
            &["model", "provider", "outcome"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new("tokens_total", "Prompt and completion tokens by model"),
            &["model", "kind"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("chat_errors_total", "Failed chat turns by error class"),
            &["class"],
        )?;
        let cache_hits = IntCounter::new("cache_hits_total", "Answers served from the cache")?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused by a chat rate limit (reason=rate), a spent token budget (budget), an upload quota (upload_quota) or the new-guest limit per address (new_guests), or chats moved to the cheaper model by a spent budget (budget_degraded)",
            ),
            &["reason"],
        )?;
        let feedback =
            IntCounterVec::new(Opts::new("feedback_total", "Votes on answers"), &["rating"])?;
        registry.register(Box::new(stage_seconds.clone()))?;
        registry.register(Box::new(turns.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(feedback.clone()))?;
        Ok(Self {
            registry,
            stage_seconds,
            turns,
            tokens,
            errors,
            cache_hits,
            rate_limited,
            feedback,
        })
    }

    pub fn observe_turn(&self, e: &ChatTurnEvent) {
        let stages = [
            ("rewrite", e.rewrite_ms),
            ("embed", e.embed_ms),
            ("retrieve", e.retrieve_ms),
            ("prompt_build", e.prompt_build_ms),
            ("queue", e.queue_ms),
            ("ttft", e.ttft_ms),
            ("upstream_ttft", e.upstream_ttft_ms),
            ("total", Some(e.total_ms)),
        ];
        for (stage, ms) in stages {
            if let Some(ms) = ms {
                self.stage_seconds
                    .with_label_values(&[stage, &e.model])
                    .observe(ms / 1000.0);
            }
        }
        self.turns
            .with_label_values(&[&e.model, &e.provider, &e.outcome])
            .inc();
        self.tokens
            .with_label_values(&[&e.model, "prompt"])
            .inc_by(u64::from(e.prompt_tokens));
        self.tokens
            .with_label_values(&[&e.model, "completion"])
            .inc_by(u64::from(e.completion_tokens));
        if let Some(class) = &e.error_class {
            self.errors.with_label_values(&[class]).inc();
        }
        if e.cache_hit {
            self.cache_hits.inc();
        }
    }

    /// `reason`: `rate` or `budget`.
    pub fn rate_limited(&self, reason: &str) {
        self.rate_limited.with_label_values(&[reason]).inc();
    }

    pub fn feedback(&self, rating: &str) {
        self.feedback.with_label_values(&[rating]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
    }
}
