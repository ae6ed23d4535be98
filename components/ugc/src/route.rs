//! The ugc component's routes: which path is which read or write, and which methods
//! each answers.
//!
//! [`Route::parse`] only recognizes paths; ids are the raw path segments (validated in
//! [`crate::input`] and [`crate::params`]). [`Route::action`] pairs a route with a
//! method into an [`Action`], or says which methods the route does answer (for 405 and
//! `Allow`). Authentication is the handler's business. Pure: no I/O.

use http::Method;

/// Prefix of every route of this component.
pub const UGC_PREFIX: &str = "/api/v1/ugc";

/// A recognized path, before validation. Ids are the raw path segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/api/v1/ugc/openapi.json`: public.
    OpenApi,
    /// `/api/v1/ugc/events`: player heartbeats, one or a batch.
    Events,
    /// `/api/v1/ugc/me/progress/{film_id}`: the caller's position in a film.
    Progress(&'a str),
    /// `/api/v1/ugc/me/bookmarks`: the caller's bookmarks.
    Bookmarks,
    /// `/api/v1/ugc/films/{film_id}/bookmark`.
    Bookmark(&'a str),
    /// `/api/v1/ugc/films/{film_id}/rating`: the caller's score (writes) and the
    /// film's average (read).
    Rating(&'a str),
    /// `/api/v1/ugc/films/{film_id}/reviews`.
    Reviews(&'a str),
    /// `/api/v1/ugc/reviews/{review_id}`: one review (deletion by its author).
    Review(&'a str),
    /// `/api/v1/ugc/reviews/{review_id}/like`.
    ReviewLike(&'a str),
    /// `/api/v1/ugc/analytics/{report}`: needs the `analytics:read` permission.
    Analytics(Report),
}

/// An analytics report, answered by the host over ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `top_films?from=&to=&metric=views|watch_time&limit=`.
    TopFilms,
    /// `daily_viewers?from=&to=`.
    DailyViewers,
    /// `completion_rate?film_id=`.
    CompletionRate,
}

impl Report {
    /// The report's name, the last segment of its path here and on the host.
    pub fn name(self) -> &'static str {
        match self {
            Self::TopFilms => "top_films",
            Self::DailyViewers => "daily_viewers",
            Self::CompletionRate => "completion_rate",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::TopFilms, Self::DailyViewers, Self::CompletionRate]
            .into_iter()
            .find(|report| report.name() == name)
    }
}

/// What a (route, method) pair asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `GET /openapi.json`: public.
    OpenApi,
    /// A read of the Postgres read models.
    Read(Read<'a>),
    /// An event handed to the intake.
    Write(Write<'a>),
    /// `GET /analytics/{report}`: forwarded to the host.
    Analytics(Report),
}

/// A read. Ids are still raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    /// `GET /me/progress/{film_id}`.
    Progress { film_id: &'a str },
    /// `GET /me/bookmarks`.
    Bookmarks,
    /// `GET /films/{film_id}/rating`.
    RatingSummary { film_id: &'a str },
    /// `GET /films/{film_id}/reviews`.
    Reviews { film_id: &'a str },
}

/// A write: one event type each (a batch of heartbeats for `ViewProgress`). Ids are
/// still raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    ViewProgress,
    BookmarkSet {
        film_id: &'a str,
    },
    BookmarkRemoved {
        film_id: &'a str,
    },
    RatingSet {
        film_id: &'a str,
    },
    RatingRemoved {
        film_id: &'a str,
    },
    ReviewPosted {
        film_id: &'a str,
    },
    /// Only the review's author may; checked against the read model before the event.
    ReviewDeleted {
        review_id: &'a str,
    },
    ReviewLikeSet {
        review_id: &'a str,
    },
    ReviewLikeRemoved {
        review_id: &'a str,
    },
}

impl Write<'_> {
    /// Whether the write reads a JSON body (the others ignore any body).
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Self::ViewProgress
                | Self::RatingSet { .. }
                | Self::ReviewPosted { .. }
                | Self::ReviewLikeSet { .. }
        )
    }
}

impl<'a> Route<'a> {
    /// Matches a request path (without query). Paths are exact: no trailing `/`.
    pub fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(UGC_PREFIX)?.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        Some(match segments.as_slice() {
            ["openapi.json"] => Self::OpenApi,
            ["events"] => Self::Events,
            ["me", "progress", id] => Self::Progress(id),
            ["me", "bookmarks"] => Self::Bookmarks,
            ["films", id, "bookmark"] => Self::Bookmark(id),
            ["films", id, "rating"] => Self::Rating(id),
            ["films", id, "reviews"] => Self::Reviews(id),
            ["reviews", id] => Self::Review(id),
            ["reviews", id, "like"] => Self::ReviewLike(id),
            ["analytics", report] => Self::Analytics(Report::from_name(report)?),
            _ => return None,
        })
    }

    /// The methods this route answers, as an `Allow` header value.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Self::OpenApi | Self::Progress(_) | Self::Bookmarks | Self::Analytics(_) => "GET",
            Self::Events => "POST",
            Self::Reviews(_) => "GET, POST",
            Self::Rating(_) => "GET, PUT, DELETE",
            Self::Bookmark(_) | Self::ReviewLike(_) => "PUT, DELETE",
            Self::Review(_) => "DELETE",
        }
    }

    /// The action `method` asks for on this route; `None` when the route does not
    /// answer it (405).
    pub fn action(self, method: &Method) -> Option<Action<'a>> {
        use Action::{Read as R, Write as W};
        Some(match (self, method.as_str()) {
            (Self::OpenApi, "GET") => Action::OpenApi,
            (Self::Analytics(report), "GET") => Action::Analytics(report),
            (Self::Progress(film_id), "GET") => R(Read::Progress { film_id }),
            (Self::Bookmarks, "GET") => R(Read::Bookmarks),
            (Self::Rating(film_id), "GET") => R(Read::RatingSummary { film_id }),
            (Self::Reviews(film_id), "GET") => R(Read::Reviews { film_id }),
            (Self::Events, "POST") => W(Write::ViewProgress),
            (Self::Bookmark(film_id), "PUT") => W(Write::BookmarkSet { film_id }),
            (Self::Bookmark(film_id), "DELETE") => W(Write::BookmarkRemoved { film_id }),
            (Self::Rating(film_id), "PUT") => W(Write::RatingSet { film_id }),
            (Self::Rating(film_id), "DELETE") => W(Write::RatingRemoved { film_id }),
            (Self::Reviews(film_id), "POST") => W(Write::ReviewPosted { film_id }),
            (Self::Review(review_id), "DELETE") => W(Write::ReviewDeleted { review_id }),
            (Self::ReviewLike(review_id), "PUT") => W(Write::ReviewLikeSet { review_id }),
            (Self::ReviewLike(review_id), "DELETE") => W(Write::ReviewLikeRemoved { review_id }),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILM: &str = "30000000-0000-4000-8000-000000000001";

    /// Every documented path is recognized, with its raw id.
    #[test]
    fn documented_paths_are_recognized_with_their_ids() {
        assert_eq!(
            Route::parse("/api/v1/ugc/openapi.json"),
            Some(Route::OpenApi)
        );
        assert_eq!(Route::parse("/api/v1/ugc/events"), Some(Route::Events));
        assert_eq!(
            Route::parse(&format!("/api/v1/ugc/films/{FILM}/bookmark")),
            Some(Route::Bookmark(FILM))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/films/x/rating"),
            Some(Route::Rating("x"))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/films/x/reviews"),
            Some(Route::Reviews("x"))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/reviews/r/like"),
            Some(Route::ReviewLike("r"))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/reviews/r"),
            Some(Route::Review("r"))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/me/progress/x"),
            Some(Route::Progress("x"))
        );
        assert_eq!(
            Route::parse("/api/v1/ugc/me/bookmarks"),
            Some(Route::Bookmarks)
        );
        for report in [
            Report::TopFilms,
            Report::DailyViewers,
            Report::CompletionRate,
        ] {
            assert_eq!(
                Route::parse(&format!("/api/v1/ugc/analytics/{}", report.name())),
                Some(Route::Analytics(report))
            );
        }
    }

    /// Unknown and inexact paths are not routes (404 `route_not_found`).
    #[test]
    fn unknown_and_inexact_paths_are_not_routes() {
        for path in [
            "/api/v1/ugc",
            "/api/v1/ugc/",
            "/api/v1/ugc/events/",
            "/api/v1/ugc/eventsx",
            "/api/v1/ugcx/events",
            "/api/v1/ugc/films/x",
            "/api/v1/ugc/films/x/bookmark/extra",
            "/api/v1/ugc/reviews/r/",
            "/api/v1/ugc/reviews/r/extra",
            "/api/v1/ugc/me",
            "/api/v1/ugc/me/progress",
            "/api/v1/ugc/me/progress/x/y",
            "/api/v1/ugc/me/bookmarks/",
            "/api/v1/ugc/analytics",
            "/api/v1/ugc/analytics/",
            "/api/v1/ugc/analytics/top_films/",
            "/api/v1/ugc/analytics/revenue",
            "/api/v1/events",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    /// Each route answers only its methods; the rest are 405 with the right `Allow`.
    #[test]
    fn routes_answer_only_their_methods() {
        assert_eq!(
            Route::Events.action(&Method::POST),
            Some(Action::Write(Write::ViewProgress))
        );
        assert_eq!(Route::Events.action(&Method::GET), None);
        assert_eq!(Route::Events.allowed_methods(), "POST");
        assert_eq!(
            Route::Bookmark(FILM).action(&Method::DELETE),
            Some(Action::Write(Write::BookmarkRemoved { film_id: FILM }))
        );
        assert_eq!(Route::Bookmark(FILM).action(&Method::POST), None);
        assert_eq!(Route::Bookmark(FILM).action(&Method::GET), None);
        assert_eq!(Route::Reviews(FILM).action(&Method::PUT), None);
        assert_eq!(
            Route::ReviewLike("r").action(&Method::PUT),
            Some(Action::Write(Write::ReviewLikeSet { review_id: "r" }))
        );
        assert_eq!(Route::OpenApi.action(&Method::POST), None);
        assert_eq!(Route::Progress(FILM).action(&Method::PUT), None);
        assert_eq!(Route::Bookmarks.action(&Method::POST), None);
        assert_eq!(Route::Bookmarks.allowed_methods(), "GET");
    }

    /// `GET` on a film's rating reads the average, beside the caller's `PUT` and
    /// `DELETE`.
    #[test]
    fn film_rating_answers_get_beside_put_and_delete() {
        let rating = Route::Rating(FILM);
        assert_eq!(
            rating.action(&Method::GET),
            Some(Action::Read(Read::RatingSummary { film_id: FILM }))
        );
        assert_eq!(
            rating.action(&Method::PUT),
            Some(Action::Write(Write::RatingSet { film_id: FILM }))
        );
        assert_eq!(
            rating.action(&Method::DELETE),
            Some(Action::Write(Write::RatingRemoved { film_id: FILM }))
        );
        assert_eq!(rating.action(&Method::POST), None);
        assert_eq!(rating.allowed_methods(), "GET, PUT, DELETE");
    }

    /// A film's reviews are listed with `GET` and posted with `POST`.
    #[test]
    fn film_reviews_answer_get_and_post() {
        let reviews = Route::Reviews(FILM);
        assert_eq!(
            reviews.action(&Method::GET),
            Some(Action::Read(Read::Reviews { film_id: FILM }))
        );
        assert_eq!(
            reviews.action(&Method::POST),
            Some(Action::Write(Write::ReviewPosted { film_id: FILM }))
        );
        assert_eq!(reviews.allowed_methods(), "GET, POST");
    }

    /// A review answers only `DELETE` (a write without a body).
    #[test]
    fn review_answers_only_delete() {
        let review = Route::Review("r");
        let delete = review.action(&Method::DELETE);
        assert_eq!(
            delete,
            Some(Action::Write(Write::ReviewDeleted { review_id: "r" }))
        );
        assert!(matches!(delete, Some(Action::Write(write)) if !write.has_body()));
        assert_eq!(review.action(&Method::GET), None);
        assert_eq!(review.allowed_methods(), "DELETE");
    }

    /// Every method a route's `Allow` lists is answered, and only those.
    #[test]
    fn allow_header_lists_exactly_the_answered_methods() {
        let routes = [
            Route::OpenApi,
            Route::Events,
            Route::Progress(FILM),
            Route::Bookmarks,
            Route::Bookmark(FILM),
            Route::Rating(FILM),
            Route::Reviews(FILM),
            Route::Review(FILM),
            Route::ReviewLike(FILM),
            Route::Analytics(Report::TopFilms),
        ];
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
        ];
        for route in routes {
            let allowed: Vec<&str> = route.allowed_methods().split(", ").collect();
            for method in &methods {
                assert_eq!(
                    route.action(method).is_some(),
                    allowed.contains(&method.as_str()),
                    "{route:?} {method}"
                );
            }
        }
    }
}
