//! The query side of the catalog index: one warm reader whose snapshot is swapped on
//! every publish, and the searches and lookups the search API serves.
//!
//! Text queries are analyzed like documents ([`crate::analysis`]); every query word
//! must match (in the title, people, genres or description, ranked in that order).
//! Words of four letters or more also match with one typo, of eight or more with two;
//! the last word also matches as a prefix, for search-as-you-type.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Facet, Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::analysis;
use crate::index::{CatalogIndex, Position};
use crate::model::{Film, FilmListItem, Genre, GenreRef, Highlight, Person};
use crate::schema::{GENRE_FACET_ROOT, Kind};

/// Most films listed for one person.
const MAX_PERSON_FILMS: usize = 1000;
/// Longest highlighted fragment, in characters.
const SNIPPET_CHARS: usize = 160;

/// Why a search failed (the index itself, never the caller's input: that is checked
/// before a [`FilmQuery`] exists).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("stored document {0} does not decode")]
    CorruptDocument(String),
}

pub type SearchResult<T> = Result<T, SearchError>;

/// How film results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilmSort {
    Relevance,
    Rating(Order),
    CreationDate(Order),
}

impl FilmSort {
    /// Parses the API's sort values: `relevance`, `imdb_rating`, `creation_date`, with `-`
    /// for descending.
    pub fn parse(value: &str) -> Option<Self> {
        let (order, name) = match value.strip_prefix('-') {
            Some(name) => (Order::Desc, name),
            None => (Order::Asc, value),
        };
        match (name, order) {
            ("relevance", Order::Asc) => Some(Self::Relevance),
            ("imdb_rating", order) => Some(Self::Rating(order)),
            ("creation_date", order) => Some(Self::CreationDate(order)),
            _ => None,
        }
    }
}

/// A validated film search.
#[derive(Debug, Clone)]
pub struct FilmQuery {
    pub text: String,
    pub genre: Option<String>,
    pub person: Option<String>,
    pub year_from: Option<i64>,
    pub year_to: Option<i64>,
    pub rating_from: Option<f64>,
    pub rating_to: Option<f64>,
    pub film_type: Option<String>,
    pub access: Option<String>,
    pub sort: FilmSort,
    pub page_size: usize,
    pub page_number: usize,
}

impl Default for FilmQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            genre: None,
            person: None,
            year_from: None,
            year_to: None,
            rating_from: None,
            rating_to: None,
            film_type: None,
            access: None,
            sort: FilmSort::Rating(Order::Desc),
            page_size: 50,
            page_number: 1,
        }
    }
}

/// One page of films.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilmPage {
    pub version: u64,
    pub total: usize,
    pub page_number: usize,
    pub page_size: usize,
    pub items: Vec<FilmListItem>,
    pub facets: Facets,
}

/// Facet counts over all hits of a search (not just the page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Facets {
    pub genre: Vec<FacetCount>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FacetCount {
    pub uuid: String,
    pub name: String,
    pub count: u64,
}

/// One page of persons.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PersonPage {
    pub version: u64,
    pub total: usize,
    pub page_number: usize,
    pub page_size: usize,
    pub items: Vec<Person>,
}

/// What one publish of the index looks like to readers.
struct Snapshot {
    searcher: Searcher,
    version: u64,
    genres: Vec<Genre>,
    genre_names: HashMap<String, String>,
}

/// The warm reader of the catalog index. Cheap to share (`Arc`); every search sees
/// one consistent snapshot.
pub struct SearchIndex {
    index: CatalogIndex,
    reader: IndexReader,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.index.dir)
            .field("version", &self.version())
            .finish()
    }
}

impl SearchIndex {
    /// Opens a reader on the index as last committed.
    pub fn open(index: &CatalogIndex) -> SearchResult<Self> {
        let reader = index
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(256)
            .try_into()?;
        let snapshot = build_snapshot(index, &reader)?;
        Ok(Self {
            index: index.clone(),
            reader,
            snapshot: RwLock::new(Arc::new(snapshot)),
        })
    }

