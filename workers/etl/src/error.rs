//! The ETL's error enum, each variant classified as retriable (back off and try again)
//! or fatal (stop and say what to do).

use std::path::PathBuf;

/// Everything the ETL and the index can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// Postgres unreachable or a query failed: retriable.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The listening connection ended: retriable.
    #[error("postgres notification connection ended")]
    ConnectionLost,
    /// Shutdown interrupted a build or catch-up (nothing was committed).
    #[error("stopped by shutdown before publishing")]
    Stopped,
    /// A row did not decode into a document: retriable (the next catch-up rereads it).
    #[error("failed to decode content row: {0}")]
    Decode(String),
    /// Another process holds the index's writer lock.
    #[error(
        "the search index at {0} is in use by another process (a running `cinema up`?): \
         stop it, or ask it to rebuild with `curl -X POST http://<internal-listen>/etl/reindex`"
    )]
    IndexLocked(PathBuf),
    /// The index could not be opened, written or committed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A thread or runtime for a rebuild could not be started.
    #[error("etl runtime: {0}")]
    Runtime(String),
    /// The index directory could not be created or cleared.
    #[error("search index directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl EtlError {
    /// Whether backing off and retrying can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Postgres(_) | Self::ConnectionLost | Self::Decode(_)
        )
    }
}

impl From<crate::search::SearchError> for EtlError {
    fn from(error: crate::search::SearchError) -> Self {
        match error {
            crate::search::SearchError::Index(error) => Self::Index(error),
            crate::search::SearchError::CorruptDocument(what) => Self::Decode(what),
        }
    }
}

pub type Result<T, E = EtlError> = std::result::Result<T, E>;
