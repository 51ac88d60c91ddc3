//! Retrieval: embed the question, search the user's chunks (dense + BM25,
//! fused), and number the hits as sources for the prompt.

use crate::config::{RetrievalMode, RetrievalSettings};
use crate::embed::Embedder;
use crate::index::{bm25, Hit, SearchMode, SearchRequest, VectorIndex};
use app::wire::Source;
use std::sync::Arc;
use std::time::Instant;

pub struct Retriever {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorIndex>,
    settings: RetrievalSettings,
}

/// The hits for one question and what each step cost.
pub struct Retrieved {
    pub hits: Vec<Hit>,
    pub embed_ms: f64,
    pub search_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("embedding the question failed: {0}")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("searching the index failed: {0}")]
    Index(#[from] crate::index::IndexError),
}

pub fn search_mode(mode: RetrievalMode) -> SearchMode {
    match mode {
        RetrievalMode::Dense => SearchMode::Dense,
        RetrievalMode::Sparse => SearchMode::Sparse,
        RetrievalMode::Hybrid => SearchMode::Hybrid,
    }
}

impl Retriever {
    pub fn new(
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
        settings: RetrievalSettings,
    ) -> Self {
        Self {
            embedder,
            index,
            settings,
        }
    }

    /// The configured number of chunks per question.
    pub fn top_k(&self) -> usize {
        self.settings.top_k
    }

    /// The `top_k` chunks of `owner`'s documents that best match `question`.
    pub async fn retrieve(&self, owner: &str, question: &str) -> Result<Retrieved, RetrieveError> {
        self.retrieve_top(owner, question, self.settings.top_k)
            .await
    }

    /// [`Retriever::retrieve`] with another number of chunks (experiments).
    #[tracing::instrument(skip_all, fields(owner))]
    pub async fn retrieve_top(
        &self,
        owner: &str,
        question: &str,
        top_k: usize,
    ) -> Result<Retrieved, RetrieveError> {
        let started = Instant::now();
        let dense = match self.settings.mode {
            // Sparse-only search needs no embedding.
            RetrievalMode::Sparse => Vec::new(),
            _ => self.embedder.embed_query(question.to_string()).await?,
        };
        let embed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let hits = self
            .index
            .search(SearchRequest {
                owner: owner.to_string(),
                dense,
                sparse: bm25::query_vector(question),
                limit: top_k.max(1),
                mode: search_mode(self.settings.mode),
            })
            .await?;
        Ok(Retrieved {
            hits,
            embed_ms,
            search_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// Numbers hits 1, 2, … as the model will cite them.
pub fn sources_from(hits: Vec<Hit>) -> Vec<Source> {
    hits.into_iter()
        .zip(1u32..)
        .map(|(hit, n)| {
            let heading = (!hit.payload.heading_path.is_empty())
                .then(|| hit.payload.heading_path.join(" › "));
            Source {
                n,
                document_id: hit.payload.document_id,
                document_name: hit.payload.document_name,
                page: hit.payload.page,
                heading,
                chunk_index: hit.payload.chunk_index,
                text: hit.payload.text,
                score: hit.score,
                cited: false,
                highlights: Vec::new(),
            }
        })
        .collect()
}
