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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// A film of a page (a list or a search hit), held as the JSON its [`FilmListItem`]
/// serializes to, without a highlight. The film table keeps one per film, so a page
/// clones a reference count and copies bytes instead of cloning five fields and
/// formatting them again (the profile of uncached searches had about a seventh of its
/// time in those clones' cache misses, and 4% in string escaping).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedFilm {
    /// `{"uuid":"…",…}`: `uuid` first, no `highlight`.
    json: SharedText,
    /// Matched words in `<b>` tags (HTML-escaped text), for text searches.
    pub highlight: Option<Highlight>,
}

impl ListedFilm {
    pub fn new(mut item: FilmListItem) -> Self {
        // Taken out first: the JSON is the fields alone (`highlight` skips when `None`).
        let highlight = item.highlight.take();
        Self {
            // A struct of strings and numbers always serializes.
            json: serde_json::to_string(&item)
                .unwrap_or_else(|_| "{}".to_owned())
                .into(),
            highlight,
        }
    }

    /// The film's id (the first field of its JSON; ids hold no escapes).
    pub fn uuid(&self) -> &str {
        self.json
            .strip_prefix("{\"uuid\":\"")
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
    }

    /// Bytes of the JSON without the highlight.
    pub fn json_len(&self) -> usize {
        self.json.len()
    }

    /// The fields, parsed back (tests and non-hot paths).
    pub fn fields(&self) -> FilmListItem {
        let mut item: FilmListItem = serde_json::from_str(&self.json).unwrap_or_default();
        item.highlight = self.highlight.clone();
        item
    }

    /// Appends the film's JSON, with its highlight when it has one.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let json = self.json.as_bytes();
        match &self.highlight {
            None => out.extend_from_slice(json),
            Some(highlight) => {
                out.extend_from_slice(&json[..json.len().saturating_sub(1)]);
                out.extend_from_slice(b",\"highlight\":");
                if serde_json::to_writer(&mut *out, highlight).is_err() {
                    out.extend_from_slice(b"null");
                }
                out.push(b'}');
            }
        }
    }

    /// A JSON array of `films`.
    pub fn write_json_array(films: &[ListedFilm], out: &mut Vec<u8>) {
        out.push(b'[');
        for (position, film) in films.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            film.write_json(out);
        }
        out.push(b']');
    }
}

impl From<&Film> for ListedFilm {
    fn from(film: &Film) -> Self {
        Self::new(FilmListItem::from(film))
    }
}

/// The same JSON as [`ListedFilm::write_json`], through serde (not the hot path).
impl Serialize for ListedFilm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, highlight: Option<Highlight>) -> FilmListItem {
        FilmListItem {
            uuid: "6f1c2e34-6b5e-4a53-9f0e-1a2b3c4d5e6f".into(),
            title: title.into(),
            imdb_rating: Some(7.5),
            access: "free".into(),
            film_type: "movie".into(),
            creation_date: None,
            highlight,
        }
    }

    /// A listed film writes the JSON serde writes for its fields, escapes included,
    /// with and without a highlight, and gives its fields and id back.
    #[test]
    fn listed_film_json_equals_the_serde_json_of_its_fields() {
        let highlight = Highlight {
            title: "<b>Say</b> \"hi\" \\ Привет".to_owned(),
            description: "a \u{1} control".to_owned(),
        };
        for item in [
            item("Say \"hi\" \\ Привет\n", None),
            item("Say \"hi\" \\ Привет\n", Some(highlight)),
        ] {
            let listed = ListedFilm::new(item.clone());
            let mut written = Vec::new();
            listed.write_json(&mut written);
            let written: serde_json::Value = serde_json::from_slice(&written).expect("valid JSON");
            assert_eq!(written, serde_json::to_value(&item).expect("serialize"));
            assert_eq!(listed.fields(), item);
            assert_eq!(listed.uuid(), "6f1c2e34-6b5e-4a53-9f0e-1a2b3c4d5e6f");
        }
        let mut array = Vec::new();
        ListedFilm::write_json_array(&[], &mut array);
        assert_eq!(array, b"[]");
    }
}
