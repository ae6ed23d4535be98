//! Content editing: the rules of a film, genre and person, and every query that reads
//! or changes `content.*`, each change with its `admin.audit_log` entry written in the
//! same statement (so a change never exists unrecorded, nor a record without its
//! change). The ETL picks changes up from the tables' notifications.
//!
//! Inputs arrive as field maps (a form or a JSON object, see [`Fields`]) and are
//! checked into drafts here; refusals name the field.

use std::collections::HashMap;

use cinema_edge::pg::{
    DbError, FOREIGN_KEY_VIOLATION, Pg, RFC3339_UTC, UNIQUE_VIOLATION, column, nullable,
};
use serde::{Deserialize, Serialize};
use spin_sdk::pg::{ParameterValue, Row};

use crate::error::{AdminError, AdminResult, FieldError};

/// Longest title, name or full name; longest description.
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Rows per list page.
pub const PAGE_SIZE: i64 = 25;
/// Film types, access levels and person roles the schema allows.
pub const FILM_TYPES: [&str; 2] = ["movie", "tv_show"];
pub const FILM_ACCESS: [&str; 2] = ["free", "subscription"];
pub const PERSON_ROLES: [&str; 3] = ["actor", "director", "writer"];

/// Submitted fields by name (a form's or a JSON object's, as text).
pub type Fields = HashMap<String, String>;

fn text(value: impl Into<String>) -> ParameterValue {
    ParameterValue::Str(value.into())
}

fn uuid(value: &str) -> ParameterValue {
    ParameterValue::Uuid(value.to_owned())
}

fn optional(value: Option<String>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, ParameterValue::Str)
}

/// A path or form id: a UUID, canonical.
pub fn parse_id(raw: &str, field: &'static str) -> AdminResult<String> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.to_string())
        .map_err(|_| AdminError::invalid(field, "must be a UUID"))
}

fn required_name(fields: &Fields, field: &'static str, errors: &mut Vec<FieldError>) -> String {
    let value = fields.get(field).map(|v| v.trim()).unwrap_or_default();
    if value.is_empty() {
        errors.push(FieldError {
            field,
            message: "is required".into(),
        });
    } else if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        errors.push(FieldError {
            field,
            message: format!("must be at most {MAX_NAME_CHARS} characters, on one line"),
        });
    }
    value.to_owned()
}

fn description(fields: &Fields, errors: &mut Vec<FieldError>) -> String {
    let value = fields
        .get("description")
        .map(|v| v.trim())
        .unwrap_or_default();
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError {
            field: "description",
            message: format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        });
    }
    value.replace("\r\n", "\n")
}

fn one_of(
    fields: &Fields,
    field: &'static str,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) -> String {
    let value = fields.get(field).map(|v| v.trim()).unwrap_or_default();
    let value = if value.is_empty() { allowed[0] } else { value };
    if !allowed.contains(&value) {
        errors.push(FieldError {
            field,
            message: format!("must be one of {}", allowed.join(", ")),
        });
    }
    value.to_owned()
}

/// A checked film.
#[derive(Debug, Clone, PartialEq)]
pub struct FilmDraft {
    pub title: String,
    pub description: String,
    /// `YYYY-MM-DD`.
    pub creation_date: Option<String>,
    /// 0.0..=10.0, one decimal.
    pub rating: Option<String>,
    pub film_type: String,
    pub access: String,
}

impl FilmDraft {
    /// Checks a film's fields; every refusal names its field.
    pub fn check(fields: &Fields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = required_name(fields, "title", &mut errors);
        let description = description(fields, &mut errors);
        let creation_date = match fields.get("creation_date").map(|v| v.trim()) {
            None | Some("") => None,
            Some(raw) => {
                if valid_date(raw) {
                    Some(raw.to_owned())
                } else {
                    errors.push(FieldError {
                        field: "creation_date",
                        message: "must be a date as YYYY-MM-DD".into(),
                    });
                    None
                }
            }
        };
        let rating = match fields.get("rating").map(|v| v.trim()) {
            None | Some("") => None,
            Some(raw) => match raw.replace(',', ".").parse::<f64>() {
                Ok(value) if (0.0..=10.0).contains(&value) => {
                    Some(format!("{:.1}", (value * 10.0).round() / 10.0))
                }
                _ => {
                    errors.push(FieldError {
                        field: "rating",
                        message: "must be a number from 0 to 10".into(),
                    });
                    None
                }
            },
        };
        let film_type = one_of(fields, "type", &FILM_TYPES, &mut errors);
        let access = one_of(fields, "access", &FILM_ACCESS, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                title,
                description,
                creation_date,
                rating,
                film_type,
                access,
            })
        } else {
            Err(errors)
        }
    }
}

/// `YYYY-MM-DD` with a real month and day (years 1800..=2200).
fn valid_date(raw: &str) -> bool {
    let parts: Vec<&str> = raw.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let (Ok(year), Ok(month), Ok(day)) = (
        year.parse::<u32>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return false;
    };
    if year.to_string().len() != 4 || !(1800..=2200).contains(&year) || !(1..=12).contains(&month) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=days).contains(&day) && raw.len() == 10
}

