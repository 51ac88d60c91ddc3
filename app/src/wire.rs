//! Types that cross the wire between the server and the browser.

mod quality;
mod traffic;

pub use quality::{GapReasons, KnowledgeGap, QualityReport, SourceAnswer, WeakSource};
use serde::{Deserialize, Serialize};
pub use traffic::{SourceTraffic, TrafficSource};

/// One line of the chat stream (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The turn is accepted and stored; generation is about to start.
    Start {
        conversation_id: String,
        user_message_id: String,
        message_id: String,
        model: String,
        title: String,
    },
    /// Something the reader should know about this answer (e.g. that it comes
    /// from a smaller model because today's token budget is spent).
    Notice { message: String },
    /// The model is busy with other chats; this one waits at `position`.
    Queued { position: usize },
    /// The passages retrieved for this question, numbered as the model sees them.
    Sources {
        sources: Vec<Source>,
        /// The standalone query a follow-up was rewritten into and searched
        /// as (absent for first questions, which are searched as asked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        searched_for: Option<String>,
    },
    /// The model that is answering (sent before its first token): a fallback
    /// when the primary kept failing, and how many attempts failed first.
    Model {
        model: String,
        retries: u32,
        fallback: bool,
        /// The answer comes from the response cache, whole.
        #[serde(default)]
        cached: bool,
    },
    /// A piece of the answer.
    Token { text: String },
    /// Which sources the finished answer cites, and the supporting passages.
    Citations { sources: Vec<Source> },
    /// The answer is complete.
    Done {
        usage: Usage,
        ttft_ms: u64,
        total_ms: u64,
        finish_reason: FinishReason,
    },
    /// Generation failed; what was generated so far is kept and marked incomplete.
    Error { message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The user pressed Stop (or went away).
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Complete,
    Streaming,
    /// Generation failed part-way; `error` says why.
    Incomplete,
    /// The user stopped generation.
    Stopped,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Streaming => "streaming",
            Self::Incomplete => "incomplete",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "complete" => Self::Complete,
            "streaming" => Self::Streaming,
            "incomplete" => Self::Incomplete,
            "stopped" => Self::Stopped,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    pub updated_at_ms: i64,
    /// Pinned conversations are listed first.
    #[serde(default)]
    pub pinned: bool,
}

/// Where a message stands among its versions: the answers to one question
/// (regenerated), or the edits of one question. Only set when there are
/// two or more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// 1-based position of this version, oldest first.
    pub position: usize,
    pub count: usize,
    /// The version before and after this one, to switch to.
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// A conversation that matches a search: its title, or one of its messages
/// with the matching words marked by [`MATCH_START`] and [`MATCH_END`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub conversation_id: String,
    pub title: String,
    pub snippet: String,
    pub updated_at_ms: i64,
}

/// Marks in a [`SearchHit`] snippet around a matched word (private-use
/// characters, so they can't come from the text, and the client renders
/// the pieces as text, never as HTML).
pub const MATCH_START: char = '\u{E000}';
pub const MATCH_END: char = '\u{E001}';

/// Longest search, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Words of a search beyond this many are ignored.
pub const MAX_SEARCH_TERMS: usize = 8;

/// The words of a search: letters and digits, lower-cased, each once.
pub fn search_terms(query: &str) -> Result<Vec<String>, crate::error::AppError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(crate::error::AppError::BadRequest(
            "Type something to search for.".into(),
        ));
    }
    if query.chars().count() > MAX_SEARCH_CHARS {
        return Err(crate::error::AppError::BadRequest(format!(
            "A search can be at most {MAX_SEARCH_CHARS} characters."
        )));
    }
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if !word.is_empty() && !terms.contains(&word) && terms.len() < MAX_SEARCH_TERMS {
            terms.push(word);
        }
    }
    if terms.is_empty() {
        return Err(crate::error::AppError::BadRequest(
            "Search for words or numbers; punctuation alone matches nothing.".into(),
        ));
    }
    Ok(terms)
}

