//! `cinema-etl`: the catalog's search index, built from Postgres and kept in step.
//!
//! Tour:
//! - [`analysis`]: how text becomes terms (Russian/English stemming, `ё` folding);
//!   [`near`]: the typo and prefix automaton a query word's near misses come from;
//!   [`highlight`]: a search's terms marked in a hit's title and description;
//! - [`schema`]: the tantivy fields; [`model`]: the documents in their wire shape;
//! - [`source`]: every Postgres read; [`index`]: the index on disk and the durable
//!   position committed with it;
//! - [`sync`]: the ETL itself (full build, `LISTEN/NOTIFY` increments, catch-up,
//!   backoff); [`rebuild`]: a full build beside the live index that goes live when
//!   complete, so edits stay searchable while it runs; [`search`]: the warm reader and the queries the search API serves;
//!   [`listing`]: the in-memory film table lists and facet counts come from.
//!
//! The host runs [`sync::run`] under `cinema up` and serves [`search::SearchIndex`]
//! on its internal API; `cinema reindex` runs [`sync::Indexer::full_build`].

pub mod analysis;
pub mod error;
pub mod highlight;
pub mod index;
pub mod listing;
pub mod model;
pub mod near;
pub mod rebuild;
pub mod schema;
pub mod search;
pub mod source;
pub mod sync;

pub use error::{EtlError, Result};
pub use index::CatalogIndex;
pub use search::SearchIndex;
pub use sync::{EtlCommand, EtlSettings, Indexer};
