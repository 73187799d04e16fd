//! What keeps one abusive client from hurting everyone else (docs/security.md):
//!
//! - sign-up and sign-in are limited per client address and globally (`governor`);
//! - failed sign-ins slow down the account they target with an exponential delay, capped
//!   so its owner is slowed, never locked out;
//! - argon2 work is admitted only up to a bounded queue: beyond it a caller gets a fast
//!   `503` with `Retry-After` instead of waiting behind everyone else;
//! - `X-Forwarded-For` is believed only from the proxies the operator names.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter};
use tix_common::net::TrustedProxies;
pub use tix_common::rate::Rate;
use tix_common::{ApiError, rate};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits' settings (flags of the auth service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub signup_per_address: Rate,
    pub signup_global: Rate,
    pub signin_per_address: Rate,
    pub signin_global: Rate,
    /// Failed sign-ins an account takes before they slow down.
    pub free_failures: u32,
    /// The longest an account's sign-ins are held back after failures.
    pub max_failure_delay: Duration,
    /// argon2 computations that may wait for a core; beyond, `503`.
    pub hash_queue: usize,
    /// Peers whose `X-Forwarded-For` is believed (the gateway's addresses).
    pub trusted_proxies: TrustedProxies,
}

/// An account's run of failed sign-ins.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No sign-in for the account before this.
    until: Instant,
}

#[derive(Debug)]
pub struct Limits {
    settings: Settings,
    signup_per_address: DefaultKeyedRateLimiter<IpAddr>,
    signup_global: DefaultDirectRateLimiter,
    signin_per_address: DefaultKeyedRateLimiter<IpAddr>,
    signin_global: DefaultDirectRateLimiter,
    failures: Mutex<HashMap<String, Failures>>,
    hashing: Semaphore,
    /// Hashes running or waiting for a core.
    admitted: AtomicUsize,
    cores: usize,
}

/// A place in the argon2 queue; held while the hash runs.
#[derive(Debug)]
pub struct HashSlot<'a> {
    _permit: SemaphorePermit<'a>,
    admitted: &'a AtomicUsize,
}

impl Drop for HashSlot<'_> {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    pub fn new(settings: Settings, cores: usize) -> Limits {
        Limits {
            signup_per_address: DefaultKeyedRateLimiter::keyed(settings.signup_per_address.quota()),
            signup_global: DefaultDirectRateLimiter::direct(settings.signup_global.quota()),
            signin_per_address: DefaultKeyedRateLimiter::keyed(settings.signin_per_address.quota()),
            signin_global: DefaultDirectRateLimiter::direct(settings.signin_global.quota()),
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(cores.max(1)),
            admitted: AtomicUsize::new(0),
            cores: cores.max(1),
            settings,
        }
    }

    /// The client's address: for a trusted proxy (the gateway, which replaces the header
    /// with the address it saw) the one its `X-Forwarded-For` names, the peer otherwise.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.settings.trusted_proxies.client(
            peer.ip(),
            headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
        )
    }

    pub fn check_signup(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.signup_per_address.check_key(&ip))?;
        check(self.signup_global.check())
    }

    pub fn check_signin(&self, ip: IpAddr, email: &str) -> Result<(), ApiError> {
        check(self.signin_per_address.check_key(&ip))?;
        check(self.signin_global.check())?;
        let now = Instant::now();
        if let Some(f) = self.failures().get(email)
            && f.until > now
        {
            return Err(ApiError::Limited(
                "Too many failed sign-ins for this account".into(),
                f.until - now,
            ));
        }
        Ok(())
    }

    /// A wrong password (or unknown email): past the free failures, the account's next
    /// sign-in waits 1 s, then 2 s, 4 s … up to the maximum.
    pub fn failed(&self, email: &str) {
        let mut all = self.failures();
        let f = all.entry(email.to_string()).or_insert(Failures {
            count: 0,
            until: Instant::now(),
        });
        f.count = f.count.saturating_add(1);
        if let Some(over) = f.count.checked_sub(self.settings.free_failures)
            && over > 0
        {
            let delay = Duration::from_secs(1u64 << (over - 1).min(20));
            f.until = Instant::now() + delay.min(self.settings.max_failure_delay);
        }
    }

    pub fn succeeded(&self, email: &str) {
        self.failures().remove(email);
    }

    /// A place to run one argon2 computation, waiting for a core if need be; `503` at once
    /// when the queue is full, so a burst cannot make everyone wait.
    pub async fn hash_slot(&self) -> Result<HashSlot<'_>, ApiError> {
        let limit = self.cores + self.settings.hash_queue;
        if self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(ApiError::Busy(Duration::from_secs(1)));
        }
        let slot_admitted = &self.admitted;
        match self.hashing.acquire().await {
            Ok(permit) => Ok(HashSlot {
                _permit: permit,
                admitted: slot_admitted,
            }),
            Err(e) => {
                slot_admitted.fetch_sub(1, Ordering::AcqRel);
                Err(ApiError::Internal(e.into()))
            }
        }
    }

    /// Forgets addresses whose quota is whole again and failures long past, so random
    /// addresses and emails cannot grow the tables forever.
    pub fn prune(&self) {
        self.signup_per_address.retain_recent();
        self.signup_per_address.shrink_to_fit();
        self.signin_per_address.retain_recent();
        self.signin_per_address.shrink_to_fit();
        let forget_before = Instant::now() - self.settings.max_failure_delay.max(FAILURE_MEMORY);
        self.failures().retain(|_, f| f.until > forget_before);
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a run of failures is remembered after its delay has passed.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);

