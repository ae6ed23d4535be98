//! Analytics on the internal port, over ClickHouse `ugc_events` (what the ugc
//! component serves to callers with `analytics:read`). Queries run as a read-only
//! ClickHouse account (`--clickhouse-analytics-user`) and ask for `readonly=1` too, so
//! this surface cannot change data whatever it is asked.
//!
//! Routes (`GET`, JSON; `from`/`to` are `YYYY-MM-DD`, `to` exclusive, at most 366 days):
//! - `/analytics/top_films?from&to&metric=views|watch_time&limit` →
//!   `{"metric", "items": [{"film_id", "value"}]}`: views are distinct viewers; watch
//!   time is the sum over viewers of the furthest position reached, in seconds;
//! - `/analytics/daily_viewers?from&to` → `{"items": [{"day", "viewers"}]}`;
//! - `/analytics/completion_rate?film_id` → `{"film_id", "viewers", "completed",
//!   "rate"}`: completed viewers reached 90% of the film.
//!
//! Errors: 400 `invalid_parameter` with `field`; 503 `analytics_unavailable` when
//! ClickHouse does not answer.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use cinema_domain::error::ErrorBody;
use serde::{Deserialize, Serialize};

/// Share of a film a viewer must reach to count as having completed it.
pub const COMPLETION_SHARE: f64 = 0.9;
/// Longest range one query may cover, in days.
pub const MAX_RANGE_DAYS: i64 = 366;

/// Where analytics read from.
#[derive(Clone)]
pub struct AnalyticsState {
    pub clickhouse: clickhouse::Client,
}

impl std::fmt::Debug for AnalyticsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnalyticsState")
    }
}

impl AnalyticsState {
    /// Queries as `user` (no password: a loopback read-only account).
    pub fn new(url: &str, database: &str, user: &str) -> Self {
        Self {
            clickhouse: clickhouse::Client::default()
                .with_url(url)
                .with_user(user)
                .with_database(database)
                .with_validation(false)
                .with_setting("readonly", "1"),
        }
    }
}

/// Answers besides 200.
#[derive(Debug)]
pub enum AnalyticsError {
    Invalid {
        field: &'static str,
        message: String,
    },
    Unavailable(String),
}

impl IntoResponse for AnalyticsError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody::for_field("invalid_parameter", message, field)),
            )
                .into_response(),
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "analytics: clickhouse query failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody::new(
                        "analytics_unavailable",
                        "analytics are unavailable; retry later",
                    )),
                )
                    .into_response()
            }
        }
    }
}

impl From<clickhouse::error::Error> for AnalyticsError {
    fn from(error: clickhouse::error::Error) -> Self {
        Self::Unavailable(error.to_string())
    }
}

type Params = HashMap<String, String>;

fn invalid(field: &'static str, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Invalid {
        field,
        message: message.into(),
    }
}

fn date(params: &Params, field: &'static str) -> Result<NaiveDate, AnalyticsError> {
    let raw = params
        .get(field)
        .ok_or_else(|| invalid(field, format!("{field} is required (YYYY-MM-DD)")))?;
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("{field} must be a date as YYYY-MM-DD")))
}

