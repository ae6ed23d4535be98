//! Every read the ETL makes from Postgres's `content` schema, shaped as [`crate::model`]
//! documents. Read-only; the ETL never writes to Postgres.

use std::collections::{BTreeMap, HashMap, HashSet};

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
        WHERE fp.film_id = f.id), '[]'::json),
    f.modified
FROM content.film f";

const PERSON_SELECT: &str = "
SELECT p.id, p.full_name,
    COALESCE(json_agg(json_build_object('uuid', fp.film_id, 'role', fp.role)
        ORDER BY fp.film_id, fp.role) FILTER (WHERE fp.film_id IS NOT NULL), '[]'::json),
    p.modified
FROM content.person p LEFT JOIN content.film_person fp ON fp.person_id = p.id";

/// The version of a content row a document was built from: its `modified` column
/// (which the content triggers move on every change of the row or of a film's links),
/// in microseconds since the epoch, Postgres's own precision. Two reads of a row with
/// the same version read the same row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RowVersion(pub i64);

impl RowVersion {
    fn of(row: &Row, column: usize) -> Result<Self, EtlError> {
        Ok(Self(
            row.try_get::<_, DateTime<Utc>>(column)?.timestamp_micros(),
        ))
    }
}

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

fn film_from_row(row: &Row) -> Result<(Film, RowVersion), EtlError> {
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
    Ok((film, RowVersion::of(row, 9)?))
}

fn person_from_row(row: &Row) -> Result<(Person, RowVersion), EtlError> {
    let id: Uuid = row.try_get(0)?;
    let links: Vec<LinkedFilm> = serde_json::from_value(row.try_get(2)?)
        .map_err(|e| EtlError::Decode(format!("films of person {id}: {e}")))?;
    // Links come ordered by film, so roles of one film are adjacent.
    let mut films: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links {
        films.entry(link.uuid).or_default().push(link.role);
    }
    let person = Person {
        uuid: id.to_string(),
        full_name: row.try_get(1)?,
        films: films
            .into_iter()
            .map(|(uuid, roles)| PersonFilm { uuid, roles })
            .collect(),
    };
    Ok((person, RowVersion::of(row, 3)?))
}

/// Film columns of a full build (its links come from [`CatalogLinks`]).
const BARE_FILM_SELECT: &str = "
SELECT id, title, description, creation_date::text, rating::float8, type, access, modified
FROM content.film";

/// The roles a film names its people in (the `film_person_role_known` constraint), in
/// their text order, so sorting role indexes sorts roles as Postgres does.
const ROLES: [&str; 3] = ["actor", "director", "writer"];

/// Everything a full build joins to the film rows, read with one plain scan per table
/// instead of two correlated aggregates per film (which cost Postgres seconds on 100k
/// films): genre and person names, and every film↔genre and film↔person link.
///
/// The documents built from it equal [`films_by_ids`] and [`persons_by_ids`] ones,
/// orders included: Postgres ranks genres by name and persons by name then id (its
/// collation, as the aggregates order them), and the links are sorted by those ranks
/// here.
#[derive(Debug, Default)]
pub struct CatalogLinks {
    /// Genres by name (a film's genres are kept as ranks in this list).
    genres: Vec<GenreRef>,
    /// Each genre's row version, by rank.
    genre_versions: Vec<RowVersion>,
    /// Persons by name, then id (a film's people are kept as ranks in this list).
    persons: Vec<(Uuid, String)>,
    /// Each person's row version, by rank.
    person_versions: Vec<RowVersion>,
    /// A film's genres (ranks) and people (rank, role index in [`ROLES`]).
    film_genres: HashMap<Uuid, Vec<u16>>,
    film_people: HashMap<Uuid, Vec<(u32, u8)>>,
    /// A person's films (film id, role index), by person rank.
    person_films: Vec<Vec<(Uuid, u8)>>,
}