/// The two simpler kinds: a genre (name, description) and a person (full name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Genre,
    Person,
}

impl Kind {
    /// The kind a path segment names (`genres`, `persons`).
    pub fn from_plural(plural: &str) -> Option<Self> {
        match plural {
            "genres" => Some(Self::Genre),
            "persons" => Some(Self::Person),
            _ => None,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::Genre => "content.genre",
            Self::Person => "content.person",
        }
    }
    /// The entity name in audit entries and paths (`genre`, `person`).
    pub fn entity(self) -> &'static str {
        match self {
            Self::Genre => "genre",
            Self::Person => "person",
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Self::Genre => "genres",
            Self::Person => "persons",
        }
    }
    /// The column a row is known by.
    pub fn name_column(self) -> &'static str {
        match self {
            Self::Genre => "name",
            Self::Person => "full_name",
        }
    }
}

/// A checked genre or person.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedDraft {
    pub name: String,
    /// Genres only.
    pub description: String,
}

impl NamedDraft {
    pub fn check(kind: Kind, fields: &Fields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = required_name(fields, kind.name_column(), &mut errors);
        let description = match kind {
            Kind::Genre => description(fields, &mut errors),
            Kind::Person => String::new(),
        };
        if errors.is_empty() {
            Ok(Self { name, description })
        } else {
            Err(errors)
        }
    }
}

/// Who makes a change, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
}

/// A film row as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Film {
    pub id: String,
    pub title: String,
    pub description: String,
    pub creation_date: Option<String>,
    pub rating: Option<f64>,
    #[serde(rename = "type")]
    pub film_type: String,
    pub access: String,
    pub genres: Vec<Linked>,
    pub persons: Vec<LinkedPerson>,
    pub modified: String,
}

/// A genre linked to a film.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Linked {
    pub id: String,
    pub name: String,
}

/// A person linked to a film in a role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkedPerson {
    pub id: String,
    pub full_name: String,
    pub role: String,
}

/// A row of the film list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FilmRow {
    pub id: String,
    pub title: String,
    pub creation_date: Option<String>,
    pub rating: Option<f64>,
    #[serde(rename = "type")]
    pub film_type: String,
    pub access: String,
    pub genres: String,
}

/// A genre or person row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Films linked to it.
    pub films: i64,
}

/// An audit entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor_id: String,
    pub actor_email: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A page of rows and how many there are in all.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page_number: i64,
    pub page_size: i64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> i64 {
        ((self.total + self.page_size - 1) / self.page_size).max(1)
    }
}

/// Sort orders of the film list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilmSort {
    #[default]
    Modified,
    Title,
    Rating,
    Date,
}

impl FilmSort {
    pub const ALL: [(&'static str, Self); 4] = [
        ("-modified", Self::Modified),
        ("title", Self::Title),
        ("-rating", Self::Rating),
        ("-creation_date", Self::Date),
    ];

    pub fn parse(raw: &str) -> AdminResult<Self> {
        if raw.is_empty() {
            return Ok(Self::default());
        }
        Self::ALL
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, sort)| *sort)
            .ok_or_else(|| {
                AdminError::invalid(
                    "sort",
                    "must be -modified, title, -rating or -creation_date",
                )
            })
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, sort)| *sort == self)
            .map_or("-modified", |(name, _)| name)
    }

    fn order_by(self) -> &'static str {
        match self {
            Self::Modified => "f.modified DESC, f.id",
            Self::Title => "lower(f.title), f.id",
            Self::Rating => "f.rating DESC NULLS LAST, f.id",
            Self::Date => "f.creation_date DESC NULLS LAST, f.id",
        }
    }
}

/// The film list's filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilmFilter {
    pub query: String,
    pub genre_id: Option<String>,
    pub film_type: Option<String>,
    pub access: Option<String>,
    pub year: Option<i32>,
    pub sort: FilmSort,
    pub page_number: i64,
}

