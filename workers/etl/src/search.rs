//! The query side of the catalog index: one warm reader whose snapshot is swapped on
//! every publish, and the searches and lookups the search API serves.
//!
//! Text queries are analyzed like documents ([`crate::analysis`]); every query word
//! must match (in the title, people, genres or description, ranked in that order).
//! Words of four letters or more also match with one typo, of eight or more with two;
//! the last word also matches as a prefix, for search-as-you-type.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{
    AutomatonWeight, BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query,
    RangeQuery, TermQuery, Weight,
};
use tantivy::schema::{Facet, Field, IndexRecordOption, Value};
use tantivy::{
    DocAddress, DocSet, IndexReader, Order, ReloadPolicy, Searcher, SegmentReader, TERMINATED,
    TantivyDocument, Term,
};

use crate::analysis;
use crate::highlight::Highlighter;
use crate::index::{CatalogIndex, Position};
use crate::listing::{FilmTable, GenreCounter, SegmentCache, TableFilm};
use crate::model::{Film, Genre, GenreRef, Highlight, ListedFilm, Person};
use crate::near::{NearWords, typo_distance};
use crate::schema::{GENRE_FACET_ROOT, Kind, key_prefix, parse_doc_key, uuid_bytes};
use crate::source::RowVersion;

/// Most films listed for one person.
const MAX_PERSON_FILMS: usize = 1000;
/// Longest highlighted fragment, in bytes (tantivy's snippets count bytes).
const SNIPPET_BYTES: usize = 160;

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
    /// Whether to count the genres of every hit (`facets` in the page); counting is
    /// skipped, and `facets.genre` left empty, when the caller does not show them.
    pub facets: bool,
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
            facets: true,
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
    pub items: Vec<ListedFilm>,
    pub facets: Facets,
}

impl FilmPage {
    /// The page as the search API answers it: the same JSON as serde gives, with the
    /// films' ready JSON copied in instead of serialized again.
    pub fn to_json(&self) -> Vec<u8> {
        use std::io::Write;
        let items_bytes: usize = self.items.iter().map(|item| item.json_len()).sum();
        let mut out = Vec::with_capacity(items_bytes + 512);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"version\":{},\"total\":{},\"page_number\":{},\"page_size\":{},\"items\":",
            self.version, self.total, self.page_number, self.page_size
        );
        ListedFilm::write_json_array(&self.items, &mut out);
        out.extend_from_slice(b",\"facets\":");
        if serde_json::to_writer(&mut out, &self.facets).is_err() {
            out.extend_from_slice(b"{\"genre\":[]}");
        }
        out.push(b'}');
        out
    }
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
    /// Lists and list items without a tantivy query (`None`: more genres than it
    /// counts; the tantivy path serves everything).
    films: Option<Arc<FilmTable>>,
}

/// The build a [`SearchIndex`] reads, replaced when a rebuild beside it goes live.
struct Source {
    index: CatalogIndex,
    reader: IndexReader,
}

/// The warm reader of the catalog index. Cheap to share (`Arc`); every search sees
/// one consistent snapshot.
pub struct SearchIndex {
    /// Schema handles and terms (the same for every build).
    index: CatalogIndex,
    /// Taken only to reload or switch builds; searches read the snapshot.
    source: Mutex<Source>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Films read per segment, kept across publishes; `None` for a reader that only
    /// backs a build (`cinema reindex`) and never lists.
    segments: Option<SegmentCache>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("version", &self.version())
            .finish()
    }
}

impl SearchIndex {
    /// Opens a reader on the index as last committed.
    pub fn open(index: &CatalogIndex) -> SearchResult<Self> {
        Self::open_with(index, Some(SegmentCache::default()))
    }

    /// A reader for a build alone (`cinema reindex`): lookups work, lists take the
    /// tantivy path, and no publish spends time filling a film table nobody reads.
    pub fn open_for_build(index: &CatalogIndex) -> SearchResult<Self> {
        Self::open_with(index, None)
    }

