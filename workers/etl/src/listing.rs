//! The film table: what film lists and genre facets need of every published film, held
//! in memory beside the searcher, so that a list (no text query) is a scan of a few
//! compact columns instead of a tantivy query, and no search parses a stored document
//! to show a list item.
//!
//! Two levels, matching how tantivy publishes:
//! - [`SegmentFilms`]: the films of one segment (list item, sort keys, filter values),
//!   read once from the segment's stored documents. Segments never change, so
//!   [`SegmentCache`] keeps them across publishes and an edit reads only the new
//!   segment.
//! - [`FilmTable`]: one snapshot's alive films, as columns in document-address order,
//!   plus the four sort orders with their filter columns and sets. Rebuilt on every
//!   publish from the segment parts (sorting 100k keys takes milliseconds).
//!
//! Per sort order the table keeps the films in that order with a bit set per genre,
//! `type` and `access` value, and the rating and year columns. A list ANDs the sets of
//! its filters (a range filter scans its column once into a set), counts the ones for
//! the total, and takes the page by skipping whole 64-bit words of matches; an
//! unfiltered list is a slice of the order. Genre counts (facets) are gathered only when
//! asked for.
//!
//! Results equal what the tantivy query gives, order of ties included (ascending
//! document address, films without the sort value last in both directions); a test in
//! [`crate::search`] compares the two over every filter, sort and page.
//!
//! Genres are counted in a 64-bit mask per film. A catalog with more than 64 genres
//! gets no table for lists and facets (see [`MAX_TABLE_GENRES`]), and the
//! tantivy path serves them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tantivy::index::SegmentId;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Order, Searcher, SegmentReader, TantivyDocument, TantivyError};

use crate::index::days_since_epoch;
use crate::model::{FilmListItem, Genre, ListedFilm, SharedText};
use crate::schema::Kind;
use crate::search::{FilmQuery, FilmSort, SearchResult, stored_json};

/// Most genres the table counts (one bit each).
pub const MAX_TABLE_GENRES: usize = 64;

/// A published film as lists show and filter it.
#[derive(Debug, Clone)]
pub struct TableFilm {
    doc: DocId,
    /// The list item, as JSON ready to be copied into a page.
    pub item: ListedFilm,
    /// `type` and `access`, which filters test (read when the table is built).
    film_type: String,
    access: String,
    /// The title, then the description: what a search highlights, in one allocation.
    text: Box<str>,
    title_len: usize,
    rating: Option<f64>,
    date: Option<i64>,
    year: Option<i64>,
    genres: Vec<String>,
}

impl TableFilm {
    pub fn title(&self) -> &str {
        self.text.get(..self.title_len).unwrap_or_default()
    }

    pub fn description(&self) -> &str {
        self.text.get(self.title_len..).unwrap_or_default()
    }
}

/// The films of one segment (alive or not: deletes change, the segment does not).
#[derive(Debug, Default)]
pub struct SegmentFilms {
    films: Vec<TableFilm>,
}

/// The fields of a stored film a list needs (the rest of the JSON is skipped).
#[derive(Deserialize)]
struct StoredListFields {
    uuid: String,
    title: String,
    description: String,
    imdb_rating: Option<f64>,
    creation_date: Option<String>,
    #[serde(rename = "type")]
    film_type: String,
    access: String,
    genre: Vec<StoredGenre>,
}

#[derive(Deserialize)]
struct StoredGenre {
    uuid: String,
}

impl SegmentFilms {
    /// Reads every film document of a segment.
    fn read(segment: &SegmentReader, kind: Field, doc_field: Field) -> SearchResult<Self> {
        let mut films = Vec::new();
        let inverted = segment.inverted_index(kind)?;
        let term = tantivy::Term::from_field_text(kind, Kind::Film.as_str());
        let Some(mut postings) = inverted
            .read_postings(&term, IndexRecordOption::Basic)
            .map_err(TantivyError::from)?
        else {
            return Ok(Self { films });
        };
        let store = segment.get_store_reader(16).map_err(TantivyError::from)?;
        use tantivy::DocSet;
        let mut doc = postings.doc();
        while doc != tantivy::TERMINATED {
            let stored: TantivyDocument = store.get(doc)?;
            let fields: StoredListFields =
                stored_json(&stored, doc_field, format_args!("film doc {doc}"))?;
            let date = fields.creation_date.as_deref().and_then(days_since_epoch);
            let year = fields
                .creation_date
                .as_deref()
                .and_then(|d| d.get(..4))
                .and_then(|y| y.parse().ok());
            let item = ListedFilm::new(FilmListItem {
                uuid: fields.uuid.into(),
                title: fields.title.as_str().into(),
                imdb_rating: fields.imdb_rating,
                access: fields.access.as_str().into(),
                film_type: fields.film_type.as_str().into(),
                creation_date: fields.creation_date.map(SharedText::from),
                highlight: None,
            });
            films.push(TableFilm {
                doc,
                rating: fields.imdb_rating,
                date,
                year,
                genres: fields.genre.into_iter().map(|g| g.uuid).collect(),
                title_len: fields.title.len(),
                text: [fields.title.as_str(), fields.description.as_str()]
                    .concat()
                    .into_boxed_str(),
                item,
                film_type: fields.film_type,
                access: fields.access,
            });
            doc = postings.advance();
        }
        Ok(Self { films })
    }
}