impl FilmFilter {
    /// From a query string; unknown parameters are ignored, bad ones named.
    pub fn parse(raw: &str) -> AdminResult<Self> {
        let params: HashMap<String, String> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let query = params.get("query").cloned().unwrap_or_default();
        if query.chars().count() > MAX_NAME_CHARS {
            return Err(AdminError::invalid(
                "query",
                "must be at most 255 characters",
            ));
        }
        let genre_id = params
            .get("genre")
            .map(|raw| parse_id(raw, "genre"))
            .transpose()?;
        let pick = |name: &'static str, allowed: &[&str]| -> AdminResult<Option<String>> {
            match params.get(name) {
                None => Ok(None),
                Some(value) if allowed.contains(&value.as_str()) => Ok(Some(value.clone())),
                Some(_) => Err(AdminError::invalid(
                    name,
                    format!("must be one of {}", allowed.join(", ")),
                )),
            }
        };
        let year = params
            .get("year")
            .map(|raw| {
                raw.parse::<i32>()
                    .ok()
                    .filter(|y| (1800..=2200).contains(y))
                    .ok_or_else(|| AdminError::invalid("year", "must be a year from 1800 to 2200"))
            })
            .transpose()?;
        let page_number = params
            .get("page")
            .map(|raw| {
                raw.parse::<i64>()
                    .ok()
                    .filter(|p| (1..=100_000).contains(p))
                    .ok_or_else(|| AdminError::invalid("page", "must be a page number from 1"))
            })
            .transpose()?
            .unwrap_or(1);
        Ok(Self {
            query,
            genre_id,
            film_type: pick("type", &FILM_TYPES)?,
            access: pick("access", &FILM_ACCESS)?,
            year,
            sort: FilmSort::parse(params.get("sort").map_or("", String::as_str))?,
            page_number,
        })
    }

    /// The query string of this filter on another page.
    pub fn query_string(&self, page_number: i64) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if !self.query.is_empty() {
            out.append_pair("query", &self.query);
        }
        if let Some(genre) = &self.genre_id {
            out.append_pair("genre", genre);
        }
        if let Some(film_type) = &self.film_type {
            out.append_pair("type", film_type);
        }
        if let Some(access) = &self.access {
            out.append_pair("access", access);
        }
        if let Some(year) = self.year {
            out.append_pair("year", &year.to_string());
        }
        if self.sort != FilmSort::default() {
            out.append_pair("sort", self.sort.name());
        }
        out.append_pair("page", &page_number.to_string());
        out.finish()
    }
}

/// `%text%` for `ILIKE`, with the pattern characters of `text` escaped.
fn contains_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// The audit entry CTE every change appends: `source` is a CTE with columns `id`,
/// `before` and `after` (JSONB) of the changed rows.
fn audit_insert(source: &str) -> String {
    format!(
        "audit AS ( \
             INSERT INTO admin.audit_log \
                 (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
             SELECT gen_random_uuid(), $actor::text::uuid, \
                    COALESCE((SELECT email FROM auth.users WHERE id = $actor::text::uuid), ''), \
                    $action, $entity, {source}.id, {source}.before, {source}.after \
             FROM {source} RETURNING id)"
    )
}

/// Binds the audit placeholders (`$actor`, `$action`, `$entity`) after `params`.
fn bind_audit(
    statement: &str,
    mut params: Vec<ParameterValue>,
    actor: &Actor,
    action: &str,
    entity: &str,
) -> (String, Vec<ParameterValue>) {
    let next = params.len();
    let statement = statement
        .replace("$actor", &format!("${}", next + 1))
        .replace("$action", &format!("${}", next + 2))
        .replace("$entity", &format!("${}", next + 3));
    params.push(text(&actor.user_id));
    params.push(text(action));
    params.push(text(entity));
    (statement, params)
}

/// JSONB of a film row without its bookkeeping columns.
const FILM_JSON: &str = "jsonb_build_object('title', f.title, 'description', f.description, \
     'creation_date', f.creation_date, 'rating', f.rating, 'type', f.type, 'access', f.access)";

/// The content database, on behalf of a console user.
pub struct Content {
    pg: Pg,
}

impl Content {
    pub async fn open(url: &str) -> AdminResult<Self> {
        Ok(Self {
            pg: Pg::open(url).await?,
        })
    }

    async fn audited(
        &self,
        context: &str,
        statement: &str,
        params: Vec<ParameterValue>,
        actor: &Actor,
        action: &str,
        entity: &str,
    ) -> Result<Vec<Row>, DbError> {
        let (statement, params) = bind_audit(statement, params, actor, action, entity);
        self.pg.rows(context, &statement, params).await
    }