    /// Picks up the last commit (the ETL calls this after publishing) and returns the
    /// new version.
    pub fn reload(&self) -> SearchResult<u64> {
        self.reader.reload()?;
        let snapshot = Arc::new(build_snapshot(&self.index, &self.reader)?);
        let version = snapshot.version;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        Ok(version)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The published version (the commit generation); 0 before the first build.
    pub fn version(&self) -> u64 {
        self.snapshot().version
    }

    /// Documents of every kind in the published index.
    pub fn document_count(&self) -> u64 {
        self.snapshot().searcher.num_docs()
    }

    /// Whether any build has been published (a fresh index has none).
    pub fn is_ready(&self) -> bool {
        self.version() > 0
    }

    /// Films matching text and filters, one page, with genre facet counts.
    pub fn search_films(&self, query: &FilmQuery) -> SearchResult<FilmPage> {
        let snapshot = self.snapshot();
        let searcher = &snapshot.searcher;
        let s = &self.index.schema;
        let terms = analysis::terms(&query.text);
        let mut clauses = vec![filter(s.kind, Kind::Film.as_str())];
        let text_fields = [
            (s.title, 4.0, true),
            (s.people, 2.0, true),
            (s.genre_names, 1.5, false),
            (s.description, 1.0, false),
        ];
        for (position, term) in terms.iter().enumerate() {
            let is_last = position + 1 == terms.len();
            clauses.push((Occur::Must, word_query(&text_fields, term, is_last)));
        }
        if let Some(genre) = &query.genre {
            clauses.push(filter(s.genre_id, genre));
        }
        if let Some(person) = &query.person {
            clauses.push(filter(s.person_id, person));
        }
        if let Some(film_type) = &query.film_type {
            clauses.push(filter(s.film_type, film_type));
        }
        if let Some(access) = &query.access {
            clauses.push(filter(s.access, access));
        }
        if query.year_from.is_some() || query.year_to.is_some() {
            let bound = |v: Option<i64>| match v {
                Some(v) => Bound::Included(Term::from_field_i64(s.year, v)),
                None => Bound::Unbounded,
            };
            clauses.push(range(bound(query.year_from), bound(query.year_to)));
        }
        if query.rating_from.is_some() || query.rating_to.is_some() {
            let bound = |v: Option<f64>| match v {
                Some(v) => Bound::Included(Term::from_field_f64(s.rating, v)),
                None => Bound::Unbounded,
            };
            clauses.push(range(bound(query.rating_from), bound(query.rating_to)));
        }
        let tantivy_query = BooleanQuery::new(clauses);

        let sort = match query.sort {
            FilmSort::Relevance if terms.is_empty() => FilmSort::Rating(Order::Desc),
            sort => sort,
        };
        let offset = (query.page_number.max(1) - 1) * query.page_size;
        let top = TopDocs::with_limit(query.page_size.max(1)).and_offset(offset);
        let mut facet_collector = FacetCollector::for_field("genre_facet");
        facet_collector.add_facet(genre_facet_root());
        let (addresses, total, facet_counts) = match sort {
            FilmSort::Relevance => {
                let (hits, total, facets) = searcher.search(
                    &tantivy_query,
                    &(top.order_by_score(), Count, facet_collector),
                )?;
                (addresses(hits), total, facets)
            }
            FilmSort::Rating(order) => {
                let (hits, total, facets) = searcher.search(
                    &tantivy_query,
                    &(
                        top.order_by_fast_field::<f64>("rating", order),
                        Count,
                        facet_collector,
                    ),
                )?;
                (addresses(hits), total, facets)
            }
            FilmSort::CreationDate(order) => {
                let (hits, total, facets) = searcher.search(
                    &tantivy_query,
                    &(
                        top.order_by_fast_field::<i64>("date", order),
                        Count,
                        facet_collector,
                    ),
                )?;
                (addresses(hits), total, facets)
            }
        };

        let highlighter =
            (!terms.is_empty()).then(|| Highlighter::new(&terms, s.title, s.description));
        let mut items = Vec::with_capacity(addresses.len());
        for address in addresses {
            let film: Film = stored(searcher, s.doc, address)?;
            let mut item = FilmListItem::from(&film);
            if let Some(highlighter) = &highlighter {
                item.highlight = Some(highlighter.highlight(&film));
            }
            items.push(item);
        }
        let mut genre = Vec::new();
        for (facet, count) in facet_counts.get(genre_facet_root()) {
            let uuid = facet
                .to_path()
                .last()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let name = snapshot.genre_names.get(&uuid).cloned().unwrap_or_default();
            genre.push(FacetCount { uuid, name, count });
        }
        genre.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        Ok(FilmPage {
            version: snapshot.version,
            total,
            page_number: query.page_number,
            page_size: query.page_size,
            items,
            facets: Facets { genre },
        })
    }

    /// A film's detail.
    pub fn film(&self, uuid: &str) -> SearchResult<Option<Film>> {
        self.lookup(Kind::Film, uuid)
    }

    /// A person's detail.
    pub fn person(&self, uuid: &str) -> SearchResult<Option<Person>> {
        self.lookup(Kind::Person, uuid)
    }

    /// Every genre with its film count, by name.
    pub fn genres(&self) -> (u64, Vec<Genre>) {
        let snapshot = self.snapshot();
        (snapshot.version, snapshot.genres.clone())
    }

    /// One genre.
    pub fn genre(&self, uuid: &str) -> Option<Genre> {
        self.snapshot()
            .genres
            .iter()
            .find(|g| g.uuid == uuid)
            .cloned()
    }

    /// The films of a person (best rated first), or `None` for an unknown person.
    pub fn person_films(&self, uuid: &str) -> SearchResult<Option<Vec<FilmListItem>>> {
        if self.person(uuid)?.is_none() {
            return Ok(None);
        }
        let query = FilmQuery {
            person: Some(uuid.to_owned()),
            page_size: MAX_PERSON_FILMS,
            ..FilmQuery::default()
        };
        Ok(Some(self.search_films(&query)?.items))
    }

    /// Persons whose name matches the text (typos and prefixes as for films).
    pub fn search_persons(
        &self,
        text: &str,
        page_size: usize,
        page_number: usize,
    ) -> SearchResult<PersonPage> {
        let snapshot = self.snapshot();
        let searcher = &snapshot.searcher;
        let s = &self.index.schema;
        let terms = analysis::terms(text);
        let mut clauses = vec![filter(s.kind, Kind::Person.as_str())];
        for (position, term) in terms.iter().enumerate() {
            let is_last = position + 1 == terms.len();
            clauses.push((
                Occur::Must,
                word_query(&[(s.title, 1.0, true)], term, is_last),
            ));
        }
        let offset = (page_number.max(1) - 1) * page_size;
        let top = TopDocs::with_limit(page_size.max(1)).and_offset(offset);
        let (hits, total) =
            searcher.search(&BooleanQuery::new(clauses), &(top.order_by_score(), Count))?;
        let mut items = Vec::with_capacity(hits.len());
        for (_, address) in hits {
            items.push(stored(searcher, s.doc, address)?);
        }
        Ok(PersonPage {
            version: snapshot.version,
            total,
            page_number,
            page_size,
            items,
        })
    }

    fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        uuid: &str,
    ) -> SearchResult<Option<T>> {
        let snapshot = self.snapshot();
        let term = self.index.key_term(kind, uuid);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let hits = snapshot
            .searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match hits.first() {
            Some((_, address)) => Ok(Some(stored(
                &snapshot.searcher,
                self.index.schema.doc,
                *address,
            )?)),
            None => Ok(None),
        }
    }
}

