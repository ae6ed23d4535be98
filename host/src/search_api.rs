//! The search API on the internal port: what the catalog component asks for films,
//! genres and persons. Reads only the warm index ([`cinema_etl::SearchIndex`]), never
//! Postgres, so the catalog keeps answering while Postgres is down.
//!
//! Routes (all `GET`, JSON, every 200 carries `x-index-version`):
//! - `/search/version` → `{"version"}`, plus `"rebuild":{"documents_done","documents_total"}`
//!   while a full rebuild runs beside the served index
//! - `/search/films?query&genre&person&year_from&year_to&rating_from&rating_to&type&access&sort&page_size&page_number&facets`
//!   → `{"version","total","page_number","page_size","items":[...],"facets":{"genre":[...]}}`;
//!   `facets=none` skips counting genres (`facets.genre` is then empty), `facets=genre`
//!   (the default) counts them over every hit.
//! - `/search/films/{uuid}`, `/search/genres`, `/search/genres/{uuid}`,
//!   `/search/persons?query&page_size&page_number`, `/search/persons/{uuid}`,
//!   `/search/persons/{uuid}/films`
//! - `POST /etl/reindex`: a full rebuild by the running ETL, built beside the served
//!   index (edits stay searchable meanwhile); answers with the version once it serves.
//!   Requests made while one runs are answered by it.
//!
//! Errors: 400 `invalid_parameter` (with `field`), 404 `not_found`, 503
//! `search_index_unavailable` (no index configured or none built yet), 500
//! `search_failed` (logged).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cinema_domain::error::ErrorBody;
use cinema_etl::rebuild::RebuildProgress;
use cinema_etl::search::{FilmQuery, FilmSort, SearchError};
use cinema_etl::{EtlCommand, SearchIndex};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Largest page.
pub const MAX_PAGE_SIZE: usize = 100;
/// Deepest result reachable by paging (`page_size * page_number`).
pub const MAX_RESULT_WINDOW: usize = 10_000;
/// Longest text query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// What the search routes need.
#[derive(Clone, Debug, Default)]
pub struct SearchState {
    /// `None` when `cinema up` runs without `--index-dir`.
    pub index: Option<Arc<SearchIndex>>,
    /// `None` when no ETL runs in this process.
    pub etl: Option<mpsc::Sender<EtlCommand>>,
    /// How far a running rebuild is (`None` without an ETL).
    pub rebuild: Option<Arc<RebuildProgress>>,
}

/// Everything a search route answers besides success.
#[derive(Debug)]
pub enum SearchApiError {
    InvalidParameter {
        field: &'static str,
        message: String,
    },
    NotFound(&'static str),
    Unavailable(String),
    Failed(String),
}

impl IntoResponse for SearchApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::InvalidParameter { field, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody::for_field("invalid_parameter", message, field),
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new("not_found", format!("no such {what}")),
            ),
            Self::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::new("search_index_unavailable", message),
            ),
            Self::Failed(detail) => {
                tracing::error!(error = %detail, "search_api: search failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::new("search_failed", "the search failed; see the host log"),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<SearchError> for SearchApiError {
    fn from(error: SearchError) -> Self {
        Self::Failed(error.to_string())
    }
}

type ApiResult<T> = Result<T, SearchApiError>;

/// A JSON body with the index version it was read from.
fn versioned<T: Serialize>(version: u64, body: T) -> Response {
    with_index_version(version, Json(body).into_response())
}

/// A body already serialized as JSON, with the index version it was read from.
fn versioned_json(version: u64, body: Vec<u8>) -> Response {
    let json = [(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    with_index_version(version, (json, body).into_response())
}

fn with_index_version(version: u64, mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-index-version", HeaderValue::from(version));
    response
}

fn ready_index(state: &SearchState) -> ApiResult<Arc<SearchIndex>> {
    let index = state.index.clone().ok_or_else(|| {
        SearchApiError::Unavailable(
            "this host serves no search index (start it with --index-dir)".into(),
        )
    })?;
    if !index.is_ready() {
        return Err(SearchApiError::Unavailable(
            "the search index is being built; retry shortly".into(),
        ));
    }
    Ok(index)
}

/// Runs a search off the async workers (searches are CPU-bound).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SearchApiError::Failed(format!("search task: {e}")))?
}

fn invalid(field: &'static str, message: impl Into<String>) -> SearchApiError {
    SearchApiError::InvalidParameter {
        field,
        message: message.into(),
    }
}

/// Parses an optional number parameter within bounds.
fn number<T>(
    params: &HashMap<String, String>,
    field: &'static str,
    min: T,
    max: T,
) -> ApiResult<Option<T>>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = params.get(field).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let value: T = raw.parse().map_err(|_| {
        invalid(
            field,
            format!("{field} must be a number from {min} to {max}"),
        )
    })?;
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("{field} must be from {min} to {max}"),
        ));
    }
    Ok(Some(value))
}