/// Segment parts kept across publishes (a segment's films are read once).
#[derive(Debug, Default)]
pub struct SegmentCache {
    segments: Mutex<HashMap<SegmentId, Arc<SegmentFilms>>>,
}

impl SegmentCache {
    /// The films of every segment of `searcher`, reading only segments not seen before,
    /// and forgetting segments merged away.
    fn parts(
        &self,
        searcher: &Searcher,
        kind: Field,
        doc_field: Field,
    ) -> SearchResult<Vec<Arc<SegmentFilms>>> {
        let mut cache = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        let mut parts = Vec::with_capacity(searcher.segment_readers().len());
        let mut current = HashMap::with_capacity(parts.capacity());
        for segment in searcher.segment_readers() {
            let id = segment.segment_id();
            let films = match cache.get(&id) {
                Some(films) => films.clone(),
                None => Arc::new(SegmentFilms::read(segment, kind, doc_field)?),
            };
            current.insert(id, films.clone());
            parts.push(films);
        }
        *cache = current;
        Ok(parts)
    }

    /// Takes every segment `other` has read (a rebuild's reader handing over).
    pub(crate) fn take_from(&self, other: &SegmentCache) {
        let theirs = std::mem::take(&mut *other.segments.lock().unwrap_or_else(|p| p.into_inner()));
        *self.segments.lock().unwrap_or_else(|p| p.into_inner()) = theirs;
    }
}

/// Where a row's film lives: segment ordinal and index in that segment's films.
#[derive(Debug, Clone, Copy)]
struct RowSource {
    segment: u32,
    film: u32,
}

/// `year` of a film without a creation date (below any year a filter accepts).
const NO_YEAR: i32 = i32::MIN;
/// Most distinct values of `type` and of `access` the table keeps sets for.
const MAX_KIND_VALUES: usize = 16;

/// One bit per film of an order (bit `i` of word `i / 64` is the `i`-th film).
type Bits = Vec<u64>;

/// The films of one sort order and what filters test of them: entry `i` of each column
/// (and bit `i` of each set) is the `i`-th film of that order, so a list reads them
/// front to back and filters combine as bit sets.
#[derive(Debug, Default)]
struct OrderedColumns {
    rows: Vec<u32>,
    /// NaN without a rating (no range accepts it).
    rating: Vec<f64>,
    /// [`NO_YEAR`] without a creation date.
    year: Vec<i32>,
    genres: Vec<u64>,
    /// Films of each genre bit, of each `type` and of each `access` ordinal.
    genre_sets: Vec<Bits>,
    type_sets: Vec<Bits>,
    access_sets: Vec<Bits>,
}

impl OrderedColumns {
    fn new(order: Vec<u32>, table: &FilmTable, ratings: &[Option<f64>], years: &[i32]) -> Self {
        let words = order.len().div_ceil(64);
        let sets = |count: usize| vec![vec![0u64; words]; count];
        let mut columns = Self {
            rating: Vec::with_capacity(order.len()),
            year: Vec::with_capacity(order.len()),
            genres: Vec::with_capacity(order.len()),
            genre_sets: sets(table.genre_list.len()),
            type_sets: sets(table.film_types.len()),
            access_sets: sets(table.accesses.len()),
            rows: Vec::new(),
        };
        for (i, &row) in order.iter().enumerate() {
            let row = row as usize;
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            columns.rating.push(ratings[row].unwrap_or(f64::NAN));
            columns.year.push(years[row]);
            columns.genres.push(table.genres[row]);
            for genre in ones(table.genres[row]) {
                columns.genre_sets[genre][word] |= bit;
            }
            columns.type_sets[table.film_type[row] as usize][word] |= bit;
            columns.access_sets[table.access[row] as usize][word] |= bit;
        }
        columns.rows = order;
        columns
    }

