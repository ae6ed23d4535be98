//! The public payloads, and how they are cut from the host's search answers.
//!
//! Each host answer is parsed into a typed shape (unknown fields ignored) and written
//! back as exactly the fields of the public contract, so a host that grows a field
//! does not change the API. Ids pass through as the host spells them. Pure: no I/O. A host answer that does not parse is the
//! host's fault; the caller reports it as `search_unavailable`.

use crate::params::Paging;
use crate::resource::Resource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A public body and what the handler needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Presented {
    /// The JSON body sent to clients.
    pub body: String,
    /// Lists: `X-Total-Count`.
    pub total: Option<u64>,
    /// Lists: `X-Page-Count`.
    pub page_count: Option<u64>,
    /// Film detail: the film's `access`, for the paid-content rule.
    pub access: Option<String>,
}

/// `{uuid, title, imdb_rating, access}`: a film in lists.
#[derive(Debug, Serialize, Deserialize)]
struct FilmShort {
    uuid: String,
    title: String,
    imdb_rating: Option<f64>,
    access: String,
}

/// A search hit: a short film with the host's highlight object (null without one).
#[derive(Debug, Serialize, Deserialize)]
struct FilmHit {
    uuid: String,
    title: String,
    imdb_rating: Option<f64>,
    access: String,
    #[serde(default)]
    highlight: Value,
}

#[derive(Debug, Deserialize)]
struct HostFilmPage<T> {
    total: u64,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(default)]
    facets: HostFacets,
}