fn genre_facet_root() -> Facet {
    Facet::from_path([&GENRE_FACET_ROOT[1..]])
}

fn addresses<K>(hits: Vec<(K, DocAddress)>) -> Vec<DocAddress> {
    hits.into_iter().map(|(_, address)| address).collect()
}

/// A filter clause: must match, adds nothing to the score.
fn filter(field: Field, value: &str) -> (Occur, Box<dyn Query>) {
    let term = TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    );
    (
        Occur::Must,
        Box::new(ConstScoreQuery::new(Box::new(term), 0.0)),
    )
}

fn range(lower: Bound<Term>, upper: Bound<Term>) -> (Occur, Box<dyn Query>) {
    let query = RangeQuery::new(lower, upper);
    (
        Occur::Must,
        Box::new(ConstScoreQuery::new(Box::new(query), 0.0)),
    )
}

/// Typos allowed in a word of this many characters.
fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// One query word over weighted fields: exact term (BM25, boosted per field) or, in the
/// fields marked fuzzy, a near miss or (for the last word) a prefix, at a low constant
/// score so exact matches rank first.
fn word_query(fields: &[(Field, f32, bool)], word: &str, is_last: bool) -> Box<dyn Query> {
    let distance = typo_distance(word);
    let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for &(field, boost, fuzzy) in fields {
        let term = Term::from_field_text(field, word);
        let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
        alternatives.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(exact), boost)),
        ));
        if !fuzzy {
            continue;
        }
        let near: Option<Box<dyn Query>> = if is_last {
            Some(Box::new(FuzzyTermQuery::new_prefix(term, distance, true)))
        } else if distance > 0 {
            Some(Box::new(FuzzyTermQuery::new(term, distance, true)))
        } else {
            None
        };
        if let Some(near) = near {
            alternatives.push((Occur::Should, Box::new(BoostQuery::new(near, 0.5 * boost))));
        }
    }
    Box::new(BooleanQuery::new(alternatives))
}

