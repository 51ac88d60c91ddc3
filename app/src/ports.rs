//! What the server functions need from the server (implemented in the root
//! crate, handed to Leptos through context). Server-only.

use crate::error::AppError;
use crate::wire::{
    AccountView, ApiKeyView, ChatEvent, ClientLimits, CollectionList, CollectionView,
    ConversationSummary, ConversationView, Dashboard, DocumentView, MemberAccess, NewApiKey,
    QualityReport, Rating, SearchHit, ShareView, UserList, UserRole,
};
use futures::stream::BoxStream;
use std::sync::Arc;

/// An opaque user id, taken from the session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// Who is making a request: the user, their role, and where from (guests'
/// allowances are per address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` for a browser without an identity yet: a guest is made for it
    /// only once its address's allowance has admitted the request.
    pub user: Option<UserId>,
    pub role: UserRole,
    /// The client's address (IPv6 grouped by /64).
    pub ip: Option<std::net::IpAddr>,
    /// The request came with an API key (which acts as its account, but
    /// doesn't manage who may read what).
    pub via_api_key: bool,
}

/// An API key's account, and which key it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub account: AccountView,
    pub key_id: String,
    /// The name its owner gave it (for the dashboard's traffic by key).
    pub key_name: String,
}

/// Guests, accounts and roles.
#[async_trait::async_trait]
pub trait AccountService: Send + Sync + 'static {
    /// A new guest (no account), for a browser without a session, made
    /// from `ip` (whose allowance it shares).
    async fn create_guest(&self, ip: Option<std::net::IpAddr>) -> Result<UserId, AppError>;
    /// The user behind a session, if it still exists. A disabled account is
    /// `Forbidden`.
    async fn account(&self, user: &UserId) -> Result<Option<AccountView>, AppError>;
    /// Creates an account, from the session's guest if there is one (keeping
    /// its chats and documents). The first account becomes admin; on a
    /// public deployment only with the setup code the server printed.
    async fn sign_up(
        &self,
        guest: Option<&UserId>,
        username: &str,
        password: &str,
        setup_code: Option<&str>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<AccountView, AppError>;
    /// Whether the first admin is still to be made with a setup code.
    async fn setup_code_pending(&self) -> Result<bool, AppError>;
    /// Checks a username and password. Wrong either way is one `Unauthorized`.
    async fn log_in(
        &self,
        username: &str,
        password: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<AccountView, AppError>;
    /// Whether people without an account may chat.
    fn guests_allowed(&self) -> bool;
    // Admin operations; the caller has been checked to be an admin.
    async fn list_users(&self) -> Result<UserList, AppError>;
    async fn set_role(&self, admin: &UserId, user_id: &str, role: UserRole)
        -> Result<(), AppError>;
    async fn set_disabled(
        &self,
        admin: &UserId,
        user_id: &str,
        disabled: bool,
    ) -> Result<(), AppError>;
    /// The account behind an API key (`Authorization: Bearer …`), read on
    /// every request: an unknown or revoked key is `Unauthorized`, a
    /// disabled account's key `Forbidden`.
    async fn api_key_account(&self, secret: &str) -> Result<KeyHolder, AppError>;
    async fn list_api_keys(&self, user: &UserId) -> Result<Vec<ApiKeyView>, AppError>;
    /// Makes a key for an account (guests get `Forbidden`); its secret is
    /// returned this once.
    async fn create_api_key(&self, user: &UserId, name: &str) -> Result<NewApiKey, AppError>;
    /// Revokes one of the user's keys; anyone else's is `NotFound`.
    async fn revoke_api_key(&self, user: &UserId, key_id: &str) -> Result<(), AppError>;
}

/// How a chat request was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Admission {
    #[default]
    Full,
    /// The user's daily token budget is spent: the answer comes from this
    /// cheaper model (a name under `[llm.models]`) until the budget renews.
    OverBudget { model: String },
}

/// Per-user request rates and token budgets.
#[async_trait::async_trait]
pub trait UsageLimits: Send + Sync + 'static {
    /// Admits one chat request, or refuses it with `RateLimited` (and when to
    /// retry).
    async fn admit_chat(&self, caller: &Caller) -> Result<Admission, AppError>;
    /// Admits one more stored file of `bytes` (daily uploads, documents
    /// kept): `RateLimited` until midnight UTC, or `TooLarge` when storage
    /// is full.
    async fn admit_upload(&self, caller: &Caller, bytes: u64) -> Result<(), AppError>;
    /// Admits making one more guest for a browser at `ip`.
    async fn admit_new_guest(&self, ip: Option<std::net::IpAddr>) -> Result<(), AppError>;
}

/// Votes on answers, kept with what the answer was made from.
#[async_trait::async_trait]
pub trait FeedbackService: Send + Sync + 'static {
    /// Records (or changes, or with `None` withdraws) the user's vote on one
    /// of their answers. Someone else's message is `NotFound`.
    async fn rate(
        &self,
        user: &UserId,
        message_id: &str,
        rating: Option<Rating>,
        comment: Option<String>,
    ) -> Result<(), AppError>;
}

