//! In-process rate limiting for the attempts attackers repeat (log-in, sign-up, password
//! reset, TOTP checks): a sliding window of attempts per action and key (an IP address or an
//! account). Each API node limits on its own, so N nodes allow N times the configured rate.

use crate::error::ApiError;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys remembered before windows that have run out are swept.
const SWEEP_AT: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    attempts: Mutex<HashMap<(&'static str, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt at `action` by `key`; refuses it, with when to retry, once `limit`
    /// attempts fell inside the window.
    pub fn attempt(&self, action: &'static str, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let Ok(mut attempts) = self.attempts.lock() else {
            return Ok(());
        };
        if attempts.len() >= SWEEP_AT {
            let window = self.window;
            attempts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let times = attempts.entry((action, key.to_owned())).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        times.push_back(now);
        Ok(())
    }
}

/// Hourly quotas on what costs others something (e-mail sent to an address, invitations):
/// a few an hour, not hundreds a day. Keyed by account, user or tenant, never by client
/// address alone, so spreading requests over many addresses does not help.
#[derive(Debug)]
pub struct Quotas {
    /// Sign-up, verification and password-reset e-mails per address (whether or not it has
    /// an account: the answer must not tell).
    pub mails_per_address: RateLimiter,
    /// Invitations sent by one user (or key).
    pub invites_per_sender: RateLimiter,
    /// Invitations sent for one tenant.
    pub invites_per_tenant: RateLimiter,
}

/// Mails per address per hour.
pub const MAILS_PER_ADDRESS_PER_HOUR: u32 = 5;
/// Invitations per sender per hour.
pub const INVITES_PER_SENDER_PER_HOUR: u32 = 10;
/// Invitations per tenant per hour.
pub const INVITES_PER_TENANT_PER_HOUR: u32 = 30;

impl Default for Quotas {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            mails_per_address: RateLimiter::new(MAILS_PER_ADDRESS_PER_HOUR, hour),
            invites_per_sender: RateLimiter::new(INVITES_PER_SENDER_PER_HOUR, hour),
            invites_per_tenant: RateLimiter::new(INVITES_PER_TENANT_PER_HOUR, hour),
        }
    }
}

/// A fixed set of async locks, one taken per key's hash: enough to serialise what one key
/// does (a user's tenant creations) without a lock per key ever created.
#[derive(Debug)]
pub struct StripedLocks(Vec<tokio::sync::Mutex<()>>);

impl Default for StripedLocks {
    fn default() -> Self {
        Self((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl StripedLocks {
    /// Waits for `key`'s lock.
    pub async fn lock(&self, key: uuid::Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (key.as_u128() % self.0.len() as u128) as usize;
        self.0[stripe].lock().await
    }
}

/// Failed log-ins per client and account, with growing delays: a client's first
/// [`FREE_FAILURES`] wrong passwords for an account cost nothing, each later one doubles the
/// wait before that client may try that account again (up to [`LONGEST_WAIT`]). Another
/// client is not held back, so an attacker cannot lock the owner out; a success clears the
/// count. Counts are forgotten a day after the last failure.
#[derive(Debug, Default)]
pub struct FailureBackoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Failures before the delays start.
pub const FREE_FAILURES: u32 = 3;
/// The longest delay between a client's attempts on one account.
pub const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

impl FailureBackoff {
    /// Whether `key` (client and account) may try now; if not, how long to wait.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        let Some((count, last)) = failures.get(key).copied() else {
            return Ok(());
        };
        let wait = Self::wait_after(count);
        let waited = now.duration_since(last);
        if waited < wait {
            let left = u64::try_from((wait - waited).as_millis()).unwrap_or(u64::MAX);
            return Err(ApiError::RateLimited {
                retry_after_secs: left.div_ceil(1000).max(1),
            });
        }
        Ok(())
    }

    /// The wait a client owes after `count` failures.
    pub fn wait_after(count: u32) -> Duration {
        if count < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (count - FREE_FAILURES).min(20);
        Duration::from_secs(1u64 << doublings).min(LONGEST_WAIT)
    }

    pub fn failed(&self, key: &str) {
        let now = Instant::now();
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() >= SWEEP_AT {
                failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            }
            let entry = failures.entry(key.to_owned()).or_insert((0, now));
            entry.0 = entry.0.saturating_add(1);
            entry.1 = now;
        }
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_per_client_and_account() {
        let backoff = FailureBackoff::default();
        for _ in 0..FREE_FAILURES {
            assert!(backoff.check("a|ada").is_ok());
            backoff.failed("a|ada");
        }
        assert!(backoff.check("a|ada").is_err(), "the delays have started");
        assert!(
            backoff.check("b|ada").is_ok(),
            "another client is not held back"
        );
        assert_eq!(
            FailureBackoff::wait_after(FREE_FAILURES),
            Duration::from_secs(1)
        );
        assert_eq!(
            FailureBackoff::wait_after(FREE_FAILURES + 3),
            Duration::from_secs(8)
        );
        assert_eq!(FailureBackoff::wait_after(u32::MAX), LONGEST_WAIT);
        backoff.succeeded("a|ada");
        assert!(backoff.check("a|ada").is_ok(), "a success clears the count");
    }
    use crate::graphql::identity::client_key;
    use crate::services::RequestMeta;

    fn from(ip: &str) -> RequestMeta {
        RequestMeta {
            ip: ip.parse().ok(),
            request_id: String::new(),
            operation: String::new(),
            fingerprint: None,
        }
    }

    #[test]
    fn refuses_past_the_limit_per_key_and_action() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.attempt("login", "1.2.3.4").is_ok());
        assert!(limiter.attempt("login", "1.2.3.4").is_ok());
        match limiter.attempt("login", "1.2.3.4") {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limiter.attempt("login", "5.6.7.8").is_ok(), "another key");
        assert!(
            limiter.attempt("signup", "1.2.3.4").is_ok(),
            "another action"
        );
    }

    #[test]
    fn attempts_leave_the_window_as_it_slides() {
        let window = Duration::from_millis(300);
        let limiter = RateLimiter::new(2, window);
        let started = Instant::now();
        assert!(limiter.attempt("log_in", "1.2.3.4").is_ok());
        std::thread::sleep(window / 2);
        assert!(limiter.attempt("log_in", "1.2.3.4").is_ok());
        assert!(limiter.attempt("log_in", "1.2.3.4").is_err(), "full");
        // Waiting out the window is the behaviour under test: once the first attempt is
        // older than the window, one attempt is free again, and only one.
        std::thread::sleep((started + window + Duration::from_millis(20)) - Instant::now());
        assert!(
            limiter.attempt("log_in", "1.2.3.4").is_ok(),
            "the first attempt left the window"
        );
        assert!(
            limiter.attempt("log_in", "1.2.3.4").is_err(),
            "the second is still in it"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let key = |ip: &str| client_key(&from(ip));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "one /64"
        );
        assert_ne!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:3::1"),
            "another /64"
        );
        assert_eq!(key("::ffff:1.2.3.4"), key("1.2.3.4"), "IPv4-mapped is IPv4");
        assert_ne!(
            key("1.2.3.4"),
            key("1.2.3.5"),
            "IPv4 addresses count singly"
        );

        // Rotating addresses inside a /64 spends one budget.
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.attempt("log_in", &key("2001:db8::1")).is_ok());
        assert!(limiter.attempt("log_in", &key("2001:db8::2")).is_ok());
        assert!(limiter.attempt("log_in", &key("2001:db8::3")).is_err());
        assert!(limiter.attempt("log_in", &key("2001:db8:0:1::1")).is_ok());
    }
}
