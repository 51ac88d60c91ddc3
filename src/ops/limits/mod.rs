//! Per-user request rate limits (GCRA) and daily token budgets.
//!
//! The rate limiter is the generic cell rate algorithm: each key has a
//! theoretical arrival time (TAT); a request at `now` is allowed when
//! `TAT - now <= tolerance`, and then moves the TAT on by one emission
//! interval. This gives a burst of `burst` requests, refilled at
//! `per_minute`, and an exact time at which the next request is allowed,
//! which becomes `Retry-After`. The state is one instant per key: in this
//! process ([`LocalRateLimiter`]) or, for many app replicas, in Redis
//! ([`redis::RedisRateLimiter`]), behind the same [`RateLimiter`] trait.

pub mod address;
pub mod redis;

pub use crate::config::{LimitSettings, RoleLimits};
use crate::ops::metrics::Metrics;
use crate::store::{Store, UsageOwner};
use app::error::AppError;
use app::ports::{Admission, Caller, UsageLimits};
use app::wire::UserRole;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How fast one key may make requests: one every `interval` on average,
/// with up to `burst` at once after a quiet period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time between requests at the sustained rate (zero = unlimited).
    pub interval: Duration,
    /// Requests allowed at once after a quiet period (at least 1).
    pub burst: u32,
}

impl Quota {
    /// `count` requests a minute (0 = unlimited), `burst` at once.
    pub const fn per_minute(count: u32, burst: u32) -> Self {
        Self::per(count, 60, burst)
    }

    /// `count` requests an hour (0 = unlimited), `burst` at once.
    pub const fn per_hour(count: u32, burst: u32) -> Self {
        Self::per(count, 3600, burst)
    }

    const fn per(count: u32, seconds: u64, burst: u32) -> Self {
        let interval = if count == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(seconds * 1_000_000_000 / count as u64)
        };
        Self { interval, burst }
    }

    pub fn is_unlimited(self) -> bool {
        self.interval.is_zero()
    }

    fn emission_interval(self) -> Duration {
        self.interval
    }

    fn tolerance(self) -> Duration {
        self.interval * self.burst.max(1).saturating_sub(1)
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Not now; a request after this long will be allowed.
    Limited {
        retry_after: Duration,
    },
}

/// One GCRA step: the decision and the key's new TAT (unchanged if limited).
pub fn gcra(tat: Option<Instant>, now: Instant, quota: Quota) -> (Decision, Option<Instant>) {
    if quota.is_unlimited() {
        return (Decision::Allowed, tat);
    }
    let interval = quota.emission_interval();
    let tolerance = quota.tolerance();
    let tat = tat.map_or(now, |t| t.max(now));
    let earliest = tat.checked_sub(tolerance).unwrap_or(now);
    if earliest > now {
        return (
            Decision::Limited {
                retry_after: earliest - now,
            },
            Some(tat),
        );
    }
    (Decision::Allowed, Some(tat + interval))
}

/// Rate limiting state, in this process or shared between replicas.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn check(&self, key: &str, quota: Quota) -> Decision;
}

/// The limiter for a single app process.
#[derive(Default)]
pub struct LocalRateLimiter {
    state: Mutex<HashMap<String, Instant>>,
}

impl LocalRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`RateLimiter::check`] at a given instant (tests step time by hand).
    pub fn check_at(&self, key: &str, quota: Quota, now: Instant) -> Decision {
        let mut state = self.state.lock();
        // Keys whose TAT has passed hold no information: drop them now and
        // then so the map stays the size of the recently active keys.
        if state.len() > 10_000 {
            state.retain(|_, tat| *tat > now);
        }
        let (decision, tat) = gcra(state.get(key).copied(), now, quota);
        if let Some(tat) = tat {
            state.insert(key.to_owned(), tat);
        }
        decision
    }
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Decision {
        self.check_at(key, quota, Instant::now())
    }
}

const DAY_MS: i64 = 86_400_000;
const MIB: u64 = 1024 * 1024;

/// Milliseconds since the epoch at the start of today (UTC).
pub fn utc_midnight_ms() -> i64 {
    let now = crate::store::now_ms();
    now - now.rem_euclid(DAY_MS)
}

/// Milliseconds until the next 00:00 UTC (at least a second).
pub fn until_midnight_ms() -> u64 {
    (utc_midnight_ms() + DAY_MS - crate::store::now_ms()).max(1000) as u64
}

/// Whose allowance a request draws on: an account's own, or for guests
/// their address's (shared by every guest made from it).
pub fn usage_owner(caller: &Caller) -> UsageOwner {
    let guest = caller.user.as_ref().map(|user| user.0.clone());
    match (caller.role, caller.ip, guest) {
        (UserRole::Guest, Some(ip), guest) => UsageOwner::GuestAddress {
            address: ip.to_string(),
            guest,
        },
        (_, _, Some(user)) => UsageOwner::User(user),
        // No account and no address: all such requests share one allowance.
        (_, _, None) => UsageOwner::GuestAddress {
            address: UNKNOWN_ADDRESS.into(),
            guest: None,
        },
    }
}

