//! Every query of the ugc component: reads of the Postgres read models in schema `ugc`
//! (`migrations/postgres/0003_ugc.sql`), which the ugc read-model consumer keeps from
//! Kafka `ugc.events`.
//!
//! Read only: this component never writes these tables (writes are events, see
//! `intake`), so what it reads lags accepted writes by the consumer's delay. Every
//! statement is parameterized; the only text spliced into SQL is fixed here (the
//! timestamp format and the review orders). Timestamps leave as RFC 3339 UTC text with
//! microseconds, ids as canonical UUID text.
//!
//! Failures are [`DbError`]s: [`DbError::Unavailable`] when Postgres cannot be reached
//! or dropped the connection (the handler answers 503), [`DbError::Failed`] for
//! anything else (a failed statement, a row of an unexpected shape: 500).

pub use cinema_edge::pg::{DbError, DbResult};
use cinema_edge::pg::{Pg, RFC3339_UTC, column};
use serde::Serialize;
use spin_sdk::pg::{ParameterValue, Row};

use crate::params::{Page, ReviewSort};

fn uuid(value: &str) -> ParameterValue {
    ParameterValue::Uuid(value.to_owned())
}

/// The caller's position in a film.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub film_id: String,
    pub position_s: i32,
    pub duration_s: i32,
    /// When the heartbeat that set it was accepted.
    pub updated_at: String,
}

/// One of the caller's bookmarks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bookmark {
    pub film_id: String,
    /// When the (latest) `bookmark_set` was accepted.
    pub created_at: String,
}

/// A film's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatingSummary {
    pub film_id: String,
    /// Mean score rounded to 2 decimals; `None` without scores.
    pub average: Option<f64>,
    /// How many users scored the film.
    pub count: i64,
}

/// A review as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub id: String,
    pub film_id: String,
    pub user_id: String,
    pub text: String,
    pub created_at: String,
    pub likes: i32,
    pub dislikes: i32,
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A connection to the platform's Postgres.
pub struct Db {
    pg: Pg,
}

impl Db {
    pub async fn open(url: &str) -> DbResult<Self> {
        Ok(Self {
            pg: Pg::open(url).await?,
        })
    }