    /// The films passing every filter of the query, or `None` for no filter (all).
    fn matching(&self, filter: &ListFilter) -> Option<Bits> {
        let mut set: Option<Bits> = None;
        let mut and = |other: &mut dyn Iterator<Item = u64>| match &mut set {
            None => set = Some(other.collect()),
            Some(set) => set.iter_mut().zip(other).for_each(|(a, b)| *a &= b),
        };
        if let Some(bit) = filter.genre {
            and(&mut self.genre_sets[bit].iter().copied());
        }
        if let Some(ordinal) = filter.film_type {
            and(&mut self.type_sets[ordinal].iter().copied());
        }
        if let Some(ordinal) = filter.access {
            and(&mut self.access_sets[ordinal].iter().copied());
        }
        if let Some((from, to)) = filter.years {
            and(&mut in_range(&self.year, from, to));
        }
        if let Some((from, to)) = filter.ratings {
            and(&mut in_range(&self.rating, from, to));
        }
        set
    }
}

/// The set of a column's entries within `from..=to`, a word at a time (NaN is in no
/// range).
fn in_range<T: PartialOrd + Copy>(column: &[T], from: T, to: T) -> impl Iterator<Item = u64> + '_ {
    column.chunks(64).map(move |chunk| {
        chunk.iter().enumerate().fold(0u64, |bits, (i, value)| {
            bits | (u64::from((*value >= from) & (*value <= to)) << i)
        })
    })
}

/// Positions of the one bits of a word, lowest first.
fn ones(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let position = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            position
        })
    })
}

/// A list's filters as the columns test them.
#[derive(Debug, Clone, Copy)]
struct ListFilter {
    genre: Option<usize>,
    film_type: Option<usize>,
    access: Option<usize>,
    /// Inclusive; films without a year never pass.
    years: Option<(i32, i32)>,
    /// Inclusive; films without a rating never pass.
    ratings: Option<(f64, f64)>,
}

/// One snapshot's alive films: where each lives, and its filter columns in each sort
/// order.
#[derive(Debug)]
pub struct FilmTable {
    parts: Vec<Arc<SegmentFilms>>,
    /// By row (document-address order).
    sources: Vec<RowSource>,
    /// Per segment ordinal: document id → row, `u32::MAX` for no alive film.
    rows_by_doc: Vec<Vec<u32>>,
    /// Per segment ordinal: document id → index in that segment's films, `u32::MAX`
    /// for no alive film (what a search's page reads: one load less than by row).
    films_by_doc: Vec<Vec<u32>>,
    /// Genre mask by row (what a search's genre counter reads).
    genres: Vec<u64>,
    /// `type` and `access` ordinals by row.
    film_type: Vec<u8>,
    access: Vec<u8>,
    /// Values of `type` and `access`, by the ordinal `kind` holds.
    film_types: Vec<String>,
    accesses: Vec<String>,
    /// Genre uuid → bit, for the snapshot's genres (by name, as `/search/genres`).
    genre_bits: HashMap<String, u32>,
    genre_list: Vec<(String, String)>,
    /// Films per genre bit over the whole table (an unfiltered list's facets).
    genre_totals: [u64; MAX_TABLE_GENRES],
    by_rating_desc: OrderedColumns,
    by_rating_asc: OrderedColumns,
    by_date_desc: OrderedColumns,
    by_date_asc: OrderedColumns,
}

/// One page of a list, with the total and (when asked) the genre counts over every
/// match.
#[derive(Debug)]
pub struct TablePage {
    pub total: usize,
    pub items: Vec<ListedFilm>,
    /// `(uuid, name, count)` of every genre with at least one match.
    pub genre_counts: Vec<(String, String, u64)>,
}