    /// The film list.
    pub async fn films(&self, filter: &FilmFilter) -> AdminResult<Page<FilmRow>> {
        let statement = format!(
            "SELECT f.id::text AS id, f.title, to_char(f.creation_date, 'YYYY-MM-DD') AS creation_date, \
                    f.rating::float8 AS rating, f.type, f.access, \
                    COALESCE((SELECT string_agg(g.name, ', ' ORDER BY g.name) \
                              FROM content.film_genre fg JOIN content.genre g ON g.id = fg.genre_id \
                              WHERE fg.film_id = f.id), '') AS genres, \
                    count(*) OVER () AS total \
             FROM content.film f \
             WHERE ($1 = '%%' OR f.title ILIKE $1) \
               AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM content.film_genre fg \
                                                 WHERE fg.film_id = f.id AND fg.genre_id = $2::text::uuid)) \
               AND ($3::text IS NULL OR f.type = $3) AND ($4::text IS NULL OR f.access = $4) \
               AND ($5::int IS NULL OR extract(year FROM f.creation_date) = $5::int) \
             ORDER BY {} LIMIT $6 OFFSET $7",
            filter.sort.order_by()
        );
        let rows = self
            .pg
            .rows(
                "list films",
                &statement,
                vec![
                    text(contains_pattern(&filter.query)),
                    optional(filter.genre_id.clone()),
                    optional(filter.film_type.clone()),
                    optional(filter.access.clone()),
                    filter
                        .year
                        .map_or(ParameterValue::DbNull, ParameterValue::Int32),
                    ParameterValue::Int64(PAGE_SIZE),
                    ParameterValue::Int64((filter.page_number - 1) * PAGE_SIZE),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => column(row, "total")?,
            None => 0,
        };
        let items = rows
            .iter()
            .map(|row| {
                Ok(FilmRow {
                    id: column(row, "id")?,
                    title: column(row, "title")?,
                    creation_date: nullable(row, "creation_date")?,
                    rating: nullable(row, "rating")?,
                    film_type: column(row, "type")?,
                    access: column(row, "access")?,
                    genres: column(row, "genres")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Page {
            items,
            total,
            page_number: filter.page_number,
            page_size: PAGE_SIZE,
        })
    }

    /// One film with its genres and persons.
    pub async fn film(&self, id: &str) -> AdminResult<Option<Film>> {
        let rows = self
            .pg
            .rows(
                "read a film",
                &format!(
                    "SELECT f.id::text AS id, f.title, f.description, \
                            to_char(f.creation_date, 'YYYY-MM-DD') AS creation_date, \
                            f.rating::float8 AS rating, f.type, f.access, \
                            to_char(f.modified AT TIME ZONE 'UTC', {RFC3339_UTC}) AS modified, \
                            COALESCE((SELECT jsonb_agg(jsonb_build_object('id', g.id, 'name', g.name) ORDER BY g.name) \
                                      FROM content.film_genre fg JOIN content.genre g ON g.id = fg.genre_id \
                                      WHERE fg.film_id = f.id), '[]') AS genres, \
                            COALESCE((SELECT jsonb_agg(jsonb_build_object('id', p.id, 'full_name', p.full_name, 'role', fp.role) \
                                                       ORDER BY fp.role, p.full_name) \
                                      FROM content.film_person fp JOIN content.person p ON p.id = fp.person_id \
                                      WHERE fp.film_id = f.id), '[]') AS persons \
                     FROM content.film f WHERE f.id = $1"
                ),
                vec![uuid(id)],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let decode = |name: &str| -> AdminResult<serde_json::Value> { Ok(column(row, name)?) };
        let genres: Vec<Linked> = serde_json::from_value(decode("genres")?)
            .map_err(|e| AdminError::Internal(format!("film genres: {e}")))?;
        let persons: Vec<LinkedPerson> = serde_json::from_value(decode("persons")?)
            .map_err(|e| AdminError::Internal(format!("film persons: {e}")))?;
        Ok(Some(Film {
            id: column(row, "id")?,
            title: column(row, "title")?,
            description: column(row, "description")?,
            creation_date: nullable(row, "creation_date")?,
            rating: nullable(row, "rating")?,
            film_type: column(row, "type")?,
            access: column(row, "access")?,
            genres,
            persons,
            modified: column(row, "modified")?,
        }))
    }

    /// Creates a film; answers its id.
    pub async fn create_film(&self, draft: &FilmDraft, actor: &Actor) -> AdminResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let statement = format!(
            "WITH f AS ( \
                 INSERT INTO content.film (id, title, description, creation_date, rating, type, access) \
                 VALUES ($1, $2, $3, $4::text::date, $5::text::numeric, $6, $7) RETURNING *), \
             changed AS (SELECT f.id, NULL::jsonb AS before, {FILM_JSON} AS after FROM f), \
             {} \
             SELECT f.id::text AS id FROM f",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "create a film",
                &statement,
                film_params(&id, draft),
                actor,
                "film.create",
                "film",
            )
            .await?;
        rows.first()
            .map(|row| column::<String>(row, "id"))
            .transpose()?
            .ok_or_else(|| AdminError::Internal("film insert returned nothing".into()))
    }

    /// Updates a film; `false` when there is none.
    pub async fn update_film(
        &self,
        id: &str,
        draft: &FilmDraft,
        actor: &Actor,
    ) -> AdminResult<bool> {
        let statement = format!(
            "WITH old AS (SELECT f.id, {FILM_JSON} AS before FROM content.film f WHERE f.id = $1 FOR UPDATE), \
             f AS ( \
                 UPDATE content.film SET title = $2, description = $3, creation_date = $4::text::date, \
                        rating = $5::text::numeric, type = $6, access = $7 \
                 WHERE id = (SELECT id FROM old) RETURNING *), \
             changed AS ( \
                 SELECT f.id, old.before, {FILM_JSON} AS after FROM f JOIN old USING (id) \
                 WHERE old.before IS DISTINCT FROM {FILM_JSON}), \
             {} \
             SELECT count(*) AS found FROM f",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "update a film",
                &statement,
                film_params(id, draft),
                actor,
                "film.update",
                "film",
            )
            .await?;
        found(&rows)
    }

    /// Deletes a film (its links go with it); `false` when there is none.
    pub async fn delete_film(&self, id: &str, actor: &Actor) -> AdminResult<bool> {
        let statement = format!(
            "WITH f AS (DELETE FROM content.film WHERE id = $1 RETURNING *), \
             changed AS (SELECT f.id, {FILM_JSON} AS before, NULL::jsonb AS after FROM f), \
             {} \
             SELECT count(*) AS found FROM f",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "delete a film",
                &statement,
                vec![uuid(id)],
                actor,
                "film.delete",
                "film",
            )
            .await?;
        found(&rows)
    }

    /// Links a genre to a film (again: no change). Unknown film or genre: 404.
    pub async fn add_film_genre(&self, film: &str, genre: &str, actor: &Actor) -> AdminResult<()> {
        let statement = format!(
            "WITH added AS ( \
                 INSERT INTO content.film_genre (id, film_id, genre_id) \
                 VALUES (gen_random_uuid(), $1, $2) ON CONFLICT ON CONSTRAINT film_genre_key DO NOTHING \
                 RETURNING film_id, genre_id), \
             changed AS ( \
                 SELECT film_id AS id, NULL::jsonb AS before, \
                        jsonb_build_object('genre_id', genre_id, \
                            'genre', (SELECT name FROM content.genre WHERE id = genre_id)) AS after \
                 FROM added), \
             {} \
             SELECT count(*) AS found FROM added",
            audit_insert("changed")
        );
        self.audited(
            "link a genre",
            &statement,
            vec![uuid(film), uuid(genre)],
            actor,
            "film.genre_add",
            "film",
        )
        .await
        .map_err(link_error)?;
        Ok(())
    }

    /// Unlinks a genre from a film; `false` when it was not linked.
    pub async fn remove_film_genre(
        &self,
        film: &str,
        genre: &str,
        actor: &Actor,
    ) -> AdminResult<bool> {
        let statement = format!(
            "WITH removed AS ( \
                 DELETE FROM content.film_genre WHERE film_id = $1 AND genre_id = $2 \
                 RETURNING film_id, genre_id), \
             changed AS ( \
                 SELECT film_id AS id, \
                        jsonb_build_object('genre_id', genre_id, \
                            'genre', (SELECT name FROM content.genre WHERE id = genre_id)) AS before, \
                        NULL::jsonb AS after \
                 FROM removed), \
             {} \
             SELECT count(*) AS found FROM removed",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "unlink a genre",
                &statement,
                vec![uuid(film), uuid(genre)],
                actor,
                "film.genre_remove",
                "film",
            )
            .await?;
        found(&rows)
    }

    /// Links a person to a film in a role (again: no change). Unknown ids: 404.
    pub async fn add_film_person(
        &self,
        film: &str,
        person: &str,
        role: &str,
        actor: &Actor,
    ) -> AdminResult<()> {
        if !PERSON_ROLES.contains(&role) {
            return Err(AdminError::invalid(
                "role",
                "must be actor, director or writer",
            ));
        }
        let statement = format!(
            "WITH added AS ( \
                 INSERT INTO content.film_person (id, film_id, person_id, role) \
                 VALUES (gen_random_uuid(), $1, $2, $3) ON CONFLICT ON CONSTRAINT film_person_key DO NOTHING \
                 RETURNING film_id, person_id, role), \
             changed AS ( \
                 SELECT film_id AS id, NULL::jsonb AS before, \
                        jsonb_build_object('person_id', person_id, 'role', role, \
                            'person', (SELECT full_name FROM content.person WHERE id = person_id)) AS after \
                 FROM added), \
             {} \
             SELECT count(*) AS found FROM added",
            audit_insert("changed")
        );
        self.audited(
            "link a person",
            &statement,
            vec![uuid(film), uuid(person), text(role)],
            actor,
            "film.person_add",
            "film",
        )
        .await
        .map_err(link_error)?;
        Ok(())
    }

    /// Unlinks a person's role from a film; `false` when it was not linked.
    pub async fn remove_film_person(
        &self,
        film: &str,
        person: &str,
        role: &str,
        actor: &Actor,
    ) -> AdminResult<bool> {
        let statement = format!(
            "WITH removed AS ( \
                 DELETE FROM content.film_person WHERE film_id = $1 AND person_id = $2 AND role = $3 \
                 RETURNING film_id, person_id, role), \
             changed AS ( \
                 SELECT film_id AS id, \
                        jsonb_build_object('person_id', person_id, 'role', role, \
                            'person', (SELECT full_name FROM content.person WHERE id = person_id)) AS before, \
                        NULL::jsonb AS after \
                 FROM removed), \
             {} \
             SELECT count(*) AS found FROM removed",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "unlink a person",
                &statement,
                vec![uuid(film), uuid(person), text(role)],
                actor,
                "film.person_remove",
                "film",
            )
            .await?;
        found(&rows)
    }

    /// The id a link form names: the picked id, or else the one genre or person whose
    /// name is exactly the typed text (case-insensitive), so the form works without
    /// JavaScript. `Ok(Err(message))` says what is wrong, for the form.
    pub async fn resolve(
        &self,
        kind: Kind,
        picked: Option<&String>,
        typed: Option<&String>,
    ) -> AdminResult<Result<String, String>> {
        if let Some(id) = picked.map(|p| p.trim()).filter(|p| !p.is_empty()) {
            return Ok(
                parse_id(id, "id").map_err(|_| format!("pick a {} from the list", kind.entity()))
            );
        }
        let typed = typed.map_or("", |t| t.trim());
        if typed.is_empty() {
            return Ok(Err(format!(
                "type a {} name and pick it from the list",
                kind.entity()
            )));
        }
        let statement = format!(
            "SELECT id::text AS id FROM {} WHERE lower({}) = lower($1) LIMIT 2",
            kind.table(),
            kind.name_column()
        );
        let rows = self
            .pg
            .rows(
                "find a genre or person by name",
                &statement,
                vec![text(typed)],
            )
            .await?;
        Ok(match rows.as_slice() {
            [row] => Ok(column(row, "id")?),
            [] => Err(format!("no {} is called \"{typed}\"", kind.entity())),
            _ => Err(format!(
                "several {} are called \"{typed}\"; pick one from the list",
                kind.plural()
            )),
        })
    }

    /// Genres or persons whose name contains `query`, by name.
    pub async fn named(
        &self,
        kind: Kind,
        query: &str,
        page_number: i64,
    ) -> AdminResult<Page<Named>> {
        let (link, key) = match kind {
            Kind::Genre => ("content.film_genre", "genre_id"),
            Kind::Person => ("content.film_person", "person_id"),
        };
        let description = match kind {
            Kind::Genre => "t.description",
            Kind::Person => "''",
        };
        let name = kind.name_column();
        let statement = format!(
            "SELECT t.id::text AS id, t.{name} AS name, {description} AS description, \
                    (SELECT count(DISTINCT l.film_id) FROM {link} l WHERE l.{key} = t.id) AS films, \
                    count(*) OVER () AS total \
             FROM {} t WHERE $1 = '%%' OR t.{name} ILIKE $1 \
             ORDER BY lower(t.{name}), t.id LIMIT $2 OFFSET $3",
            kind.table()
        );
        let rows = self
            .pg
            .rows(
                "list genres or persons",
                &statement,
                vec![
                    text(contains_pattern(query)),
                    ParameterValue::Int64(PAGE_SIZE),
                    ParameterValue::Int64((page_number - 1) * PAGE_SIZE),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => column(row, "total")?,
            None => 0,
        };
        let items = rows
            .iter()
            .map(named_row)
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Page {
            items,
            total,
            page_number,
            page_size: PAGE_SIZE,
        })
    }

    /// One genre or person.
    pub async fn one_named(&self, kind: Kind, id: &str) -> AdminResult<Option<Named>> {
        let description = match kind {
            Kind::Genre => "t.description",
            Kind::Person => "''",
        };
        let (link, key) = match kind {
            Kind::Genre => ("content.film_genre", "genre_id"),
            Kind::Person => ("content.film_person", "person_id"),
        };
        let statement = format!(
            "SELECT t.id::text AS id, t.{} AS name, {description} AS description, \
                    (SELECT count(DISTINCT l.film_id) FROM {link} l WHERE l.{key} = t.id) AS films \
             FROM {} t WHERE t.id = $1",
            kind.name_column(),
            kind.table()
        );
        let rows = self
            .pg
            .rows("read a genre or person", &statement, vec![uuid(id)])
            .await?;
        Ok(rows.first().map(named_row).transpose()?)
    }

    /// Creates a genre or person; a taken genre name is 409.
    pub async fn create_named(
        &self,
        kind: Kind,
        draft: &NamedDraft,
        actor: &Actor,
    ) -> AdminResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (insert, json) = named_sql(kind);
        let statement = format!(
            "WITH t AS ({insert} RETURNING *), \
             changed AS (SELECT t.id, NULL::jsonb AS before, {json} AS after FROM t), \
             {} \
             SELECT t.id::text AS id FROM t",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "create a genre or person",
                &statement,
                named_params(kind, &id, draft),
                actor,
                &format!("{}.create", kind.entity()),
                kind.entity(),
            )
            .await
            .map_err(name_taken)?;
        rows.first()
            .map(|row| column::<String>(row, "id"))
            .transpose()?
            .ok_or_else(|| AdminError::Internal("insert returned nothing".into()))
    }

    /// Updates a genre or person; `false` when there is none.
    pub async fn update_named(
        &self,
        kind: Kind,
        id: &str,
        draft: &NamedDraft,
        actor: &Actor,
    ) -> AdminResult<bool> {
        let (_, json) = named_sql(kind);
        let set = match kind {
            Kind::Genre => "name = $2, description = $3",
            Kind::Person => "full_name = $2",
        };
        let table = kind.table();
        let statement = format!(
            "WITH old AS (SELECT t.id, {json} AS before FROM {table} t WHERE t.id = $1 FOR UPDATE), \
             t AS (UPDATE {table} SET {set} WHERE id = (SELECT id FROM old) RETURNING *), \
             changed AS ( \
                 SELECT t.id, old.before, {json} AS after FROM t JOIN old USING (id) \
                 WHERE old.before IS DISTINCT FROM {json}), \
             {} \
             SELECT count(*) AS found FROM t",
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "update a genre or person",
                &statement,
                named_params(kind, id, draft),
                actor,
                &format!("{}.update", kind.entity()),
                kind.entity(),
            )
            .await
            .map_err(name_taken)?;
        found(&rows)
    }

    /// Deletes a genre or person (unlinking it from films); `false` when there is none.
    pub async fn delete_named(&self, kind: Kind, id: &str, actor: &Actor) -> AdminResult<bool> {
        let (_, json) = named_sql(kind);
        let statement = format!(
            "WITH t AS (DELETE FROM {} WHERE id = $1 RETURNING *), \
             changed AS (SELECT t.id, {json} AS before, NULL::jsonb AS after FROM t), \
             {} \
             SELECT count(*) AS found FROM t",
            kind.table(),
            audit_insert("changed")
        );
        let rows = self
            .audited(
                "delete a genre or person",
                &statement,
                vec![uuid(id)],
                actor,
                &format!("{}.delete", kind.entity()),
                kind.entity(),
            )
            .await?;
        found(&rows)
    }

    /// The audit log, newest first, filtered by entity type, action prefix, entity id
    /// or actor email (substring).
    pub async fn audit(&self, filter: &AuditFilter) -> AdminResult<Page<AuditEntry>> {
        let rows = self
            .pg
            .rows(
                "read the audit log",
                &format!(
                    "SELECT id::text AS id, to_char(at AT TIME ZONE 'UTC', {RFC3339_UTC}) AS at, \
                            actor_id::text AS actor_id, actor_email, action, entity_type, \
                            entity_id::text AS entity_id, before, after, count(*) OVER () AS total \
                     FROM admin.audit_log \
                     WHERE ($1::text IS NULL OR entity_type = $1) \
                       AND ($2::text IS NULL OR action LIKE $2 || '%') \
                       AND ($3::text IS NULL OR entity_id = $3::text::uuid) \
                       AND ($4 = '%%' OR actor_email ILIKE $4) \
                     ORDER BY at DESC, id LIMIT $5 OFFSET $6"
                ),
                vec![
                    optional(filter.entity_type.clone()),
                    optional(filter.action.clone()),
                    optional(filter.entity_id.clone()),
                    text(contains_pattern(&filter.actor)),
                    ParameterValue::Int64(PAGE_SIZE),
                    ParameterValue::Int64((filter.page_number - 1) * PAGE_SIZE),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => column(row, "total")?,
            None => 0,
        };
        let items = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: column(row, "id")?,
                    at: column(row, "at")?,
                    actor_id: column(row, "actor_id")?,
                    actor_email: column(row, "actor_email")?,
                    action: column(row, "action")?,
                    entity_type: column(row, "entity_type")?,
                    entity_id: column(row, "entity_id")?,
                    before: nullable(row, "before")?,
                    after: nullable(row, "after")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Page {
            items,
            total,
            page_number: filter.page_number,
            page_size: PAGE_SIZE,
        })
    }
}

/// A page number where a bad one means the first page (lists a person browses).
fn lenient_page(raw: Option<&String>) -> i64 {
    raw.and_then(|raw| raw.trim().parse::<i64>().ok())
        .filter(|p| (1..=100_000).contains(p))
        .unwrap_or(1)
}

/// The genre or person list's query: `query` (substring of the name) and `page`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    pub text: String,
    pub page_number: i64,
}

impl NamedQuery {
    pub fn parse(raw: &str) -> Self {
        let params: Fields = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self {
            text: params.get("query").map_or("", |q| q.trim()).to_owned(),
            page_number: lenient_page(params.get("page")),
        }
    }
}

/// The audit log's filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub entity_type: Option<String>,
    pub action: Option<String>,
    pub entity_id: Option<String>,
    pub actor: String,
    pub page_number: i64,
}

impl AuditFilter {
    pub fn parse(raw: &str) -> AdminResult<Self> {
        let params: HashMap<String, String> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let word = |name: &'static str| -> AdminResult<Option<String>> {
            match params.get(name) {
                None => Ok(None),
                Some(value)
                    if value.len() <= 64
                        && value
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.') =>
                {
                    Ok(Some(value.clone()))
                }
                Some(_) => Err(AdminError::invalid(
                    name,
                    "must be lower-case letters, `_` or `.`",
                )),
            }
        };
        Ok(Self {
            entity_type: word("entity_type")?,
            action: word("action")?,
            entity_id: params
                .get("entity_id")
                .map(|raw| parse_id(raw, "entity_id"))
                .transpose()?,
            actor: params.get("actor").cloned().unwrap_or_default(),
            page_number: lenient_page(params.get("page")),
        })
    }