    async fn rows(
        &self,
        context: &str,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> DbResult<Vec<Row>> {
        self.pg.rows(context, statement, params).await
    }

    /// The total of a list whose page came back empty: past the end, or no rows.
    async fn total_past_page(
        &self,
        context: &str,
        page: Page,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> DbResult<i64> {
        if page.offset() == 0 {
            return Ok(0);
        }
        let rows = self.rows(context, statement, params).await?;
        rows.first().map_or(Ok(0), |row| column(row, "total"))
    }

    /// The caller's latest position in `film_id`, if any.
    pub async fn progress(&self, user_id: &str, film_id: &str) -> DbResult<Option<Progress>> {
        let statement = format!(
            "SELECT film_id::text AS film_id, position_s, duration_s, \
                    to_char(occurred_at AT TIME ZONE 'UTC', {RFC3339_UTC}) AS updated_at \
             FROM ugc.progress WHERE user_id = $1 AND film_id = $2"
        );
        let rows = self
            .rows(
                "failed to select progress",
                &statement,
                vec![uuid(user_id), uuid(film_id)],
            )
            .await?;
        rows.first()
            .map(|row| {
                Ok(Progress {
                    film_id: column(row, "film_id")?,
                    position_s: column(row, "position_s")?,
                    duration_s: column(row, "duration_s")?,
                    updated_at: column(row, "updated_at")?,
                })
            })
            .transpose()
    }

    /// A page of the caller's active bookmarks, newest first.
    pub async fn bookmarks(&self, user_id: &str, page: Page) -> DbResult<Listing<Bookmark>> {
        let context = "failed to select bookmarks";
        let statement = format!(
            "SELECT film_id::text AS film_id, \
                    to_char(occurred_at AT TIME ZONE 'UTC', {RFC3339_UTC}) AS created_at, \
                    count(*) OVER () AS total \
             FROM ugc.bookmarks WHERE user_id = $1 AND active \
             ORDER BY occurred_at DESC, film_id LIMIT $2 OFFSET $3"
        );
        let rows = self
            .rows(
                context,
                &statement,
                vec![
                    uuid(user_id),
                    ParameterValue::Int64(page.limit()),
                    ParameterValue::Int64(page.offset()),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => column(row, "total")?,
            None => {
                self.total_past_page(
                    "failed to count bookmarks",
                    page,
                    "SELECT count(*) AS total FROM ugc.bookmarks WHERE user_id = $1 AND active",
                    vec![uuid(user_id)],
                )
                .await?
            }
        };
        let items = rows
            .iter()
            .map(|row| {
                Ok(Bookmark {
                    film_id: column(row, "film_id")?,
                    created_at: column(row, "created_at")?,
                })
            })
            .collect::<DbResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// The mean (rounded to 2 decimals, exactly, in `numeric`) and count of a film's
    /// scores; removed ratings (null scores) do not count.
    pub async fn rating_summary(&self, film_id: &str) -> DbResult<RatingSummary> {
        let rows = self
            .rows(
                "failed to select the rating summary",
                "SELECT round(avg(score), 2)::float8 AS average, count(score) AS rating_count \
                 FROM ugc.ratings WHERE film_id = $1 AND score IS NOT NULL",
                vec![uuid(film_id)],
            )
            .await?;
        // An aggregate without GROUP BY always answers one row.
        let row = rows
            .first()
            .ok_or_else(|| DbError::Failed("the rating summary returned no row".into()))?;
        Ok(RatingSummary {
            film_id: film_id.to_owned(),
            average: column::<Option<f64>>(row, "average")?,
            count: column(row, "rating_count")?,
        })
    }

    /// A page of a film's reviews that are not deleted, in `sort` order.
    pub async fn reviews(
        &self,
        film_id: &str,
        sort: ReviewSort,
        page: Page,
    ) -> DbResult<Listing<Review>> {
        let order = match sort {
            ReviewSort::NewestFirst => "created DESC, id DESC",
            ReviewSort::MostLikedFirst => "likes DESC, created DESC, id DESC",
        };
        let statement = format!(
            "SELECT id::text AS id, film_id::text AS film_id, user_id::text AS user_id, text, \
                    to_char(created AT TIME ZONE 'UTC', {RFC3339_UTC}) AS created_at, \
                    likes, dislikes, count(*) OVER () AS total \
             FROM ugc.reviews WHERE film_id = $1 AND NOT deleted \
             ORDER BY {order} LIMIT $2 OFFSET $3"
        );
        let rows = self
            .rows(
                "failed to select reviews",
                &statement,
                vec![
                    uuid(film_id),
                    ParameterValue::Int64(page.limit()),
                    ParameterValue::Int64(page.offset()),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => column(row, "total")?,
            None => {
                self.total_past_page(
                    "failed to count reviews",
                    page,
                    "SELECT count(*) AS total FROM ugc.reviews WHERE film_id = $1 AND NOT deleted",
                    vec![uuid(film_id)],
                )
                .await?
            }
        };
        let items = rows
            .iter()
            .map(|row| {
                Ok(Review {
                    id: column(row, "id")?,
                    film_id: column(row, "film_id")?,
                    user_id: column(row, "user_id")?,
                    text: column(row, "text")?,
                    created_at: column(row, "created_at")?,
                    likes: column(row, "likes")?,
                    dislikes: column(row, "dislikes")?,
                })
            })
            .collect::<DbResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// The author of a review that exists and is not deleted; `None` otherwise.
    pub async fn live_review_author(&self, review_id: &str) -> DbResult<Option<String>> {
        let rows = self
            .rows(
                "failed to select the review's author",
                "SELECT user_id::text AS user_id FROM ugc.reviews WHERE id = $1 AND NOT deleted",
                vec![uuid(review_id)],
            )
            .await?;
        rows.first().map(|row| column(row, "user_id")).transpose()
    }
}