impl FilmTable {
    /// Builds the table of a snapshot, or `None` when its genres (or `type` and
    /// `access` values) do not fit the columns.
    pub fn build(
        cache: &SegmentCache,
        searcher: &Searcher,
        kind: Field,
        doc_field: Field,
        genres: &[Genre],
    ) -> SearchResult<Option<Self>> {
        if genres.len() > MAX_TABLE_GENRES {
            return Ok(None);
        }
        let parts = cache.parts(searcher, kind, doc_field)?;
        let genre_bits: HashMap<String, u32> = genres
            .iter()
            .enumerate()
            .map(|(bit, g)| (g.uuid.clone(), bit as u32))
            .collect();
        let capacity: usize = parts.iter().map(|p| p.films.len()).sum();
        let mut table = Self {
            parts: Vec::new(),
            sources: Vec::with_capacity(capacity),
            rows_by_doc: Vec::with_capacity(parts.len()),
            films_by_doc: Vec::with_capacity(parts.len()),
            genres: Vec::with_capacity(capacity),
            film_type: Vec::with_capacity(capacity),
            access: Vec::with_capacity(capacity),
            film_types: Vec::new(),
            accesses: Vec::new(),
            genre_list: genres
                .iter()
                .map(|g| (g.uuid.clone(), g.name.clone()))
                .collect(),
            genre_bits,
            genre_totals: [0; MAX_TABLE_GENRES],
            by_rating_desc: OrderedColumns::default(),
            by_rating_asc: OrderedColumns::default(),
            by_date_desc: OrderedColumns::default(),
            by_date_asc: OrderedColumns::default(),
        };
        let mut ratings: Vec<Option<f64>> = Vec::with_capacity(capacity);
        let mut dates: Vec<Option<i64>> = Vec::with_capacity(capacity);
        let mut years: Vec<i32> = Vec::with_capacity(capacity);
        for (ordinal, (segment, part)) in searcher.segment_readers().iter().zip(&parts).enumerate()
        {
            let alive = segment.alive_bitset();
            let mut rows_by_doc = vec![u32::MAX; segment.max_doc() as usize];
            let mut films_by_doc = vec![u32::MAX; segment.max_doc() as usize];
            for (index, film) in part.films.iter().enumerate() {
                if alive.is_some_and(|a| !a.is_alive(film.doc)) {
                    continue;
                }
                let row = table.sources.len() as u32;
                rows_by_doc[film.doc as usize] = row;
                films_by_doc[film.doc as usize] = index as u32;
                table.sources.push(RowSource {
                    segment: ordinal as u32,
                    film: index as u32,
                });
                let (Some(film_type), Some(access)) = (
                    intern(&mut table.film_types, &film.film_type),
                    intern(&mut table.accesses, &film.access),
                ) else {
                    // Not the two values each the schema allows: the tantivy path serves.
                    return Ok(None);
                };
                table.film_type.push(film_type);
                table.access.push(access);
                let mut mask = 0u64;
                for genre in &film.genres {
                    if let Some(bit) = table.genre_bits.get(genre) {
                        mask |= 1 << bit;
                    }
                }
                table.genres.push(mask);
                ratings.push(film.rating);
                dates.push(film.date);
                years.push(film.year.map_or(NO_YEAR, |y| {
                    y.clamp(i64::from(NO_YEAR) + 1, i64::from(i32::MAX)) as i32
                }));
            }
            table.rows_by_doc.push(rows_by_doc);
            table.films_by_doc.push(films_by_doc);
        }
        for mask in &table.genres {
            add_genres(&mut table.genre_totals, *mask);
        }
        table.by_rating_desc =
            OrderedColumns::new(sort_order(&ratings, Order::Desc), &table, &ratings, &years);
        table.by_rating_asc =
            OrderedColumns::new(sort_order(&ratings, Order::Asc), &table, &ratings, &years);
        table.by_date_desc =
            OrderedColumns::new(sort_order(&dates, Order::Desc), &table, &ratings, &years);
        table.by_date_asc =
            OrderedColumns::new(sort_order(&dates, Order::Asc), &table, &ratings, &years);
        table.parts = parts;
        Ok(Some(table))
    }

    /// Alive films in the table.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The film at a document address, if it is an alive film.
    pub fn film_at(&self, address: tantivy::DocAddress) -> Option<&TableFilm> {
        let segment = address.segment_ord as usize;
        let film = *self
            .films_by_doc
            .get(segment)?
            .get(address.doc_id as usize)?;
        if film == u32::MAX {
            return None;
        }
        self.parts.get(segment)?.films.get(film as usize)
    }

    fn film(&self, row: u32) -> &TableFilm {
        let source = self.sources[row as usize];
        &self.parts[source.segment as usize].films[source.film as usize]
    }

    fn item(&self, row: u32) -> ListedFilm {
        self.film(row).item.clone()
    }

