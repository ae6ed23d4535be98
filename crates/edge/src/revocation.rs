//! Revoked sessions and users, as the host serves them (`GET /auth/revocations` on its
//! internal API, from `auth.revocations`), held in this instance's memory.
//!
//! After a token's signature and claims check out, [`check`] refuses it when its
//! session (`sid`) was revoked, or its user (`sub`) was revoked after the token was
//! issued (`iat` before the revocation's `not_before`): 401 `token_revoked`. The list is
//! brought up to date at most every `revocation_check_ms` (default 1000) by asking for
//! the entries after the last one held, so a logout, block, password change or role
//! change reaches every component within about a second (plus the host's 250 ms poll).
//!
//! When the host cannot be asked, the held list keeps being used (and an instance that
//! never got one checks nothing): availability over freshness, with the access-token
//! lifetime as the bound, and a log line. Components without `internal_api_url` (test
//! fixtures) check nothing.

use std::collections::HashMap;
use std::time::Duration;

use cinema_domain::token::AccessClaims;
use serde::Deserialize;

use crate::outbound::HostApi;

/// How long a held list is trusted before the host is asked again (default).
const DEFAULT_CHECK_MS: i64 = 1000;
/// The revocation route on the host's internal API.
pub const REVOCATIONS_PATH: &str = "/auth/revocations";

#[derive(Deserialize)]
struct Revocation {
    id: i64,
    session_id: Option<String>,
    user_id: Option<String>,
    not_before: i64,
    at: i64,
}

#[derive(Deserialize)]
struct Page {
    last: i64,
    revocations: Vec<Revocation>,
    horizon_seconds: i64,
}

/// What this instance knows.
#[derive(Default)]
struct Held {
    last: i64,
    /// `sid` → when it was revoked.
    sessions: HashMap<String, i64>,
    /// `sub` → (`not_before`, when it was revoked).
    users: HashMap<String, (i64, i64)>,
    /// When the host was last asked (milliseconds), successfully or not.
    asked_at_ms: i64,
}

static HELD: std::sync::Mutex<Option<Held>> = std::sync::Mutex::new(None);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn with_held<T>(f: impl FnOnce(&mut Held) -> T) -> T {
    let mut guard = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(Held::default))
}

impl Held {
    fn absorb(&mut self, page: Page) {
        if page.last < self.last {
            // The host started over (its table was reset): so do we.
            self.sessions.clear();
            self.users.clear();
        }
        for entry in page.revocations {
            if let Some(sid) = entry.session_id {
                self.sessions.insert(sid, entry.at);
            }
            if let Some(sub) = entry.user_id {
                let slot = self
                    .users
                    .entry(sub)
                    .or_insert((entry.not_before, entry.at));
                if entry.not_before >= slot.0 {
                    *slot = (entry.not_before, entry.at);
                }
            }
            self.last = self.last.max(entry.id);
        }
        self.last = page.last;
        let oldest = now_ms() / 1000 - page.horizon_seconds;
        self.sessions.retain(|_, at| *at >= oldest);
        self.users.retain(|_, (_, at)| *at >= oldest);
    }

    fn refuses(&self, claims: &AccessClaims) -> bool {
        self.sessions.contains_key(&claims.sid)
            || self
                .users
                .get(&claims.sub)
                .is_some_and(|(not_before, _)| claims.iat < *not_before)
    }
}

async fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .await
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Where to ask and how often, read once per instance (`None`: no internal API).
static SETTINGS: std::sync::OnceLock<Option<(String, i64)>> = std::sync::OnceLock::new();

async fn settings() -> Option<(String, i64)> {
    if let Some(settings) = SETTINGS.get() {
        return settings.clone();
    }
    let base = variable("internal_api_url").await;
    let check_ms = variable("revocation_check_ms")
        .await
        .and_then(|raw| raw.trim().parse().ok())
        .unwrap_or(DEFAULT_CHECK_MS);
    SETTINGS
        .get_or_init(|| base.map(|base| (base, check_ms)))
        .clone()
}

/// Brings the held list up to date when it is older than `revocation_check_ms`.
async fn refresh() {
    let Some((base, check_ms)) = settings().await else {
        return;
    };
    let now = now_ms();
    let (due, after) = with_held(|held| {
        let due = now - held.asked_at_ms >= check_ms;
        if due {
            // Claimed now, so concurrent requests of this instance do not all ask.
            held.asked_at_ms = now;
        }
        (due, held.last)
    });
    if !due {
        return;
    }
    let host = HostApi::internal(&base, "edge", None)
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(1));
    let answer = host.get(&format!("{REVOCATIONS_PATH}?after={after}")).await;
    match answer {
        Ok(answer) if answer.status.is_success() => {
            match serde_json::from_slice::<Page>(&answer.body) {
                Ok(page) => with_held(|held| held.absorb(page)),
                Err(error) => eprintln!("edge: unreadable revocation list: {error}"),
            }
        }
        Ok(answer) => eprintln!(
            "edge: revocation list not updated ({}); using the held one",
            answer.describe()
        ),
        Err(error) => eprintln!("edge: revocation list not updated ({error}); using the held one"),
    }
}

/// Whether the verified `claims` were revoked since they were issued.
pub async fn is_revoked(claims: &AccessClaims) -> bool {
    refresh().await;
    with_held(|held| held.refuses(claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            sub: sub.into(),
            sid: sid.into(),
            roles: Vec::new(),
            permissions: Vec::new(),
            iat,
            exp: iat + 900,
            iss: "i".into(),
            aud: "a".into(),
            act: None,
        }
    }

    /// A revoked session refuses all its tokens; a revoked user only the tokens issued
    /// before the revocation; a host that started over replaces the list.
    #[test]
    fn sessions_and_users_are_refused_as_revoked() {
        let now = now_ms() / 1000;
        let mut held = Held::default();
        held.absorb(Page {
            last: 2,
            revocations: vec![
                Revocation {
                    id: 1,
                    session_id: Some("s1".into()),
                    user_id: None,
                    not_before: now,
                    at: now,
                },
                Revocation {
                    id: 2,
                    session_id: None,
                    user_id: Some("u2".into()),
                    not_before: now,
                    at: now,
                },
            ],
            horizon_seconds: 960,
        });
        assert!(held.refuses(&claims("u1", "s1", now + 5)));
        assert!(!held.refuses(&claims("u1", "s9", now)));
        assert!(held.refuses(&claims("u2", "s2", now - 1)));
        assert!(
            !held.refuses(&claims("u2", "s3", now)),
            "a token issued after is fine"
        );
        held.absorb(Page {
            last: 0,
            revocations: Vec::new(),
            horizon_seconds: 960,
        });
        assert!(
            !held.refuses(&claims("u1", "s1", now)),
            "the host started over"
        );
    }
}