fn uuid_param(params: &HashMap<String, String>, field: &'static str) -> ApiResult<Option<String>> {
    match params.get(field).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => uuid::Uuid::parse_str(raw)
            .map(|id| Some(id.to_string()))
            .map_err(|_| invalid(field, format!("{field} must be a UUID"))),
    }
}

fn one_of(
    params: &HashMap<String, String>,
    field: &'static str,
    allowed: &[&str],
) -> ApiResult<Option<String>> {
    match params.get(field).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) if allowed.contains(&raw.as_str()) => Ok(Some(raw.clone())),
        Some(_) => Err(invalid(
            field,
            format!("{field} must be one of {}", allowed.join(", ")),
        )),
    }
}

/// Validated paging: `(page_size, page_number)`.
pub fn paging(params: &HashMap<String, String>) -> ApiResult<(usize, usize)> {
    let page_size = number(params, "page_size", 1, MAX_PAGE_SIZE)?.unwrap_or(50);
    let page_number = number(params, "page_number", 1, MAX_RESULT_WINDOW)?.unwrap_or(1);
    if page_size * page_number > MAX_RESULT_WINDOW {
        return Err(invalid(
            "page_number",
            format!("page_size * page_number must not exceed {MAX_RESULT_WINDOW}"),
        ));
    }
    Ok((page_size, page_number))
}

fn text_query(params: &HashMap<String, String>) -> ApiResult<String> {
    let text = params.get("query").cloned().unwrap_or_default();
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(
            "query",
            format!("query must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(text)
}

/// Turns query parameters into a validated film search.
pub fn film_query(params: &HashMap<String, String>) -> ApiResult<FilmQuery> {
    let text = text_query(params)?;
    let (page_size, page_number) = paging(params)?;
    let sort = match params.get("sort").filter(|v| !v.is_empty()) {
        None if text.trim().is_empty() => FilmSort::parse("-imdb_rating"),
        None => Some(FilmSort::Relevance),
        Some(raw) => FilmSort::parse(raw),
    }
    .ok_or_else(|| {
        invalid(
            "sort",
            "sort must be one of relevance, imdb_rating, -imdb_rating, creation_date, -creation_date",
        )
    })?;
    let year_from = number(params, "year_from", 1800, 2100)?;
    let year_to = number(params, "year_to", 1800, 2100)?;
    if let (Some(from), Some(to)) = (year_from, year_to)
        && from > to
    {
        return Err(invalid("year_from", "year_from must not be after year_to"));
    }
    let rating_from = number(params, "rating_from", 0.0, 10.0)?;
    let rating_to = number(params, "rating_to", 0.0, 10.0)?;
    if let (Some(from), Some(to)) = (rating_from, rating_to)
        && from > to
    {
        return Err(invalid(
            "rating_from",
            "rating_from must not be above rating_to",
        ));
    }
    Ok(FilmQuery {
        text,
        genre: uuid_param(params, "genre")?,
        person: uuid_param(params, "person")?,
        year_from,
        year_to,
        rating_from,
        rating_to,
        film_type: one_of(params, "type", &["movie", "tv_show"])?,
        access: one_of(params, "access", &["free", "subscription"])?,
        sort,
        page_size,
        page_number,
        facets: one_of(params, "facets", &["genre", "none"])?.as_deref() != Some("none"),
    })
}

fn path_uuid(raw: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.to_string())
        .map_err(|_| invalid("uuid", "the id in the path must be a UUID"))
}

async fn version(State(state): State<SearchState>) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let version = index.version();
    let mut body = serde_json::json!({ "version": version });
    if let Some((done, total)) = state.rebuild.as_ref().and_then(|progress| progress.get()) {
        body["rebuild"] = serde_json::json!({ "documents_done": done, "documents_total": total });
    }
    Ok(versioned(version, body))
}

async fn films(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let query = film_query(&params)?;
    // Answered on the worker that took the request, not on the blocking pool: a list
    // from the film table takes microseconds, and a text search (bounded by the query
    // length and page limits) a fraction of a millisecond of CPU, while the hop to the
    // pool and back doubled the tail (compare.sh search_uncached, alternating A/B:
    // p99 42/38 ms through the pool, 23/25 ms inline, the same req/s).
    let page = index.search_films(&query)?;
    Ok(versioned_json(page.version, page.to_json()))
}

async fn film(State(state): State<SearchState>, Path(id): Path<String>) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let id = path_uuid(&id)?;
    let version = index.version();
    let film = blocking(move || Ok(index.film(&id)?)).await?;
    Ok(versioned(
        version,
        film.ok_or(SearchApiError::NotFound("film"))?,
    ))
}

async fn genres(State(state): State<SearchState>) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let (version, items) = index.genres();
    Ok(versioned(
        version,
        serde_json::json!({ "version": version, "items": items }),
    ))
}

async fn genre(State(state): State<SearchState>, Path(id): Path<String>) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let id = path_uuid(&id)?;
    let genre = index.genre(&id).ok_or(SearchApiError::NotFound("genre"))?;
    Ok(versioned(index.version(), genre))
}

