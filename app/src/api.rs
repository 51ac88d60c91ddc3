//! Thin server functions: take the user from the session, call one service.

use crate::error::AppError;
use crate::wire::{
    AccountView, ApiKeyView, ClientLimits, ConversationSummary, ConversationView, Dashboard,
    DocumentView, NewApiKey, Rating, SessionView, UserList, UserRole,
};
use leptos::prelude::*;
use server_fn::codec::{ByteStream, Json, Streaming};

#[cfg(feature = "ssr")]
pub mod identity {
    use crate::error::AppError;
    use crate::ports::{AccountService, Caller, Services, UserId};
    use crate::wire::{AccountView, UserRole};
    use leptos::prelude::*;
    use std::net::IpAddr;
    use tower_sessions::Session;

    const USER_KEY: &str = "user_id";

    /// The client's address, put into the request's extensions by the server
    /// (from the connection, or a trusted proxy header).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ClientIp(pub IpAddr);

    /// The account of a request that came with a valid API key
    /// (`Authorization: Bearer …`), put into its extensions by the server.
    /// Such a request never uses (or creates) a session.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ApiKeyAccount(pub AccountView);

    pub fn services() -> Services {
        expect_context::<Services>()
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract().await.map_err(|e| {
            leptos::logging::error!("session layer missing: {e}");
            AppError::Internal
        })
    }

    pub fn client_ip() -> Option<IpAddr> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ClientIp>().map(|ip| ip.0))
    }

    /// The API key's account, if the request came with one.
    pub fn api_key_account() -> Option<AccountView> {
        use_context::<http::request::Parts>().and_then(|parts| {
            parts
                .extensions
                .get::<ApiKeyAccount>()
                .map(|key| key.0.clone())
        })
    }

    /// The account (or guest) of this browser or API key, if it has one.
    pub async fn current_account() -> Result<Option<AccountView>, AppError> {
        if let Some(account) = api_key_account() {
            return Ok(Some(account));
        }
        session_account(&session().await?, services().accounts.as_ref()).await
    }

    /// The account (not a guest) signed in in this browser. API keys are
    /// refused: a leaked key must not be able to make more keys (and so
    /// outlive its revocation) or revoke its owner's.
    pub async fn require_signed_in_browser() -> Result<UserId, AppError> {
        if api_key_account().is_some() {
            return Err(AppError::Forbidden(
                "API keys are managed from a signed-in browser, not with an API key.".into(),
            ));
        }
        match current_account().await? {
            Some(account) if account.username.is_some() => Ok(UserId(account.user_id)),
            _ => Err(AppError::Unauthorized("Sign in first.".into())),
        }
    }

    pub async fn current_user() -> Result<Option<UserId>, AppError> {
        Ok(current_account()
            .await?
            .map(|account| UserId(account.user_id)))
    }

    /// The caller of a request that stores something (a chat turn, an
    /// upload), admitted by `admit`. A browser without an identity is
    /// admitted on its address's allowance first; only then, and if the
    /// address may make another guest, is a guest made and signed in.
    pub async fn storing_caller<T>(
        admit: impl AsyncFnOnce(&Caller) -> Result<T, AppError>,
    ) -> Result<(Caller, T), AppError> {
        storing_caller_with(
            &session().await?,
            api_key_account(),
            &services(),
            client_ip(),
            admit,
        )
        .await
    }

    /// [`storing_caller`] for handlers outside Leptos.
    pub async fn storing_caller_with<T>(
        session: &Session,
        api_key: Option<AccountView>,
        services: &Services,
        ip: Option<IpAddr>,
        admit: impl AsyncFnOnce(&Caller) -> Result<T, AppError>,
    ) -> Result<(Caller, T), AppError> {
        let account = match api_key {
            Some(account) => Some(account),
            None => session_account(session, services.accounts.as_ref()).await?,
        };
        if let Some(account) = account {
            let caller = Caller {
                user: Some(UserId(account.user_id)),
                role: account.role,
                ip,
            };
            let admitted = admit(&caller).await?;
            return Ok((caller, admitted));
        }
        if !services.accounts.guests_allowed() {
            return Err(AppError::Unauthorized("Sign in to use this app.".into()));
        }
        let mut caller = Caller {
            user: None,
            role: UserRole::Guest,
            ip,
        };
        let admitted = admit(&caller).await?;
        services.limits.admit_new_guest(ip).await?;
        let user = services.accounts.create_guest(ip).await?;
        sign_in(session, &user).await?;
        caller.user = Some(user);
        Ok((caller, admitted))
    }

    /// The admin making this request from a signed-in browser; anyone else
    /// is refused, and so is an admin's API key (keys never manage accounts
    /// or read operator data).
    pub async fn require_admin() -> Result<UserId, AppError> {
        admin_only(api_key_account().is_some(), current_account().await?)
    }

    /// The account if it is an admin's, not acting through an API key: 403
    /// for others, 401 without one.
    pub fn admin_only(
        with_api_key: bool,
        account: Option<AccountView>,
    ) -> Result<UserId, AppError> {
        match account {
            Some(_) if with_api_key => Err(AppError::Forbidden(
                "Administration needs a signed-in browser; API keys can't do it.".into(),
            )),
            Some(account) if account.role == UserRole::Admin => Ok(UserId(account.user_id)),
            Some(_) => Err(AppError::Forbidden(
                "Only administrators can do this.".into(),
            )),
            None => Err(AppError::Unauthorized(
                "Sign in as an administrator.".into(),
            )),
        }
    }

    /// The account of a browser's session, for handlers outside Leptos that
    /// extract the session themselves. Every request reads the user's row,
    /// so disabling an account takes effect at once.
    pub async fn session_account(
        session: &Session,
        accounts: &dyn AccountService,
    ) -> Result<Option<AccountView>, AppError> {
        let stored = session.get::<String>(USER_KEY).await.map_err(|e| {
            leptos::logging::error!("reading session: {e}");
            AppError::Internal
        })?;
        let Some(id) = stored else {
            return Ok(None);
        };
        match accounts.account(&UserId(id)).await {
            Ok(account) => Ok(account),
            Err(refused @ AppError::Forbidden(_)) => {
                // A disabled account's session ends now.
                let _ = session.flush().await;
                Err(refused)
            }
            Err(e) => Err(e),
        }
    }

    /// Binds the session to `user`, under a new session id (so an id fixed
    /// before signing in can't be reused).
    pub async fn sign_in(session: &Session, user: &UserId) -> Result<(), AppError> {
        session.cycle_id().await.map_err(|_| AppError::Internal)?;
        session.insert(USER_KEY, &user.0).await.map_err(|e| {
            leptos::logging::error!("writing session: {e}");
            AppError::Internal
        })
    }
}

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
    let session = identity::session().await?;
    let services = identity::services();
    let guest = identity::session_account(&session, services.accounts.as_ref())
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
            identity::client_ip(),
        )
        .await?;
    identity::sign_in(&session, &crate::ports::UserId(account.user_id.clone())).await?;
    Ok(account)
}