    fn open_with(index: &CatalogIndex, segments: Option<SegmentCache>) -> SearchResult<Self> {
        let reader = open_reader(index)?;
        let snapshot = build_snapshot(index, &reader, segments.as_ref())?;
        Ok(Self {
            index: index.clone(),
            source: Mutex::new(Source {
                index: index.clone(),
                reader,
            }),
            snapshot: RwLock::new(Arc::new(snapshot)),
            segments,
        })
    }

    /// Picks up the last commit (the ETL calls this after publishing) and returns the
    /// new version.
    pub fn reload(&self) -> SearchResult<u64> {
        let source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        source.reader.reload()?;
        let snapshot = build_snapshot(&source.index, &source.reader, self.segments.as_ref())?;
        Ok(self.show(Arc::new(snapshot)))
    }

    /// A reader of another build of the same index that keeps (or not) a film table
    /// as this one does: for a rebuild that will replace this index.
    pub fn open_like(&self, index: &CatalogIndex) -> SearchResult<Self> {
        Self::open_with(
            index,
            self.segments.as_ref().map(|_| SegmentCache::default()),
        )
    }

    /// Serves what `other` (a reader of a rebuild that went live) serves from now on,
    /// taking over its warm snapshot and film table, so the switch costs no reading.
    /// Searches already running finish on the old build. Returns the new version.
    pub fn adopt(&self, other: &SearchIndex) -> u64 {
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        let theirs = other.source.lock().unwrap_or_else(|p| p.into_inner());
        *source = Source {
            index: theirs.index.clone(),
            reader: theirs.reader.clone(),
        };
        if let (Some(mine), Some(theirs)) = (&self.segments, &other.segments) {
            mine.take_from(theirs);
        }
        self.show(other.snapshot())
    }