/// What stands for the address of a request that came without one.
pub const UNKNOWN_ADDRESS: &str = "unknown";

fn rate_key(owner: &UsageOwner, what: &str) -> String {
    match owner {
        UsageOwner::User(user) => format!("{what}:user:{user}"),
        UsageOwner::GuestAddress { address, .. } => format!("{what}:ip:{address}"),
    }
}

/// Chat request rates and token budgets per role, and upload quotas.
pub struct Allowances {
    limiter: Arc<dyn RateLimiter>,
    store: Store,
    settings: LimitSettings,
    metrics: Arc<Metrics>,
}

impl Allowances {
    pub fn new(
        limiter: Arc<dyn RateLimiter>,
        store: Store,
        settings: LimitSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            limiter,
            store,
            settings,
            metrics,
        }
    }

    async fn tokens_today(&self, owner: &UsageOwner) -> Result<u64, AppError> {
        Ok(self.store.tokens_used_by(owner, utc_midnight_ms()).await?)
    }
}

fn quota_refusal(message: String, retry_after_ms: u64) -> AppError {
    AppError::RateLimited {
        message,
        retry_after_ms,
    }
}

#[async_trait::async_trait]
impl UsageLimits for Allowances {
    async fn admit_chat(&self, caller: &Caller) -> Result<Admission, AppError> {
        let limits = self.settings.for_role(caller.role);
        let owner = usage_owner(caller);
        let key = rate_key(&owner, "chat");
        let mut admission = Admission::Full;
        if limits.tokens_per_day > 0 {
            let used = self.tokens_today(&owner).await?;
            if let (true, Some(model)) = (
                used >= limits.tokens_per_day,
                &self.settings.over_budget_model,
            ) {
                tracing::info!(%key, used, budget = limits.tokens_per_day, model, "token budget spent; answering with the cheaper model");
                admission = Admission::OverBudget {
                    model: model.clone(),
                };
            } else if used >= limits.tokens_per_day {
                tracing::info!(%key, used, budget = limits.tokens_per_day, "token budget exhausted");
                self.metrics.rate_limited("budget");
                return Err(quota_refusal(
                    format!(
                        "You have used today's budget of {} tokens. It renews at 00:00 UTC.",
                        limits.tokens_per_day
                    ),
                    until_midnight_ms(),
                ));
            }
        }
        let quota = Quota::per_minute(limits.requests_per_minute, limits.burst);
        match self.limiter.check(&key, quota).await {
            Decision::Allowed => {
                if matches!(admission, Admission::OverBudget { .. }) {
                    self.metrics.rate_limited("budget_degraded");
                }
                Ok(admission)
            }
            Decision::Limited { retry_after } => {
                self.metrics.rate_limited("rate");
                tracing::info!(%key, retry_after_ms = retry_after.as_millis() as u64, "chat rate limited");
                Err(quota_refusal(
                    format!(
                        "You are sending messages too quickly (at most {} a minute).",
                        limits.requests_per_minute
                    ),
                    (retry_after.as_millis() as u64).max(1),
                ))
            }
        }
    }

    async fn admit_upload(&self, caller: &Caller, bytes: u64) -> Result<(), AppError> {
        let limits = self.settings.for_role(caller.role);
        let owner = usage_owner(caller);
        let who = match owner {
            UsageOwner::User(_) => "You have",
            UsageOwner::GuestAddress { .. } => "Guests on your network have",
        };
        let refused = |message: String| {
            self.metrics.rate_limited("upload_quota");
            tracing::info!(key = %rate_key(&owner, "upload"), message, "upload refused by a quota");
            message
        };
        if limits.uploads_per_day > 0 || limits.upload_mib_per_day > 0 {
            let today = self.store.uploads_since(&owner, utc_midnight_ms()).await?;
            if limits.uploads_per_day > 0 && today.files + 1 > u64::from(limits.uploads_per_day) {
                let message = refused(format!(
                    "{who} uploaded {} files today, the daily limit. It renews at 00:00 UTC.",
                    today.files
                ));
                return Err(quota_refusal(message, until_midnight_ms()));
            }
            let cap = limits.upload_mib_per_day * MIB;
            if cap > 0 && today.bytes + bytes > cap {
                let message = refused(format!(
                    "This upload would take today's uploads past {} MiB, the daily limit. It renews at 00:00 UTC.",
                    limits.upload_mib_per_day
                ));
                return Err(quota_refusal(message, until_midnight_ms()));
            }
        }
        if limits.max_documents > 0 || limits.max_document_mib > 0 {
            let kept = self.store.documents_kept(&owner).await?;
            if limits.max_documents > 0 && kept.files + 1 > u64::from(limits.max_documents) {
                return Err(AppError::TooLarge(refused(format!(
                    "{who} {} documents, the most that can be kept. Delete some to upload more.",
                    kept.files
                ))));
            }
            let cap = limits.max_document_mib * MIB;
            if cap > 0 && kept.bytes + bytes > cap {
                return Err(AppError::TooLarge(refused(format!(
                    "Documents can take at most {} MiB in all, and this one doesn't fit. Delete some to upload more.",
                    limits.max_document_mib
                ))));
            }
        }
        Ok(())
    }