    pub fn query_string(&self, page_number: i64) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("entity_type", self.entity_type.as_deref()),
            ("action", self.action.as_deref()),
            ("entity_id", self.entity_id.as_deref()),
            ("actor", Some(self.actor.as_str()).filter(|a| !a.is_empty())),
        ] {
            if let Some(value) = value {
                out.append_pair(name, value);
            }
        }
        out.append_pair("page", &page_number.to_string());
        out.finish()
    }
}

fn film_params(id: &str, draft: &FilmDraft) -> Vec<ParameterValue> {
    vec![
        uuid(id),
        text(&draft.title),
        text(&draft.description),
        optional(draft.creation_date.clone()),
        optional(draft.rating.clone()),
        text(&draft.film_type),
        text(&draft.access),
    ]
}

fn named_sql(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Genre => (
            "INSERT INTO content.genre (id, name, description) VALUES ($1, $2, $3)",
            "jsonb_build_object('name', t.name, 'description', t.description)",
        ),
        Kind::Person => (
            "INSERT INTO content.person (id, full_name) VALUES ($1, $2)",
            "jsonb_build_object('full_name', t.full_name)",
        ),
    }
}

fn named_params(kind: Kind, id: &str, draft: &NamedDraft) -> Vec<ParameterValue> {
    match kind {
        Kind::Genre => vec![uuid(id), text(&draft.name), text(&draft.description)],
        Kind::Person => vec![uuid(id), text(&draft.name)],
    }
}

