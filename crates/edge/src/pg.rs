//! Postgres for components (Spin's `pg` interface): a connection whose every error is
//! classified as [`DbError::Unavailable`] (Postgres cannot serve now: answer 503) or
//! [`DbError::Failed`] (the statement or the schema is wrong: answer 500), with the
//! context of what was being done; typed column reads; the timestamp format every
//! component renders.

use spin_sdk::pg::{Connection, DbError as PgDbError, ParameterValue, PgError, QueryError, Row};

/// `to_char` format of timestamps: RFC 3339, UTC, microseconds.
pub const RFC3339_UTC: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

/// SQLSTATE classes and codes that mean "Postgres cannot serve now", not "the
/// statement is wrong": connection exceptions (class 08), insufficient resources
/// (class 53), and operator intervention's shutdowns and start-up (57P01..57P03).
const UNAVAILABLE_SQLSTATE_CLASSES: [&str; 2] = ["08", "53"];
const UNAVAILABLE_SQLSTATES: [&str; 3] = ["57P01", "57P02", "57P03"];

/// Why a query did not answer.
#[derive(Debug)]
pub enum DbError {
    /// Postgres is unreachable, dropped the connection or refuses work for now.
    Unavailable(String),
    /// An integrity constraint refused the write (SQLSTATE class 23: unique, foreign
    /// key, check): the caller's input conflicts with what is stored. Names the
    /// constraint so the caller can say which rule.
    Rejected {
        sqlstate: String,
        constraint: String,
        detail: String,
    },
    /// The statement failed or a row did not decode; a bug or a schema mismatch.
    Failed(String),
}

/// SQLSTATE of a unique violation and of a foreign-key violation.
pub const UNIQUE_VIOLATION: &str = "23505";
pub const FOREIGN_KEY_VIOLATION: &str = "23503";

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(detail) => write!(f, "postgres unavailable: {detail}"),
            Self::Rejected {
                constraint, detail, ..
            } => write!(f, "postgres refused the write ({constraint}): {detail}"),
            Self::Failed(detail) => write!(f, "postgres query failed: {detail}"),
        }
    }
}

pub type DbResult<T, E = DbError> = Result<T, E>;

impl DbError {
    /// Classifies a driver error; `context` says what was being done.
    pub fn from_pg(context: &str, error: spin_sdk::pg::Error) -> Self {
        let detail = format!("{context}: {error:?}");
        match error {
            spin_sdk::pg::Error::PgError(PgError::ConnectionFailed(_)) => Self::Unavailable(detail),
            spin_sdk::pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(
                PgDbError { code, .. },
            ))) if sqlstate_means_unavailable(&code) => Self::Unavailable(detail),
            spin_sdk::pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(
                PgDbError { code, extras, .. },
            ))) if code.starts_with("23") => Self::Rejected {
                constraint: extras
                    .iter()
                    .find(|(name, _)| name == "constraint")
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default(),
                sqlstate: code,
                detail,
            },
            _ => Self::Failed(detail),
        }
    }
}

/// Whether a SQLSTATE says Postgres cannot serve now (rather than that the statement
/// is wrong).
fn sqlstate_means_unavailable(code: &str) -> bool {
    UNAVAILABLE_SQLSTATES.contains(&code)
        || UNAVAILABLE_SQLSTATE_CLASSES
            .iter()
            .any(|class| code.starts_with(class))
}

/// A column of a row; missing or of another type is a schema mismatch.
pub fn column<T: spin_sdk::pg::Decode>(row: &Row, name: &str) -> DbResult<T> {
    row.get(name)
        .ok_or_else(|| DbError::Failed(format!("column {name} missing or of an unexpected type")))
}

/// A nullable column: `None` for SQL NULL; missing or of another type is a mismatch.
pub fn nullable<T: spin_sdk::pg::Decode>(row: &Row, name: &str) -> DbResult<Option<T>> {
    row.get::<Option<T>>(name)
        .ok_or_else(|| DbError::Failed(format!("column {name} missing or of an unexpected type")))
}

/// A connection to the platform's Postgres.
pub struct Pg {
    connection: Connection,
}

impl Pg {
    pub async fn open(url: &str) -> DbResult<Self> {
        let connection = Connection::open(url)
            .await
            .map_err(|e| DbError::from_pg("failed to connect to postgres", e))?;
        Ok(Self { connection })
    }

    /// Every row of `statement`; `context` names what it does, for errors.
    pub async fn rows(
        &self,
        context: &str,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> DbResult<Vec<Row>> {
        let result = self
            .connection
            .query(statement, params)
            .await
            .map_err(|e| DbError::from_pg(context, e))?;
        result
            .collect()
            .await
            .map_err(|e| DbError::from_pg(context, e))
    }

    /// Rows changed by `statement`.
    pub async fn execute(
        &self,
        context: &str,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> DbResult<u64> {
        self.connection
            .execute(statement, params)
            .await
            .map_err(|e| DbError::from_pg(context, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_error(code: &str) -> spin_sdk::pg::Error {
        spin_sdk::pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(PgDbError {
            as_text: format!("error {code}"),
            severity: "FATAL".into(),
            code: code.into(),
            message: "m".into(),
            detail: None,
            extras: Vec::new(),
        })))
    }

    /// A failed or lost connection is "unavailable" (503), with the context kept.
    #[test]
    fn connection_failures_are_unavailable() {
        let error = DbError::from_pg(
            "failed to connect to postgres",
            spin_sdk::pg::Error::PgError(PgError::ConnectionFailed("refused".into())),
        );
        assert!(
            matches!(&error, DbError::Unavailable(detail) if detail.starts_with("failed to connect to postgres: ")),
            "{error:?}"
        );
    }

    /// Postgres shutting down, starting or out of connections is "unavailable" too.
    #[test]
    fn shutdown_and_resource_sqlstates_are_unavailable() {
        for code in ["57P01", "57P03", "08006", "53300"] {
            assert!(
                matches!(
                    DbError::from_pg("q", db_error(code)),
                    DbError::Unavailable(_)
                ),
                "{code}"
            );
        }
    }

    /// A wrong statement or schema (missing table, bad cast) is a failure (500), not
    /// unavailability.
    #[test]
    fn statement_errors_are_failures_not_unavailability() {
        for code in ["42P01", "22P02", "42703"] {
            assert!(
                matches!(DbError::from_pg("q", db_error(code)), DbError::Failed(_)),
                "{code}"
            );
        }
        let other = spin_sdk::pg::Error::PgError(PgError::Other("tls".into()));
        assert!(matches!(DbError::from_pg("q", other), DbError::Failed(_)));
    }

    /// An integrity violation is the input's fault, with the constraint named.
    #[test]
    fn integrity_violations_are_rejections_naming_the_constraint() {
        let error =
            spin_sdk::pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(PgDbError {
                as_text: "duplicate".into(),
                severity: "ERROR".into(),
                code: UNIQUE_VIOLATION.into(),
                message: "m".into(),
                detail: None,
                extras: vec![("constraint".into(), "genre_name_key".into())],
            })));
        assert!(matches!(
            DbError::from_pg("q", error),
            DbError::Rejected { sqlstate, constraint, .. }
                if sqlstate == UNIQUE_VIOLATION && constraint == "genre_name_key"
        ));
        let other = spin_sdk::pg::Error::PgError(PgError::Other("tls".into()));
        assert!(matches!(DbError::from_pg("q", other), DbError::Failed(_)));
    }
}
