//! The catalog's routes and the validated requests they become.
//!
//! [`Route::parse`] only recognizes paths (methods and authentication are the
//! handler's business); [`Resource::validate`] turns a route and its query string into
//! a [`Resource`] whose every value is checked. A resource knows where the host serves
//! it ([`Resource::upstream_path`]), its canonical public form for cache keys
//! ([`Resource::canonical`]) and which "not found" it means ([`Resource::missing`]).
//! Pure: no I/O.

use uuid::Uuid;

use crate::params::{
    FacetParams, FilmListParams, FilmSearchParams, ParamResult, PersonSearchParams,
    canonical_query, path_uuid,
};

/// Prefix of every public route.
pub const API_PREFIX: &str = "/api/v1";

/// A recognized path, before validation. Ids are the raw path segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/api/v1/openapi.json`: public, not cached.
    OpenApi,
    FilmList,
    FilmSearch,
    FilmFacets,
    Film(&'a str),
    GenreList,
    Genre(&'a str),
    PersonSearch,
    Person(&'a str),
    PersonFilms(&'a str),
}

impl<'a> Route<'a> {
    /// Matches a request path (without query; a trailing `/` is ignored).
    pub fn parse(path: &'a str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        let rest = path.strip_prefix(API_PREFIX)?.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        Some(match segments.as_slice() {
            ["openapi.json"] => Self::OpenApi,
            ["films"] => Self::FilmList,
            ["films", "search"] => Self::FilmSearch,
            ["films", "search", "facets"] => Self::FilmFacets,
            ["films", id] => Self::Film(id),
            ["genres"] => Self::GenreList,
            ["genres", id] => Self::Genre(id),
            ["persons", "search"] => Self::PersonSearch,
            ["persons", id] => Self::Person(id),
            ["persons", id, "film"] => Self::PersonFilms(id),
            _ => return None,
        })
    }
}

/// Which kind of thing a detail route did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Film,
    Genre,
    Person,
}