async fn persons(
    State(state): State<SearchState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let text = text_query(&params)?;
    let (page_size, page_number) = paging(&params)?;
    let page = blocking(move || Ok(index.search_persons(&text, page_size, page_number)?)).await?;
    Ok(versioned(page.version, page))
}

async fn person(State(state): State<SearchState>, Path(id): Path<String>) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let id = path_uuid(&id)?;
    let version = index.version();
    let person = blocking(move || Ok(index.person(&id)?)).await?;
    Ok(versioned(
        version,
        person.ok_or(SearchApiError::NotFound("person"))?,
    ))
}

async fn person_films(
    State(state): State<SearchState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let index = ready_index(&state)?;
    let id = path_uuid(&id)?;
    let version = index.version();
    let films = blocking(move || Ok(index.person_films(&id)?)).await?;
    let items = films.ok_or(SearchApiError::NotFound("person"))?;
    let mut body = b"{\"items\":".to_vec();
    cinema_etl::model::ListedFilm::write_json_array(&items, &mut body);
    body.push(b'}');
    Ok(versioned_json(version, body))
}

async fn reindex(State(state): State<SearchState>) -> ApiResult<Response> {
    let etl = state.etl.clone().ok_or_else(|| {
        SearchApiError::Unavailable("no ETL runs in this host (start it with --index-dir)".into())
    })?;
    let (reply, answer) = oneshot::channel();
    etl.send(EtlCommand::Reindex(reply))
        .await
        .map_err(|_| SearchApiError::Unavailable("the ETL has stopped".into()))?;
    match answer.await {
        Ok(Ok(version)) => Ok(versioned(
            version,
            serde_json::json!({ "version": version }),
        )),
        Ok(Err(message)) => Err(SearchApiError::Unavailable(format!(
            "the rebuild failed: {message}; the ETL retries after reconnecting"
        ))),
        Err(_) => Err(SearchApiError::Unavailable(
            "the ETL is reconnecting to Postgres; retry shortly".into(),
        )),
    }
}

/// The search routes.
pub fn router(state: SearchState) -> Router {
    Router::new()
        .route("/search/version", get(version))
        .route("/search/films", get(films))
        .route("/search/films/{id}", get(film))
        .route("/search/genres", get(genres))
        .route("/search/genres/{id}", get(genre))
        .route("/search/persons", get(persons))
        .route("/search/persons/{id}", get(person))
        .route("/search/persons/{id}/films", get(person_films))
        .route("/etl/reindex", post(reindex))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field_of(result: ApiResult<FilmQuery>) -> &'static str {
        match result {
            Err(SearchApiError::InvalidParameter { field, .. }) => field,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    /// Without a query the default order is best rated first; with one, relevance.
    #[test]
    fn default_sort_depends_on_the_query() {
        assert_eq!(
            film_query(&params(&[])).expect("valid").sort,
            FilmSort::parse("-imdb_rating").expect("sort")
        );
        assert_eq!(
            film_query(&params(&[("query", "матрица")]))
                .expect("valid")
                .sort,
            FilmSort::Relevance
        );
    }

    /// Each bad value is refused naming its parameter.
    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(
            field_of(film_query(&params(&[("page_size", "0")]))),
            "page_size"
        );
        assert_eq!(
            field_of(film_query(&params(&[("page_size", "101")]))),
            "page_size"
        );
        assert_eq!(
            field_of(film_query(&params(&[("page_number", "x")]))),
            "page_number"
        );
        assert_eq!(
            field_of(film_query(&params(&[
                ("page_size", "100"),
                ("page_number", "101")
            ]))),
            "page_number"
        );
        assert_eq!(field_of(film_query(&params(&[("sort", "title")]))), "sort");
        assert_eq!(
            field_of(film_query(&params(&[("genre", "drama")]))),
            "genre"
        );
        assert_eq!(
            field_of(film_query(&params(&[("type", "cartoon")]))),
            "type"
        );
        assert_eq!(
            field_of(film_query(&params(&[("rating_to", "11")]))),
            "rating_to"
        );
        assert_eq!(
            field_of(film_query(&params(&[
                ("year_from", "2001"),
                ("year_to", "2000")
            ]))),
            "year_from"
        );
        let long = "я".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(
            field_of(film_query(&params(&[("query", long.as_str())]))),
            "query"
        );
        assert_eq!(
            field_of(film_query(&params(&[("facets", "type")]))),
            "facets"
        );
    }

    /// Genre counts are made unless the caller says `facets=none`.
    #[test]
    fn facets_are_counted_unless_asked_not_to() {
        assert!(film_query(&params(&[])).expect("valid").facets);
        assert!(
            film_query(&params(&[("facets", "genre")]))
                .expect("valid")
                .facets
        );
        assert!(
            !film_query(&params(&[("facets", "none")]))
                .expect("valid")
                .facets
        );
    }
}