    /// Makes `snapshot` what searches read from now on; returns its version.
    fn show(&self, snapshot: Arc<Snapshot>) -> u64 {
        let version = snapshot.version;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        version
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

    /// Films matching text and filters, one page, with genre facet counts. Lists (no
    /// text, no person) come from the film table; the rest runs a tantivy query.
    pub fn search_films(&self, query: &FilmQuery) -> SearchResult<FilmPage> {
        let snapshot = self.snapshot();
        match &snapshot.films {
            Some(table) if FilmTable::answers(query) => {
                let page = table.list(query);
                Ok(film_page(
                    &snapshot,
                    query,
                    page.total,
                    page.items,
                    page.genre_counts,
                ))
            }
            _ => self.query_films(&snapshot, query),
        }
    }

    /// [`SearchIndex::search_films`] by a tantivy query, whatever the query.
    fn query_films(&self, snapshot: &Snapshot, query: &FilmQuery) -> SearchResult<FilmPage> {
        let searcher = &snapshot.searcher;
        let s = &self.index.schema;
        let terms = analysis::terms(&query.text);
        // The text fields hold films' words only (see `schema`): with words, they are
        // the filter.
        let mut clauses = Vec::new();
        if terms.is_empty() {
            clauses.push(filter(s.kind, Kind::Film.as_str()));
        }
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
            clauses.push(filter_term(Term::from_field_bytes(
                s.person_id,
                &uuid_bytes(person),
            )));
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
        // Genres are counted from the film table's masks while the query runs; without
        // a table, by the facet column in a second pass.
        let counter = snapshot
            .films
            .clone()
            .filter(|_| query.facets)
            .map(GenreCounter);
        let (addresses, total, table_counts) = match sort {
            FilmSort::Relevance => {
                let (hits, total, counts) =
                    searcher.search(&tantivy_query, &(top.order_by_score(), Count, counter))?;
                (addresses(hits), total, counts)
            }
            FilmSort::Rating(order) => {
                let (hits, total, counts) = searcher.search(
                    &tantivy_query,
                    &(
                        top.order_by_fast_field::<f64>("rating", order),
                        Count,
                        counter,
                    ),
                )?;
                (addresses(hits), total, counts)
            }
            FilmSort::CreationDate(order) => {
                let (hits, total, counts) = searcher.search(
                    &tantivy_query,
                    &(
                        top.order_by_fast_field::<i64>("date", order),
                        Count,
                        counter,
                    ),
                )?;
                (addresses(hits), total, counts)
            }
        };
        let genre_counts = match (&snapshot.films, table_counts) {
            _ if !query.facets => Vec::new(),
            (Some(table), Some(counts)) => table.genre_counts(&counts),
            _ => facet_counts(snapshot, &tantivy_query)?,
        };

        let mut highlighter = (!terms.is_empty()).then(|| Highlighter::new(&terms, SNIPPET_BYTES));
        // The page's films are found first, all of them, in a loop short enough for the
        // processor to wait for their (cache-missing) loads at the same time, rather
        // than one after the other between highlights.
        let table_films: Vec<Option<&TableFilm>> = addresses
            .iter()
            .map(|address| snapshot.films.as_ref().and_then(|t| t.film_at(*address)))
            .collect();
        let mut hits = Vec::with_capacity(addresses.len());
        for (address, table_film) in addresses.into_iter().zip(table_films) {
            // From the film table, or (without one) the stored document.
            hits.push(match table_film {
                Some(film) => {
                    // Starts loading the text the highlights read, as the loop goes on.
                    std::hint::black_box(film.title().as_bytes().first().copied());
                    (
                        film.item.clone(),
                        Cow::Borrowed(film.title()),
                        Cow::Borrowed(film.description()),
                    )
                }
                None => {
                    let film: Film = stored(searcher, s.doc, address)?;
                    (
                        ListedFilm::from(&film),
                        Cow::Owned(film.title),
                        Cow::Owned(film.description),
                    )
                }
            });
        }
        let items = hits
            .into_iter()
            .map(|(mut item, title, description)| {
                if let Some(highlighter) = &mut highlighter {
                    item.highlight = Some(Highlight {
                        title: highlighter.html(&title),
                        description: highlighter.html(&description),
                    });
                }
                item
            })
            .collect();
        Ok(film_page(snapshot, query, total, items, genre_counts))
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
    pub fn person_films(&self, uuid: &str) -> SearchResult<Option<Vec<ListedFilm>>> {
        if self.person(uuid)?.is_none() {
            return Ok(None);
        }
        let query = FilmQuery {
            person: Some(uuid.to_owned()),
            page_size: MAX_PERSON_FILMS,
            facets: false,
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
                word_query(&[(s.name, 1.0, true)], term, is_last),
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

/// A page as the search API answers it; facets by count, then name.
fn film_page(
    snapshot: &Snapshot,
    query: &FilmQuery,
    total: usize,
    items: Vec<ListedFilm>,
    genre_counts: Vec<(String, String, u64)>,
) -> FilmPage {
    let mut genre: Vec<FacetCount> = genre_counts
        .into_iter()
        .map(|(uuid, name, count)| FacetCount { uuid, name, count })
        .collect();
    genre.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    FilmPage {
        version: snapshot.version,
        total,
        page_number: query.page_number,
        page_size: query.page_size,
        items,
        facets: Facets { genre },
    }
}

/// Genre counts of every hit of a query from the facet column (the path without a
/// film table).
fn facet_counts(
    snapshot: &Snapshot,
    query: &dyn Query,
) -> SearchResult<Vec<(String, String, u64)>> {
    let mut collector = FacetCollector::for_field("genre_facet");
    collector.add_facet(genre_facet_root());
    let counts = snapshot.searcher.search(query, &collector)?;
    Ok(counts
        .get(genre_facet_root())
        .map(|(facet, count)| {
            let uuid = facet
                .to_path()
                .last()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let name = snapshot.genre_names.get(&uuid).cloned().unwrap_or_default();
            (uuid, name, count)
        })
        .collect())
}

fn genre_facet_root() -> Facet {
    Facet::from_path([&GENRE_FACET_ROOT[1..]])
}

fn addresses<K>(hits: Vec<(K, DocAddress)>) -> Vec<DocAddress> {
    hits.into_iter().map(|(_, address)| address).collect()
}

/// A filter clause: must match, adds nothing to the score.
fn filter(field: Field, value: &str) -> (Occur, Box<dyn Query>) {
    filter_term(Term::from_field_text(field, value))
}

fn filter_term(term: Term) -> (Occur, Box<dyn Query>) {
    let term = TermQuery::new(term, IndexRecordOption::Basic);
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

/// One query word over weighted fields: exact term (BM25, boosted per field) or, in the
/// fields marked fuzzy, a near miss or (for the last word) a prefix, at a low constant
/// score so exact matches rank first. The near-miss automaton is built once and shared
/// by every fuzzy field.
fn word_query(fields: &[(Field, f32, bool)], word: &str, is_last: bool) -> Box<dyn Query> {
    let distance = typo_distance(word);
    let any_fuzzy = fields.iter().any(|&(_, _, fuzzy)| fuzzy);
    let near = (any_fuzzy && (is_last || distance > 0))
        .then(|| Arc::new(NearWords::new(word, distance, is_last)));
    let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for &(field, boost, fuzzy) in fields {
        let term = Term::from_field_text(field, word);
        let exact = TermQuery::new(term, IndexRecordOption::WithFreqs);
        alternatives.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(exact), boost)),
        ));
        if let Some(automaton) = near.as_ref().filter(|_| fuzzy) {
            let near = NearTermsQuery {
                field,
                automaton: automaton.clone(),
            };
            alternatives.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(near), 0.5 * boost)),
            ));
        }
    }
    Box::new(BooleanQuery::new(alternatives))
}

