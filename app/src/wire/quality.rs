//! What the dashboard's quality loop sends: the knowledge gaps (questions
//! the documents didn't answer) and the weak sources (document versions and
//! passages behind down-voted answers) of a time range.

use super::RateCi;
use serde::{Deserialize, Serialize};

/// How many questions of a knowledge-gap group had each sign that the
/// documents didn't answer them (a question may have several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapReasons {
    /// The search found no passage, or only ones below the threshold.
    pub low_score: u64,
    /// The answer said the documents don't cover it.
    pub not_covered: u64,
    /// The answer was voted down.
    pub down_voted: u64,
}

/// Similar questions the documents didn't answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeGap {
    /// The group's most recent question, standing for the others.
    pub question: String,
    /// A few other wordings in the group.
    pub also_asked: Vec<String>,
    /// Questions (turns) in the group.
    pub count: u64,
    /// How many different people asked them (a count, never who).
    pub people: u64,
    pub reasons: GapReasons,
    /// The best passage's similarity over the group, when any was found.
    pub best_score: Option<f64>,
    /// The latest question's time (ms since the epoch).
    pub last_seen: i64,
}

/// A voted answer that used a source, as the weak-sources list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceAnswer {
    pub question: String,
    /// The answer's beginning.
    pub answer: String,
    pub up: u64,
    pub down: u64,
    /// The latest vote on it (ms since the epoch).
    pub voted_at: i64,
}

/// A document version or one of its passages, with the votes of the
/// answers that used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeakSource {
    /// The document row (one build of one version): the link's target.
    pub document_id: String,
    pub document_name: String,
    /// `None` when the document has since been deleted.
    pub version: Option<u32>,
    pub collection: Option<String>,
    /// The passage (`None` in the list of documents).
    pub chunk_index: Option<u32>,
    /// The passage's beginning (passages only).
    pub passage: Option<String>,
    pub up: u64,
    pub down: u64,
    /// Down-votes over votes, with its 95% Wilson interval: ranked by `low`.
    pub down_rate: RateCi,
    /// Thumbs-up over votes, with its 95% Wilson interval.
    pub up_rate: RateCi,
    /// The latest few voted answers that used it.
    pub answers: Vec<SourceAnswer>,
}

/// The operators' quality loop for one time range: questions the documents
/// didn't answer, and the sources of the answers people voted down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub since: i64,
    pub until: i64,
    /// A searched question whose best passage scored below this is a gap.
    pub low_score: f64,
    /// Questions this similar (cosine) to a group's first are grouped.
    pub similar_questions: f64,
    /// Gap questions read (the latest ones, up to a cap).
    pub gap_questions: u64,
    /// More gap questions than the cap were in the range.
    pub capped: bool,
    /// Grouped by meaning (embeddings); `false` when the embedder failed
    /// and only identical wordings were grouped.
    pub grouped_by_meaning: bool,
    pub gaps: Vec<KnowledgeGap>,
    /// Document versions, weakest first.
    pub documents: Vec<WeakSource>,
    /// Passages, weakest first.
    pub passages: Vec<WeakSource>,
}