/// A validated `[from, to)` range as ClickHouse date-time literals.
fn range(params: &Params) -> Result<(String, String), AnalyticsError> {
    let from = date(params, "from")?;
    let to = date(params, "to")?;
    let days = (to - from).num_days();
    if days <= 0 {
        return Err(invalid("to", "to must be after from"));
    }
    if days > MAX_RANGE_DAYS {
        return Err(invalid(
            "to",
            format!("the range must be at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((format!("{from} 00:00:00"), format!("{to} 00:00:00")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Views,
    WatchTime,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct FilmValue {
    film_id: String,
    value: u64,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct DayViewers {
    day: String,
    viewers: u64,
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct Completion {
    viewers: u64,
    completed: u64,
}

async fn top_films(
    State(state): State<AnalyticsState>,
    Query(params): Query<Params>,
) -> Result<Response, AnalyticsError> {
    let (from, to) = range(&params)?;
    let metric = match params.get("metric").map(String::as_str) {
        None | Some("views") => Metric::Views,
        Some("watch_time") => Metric::WatchTime,
        Some(_) => return Err(invalid("metric", "metric must be views or watch_time")),
    };
    let limit: u64 = match params.get("limit") {
        None => 10,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid("limit", "limit must be from 1 to 100"))?,
    };
    let sql = match metric {
        Metric::Views => {
            "SELECT toString(film_id) AS film_id, uniqExact(user_id) AS value
             FROM ugc_events FINAL
             WHERE event_type = 'view_progress' AND occurred_at >= toDateTime(?, 'UTC')
               AND occurred_at < toDateTime(?, 'UTC')
             GROUP BY film_id ORDER BY value DESC, film_id LIMIT ?"
        }
        Metric::WatchTime => {
            "SELECT toString(film_id) AS film_id, sum(reached) AS value FROM (
                 SELECT film_id, user_id, toUInt64(max(position_s)) AS reached
                 FROM ugc_events FINAL
                 WHERE event_type = 'view_progress' AND occurred_at >= toDateTime(?, 'UTC')
                   AND occurred_at < toDateTime(?, 'UTC')
                 GROUP BY film_id, user_id)
             GROUP BY film_id ORDER BY value DESC, film_id LIMIT ?"
        }
    };
    let items: Vec<FilmValue> = state
        .clickhouse
        .query(sql)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all()
        .await?;
    let metric = if metric == Metric::Views {
        "views"
    } else {
        "watch_time"
    };
    Ok(Json(serde_json::json!({ "metric": metric, "items": items })).into_response())
}

async fn daily_viewers(
    State(state): State<AnalyticsState>,
    Query(params): Query<Params>,
) -> Result<Response, AnalyticsError> {
    let (from, to) = range(&params)?;
    let items: Vec<DayViewers> = state
        .clickhouse
        .query(
            "SELECT toString(toDate(occurred_at)) AS day, uniqExact(user_id) AS viewers
             FROM ugc_events FINAL
             WHERE event_type = 'view_progress' AND occurred_at >= toDateTime(?, 'UTC')
               AND occurred_at < toDateTime(?, 'UTC')
             GROUP BY day ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .fetch_all()
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn completion_rate(
    State(state): State<AnalyticsState>,
    Query(params): Query<Params>,
) -> Result<Response, AnalyticsError> {
    let film_id = params
        .get("film_id")
        .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
        .ok_or_else(|| invalid("film_id", "film_id must be a UUID"))?
        .to_string();
    let completion: Completion = state
        .clickhouse
        .query(
            "SELECT count() AS viewers, countIf(reached >= ? * duration) AS completed FROM (
                 SELECT user_id, max(position_s) AS reached, max(duration_s) AS duration
                 FROM ugc_events FINAL
                 WHERE event_type = 'view_progress' AND film_id = toUUID(?)
                 GROUP BY user_id)",
        )
        .bind(COMPLETION_SHARE)
        .bind(film_id.as_str())
        .fetch_one()
        .await?;
    let rate = if completion.viewers == 0 {
        None
    } else {
        Some((completion.completed as f64 / completion.viewers as f64 * 1000.0).round() / 1000.0)
    };
    Ok(Json(serde_json::json!({
        "film_id": film_id,
        "viewers": completion.viewers,
        "completed": completion.completed,
        "rate": rate,
    }))
    .into_response())
}

/// The analytics routes.
pub fn router(state: AnalyticsState) -> Router {
    Router::new()
        .route("/analytics/top_films", get(top_films))
        .route("/analytics/daily_viewers", get(daily_viewers))
        .route("/analytics/completion_rate", get(completion_rate))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field(result: Result<(String, String), AnalyticsError>) -> &'static str {
        match result {
            Err(AnalyticsError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    /// Ranges need both dates, in order, and at most a year.
    #[test]
    fn ranges_are_checked_naming_the_parameter() {
        assert_eq!(field(range(&params(&[("to", "2026-01-01")]))), "from");
        assert_eq!(
            field(range(&params(&[
                ("from", "2026-13-01"),
                ("to", "2026-01-01")
            ]))),
            "from"
        );
        assert_eq!(
            field(range(&params(&[
                ("from", "2026-01-02"),
                ("to", "2026-01-01")
            ]))),
            "to"
        );
        assert_eq!(
            field(range(&params(&[
                ("from", "2024-01-01"),
                ("to", "2026-01-01")
            ]))),
            "to"
        );
        assert_eq!(
            range(&params(&[("from", "2026-01-01"), ("to", "2026-01-08")]))
                .expect("valid")
                .0,
            "2026-01-01 00:00:00"
        );
    }
}
