//! Thin server functions: take the user from the session, call one service.

use crate::error::AppError;
use crate::wire::{
    AccountView, ApiKeyView, ClientLimits, CollectionList, CollectionView, ConversationSummary,
    ConversationView, Dashboard, DocumentView, MemberAccess, NewApiKey, QualityReport, Rating,
    SearchHit, SessionView, ShareView, UserList, UserRole,
};
use leptos::prelude::*;
use server_fn::codec::{ByteStream, Json, Streaming};

#[cfg(feature = "ssr")]
use crate::identity;

/// Who this browser is signed in as, and whether guests may chat.
#[server(prefix = "/api", endpoint = "session")]
pub async fn get_session() -> Result<SessionView, AppError> {
    Ok(SessionView {
        account: identity::current_account().await?,
        guests_allowed: identity::services().accounts.guests_allowed(),
        setup_code_pending: identity::services().accounts.setup_code_pending().await?,
    })
}

/// Creates an account and signs in. A guest's chats and documents move into it.
#[server(prefix = "/api", endpoint = "sign_up")]
pub async fn sign_up(
    username: String,
    password: String,
    setup_code: Option<String>,
) -> Result<AccountView, AppError> {
    let caller = identity::Identity::current().await?;
    let services = identity::services();
    let guest = identity::session_account(&caller.session, services.accounts.as_ref())
        .await
        .ok()
        .flatten()
        .filter(|account| account.username.is_none())
        .map(|account| crate::ports::UserId(account.user_id));
    let account = services
        .accounts
        .sign_up(
            guest.as_ref(),
            &username,
            &password,
            setup_code
                .as_deref()
                .map(str::trim)
                .filter(|code| !code.is_empty()),
            caller.ip,
        )
        .await?;
    identity::sign_in(
        &caller.session,
        &crate::ports::UserId(account.user_id.clone()),
    )
    .await?;
    Ok(account)
}

#[server(prefix = "/api", endpoint = "log_in")]
pub async fn log_in(username: String, password: String) -> Result<AccountView, AppError> {
    let caller = identity::Identity::current().await?;
    let account = identity::services()
        .accounts
        .log_in(&username, &password, caller.ip)
        .await?;
    identity::sign_in(
        &caller.session,
        &crate::ports::UserId(account.user_id.clone()),
    )
    .await?;
    Ok(account)
}

#[server(prefix = "/api", endpoint = "log_out")]
pub async fn log_out() -> Result<(), AppError> {
    let caller = identity::Identity::current().await?;
    caller.session.flush().await.map_err(|e| {
        leptos::logging::error!("ending a session: {e}");
        AppError::Internal
    })
}

/// The account's API keys (without their secrets).
#[server(prefix = "/api", endpoint = "keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, AppError> {
    let user = identity::require_signed_in_browser().await?;
    identity::services().accounts.list_api_keys(&user).await
}

/// Makes an API key; the answer holds its secret, shown this once.
#[server(prefix = "/api", endpoint = "keys/create")]
pub async fn create_api_key(name: String) -> Result<NewApiKey, AppError> {
    let user = identity::require_signed_in_browser().await?;
    identity::services()
        .accounts
        .create_api_key(&user, &name)
        .await
}

#[server(prefix = "/api", endpoint = "keys/revoke")]
pub async fn revoke_api_key(id: String) -> Result<(), AppError> {
    let user = identity::require_signed_in_browser().await?;
    identity::services()
        .accounts
        .revoke_api_key(&user, &id)
        .await
}

/// Admin: every account, with activity.
#[server(prefix = "/api", endpoint = "admin/users")]
pub async fn list_users() -> Result<UserList, AppError> {
    identity::require_admin().await?;
    identity::services().accounts.list_users().await
}

#[server(prefix = "/api", endpoint = "admin/set_role")]
pub async fn set_user_role(user_id: String, role: UserRole) -> Result<(), AppError> {
    let admin = identity::require_admin().await?;
    identity::services()
        .accounts
        .set_role(&admin, &user_id, role)
        .await
}

#[server(prefix = "/api", endpoint = "admin/set_disabled")]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<(), AppError> {
    let admin = identity::require_admin().await?;
    identity::services()
        .accounts
        .set_disabled(&admin, &user_id, disabled)
        .await
}

#[server(prefix = "/api", endpoint = "conversations")]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, AppError> {
    match identity::current_user().await? {
        Some(user) => identity::services().chat.list_conversations(&user).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "conversation")]
pub async fn get_conversation(id: String) -> Result<ConversationView, AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().chat.conversation(&user, &id).await
}

#[server(prefix = "/api", endpoint = "delete_conversation")]
pub async fn delete_conversation(id: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services()
        .chat
        .delete_conversation(&user, &id)
        .await
}

#[server(prefix = "/api", endpoint = "limits")]
pub async fn get_limits() -> Result<ClientLimits, AppError> {
    Ok(identity::services().chat.limits())
}