impl CatalogLinks {
    /// Reads names and links, the link tables on `side` (when given) while the names
    /// read on `client`. Rows are streamed into compact columns, never held as rows.
    pub async fn read(client: &Client, side: Option<&Client>) -> Result<Self, EtlError> {
        let links = side.unwrap_or(client);
        let names = async {
            let genres = all_genres(client).await?;
            let persons = scan(
                client,
                "SELECT id, full_name, modified FROM content.person ORDER BY full_name, id",
                |row| {
                    Ok(Some((
                        (row.try_get::<_, Uuid>(0)?, row.try_get::<_, String>(1)?),
                        RowVersion::of(row, 2)?,
                    )))
                },
            )
            .await?;
            Ok::<_, EtlError>((genres, persons))
        };
        let link_rows = async {
            let genre_links: Vec<(Uuid, Uuid)> = scan(
                links,
                "SELECT film_id, genre_id FROM content.film_genre",
                |row| Ok(Some((row.try_get(0)?, row.try_get(1)?))),
            )
            .await?;
            let person_links: Vec<(Uuid, Uuid, u8)> = scan(
                links,
                "SELECT film_id, person_id, role FROM content.film_person",
                |row| {
                    let role: &str = row.try_get(2)?;
                    Ok(match ROLES.iter().position(|r| *r == role) {
                        Some(role) => Some((row.try_get(0)?, row.try_get(1)?, role as u8)),
                        None => None,
                    })
                },
            )
            .await?;
            Ok::<_, EtlError>((genre_links, person_links))
        };
        let ((genres, persons), (genre_links, person_links)) =
            futures::try_join!(names, link_rows)?;
        let (persons, person_versions): (Vec<_>, Vec<_>) = persons.into_iter().unzip();
        let (genres, genre_versions): (Vec<_>, Vec<_>) = genres.into_iter().unzip();

        let genre_rank = genres
            .iter()
            .enumerate()
            .map(|(rank, g)| Ok((Uuid::parse_str(&g.uuid)?, rank as u16)))
            .collect::<Result<HashMap<_, _>, uuid::Error>>()
            .map_err(|e| EtlError::Decode(format!("genre id: {e}")))?;
        let person_rank: HashMap<Uuid, u32> = persons
            .iter()
            .enumerate()
            .map(|(rank, (id, _))| (*id, rank as u32))
            .collect();
        let mut film_genres: HashMap<Uuid, Vec<u16>> = HashMap::new();
        // A link to a row that no longer exists is dropped, as the join drops it.
        for (film, genre) in genre_links {
            if let Some(&rank) = genre_rank.get(&genre) {
                film_genres.entry(film).or_default().push(rank);
            }
        }
        let mut film_people: HashMap<Uuid, Vec<(u32, u8)>> = HashMap::new();
        let mut person_films = vec![Vec::new(); persons.len()];
        for (film, person, role) in person_links {
            if let Some(&rank) = person_rank.get(&person) {
                film_people.entry(film).or_default().push((rank, role));
                person_films[rank as usize].push((film, role));
            }
        }
        Ok(Self {
            genres,
            genre_versions,
            persons,
            person_versions,
            film_genres,
            film_people,
            person_films,
        })
    }

