//! Every read the ETL makes from Postgres's `content` schema, shaped as [`crate::model`]
//! documents. Read-only; the ETL never writes to Postgres.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use serde::Deserialize;
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use crate::error::EtlError;
use crate::model::{Film, GenreRef, Person, PersonFilm, PersonRef};

/// Postgres channel the content triggers notify on.
pub const CHANGES_CHANNEL: &str = "content_changes";

const FILM_SELECT: &str = "
SELECT f.id, f.title, f.description, f.creation_date::text, f.rating::float8, f.type, f.access,
    COALESCE((SELECT json_agg(json_build_object('uuid', g.id, 'name', g.name) ORDER BY g.name)
        FROM content.film_genre fg JOIN content.genre g ON g.id = fg.genre_id
        WHERE fg.film_id = f.id), '[]'::json),
    COALESCE((SELECT json_agg(json_build_object('uuid', p.id, 'full_name', p.full_name, 'role', fp.role)
            ORDER BY p.full_name, p.id)
        FROM content.film_person fp JOIN content.person p ON p.id = fp.person_id
        WHERE fp.film_id = f.id), '[]'::json)
FROM content.film f";

const PERSON_SELECT: &str = "
SELECT p.id, p.full_name,
    COALESCE(json_agg(json_build_object('uuid', fp.film_id, 'role', fp.role)
        ORDER BY fp.film_id, fp.role) FILTER (WHERE fp.film_id IS NOT NULL), '[]'::json)
FROM content.person p LEFT JOIN content.film_person fp ON fp.person_id = p.id";

#[derive(Deserialize)]
struct LinkedPerson {
    uuid: String,
    full_name: String,
    role: String,
}

#[derive(Deserialize)]
struct LinkedFilm {
    uuid: String,
    role: String,
}

fn film_from_row(row: &Row) -> Result<Film, EtlError> {
    let id: Uuid = row.try_get(0)?;
    let genre: Vec<GenreRef> = serde_json::from_value(row.try_get(7)?)
        .map_err(|e| EtlError::Decode(format!("genres of film {id}: {e}")))?;
    let people: Vec<LinkedPerson> = serde_json::from_value(row.try_get(8)?)
        .map_err(|e| EtlError::Decode(format!("people of film {id}: {e}")))?;
    let mut film = Film {
        uuid: id.to_string(),
        title: row.try_get(1)?,
        description: row.try_get(2)?,
        creation_date: row.try_get(3)?,
        imdb_rating: row.try_get(4)?,
        film_type: row.try_get(5)?,
        access: row.try_get(6)?,
        genre,
        actors: Vec::new(),
        writers: Vec::new(),
        directors: Vec::new(),
    };
    for person in people {
        let list = match person.role.as_str() {
            "actor" => &mut film.actors,
            "writer" => &mut film.writers,
            "director" => &mut film.directors,
            _ => continue,
        };
        list.push(PersonRef {
            uuid: person.uuid,
            full_name: person.full_name,
        });
    }
    Ok(film)
}

fn person_from_row(row: &Row) -> Result<Person, EtlError> {
    let id: Uuid = row.try_get(0)?;
    let links: Vec<LinkedFilm> = serde_json::from_value(row.try_get(2)?)
        .map_err(|e| EtlError::Decode(format!("films of person {id}: {e}")))?;
    // Links come ordered by film, so roles of one film are adjacent.
    let mut films: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links {
        films.entry(link.uuid).or_default().push(link.role);
    }
    Ok(Person {
        uuid: id.to_string(),
        full_name: row.try_get(1)?,
        films: films
            .into_iter()
            .map(|(uuid, roles)| PersonFilm { uuid, roles })
            .collect(),
    })
}

/// Postgres's clock: positions are taken from the database, never from this machine.
pub async fn database_now(client: &Client) -> Result<DateTime<Utc>, EtlError> {
    Ok(client.query_one("SELECT now()", &[]).await?.try_get(0)?)
}

/// How many films and persons a full build will read (for its progress line).
pub async fn count_documents(client: &Client) -> Result<u64, EtlError> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM content.film) + (SELECT count(*) FROM content.person)",
            &[],
        )
        .await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}

/// Every film, streamed.
pub async fn all_films(
    client: &Client,
) -> Result<impl Stream<Item = Result<Film, EtlError>>, EtlError> {
    let rows = client
        .query_raw(FILM_SELECT, std::iter::empty::<&str>())
        .await?;
    Ok(rows
        .map_err(EtlError::from)
        .and_then(|row| async move { film_from_row(&row) }))
}

/// Every person, streamed.
pub async fn all_persons(
    client: &Client,
) -> Result<impl Stream<Item = Result<Person, EtlError>>, EtlError> {
    let sql = format!("{PERSON_SELECT} GROUP BY p.id");
    let rows = client
        .query_raw(sql.as_str(), std::iter::empty::<&str>())
        .await?;
    Ok(rows
        .map_err(EtlError::from)
        .and_then(|row| async move { person_from_row(&row) }))
}

/// The films among `ids` that exist.
pub async fn films_by_ids(client: &Client, ids: &[Uuid]) -> Result<Vec<Film>, EtlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{FILM_SELECT} WHERE f.id = ANY($1)");
    let rows = client.query(sql.as_str(), &[&ids]).await?;
    rows.iter().map(film_from_row).collect()
}

/// The persons among `ids` that exist.
pub async fn persons_by_ids(client: &Client, ids: &[Uuid]) -> Result<Vec<Person>, EtlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{PERSON_SELECT} WHERE p.id = ANY($1) GROUP BY p.id");
    let rows = client.query(sql.as_str(), &[&ids]).await?;
    rows.iter().map(person_from_row).collect()
}

/// Every genre (a few dozen: the ETL always rewrites them all).
pub async fn all_genres(client: &Client) -> Result<Vec<GenreRef>, EtlError> {
    let rows = client
        .query("SELECT id, name FROM content.genre ORDER BY name", &[])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(GenreRef {
                uuid: row.try_get::<_, Uuid>(0)?.to_string(),
                name: row.try_get(1)?,
            })
        })
        .collect()
}

/// Films linked to any of the genres.
pub async fn films_of_genres(client: &Client, genres: &[Uuid]) -> Result<Vec<Uuid>, EtlError> {
    if genres.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT DISTINCT film_id FROM content.film_genre WHERE genre_id = ANY($1)",
            &[&genres],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Films linked to any of the persons.
pub async fn films_of_persons(client: &Client, persons: &[Uuid]) -> Result<Vec<Uuid>, EtlError> {
    if persons.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT DISTINCT film_id FROM content.film_person WHERE person_id = ANY($1)",
            &[&persons],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Ids of a content table's rows modified at or after `since`.
pub async fn modified_since(
    client: &Client,
    table: ContentTable,
    since: DateTime<Utc>,
) -> Result<Vec<Uuid>, EtlError> {
    let sql = format!(
        "SELECT id FROM content.{} WHERE modified >= $1",
        table.as_str()
    );
    let rows = client.query(sql.as_str(), &[&since]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Every id of a content table (to find rows deleted while the ETL was not listening).
pub async fn all_ids(client: &Client, table: ContentTable) -> Result<HashSet<String>, EtlError> {
    let sql = format!("SELECT id FROM content.{}", table.as_str());
    let rows = client.query(sql.as_str(), &[]).await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<_, Uuid>(0)?.to_string()))
        .collect()
}

/// The content tables that carry documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentTable {
    Film,
    Person,
    Genre,
}

impl ContentTable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Film => "film",
            Self::Person => "person",
            Self::Genre => "genre",
        }
    }
}
