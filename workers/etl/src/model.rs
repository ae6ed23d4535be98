//! What the index stores and the search API returns: films, persons and genres in the
//! catalog's wire shapes (`uuid`, `imdb_rating`, ...). The index keeps each document's
//! JSON as it will be served, so a lookup is one stored-document read.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Text the film table shares with every page it answers: cloning it is a reference
/// count, not a copy (a search or list of 50 hits made 250 string copies). Serialized
/// as a plain JSON string.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SharedText(Arc<str>);

impl SharedText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        Self(Arc::from(text))
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        Self(Arc::from(text))
    }
}

impl Serialize for SharedText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// A film's full detail (`GET /api/v1/films/{uuid}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Film {
    pub uuid: String,
    pub title: String,
    pub imdb_rating: Option<f64>,
    pub description: String,
    /// `YYYY-MM-DD`, when known.
    pub creation_date: Option<String>,
    #[serde(rename = "type")]
    pub film_type: String,
    pub access: String,
    pub genre: Vec<GenreRef>,
    pub actors: Vec<PersonRef>,
    pub writers: Vec<PersonRef>,
    pub directors: Vec<PersonRef>,
}

impl Film {
    /// Every person linked to the film, any role.
    pub fn person_ids(&self) -> impl Iterator<Item = &str> {
        self.actors
            .iter()
            .chain(&self.writers)
            .chain(&self.directors)
            .map(|p| p.uuid.as_str())
    }

    /// Every (person id, role) link of the film.
    pub fn person_roles(&self) -> std::collections::BTreeSet<(&str, &str)> {
        let roles = [
            (&self.actors, "actor"),
            (&self.writers, "writer"),
            (&self.directors, "director"),
        ];
        roles
            .into_iter()
            .flat_map(|(people, role)| people.iter().map(move |p| (p.uuid.as_str(), role)))
            .collect()
    }

    /// The year of `creation_date`.
    pub fn year(&self) -> Option<i64> {
        self.creation_date.as_deref()?.get(..4)?.parse().ok()
    }
}

/// A genre as films list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenreRef {
    pub uuid: String,
    pub name: String,
}

/// A person as films list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    pub uuid: String,
    pub full_name: String,
}

/// A person's detail (`GET /api/v1/persons/{uuid}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub uuid: String,
    pub full_name: String,
    pub films: Vec<PersonFilm>,
}

/// One film of a person, with every role they had in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonFilm {
    pub uuid: String,
    pub roles: Vec<String>,
}

/// A genre with how many films carry it (counted from the index at publish time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genre {
    pub uuid: String,
    pub name: String,
    pub film_count: u64,
}

/// A film in a list or a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilmListItem {
    pub uuid: SharedText,
    pub title: SharedText,
    pub imdb_rating: Option<f64>,
    pub access: SharedText,
    #[serde(rename = "type")]
    pub film_type: SharedText,
    pub creation_date: Option<SharedText>,
    /// Matched words in `<b>` tags (HTML-escaped text), for text searches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlight: Option<Highlight>,
}

/// Highlighted fragments of a search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Highlight {
    pub title: String,
    pub description: String,
}

impl From<&Film> for FilmListItem {
    fn from(film: &Film) -> Self {
        Self {
            uuid: film.uuid.as_str().into(),
            title: film.title.as_str().into(),
            imdb_rating: film.imdb_rating,
            access: film.access.as_str().into(),
            film_type: film.film_type.as_str().into(),
            creation_date: film.creation_date.as_deref().map(SharedText::from),
            highlight: None,
        }
    }
}
