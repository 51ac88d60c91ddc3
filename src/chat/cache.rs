//! The exact response cache: an answer is reused for a request that would
//! send the model the same thing. The key covers the model, the prompt
//! template version, the normalised question, the conversation so far, the
//! retrieved chunks with their document versions, and the sampling
//! parameters. Entries expire after a TTL, and deleting a document drops
//! every entry that used it.

pub use crate::config::CacheSettings;
use crate::store::{CachedAnswer, Store, StoreError};
use app::wire::Source;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// What identifies a request to the model.
pub struct CacheKeyParts<'a> {
    pub model: &'a str,
    pub template_version: u32,
    pub question: &'a str,
    /// The earlier messages sent with the prompt (role, content).
    pub history: &'a [(&'a str, &'a str)],
    pub sources: &'a [Source],
    /// Document id → content hash.
    pub document_versions: &'a HashMap<String, String>,
    /// The collections searched (sorted): an answer is only reused for a
    /// request that could read exactly these.
    pub collections: &'a [String],
    pub temperature: f32,
    pub max_tokens: u32,
}

/// Lowercased, with runs of whitespace collapsed and the ends trimmed:
/// "  What is X ?" and "what is x ?" ask the same thing.
pub fn normalise_question(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A SHA-256 over the parts, each length-prefixed so that no two different
/// requests can produce the same byte string.
pub fn cache_key(parts: &CacheKeyParts<'_>) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(parts.model.as_bytes());
    field(&parts.template_version.to_le_bytes());
    field(normalise_question(parts.question).as_bytes());
    field(&(parts.history.len() as u64).to_le_bytes());
    for (role, content) in parts.history {
        field(role.as_bytes());
        field(content.as_bytes());
    }
    field(&(parts.sources.len() as u64).to_le_bytes());
    for source in parts.sources {
        field(source.document_id.as_bytes());
        field(&source.chunk_index.to_le_bytes());
        let version = parts
            .document_versions
            .get(&source.document_id)
            .map_or("", String::as_str);
        field(version.as_bytes());
    }
    field(&(parts.collections.len() as u64).to_le_bytes());
    for collection in parts.collections {
        field(collection.as_bytes());
    }
    field(&parts.temperature.to_le_bytes());
    field(&parts.max_tokens.to_le_bytes());
    crate::hex(&hash.finalize())
}

#[derive(Clone)]
pub struct ResponseCache {
    store: Store,
    ttl_ms: i64,
}

impl ResponseCache {
    /// `None` when the cache is turned off.
    pub fn new(store: Store, settings: &CacheSettings) -> Option<Self> {
        settings.enabled.then(|| Self {
            store,
            ttl_ms: i64::try_from(settings.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<CachedAnswer>, StoreError> {
        self.store.cached_answer(key).await
    }

    pub async fn put(&self, key: &str, answer: &CachedAnswer) -> Result<(), StoreError> {
        self.store.cache_answer(key, answer, self.ttl_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(doc: &str, chunk: u32) -> Source {
        Source {
            collection: None,
            n: 1,
            document_id: doc.into(),
            document_name: "d.pdf".into(),
            page: None,
            heading: None,
            chunk_index: chunk,
            text: "passage".into(),
            score: 0.5,
            cited: false,
            highlights: Vec::new(),
        }
    }

    fn key_with(
        question: &str,
        sources: &[Source],
        versions: &HashMap<String, String>,
        t: f32,
    ) -> String {
        cache_key(&CacheKeyParts {
            model: "m",
            template_version: 1,
            question,
            history: &[],
            sources,
            document_versions: versions,
            collections: &[],
            temperature: t,
            max_tokens: 100,
        })
    }

    #[test]
    fn the_same_request_has_the_same_key_whatever_the_spacing_or_case() {
        let versions = HashMap::from([("a".to_string(), "v1".to_string())]);
        let sources = [source("a", 3)];
        assert_eq!(
            key_with("What is  X?", &sources, &versions, 0.3),
            key_with("  what is x? ", &sources, &versions, 0.3)
        );
    }

    #[test]
    fn anything_the_model_would_see_differently_changes_the_key() {
        let v1 = HashMap::from([("a".to_string(), "v1".to_string())]);
        let v2 = HashMap::from([("a".to_string(), "v2".to_string())]);
        let base = key_with("q", &[source("a", 3)], &v1, 0.3);
        assert_ne!(base, key_with("q2", &[source("a", 3)], &v1, 0.3));
        assert_ne!(base, key_with("q", &[source("a", 4)], &v1, 0.3));
        assert_ne!(
            base,
            key_with("q", &[source("a", 3)], &v2, 0.3),
            "a new document version"
        );
        assert_ne!(base, key_with("q", &[], &v1, 0.3));
        assert_ne!(base, key_with("q", &[source("a", 3)], &v1, 0.7));
        let with_history = cache_key(&CacheKeyParts {
            model: "m",
            template_version: 1,
            question: "q",
            history: &[("user", "earlier")],
            sources: &[source("a", 3)],
            document_versions: &v1,
            collections: &[],
            temperature: 0.3,
            max_tokens: 100,
        });
        assert_ne!(base, with_history);
    }
}