/// Marks query words in a film's title and description.
struct Highlighter {
    title: SnippetGenerator,
    description: SnippetGenerator,
}

impl Highlighter {
    fn new(terms: &[String], title: Field, description: Field) -> Self {
        let words: BTreeMap<String, f32> = terms.iter().map(|t| (t.clone(), 1.0)).collect();
        let generator = |field| {
            SnippetGenerator::new(
                words.clone(),
                analysis::catalog_analyzer(),
                field,
                SNIPPET_CHARS,
            )
        };
        Self {
            title: generator(title),
            description: generator(description),
        }
    }

    fn highlight(&self, film: &Film) -> Highlight {
        Highlight {
            title: self.title.snippet(&film.title).to_html(),
            description: self.description.snippet(&film.description).to_html(),
        }
    }
}

fn stored<T: serde::de::DeserializeOwned>(
    searcher: &Searcher,
    field: Field,
    address: DocAddress,
) -> SearchResult<T> {
    let doc: TantivyDocument = searcher.doc(address)?;
    let json = doc
        .get_first(field)
        .and_then(|value| value.as_str())
        .ok_or_else(|| SearchError::CorruptDocument(format!("{address:?}")))?;
    serde_json::from_str(json)
        .map_err(|e| SearchError::CorruptDocument(format!("{address:?}: {e}")))
}

fn build_snapshot(index: &CatalogIndex, reader: &IndexReader) -> SearchResult<Snapshot> {
    let searcher = reader.searcher();
    let version = Position::of(&index.index)
        .ok()
        .flatten()
        .map(|p| p.generation)
        .unwrap_or(0);
    let s = &index.schema;
    let genre_query = TermQuery::new(index.kind_term(Kind::Genre), IndexRecordOption::Basic);
    let genre_hits =
        searcher.search(&genre_query, &TopDocs::with_limit(10_000).order_by_score())?;
    let mut facet_collector = FacetCollector::for_field("genre_facet");
    facet_collector.add_facet(genre_facet_root());
    let film_query = TermQuery::new(index.kind_term(Kind::Film), IndexRecordOption::Basic);
    let counts = searcher.search(&film_query, &facet_collector)?;
    let counts: HashMap<String, u64> = counts
        .get(genre_facet_root())
        .map(|(facet, count)| {
            (
                facet
                    .to_path()
                    .last()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                count,
            )
        })
        .collect();
    let mut genres = Vec::with_capacity(genre_hits.len());
    for (_, address) in genre_hits {
        let genre: GenreRef = stored(&searcher, s.doc, address)?;
        let film_count = counts.get(&genre.uuid).copied().unwrap_or(0);
        genres.push(Genre {
            uuid: genre.uuid,
            name: genre.name,
            film_count,
        });
    }
    genres.sort_by(|a, b| a.name.cmp(&b.name));
    let genre_names = genres
        .iter()
        .map(|g| (g.uuid.clone(), g.name.clone()))
        .collect();
    Ok(Snapshot {
        searcher,
        version,
        genres,
        genre_names,
    })
}

impl SearchIndex {
    /// Ids of every published document of a kind (to find rows deleted in Postgres
    /// while nobody listened).
    pub fn document_ids(&self, kind: Kind) -> SearchResult<std::collections::HashSet<String>> {
        let snapshot = self.snapshot();
        let prefix = format!("{}:", kind.as_str());
        let mut ids = std::collections::HashSet::new();
        let mut key = String::new();
        for segment in snapshot.searcher.segment_readers() {
            let Some(column) = segment.fast_fields().str("key")? else {
                continue;
            };
            for doc in segment.doc_ids_alive() {
                for ord in column.term_ords(doc) {
                    key.clear();
                    if column
                        .ord_to_str(ord, &mut key)
                        .map_err(tantivy::TantivyError::from)?
                        && let Some(id) = key.strip_prefix(&prefix)
                    {
                        ids.insert(id.to_owned());
                    }
                }
            }
        }
        Ok(ids)
    }
}