#[server(prefix = "/api", endpoint = "log_in")]
pub async fn log_in(username: String, password: String) -> Result<AccountView, AppError> {
    let account = identity::services()
        .accounts
        .log_in(&username, &password, identity::client_ip())
        .await?;
    let session = identity::session().await?;
    identity::sign_in(&session, &crate::ports::UserId(account.user_id.clone())).await?;
    Ok(account)
}

#[server(prefix = "/api", endpoint = "log_out")]
pub async fn log_out() -> Result<(), AppError> {
    identity::session().await?.flush().await.map_err(|e| {
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

    // The session cookie must be written before the streamed response head
    // goes out; a message that would be refused anyway makes no guest.
    let services = identity::services();
    services.chat.check_message(&text)?;
    let (caller, admission) =
        identity::storing_caller(async |caller| services.limits.admit_chat(caller).await).await?;
    let user = caller.user.ok_or(AppError::Internal)?;
    let events = services
        .chat
        .send(
            &user,
            SendMessage {
                conversation_id,
                text,
                admission,
            },
        )
        .await?;
    Ok(ByteStream::new(
        events.map(|event| Ok::<_, AppError>(encode_line(&event))),
    ))
}

#[server(prefix = "/api", endpoint = "stop")]
pub async fn stop_generation(message_id: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().chat.stop(&user, &message_id).await
}

/// The user's documents, newest first.
#[server(prefix = "/api", endpoint = "document_list")]
pub async fn list_documents() -> Result<Vec<DocumentView>, AppError> {
    match identity::current_user().await? {
        Some(user) => identity::services().documents.list(&user).await,
        None => Ok(Vec::new()),
    }
}

#[server(prefix = "/api", endpoint = "document_delete")]
pub async fn delete_document(id: String) -> Result<(), AppError> {
    let user = identity::current_user().await?.ok_or(AppError::NotFound)?;
    identity::services().documents.delete(&user, &id).await
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
    let hours = i64::from(hours.clamp(1, 24 * 90));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    identity::services()
        .dashboard
        .dashboard(until - hours * 3_600_000, until + 1)
        .await
}
