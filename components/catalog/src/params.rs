//! Query-string parameters of the catalog routes: parsing, validation and their
//! canonical form.
//!
//! Pure: no I/O, no Spin. Every parser either returns typed, in-range values or an
//! [`InvalidParameter`] naming the parameter at fault (the handler turns it into a 422
//! `invalid_parameter`). The canonical form ([`canonical_query`]) lists only validated
//! values, in one fixed order, with normalized spellings (hyphenated lowercase UUIDs,
//! shortest float and integer forms); it is what the host is sent and what cache keys
//! are made of, so two spellings of one request share a cache entry.
//!
//! Conventions: the last occurrence of a repeated parameter wins; an empty value
//! (`genre=`) counts as absent; unknown parameters are ignored (they never reach the
//! host or the cache key).

use std::collections::BTreeMap;

use uuid::Uuid;

/// Page size when `page_size` is absent.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest `page_size`.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Deepest result served: `page_size * page_number` may not exceed it.
pub const MAX_RESULT_WINDOW: u64 = 10_000;
/// Longest `query`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Range of `year_from` and `year_to`.
pub const YEARS: std::ops::RangeInclusive<i32> = 1800..=2100;
/// Range of `rating_from` and `rating_to`.
pub const RATINGS: std::ops::RangeInclusive<f64> = 0.0..=10.0;

/// A parameter that failed validation: which one, and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter {
    /// The parameter's name as the client spelled it (`page_size`, `uuid`, ...).
    pub field: &'static str,
    pub message: String,
}

impl InvalidParameter {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

pub type ParamResult<T, E = InvalidParameter> = Result<T, E>;

/// Decoded query-string pairs: last value wins, empty values dropped.
#[derive(Debug, Default)]
pub struct RawParams(BTreeMap<String, String>);

impl RawParams {
    /// Decodes a raw query string (`a=1&b=x+y`, percent-encoding and `+` as space).
    pub fn parse(query: &str) -> Self {
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

/// Order of film results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilmSort {
    /// Best match first; only for searches.
    Relevance,
    ImdbRatingAscending,
    ImdbRatingDescending,
    CreationDateAscending,
    CreationDateDescending,
}

impl FilmSort {
    /// The wire spelling, shared by the public API and the host.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::ImdbRatingAscending => "imdb_rating",
            Self::ImdbRatingDescending => "-imdb_rating",
            Self::CreationDateAscending => "creation_date",
            Self::CreationDateDescending => "-creation_date",
        }
    }

    fn parse(value: &str, allow_relevance: bool) -> ParamResult<Self> {
        match value {
            "relevance" if allow_relevance => Ok(Self::Relevance),
            "imdb_rating" => Ok(Self::ImdbRatingAscending),
            "-imdb_rating" => Ok(Self::ImdbRatingDescending),
            "creation_date" => Ok(Self::CreationDateAscending),
            "-creation_date" => Ok(Self::CreationDateDescending),
            _ if allow_relevance => Err(InvalidParameter::new(
                "sort",
                "sort must be one of relevance, imdb_rating, -imdb_rating, creation_date, \
                 -creation_date",
            )),
            _ => Err(InvalidParameter::new(
                "sort",
                "sort must be one of imdb_rating, -imdb_rating, creation_date, -creation_date",
            )),
        }
    }
}

/// Kind of a film.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilmType {
    Movie,
    TvShow,
}

impl FilmType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Movie => "movie",
            Self::TvShow => "tv_show",
        }
    }

    fn parse(value: &str) -> ParamResult<Self> {
        match value {
            "movie" => Ok(Self::Movie),
            "tv_show" => Ok(Self::TvShow),
            _ => Err(InvalidParameter::new(
                "type",
                "type must be `movie` or `tv_show`",
            )),
        }
    }
}

/// Who may watch a film.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Free,
    Subscription,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Subscription => "subscription",
        }
    }

    fn parse(value: &str) -> ParamResult<Self> {
        match value {
            "free" => Ok(Self::Free),
            "subscription" => Ok(Self::Subscription),
            _ => Err(InvalidParameter::new(
                "access",
                "access must be `free` or `subscription`",
            )),
        }
    }
}

