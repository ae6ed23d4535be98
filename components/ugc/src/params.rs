//! The read requests' inputs: path ids and query-string parameters, checked into a
//! [`ReadQuery`] before anything touches the database.
//!
//! Errors are [`Invalid`]s naming the parameter as the client wrote it (`film_id`,
//! `page_size`, `sort`), answered 422 `validation_failed` like the writes' fields.
//! Query conventions match the catalog's: the last occurrence of a repeated parameter
//! wins, an empty value (`page_size=`) counts as absent, unknown parameters are
//! ignored. Pure: no I/O.

use std::collections::BTreeMap;

use crate::input::{Invalid, path_uuid};
use crate::route::Read;

/// Page size when `page_size` is absent.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest `page_size`.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page of a list: `number` from 1, `size` 1..=[`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            number: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl Page {
    /// SQL `LIMIT`.
    pub fn limit(self) -> i64 {
        i64::from(self.size)
    }

    /// SQL `OFFSET`: rows before this page (cannot overflow: both are `u32`).
    pub fn offset(self) -> i64 {
        (i64::from(self.number) - 1) * i64::from(self.size)
    }

    fn parse(raw: &RawParams) -> Result<Self, Invalid> {
        let size = match raw.get("page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    Invalid::new(
                        "page_size",
                        format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        let number = match raw.get("page_number") {
            None => 1,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Invalid::new(
                        "page_number",
                        format!("must be an integer from 1 to {}", u32::MAX),
                    )
                })?,
        };
        Ok(Self { number, size })
    }
}

/// Order of a film's reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReviewSort {
    /// `-created`: newest first (the default).
    #[default]
    NewestFirst,
    /// `-likes`: most liked first, then newest.
    MostLikedFirst,
}

impl ReviewSort {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewestFirst => "-created",
            Self::MostLikedFirst => "-likes",
        }
    }

    fn parse(raw: &RawParams) -> Result<Self, Invalid> {
        match raw.get("sort") {
            None => Ok(Self::default()),
            Some(value) => [Self::NewestFirst, Self::MostLikedFirst]
                .into_iter()
                .find(|sort| sort.as_str() == value)
                .ok_or_else(|| Invalid::new("sort", "must be -created or -likes")),
        }
    }
}

/// A valid read: canonical ids and parsed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadQuery {
    /// The caller's position in `film_id`.
    Progress { film_id: String },
    /// A page of the caller's bookmarks.
    Bookmarks { page: Page },
    /// A film's average score.
    RatingSummary { film_id: String },
    /// A page of a film's reviews.
    Reviews {
        film_id: String,
        sort: ReviewSort,
        page: Page,
    },
}

impl ReadQuery {
    /// Checks a read's path id and its query string (without the `?`). Routes without
    /// a list ignore the query string.
    pub fn parse(read: Read<'_>, query: &str) -> Result<Self, Invalid> {
        let film = |id: &str| path_uuid("film_id", id);
        Ok(match read {
            Read::Progress { film_id } => Self::Progress {
                film_id: film(film_id)?,
            },
            Read::RatingSummary { film_id } => Self::RatingSummary {
                film_id: film(film_id)?,
            },
            Read::Bookmarks => Self::Bookmarks {
                page: Page::parse(&RawParams::parse(query))?,
            },
            Read::Reviews { film_id } => {
                let film_id = film(film_id)?;
                let raw = RawParams::parse(query);
                Self::Reviews {
                    film_id,
                    sort: ReviewSort::parse(&raw)?,
                    page: Page::parse(&raw)?,
                }
            }
        })
    }
}

/// Decoded query-string pairs: last value wins, empty values dropped.
#[derive(Debug, Default)]
struct RawParams(BTreeMap<String, String>);

impl RawParams {
    /// Decodes a raw query string (percent-encoding, and `+` as space).
    fn parse(query: &str) -> Self {
        let mut values = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if value.is_empty() {
                values.remove(name.as_ref());
            } else {
                values.insert(name.into_owned(), value.into_owned());
            }
        }
        Self(values)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILM: &str = "30000000-0000-4000-8000-000000000001";

    fn reviews(query: &str) -> Result<ReadQuery, Invalid> {
        ReadQuery::parse(Read::Reviews { film_id: FILM }, query)
    }

    fn bookmarks(query: &str) -> Result<ReadQuery, Invalid> {
        ReadQuery::parse(Read::Bookmarks, query)
    }

    fn field_of(result: Result<ReadQuery, Invalid>) -> String {
        result.expect_err("a 422").field
    }

