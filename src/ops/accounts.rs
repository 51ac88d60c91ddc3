//! Guests, accounts and roles: sign-up and log-in with argon2 password
//! hashes, the first account as admin, and the admin's user management.

use crate::ops::limits::{Decision, Quota, RateLimiter};
use crate::store::{AccountRow, SignUpRefused, Store};
use app::error::AppError;
use app::ports::{AccountService, KeyHolder, UserId};
use app::wire::{AccountView, ApiKeyView, NewApiKey, UserList, UserRole};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::net::IpAddr;
use std::sync::Arc;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_USERNAME_CHARS: usize = 32;

/// Log-in and sign-up attempts per address: enough for typos, too few to
/// guess passwords.
const AUTH_ATTEMPTS: Quota = Quota::per_minute(10, 10);

/// A username: 3–32 letters, digits, `.`, `_` or `-`, starting with a letter
/// or digit. Parsed once at the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if !(3..=MAX_USERNAME_CHARS).contains(&chars) {
            return Err(AppError::BadRequest(format!(
                "A username has 3 to {MAX_USERNAME_CHARS} characters."
            )));
        }
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !name.chars().all(allowed) || !name.starts_with(char::is_alphanumeric) {
            return Err(AppError::BadRequest(
                "A username may use letters, digits, '.', '_' and '-', and starts with a letter or digit."
                    .into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the rules (it is never logged or echoed).
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AppError::BadRequest(format!(
                "A password has at least {MIN_PASSWORD_CHARS} characters."
            )));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(AppError::BadRequest("That password is too long.".into()));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Hashes with argon2id and a random salt. CPU-heavy: call off the executor.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored PHC string. CPU-heavy.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn view(row: AccountRow) -> AccountView {
    AccountView {
        user_id: row.id,
        username: row.username,
        role: row.role,
    }
}

/// Who may become the first admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstAdmin {
    /// The first account to sign up (a server only this machine can reach).
    FirstSignUp,
    /// Only someone with a setup code the server printed at start-up (a
    /// server strangers can reach, where whoever comes first must not win).
    SetupCode,
}

pub struct AccountServiceImpl {
    store: Store,
    limiter: Arc<dyn RateLimiter>,
    allow_guests: bool,
    first_admin: FirstAdmin,
    /// Sign-ups one address may make per hour (0 = unlimited).
    new_accounts_per_hour: u32,
    /// Verified against when the username is unknown, so a wrong username
    /// takes as long as a wrong password.
    dummy_hash: String,
}

impl AccountServiceImpl {
    pub fn new(
        store: Store,
        limiter: Arc<dyn RateLimiter>,
        allow_guests: bool,
        first_admin: FirstAdmin,
        new_accounts_per_hour: u32,
    ) -> anyhow::Result<Self> {
        let dummy_hash = hash_password("not a real password")
            .map_err(|e| anyhow::anyhow!("argon2 does not work here: {e}"))?;
        Ok(Self {
            store,
            limiter,
            allow_guests,
            first_admin,
            new_accounts_per_hour,
            dummy_hash,
        })
    }

    /// With [`FirstAdmin::SetupCode`] and no admin yet: a new one-time
    /// setup code (kept as a hash; codes of other replicas stay valid) for
    /// the operator to sign up with. Printed once, never logged.
    pub async fn new_setup_code(&self) -> anyhow::Result<Option<String>> {
        if self.first_admin != FirstAdmin::SetupCode || self.store.has_admin().await? {
            return Ok(None);
        }
        use argon2::password_hash::rand_core::RngCore;
        let mut bytes = [0u8; 10];
        OsRng.fill_bytes(&mut bytes);
        let hex = crate::hex(&bytes);
        let code = format!(
            "{}-{}-{}-{}-{}",
            &hex[..4],
            &hex[4..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..]
        );
        self.store.add_setup_code(&setup_code_hash(&code)).await?;
        Ok(Some(code))
    }

    async fn throttle(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        let Some(ip) = ip else { return Ok(()) };
        match self
            .limiter
            .check(&format!("auth:ip:{ip}"), AUTH_ATTEMPTS)
            .await
        {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(AppError::RateLimited {
                message: "Too many sign-in attempts. Wait a moment and try again.".into(),
                retry_after_ms: retry_after.as_millis() as u64,
            }),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing task failed");
        AppError::Internal
    })
}

#[async_trait::async_trait]
impl AccountService for AccountServiceImpl {
    async fn create_guest(&self, ip: Option<IpAddr>) -> Result<UserId, AppError> {
        if !self.allow_guests {
            return Err(AppError::Unauthorized("Sign in to use this app.".into()));
        }
        let address = ip.map_or_else(
            || crate::ops::limits::UNKNOWN_ADDRESS.to_owned(),
            |ip| ip.to_string(),
        );
        Ok(UserId(self.store.create_guest(Some(&address)).await?))
    }

    async fn account(&self, user: &UserId) -> Result<Option<AccountView>, AppError> {
        match self.store.account(&user.0).await? {
            None => Ok(None),
            Some(row) if row.disabled => Err(AppError::Forbidden(
                "This account has been disabled. Ask an administrator.".into(),
            )),
            Some(row) if row.role == UserRole::Guest && !self.allow_guests => Ok(None),
            Some(row) => Ok(Some(view(row))),
        }
    }

    async fn sign_up(
        &self,
        guest: Option<&UserId>,
        username: &str,
        password: &str,
        setup_code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<AccountView, AppError> {
        let username = Username::parse(username)?;
        let password = NewPassword::parse(password)?;
        self.throttle(ip).await?;
        let address = ip.map_or_else(
            || crate::ops::limits::UNKNOWN_ADDRESS.to_owned(),
            |ip| ip.to_string(),
        );
        let quota = Quota::per_hour(self.new_accounts_per_hour, self.new_accounts_per_hour);
        if let Decision::Limited { retry_after } = self
            .limiter
            .check(&format!("signup:ip:{address}"), quota)
            .await
        {
            return Err(AppError::RateLimited {
                message: "Too many new accounts from your network. Try again later.".into(),
                retry_after_ms: (retry_after.as_millis() as u64).max(1),
            });
        }
        let may_be_first_admin = match (self.first_admin, setup_code) {
            (FirstAdmin::FirstSignUp, _) => true,
            (FirstAdmin::SetupCode, None) => false,
            (FirstAdmin::SetupCode, Some(code)) => {
                if !self.store.setup_code_valid(&setup_code_hash(code)).await? {
                    return Err(AppError::BadRequest(
                        "That setup code is not valid: use the one the server printed when it started, before any admin exists.".into(),
                    ));
                }
                true
            }
        };
        let hash = blocking(move || hash_password(&password.0))
            .await?
            .map_err(|e| {
                tracing::error!(error = %e, "hashing a password");
                AppError::Internal
            })?;
        let created = match self
            .store
            .sign_up(
                guest.map(|g| g.0.as_str()),
                username.as_str(),
                &hash,
                may_be_first_admin,
            )
            .await?
        {
            // The session's user already has an account: sign up a new one.
            Err(SignUpRefused::AlreadyRegistered) => {
                self.store
                    .sign_up(None, username.as_str(), &hash, may_be_first_admin)
                    .await?
            }
            other => other,
        };
        match created {
            Ok(row) => {
                tracing::info!(user_id = %row.id, role = row.role.as_str(), "account created");
                if row.role == UserRole::Admin && self.first_admin == FirstAdmin::SetupCode {
                    self.store.clear_setup_codes().await?;
                }
                Ok(view(row))
            }
            Err(SignUpRefused::UsernameTaken) => Err(AppError::Conflict(
                "That username is taken. Choose another.".into(),
            )),
            Err(SignUpRefused::AlreadyRegistered) => Err(AppError::Internal),
        }
    }

    async fn log_in(
        &self,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<AccountView, AppError> {
        self.throttle(ip).await?;
        let refused = || AppError::Unauthorized("Wrong username or password.".into());
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(refused());
        }
        let candidate = self.store.login_candidate(username.trim()).await?;
        let hash = candidate
            .as_ref()
            .map_or(self.dummy_hash.clone(), |(_, h)| h.clone());
        let password = password.to_owned();
        let matches = blocking(move || verify_password(&password, &hash)).await?;
        match candidate {
            Some((row, _)) if matches => {
                if row.disabled {
                    return Err(AppError::Forbidden(
                        "This account has been disabled. Ask an administrator.".into(),
                    ));
                }
                Ok(view(row))
            }
            _ => Err(refused()),
        }
    }

    fn guests_allowed(&self) -> bool {
        self.allow_guests
    }

    async fn setup_code_pending(&self) -> Result<bool, AppError> {
        Ok(self.first_admin == FirstAdmin::SetupCode && !self.store.has_admin().await?)
    }

    async fn list_users(&self) -> Result<UserList, AppError> {
        let (users, guests) = self
            .store
            .list_accounts(crate::ops::limits::utc_midnight_ms())
            .await?;
        Ok(UserList { users, guests })
    }

    async fn set_role(
        &self,
        admin: &UserId,
        user_id: &str,
        role: UserRole,
    ) -> Result<(), AppError> {
        if role == UserRole::Guest {
            return Err(AppError::BadRequest(
                "An account's role is user or admin.".into(),
            ));
        }
        if admin.0 == user_id {
            return Err(AppError::BadRequest(
                "You can't change your own role.".into(),
            ));
        }
        if !self.store.set_role(user_id, role).await? {
            return Err(AppError::NotFound);
        }
        tracing::info!(admin = %admin.0, user_id, role = role.as_str(), "role changed");
        Ok(())
    }

    async fn set_disabled(
        &self,
        admin: &UserId,
        user_id: &str,
        disabled: bool,
    ) -> Result<(), AppError> {
        if admin.0 == user_id {
            return Err(AppError::BadRequest(
                "You can't disable your own account.".into(),
            ));
        }
        if !self.store.set_disabled(user_id, disabled).await? {
            return Err(AppError::NotFound);
        }
        tracing::info!(admin = %admin.0, user_id, disabled, "account access changed");
        Ok(())
    }

    async fn api_key_account(&self, secret: &str) -> Result<KeyHolder, AppError> {
        let row = match parse_api_key(secret) {
            Some(hash) => self.store.account_for_api_key(&hash).await?,
            None => None,
        };
        match row {
            None => Err(AppError::Unauthorized(
                "That API key is not valid (it may have been revoked).".into(),
            )),
            Some((row, _, _)) if row.disabled => Err(AppError::Forbidden(
                "This account has been disabled. Ask an administrator.".into(),
            )),
            Some((row, key_id, key_name)) => Ok(KeyHolder {
                account: view(row),
                key_id,
                key_name,
            }),
        }
    }

    async fn list_api_keys(&self, user: &UserId) -> Result<Vec<ApiKeyView>, AppError> {
        Ok(self.store.api_keys(&user.0).await?)
    }

    async fn create_api_key(&self, user: &UserId, name: &str) -> Result<NewApiKey, AppError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_API_KEY_NAME_CHARS {
            return Err(AppError::BadRequest(format!(
                "Give the key a name of 1 to {MAX_API_KEY_NAME_CHARS} characters."
            )));
        }
        let is_account = self
            .store
            .account(&user.0)
            .await?
            .is_some_and(|row| row.username.is_some());
        if !is_account {
            return Err(AppError::Forbidden("Sign up to create API keys.".into()));
        }
        let secret = new_api_key_secret();
        let prefix: String = secret.chars().take(API_KEY_PREFIX_CHARS).collect();
        let key = self
            .store
            .create_api_key(&user.0, name, &prefix, &sha256_hex(&secret), MAX_API_KEYS)
            .await?
            .ok_or_else(|| {
                AppError::Conflict(format!(
                    "You have {MAX_API_KEYS} keys, the most allowed. Revoke one first."
                ))
            })?;
        tracing::info!(user_id = %user.0, key_id = %key.id, prefix = %key.prefix, "API key created");
        Ok(NewApiKey { key, secret })
    }

    async fn revoke_api_key(&self, user: &UserId, key_id: &str) -> Result<(), AppError> {
        if !self.store.revoke_api_key(&user.0, key_id).await? {
            return Err(AppError::NotFound);
        }
        tracing::info!(user_id = %user.0, key_id, "API key revoked");
        Ok(())
    }
}

const API_KEY_PREFIX: &str = "rck_";
/// `rck_` and the first 8 hex digits: enough to tell a user's keys apart,
/// far too little to guess the rest.
const API_KEY_PREFIX_CHARS: usize = 12;
const MAX_API_KEYS: u32 = 20;
const MAX_API_KEY_NAME_CHARS: usize = 64;

/// `rck_` and 256 random bits in hex.
fn new_api_key_secret() -> String {
    use argon2::password_hash::rand_core::RngCore;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{API_KEY_PREFIX}{}", crate::hex(&bytes))
}

/// The stored form of a well-formed key; `None` for anything else (which
/// then matches no key without a database lookup).
fn parse_api_key(secret: &str) -> Option<String> {
    let hex = secret.strip_prefix(API_KEY_PREFIX)?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha256_hex(secret))
}