    /// Whether the table can answer this query (no text, no person filter).
    pub fn answers(query: &FilmQuery) -> bool {
        query.text.trim().is_empty() && query.person.is_none()
    }

    /// One page of a list (a query [`FilmTable::answers`]).
    pub fn list(&self, query: &FilmQuery) -> TablePage {
        let columns = match query.sort {
            FilmSort::Rating(Order::Desc) | FilmSort::Relevance => &self.by_rating_desc,
            FilmSort::Rating(Order::Asc) => &self.by_rating_asc,
            FilmSort::CreationDate(Order::Desc) => &self.by_date_desc,
            FilmSort::CreationDate(Order::Asc) => &self.by_date_asc,
        };
        let offset = (query.page_number.max(1) - 1) * query.page_size;
        let end = offset + query.page_size.max(1);
        let Some(filter) = self.filter(query) else {
            // A filter value no film has: nothing matches.
            return TablePage {
                total: 0,
                items: Vec::new(),
                genre_counts: Vec::new(),
            };
        };
        let Some(matching) = columns.matching(&filter) else {
            let rows = &columns.rows[offset.min(columns.rows.len())..end.min(columns.rows.len())];
            return TablePage {
                total: self.len(),
                items: rows.iter().map(|row| self.item(*row)).collect(),
                genre_counts: if query.facets {
                    self.genre_counts(&self.genre_totals)
                } else {
                    Vec::new()
                },
            };
        };
        // Whole words of matches before the page are skipped by their count.
        let mut rank = 0usize;
        let mut items = Vec::with_capacity(end - offset);
        for (word, bits) in matching.iter().enumerate() {
            let count = bits.count_ones() as usize;
            if rank + count <= offset {
                rank += count;
                continue;
            }
            for bit in ones(*bits).take(end - rank) {
                if rank >= offset {
                    items.push(self.item(columns.rows[word * 64 + bit]));
                }
                rank += 1;
            }
            if rank >= end {
                break;
            }
        }
        let total = matching.iter().map(|bits| bits.count_ones() as usize).sum();
        let mut counts = [0u64; MAX_TABLE_GENRES];
        if query.facets {
            for (word, bits) in matching.iter().enumerate() {
                for bit in ones(*bits) {
                    add_genres(&mut counts, columns.genres[word * 64 + bit]);
                }
            }
        }
        TablePage {
            total,
            items,
            genre_counts: self.genre_counts(&counts),
        }
    }

    /// The query's filters as column tests; `None` when a value is one no film has.
    fn filter(&self, query: &FilmQuery) -> Option<ListFilter> {
        let ordinal = |values: &[String], wanted: &Option<String>| match wanted {
            Some(v) => values.iter().position(|x| x == v).map(Some),
            None => Some(None),
        };
        let genre = match &query.genre {
            Some(genre) => Some(*self.genre_bits.get(genre)? as usize),
            None => None,
        };
        let year = |bound: Option<i64>, open: i32| {
            bound.map_or(open, |y| {
                y.clamp(i64::from(NO_YEAR) + 1, i64::from(i32::MAX)) as i32
            })
        };
        Some(ListFilter {
            genre,
            film_type: ordinal(&self.film_types, &query.film_type)?,
            access: ordinal(&self.accesses, &query.access)?,
            years: (query.year_from.is_some() || query.year_to.is_some()).then(|| {
                (
                    year(query.year_from, NO_YEAR + 1),
                    year(query.year_to, i32::MAX),
                )
            }),
            ratings: (query.rating_from.is_some() || query.rating_to.is_some()).then(|| {
                (
                    query.rating_from.unwrap_or(f64::NEG_INFINITY),
                    query.rating_to.unwrap_or(f64::INFINITY),
                )
            }),
        })
    }

    /// Genre counts (by bit, as a list or a [`GenreCounter`] gathers them) as
    /// `(uuid, name, count)` entries of the genres with a count.
    pub fn genre_counts(&self, counts: &[u64; MAX_TABLE_GENRES]) -> Vec<(String, String, u64)> {
        self.genre_list
            .iter()
            .zip(counts)
            .filter(|(_, count)| **count > 0)
            .map(|((uuid, name), count)| (uuid.clone(), name.clone(), *count))
            .collect()
    }
}

fn add_genres(counts: &mut [u64; MAX_TABLE_GENRES], mask: u64) {
    for genre in ones(mask) {
        counts[genre] += 1;
    }
}

