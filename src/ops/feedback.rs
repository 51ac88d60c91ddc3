//! Thumbs up/down on answers, each vote stored with the model, the experiment
//! variant and the chunks (ids, scores, document versions) the answer used.

use crate::index::point_id;
use crate::ops::metrics::Metrics;
use crate::store::{FeedbackRecord, Store};
use app::error::AppError;
use app::ports::{FeedbackService, UserId};
use app::wire::Rating;
use serde::Serialize;
use std::sync::Arc;

pub const MAX_COMMENT_CHARS: usize = 2_000;

/// One chunk an answer was given, as a vote records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsedChunk {
    pub chunk_id: String,
    pub document_id: String,
    /// The document's content hash when the vote was cast (`None`: deleted).
    pub document_version: Option<String>,
    pub chunk_index: u32,
    pub score: f32,
    pub cited: bool,
}

pub struct FeedbackServiceImpl {
    store: Store,
    metrics: Arc<Metrics>,
}

impl FeedbackServiceImpl {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }
}

#[async_trait::async_trait]
impl FeedbackService for FeedbackServiceImpl {
    async fn rate(
        &self,
        user: &UserId,
        message_id: &str,
        rating: Option<Rating>,
        comment: Option<String>,
    ) -> Result<(), AppError> {
        let answer = self
            .store
            .answer_for_feedback(&user.0, message_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let Some(rating) = rating else {
            self.store.delete_feedback(&user.0, message_id).await?;
            return Ok(());
        };
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(AppError::BadRequest(format!(
                "A comment has at most {MAX_COMMENT_CHARS} characters."
            )));
        }
        let ids: Vec<String> = answer
            .sources
            .iter()
            .map(|s| s.document_id.clone())
            .collect();
        let versions = self.store.document_versions(&ids).await?;
        let used: Vec<UsedChunk> = answer
            .sources
            .iter()
            .map(|s| UsedChunk {
                chunk_id: point_id(&s.document_id, s.chunk_index).to_string(),
                document_id: s.document_id.clone(),
                document_version: versions.get(&s.document_id).cloned(),
                chunk_index: s.chunk_index,
                score: s.score,
                cited: s.cited,
            })
            .collect();
        let retrieval = serde_json::to_string(&used).map_err(|e| {
            tracing::error!(error = %e, "serialising retrieval for a vote");
            AppError::Internal
        })?;
        self.store
            .upsert_feedback(&FeedbackRecord {
                message_id: message_id.to_owned(),
                user_id: user.0.clone(),
                rating,
                comment,
                model: answer.model,
                variant: answer.variant,
                retrieval,
            })
            .await?;
        self.metrics.feedback(rating.as_str());
        tracing::info!(target: "feedback", message_id, rating = rating.as_str(), chunks = used.len(), "vote recorded");
        Ok(())
    }
}