    /// Every film with its genres and people, streamed on `client` (each film's links
    /// are handed over, not copied).
    pub async fn films<'a>(
        &'a mut self,
        client: &Client,
    ) -> Result<impl Stream<Item = Result<(Film, RowVersion), EtlError>> + 'a, EtlError> {
        let rows = client
            .query_raw(BARE_FILM_SELECT, std::iter::empty::<&str>())
            .await?;
        Ok(rows
            .map_err(EtlError::from)
            .and_then(move |row| std::future::ready(self.film(&row))))
    }

    fn film(&mut self, row: &Row) -> Result<(Film, RowVersion), EtlError> {
        let id: Uuid = row.try_get(0)?;
        let mut genre_ranks = self.film_genres.remove(&id).unwrap_or_default();
        genre_ranks.sort_unstable();
        let mut people = self.film_people.remove(&id).unwrap_or_default();
        // By name then id, as the ranks are; roles of one person in the order the
        // aggregate leaves ties (any: the document keeps them in role lists).
        people.sort_unstable();
        let mut film = Film {
            uuid: id.to_string(),
            title: row.try_get(1)?,
            description: row.try_get(2)?,
            creation_date: row.try_get(3)?,
            imdb_rating: row.try_get(4)?,
            film_type: row.try_get(5)?,
            access: row.try_get(6)?,
            genre: genre_ranks
                .into_iter()
                .map(|rank| self.genres[usize::from(rank)].clone())
                .collect(),
            actors: Vec::new(),
            writers: Vec::new(),
            directors: Vec::new(),
        };
        for (rank, role) in people {
            let (person, full_name) = &self.persons[rank as usize];
            let list = match ROLES[usize::from(role)] {
                "actor" => &mut film.actors,
                "writer" => &mut film.writers,
                _ => &mut film.directors,
            };
            list.push(PersonRef {
                uuid: person.to_string(),
                full_name: full_name.clone(),
            });
        }
        Ok((film, RowVersion::of(row, 7)?))
    }

    /// Every genre, by name, with its row version.
    pub fn genres(&self) -> impl Iterator<Item = (&GenreRef, RowVersion)> {
        self.genres.iter().zip(self.genre_versions.iter().copied())
    }

    /// Every person with their films (by film id, roles in name order) and row
    /// version; hands the persons over, so a second call yields none.
    pub fn persons(&mut self) -> impl Iterator<Item = (Person, RowVersion)> + use<> {
        std::mem::take(&mut self.persons)
            .into_iter()
            .zip(std::mem::take(&mut self.person_films))
            .zip(std::mem::take(&mut self.person_versions))
            .map(|(((id, full_name), mut links), version)| {
                links.sort_unstable();
                let mut films: Vec<PersonFilm> = Vec::new();
                let mut previous = None;
                for (film, role) in links {
                    let role = ROLES[usize::from(role)].to_owned();
                    match films.last_mut() {
                        Some(last) if previous == Some(film) => last.roles.push(role),
                        _ => films.push(PersonFilm {
                            uuid: film.to_string(),
                            roles: vec![role],
                        }),
                    }
                    previous = Some(film);
                }
                let person = Person {
                    uuid: id.to_string(),
                    full_name,
                    films,
                };
                (person, version)
            })
    }
}

/// Streams the rows of `sql` (no parameters) through `decode`, keeping what it returns
/// (`None` skips a row), so a large table is never held as rows.
async fn scan<T>(
    client: &Client,
    sql: &str,
    mut decode: impl FnMut(&Row) -> Result<Option<T>, EtlError>,
) -> Result<Vec<T>, EtlError> {
    let rows = client.query_raw(sql, std::iter::empty::<&str>()).await?;
    futures::pin_mut!(rows);
    let mut kept = Vec::new();
    while let Some(row) = rows.try_next().await? {
        kept.extend(decode(&row)?);
    }
    Ok(kept)
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

/// The films among `ids` that exist, with their row versions.
pub async fn films_by_ids(
    client: &Client,
    ids: &[Uuid],
) -> Result<Vec<(Film, RowVersion)>, EtlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{FILM_SELECT} WHERE f.id = ANY($1)");
    let rows = client.query(sql.as_str(), &[&ids]).await?;
    rows.iter().map(film_from_row).collect()
}

/// The persons among `ids` that exist, with their row versions.
pub async fn persons_by_ids(
    client: &Client,
    ids: &[Uuid],
) -> Result<Vec<(Person, RowVersion)>, EtlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{PERSON_SELECT} WHERE p.id = ANY($1) GROUP BY p.id");
    let rows = client.query(sql.as_str(), &[&ids]).await?;
    rows.iter().map(person_from_row).collect()
}

/// Every genre with its row version, by name (a few dozen: the ETL always rewrites
/// them all).
pub async fn all_genres(client: &Client) -> Result<Vec<(GenreRef, RowVersion)>, EtlError> {
    let rows = client
        .query(
            "SELECT id, name, modified FROM content.genre ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let genre = GenreRef {
                uuid: row.try_get::<_, Uuid>(0)?.to_string(),
                name: row.try_get(1)?,
            };
            Ok((genre, RowVersion::of(row, 2)?))
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

/// Ids and versions of a content table's rows modified at or after `since`.
pub async fn modified_since(
    client: &Client,
    table: ContentTable,
    since: DateTime<Utc>,
) -> Result<Vec<(Uuid, RowVersion)>, EtlError> {
    let sql = format!(
        "SELECT id, modified FROM content.{} WHERE modified >= $1",
        table.as_str()
    );
    let rows = client.query(sql.as_str(), &[&since]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, RowVersion::of(r, 1)?)))
        .collect()
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