/// Starts a turn and streams the answer as newline-delimited JSON
/// [`ChatEvent`](crate::wire::ChatEvent)s.
#[cfg(feature = "ssr")]
async fn stream_turn(turn: crate::ports::TurnRequest) -> Result<ByteStream<AppError>, AppError> {
    use crate::ports::SendMessage;

    // The session cookie must be written before the streamed response head
    // goes out; a message that would be refused anyway makes no guest.
    let services = identity::services();
    if let Some(text) = turn.text() {
        services.chat.check_message(text)?;
    }
    if !matches!(turn, crate::ports::TurnRequest::Ask { .. }) {
        // Regenerating or editing needs a message of one's own: a browser
        // without a session has none, and gets no guest for asking.
        let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
        services.chat.check_turn(&user, &turn).await?;
    }
    let (caller, admission) =
        identity::storing_caller(async |caller| services.limits.admit_chat(caller).await).await?;
    let user = caller.user.ok_or(AppError::Internal)?;
    if let crate::ports::TurnRequest::Ask { scope: Some(_), .. } = &turn {
        services.chat.check_turn(&user, &turn).await?;
    }
    let events = services
        .chat
        .send(&user, SendMessage { turn, admission })
        .await?;
    Ok(ndjson_stream(events))
}

#[cfg(feature = "ssr")]
fn ndjson_stream(
    events: futures::stream::BoxStream<'static, crate::wire::ChatEvent>,
) -> ByteStream<AppError> {
    use crate::ndjson::encode_line;
    use futures::StreamExt;
    ByteStream::new(events.map(|event| Ok::<_, AppError>(encode_line(&event))))
}

/// Sends a message (a new conversation without `conversation_id`) and
/// streams the answer. `after`: the last message the sending tab shows
/// (the question follows it); without it, the branch the conversation shows.
#[server(prefix = "/api", endpoint = "chat", input = Json, output = Streaming)]
pub async fn send_message(
    conversation_id: Option<String>,
    text: String,
    #[server(default)] after: Option<String>,
    #[server(default)] scope: Option<Vec<String>>,
) -> Result<ByteStream<AppError>, AppError> {
    stream_turn(crate::ports::TurnRequest::Ask {
        conversation_id,
        after,
        text,
        scope,
    })
    .await
}

/// Streams another version of one of the user's answers.
#[server(prefix = "/api", endpoint = "regenerate", input = Json, output = Streaming)]
pub async fn regenerate(message_id: String) -> Result<ByteStream<AppError>, AppError> {
    stream_turn(crate::ports::TurnRequest::Regenerate { message_id }).await
}

/// Sends a new version of one of the user's questions (a new branch from
/// there) and streams its answer.
#[server(prefix = "/api", endpoint = "edit", input = Json, output = Streaming)]
pub async fn edit_message(
    message_id: String,
    text: String,
) -> Result<ByteStream<AppError>, AppError> {
    stream_turn(crate::ports::TurnRequest::Edit { message_id, text }).await
}

/// Streams one of the user's answers: what it has so far, then live until
/// it ends (after a reload, or from another tab).
#[server(prefix = "/api", endpoint = "follow", input = Json, output = Streaming)]
pub async fn follow_answer(message_id: String) -> Result<ByteStream<AppError>, AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    let events = identity::services().chat.follow(&user, &message_id).await?;
    Ok(ndjson_stream(events))
}

#[server(prefix = "/api", endpoint = "stop")]
pub async fn stop_generation(message_id: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().chat.stop(&user, &message_id).await
}

/// Shows the branch through one of the user's messages (another version of
/// an answer or a question); returns the conversation as it now shows.
#[server(prefix = "/api", endpoint = "switch_branch")]
pub async fn switch_branch(message_id: String) -> Result<ConversationView, AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services()
        .chat
        .switch_branch(&user, &message_id)
        .await
}

/// The user's conversations whose title or messages hold every word of `query`.
#[server(prefix = "/api", endpoint = "search")]
pub async fn search_conversations(query: String) -> Result<Vec<SearchHit>, AppError> {
    match identity::current_user().await? {
        Some(user) => identity::services().history.search(&user, &query).await,
        // No chats to search, but bad input is refused alike.
        None => crate::wire::search_terms(&query).map(|_| Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "rename_conversation")]
pub async fn rename_conversation(id: String, title: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services()
        .history
        .rename(&user, &id, &title)
        .await
}

#[server(prefix = "/api", endpoint = "pin_conversation")]
pub async fn pin_conversation(id: String, pinned: bool) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().history.pin(&user, &id, pinned).await
}

/// Makes a read-only link to the conversation as it is now.
#[server(prefix = "/api", endpoint = "share")]
pub async fn share_conversation(id: String) -> Result<ShareView, AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().history.share(&user, &id).await
}

/// The user's live shared links, newest first.
#[server(prefix = "/api", endpoint = "shares")]
pub async fn list_shares() -> Result<Vec<ShareView>, AppError> {
    match identity::current_user().await? {
        Some(user) => identity::services().history.list_shares(&user).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "shares/revoke")]
