//! Failed-login throttling: at most [`ACCOUNT_LIMIT`] failures per account (email) and
//! [`IP_LIMIT`] per client address in a [`WINDOW_SECONDS`] window; past that, logins
//! answer 429 with `Retry-After` until the window ends, without checking the password
//! (no hashing cost for an attacker to spend).
//!
//! Counting is atomic: every attempt first increments its counters in one upsert on
//! `auth.login_throttle` that returns the new counts, and the decision is taken on
//! those returned values, so a burst of concurrent attempts cannot pass the limit (with
//! a limit of 5, the sixth concurrent attempt already sees 6). A correct password takes
//! its attempt back (the account's counter is cleared, the address's decremented), so
//! the counters count failures. Rows carry the end of their window and are purged as
//! logins go; the table is written only by auth, never by another component.
//!
//! The address is the client's own ([`crate::Client::throttle_ip`]); a request from a
//! trusted proxy that names no client is throttled by account only, never by the
//! proxy's address (the admin console signs everyone in through loopback).

use spin_sdk::pg::ParameterValue;

use crate::db::Db;
use crate::error::{ApiError, ApiResult};

/// Failures allowed per account per window.
pub const ACCOUNT_LIMIT: i32 = 5;
/// Failures allowed per client IP per window.
pub const IP_LIMIT: i32 = 20;
/// Window length.
pub const WINDOW_SECONDS: i64 = 15 * 60;

fn account_key(email: &str) -> String {
    format!("account:{email}")
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The counters one login attempt was counted under.
pub struct Attempt {
    account: String,
    ip: Option<String>,
}

/// Counts the attempt; refuses it (429) when the account or the address is over its
/// limit. Call [`succeeded`] when the password was right.
pub async fn count_attempt(db: &Db, email: &str, ip: Option<&str>) -> ApiResult<Attempt> {
    let attempt = Attempt {
        account: account_key(email),
        ip: ip.map(ip_key),
    };
    // One statement: purge finished windows (other keys), then increment both counters
    // (a finished window starts over) and return the counts and seconds left.
    let rows = db
        .rows(
            "WITH purge AS ( \
                 DELETE FROM auth.login_throttle \
                 WHERE window_ends < now() AND key <> $1 AND key IS DISTINCT FROM $2), \
             bumped AS ( \
                 INSERT INTO auth.login_throttle AS t (key, failures, window_ends) \
                 SELECT k, 1, now() + make_interval(secs => $3) \
                 FROM unnest(ARRAY[$1, $2]::text[]) AS k WHERE k IS NOT NULL \
                 ON CONFLICT (key) DO UPDATE SET \
                     failures = CASE WHEN t.window_ends <= now() THEN 1 ELSE t.failures + 1 END, \
                     window_ends = CASE WHEN t.window_ends <= now() \
                                        THEN now() + make_interval(secs => $3) ELSE t.window_ends END \
                 RETURNING key, failures, \
                           ceil(extract(epoch FROM window_ends - now()))::bigint AS retry_after) \
             SELECT key, failures, retry_after FROM bumped",
            vec![
                ParameterValue::Str(attempt.account.clone()),
                attempt
                    .ip
                    .clone()
                    .map_or(ParameterValue::DbNull, ParameterValue::Str),
                ParameterValue::Floating64(WINDOW_SECONDS as f64),
            ],
        )
        .await?;
    let mut retry_after = 0i64;
    for row in &rows {
        let key = row.get::<String>("key").unwrap_or_default();
        let failures = row.get::<i32>("failures").unwrap_or(0);
        let limit = if key == attempt.account {
            ACCOUNT_LIMIT
        } else {
            IP_LIMIT
        };
        if failures > limit {
            retry_after = retry_after.max(row.get::<i64>("retry_after").unwrap_or(WINDOW_SECONDS));
        }
    }
    if retry_after > 0 {
        return Err(ApiError::TooManyAttempts(retry_after.max(1) as u64));
    }
    Ok(attempt)
}

/// The password was right: the account starts over, the address gets its attempt back.
pub async fn succeeded(db: &Db, attempt: Attempt) -> ApiResult<()> {
    db.execute(
        "WITH cleared AS (DELETE FROM auth.login_throttle WHERE key = $1) \
         UPDATE auth.login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $2",
        vec![
            ParameterValue::Str(attempt.account),
            attempt
                .ip
                .map_or(ParameterValue::DbNull, ParameterValue::Str),
        ],
    )
    .await?;
    Ok(())
}
