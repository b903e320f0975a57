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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::identity::client_key;
    use crate::services::RequestMeta;

    fn from(ip: &str) -> RequestMeta {
        RequestMeta {
            ip: ip.parse().ok(),
            request_id: String::new(),
            operation: String::new(),
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
