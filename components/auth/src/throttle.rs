//! Failed-login throttling with key-value counters: at most [`ACCOUNT_LIMIT`] failures
//! per account (email) and [`IP_LIMIT`] per client IP in a [`WINDOW_SECONDS`] window;
//! past that, logins answer 429 with `Retry-After` until the window ends, without
//! checking the password (no hashing cost for an attacker to spend).
//!
//! Policy when the key-value store fails (Redis down): fail open, so logins keep
//! working, and say so in the log. Counters are read-modify-write (spin:key-value has
//! no atomic increment), so concurrent failures may slip a few attempts past the limit.

use serde::{Deserialize, Serialize};
use spin_sdk::key_value::Store;

use crate::error::{ApiError, ApiResult};

/// Failures allowed per account per window.
pub const ACCOUNT_LIMIT: u32 = 5;
/// Failures allowed per client IP per window.
pub const IP_LIMIT: u32 = 20;
/// Window length.
pub const WINDOW_SECONDS: i64 = 15 * 60;

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Counter {
    count: u32,
    window_start: i64,
}

impl Counter {
    fn current(self, now: i64) -> Self {
        if now - self.window_start >= WINDOW_SECONDS {
            Self {
                count: 0,
                window_start: now,
            }
        } else {
            self
        }
    }
}

/// Throttling state for one login attempt.
pub struct Throttle {
    store: Option<Store>,
}

fn account_key(email: &str) -> String {
    format!("auth:login-failures:account:{email}")
}

fn ip_key(ip: &str) -> String {
    format!("auth:login-failures:ip:{ip}")
}

impl Throttle {
    pub async fn open() -> Self {
        match Store::open_default().await {
            Ok(store) => Self { store: Some(store) },
            Err(error) => {
                eprintln!("auth: login throttling is off, key-value store unavailable: {error:?}");
                Self { store: None }
            }
        }
    }

    async fn read(&self, key: &str, now: i64) -> Counter {
        let Some(store) = &self.store else {
            return Counter::default();
        };
        match store.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice::<Counter>(&bytes)
                .unwrap_or_default()
                .current(now),
            Ok(None) => Counter {
                count: 0,
                window_start: now,
            },
            Err(error) => {
                eprintln!("auth: login throttling skipped, key-value read failed: {error:?}");
                Counter::default()
            }
        }
    }

    /// Refuses the attempt when the account or the IP is over its limit.
    pub async fn check(&self, email: &str, ip: Option<&str>, now: i64) -> ApiResult<()> {
        let mut retry_after = 0;
        let account = self.read(&account_key(email), now).await;
        if account.count >= ACCOUNT_LIMIT {
            retry_after = retry_after.max(account.window_start + WINDOW_SECONDS - now);
        }
        if let Some(ip) = ip {
            let by_ip = self.read(&ip_key(ip), now).await;
            if by_ip.count >= IP_LIMIT {
                retry_after = retry_after.max(by_ip.window_start + WINDOW_SECONDS - now);
            }
        }
        if retry_after > 0 {
            Err(ApiError::TooManyAttempts(retry_after.max(1) as u64))
        } else {
            Ok(())
        }
    }

    async fn bump(&self, key: String, now: i64) {
        let Some(store) = &self.store else {
            return;
        };
        let mut counter = self.read(&key, now).await;
        counter.count += 1;
        let bytes = serde_json::to_vec(&counter).unwrap_or_default();
        if let Err(error) = store.set(&key, &bytes).await {
            eprintln!("auth: could not record a failed login: {error:?}");
        }
    }

    pub async fn record_failure(&self, email: &str, ip: Option<&str>, now: i64) {
        self.bump(account_key(email), now).await;
        if let Some(ip) = ip {
            self.bump(ip_key(ip), now).await;
        }
    }

    /// A successful login clears the account's failures (not the IP's).
    pub async fn reset(&self, email: &str) {
        if let Some(store) = &self.store
            && let Err(error) = store.delete(&account_key(email)).await
        {
            eprintln!("auth: could not reset login failures: {error:?}");
        }
    }
}