/// The ordinal of a value, adding it when new; `None` past [`MAX_KIND_VALUES`].
fn intern(values: &mut Vec<String>, value: &str) -> Option<u8> {
    let position = match values.iter().position(|v| v == value) {
        Some(position) => position,
        None => {
            values.push(value.to_owned());
            values.len() - 1
        }
    };
    (position < MAX_KIND_VALUES).then_some(position as u8)
}

/// A sort key whose unsigned order is the value's order (the usual bit trick for
/// floats; integers flip their sign bit).
trait SortKey: Copy {
    fn ordered_bits(self) -> u64;
}

impl SortKey for f64 {
    fn ordered_bits(self) -> u64 {
        let bits = self.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        }
    }
}

impl SortKey for i64 {
    fn ordered_bits(self) -> u64 {
        (self as u64) ^ 1 << 63
    }
}

/// Rows by a key as tantivy orders fast-field sorts: missing values last in both
/// directions, ties by ascending row (document address). One unstable sort of
/// `(missing, key, row)` triples: the row makes every triple distinct, so the order is
/// exact.
fn sort_order<T: SortKey>(keys: &[Option<T>], order: Order) -> Vec<u32> {
    let mut triples: Vec<(bool, u64, u32)> = keys
        .iter()
        .enumerate()
        .map(|(row, key)| {
            let rank = match (key, order) {
                (Some(key), Order::Asc) => key.ordered_bits(),
                (Some(key), Order::Desc) => !key.ordered_bits(),
                (None, _) => 0,
            };
            (key.is_none(), rank, row as u32)
        })
        .collect();
    triples.sort_unstable();
    triples.into_iter().map(|(_, _, row)| row).collect()
}

/// Counts the genres of every hit of a search from the table's masks (what tantivy's
/// facet collector does, without reading the facet column per hit).
pub struct GenreCounter(pub Arc<FilmTable>);

/// [`GenreCounter`] on one segment.
pub struct SegmentGenreCounter {
    table: Arc<FilmTable>,
    segment: usize,
    counts: [u64; MAX_TABLE_GENRES],
}

impl tantivy::collector::Collector for GenreCounter {
    type Fruit = [u64; MAX_TABLE_GENRES];
    type Child = SegmentGenreCounter;

    fn for_segment(
        &self,
        segment_local_id: tantivy::SegmentOrdinal,
        _segment: &SegmentReader,
    ) -> tantivy::Result<SegmentGenreCounter> {
        Ok(SegmentGenreCounter {
            table: self.0.clone(),
            segment: segment_local_id as usize,
            counts: [0; MAX_TABLE_GENRES],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        segment_fruits: Vec<[u64; MAX_TABLE_GENRES]>,
    ) -> tantivy::Result<[u64; MAX_TABLE_GENRES]> {
        let mut total = [0; MAX_TABLE_GENRES];
        for fruit in segment_fruits {
            for (sum, count) in total.iter_mut().zip(fruit) {
                *sum += count;
            }
        }
        Ok(total)
    }
}

impl tantivy::collector::SegmentCollector for SegmentGenreCounter {
    type Fruit = [u64; MAX_TABLE_GENRES];

    fn collect(&mut self, doc: DocId, _score: tantivy::Score) {
        let rows = &self.table.rows_by_doc[self.segment];
        if let Some(&row) = rows.get(doc as usize)
            && row != u32::MAX
        {
            add_genres(&mut self.counts, self.table.genres[row as usize]);
        }
    }

    fn harvest(self) -> [u64; MAX_TABLE_GENRES] {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders follow the values (negatives, neighbours one apart), missing last both
    /// ways, ties by row.
    #[test]
    fn sort_orders_follow_values_with_missing_last_and_ties_by_row() {
        let days = [
            Some(7001i64),
            None,
            Some(-3),
            Some(7000),
            Some(7001),
            Some(-4),
        ];
        assert_eq!(sort_order(&days, Order::Asc), [5, 2, 3, 0, 4, 1]);
        assert_eq!(sort_order(&days, Order::Desc), [0, 4, 3, 2, 5, 1]);
        let ratings = [
            Some(7.3f64),
            Some(-1.5),
            None,
            Some(7.300000000000001),
            Some(0.0),
        ];
        assert_eq!(sort_order(&ratings, Order::Asc), [1, 4, 0, 3, 2]);
        assert_eq!(sort_order(&ratings, Order::Desc), [3, 0, 4, 1, 2]);
    }
}