    async fn admit_new_guest(&self, ip: Option<std::net::IpAddr>) -> Result<(), AppError> {
        let quota = Quota::per_hour(
            self.settings.new_guests_per_hour,
            self.settings.new_guests_per_hour,
        );
        let key = match ip {
            Some(ip) => format!("guest:new:{ip}"),
            None => format!("guest:new:{UNKNOWN_ADDRESS}"),
        };
        match self.limiter.check(&key, quota).await {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => {
                self.metrics.rate_limited("new_guests");
                tracing::info!(%key, "new guest refused: too many from this address");
                Err(quota_refusal(
                    "Too many new guest sessions from your network. Sign in, or try again later."
                        .into(),
                    (retry_after.as_millis() as u64).max(1),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota::per_minute(6, 3);
    const TEN_S: Duration = Duration::from_secs(10);

    fn limited(d: Decision) -> Duration {
        match d {
            Decision::Limited { retry_after } => retry_after,
            Decision::Allowed => panic!("expected a limit"),
        }
    }

    #[test]
    fn a_burst_is_allowed_then_the_next_request_waits_one_interval() {
        let limiter = LocalRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("u", Q, t0), Decision::Allowed);
        }
        assert_eq!(limited(limiter.check_at("u", Q, t0)), TEN_S);
    }

    #[test]
    fn retrying_exactly_at_retry_after_succeeds_and_just_before_does_not() {
        let limiter = LocalRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at("u", Q, t0);
        }
        let wait = limited(limiter.check_at("u", Q, t0 + Duration::from_secs(4)));
        assert_eq!(wait, Duration::from_secs(6));
        let at = t0 + Duration::from_secs(4) + wait;
        assert!(matches!(
            limiter.check_at("u", Q, at - Duration::from_millis(1)),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check_at("u", Q, at), Decision::Allowed);
        // That used the refilled cell: the next one waits a full interval.
        assert_eq!(limited(limiter.check_at("u", Q, at)), TEN_S);
    }

    #[test]
    fn at_the_refill_boundary_exactly_one_more_request_fits() {
        let limiter = LocalRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at("u", Q, t0);
        }
        let boundary = t0 + TEN_S;
        assert_eq!(limiter.check_at("u", Q, boundary), Decision::Allowed);
        assert!(matches!(
            limiter.check_at("u", Q, boundary),
            Decision::Limited { .. }
        ));
        // After a long quiet period the burst is back, but not more than it.
        let later = boundary + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("u", Q, later), Decision::Allowed);
        }
        assert!(matches!(
            limiter.check_at("u", Q, later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn sustained_rate_matches_the_quota() {
        let limiter = LocalRateLimiter::new();
        let t0 = Instant::now();
        let mut allowed = 0;
        // One attempt every 100 ms for ten minutes.
        for i in 0..6_000u64 {
            let now = t0 + Duration::from_millis(100 * i);
            if limiter.check_at("u", Q, now) == Decision::Allowed {
                allowed += 1;
            }
        }
        // 6 per minute for 10 minutes, plus the initial burst head start.
        assert_eq!(allowed, 60 + 2);
    }

    #[test]
    fn keys_are_independent_and_zero_means_unlimited() {
        let limiter = LocalRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at("a", Q, t0);
        }
        assert!(matches!(
            limiter.check_at("a", Q, t0),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check_at("b", Q, t0), Decision::Allowed);
        let unlimited = Quota::per_minute(0, 1);
        for _ in 0..1_000 {
            assert_eq!(limiter.check_at("c", unlimited, t0), Decision::Allowed);
        }
    }

    #[test]
    fn a_burst_of_one_spaces_requests_evenly() {
        let limiter = LocalRateLimiter::new();
        let q = Quota::per_minute(60, 1);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at("u", q, t0), Decision::Allowed);
        assert_eq!(
            limited(limiter.check_at("u", q, t0 + Duration::from_millis(250))),
            Duration::from_millis(750)
        );
        assert_eq!(
            limiter.check_at("u", q, t0 + Duration::from_secs(1)),
            Decision::Allowed
        );
    }
}
