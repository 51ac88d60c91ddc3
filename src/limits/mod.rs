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

pub mod redis;

use crate::metrics::Metrics;
use crate::store::Store;
use app::error::AppError;
use app::ports::{Admission, Caller, UsageLimits};
use app::wire::UserRole;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How fast one key may make requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained requests per minute (0 = unlimited).
    pub per_minute: u32,
    /// Requests allowed at once after a quiet period (at least 1).
    pub burst: u32,
}

impl Quota {
    fn emission_interval(self) -> Duration {
        Duration::from_nanos(60_000_000_000 / u64::from(self.per_minute.max(1)))
    }

    fn tolerance(self) -> Duration {
        self.emission_interval() * self.burst.max(1).saturating_sub(1)
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
    if quota.per_minute == 0 {
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

/// Limits for one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RoleLimits {
    /// Sustained chat requests per minute (0 = unlimited).
    pub requests_per_minute: u32,
    /// Chat requests allowed at once.
    pub burst: u32,
    /// Prompt + completion tokens per UTC day (0 = unlimited).
    pub tokens_per_day: u64,
}

impl Default for RoleLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 30,
            burst: 10,
            tokens_per_day: 200_000,
        }
    }
}

/// Limits per role (`[limits.guest]`, `[limits.user]`, `[limits.admin]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Keep the limiter's state in this Redis (`redis://host:6379/`), shared
    /// by every replica; unset: in this process.
    pub redis_url: Option<secrecy::SecretString>,
    /// Prefix of the limiter's Redis keys (apps sharing one Redis differ here).
    pub redis_key_prefix: String,
    pub guest: RoleLimits,
    pub user: RoleLimits,
    pub admin: RoleLimits,
    /// With a spent token budget, answer with this model (a name under
    /// `[llm.models]`) instead of refusing until midnight UTC.
    pub over_budget_model: Option<String>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_key_prefix: "ragchat:limits:".into(),
            guest: RoleLimits {
                requests_per_minute: 10,
                burst: 5,
                tokens_per_day: 20_000,
            },
            user: RoleLimits::default(),
            admin: RoleLimits {
                requests_per_minute: 120,
                burst: 30,
                tokens_per_day: 0,
            },
            over_budget_model: None,
        }
    }
}

impl LimitSettings {
    pub fn for_role(&self, role: UserRole) -> RoleLimits {
        match role {
            UserRole::Guest => self.guest,
            UserRole::User => self.user,
            UserRole::Admin => self.admin,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the epoch at the start of today (UTC).
pub fn utc_midnight_ms() -> i64 {
    let now = crate::store::now_ms();
    now - now.rem_euclid(DAY_MS)
}

/// The chat's limits: requests per minute per user (per address for guests,
/// who can get a new identity by dropping a cookie), then tokens per day.
pub struct ChatLimits {
    limiter: Arc<dyn RateLimiter>,
    store: Store,
    settings: LimitSettings,
    metrics: Arc<Metrics>,
}

impl ChatLimits {
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
}

#[async_trait::async_trait]
impl UsageLimits for ChatLimits {
    async fn admit_chat(&self, caller: &Caller) -> Result<Admission, AppError> {
        let limits = self.settings.for_role(caller.role);
        let mut admission = Admission::Full;
        if limits.tokens_per_day > 0 {
            let midnight = utc_midnight_ms();
            let used = self
                .store
                .tokens_used_since(&caller.user.0, midnight)
                .await?;
            if let (true, Some(model)) = (
                used >= limits.tokens_per_day,
                &self.settings.over_budget_model,
            ) {
                tracing::info!(user_id = %caller.user.0, used, budget = limits.tokens_per_day, model, "token budget spent; answering with the cheaper model");
                admission = Admission::OverBudget {
                    model: model.clone(),
                };
            } else if used >= limits.tokens_per_day {
                let wait = (midnight + DAY_MS - crate::store::now_ms()).max(1000) as u64;
                tracing::info!(user_id = %caller.user.0, used, budget = limits.tokens_per_day, "token budget exhausted");
                self.metrics.rate_limited("budget");
                return Err(AppError::RateLimited {
                    message: format!(
                        "You have used today's budget of {} tokens. It renews at 00:00 UTC.",
                        limits.tokens_per_day
                    ),
                    retry_after_ms: wait,
                });
            }
        }
        let key = match (caller.role, caller.ip) {
            (UserRole::Guest, Some(ip)) => format!("chat:ip:{ip}"),
            _ => format!("chat:user:{}", caller.user.0),
        };
        let quota = Quota {
            per_minute: limits.requests_per_minute,
            burst: limits.burst,
        };
        match self.limiter.check(&key, quota).await {
            Decision::Allowed => {
                if matches!(admission, Admission::OverBudget { .. }) {
                    self.metrics.rate_limited("budget_degraded");
                }
                Ok(admission)
            }
            Decision::Limited { retry_after } => {
                self.metrics.rate_limited("rate");
                tracing::info!(user_id = %caller.user.0, %key, retry_after_ms = retry_after.as_millis() as u64, "chat rate limited");
                Err(AppError::RateLimited {
                    message: format!(
                        "You are sending messages too quickly (at most {} a minute).",
                        limits.requests_per_minute
                    ),
                    retry_after_ms: (retry_after.as_millis() as u64).max(1),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_minute: 6,
        burst: 3,
    };
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
        let unlimited = Quota {
            per_minute: 0,
            burst: 1,
        };
        for _ in 0..1_000 {
            assert_eq!(limiter.check_at("c", unlimited, t0), Decision::Allowed);
        }
    }

    #[test]
    fn a_burst_of_one_spaces_requests_evenly() {
        let limiter = LocalRateLimiter::new();
        let q = Quota {
            per_minute: 60,
            burst: 1,
        };
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