/// A read-only link to a conversation as it was when shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareView {
    pub id: String,
    pub conversation_id: String,
    pub title: String,
    pub created_at_ms: i64,
}

impl ShareView {
    /// Where the shared page is, on this server.
    pub fn path(&self) -> String {
        format!("/s/{}", self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub model: Option<String>,
    pub completion_tokens: Option<u32>,
    pub ttft_ms: Option<u64>,
    pub total_ms: Option<u64>,
    /// The sources the answer was grounded in (empty without documents).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// The viewer's vote on this answer.
    #[serde(default)]
    pub rating: Option<Rating>,
    /// A note about how the answer was made (the stream's `notice` event).
    #[serde(default)]
    pub notice: Option<String>,
    /// What a follow-up question was searched as (its standalone rewrite).
    #[serde(default)]
    pub searched_for: Option<String>,
    /// The other versions of this answer (regenerated) or question (edited).
    #[serde(default)]
    pub versions: Option<Versions>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    pub messages: Vec<MessageView>,
    /// The collections this conversation searches; `None`: every one the
    /// user may read.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
}

/// What a caller may do with a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionAccess {
    /// Retrieval and citations.
    Read,
    /// Also upload, replace and delete documents.
    Write,
    /// Also rename, delete, and grant access (its owner; admins for shared ones).
    Manage,
}

/// Access a member (or every signed-in account) is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberAccess {
    Read,
    Write,
}

impl MemberAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberAccess::Read => "read",
            MemberAccess::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(MemberAccess::Read),
            "write" => Some(MemberAccess::Write),
            _ => None,
        }
    }
}

/// A collection of documents the caller can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    /// The caller's own collection (every account has one).
    pub private: bool,
    /// Access every signed-in account has, if any.
    pub everyone: Option<MemberAccess>,
    pub access: CollectionAccess,
    /// Username of its owner (`None` for a guest's).
    pub owner: Option<String>,
    /// Documents in it (current versions).
    pub documents: u64,
    /// Its members, for those who manage it.
    #[serde(default)]
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub username: String,
    pub access: MemberAccess,
}

/// The collections a caller can read, and whether they may make more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionList {
    pub collections: Vec<CollectionView>,
    pub can_create: bool,
}

/// Limits the UI needs to know to validate before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLimits {
    pub max_message_chars: usize,
    pub max_upload_bytes: u64,
}

/// A passage retrieved from one of the user's documents and given to the
/// model as numbered source `n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The number the model cites it by: `[n]`.
    pub n: u32,
    pub document_id: String,
    pub document_name: String,
    /// The name of the collection it came from.
    #[serde(default)]
    pub collection: Option<String>,
    /// 1-based PDF page.
    pub page: Option<u32>,
    /// The headings above the passage, outermost first, joined with " › ".
    pub heading: Option<String>,
    pub chunk_index: u32,
    pub text: String,
    pub score: f32,
    /// The answer cites it.
    pub cited: bool,
    /// Where in `text` the answer's support lies (character offsets).
    pub highlights: Vec<TextSpan>,
}

impl Source {
    /// "report.pdf, p. 3" or "guide.md › Setup".
    pub fn location(&self) -> String {
        match (&self.page, &self.heading) {
            (Some(page), _) => format!("{}, p. {page}", self.document_name),
            (None, Some(heading)) if !heading.is_empty() => {
                format!("{} › {heading}", self.document_name)
            }
            _ => self.document_name.clone(),
        }
    }
}

/// A half-open range of characters (Unicode scalar values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSpan {
    pub start: u32,
    pub end: u32,
}