/// Setup codes are compared by hash, ignoring case, spaces and dashes.
fn setup_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    sha256_hex(&normal)
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_random_and_only_their_hash_is_looked_up() {
        let a = new_api_key_secret();
        let b = new_api_key_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("rck_") && a.len() == 68, "{a}");
        let stored = parse_api_key(&a).unwrap();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&a[4..]));
        assert_eq!(
            parse_api_key(&a.to_uppercase().replacen("RCK_", "rck_", 1)).map(|h| h == stored),
            Some(false)
        );
        for bad in [
            "",
            "rck_",
            "rck_xyz",
            &a[..60],
            &format!("{a}0"),
            &a.replacen("rck_", "sk-_", 1),
        ] {
            assert_eq!(parse_api_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn usernames_are_checked_once() {
        assert_eq!(Username::parse("  ada.l ").unwrap().as_str(), "ada.l");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("_ada").is_err());
        assert!(Username::parse("ada lovelace").is_err());
        assert!(Username::parse("<script>").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("zoë-2").is_ok());
    }

    #[test]
    fn passwords_hash_and_verify_and_never_print() {
        assert!(NewPassword::parse("short").is_err());
        let password = NewPassword::parse("correct horse").unwrap();
        assert_eq!(format!("{password:?}"), "NewPassword(***)");
        let hash = hash_password(&password.0).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        // Salted: the same password hashes differently.
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }
}