/// Which page of a result list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1..=[`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// From 1; `page_size * page_number` is at most [`MAX_RESULT_WINDOW`].
    pub page_number: u32,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            page_number: 1,
        }
    }
}

impl Paging {
    fn parse(raw: &RawParams) -> ParamResult<Self> {
        let page_size = match raw.get("page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    InvalidParameter::new(
                        "page_size",
                        format!("page_size must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        let page_number = match raw.get("page_number") {
            None => 1,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    InvalidParameter::new(
                        "page_number",
                        "page_number must be an integer of at least 1",
                    )
                })?,
        };
        if u64::from(page_size) * u64::from(page_number) > MAX_RESULT_WINDOW {
            return Err(InvalidParameter::new(
                "page_number",
                format!(
                    "page_number * page_size must be at most {MAX_RESULT_WINDOW}: results past \
                     the first {MAX_RESULT_WINDOW} are not served"
                ),
            ));
        }
        Ok(Self {
            page_size,
            page_number,
        })
    }

    /// How many pages `total` results fill (0 for none).
    pub fn page_count(self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.page_size))
    }

    fn push_canonical(self, pairs: &mut Vec<(&'static str, String)>) {
        pairs.push(("page_size", self.page_size.to_string()));
        pairs.push(("page_number", self.page_number.to_string()));
    }
}

/// Filters of the film list, search and facets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FilmFilters {
    pub genre: Option<Uuid>,
    pub person: Option<Uuid>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    pub rating_from: Option<f64>,
    pub rating_to: Option<f64>,
    pub film_type: Option<FilmType>,
    pub access: Option<Access>,
}

fn uuid_param(raw: &RawParams, name: &'static str) -> ParamResult<Option<Uuid>> {
    raw.get(name)
        .map(|value| {
            Uuid::parse_str(value)
                .map_err(|_| InvalidParameter::new(name, format!("{name} must be a UUID")))
        })
        .transpose()
}

fn year_param(raw: &RawParams, name: &'static str) -> ParamResult<Option<i32>> {
    raw.get(name)
        .map(|value| {
            value
                .parse::<i32>()
                .ok()
                .filter(|year| YEARS.contains(year))
                .ok_or_else(|| {
                    InvalidParameter::new(
                        name,
                        format!(
                            "{name} must be an integer year from {} to {}",
                            YEARS.start(),
                            YEARS.end()
                        ),
                    )
                })
        })
        .transpose()
}

fn rating_param(raw: &RawParams, name: &'static str) -> ParamResult<Option<f64>> {
    raw.get(name)
        .map(|value| {
            value
                .parse::<f64>()
                .ok()
                .filter(|rating| rating.is_finite() && RATINGS.contains(rating))
                // `-0` and `0` are one value; keep one spelling for the cache key.
                .map(|rating| rating + 0.0)
                .ok_or_else(|| {
                    InvalidParameter::new(
                        name,
                        format!(
                            "{name} must be a number from {} to {}",
                            RATINGS.start(),
                            RATINGS.end()
                        ),
                    )
                })
        })
        .transpose()
}

impl FilmFilters {
    fn parse(raw: &RawParams) -> ParamResult<Self> {
        let filters = Self {
            genre: uuid_param(raw, "genre")?,
            person: uuid_param(raw, "person")?,
            year_from: year_param(raw, "year_from")?,
            year_to: year_param(raw, "year_to")?,
            rating_from: rating_param(raw, "rating_from")?,
            rating_to: rating_param(raw, "rating_to")?,
            film_type: raw.get("type").map(FilmType::parse).transpose()?,
            access: raw.get("access").map(Access::parse).transpose()?,
        };
        if let (Some(from), Some(to)) = (filters.year_from, filters.year_to)
            && from > to
        {
            return Err(InvalidParameter::new(
                "year_from",
                "year_from must not be after year_to",
            ));
        }
        if let (Some(from), Some(to)) = (filters.rating_from, filters.rating_to)
            && from > to
        {
            return Err(InvalidParameter::new(
                "rating_from",
                "rating_from must not be above rating_to",
            ));
        }
        Ok(filters)
    }