#[derive(Debug, Default, Deserialize)]
struct HostFacets {
    #[serde(default)]
    genre: Vec<GenreCount>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GenreCount {
    uuid: String,
    name: String,
    count: u64,
}

#[derive(Debug, Serialize)]
struct Facets {
    total: u64,
    genre: Vec<GenreCount>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GenreRef {
    uuid: String,
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersonRef {
    uuid: String,
    full_name: String,
}

/// The film detail, field for field.
#[derive(Debug, Serialize, Deserialize)]
struct FilmDetail {
    uuid: String,
    title: String,
    imdb_rating: Option<f64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    creation_date: Option<String>,
    #[serde(rename = "type")]
    film_type: String,
    access: String,
    #[serde(default)]
    genre: Vec<GenreRef>,
    #[serde(default)]
    actors: Vec<PersonRef>,
    #[serde(default)]
    writers: Vec<PersonRef>,
    #[serde(default)]
    directors: Vec<PersonRef>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Genre {
    uuid: String,
    name: String,
    film_count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersonFilm {
    uuid: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Person {
    uuid: String,
    full_name: String,
    #[serde(default)]
    films: Vec<PersonFilm>,
}

#[derive(Debug, Deserialize)]
struct HostItems<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct HostPage<T> {
    total: u64,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

fn single(value: &impl Serialize) -> serde_json::Result<Presented> {
    Ok(Presented {
        body: serde_json::to_string(value)?,
        total: None,
        page_count: None,
        access: None,
    })
}

fn page<T: Serialize>(items: &[T], total: u64, paging: Paging) -> serde_json::Result<Presented> {
    Ok(Presented {
        body: serde_json::to_string(items)?,
        total: Some(total),
        page_count: Some(paging.page_count(total)),
        access: None,
    })
}

/// A complete, unpaged list: one page holding everything (none when empty).
fn whole<T: Serialize>(items: &[T]) -> serde_json::Result<Presented> {
    let total = items.len() as u64;
    Ok(Presented {
        body: serde_json::to_string(items)?,
        total: Some(total),
        page_count: Some(u64::from(total > 0)),
        access: None,
    })
}

/// Cuts the public payload of `resource` from the host's successful answer.
pub fn present(resource: &Resource, host_body: &[u8]) -> serde_json::Result<Presented> {
    match resource {
        Resource::FilmList(params) => {
            let host: HostFilmPage<FilmShort> = serde_json::from_slice(host_body)?;
            page(&host.items, host.total, params.paging)
        }
        Resource::FilmSearch(params) => {
            let host: HostFilmPage<FilmHit> = serde_json::from_slice(host_body)?;
            page(&host.items, host.total, params.paging)
        }
        Resource::FilmFacets(_) => {
            let host: HostFilmPage<serde::de::IgnoredAny> = serde_json::from_slice(host_body)?;
            single(&Facets {
                total: host.total,
                genre: host.facets.genre,
            })
        }
        Resource::Film(_) => {
            let film: FilmDetail = serde_json::from_slice(host_body)?;
            let mut presented = single(&film)?;
            presented.access = Some(film.access);
            Ok(presented)
        }
        Resource::GenreList => {
            let host: HostItems<Genre> = serde_json::from_slice(host_body)?;
            whole(&host.items)
        }
        Resource::Genre(_) => single(&serde_json::from_slice::<Genre>(host_body)?),
        Resource::PersonSearch(params) => {
            let host: HostPage<Person> = serde_json::from_slice(host_body)?;
            page(&host.items, host.total, params.paging)
        }
        Resource::Person(_) => single(&serde_json::from_slice::<Person>(host_body)?),
        Resource::PersonFilms(_) => {
            let host: HostItems<FilmShort> = serde_json::from_slice(host_body)?;
            whole(&host.items)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resource::Route;

    const FILM: &str = "0b6b3f5e-9c1a-4a57-8a39-4a0f1b7c2d11";
    const GENRE: &str = "3d8d9bf5-0d90-4353-88ba-4ccc5d2c07ff";

    fn resource(route: Route<'_>, query: &str) -> Resource {
        Resource::validate(route, query)
            .expect("valid")
            .expect("a catalog resource")
    }

    fn body(presented: &Presented) -> Value {
        serde_json::from_str(&presented.body).expect("JSON body")
    }

    fn host_film_page() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "version": 7, "total": 51, "page_number": 1, "page_size": 50,
            "items": [{
                "uuid": FILM, "title": "Star", "imdb_rating": 8.1, "access": "free",
                "type": "movie", "creation_date": "2001-01-01",
                "highlight": {"title": "<b>Star</b>"}
            }],
            "facets": {"genre": [{"uuid": GENRE, "name": "Sci-Fi", "count": 3}]}
        }))
        .expect("JSON")
    }

    /// Film lists keep only the four public fields and report totals and page counts.
    #[test]
    fn film_list_shows_four_fields_and_counts_pages() {
        let presented = present(&resource(Route::FilmList, ""), &host_film_page()).expect("ok");
        assert_eq!(
            body(&presented),
            json!([{"uuid": FILM, "title": "Star", "imdb_rating": 8.1, "access": "free"}])
        );
        assert_eq!(presented.total, Some(51));
        assert_eq!(presented.page_count, Some(2));
    }

    /// Search hits carry the host's highlight, null when the host has none.
    #[test]
    fn search_hits_carry_highlight_or_null() {
        let presented = present(
            &resource(Route::FilmSearch, "query=star"),
            &host_film_page(),
        )
        .expect("ok");
        assert_eq!(
            body(&presented)[0]["highlight"],
            json!({"title": "<b>Star</b>"})
        );
        let without = serde_json::to_vec(&json!({
            "total": 1,
            "items": [{"uuid": FILM, "title": "Star", "imdb_rating": null, "access": "free"}]
        }))
        .expect("JSON");
        let presented = present(&resource(Route::FilmSearch, ""), &without).expect("ok");
        assert_eq!(body(&presented)[0]["highlight"], Value::Null);
        assert_eq!(body(&presented)[0]["imdb_rating"], Value::Null);
    }

    /// Facets are the total and the genre counts only.
    #[test]
    fn facets_are_total_and_genre_counts() {
        let presented = present(
            &resource(Route::FilmFacets, "query=star"),
            &host_film_page(),
        )
        .expect("ok");
        assert_eq!(
            body(&presented),
            json!({"total": 51, "genre": [{"uuid": GENRE, "name": "Sci-Fi", "count": 3}]})
        );
        assert_eq!(presented.total, None);
    }

    /// The film detail keeps its access value for the paid-content rule.
    #[test]
    fn film_detail_reports_its_access() {
        let host = serde_json::to_vec(&json!({
            "uuid": FILM, "title": "Star", "imdb_rating": 8.1, "description": "d",
            "creation_date": "2001-01-01", "type": "movie", "access": "subscription",
            "genre": [{"uuid": GENRE, "name": "Sci-Fi"}], "actors": [], "writers": [],
            "directors": [], "internal_rank": 3
        }))
        .expect("JSON");
        let presented = present(&resource(Route::Film(FILM), ""), &host).expect("ok");
        assert_eq!(presented.access.as_deref(), Some("subscription"));
        let body = body(&presented);
        assert_eq!(body["type"], "movie");
        assert!(body.get("internal_rank").is_none());
    }

    /// Unpaged lists are one page, or none when empty.
    #[test]
    fn unpaged_lists_are_one_page_or_none() {
        let genres = serde_json::to_vec(&json!({
            "version": 1,
            "items": [{"uuid": GENRE, "name": "Sci-Fi", "film_count": 3}]
        }))
        .expect("JSON");
        let presented = present(&resource(Route::GenreList, ""), &genres).expect("ok");
        assert_eq!((presented.total, presented.page_count), (Some(1), Some(1)));
        let none =
            present(&resource(Route::PersonFilms(FILM), ""), br#"{"items": []}"#).expect("ok");
        assert_eq!(body(&none), json!([]));
        assert_eq!((none.total, none.page_count), (Some(0), Some(0)));
    }

    /// A host answer of the wrong shape is an error, not a panic or an empty list.
    #[test]
    fn malformed_host_answer_is_an_error() {
        assert!(present(&resource(Route::FilmList, ""), b"{\"items\": 3}").is_err());
        assert!(present(&resource(Route::Genre(GENRE), ""), b"not json").is_err());
    }
}
