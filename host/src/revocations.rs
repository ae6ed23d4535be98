//! Revocation reaches the edge: the recent entries of `auth.revocations` (written by
//! triggers whenever a session ends, a user is blocked or a user's roles change), held
//! in memory and served on the internal API as `GET /auth/revocations?after=ID`.
//!
//! Components (`cinema_edge`) fetch the entries after the last id they hold, at most
//! every `revocation_check_ms`, and refuse a token whose session is revoked or whose
//! user was revoked after the token was issued. Entries live as long as a token could:
//! the access-token lifetime plus a margin ([`Revocations::horizon`]); older rows are
//! purged from Postgres and memory. While Postgres is unreachable the held entries keep
//! being served.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// How often new revocations are read from Postgres.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often expired rows are deleted from Postgres.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Added to the access-token lifetime: clocks differ a little between machines.
const HORIZON_MARGIN_SECONDS: i64 = 60;

/// One revocation as the edge sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    pub id: i64,
    /// A revoked session: every token with this `sid` is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// A revoked user: tokens with this `sub` issued before `not_before` are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Unix seconds (whole: token `iat` is in seconds).
    pub not_before: i64,
    /// When it was recorded, Unix seconds.
    pub at: i64,
}

/// The answer of `GET /auth/revocations`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevocationsPage {
    /// The newest id held; ask with `after` = this next time.
    pub last: i64,
    /// Entries newer than the caller's `after` (all held ones when `after` is ahead of
    /// `last`: the caller then replaces what it holds).
    pub revocations: Vec<Revocation>,
    /// Seconds an entry matters; callers drop older ones.
    pub horizon_seconds: i64,
}

/// The recent revocations, shared by the poller and the route.
#[derive(Clone, Debug)]
pub struct Revocations {
    held: Arc<std::sync::RwLock<Vec<Revocation>>>,
    horizon_seconds: i64,
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Revocations {
    /// Entries matter for `access_token_ttl` plus a margin.
    pub fn new(access_token_ttl: Duration) -> Self {
        Self {
            held: Arc::default(),
            horizon_seconds: access_token_ttl.as_secs() as i64 + HORIZON_MARGIN_SECONDS,
        }
    }

    /// Seconds an entry matters.
    pub fn horizon(&self) -> i64 {
        self.horizon_seconds
    }

    fn page(&self, after: i64) -> RevocationsPage {
        let held = self
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = held.last().map_or(0, |r| r.id);
        let from = if after > last { 0 } else { after };
        RevocationsPage {
            last,
            revocations: held.iter().filter(|r| r.id > from).cloned().collect(),
            horizon_seconds: self.horizon_seconds,
        }
    }

    fn absorb(&self, fresh: Vec<Revocation>) {
        let oldest = now_seconds() - self.horizon_seconds;
        let mut held = self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|r| r.at >= oldest);
        held.extend(fresh);
    }

    fn last_id(&self) -> i64 {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
            .map_or(0, |r| r.id)
    }

    /// Reads new entries from Postgres until the process ends; purges old rows.
    pub async fn run(self, postgres_url: String) {
        let mut client: Option<tokio_postgres::Client> = None;
        let mut failing = false;
        let mut last_purge = std::time::Instant::now() - PURGE_INTERVAL;
        loop {
            match self.poll(&mut client, &postgres_url, &mut last_purge).await {
                Ok(()) if failing => {
                    tracing::info!("revocations: reading auth.revocations again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) => {
                    client = None;
                    if !failing {
                        let error = cinema_postgres::describe(&error);
                        tracing::warn!(%error, "revocations: cannot read auth.revocations; serving the held ones");
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn poll(
        &self,
        client: &mut Option<tokio_postgres::Client>,
        postgres_url: &str,
        last_purge: &mut std::time::Instant,
    ) -> Result<(), tokio_postgres::Error> {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            let (fresh, connection) = cinema_postgres::connect(postgres_url).await?;
            tokio::spawn(connection);
            *client = Some(fresh);
        }
        let Some(db) = client.as_ref() else {
            return Ok(());
        };
        if last_purge.elapsed() >= PURGE_INTERVAL {
            db.execute(
                "DELETE FROM auth.revocations WHERE created < now() - make_interval(secs => $1)",
                &[&(self.horizon_seconds as f64)],
            )
            .await?;
            *last_purge = std::time::Instant::now();
        }
        let rows = db
            .query(
                "SELECT id, session_id::text, user_id::text, \
                        floor(extract(epoch FROM not_before))::bigint, \
                        floor(extract(epoch FROM created))::bigint \
                 FROM auth.revocations \
                 WHERE id > $1 AND created >= now() - make_interval(secs => $2) ORDER BY id",
                &[&self.last_id(), &(self.horizon_seconds as f64)],
            )
            .await?;
        if !rows.is_empty() {
            self.absorb(
                rows.iter()
                    .map(|row| Revocation {
                        id: row.get(0),
                        session_id: row.get(1),
                        user_id: row.get(2),
                        not_before: row.get(3),
                        at: row.get(4),
                    })
                    .collect(),
            );
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    after: i64,
}

async fn page(
    State(revocations): State<Revocations>,
    Query(query): Query<PageQuery>,
) -> impl IntoResponse {
    Json(revocations.page(query.after))
}

/// `GET /auth/revocations?after=ID`.
pub fn router(revocations: Revocations) -> Router {
    Router::new()
        .route("/auth/revocations", get(page))
        .with_state(revocations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, at: i64) -> Revocation {
        Revocation {
            id,
            session_id: Some(format!("s{id}")),
            user_id: None,
            not_before: at,
            at,
        }
    }

    /// A caller gets what is newer than its `after`, everything when it is ahead (the
    /// host's table was reset), and entries past the horizon are dropped.
    #[test]
    fn pages_follow_the_callers_position_and_forget_old_entries() {
        let revocations = Revocations::new(Duration::from_secs(900));
        let now = now_seconds();
        revocations.absorb(vec![entry(1, now - 5000), entry(2, now), entry(3, now)]);
        revocations.absorb(Vec::new());
        let ids = |page: RevocationsPage| page.revocations.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(revocations.page(0)), [2, 3]);
        assert_eq!(ids(revocations.page(2)), [3]);
        assert_eq!(ids(revocations.page(3)), Vec::<i64>::new());
        assert_eq!(ids(revocations.page(99)), [2, 3]);
        assert_eq!(revocations.page(0).last, 3);
    }
}