/// The terms of one field a [`NearWords`] automaton accepts, as `FuzzyTermQuery` matches
/// them (a constant score), with the automaton shared between fields: building it costs
/// more than running it.
#[derive(Clone)]
struct NearTermsQuery {
    field: Field,
    automaton: Arc<NearWords>,
}

impl std::fmt::Debug for NearTermsQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearTermsQuery")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl Query for NearTermsQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(AutomatonWeight::<NearWords>::new(
            self.field,
            self.automaton.clone(),
        )))
    }
}

fn stored<T: serde::de::DeserializeOwned>(
    searcher: &Searcher,
    field: Field,
    address: DocAddress,
) -> SearchResult<T> {
    let doc: TantivyDocument = searcher.doc(address)?;
    stored_json(&doc, field, format_args!("{address:?}"))
}

/// Decodes the wire JSON a document keeps in `field` (`what` names the document in
/// the error).
pub(crate) fn stored_json<T: serde::de::DeserializeOwned>(
    doc: &TantivyDocument,
    field: Field,
    what: std::fmt::Arguments<'_>,
) -> SearchResult<T> {
    let json = doc
        .get_first(field)
        .and_then(|value| value.as_str())
        .ok_or_else(|| SearchError::CorruptDocument(what.to_string()))?;
    serde_json::from_str(json).map_err(|e| SearchError::CorruptDocument(format!("{what}: {e}")))
}

fn open_reader(index: &CatalogIndex) -> SearchResult<IndexReader> {
    Ok(index
        .index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .doc_store_cache_num_blocks(256)
        .try_into()?)
}

fn build_snapshot(
    index: &CatalogIndex,
    reader: &IndexReader,
    segments: Option<&SegmentCache>,
) -> SearchResult<Snapshot> {
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
    let films = match segments {
        Some(segments) => {
            FilmTable::build(segments, &searcher, s.kind, s.doc, &genres)?.map(Arc::new)
        }
        None => None,
    };
    Ok(Snapshot {
        searcher,
        version,
        genres,
        genre_names,
        films,
    })
}

