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
    source_turns: IntCounterVec,
    source_tokens: IntCounterVec,
    embedding_inputs: IntCounterVec,
    embedding_tokens: IntCounterVec,
    /// The API key names given a label of their own so far.
    key_labels: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Key names beyond this many share the label `other`: every label value is
/// a series kept forever, and keys come and go.
const MAX_KEY_LABELS: usize = 100;

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
        let source_turns = IntCounterVec::new(
            Opts::new(
                "source_turns_total",
                "Chat turns by where they were asked (source=browser, or api for /v1), the API key's name (empty for the browser) and outcome",
            ),
            &["source", "key", "outcome"],
        )?;
        let source_tokens = IntCounterVec::new(
            Opts::new(
                "source_tokens_total",
                "Prompt and completion tokens by source and API key name",
            ),
            &["source", "key", "kind"],
        )?;
        let embedding_inputs = IntCounterVec::new(
            Opts::new(
                "embedding_inputs_total",
                "Texts embedded through /v1/embeddings, by API key name",
            ),
            &["key"],
        )?;
        let embedding_tokens = IntCounterVec::new(
            Opts::new(
                "embedding_tokens_total",
                "Tokens embedded through /v1/embeddings, by API key name",
            ),
            &["key"],
        )?;
        registry.register(Box::new(embedding_inputs.clone()))?;
        registry.register(Box::new(embedding_tokens.clone()))?;
        registry.register(Box::new(source_turns.clone()))?;
        registry.register(Box::new(source_tokens.clone()))?;
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
            source_turns,
            source_tokens,
            embedding_inputs,
            embedding_tokens,
            key_labels: Default::default(),
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
        let key = self.key_label(e.api_key_name.as_deref());
        let key = key.as_str();
        self.source_turns
            .with_label_values(&[&e.source, key, &e.outcome])
            .inc();
        self.source_tokens
            .with_label_values(&[&e.source, key, "prompt"])
            .inc_by(u64::from(e.prompt_tokens));
        self.source_tokens
            .with_label_values(&[&e.source, key, "completion"])
            .inc_by(u64::from(e.completion_tokens));
        if let Some(class) = &e.error_class {
            self.errors.with_label_values(&[class]).inc();
        }
        if e.cache_hit {
            self.cache_hits.inc();
        }
    }

    /// Texts and tokens embedded for an API key.
    pub fn embedded(&self, key_name: &str, inputs: usize, tokens: usize) {
        let key = self.key_label(Some(key_name));
        self.embedding_inputs
            .with_label_values(&[&key])
            .inc_by(inputs as u64);
        self.embedding_tokens
            .with_label_values(&[&key])
            .inc_by(tokens as u64);
    }

    /// The `key` label of an API key's name (empty for the browser).
    fn key_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return String::new();
        };
        let Ok(mut seen) = self.key_labels.lock() else {
            return "other".to_owned();
        };
        if seen.contains(name) || seen.len() < MAX_KEY_LABELS && seen.insert(name.to_owned()) {
            name.to_owned()
        } else {
            "other".to_owned()
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
