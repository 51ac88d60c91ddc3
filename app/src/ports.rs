//! What the server functions need from the server (implemented in the root
//! crate, handed to Leptos through context). Server-only.

use crate::error::AppError;
use crate::wire::{ChatEvent, ClientLimits, ConversationSummary, ConversationView};
use futures::stream::BoxStream;
use std::sync::Arc;

/// An opaque user id, taken from the session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// A request to add a user message to a conversation and stream the answer.
#[derive(Debug, Clone)]
pub struct SendMessage {
    /// `None` starts a new conversation.
    pub conversation_id: Option<String>,
    pub text: String,
}

#[async_trait::async_trait]
pub trait ChatService: Send + Sync + 'static {
    async fn create_user(&self) -> Result<UserId, AppError>;
    async fn user_exists(&self, user: &UserId) -> Result<bool, AppError>;
    async fn list_conversations(&self, user: &UserId)
        -> Result<Vec<ConversationSummary>, AppError>;
    async fn conversation(&self, user: &UserId, id: &str) -> Result<ConversationView, AppError>;
    async fn delete_conversation(&self, user: &UserId, id: &str) -> Result<(), AppError>;
    /// Validates and stores the user message, then streams the answer. Errors
    /// returned here happen before anything is stored; errors after that arrive
    /// as `ChatEvent::Error` in the stream.
    async fn send(
        &self,
        user: &UserId,
        request: SendMessage,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError>;
    /// Stops generation of an answer the user owns. Unknown ids give `NotFound`.
    async fn stop(&self, user: &UserId, message_id: &str) -> Result<(), AppError>;
    fn limits(&self) -> ClientLimits;
}

/// The services the app takes from context.
#[derive(Clone)]
pub struct Services {
    pub chat: Arc<dyn ChatService>,
}
