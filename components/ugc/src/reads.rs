//! The read routes' answers: a checked [`ReadQuery`] in, the read model's rows out as
//! 200 JSON.
//!
//! Owns the response shapes (pages are `{"items", "page_number", "page_size",
//! "total"}`) and what "the caller" means for `/me` reads: the token's `sub` as a
//! canonical UUID. A `sub` that is not a UUID owns no rows (404 for progress, an empty
//! page of bookmarks) and is never sent to Postgres. Queries are [`crate::db`]'s.
//! Answers are `Cache-Control: no-store`: they are per caller or change with every
//! event applied.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::db::{Db, Listing};
use crate::error::{ApiError, ApiResult, Reply, json};
use crate::params::{Page, ReadQuery};

/// A page of a list, as every list route answers it.
#[derive(Debug, Serialize)]
struct PageOf<T> {
    items: Vec<T>,
    page_number: u32,
    page_size: u32,
    /// Rows in the whole list, not just this page.
    total: i64,
}

impl<T> PageOf<T> {
    fn new(listing: Listing<T>, page: Page) -> Self {
        Self {
            items: listing.items,
            page_number: page.number,
            page_size: page.size,
            total: listing.total,
        }
    }
}

/// 200 with `value` as JSON, not cached.
fn ok(value: &impl Serialize) -> ApiResult<Reply> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::Internal(format!("failed to encode a read answer: {e}")))?;
    let mut reply = json(StatusCode::OK, Bytes::from(body));
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(reply)
}

/// Answers `query` for the caller (`caller_id`: the token's `sub` if it is a UUID,
/// canonical) from the read models at `database_url`.
pub async fn answer(
    query: ReadQuery,
    caller_id: Option<&str>,
    database_url: &str,
) -> ApiResult<Reply> {
    match query {
        ReadQuery::Progress { film_id } => {
            let user_id = caller_id.ok_or(ApiError::ProgressNotFound)?;
            let progress = Db::open(database_url)
                .await?
                .progress(user_id, &film_id)
                .await?
                .ok_or(ApiError::ProgressNotFound)?;
            ok(&progress)
        }
        ReadQuery::Bookmarks { page } => {
            let listing = match caller_id {
                Some(user_id) => {
                    Db::open(database_url)
                        .await?
                        .bookmarks(user_id, page)
                        .await?
                }
                None => Listing {
                    items: Vec::new(),
                    total: 0,
                },
            };
            ok(&PageOf::new(listing, page))
        }
        ReadQuery::RatingSummary { film_id } => ok(&Db::open(database_url)
            .await?
            .rating_summary(&film_id)
            .await?),
        ReadQuery::Reviews {
            film_id,
            sort,
            page,
        } => {
            let listing = Db::open(database_url)
                .await?
                .reviews(&film_id, sort, page)
                .await?;
            ok(&PageOf::new(listing, page))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::db::{Bookmark, Progress, RatingSummary, Review};

    const FILM: &str = "30000000-0000-4000-8000-000000000001";
    const REVIEW: &str = "40000000-0000-4000-8000-000000000001";
    const USER: &str = "10000000-0000-4000-8000-000000000001";
    const AT: &str = "2025-11-26T09:40:00.123456Z";

    fn shape(value: &impl Serialize) -> Value {
        serde_json::to_value(value).expect("serializable")
    }

    /// Progress answers film, position, duration and when it was updated.
    #[test]
    fn progress_answers_position_duration_and_updated_at() {
        let progress = Progress {
            film_id: FILM.into(),
            position_s: 120,
            duration_s: 5400,
            updated_at: AT.into(),
        };
        assert_eq!(
            shape(&progress),
            json!({"film_id": FILM, "position_s": 120, "duration_s": 5400, "updated_at": AT})
        );
    }

    /// A page of bookmarks carries its items, its number and size, and the total.
    #[test]
    fn bookmark_page_carries_items_page_and_total() {
        let listing = Listing {
            items: vec![Bookmark {
                film_id: FILM.into(),
                created_at: AT.into(),
            }],
            total: 41,
        };
        let page = Page {
            number: 3,
            size: 20,
        };
        assert_eq!(
            shape(&PageOf::new(listing, page)),
            json!({"items": [{"film_id": FILM, "created_at": AT}], "page_number": 3,
                   "page_size": 20, "total": 41})
        );
    }

    /// A film nobody rated has a null average and a count of 0.
    #[test]
    fn unrated_film_has_a_null_average_and_zero_count() {
        let summary = RatingSummary {
            film_id: FILM.into(),
            average: None,
            count: 0,
        };
        assert_eq!(
            shape(&summary),
            json!({"film_id": FILM, "average": null, "count": 0})
        );
        let rated = RatingSummary {
            average: Some(7.67),
            count: 3,
            ..summary
        };
        assert_eq!(shape(&rated)["average"], json!(7.67));
    }

    /// Reviews are listed with their ids, author, text, time and like counts.
    #[test]
    fn review_page_lists_ids_author_text_time_and_likes() {
        let listing = Listing {
            items: vec![Review {
                id: REVIEW.into(),
                film_id: FILM.into(),
                user_id: USER.into(),
                text: "great".into(),
                created_at: AT.into(),
                likes: 4,
                dislikes: 1,
            }],
            total: 1,
        };
        assert_eq!(
            shape(&PageOf::new(listing, Page::default())),
            json!({"items": [{"id": REVIEW, "film_id": FILM, "user_id": USER, "text": "great",
                              "created_at": AT, "likes": 4, "dislikes": 1}],
                   "page_number": 1, "page_size": 20, "total": 1})
        );
    }
}
