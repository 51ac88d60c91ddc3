//! Thin server functions: take the user from the session, call one service.

use crate::error::AppError;
use crate::wire::{ClientLimits, ConversationSummary, ConversationView, DocumentView};
use leptos::prelude::*;
use server_fn::codec::{ByteStream, Json, Streaming};

#[cfg(feature = "ssr")]
pub mod identity {
    use crate::error::AppError;
    use crate::ports::{ChatService, Services, UserId};
    use leptos::prelude::*;
    use tower_sessions::Session;

    const USER_KEY: &str = "user_id";

    pub fn services() -> Services {
        expect_context::<Services>()
    }

    /// The user of this browser, if it has one. With `create`, a browser
    /// without an identity gets a new user and a session cookie.
    pub async fn current_user(create: bool) -> Result<Option<UserId>, AppError> {
        let session: Session = leptos_axum::extract().await.map_err(|e| {
            leptos::logging::error!("session layer missing: {e}");
            AppError::Internal
        })?;
        session_user(&session, services().chat.as_ref(), create).await
    }

    /// [`current_user`] for handlers outside Leptos that extract the session themselves.
    pub async fn session_user(
        session: &Session,
        chat: &dyn ChatService,
        create: bool,
    ) -> Result<Option<UserId>, AppError> {
        let stored = session.get::<String>(USER_KEY).await.map_err(|e| {
            leptos::logging::error!("reading session: {e}");
            AppError::Internal
        })?;
        if let Some(id) = stored {
            let user = UserId(id);
            if chat.user_exists(&user).await? {
                return Ok(Some(user));
            }
        }
        if !create {
            return Ok(None);
        }
        let user = chat.create_user().await?;
        // Cycle the id so a session fixed before sign-in can't be reused.
        session.cycle_id().await.map_err(|_| AppError::Internal)?;
        session.insert(USER_KEY, &user.0).await.map_err(|e| {
            leptos::logging::error!("writing session: {e}");
            AppError::Internal
        })?;
        Ok(Some(user))
    }
}

#[server(prefix = "/api", endpoint = "conversations")]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, AppError> {
    match identity::current_user(false).await? {
        Some(user) => identity::services().chat.list_conversations(&user).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "conversation")]
pub async fn get_conversation(id: String) -> Result<ConversationView, AppError> {
    let user = identity::current_user(false)
        .await?
        .ok_or(AppError::NotFound)?;
    identity::services().chat.conversation(&user, &id).await
}

#[server(prefix = "/api", endpoint = "delete_conversation")]
pub async fn delete_conversation(id: String) -> Result<(), AppError> {
    let user = identity::current_user(false)
        .await?
        .ok_or(AppError::NotFound)?;
    identity::services()
        .chat
        .delete_conversation(&user, &id)
        .await
}

#[server(prefix = "/api", endpoint = "limits")]
pub async fn get_limits() -> Result<ClientLimits, AppError> {
    Ok(identity::services().chat.limits())
}

/// Sends a message and streams the answer as newline-delimited JSON
/// [`ChatEvent`](crate::wire::ChatEvent)s.
#[server(prefix = "/api", endpoint = "chat", input = Json, output = Streaming)]
pub async fn send_message(
    conversation_id: Option<String>,
    text: String,
) -> Result<ByteStream<AppError>, AppError> {
    use crate::ndjson::encode_line;
    use crate::ports::SendMessage;
    use futures::StreamExt;

    // The session cookie must be written before the streamed response head goes out.
    let user = identity::current_user(true)
        .await?
        .ok_or(AppError::Internal)?;
    let events = identity::services()
        .chat
        .send(
            &user,
            SendMessage {
                conversation_id,
                text,
            },
        )
        .await?;
    Ok(ByteStream::new(
        events.map(|event| Ok::<_, AppError>(encode_line(&event))),
    ))
}

#[server(prefix = "/api", endpoint = "stop")]
pub async fn stop_generation(message_id: String) -> Result<(), AppError> {
    let user = identity::current_user(false)
        .await?
        .ok_or(AppError::NotFound)?;
    identity::services().chat.stop(&user, &message_id).await
}

/// The user's documents, newest first.
#[server(prefix = "/api", endpoint = "document_list")]
pub async fn list_documents() -> Result<Vec<DocumentView>, AppError> {
    match identity::current_user(false).await? {
        Some(user) => identity::services().documents.list(&user).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "document_delete")]
pub async fn delete_document(id: String) -> Result<(), AppError> {
    let user = identity::current_user(false)
        .await?
        .ok_or(AppError::NotFound)?;
    identity::services().documents.delete(&user, &id).await
}
