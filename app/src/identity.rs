//! Who is calling: the one place that resolves a request's caller, for the
//! server functions and for the server's own HTTP routes (uploads, exports)
//! alike. A valid API key's account comes first (the server's middleware
//! checks the key and puts the account in the request's extensions; such a
//! request never uses or creates a session), else the browser's session.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAccount(pub AccountView);

/// A request's caller: its session, the API key's account if it came with
/// one, and its address. An axum extractor, and [`Identity::current`] in a
/// server function.
pub struct Identity {
    pub session: Session,
    pub api_key: Option<AccountView>,
    pub ip: Option<IpAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Identity {
    type Rejection = <Session as axum::extract::FromRequestParts<S>>::Rejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            session: Session::from_request_parts(parts, state).await?,
            api_key: parts
                .extensions
                .get::<ApiKeyAccount>()
                .map(|key| key.0.clone()),
            ip: parts.extensions.get::<ClientIp>().map(|ip| ip.0),
        })
    }
}

impl Identity {
    /// The caller of the server function being run.
    pub async fn current() -> Result<Self, AppError> {
        leptos_axum::extract().await.map_err(|e| {
            leptos::logging::error!("session layer missing: {e:?}");
            AppError::Internal
        })
    }

    /// The account (or guest) behind this request, if it has one. Every
    /// call reads the user's row, so disabling an account takes effect at
    /// once.
    pub async fn account(
        &self,
        accounts: &dyn AccountService,
    ) -> Result<Option<AccountView>, AppError> {
        match &self.api_key {
            Some(account) => Ok(Some(account.clone())),
            None => session_account(&self.session, accounts).await,
        }
    }

    pub async fn user(&self, accounts: &dyn AccountService) -> Result<Option<UserId>, AppError> {
        Ok(self
            .account(accounts)
            .await?
            .map(|account| UserId(account.user_id)))
    }

    /// The caller, if the request has an account or guest (none is made).
    pub async fn caller(&self, accounts: &dyn AccountService) -> Result<Option<Caller>, AppError> {
        Ok(self.account(accounts).await?.map(|account| Caller {
            user: Some(UserId(account.user_id)),
            role: account.role,
            ip: self.ip,
            via_api_key: self.api_key.is_some(),
        }))
    }

    /// The account (not a guest) signed in in this browser. API keys are
    /// refused: a leaked key must not be able to make more keys (and so
    /// outlive its revocation) or revoke its owner's.
    pub async fn signed_in_browser(
        &self,
        accounts: &dyn AccountService,
    ) -> Result<UserId, AppError> {
        if self.api_key.is_some() {
            return Err(AppError::Forbidden(
                "API keys are managed from a signed-in browser, not with an API key.".into(),
            ));
        }
        match self.account(accounts).await? {
            Some(account) if account.username.is_some() => Ok(UserId(account.user_id)),
            _ => Err(AppError::Unauthorized("Sign in first.".into())),
        }
    }

    /// The admin making this request from a signed-in browser: 403 for
    /// anyone else, an admin's API key included (keys never manage accounts
    /// or read operator data), 401 without an account.
    pub async fn admin(&self, accounts: &dyn AccountService) -> Result<UserId, AppError> {
        match self.account(accounts).await? {
            Some(_) if self.api_key.is_some() => Err(AppError::Forbidden(
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

    /// The caller of a request that stores something (a chat turn, an
    /// upload), admitted by `admit`. A browser without an identity is
    /// admitted on its address's allowance first; only then, and if the
    /// address may make another guest, is a guest made and signed in.
    pub async fn storing_caller<T>(
        &self,
        services: &Services,
        admit: impl AsyncFnOnce(&Caller) -> Result<T, AppError>,
    ) -> Result<(Caller, T), AppError> {
        if let Some(account) = self.account(services.accounts.as_ref()).await? {
            let caller = Caller {
                user: Some(UserId(account.user_id)),
                role: account.role,
                ip: self.ip,
                via_api_key: self.api_key.is_some(),
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
            ip: self.ip,
            via_api_key: false,
        };
        let admitted = admit(&caller).await?;
        services.limits.admit_new_guest(self.ip).await?;
        let user = services.accounts.create_guest(self.ip).await?;
        sign_in(&self.session, &user).await?;
        caller.user = Some(user);
        Ok((caller, admitted))
    }
}

// For server functions: the caller of the one being run, resolved by
// [`Identity`].

pub async fn current_account() -> Result<Option<AccountView>, AppError> {
    Identity::current()
        .await?
        .account(services().accounts.as_ref())
        .await
}

pub async fn current_user() -> Result<Option<UserId>, AppError> {
    Identity::current()
        .await?
        .user(services().accounts.as_ref())
        .await
}

pub async fn current_caller() -> Result<Option<Caller>, AppError> {
    Identity::current()
        .await?
        .caller(services().accounts.as_ref())
        .await
}

/// The caller, who must have an account or guest: without one, nothing of
/// theirs exists (`NotFound`).
pub async fn require_caller() -> Result<Caller, AppError> {
    current_caller().await?.ok_or(AppError::NotFound)
}

pub async fn require_signed_in_browser() -> Result<UserId, AppError> {
    Identity::current()
        .await?
        .signed_in_browser(services().accounts.as_ref())
        .await
}

pub async fn require_admin() -> Result<UserId, AppError> {
    Identity::current()
        .await?
        .admin(services().accounts.as_ref())
        .await
}

pub async fn storing_caller<T>(
    admit: impl AsyncFnOnce(&Caller) -> Result<T, AppError>,
) -> Result<(Caller, T), AppError> {
    Identity::current()
        .await?
        .storing_caller(&services(), admit)
        .await
}

/// The services, from the server function's context.
pub fn services() -> Services {
    expect_context::<Services>()
}

/// The account of a browser's session. A disabled account's session ends.
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