    /// Without parameters a list is page 1 of 20, and reviews are newest first.
    #[test]
    fn lists_default_to_page_1_of_20_newest_first() {
        assert_eq!(
            reviews(""),
            Ok(ReadQuery::Reviews {
                film_id: FILM.into(),
                sort: ReviewSort::NewestFirst,
                page: Page {
                    number: 1,
                    size: 20
                },
            })
        );
        assert_eq!(
            bookmarks(""),
            Ok(ReadQuery::Bookmarks {
                page: Page::default()
            })
        );
    }

    /// `-created` and `-likes` are the two review orders.
    #[test]
    fn review_sort_accepts_minus_created_and_minus_likes() {
        let sort_of = |query: &str| match reviews(query) {
            Ok(ReadQuery::Reviews { sort, .. }) => sort,
            other => panic!("expected reviews, got {other:?}"),
        };
        assert_eq!(sort_of("sort=-created"), ReviewSort::NewestFirst);
        assert_eq!(sort_of("sort=-likes"), ReviewSort::MostLikedFirst);
        assert_eq!(sort_of("sort=%2Dlikes"), ReviewSort::MostLikedFirst);
    }

    /// Any other sort is refused, naming `sort`.
    #[test]
    fn unknown_review_sort_is_rejected_naming_sort() {
        for query in ["sort=created", "sort=likes", "sort=-rating", "sort=+likes"] {
            assert_eq!(field_of(reviews(query)), "sort", "{query}");
        }
    }

    /// `page_size` is 1..=100; anything else names `page_size`.
    #[test]
    fn page_size_outside_1_to_100_is_rejected_naming_page_size() {
        for query in [
            "page_size=0",
            "page_size=101",
            "page_size=-1",
            "page_size=ten",
        ] {
            assert_eq!(field_of(bookmarks(query)), "page_size", "{query}");
            assert_eq!(field_of(reviews(query)), "page_size", "{query}");
        }
        assert!(bookmarks("page_size=100").is_ok());
        assert!(bookmarks("page_size=1").is_ok());
    }

    /// `page_number` is a whole number from 1; anything else names `page_number`.
    #[test]
    fn page_number_below_1_or_not_a_number_is_rejected_naming_page_number() {
        for query in [
            "page_number=0",
            "page_number=-3",
            "page_number=1.5",
            "page_number=first",
            "page_number=99999999999",
        ] {
            assert_eq!(field_of(bookmarks(query)), "page_number", "{query}");
        }
    }

    /// The page becomes `LIMIT` and `OFFSET`, even at the largest page number.
    #[test]
    fn page_becomes_limit_and_offset() {
        let page = match bookmarks("page_number=3&page_size=25") {
            Ok(ReadQuery::Bookmarks { page }) => page,
            other => panic!("expected bookmarks, got {other:?}"),
        };
        assert_eq!((page.limit(), page.offset()), (25, 50));
        let last = Page {
            number: u32::MAX,
            size: MAX_PAGE_SIZE,
        };
        assert_eq!(last.offset(), (i64::from(u32::MAX) - 1) * 100);
    }

    /// The last occurrence wins, empty values are absent and unknown names ignored.
    #[test]
    fn last_value_wins_empty_is_absent_and_unknown_is_ignored() {
        assert_eq!(
            bookmarks("page_size=5&page_size=7&page_number=&color=red"),
            Ok(ReadQuery::Bookmarks {
                page: Page { number: 1, size: 7 }
            })
        );
    }

    /// Path ids are canonicalized; a bad one names `film_id`, before the query.
    #[test]
    fn film_ids_are_canonicalized_and_a_bad_one_names_film_id() {
        assert_eq!(
            ReadQuery::parse(
                Read::Progress {
                    film_id: &FILM.to_uppercase()
                },
                ""
            ),
            Ok(ReadQuery::Progress {
                film_id: FILM.into()
            })
        );
        let bad = [
            Read::Progress { film_id: "x" },
            Read::RatingSummary { film_id: "x" },
            Read::Reviews { film_id: "x" },
        ];
        for read in bad {
            assert_eq!(field_of(ReadQuery::parse(read, "sort=bad")), "film_id");
        }
    }

    /// Routes without a list ignore the query string.
    #[test]
    fn single_resource_reads_ignore_the_query_string() {
        assert_eq!(
            ReadQuery::parse(Read::RatingSummary { film_id: FILM }, "page_size=0"),
            Ok(ReadQuery::RatingSummary {
                film_id: FILM.into()
            })
        );
    }
}
