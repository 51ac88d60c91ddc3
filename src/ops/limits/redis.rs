//! The rate limiter's state in Redis, shared by every app replica. The same
//! GCRA as [`super::gcra`] runs atomically in a Lua script, on Redis's clock
//! (the replicas' clocks may disagree); the state is one number per key,
//! expiring when it no longer limits anything.

use super::{Decision, Quota, RateLimiter};
use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// KEYS[1]: the key. ARGV: emission interval and tolerance in µs.
/// Returns 0 when allowed, else the wait in µs. Times are µs since the
/// epoch (~2^51, exact in Lua's doubles) and written with `%.0f` because
/// Lua's default number format would round them.
const GCRA_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local new_tat = tat + interval
local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return 0
";

pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl RedisRateLimiter {
    /// Connects (failing now if Redis can't be reached, so a misconfigured
    /// replica doesn't start); `prefix` namespaces this app's keys.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing the Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .context("connecting to Redis for the rate limiter")?;
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.to_owned(),
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    /// When Redis can't answer, the request is allowed and the failure
    /// logged: an outage of the limiter's store shouldn't take the chat down.
    async fn check(&self, key: &str, quota: Quota) -> Decision {
        if quota.is_unlimited() {
            return Decision::Allowed;
        }
        let mut connection = self.connection.clone();
        let wait: redis::RedisResult<i64> = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(micros(quota.emission_interval()))
            .arg(micros(quota.tolerance()))
            .invoke_async(&mut connection)
            .await;
        match wait {
            Ok(wait) if wait > 0 => Decision::Limited {
                retry_after: Duration::from_micros(wait.unsigned_abs()),
            },
            Ok(_) => Decision::Allowed,
            Err(e) => {
                tracing::warn!(error = %e, "the rate limiter's Redis did not answer; allowing the request");
                Decision::Allowed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limiter on the Redis at `REDIS_URL` with keys no other test uses,
    /// or `None` (and a printed reason) without one.
    async fn limiter_or_skip(test: &str) -> Option<(RedisRateLimiter, RedisRateLimiter)> {
        let Ok(url) = std::env::var("REDIS_URL") else {
            println!("SKIP {test}: REDIS_URL is not set");
            return None;
        };
        let prefix = format!("ragchat-test:{}:", uuid::Uuid::new_v4());
        // Two limiters on one Redis: two app replicas.
        Some((
            RedisRateLimiter::connect(&url, &prefix).await.unwrap(),
            RedisRateLimiter::connect(&url, &prefix).await.unwrap(),
        ))
    }

    fn wait_of(d: Decision) -> Duration {
        match d {
            Decision::Limited { retry_after } => retry_after,
            Decision::Allowed => panic!("expected a limit"),
        }
    }

    #[tokio::test]
    async fn replicas_share_one_burst_and_the_wait_is_exact() {
        let Some((a, b)) = limiter_or_skip("replicas_share_one_burst_and_the_wait_is_exact").await
        else {
            return;
        };
        let q = Quota::per_minute(6, 3);
        assert_eq!(a.check("u", q).await, Decision::Allowed);
        assert_eq!(b.check("u", q).await, Decision::Allowed);
        assert_eq!(a.check("u", q).await, Decision::Allowed);
        // The burst is spent on both replicas; the next cell is 10 s away,
        // less the few ms these calls took.
        let wait = wait_of(b.check("u", q).await);
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_millis(9_500),
            "{wait:?}"
        );
        // Other keys are untouched.
        assert_eq!(b.check("v", q).await, Decision::Allowed);
    }

    #[tokio::test]
    async fn retrying_after_the_stated_wait_succeeds() {
        let Some((a, b)) = limiter_or_skip("retrying_after_the_stated_wait_succeeds").await else {
            return;
        };
        // One request per 200 ms, no burst.
        let q = Quota::per_minute(300, 1);
        for _ in 0..5 {
            assert_eq!(a.check("u", q).await, Decision::Allowed);
            let wait = wait_of(b.check("u", q).await);
            assert!(wait <= Duration::from_millis(200), "{wait:?}");
            tokio::time::sleep(wait).await;
        }
        assert_eq!(b.check("u", q).await, Decision::Allowed);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_start_up_error() {
        let error = RedisRateLimiter::connect("redis://127.0.0.1:1/", "x:")
            .await
            .err()
            .expect("nothing listens on port 1");
        assert!(format!("{error:#}").contains("connecting to Redis"));
    }
}