    fn push_canonical(&self, pairs: &mut Vec<(&'static str, String)>) {
        if let Some(genre) = self.genre {
            pairs.push(("genre", genre.hyphenated().to_string()));
        }
        if let Some(person) = self.person {
            pairs.push(("person", person.hyphenated().to_string()));
        }
        if let Some(year) = self.year_from {
            pairs.push(("year_from", year.to_string()));
        }
        if let Some(year) = self.year_to {
            pairs.push(("year_to", year.to_string()));
        }
        if let Some(rating) = self.rating_from {
            pairs.push(("rating_from", rating.to_string()));
        }
        if let Some(rating) = self.rating_to {
            pairs.push(("rating_to", rating.to_string()));
        }
        if let Some(film_type) = self.film_type {
            pairs.push(("type", film_type.as_str().to_owned()));
        }
        if let Some(access) = self.access {
            pairs.push(("access", access.as_str().to_owned()));
        }
    }
}

/// The search text: trimmed, at most [`MAX_QUERY_CHARS`]; empty means "no query".
fn query_param(raw: &RawParams) -> ParamResult<String> {
    let query = raw.get("query").unwrap_or_default().trim();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(InvalidParameter::new(
            "query",
            format!("query must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(query.to_owned())
}

fn push_query(query: &str, pairs: &mut Vec<(&'static str, String)>) {
    if !query.is_empty() {
        pairs.push(("query", query.to_owned()));
    }
}

/// `GET /api/v1/films`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilmListParams {
    pub filters: FilmFilters,
    pub sort: FilmSort,
    pub paging: Paging,
}

impl FilmListParams {
    pub fn parse(query: &str) -> ParamResult<Self> {
        let raw = RawParams::parse(query);
        let filters = FilmFilters::parse(&raw)?;
        let sort = match raw.get("sort") {
            Some(value) => FilmSort::parse(value, false)?,
            None => FilmSort::ImdbRatingDescending,
        };
        Ok(Self {
            filters,
            sort,
            paging: Paging::parse(&raw)?,
        })
    }

    pub fn canonical_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        self.filters.push_canonical(&mut pairs);
        pairs.push(("sort", self.sort.as_str().to_owned()));
        self.paging.push_canonical(&mut pairs);
        pairs
    }
}

/// `GET /api/v1/films/search`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilmSearchParams {
    /// Empty: every film matching the filters.
    pub query: String,
    pub filters: FilmFilters,
    /// Defaults to relevance with a query, to `-imdb_rating` without.
    pub sort: FilmSort,
    pub paging: Paging,
}

impl FilmSearchParams {
    pub fn parse(query: &str) -> ParamResult<Self> {
        let raw = RawParams::parse(query);
        let text = query_param(&raw)?;
        let filters = FilmFilters::parse(&raw)?;
        let sort = match raw.get("sort") {
            Some(value) => FilmSort::parse(value, true)?,
            None if text.is_empty() => FilmSort::ImdbRatingDescending,
            None => FilmSort::Relevance,
        };
        Ok(Self {
            query: text,
            filters,
            sort,
            paging: Paging::parse(&raw)?,
        })
    }

    pub fn canonical_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        push_query(&self.query, &mut pairs);
        self.filters.push_canonical(&mut pairs);
        pairs.push(("sort", self.sort.as_str().to_owned()));
        self.paging.push_canonical(&mut pairs);
        pairs
    }
}

/// `GET /api/v1/films/search/facets`: the search's total and genre counts, no hits.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetParams {
    pub query: String,
    pub filters: FilmFilters,
}

impl FacetParams {
    pub fn parse(query: &str) -> ParamResult<Self> {
        let raw = RawParams::parse(query);
        Ok(Self {
            query: query_param(&raw)?,
            filters: FilmFilters::parse(&raw)?,
        })
    }

    pub fn canonical_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        push_query(&self.query, &mut pairs);
        self.filters.push_canonical(&mut pairs);
        pairs
    }
}

/// `GET /api/v1/persons/search`.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonSearchParams {
    pub query: String,
    pub paging: Paging,
}

impl PersonSearchParams {
    pub fn parse(query: &str) -> ParamResult<Self> {
        let raw = RawParams::parse(query);
        Ok(Self {
            query: query_param(&raw)?,
            paging: Paging::parse(&raw)?,
        })
    }