fn named_row(row: &Row) -> Result<Named, DbError> {
    Ok(Named {
        id: column(row, "id")?,
        name: column(row, "name")?,
        description: column(row, "description")?,
        films: column(row, "films")?,
    })
}

fn found(rows: &[Row]) -> AdminResult<bool> {
    Ok(match rows.first() {
        Some(row) => column::<i64>(row, "found")? > 0,
        None => false,
    })
}

/// A link to a film, genre or person that does not exist is 404.
fn link_error(error: DbError) -> AdminError {
    match &error {
        DbError::Rejected { sqlstate, .. } if sqlstate == FOREIGN_KEY_VIOLATION => {
            AdminError::NotFound("film, genre or person")
        }
        _ => error.into(),
    }
}

/// A genre name already taken is 409.
fn name_taken(error: DbError) -> AdminError {
    match &error {
        DbError::Rejected { sqlstate, .. } if sqlstate == UNIQUE_VIOLATION => {
            AdminError::Conflict("a genre with this name already exists".into())
        }
        _ => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A film needs a title; the date, rating, type and access are checked and
    /// refusals name their fields.
    #[test]
    fn film_fields_are_checked_by_name() {
        let draft = FilmDraft::check(&fields(&[
            ("title", " Solaris "),
            ("creation_date", "1972-03-20"),
            ("rating", "8,14"),
            ("type", "movie"),
            ("access", "subscription"),
        ]))
        .expect("valid");
        assert_eq!(draft.title, "Solaris");
        assert_eq!(draft.rating.as_deref(), Some("8.1"));
        assert_eq!(draft.access, "subscription");
        let defaults = FilmDraft::check(&fields(&[("title", "x")])).expect("valid");
        assert_eq!(
            (defaults.film_type.as_str(), defaults.access.as_str()),
            ("movie", "free")
        );
        let errors = FilmDraft::check(&fields(&[
            ("title", ""),
            ("creation_date", "1972-02-30"),
            ("rating", "11"),
            ("type", "cartoon"),
        ]))
        .expect_err("invalid");
        let named: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(named, ["title", "creation_date", "rating", "type"]);
    }

    /// Dates must exist: leap days only in leap years.
    #[test]
    fn dates_must_exist() {
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2023-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("24-01-01"));
        assert!(!valid_date("2024-1-01"));
    }

    /// The list filter reads its parameters, names bad ones, and round-trips.
    #[test]
    fn film_filter_parses_and_round_trips() {
        let filter = FilmFilter::parse(
            "query=star&type=movie&access=free&year=1999&sort=-rating&page=2&genre=30000000-0000-4000-8000-000000000001",
        )
        .expect("valid");
        assert_eq!(filter.sort, FilmSort::Rating);
        assert_eq!(filter.year, Some(1999));
        assert_eq!(
            FilmFilter::parse(&filter.query_string(2)).expect("valid"),
            filter
        );
        for (raw, field) in [
            ("type=cartoon", "type"),
            ("year=99", "year"),
            ("sort=random", "sort"),
            ("genre=x", "genre"),
            ("page=0", "page"),
        ] {
            match FilmFilter::parse(raw) {
                Err(AdminError::Invalid(errors)) => assert_eq!(errors[0].field, field, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    /// Audit placeholders are numbered after the statement's own parameters.
    #[test]
    fn audit_placeholders_follow_the_statement_parameters() {
        let (statement, params) = bind_audit(
            "x $1 $actor $action $entity",
            vec![text("a")],
            &Actor {
                user_id: "u".into(),
            },
            "film.create",
            "film",
        );
        assert_eq!(statement, "x $1 $2 $3 $4");
        assert_eq!(params.len(), 4);
    }

    /// Search text is matched literally: `%` and `_` are escaped.
    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("50%_off"), "%50\\%\\_off%");
        assert_eq!(contains_pattern(""), "%%");
    }
}