pub async fn revoke_share(id: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().history.revoke_share(&user, &id).await
}

/// The documents the user can read (their own and shared ones), newest first.
#[server(prefix = "/api", endpoint = "document_list")]
pub async fn list_documents() -> Result<Vec<DocumentView>, AppError> {
    match identity::current_caller().await? {
        Some(caller) => identity::services().documents.list(&caller, None).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "document_delete")]
pub async fn delete_document(id: String) -> Result<(), AppError> {
    let caller = identity::require_caller().await?;
    identity::services().documents.delete(&caller, &id).await
}

/// Every version of a document, newest first.
#[server(prefix = "/api", endpoint = "document_versions")]
pub async fn document_versions(id: String) -> Result<Vec<DocumentView>, AppError> {
    let caller = identity::require_caller().await?;
    identity::services().documents.versions(&caller, &id).await
}

/// The collections the user can read.
#[server(prefix = "/api", endpoint = "collection_list")]
pub async fn list_collections() -> Result<CollectionList, AppError> {
    match identity::current_caller().await? {
        Some(caller) => identity::services().collections.list(&caller).await,
        None => Ok(CollectionList {
            collections: Vec::new(),
            can_create: false,
        }),
    }
}

#[server(prefix = "/api", endpoint = "collection_create")]
pub async fn create_collection(
    name: String,
    everyone: Option<MemberAccess>,
) -> Result<CollectionView, AppError> {
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .create(&caller, &name, everyone)
        .await
}

/// Who every signed-in account may be for a collection (`None`: nobody).
#[server(prefix = "/api", endpoint = "collection_everyone")]
pub async fn set_collection_everyone(
    id: String,
    everyone: Option<MemberAccess>,
) -> Result<CollectionView, AppError> {
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .update(&caller, &id, None, Some(everyone))
        .await
}

#[server(prefix = "/api", endpoint = "collection_delete")]
pub async fn delete_collection(id: String) -> Result<(), AppError> {
    let caller = identity::require_caller().await?;
    identity::services().collections.delete(&caller, &id).await
}

#[server(prefix = "/api", endpoint = "collection_member_set")]
pub async fn set_collection_member(
    id: String,
    username: String,
    access: MemberAccess,
) -> Result<CollectionView, AppError> {
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .set_member(&caller, &id, &username, access)
        .await
}

#[server(prefix = "/api", endpoint = "collection_member_remove")]
pub async fn remove_collection_member(
    id: String,
    username: String,
) -> Result<CollectionView, AppError> {
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .remove_member(&caller, &id, &username)
        .await
}

/// Rebuilds a collection's documents with the current embedder and chunker.
#[server(prefix = "/api", endpoint = "collection_reindex")]
pub async fn reindex_collection(id: String, all: bool) -> Result<u32, AppError> {
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .reindex(&caller, &id, all)
        .await
}

/// Lets an account make shared collections (admins).
#[server(prefix = "/api", endpoint = "allow_sharing")]
pub async fn allow_sharing(user_id: String, allowed: bool) -> Result<(), AppError> {
    identity::require_admin().await?;
    let caller = identity::require_caller().await?;
    identity::services()
        .collections
        .allow_sharing(&caller, &user_id, allowed)
        .await
}

/// Chooses which collections a conversation searches (`None`: all).
#[server(prefix = "/api", endpoint = "conversation_scope", input = Json)]
pub async fn set_conversation_scope(
    conversation_id: String,
    scope: Option<Vec<String>>,
) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services()
        .chat
        .set_scope(&user, &conversation_id, scope)
        .await
}

/// Thumbs up/down (with an optional comment) on one of the user's answers;
/// `rating` absent withdraws the vote.
#[server(prefix = "/api", endpoint = "rate")]
pub async fn rate_answer(
    message_id: String,
    rating: Option<Rating>,
    comment: Option<String>,
) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services()
        .feedback
        .rate(&user, &message_id, rating, comment)
        .await
}

/// Admin: the dashboard for the last `hours` hours (1 to 90 days).
#[server(prefix = "/api", endpoint = "admin/dashboard")]
pub async fn get_dashboard(hours: u32) -> Result<Dashboard, AppError> {
    identity::require_admin().await?;
    let (since, until) = last_hours(hours);
    identity::services().dashboard.dashboard(since, until).await
}

/// Admin: knowledge gaps and weak sources over the last `hours` hours (the
/// dashboard's range).
#[server(prefix = "/api", endpoint = "admin/quality")]
pub async fn get_quality(hours: u32) -> Result<QualityReport, AppError> {
    identity::require_admin().await?;
    let (since, until) = last_hours(hours);
    identity::services().dashboard.quality(since, until).await
}

/// `[since, until)` in ms for the last `hours` hours (1 to 90 days), now included.
#[cfg(feature = "ssr")]
fn last_hours(hours: u32) -> (i64, i64) {
    let hours = i64::from(hours.clamp(1, 24 * 90));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    (until - hours * 3_600_000, until + 1)
}