impl SearchIndex {
    /// Ids of every published document of a kind (to find rows deleted in Postgres
    /// while nobody listened).
    pub fn document_ids(&self, kind: Kind) -> SearchResult<std::collections::HashSet<String>> {
        let mut ids = std::collections::HashSet::new();
        self.for_each_live_document(kind, |_, _, id| {
            ids.insert(id.to_string());
        })?;
        Ok(ids)
    }

    /// The row version every published document of a kind was built from (see
    /// [`crate::source::RowVersion`]), so a catch-up can skip the rows it already
    /// holds.
    pub fn row_versions(&self, kind: Kind) -> SearchResult<HashMap<uuid::Uuid, RowVersion>> {
        let mut versions = HashMap::new();
        let mut columns: Option<(
            tantivy::SegmentOrdinal,
            Option<tantivy::columnar::Column<i64>>,
        )> = None;
        let modified = self
            .index
            .schema
            .schema
            .get_field_name(self.index.schema.modified);
        self.for_each_live_document(kind, |segment, address, id| {
            if columns.as_ref().map(|(ordinal, _)| *ordinal) != Some(address.segment_ord) {
                columns = Some((
                    address.segment_ord,
                    segment.fast_fields().i64(modified).ok(),
                ));
            }
            let column = columns.as_ref().and_then(|(_, column)| column.as_ref());
            if let Some(version) = column.and_then(|c| c.first(address.doc_id)) {
                versions.insert(id, RowVersion(version));
            }
        })?;
        Ok(versions)
    }