/// Where a document is in ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Queued,
    Parsing,
    Chunking,
    Embedding,
    Indexed,
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Parsing => "parsing",
            Self::Chunking => "chunking",
            Self::Embedding => "embedding",
            Self::Indexed => "indexed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "parsing" => Self::Parsing,
            "chunking" => Self::Chunking,
            "embedding" => Self::Embedding,
            "indexed" => Self::Indexed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Still being worked on.
    pub fn is_pending(self) -> bool {
        !matches!(self, Self::Indexed | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentView {
    pub id: String,
    pub name: String,
    /// The detected format: "pdf", "md", "txt", "html", "docx", "csv".
    pub kind: String,
    pub size_bytes: u64,
    pub status: DocumentStatus,
    /// Why ingestion failed, in plain words.
    pub error: Option<String>,
    pub pages: Option<u32>,
    pub chunks: Option<u32>,
    pub chunks_embedded: u32,
    pub created_at_ms: i64,
    /// While queued: its place in the ingestion queue (1 = next).
    #[serde(default)]
    pub queue_position: Option<u32>,
    /// The collection it is in.
    #[serde(default)]
    pub collection_id: String,
    #[serde(default)]
    pub collection_name: String,
    /// The document across its versions (the first version's id).
    #[serde(default)]
    pub lineage_id: String,
    /// 1 for the first upload, then one more per file uploaded under the same
    /// name into the same collection.
    #[serde(default)]
    pub version: u32,
    /// An older version, replaced by a newer one (kept for the votes and
    /// events that used it; no longer answers).
    #[serde(default)]
    pub superseded: bool,
    /// What made its vectors: embedding model, and chunking settings.
    #[serde(default)]
    pub embedder: Option<String>,
    #[serde(default)]
    pub chunker: Option<String>,
    /// Whether the caller may replace or delete it.
    #[serde(default)]
    pub can_write: bool,
}

impl DocumentView {
    /// "Queued · 3rd in line" while it waits.
    pub fn queue_text(&self) -> String {
        match self.queue_position {
            Some(1) => "Queued · next in line".into(),
            Some(n) => {
                let suffix = match (n % 10, n % 100) {
                    (1, 11..=13) | (2, 11..=13) | (3, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                format!("Queued · {n}{suffix} in line")
            }
            None => "Queued".into(),
        }
    }

    /// Progress through the stages, 0.0–1.0, for a progress bar.
    pub fn progress(&self) -> f64 {
        match self.status {
            DocumentStatus::Queued => 0.05,
            DocumentStatus::Parsing => 0.1,
            DocumentStatus::Chunking => 0.2,
            DocumentStatus::Embedding => {
                let total = f64::from(self.chunks.unwrap_or(0).max(1));
                0.25 + 0.75 * (f64::from(self.chunks_embedded) / total).min(1.0)
            }
            DocumentStatus::Indexed | DocumentStatus::Failed => 1.0,
        }
    }
}

/// What happened to one uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadOutcome {
    pub file_name: String,
    /// The accepted (or already present) document.
    pub document: Option<DocumentView>,
    /// The same content was uploaded before; `document` is that upload.
    pub duplicate: bool,
    /// Why the file was refused.
    pub error: Option<String>,
}

/// What a user may do. Guests are users without an account (no username).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Guest,
    User,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "guest" => Some(Self::Guest),
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The signed-in user (or guest) as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub user_id: String,
    /// `None` for a guest.
    pub username: Option<String>,
    pub role: UserRole,
}

/// Who may use the app, for the page to decide what to offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// `None`: nobody yet (a guest is created on first use, if allowed).
    pub account: Option<AccountView>,
    pub guests_allowed: bool,
    /// No admin yet on a public deployment: the first one signs up with the
    /// setup code printed in the server log.
    #[serde(default)]
    pub setup_code_pending: bool,
}

/// One account in the admin's user list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub role: UserRole,
    pub disabled: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub conversations: u64,
    pub documents: u64,
    /// Prompt + completion tokens since 00:00 UTC.
    pub tokens_today: u64,
    /// An administrator allowed the account to make shared collections.
    #[serde(default)]
    pub can_share: bool,
}

/// An API key as its owner sees it (the secret is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The start of the secret, to tell keys apart.
    pub prefix: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// To the minute.
    pub last_used_at: Option<i64>,
}

/// A key just made: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub key: ApiKeyView,
    pub secret: String,
}