/// The admin dashboard's figures (the caller has been checked to be an admin).
#[async_trait::async_trait]
pub trait DashboardService: Send + Sync + 'static {
    /// Figures for `[since, until)` (ms since the epoch).
    async fn dashboard(&self, since: i64, until: i64) -> Result<Dashboard, AppError>;
    /// Knowledge gaps and weak sources in `[since, until)`.
    async fn quality(&self, since: i64, until: i64) -> Result<QualityReport, AppError>;
}

/// What a turn does.
#[derive(Debug, Clone)]
pub enum TurnRequest {
    /// A question after the branch shown (or after `after`, the last
    /// message the asking tab shows); no `conversation_id` starts a new
    /// conversation.
    Ask {
        conversation_id: Option<String>,
        after: Option<String>,
        text: String,
        /// For a new conversation: the collections it searches (`None`:
        /// every one the user may read).
        scope: Option<Vec<String>>,
    },
    /// Another version of one of the user's answers.
    Regenerate { message_id: String },
    /// A new version of one of the user's questions, answered afresh.
    Edit { message_id: String, text: String },
}

impl TurnRequest {
    /// The text the user typed, if the turn has one.
    pub fn text(&self) -> Option<&str> {
        match self {
            TurnRequest::Ask { text, .. } | TurnRequest::Edit { text, .. } => Some(text),
            TurnRequest::Regenerate { .. } => None,
        }
    }
}

/// Which model answers an API turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiModel {
    /// Retrieval over what the caller may read, then the chat model (with
    /// the caller's experiments, like the browser).
    Grounded,
    /// The chat model of this id (see [`ChatService::api_models`]), without
    /// retrieval.
    Plain(String),
}

/// A chat completion asked through the OpenAI-compatible API: the request
/// carries the whole conversation, so nothing of it is read from storage.
#[derive(Debug, Clone)]
pub struct ApiTurn {
    pub model: ApiModel,
    /// The request's system (and developer) messages, joined.
    pub instructions: Option<String>,
    /// The turns before the question, oldest first.
    pub history: Vec<(crate::wire::Role, String)>,
    /// The last user message.
    pub question: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Text that ends the answer where it appears (not included).
    pub stop: Vec<String>,
    /// The key it was asked with, and that key's name.
    pub key_id: String,
    pub key_name: String,
}

/// A request to start a turn and stream the answer.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub turn: TurnRequest,
    pub admission: Admission,
}