fn check(
    r: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>,
) -> Result<(), ApiError> {
    r.map_err(|not_until| ApiError::TooManyRequests(rate::wait_time(&not_until)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            signup_per_address: Rate {
                burst: 2,
                per_minute: 1,
            },
            signup_global: Rate {
                burst: 100,
                per_minute: 100,
            },
            signin_per_address: Rate {
                burst: 100,
                per_minute: 100,
            },
            signin_global: Rate {
                burst: 100,
                per_minute: 100,
            },
            free_failures: 2,
            max_failure_delay: Duration::from_secs(4),
            hash_queue: 1,
            trusted_proxies: TrustedProxies::new(vec![
                tix_common::net::parse_range("127.0.0.1").unwrap(),
                tix_common::net::parse_range("10.77.0.0/16").unwrap(),
            ]),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sign_ups_are_limited_per_address_and_say_when_to_retry() {
        let l = Limits::new(settings(), 2);
        assert!(l.check_signup(ip("10.0.0.1")).is_ok());
        assert!(l.check_signup(ip("10.0.0.1")).is_ok());
        match l.check_signup(ip("10.0.0.1")) {
            Err(ApiError::TooManyRequests(after)) => assert!(after > Duration::ZERO),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(l.check_signup(ip("10.0.0.2")).is_ok(), "another address");
    }

    #[test]
    fn failures_slow_the_account_exponentially_up_to_a_cap() {
        let l = Limits::new(settings(), 2);
        let at = ip("10.0.0.1");
        for _ in 0..2 {
            l.failed("a@x.io");
            assert!(l.check_signin(at, "a@x.io").is_ok(), "free failures");
        }
        let wait = |l: &Limits| match l.check_signin(at, "a@x.io") {
            Err(ApiError::Limited(_, d)) => d,
            other => panic!("expected a delay, got {other:?}"),
        };
        l.failed("a@x.io");
        assert!(wait(&l) <= Duration::from_secs(1));
        l.failed("a@x.io");
        assert!(wait(&l) > Duration::from_secs(1));
        for _ in 0..10 {
            l.failed("a@x.io");
        }
        assert!(wait(&l) <= Duration::from_secs(4), "capped");
        assert!(l.check_signin(at, "b@x.io").is_ok(), "other accounts");
        l.succeeded("a@x.io");
        assert!(l.check_signin(at, "a@x.io").is_ok(), "a success resets");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let l = Limits::new(settings(), 2);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 10.9.8.7".parse().unwrap());
        let from = |peer: &str| l.client_ip(format!("{peer}:5000").parse().unwrap(), &h);
        assert_eq!(from("127.0.0.1"), ip("10.9.8.7"));
        assert_eq!(from("127.0.0.2"), ip("127.0.0.2"), "not a trusted proxy");
        // A range: any gateway replica's address in it.
        assert_eq!(from("10.77.3.4"), ip("10.9.8.7"));
        assert_eq!(from("10.78.0.1"), ip("10.78.0.1"), "outside the range");
    }

    #[tokio::test]
    async fn the_hash_queue_is_bounded() {
        // One core and a queue of one: one hash runs, one waits, a third is turned away.
        let l = Limits::new(settings(), 1);
        let running = l.hash_slot().await.unwrap();
        let queued = l.hash_slot();
        tokio::pin!(queued);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut queued)
                .await
                .is_err(),
            "the second waits for the core"
        );
        match l.hash_slot().await {
            Err(ApiError::Busy(_)) => {}
            other => panic!("expected 503, got {other:?}"),
        }
        drop(running);
        assert!(
            queued.await.is_ok(),
            "the waiting one runs once the core is free"
        );
    }
}