/// A validated catalog request.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    FilmList(FilmListParams),
    FilmSearch(FilmSearchParams),
    FilmFacets(FacetParams),
    Film(Uuid),
    GenreList,
    Genre(Uuid),
    PersonSearch(PersonSearchParams),
    Person(Uuid),
    PersonFilms(Uuid),
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The host's film search with these parameters, genre counts skipped.
fn films_without_facets(mut pairs: Vec<(&'static str, String)>) -> String {
    pairs.push(("facets", "none".into()));
    with_query("/search/films".into(), &canonical_query(&pairs))
}

impl Resource {
    /// Validates a catalog route's path ids and query string. `None` for
    /// [`Route::OpenApi`], which is not a catalog resource.
    pub fn validate(route: Route<'_>, query: &str) -> ParamResult<Option<Self>> {
        Ok(Some(match route {
            Route::OpenApi => return Ok(None),
            Route::FilmList => Self::FilmList(FilmListParams::parse(query)?),
            Route::FilmSearch => Self::FilmSearch(FilmSearchParams::parse(query)?),
            Route::FilmFacets => Self::FilmFacets(FacetParams::parse(query)?),
            Route::Film(id) => Self::Film(path_uuid(id)?),
            Route::GenreList => Self::GenreList,
            Route::Genre(id) => Self::Genre(path_uuid(id)?),
            Route::PersonSearch => Self::PersonSearch(PersonSearchParams::parse(query)?),
            Route::Person(id) => Self::Person(path_uuid(id)?),
            Route::PersonFilms(id) => Self::PersonFilms(path_uuid(id)?),
        }))
    }

    /// Path and query of the host's internal search API serving this resource.
    pub fn upstream_path(&self) -> String {
        match self {
            // Lists and searches do not show facets: the host skips counting them.
            Self::FilmList(params) => films_without_facets(params.canonical_pairs()),
            Self::FilmSearch(params) => films_without_facets(params.canonical_pairs()),
            Self::FilmFacets(params) => {
                // Facets and the total come with any page; the smallest one is enough.
                let mut pairs = params.canonical_pairs();
                pairs.push(("page_size", "1".into()));
                pairs.push(("page_number", "1".into()));
                with_query("/search/films".into(), &canonical_query(&pairs))
            }
            Self::Film(id) => format!("/search/films/{id}"),
            Self::GenreList => "/search/genres".into(),
            Self::Genre(id) => format!("/search/genres/{id}"),
            Self::PersonSearch(params) => with_query(
                "/search/persons".into(),
                &canonical_query(&params.canonical_pairs()),
            ),
            Self::Person(id) => format!("/search/persons/{id}"),
            Self::PersonFilms(id) => format!("/search/persons/{id}/films"),
        }
    }

    /// The public path with the canonical query: equal for equal requests, whatever
    /// their spelling. Cache keys are made of it.
    pub fn canonical(&self) -> String {
        match self {
            Self::FilmList(params) => with_query(
                format!("{API_PREFIX}/films"),
                &canonical_query(&params.canonical_pairs()),
            ),
            Self::FilmSearch(params) => with_query(
                format!("{API_PREFIX}/films/search"),
                &canonical_query(&params.canonical_pairs()),
            ),
            Self::FilmFacets(params) => with_query(
                format!("{API_PREFIX}/films/search/facets"),
                &canonical_query(&params.canonical_pairs()),
            ),
            Self::Film(id) => format!("{API_PREFIX}/films/{id}"),
            Self::GenreList => format!("{API_PREFIX}/genres"),
            Self::Genre(id) => format!("{API_PREFIX}/genres/{id}"),
            Self::PersonSearch(params) => with_query(
                format!("{API_PREFIX}/persons/search"),
                &canonical_query(&params.canonical_pairs()),
            ),
            Self::Person(id) => format!("{API_PREFIX}/persons/{id}"),
            Self::PersonFilms(id) => format!("{API_PREFIX}/persons/{id}/film"),
        }
    }

    /// What a 404 from the host means for this resource; `None` for lists, where a
    /// 404 can only be a host that does not serve the route.
    pub fn missing(&self) -> Option<Missing> {
        match self {
            Self::Film(_) => Some(Missing::Film),
            Self::Genre(_) => Some(Missing::Genre),
            Self::Person(_) | Self::PersonFilms(_) => Some(Missing::Person),
            Self::FilmList(_)
            | Self::FilmSearch(_)
            | Self::FilmFacets(_)
            | Self::GenreList
            | Self::PersonSearch(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6b3f5e-9c1a-4a57-8a39-4a0f1b7c2d11";

    /// Every documented path maps to its route; a trailing slash does not matter.
    #[test]
    fn documented_paths_map_to_their_routes() {
        assert_eq!(Route::parse("/api/v1/openapi.json"), Some(Route::OpenApi));
        assert_eq!(Route::parse("/api/v1/films"), Some(Route::FilmList));
        assert_eq!(Route::parse("/api/v1/films/"), Some(Route::FilmList));
        assert_eq!(
            Route::parse("/api/v1/films/search"),
            Some(Route::FilmSearch)
        );
        assert_eq!(
            Route::parse("/api/v1/films/search/facets"),
            Some(Route::FilmFacets)
        );
        assert_eq!(Route::parse("/api/v1/films/x"), Some(Route::Film("x")));
        assert_eq!(Route::parse("/api/v1/genres"), Some(Route::GenreList));
        assert_eq!(Route::parse("/api/v1/genres/x"), Some(Route::Genre("x")));
        assert_eq!(
            Route::parse("/api/v1/persons/search"),
            Some(Route::PersonSearch)
        );
        assert_eq!(Route::parse("/api/v1/persons/x"), Some(Route::Person("x")));
        assert_eq!(
            Route::parse("/api/v1/persons/x/film"),
            Some(Route::PersonFilms("x"))
        );
    }

    /// Paths outside the contract are not routes.
    #[test]
    fn unknown_paths_are_not_routes() {
        for path in [
            "/",
            "/api/v1",
            "/api/v1/",
            "/api/v1/persons",
            "/api/v1/persons/x/films",
            "/api/v1/films/x/y",
            "/api/v1/filmsx",
            "/api/v2/films",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    /// A bad id in the path is refused before anything reaches the host.
    #[test]
    fn bad_path_id_is_rejected_naming_uuid() {
        let error = Resource::validate(Route::Film("42"), "").expect_err("bad id");
        assert_eq!(error.field, "uuid");
    }

    /// The host is sent canonical parameters; facets ask for the smallest page.
    #[test]
    fn upstream_paths_carry_canonical_parameters() {
        let list = Resource::validate(Route::FilmList, "page_size=10&access=free")
            .expect("valid")
            .expect("a resource");
        assert_eq!(
            list.upstream_path(),
            "/search/films?access=free&sort=-imdb_rating&page_size=10&page_number=1&facets=none"
        );
        let facets = Resource::validate(Route::FilmFacets, "query=x")
            .expect("valid")
            .expect("a resource");
        assert_eq!(
            facets.upstream_path(),
            "/search/films?query=x&page_size=1&page_number=1"
        );
        let film = Resource::validate(Route::Film(&ID.to_uppercase()), "")
            .expect("valid")
            .expect("a resource");
        assert_eq!(film.upstream_path(), format!("/search/films/{ID}"));
        let films = Resource::validate(Route::PersonFilms(ID), "")
            .expect("valid")
            .expect("a resource");
        assert_eq!(films.upstream_path(), format!("/search/persons/{ID}/films"));
    }

    /// List and facets of one search are different cache entries.
    #[test]
    fn canonical_forms_differ_between_routes_sharing_an_upstream() {
        let search = Resource::validate(Route::FilmSearch, "query=x")
            .expect("valid")
            .expect("a resource");
        let facets = Resource::validate(Route::FilmFacets, "query=x")
            .expect("valid")
            .expect("a resource");
        assert_ne!(search.canonical(), facets.canonical());
        assert_eq!(facets.canonical(), "/api/v1/films/search/facets?query=x");
    }
}