#[async_trait::async_trait]
pub trait ChatService: Send + Sync + 'static {
    async fn list_conversations(&self, user: &UserId)
        -> Result<Vec<ConversationSummary>, AppError>;
    async fn conversation(&self, user: &UserId, id: &str) -> Result<ConversationView, AppError>;
    async fn delete_conversation(&self, user: &UserId, id: &str) -> Result<(), AppError>;
    /// Refuses a message that can't be sent (empty, too long).
    fn check_message(&self, text: &str) -> Result<(), AppError>;
    /// Refuses a regenerate or an edit of a message that isn't the user's
    /// answer or question (`NotFound`), before anything is counted.
    async fn check_turn(&self, user: &UserId, turn: &TurnRequest) -> Result<(), AppError>;
    /// Validates and stores the user message, then streams the answer. Errors
    /// returned here happen before anything is stored; errors after that arrive
    /// as `ChatEvent::Error` in the stream.
    async fn send(
        &self,
        user: &UserId,
        request: SendMessage,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError>;
    /// Streams one of the user's answers: what it has so far, then live
    /// until it ends (whichever replica generates it). A finished answer
    /// streams whole at once.
    async fn follow(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError>;
    /// Stops generation of an answer the user owns, on whichever replica
    /// generates it. Unknown ids give `NotFound`.
    async fn stop(&self, user: &UserId, message_id: &str) -> Result<(), AppError>;
    /// Shows the branch through one of the user's messages (a version of
    /// an answer or a question); returns the conversation as it now shows.
    async fn switch_branch(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<ConversationView, AppError>;
    /// Chooses which collections one of the user's conversations searches
    /// (each must be readable by them; `None`: all they may read).
    async fn set_scope(
        &self,
        user: &UserId,
        conversation_id: &str,
        scope: Option<Vec<String>>,
    ) -> Result<(), AppError>;
    fn limits(&self) -> ClientLimits;
    /// The ids of the chat models an API request may name without
    /// retrieval (the default model's first).
    fn api_models(&self) -> Vec<String>;
    /// Answers an API turn (the caller was admitted by the limits): the
    /// same events as [`ChatService::send`], stored as a turn of its own
    /// that the browser's conversation list leaves out.
    async fn complete(
        &self,
        user: &UserId,
        turn: ApiTurn,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError>;
}

/// The conversation list's tools: search, rename, pin, export, and
/// read-only links. Another user's conversation is `NotFound`.
#[async_trait::async_trait]
pub trait HistoryService: Send + Sync + 'static {
    /// Conversations whose title or messages hold every word of `query`.
    async fn search(&self, user: &UserId, query: &str) -> Result<Vec<SearchHit>, AppError>;
    async fn rename(&self, user: &UserId, id: &str, title: &str) -> Result<(), AppError>;
    async fn pin(&self, user: &UserId, id: &str, pinned: bool) -> Result<(), AppError>;
    /// The branch shown, as Markdown with each cited passage a footnote:
    /// (file name, text).
    async fn export_markdown(&self, user: &UserId, id: &str) -> Result<(String, String), AppError>;
    /// A read-only link to the conversation as it is now.
    async fn share(&self, user: &UserId, id: &str) -> Result<ShareView, AppError>;
    async fn list_shares(&self, user: &UserId) -> Result<Vec<ShareView>, AppError>;
    async fn revoke_share(&self, user: &UserId, share_id: &str) -> Result<(), AppError>;
    /// What a live link shows (no user: anyone with the link).
    async fn shared(&self, share_id: &str) -> Result<ConversationView, AppError>;
}

/// Where an upload goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadTarget {
    /// A collection the caller may write to; `None`: their private one.
    pub collection: Option<String>,
    /// A new version of this document (by any of its versions' ids); by
    /// default a file with the name of one of the collection's documents
    /// is a new version of it.
    pub replaces: Option<String>,
}

/// Documents in collections: upload, list, status, versions, delete. Every
/// call checks the caller's access to the document's collection at that
/// moment; a document the caller can't read is `NotFound`, one they can
/// read but not change `Forbidden`.
#[async_trait::async_trait]
pub trait DocumentService: Send + Sync + 'static {
    /// Accepts one file for ingestion (which continues in the background), or
    /// refuses it with a reason. Identical content already current in the
    /// collection is recognised and not indexed twice.
    /// Returns the document and whether it is an earlier upload of the same bytes.
    /// The file counts against the caller's upload quotas.
    async fn upload(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<(DocumentView, bool), AppError>;
    /// The current documents the caller can read, of one collection or all.
    async fn list(
        &self,
        caller: &Caller,
        collection: Option<&str>,
    ) -> Result<Vec<DocumentView>, AppError>;
    async fn get(&self, caller: &Caller, id: &str) -> Result<DocumentView, AppError>;
    /// Every version of the document, newest first.
    async fn versions(&self, caller: &Caller, id: &str) -> Result<Vec<DocumentView>, AppError>;
    /// Removes the document (every version) and its vectors, stopping its
    /// ingestion if running. Needs write access.
    async fn delete(&self, caller: &Caller, id: &str) -> Result<(), AppError>;
}

/// Collections and who may read or change them. One the caller can't read
/// is `NotFound`; one they can read but not manage is `Forbidden`.
#[async_trait::async_trait]
pub trait CollectionService: Send + Sync + 'static {
    async fn list(&self, caller: &Caller) -> Result<CollectionList, AppError>;
    /// A shared collection; admins, and accounts the admin allows.
    async fn create(
        &self,
        caller: &Caller,
        name: &str,
        everyone: Option<MemberAccess>,
    ) -> Result<CollectionView, AppError>;
    /// With its members if the caller manages it.
    async fn get(&self, caller: &Caller, id: &str) -> Result<CollectionView, AppError>;
    async fn update(
        &self,
        caller: &Caller,
        id: &str,
        name: Option<&str>,
        everyone: Option<Option<MemberAccess>>,
    ) -> Result<CollectionView, AppError>;
    /// Deletes a shared collection and its documents.
    async fn delete(&self, caller: &Caller, id: &str) -> Result<(), AppError>;
    /// Grants (or changes) an account's access. Not with an API key unless
    /// the key is an admin's.
    async fn set_member(
        &self,
        caller: &Caller,
        id: &str,
        username: &str,
        access: MemberAccess,
    ) -> Result<CollectionView, AppError>;
    async fn remove_member(
        &self,
        caller: &Caller,
        id: &str,
        username: &str,
    ) -> Result<CollectionView, AppError>;
    /// Rebuilds the collection's documents (all, or those made by another
    /// embedder or chunker) in the background, each swapped in when ready.
    /// Admins only. Returns how many builds were queued.
    async fn reindex(&self, caller: &Caller, id: &str, all: bool) -> Result<u32, AppError>;
    /// Lets an account make shared collections (admins only).
    async fn allow_sharing(
        &self,
        caller: &Caller,
        user_id: &str,
        allowed: bool,
    ) -> Result<(), AppError>;
}

/// The services the app takes from context.
#[derive(Clone)]
pub struct Services {
    pub accounts: Arc<dyn AccountService>,
    pub limits: Arc<dyn UsageLimits>,
    pub chat: Arc<dyn ChatService>,
    pub history: Arc<dyn HistoryService>,
    pub feedback: Arc<dyn FeedbackService>,
    pub dashboard: Arc<dyn DashboardService>,
    pub documents: Arc<dyn DocumentService>,
    pub collections: Arc<dyn CollectionService>,
}