    /// Calls `visit` with the segment, address and id of every live document of a
    /// kind in the published snapshot, segment by segment.
    fn for_each_live_document(
        &self,
        kind: Kind,
        mut visit: impl FnMut(&SegmentReader, DocAddress, uuid::Uuid),
    ) -> SearchResult<()> {
        let snapshot = self.snapshot();
        let prefix = key_prefix(kind);
        for (ordinal, segment) in snapshot.searcher.segment_readers().iter().enumerate() {
            // The key field's terms are the keys; a deleted document's term stays in
            // its segment until a merge, so each key's document is checked alive.
            let keys = segment.inverted_index(self.index.schema.key)?;
            let mut terms = keys
                .terms()
                .range()
                .ge(prefix)
                .lt([prefix[0] + 1])
                .into_stream()
                .map_err(tantivy::TantivyError::from)?;
            while terms.advance() {
                let mut postings = keys
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                    .map_err(tantivy::TantivyError::from)?;
                let mut doc = postings.doc();
                while doc != TERMINATED && segment.is_deleted(doc) {
                    doc = postings.advance();
                }
                if doc != TERMINATED
                    && let Some((_, id)) = parse_doc_key(terms.key())
                {
                    let address = DocAddress::new(ordinal as tantivy::SegmentOrdinal, doc);
                    visit(segment, address, id);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::commit;
    use crate::model::PersonRef;
    use crate::schema::SCHEMA_VERSION;

    const GENRES: [&str; 5] = [
        "00000000-0000-4000-8000-0000000000a1",
        "00000000-0000-4000-8000-0000000000a2",
        "00000000-0000-4000-8000-0000000000a3",
        "00000000-0000-4000-8000-0000000000a4",
        "00000000-0000-4000-8000-0000000000a5",
    ];

    /// A deterministic catalogue: ratings and dates with ties and gaps, 0–3 genres,
    /// both types and accesses.
    fn film(n: u64) -> Film {
        let pick =
            |salt: u64, modulo: u64| (n.wrapping_mul(2654435761).wrapping_add(salt * 97)) % modulo;
        let genre = (0..pick(1, 4))
            .map(|i| {
                let g = ((pick(2, 5) + i) % 5) as usize;
                GenreRef {
                    uuid: GENRES[g].to_owned(),
                    name: format!("Genre {g}"),
                }
            })
            .collect();
        Film {
            uuid: format!("00000000-0000-4000-8000-{n:012}"),
            title: format!(
                "Film {}",
                ["matrix", "brat", "yolki", "war"][pick(3, 4) as usize]
            ),
            imdb_rating: (pick(4, 7) != 0).then(|| pick(5, 20) as f64 / 2.0),
            description: "a film".to_owned(),
            creation_date: (pick(6, 9) != 0).then(|| {
                format!(
                    "{}-0{}-1{}",
                    1980 + pick(7, 40),
                    1 + pick(8, 9),
                    pick(9, 10)
                )
            }),
            film_type: ["movie", "tv_show"][pick(10, 2) as usize].to_owned(),
            access: ["free", "subscription"][pick(11, 2) as usize].to_owned(),
            genre,
            actors: vec![PersonRef {
                uuid: "00000000-0000-4000-8000-00000000p001".replace('p', "0"),
                full_name: "Keanu".to_owned(),
            }],
            writers: vec![],
            directors: vec![],
        }
    }

    /// An index of 400 films over three segments, with some deleted and some rewritten,
    /// so lists meet deletes and several segments.
    fn catalogue(name: &str) -> SearchIndex {
        let dir = std::env::temp_dir().join(format!("cinema-etl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let index = CatalogIndex::open_or_create(&dir).expect("index");
        let mut writer = index.writer(1).expect("writer");
        for (g, uuid) in GENRES.iter().enumerate() {
            writer
                .add_document(index.genre_document(
                    &GenreRef {
                        uuid: (*uuid).to_owned(),
                        name: format!("Genre {g}"),
                    },
                    RowVersion::default(),
                ))
                .expect("genre");
        }
        for batch in 0..3u64 {
            for n in batch * 150..(batch * 150 + 150).min(400) {
                writer
                    .add_document(index.film_document(&film(n), RowVersion::default()))
                    .expect("film");
            }
            for n in (0..400).filter(|n| n % 37 == batch) {
                writer.delete_term(index.key_term(Kind::Film, &film(n).uuid));
            }
            let position = Position {
                schema_version: SCHEMA_VERSION,
                generation: batch + 1,
                watermark: None,
            };
            commit(&mut writer, &position).expect("commit");
        }
        SearchIndex::open(&index).expect("reader")
    }

    fn uuids(page: &FilmPage) -> Vec<&str> {
        page.items.iter().map(ListedFilm::uuid).collect()
    }

    fn facets(page: &FilmPage) -> Vec<(&str, u64)> {
        page.facets
            .genre
            .iter()
            .map(|f| (f.uuid.as_str(), f.count))
            .collect()
    }

    /// Every list the table answers equals what the tantivy query answers: the same
    /// films in the same order (ties and missing values included), total and facets.
    #[test]
    fn film_table_lists_equal_the_tantivy_query_for_every_sort_filter_and_page() {
        let index = catalogue("table-vs-query");
        let snapshot = index.snapshot();
        assert!(snapshot.films.is_some(), "five genres fit the table");
        let sorts = [
            "-imdb_rating",
            "imdb_rating",
            "-creation_date",
            "creation_date",
            "relevance",
        ];
        let filters: Vec<FilmQuery> = vec![
            FilmQuery::default(),
            FilmQuery {
                genre: Some(GENRES[1].to_owned()),
                ..FilmQuery::default()
            },
            FilmQuery {
                genre: Some("00000000-0000-4000-8000-0000000000ff".to_owned()),
                ..FilmQuery::default()
            },
            FilmQuery {
                film_type: Some("tv_show".to_owned()),
                ..FilmQuery::default()
            },
            FilmQuery {
                access: Some("free".to_owned()),
                ..FilmQuery::default()
            },
            FilmQuery {
                access: Some("nobody".to_owned()),
                ..FilmQuery::default()
            },
            FilmQuery {
                year_from: Some(1990),
                year_to: Some(2000),
                ..FilmQuery::default()
            },
            FilmQuery {
                year_to: Some(1985),
                ..FilmQuery::default()
            },
            FilmQuery {
                rating_from: Some(3.0),
                rating_to: Some(7.5),
                ..FilmQuery::default()
            },
            FilmQuery {
                rating_from: Some(9.0),
                ..FilmQuery::default()
            },
            FilmQuery {
                genre: Some(GENRES[3].to_owned()),
                year_from: Some(1995),
                access: Some("subscription".to_owned()),
                film_type: Some("movie".to_owned()),
                rating_to: Some(6.0),
                ..FilmQuery::default()
            },
        ];
        let mut compared = 0;
        for filter in &filters {
            for sort in sorts {
                for (page_size, page_number, with_facets) in [
                    (50, 1, true),
                    (7, 1, false),
                    (7, 3, true),
                    (10, 30, true),
                    (100, 1, false),
                ] {
                    let query = FilmQuery {
                        sort: FilmSort::parse(sort).expect("sort"),
                        page_size,
                        page_number,
                        facets: with_facets,
                        ..filter.clone()
                    };
                    let table = index.search_films(&query).expect("table list");
                    let tantivy = index.query_films(&snapshot, &query).expect("tantivy list");
                    assert_eq!(uuids(&table), uuids(&tantivy), "{query:?}");
                    assert_eq!(table.total, tantivy.total, "{query:?}");
                    assert_eq!(facets(&table), facets(&tantivy), "{query:?}");
                    if !query.facets {
                        assert!(table.facets.genre.is_empty(), "{query:?}");
                    }
                    assert_eq!(table.items, tantivy.items, "{query:?}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, filters.len() * sorts.len() * 5);
    }

    /// The page JSON the search API sends (films copied in as ready JSON) is the JSON
    /// serde gives for the same page, for lists and for searches with highlights.
    #[test]
    fn page_json_is_the_serde_json_of_the_page() {
        let index = catalogue("page-json");
        let search = FilmQuery {
            text: "matrix".to_owned(),
            sort: FilmSort::Relevance,
            ..FilmQuery::default()
        };
        for query in [FilmQuery::default(), search] {
            let page = index.search_films(&query).expect("search");
            assert!(!page.items.is_empty(), "{query:?}");
            let sent: serde_json::Value =
                serde_json::from_slice(&page.to_json()).expect("the page is valid JSON");
            let by_serde = serde_json::to_value(&page).expect("serialize");
            assert_eq!(sent, by_serde, "{query:?}");
        }
    }

    /// A text search counts its genres from the table as the facet column would.
    #[test]
    fn search_facets_from_the_table_equal_the_facet_column() {
        let index = catalogue("facets");
        let snapshot = index.snapshot();
        let query = FilmQuery {
            text: "matrix".to_owned(),
            sort: FilmSort::Relevance,
            ..FilmQuery::default()
        };
        let page = index.search_films(&query).expect("search");
        assert!(page.total > 0);
        let terms = analysis::terms("matrix");
        let s = &index.index.schema;
        let word = word_query(&[(s.title, 4.0, true)], &terms[0], true);
        let clauses = vec![(Occur::Must, word)];
        let by_column = facet_counts(&snapshot, &BooleanQuery::new(clauses)).expect("facets");
        let mut by_column: Vec<(&str, u64)> = by_column
            .iter()
            .map(|(uuid, _, count)| (uuid.as_str(), *count))
            .collect();
        let mut by_table = facets(&page);
        by_column.sort();
        by_table.sort();
        assert_eq!(by_table, by_column);
        assert!(page.items.iter().all(|item| item.highlight.is_some()));
    }
}