    pub fn canonical_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        push_query(&self.query, &mut pairs);
        self.paging.push_canonical(&mut pairs);
        pairs
    }
}

/// A UUID from the request path (`/films/{uuid}`); the parameter is named `uuid`.
pub fn path_uuid(segment: &str) -> ParamResult<Uuid> {
    Uuid::parse_str(segment)
        .map_err(|_| InvalidParameter::new("uuid", "uuid in the path must be a UUID"))
}

/// Percent-encodes canonical pairs into a query string (empty when there are none).
pub fn canonical_query(pairs: &[(&'static str, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENRE: &str = "3d8d9bf5-0d90-4353-88ba-4ccc5d2c07ff";

    fn list(query: &str) -> ParamResult<FilmListParams> {
        FilmListParams::parse(query)
    }

    fn field_of<T: std::fmt::Debug>(result: ParamResult<T>) -> &'static str {
        result.expect_err("the parameters should be rejected").field
    }

    /// A bare film list gets the documented defaults.
    #[test]
    fn film_list_defaults_to_best_rated_first_page_of_50() {
        let params = list("").expect("valid");
        assert_eq!(params.sort, FilmSort::ImdbRatingDescending);
        assert_eq!(params.paging, Paging::default());
        assert_eq!(params.paging.page_size, 50);
        assert_eq!(params.filters, FilmFilters::default());
    }

    /// page_size above 100 is refused and the error names page_size.
    #[test]
    fn page_size_over_100_is_rejected_naming_page_size() {
        assert_eq!(field_of(list("page_size=101")), "page_size");
    }

    /// page_size 0 and non-integers are refused.
    #[test]
    fn page_size_zero_or_not_an_integer_is_rejected() {
        assert_eq!(field_of(list("page_size=0")), "page_size");
        assert_eq!(field_of(list("page_size=ten")), "page_size");
        assert_eq!(field_of(list("page_size=-5")), "page_size");
        assert_eq!(field_of(list("page_size=2.5")), "page_size");
    }

    /// page_number starts at 1.
    #[test]
    fn page_number_below_1_is_rejected_naming_page_number() {
        assert_eq!(field_of(list("page_number=0")), "page_number");
        assert_eq!(field_of(list("page_number=x")), "page_number");
    }

    /// Pages past the first 10000 results are refused; the last reachable one is not.
    #[test]
    fn page_past_the_result_window_is_rejected_naming_page_number() {
        assert_eq!(
            field_of(list("page_size=100&page_number=101")),
            "page_number"
        );
        assert_eq!(
            field_of(list("page_size=50&page_number=4294967295")),
            "page_number"
        );
        let last = list("page_size=100&page_number=100").expect("valid");
        assert_eq!(last.paging.page_number, 100);
    }

    /// Only the four documented sorts are accepted on the film list.
    #[test]
    fn film_list_accepts_the_four_sorts_and_rejects_others_naming_sort() {
        for sort in [
            "imdb_rating",
            "-imdb_rating",
            "creation_date",
            "-creation_date",
        ] {
            let params = list(&format!("sort={sort}")).expect("valid");
            assert_eq!(params.sort.as_str(), sort);
        }
        assert_eq!(field_of(list("sort=title")), "sort");
        assert_eq!(field_of(list("sort=relevance")), "sort");
    }

    /// Values are percent-decoded before they are validated.
    #[test]
    fn percent_encoded_values_are_decoded_before_validation() {
        let params = list("sort=%2Dcreation_date").expect("valid");
        assert_eq!(params.sort, FilmSort::CreationDateDescending);
    }

    /// Search sorts by relevance when there is a query and by rating when there is not.
    #[test]
    fn search_defaults_to_relevance_only_with_a_query() {
        let with_query = FilmSearchParams::parse("query=star").expect("valid");
        assert_eq!(with_query.sort, FilmSort::Relevance);
        let without = FilmSearchParams::parse("query=").expect("valid");
        assert_eq!(without.sort, FilmSort::ImdbRatingDescending);
        let explicit = FilmSearchParams::parse("query=star&sort=relevance").expect("valid");
        assert_eq!(explicit.sort, FilmSort::Relevance);
    }

    /// A query longer than 200 characters is refused naming query; 200 is fine.
    #[test]
    fn query_over_200_characters_is_rejected_naming_query() {
        let long = "я".repeat(201);
        assert_eq!(
            field_of(FilmSearchParams::parse(&format!("query={long}"))),
            "query"
        );
        assert_eq!(
            field_of(PersonSearchParams::parse(&format!("query={long}"))),
            "query"
        );
        let limit = "a".repeat(200);
        assert!(FilmSearchParams::parse(&format!("query={limit}")).is_ok());
    }

    /// The query is decoded (`+` is a space) and trimmed.
    #[test]
    fn query_is_decoded_and_trimmed() {
        let params = FilmSearchParams::parse("query=+star%20wars+").expect("valid");
        assert_eq!(params.query, "star wars");
    }

    /// Filter UUIDs must parse; the error names the filter.
    #[test]
    fn bad_genre_or_person_uuid_is_rejected_naming_the_filter() {
        assert_eq!(field_of(list("genre=action")), "genre");
        assert_eq!(field_of(list("person=123")), "person");
    }

    /// Years outside 1800..=2100 or not integers are refused.
    #[test]
    fn year_outside_1800_to_2100_is_rejected_naming_the_year() {
        assert_eq!(field_of(list("year_from=1799")), "year_from");
        assert_eq!(field_of(list("year_to=2101")), "year_to");
        assert_eq!(field_of(list("year_to=twenty")), "year_to");
        assert!(list("year_from=1800&year_to=2100").is_ok());
    }

    /// year_from after year_to is refused naming year_from.
    #[test]
    fn year_from_after_year_to_is_rejected_naming_year_from() {
        assert_eq!(field_of(list("year_from=2001&year_to=2000")), "year_from");
        assert!(list("year_from=2000&year_to=2000").is_ok());
    }

    /// Ratings must be finite numbers from 0 to 10, from not above to.
    #[test]
    fn rating_outside_0_to_10_is_rejected_naming_the_rating() {
        assert_eq!(field_of(list("rating_from=-0.1")), "rating_from");
        assert_eq!(field_of(list("rating_to=10.5")), "rating_to");
        assert_eq!(field_of(list("rating_to=NaN")), "rating_to");
        assert_eq!(field_of(list("rating_from=inf")), "rating_from");
        assert_eq!(field_of(list("rating_from=8&rating_to=7")), "rating_from");
        assert!(list("rating_from=0&rating_to=10").is_ok());
    }

    /// type and access take only their documented values.
    #[test]
    fn unknown_type_or_access_is_rejected_naming_it() {
        assert_eq!(field_of(list("type=series")), "type");
        assert_eq!(field_of(list("access=premium")), "access");
        let params = list("type=tv_show&access=subscription").expect("valid");
        assert_eq!(params.filters.film_type, Some(FilmType::TvShow));
        assert_eq!(params.filters.access, Some(Access::Subscription));
    }

    /// Empty values count as absent, the last repeated value wins, unknown names are
    /// ignored.
    #[test]
    fn empty_values_are_absent_last_value_wins_unknown_names_ignored() {
        let params = list("genre=&page_size=10&page_size=20&utm_source=mail").expect("valid");
        assert_eq!(params.filters.genre, None);
        assert_eq!(params.paging.page_size, 20);
    }

    /// Two spellings of one request have one canonical form, in the fixed order.
    #[test]
    fn canonical_query_is_the_same_for_equivalent_spellings() {
        let upper = GENRE.to_uppercase();
        let simple = GENRE.replace('-', "");
        let a = list(&format!(
            "page_number=1&rating_from=7.50&genre={upper}&year_to=%2B2000"
        ))
        .expect("valid");
        let b = list(&format!(
            "genre={simple}&year_to=2000&rating_from=7.5&sort=-imdb_rating"
        ))
        .expect("valid");
        let canonical = canonical_query(&a.canonical_pairs());
        assert_eq!(canonical, canonical_query(&b.canonical_pairs()));
        assert_eq!(
            canonical,
            format!(
                "genre={GENRE}&year_to=2000&rating_from=7.5&sort=-imdb_rating&page_size=50&page_number=1"
            )
        );
    }

    /// The canonical search query is percent-encoded and comes first.
    #[test]
    fn canonical_search_query_encodes_the_text() {
        let params = FilmSearchParams::parse("query=a%26b+c&access=free").expect("valid");
        assert_eq!(
            canonical_query(&params.canonical_pairs()),
            "query=a%26b+c&access=free&sort=relevance&page_size=50&page_number=1"
        );
    }

    /// Facets take the query and filters but no paging or sort.
    #[test]
    fn facets_ignore_paging_and_sort() {
        let params =
            FacetParams::parse("query=x&page_size=1000&sort=bogus&type=movie").expect("valid");
        assert_eq!(
            canonical_query(&params.canonical_pairs()),
            "query=x&type=movie"
        );
    }

    /// Path ids must be UUIDs; the error names `uuid`.
    #[test]
    fn bad_path_uuid_is_rejected_naming_uuid() {
        assert_eq!(path_uuid("not-a-uuid").expect_err("bad").field, "uuid");
        assert!(path_uuid(GENRE).is_ok());
    }

    /// Page counts round up and are 0 for no results.
    #[test]
    fn page_count_rounds_up() {
        let paging = Paging {
            page_size: 50,
            page_number: 1,
        };
        assert_eq!(paging.page_count(0), 0);
        assert_eq!(paging.page_count(1), 1);
        assert_eq!(paging.page_count(50), 1);
        assert_eq!(paging.page_count(51), 2);
    }
}

/// Properties of the parsers over generated query strings: they never panic, every
/// refusal names a parameter of the route, and the canonical form (what the host is
/// sent and cache keys are made of) parses back to the same request and is its own
/// canonical form, so one request has one cache key however it was spelled.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Parameters the film routes read.
    const FILM_FIELDS: [&str; 12] = [
        "query",
        "genre",
        "person",
        "year_from",
        "year_to",
        "rating_from",
        "rating_to",
        "type",
        "access",
        "sort",
        "page_size",
        "page_number",
    ];

    /// A value a client might send for any parameter: numbers in and around the ranges
    /// in several spellings, UUIDs in several spellings, enum words, and free text with
    /// Cyrillic, separators and percent signs.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            (-5i64..20_000).prop_map(|n| n.to_string()),
            (-1.5f64..12.0).prop_map(|x| x.to_string()),
            (0u32..=100, 0u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
            Just(String::new()),
            Just("-0".to_owned()),
            Just("1e1".to_owned()),
            Just("NaN".to_owned()),
            any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
            any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string().to_uppercase()),
            prop::sample::select(vec![
                "relevance",
                "imdb_rating",
                "-imdb_rating",
                "creation_date",
                "-creation_date",
                "movie",
                "tv_show",
                "free",
                "subscription",
                "title",
            ])
            .prop_map(str::to_owned),
            "[a-zа-яё +&%=#?]{0,12}",
            "\\PC{0,30}",
        ]
    }

    /// A value for parameter `name`, usually one the route accepts, spelled in one of
    /// the ways clients spell it (UUIDs braced, as URNs, in capitals; years with `+`;
    /// ratings as `7`, `07.50`, `1e0`, `-0`), sometimes anything [`value`] makes.
    fn value_for(name: &str) -> BoxedStrategy<String> {
        let accepted: BoxedStrategy<String> = match name {
            "query" => "[a-zа-яё0-9 +&%=#?'-]{0,20}".boxed(),
            "genre" | "person" => any::<u128>()
                .prop_flat_map(|n| {
                    let id = Uuid::from_u128(n);
                    prop::sample::select(vec![
                        id.to_string(),
                        id.simple().to_string(),
                        id.to_string().to_uppercase(),
                        id.braced().to_string(),
                        id.urn().to_string(),
                    ])
                })
                .boxed(),
            "year_from" | "year_to" => prop_oneof![
                YEARS.prop_map(|year| year.to_string()),
                YEARS.prop_map(|year| format!("+{year}")),
                YEARS.prop_map(|year| format!("0{year}")),
            ]
            .boxed(),
            "rating_from" | "rating_to" => prop_oneof![
                (0.0f64..=10.0).prop_map(|rating| rating.to_string()),
                (0u32..=10).prop_map(|rating| rating.to_string()),
                (0u32..10, 0u32..100).prop_map(|(whole, part)| format!("0{whole}.{part:02}")),
                prop::sample::select(vec!["-0", "1e0", "0.10", "10.0", ".5"])
                    .prop_map(str::to_owned),
            ]
            .boxed(),
            "type" => prop::sample::select(vec!["movie", "tv_show"])
                .prop_map(str::to_owned)
                .boxed(),
            "access" => prop::sample::select(vec!["free", "subscription"])
                .prop_map(str::to_owned)
                .boxed(),
            "sort" => prop::sample::select(vec![
                "relevance",
                "imdb_rating",
                "-imdb_rating",
                "creation_date",
                "-creation_date",
            ])
            .prop_map(str::to_owned)
            .boxed(),
            "page_size" => (1u32..=MAX_PAGE_SIZE).prop_map(|n| n.to_string()).boxed(),
            "page_number" => (1u32..=250).prop_map(|n| n.to_string()).boxed(),
            _ => value().boxed(),
        };
        prop_oneof![6 => accepted, 1 => value()].boxed()
    }

    /// A query string: known and unknown names with generated values, repeats allowed
    /// (the last one wins), encoded as a client would, sometimes with a stray raw `%`.
    fn query_string() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            6 => prop::sample::select(FILM_FIELDS.to_vec()).prop_map(str::to_owned),
            1 => Just("facets".to_owned()),
            1 => "[a-z_]{1,8}",
        ];
        let pair = name.prop_flat_map(|name| {
            let value = value_for(&name);
            (Just(name), value)
        });
        (
            prop::collection::vec(pair, 0..8),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(pairs, stray)| {
                let mut serializer = form_urlencoded::Serializer::new(String::new());
                for (name, value) in &pairs {
                    serializer.append_pair(name, value);
                }
                let mut query = serializer.finish();
                if stray {
                    query.push_str("&query=%zz+x%");
                }
                query
            })
    }

    /// The property every parser keeps for `query`: it answers, or refuses naming one
    /// of `fields`; an answer's canonical form parses back to the same request and is
    /// its own canonical form.
    fn parses_or_names_a_field_and_round_trips<P: PartialEq + std::fmt::Debug>(
        query: &str,
        parse: fn(&str) -> ParamResult<P>,
        canonical_pairs: fn(&P) -> Vec<(&'static str, String)>,
        fields: &[&str],
    ) -> Result<(), TestCaseError> {
        match parse(query) {
            Ok(params) => {
                let canonical = canonical_query(&canonical_pairs(&params));
                let again = parse(&canonical);
                prop_assert_eq!(again.as_ref(), Ok(&params), "{} -> {}", query, canonical);
                let again = again.expect("checked above");
                prop_assert_eq!(canonical_query(&canonical_pairs(&again)), canonical);
            }
            Err(error) => prop_assert!(fields.contains(&error.field), "{:?}", error),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn film_search_parses_or_names_its_field_and_its_canonical_form_is_a_fixed_point(
            query in query_string()
        ) {
            parses_or_names_a_field_and_round_trips(
                &query,
                FilmSearchParams::parse,
                FilmSearchParams::canonical_pairs,
                &FILM_FIELDS,
            )?;
        }

        #[test]
        fn film_lists_parse_or_name_their_field_and_their_canonical_form_is_a_fixed_point(
            query in query_string()
        ) {
            parses_or_names_a_field_and_round_trips(
                &query,
                FilmListParams::parse,
                FilmListParams::canonical_pairs,
                &FILM_FIELDS,
            )?;
        }

        #[test]
        fn facets_and_person_search_parse_or_name_their_field_and_round_trip(
            query in query_string()
        ) {
            parses_or_names_a_field_and_round_trips(
                &query,
                FacetParams::parse,
                FacetParams::canonical_pairs,
                &FILM_FIELDS,
            )?;
            parses_or_names_a_field_and_round_trips(
                &query,
                PersonSearchParams::parse,
                PersonSearchParams::canonical_pairs,
                &["query", "page_size", "page_number"],
            )?;
        }
    }
}
