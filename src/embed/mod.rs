//! Sentence embeddings behind one trait: all-MiniLM-L6-v2 in-process
//! ([`local`], OpenVINO) and any OpenAI-compatible `/v1/embeddings` endpoint
//! ([`openai`]).
//!
//! Every backend returns unit-length vectors, so a dot product is a cosine
//! similarity whichever backend filled the index.

pub mod local;
pub mod openai;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::Tokenizer;

#[async_trait::async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// The model's name, e.g. "all-MiniLM-L6-v2".
    fn model(&self) -> &str;
    /// Length of every vector this embedder returns (384 for all-MiniLM-L6-v2).
    fn dimension(&self) -> usize;
    /// Embeds many texts (documents); batches internally; never blocks the
    /// async executor. One unit vector per text, in the order given.
    async fn embed_documents(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Embeds one search query. It is not queued behind a whole running
    /// [`Embedder::embed_documents`]: the local backend runs it between two
    /// document batches, a remote one sends it at once.
    async fn embed_query(&self, text: String) -> Result<Vec<f32>, EmbedError>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model is not installed ({} is missing); run scripts/fetch-models.sh", .0.display())]
    ModelMissing(PathBuf),
    #[error("the embedding model could not be loaded: {0}")]
    Load(String),
    #[error("the embedding model failed: {0}")]
    Inference(String),
    #[error("the embedding settings are incomplete: {0}")]
    Config(String),
    #[error("could not reach the embedding server: {0}")]
    Unreachable(String),
    #[error("the embedding server did not answer within {:.1} s", .0.as_secs_f32())]
    Timeout(std::time::Duration),
    #[error("the embedding server is rate limiting requests{}: {message}", retry_hint(*.retry_after_secs))]
    RateLimited {
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after_secs: Option<u64>,
        message: String,
    },
    #[error("the embedding server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the embedding server sent an unexpected response: {0}")]
    BadResponse(String),
}

/// What an embedder is called in the records and the index: its model and
/// dimension, without whitespace (an exact keyword). Vectors of two
/// embedders are never compared.
pub fn embedder_id(embedder: &dyn Embedder) -> String {
    let model: String = embedder
        .model()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("{model}@{}", embedder.dimension())
}

fn retry_hint(retry_after_secs: Option<u64>) -> String {
    retry_after_secs
        .map(|s| format!(" (retry after {s} s)"))
        .unwrap_or_default()
}

impl EmbedError {
    /// Whether the same request may succeed later (ingestion can back off
    /// and retry these; the others need a person to act).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout(_) | Self::RateLimited { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            Self::ModelMissing(_)
            | Self::Load(_)
            | Self::Inference(_)
            | Self::Config(_)
            | Self::BadResponse(_) => false,
        }
    }
}

/// Where a tokenizer puts the model's tokens in a text: the chunker and the
/// prompt's context budget count tokens with it.
pub trait TokenSpans: Send + Sync {
    /// Byte ranges of model tokens in text (no special tokens).
    fn token_spans(&self, text: &str) -> Vec<Range<usize>>;
}

/// Scales `v` to unit length in place, as sentence-transformers' `Normalize`
/// (torch's `F.normalize`, whose 1e-12 floor keeps a zero vector zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// all-MiniLM-L6-v2's WordPiece tokenizer, for measuring text in model
/// tokens (the chunker sizes chunks with it). Cheap to clone.
#[derive(Clone)]
pub struct ModelTokens {
    tokenizer: Arc<Tokenizer>,
}

impl ModelTokens {
    /// Loads `tokenizer.json` from the model directory.
    pub fn load(model_dir: &Path) -> Result<Self, EmbedError> {
        let mut tokenizer = load_tokenizer(model_dir)?;
        // Spans must cover the whole text: the file's own settings truncate
        // at 128 and pad, which is right for neither chunking nor the model.
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Load(format!("tokenizer settings: {e}")))?;
        tokenizer.with_padding(None);
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
        })
    }

    /// Byte ranges of the word-piece tokens in `text`: no special tokens, no
    /// truncation. A piece like "##ing" covers just its own bytes.
    pub fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        match self.tokenizer.encode(text, false) {
            Ok(encoding) => encoding
                .get_offsets()
                .iter()
                .map(|&(start, end)| start..end)
                .collect(),
            Err(e) => {
                // Never seen with WordPiece, but a chunker must not get 0
                // tokens for real text: one span per non-space character
                // overestimates, so chunks stay within the model's window.
                tracing::warn!(error = %e, "tokenizer failed; counting characters instead");
                text.char_indices()
                    .filter(|(_, c)| !c.is_whitespace())
                    .map(|(i, c)| i..i + c.len_utf8())
                    .collect()
            }
        }
    }

    /// Number of model tokens in `text`, without `[CLS]` and `[SEP]`.
    pub fn count(&self, text: &str) -> usize {
        self.token_spans(text).len()
    }
}

impl TokenSpans for ModelTokens {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        ModelTokens::token_spans(self, text)
    }
}

/// The tokenizer chunks are sized with, as the chunker's trait object.
pub fn load_token_spans(model_dir: &Path) -> Result<Arc<dyn TokenSpans>, EmbedError> {
    Ok(Arc::new(ModelTokens::load(model_dir)?))
}

pub(crate) fn load_tokenizer(model_dir: &Path) -> Result<Tokenizer, EmbedError> {
    let path = model_dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(EmbedError::ModelMissing(path));
    }
    Tokenizer::from_file(&path)
        .map_err(|e| EmbedError::Load(format!("reading {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_unit_length_and_keeps_direction() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 4];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 4]);
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn rate_limit_message_includes_retry_after() {
        let e = EmbedError::RateLimited {
            retry_after_secs: Some(7),
            message: "slow down".into(),
        };
        assert_eq!(
            e.to_string(),
            "the embedding server is rate limiting requests (retry after 7 s): slow down"
        );
        assert!(e.is_transient());
        let e = EmbedError::Status {
            status: 401,
            message: "bad key".into(),
        };
        assert!(!e.is_transient());
    }

    #[test]
    fn missing_model_names_the_file_and_the_fix() {
        let e = ModelTokens::load(Path::new("/nonexistent/model")).err();
        let message = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("/nonexistent/model/tokenizer.json"),
            "{message}"
        );
        assert!(message.contains("fetch-models.sh"), "{message}");
    }
}