/// The admin's user list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<UserSummary>,
    /// Guests (users without an account) are counted, not listed.
    pub guests: u64,
}

/// A thumbs-up or thumbs-down on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    /// +1 or -1, as stored.
    pub fn score(self) -> i64 {
        match self {
            Self::Up => 1,
            Self::Down => -1,
        }
    }

    pub fn from_score(score: i64) -> Option<Self> {
        match score {
            1 => Some(Self::Up),
            -1 => Some(Self::Down),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A rate with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateCi {
    pub successes: u64,
    pub trials: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

/// Latency percentiles (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Everything measured for one model (or one experiment variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    pub name: String,
    pub turns: u64,
    pub ttft: Percentiles,
    pub total: Percentiles,
    pub errors: u64,
    pub up_rate: Option<RateCi>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Estimated from the configured prices (USD).
    pub cost: f64,
}

/// One stage of a chat turn (follow-up rewrite, query embedding, search, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    /// `rewrite`, `embed`, `retrieve`, `prompt_build`, `queue`, `upstream_ttft`, `ttft`.
    pub stage: String,
    /// Turns that ran this stage.
    pub turns: u64,
    pub latency: Percentiles,
}

/// One time bucket of one model's latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Bucket start, ms since the epoch.
    pub start: i64,
    pub model: String,
    pub turns: u64,
    pub ttft_p50: Option<f64>,
    pub ttft_p90: Option<f64>,
    pub total_p50: Option<f64>,
}

/// Tokens and cost of one user or model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub name: String,
    pub turns: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
}

/// An answer people voted down, with what it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownvotedAnswer {
    pub message_id: String,
    pub model: Option<String>,
    pub question: String,
    pub answer: String,
    pub down: u64,
    pub up: u64,
    pub comments: Vec<String>,
    pub sources: Vec<Source>,
}

/// One variant of an experiment, compared with the first (the control).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantComparison {
    pub name: String,
    /// Users assigned so far (all time).
    pub users: u64,
    pub turns: u64,
    pub up_rate: Option<RateCi>,
    /// Two-sided p-value of the thumbs-up rate against the control's.
    pub p_value: Option<f64>,
    pub ttft_p50: Option<f64>,
    pub ttft_p90: Option<f64>,
    /// Estimated cost per answer (USD).
    pub cost_per_answer: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentView {
    pub name: String,
    pub variants: Vec<VariantComparison>,
}

/// The admin dashboard for one time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub since: i64,
    pub until: i64,
    /// Width of one series bucket (ms).
    pub bucket_ms: i64,
    pub turns: u64,
    pub error_rate: Option<RateCi>,
    pub cache_hit_rate: Option<RateCi>,
    /// Turns that regenerated an answer (the one before fell short).
    #[serde(default)]
    pub regenerate_rate: Option<RateCi>,
    pub up_rate: Option<RateCi>,
    pub by_model: Vec<GroupStats>,
    pub by_variant: Vec<GroupStats>,
    /// Where a turn's time goes, stage by stage (turns that ran the stage).
    #[serde(default)]
    pub stages: Vec<StageLatency>,
    pub series: Vec<SeriesPoint>,
    pub by_user: Vec<UsageRow>,
    /// The browser first, then each API key by turns, most first; empty
    /// when the range has no turns.
    #[serde(default)]
    pub by_source: Vec<SourceTraffic>,
    pub downvoted: Vec<DownvotedAnswer>,
    pub experiments: Vec<ExperimentView>,
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn searches_are_words() {
        assert_eq!(
            search_terms("  Sourdough, STARTER! sourdough ").unwrap(),
            ["sourdough", "starter"]
        );
        assert!(search_terms("   ").is_err());
        assert!(search_terms("\"*)(").is_err());
        assert!(search_terms(&"x".repeat(201)).is_err());
        assert_eq!(
            search_terms("a b c d e f g h i j").unwrap().len(),
            MAX_SEARCH_TERMS
        );
    }
}
