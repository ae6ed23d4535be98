//! The ugc component's routes: which path is which write, and which methods each
//! answers.
//!
//! [`Route::parse`] only recognizes paths; ids are the raw path segments (validated in
//! [`crate::input`]). [`Route::write`] pairs a route with a method into a [`Write`], or
//! says which methods the route does answer (for 405 and `Allow`). Authentication is the
//! handler's business. Pure: no I/O.

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
    /// `/api/v1/ugc/films/{film_id}/bookmark`.
    Bookmark(&'a str),
    /// `/api/v1/ugc/films/{film_id}/rating`.
    Rating(&'a str),
    /// `/api/v1/ugc/films/{film_id}/reviews`.
    Reviews(&'a str),
    /// `/api/v1/ugc/reviews/{review_id}/like`.
    ReviewLike(&'a str),
}

/// What a (route, method) pair asks for. Ids are still raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// `GET /openapi.json`: not a write; public.
    OpenApi,
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
            ["films", id, "bookmark"] => Self::Bookmark(id),
            ["films", id, "rating"] => Self::Rating(id),
            ["films", id, "reviews"] => Self::Reviews(id),
            ["reviews", id, "like"] => Self::ReviewLike(id),
            _ => return None,
        })
    }

    /// The methods this route answers, as an `Allow` header value.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Self::OpenApi => "GET",
            Self::Events | Self::Reviews(_) => "POST",
            Self::Bookmark(_) | Self::Rating(_) | Self::ReviewLike(_) => "PUT, DELETE",
        }
    }

    /// The write `method` asks for on this route; `None` when the route does not answer
    /// it (405).
    pub fn write(self, method: &Method) -> Option<Write<'a>> {
        Some(match (self, method.as_str()) {
            (Self::OpenApi, "GET") => Write::OpenApi,
            (Self::Events, "POST") => Write::ViewProgress,
            (Self::Bookmark(film_id), "PUT") => Write::BookmarkSet { film_id },
            (Self::Bookmark(film_id), "DELETE") => Write::BookmarkRemoved { film_id },
            (Self::Rating(film_id), "PUT") => Write::RatingSet { film_id },
            (Self::Rating(film_id), "DELETE") => Write::RatingRemoved { film_id },
            (Self::Reviews(film_id), "POST") => Write::ReviewPosted { film_id },
            (Self::ReviewLike(review_id), "PUT") => Write::ReviewLikeSet { review_id },
            (Self::ReviewLike(review_id), "DELETE") => Write::ReviewLikeRemoved { review_id },
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
    }

    /// Unknown, inexact and not-yet-built paths are not routes (404 `route_not_found`).
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
            "/api/v1/ugc/reviews/r",
            "/api/v1/events",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    /// Each route answers only its methods; the rest are 405 with the right `Allow`.
    #[test]
    fn routes_answer_only_their_methods() {
        assert_eq!(
            Route::Events.write(&Method::POST),
            Some(Write::ViewProgress)
        );
        assert_eq!(Route::Events.write(&Method::GET), None);
        assert_eq!(Route::Events.allowed_methods(), "POST");
        assert_eq!(
            Route::Bookmark(FILM).write(&Method::DELETE),
            Some(Write::BookmarkRemoved { film_id: FILM })
        );
        assert_eq!(Route::Bookmark(FILM).write(&Method::POST), None);
        assert_eq!(Route::Rating(FILM).allowed_methods(), "PUT, DELETE");
        assert_eq!(Route::Reviews(FILM).write(&Method::PUT), None);
        assert_eq!(
            Route::ReviewLike("r").write(&Method::PUT),
            Some(Write::ReviewLikeSet { review_id: "r" })
        );
        assert_eq!(Route::OpenApi.write(&Method::POST), None);
    }
}
