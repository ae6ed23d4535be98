//! `cinema migrate`: applies `migrations/postgres/*.sql` and `migrations/clickhouse/*.sql`
//! in file-name order, once each, recording what ran.
//!
//! Files are named `NNNN_description.sql`. Postgres migrations run one per transaction
//! under an advisory lock (two migrators never interleave) and are recorded in
//! `public.cinema_schema_migrations` with a checksum; ClickHouse has no transactions,
//! so each file's statements (separated by `;` at line ends) run in order and the file
//! is recorded in `<database>.cinema_schema_migrations` after the last one succeeds.
//! Editing a migration that already ran is an error, never silently ignored. Missing
//! databases are created.

use std::path::{Path, PathBuf};

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("failed to read migrations in {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("migration file name {0} must look like NNNN_description.sql")]
    BadName(String),
    #[error(
        "postgres at {target} is unreachable: {message} (is it running? `scripts/services.sh up`)"
    )]
    PostgresConnect { target: String, message: String },
    #[error("postgres migration {name} failed: {message}")]
    Postgres { name: String, message: String },
    #[error("clickhouse at {url} failed: {message} (is it running? `scripts/services.sh up`)")]
    ClickHouse { url: String, message: String },
    #[error(
        "migration {name} was changed after it ran (recorded checksum {recorded}, file has {current}); add a new migration instead"
    )]
    Changed {
        name: String,
        recorded: String,
        current: String,
    },
    #[error("invalid postgres url: {0}")]
    BadUrl(String),
}

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

/// What a run did, for the progress output and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<String>,
    pub already_applied: usize,
}

/// FNV-1a 64: a stable checksum without another dependency.
fn checksum(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Reads the `*.sql` files of `dir`, sorted; a missing folder means no migrations.
pub fn read_migrations(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MigrateError::ReadDir {
                dir: dir.to_owned(),
                source,
            });
        }
    };
    let mut migrations = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| MigrateError::ReadDir {
                dir: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let version = name
            .split_once('_')
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| MigrateError::BadName(name.clone()))?
            .to_owned();
        let sql = std::fs::read_to_string(&path).map_err(|source| MigrateError::ReadDir {
            dir: dir.to_owned(),
            source,
        })?;
        migrations.push(Migration {
            checksum: checksum(&sql),
            version,
            name,
            sql,
        });
    }
    migrations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(migrations)
}

/// Creates the database named in `url` when it does not exist yet.
async fn ensure_postgres_database(url: &str) -> Result<(), MigrateError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| MigrateError::BadUrl(format!("{e}")))?;
    let Some(database) = config.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) =
        admin
            .connect(cinema_postgres::tls())
            .await
            .map_err(|e| MigrateError::PostgresConnect {
                target: describe(&config),
                message: cinema_postgres::describe(&e),
            })?;
    let task = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(|e| MigrateError::Postgres {
            name: "create database".into(),
            message: e.to_string(),
        })?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            // Lost a race with another migrator: fine.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(MigrateError::Postgres {
                    name: "create database".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Host, port and database of a config, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "local socket".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

/// Applies pending Postgres migrations.
pub async fn migrate_postgres(
    url: &str,
    migrations: &[Migration],
) -> Result<MigrateReport, MigrateError> {
    ensure_postgres_database(url).await?;
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| MigrateError::BadUrl(format!("{e}")))?;
    let (mut client, connection) = config.connect(cinema_postgres::tls()).await.map_err(|e| {
        MigrateError::PostgresConnect {
            target: describe(&config),
            message: cinema_postgres::describe(&e),
        }
    })?;
    let task = tokio::spawn(connection);
    let failed = |name: &str| {
        let name = name.to_owned();
        move |e: tokio_postgres::Error| MigrateError::Postgres {
            name: name.clone(),
            message: match e.as_db_error() {
                Some(db) => format!("{}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            },
        }
    };
    client
        .batch_execute(
            "SELECT pg_advisory_lock(7361626); \
             CREATE TABLE IF NOT EXISTS public.cinema_schema_migrations ( \
                 version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(failed("bookkeeping"))?;
    let mut report = MigrateReport::default();
    let result = async {
        for migration in migrations {
            let recorded = client
                .query_opt(
                    "SELECT checksum FROM public.cinema_schema_migrations WHERE version = $1",
                    &[&migration.version],
                )
                .await
                .map_err(failed(&migration.name))?;
            if let Some(row) = recorded {
                let recorded: String = row.get(0);
                if recorded != migration.checksum {
                    return Err(MigrateError::Changed {
                        name: migration.name.clone(),
                        recorded,
                        current: migration.checksum.clone(),
                    });
                }
                report.already_applied += 1;
                continue;
            }
            let transaction = client.transaction().await.map_err(failed(&migration.name))?;
            transaction.batch_execute(&migration.sql).await.map_err(failed(&migration.name))?;
            transaction
                .execute(
                    "INSERT INTO public.cinema_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    &[&migration.version, &migration.name, &migration.checksum],
                )
                .await
                .map_err(failed(&migration.name))?;
            transaction.commit().await.map_err(failed(&migration.name))?;
            println!("postgres: applied {}", migration.name);
            report.applied.push(migration.name.clone());
        }
        Ok(())
    }
    .await;
    let _ = client
        .batch_execute("SELECT pg_advisory_unlock(7361626)")
        .await;
    drop(client);
    let _ = task.await;
    result.map(|()| report)
}

/// Splits a ClickHouse migration into statements: `;` at the end of a line ends one.
fn clickhouse_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                statements.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim().trim_end_matches(';').trim();
    if !rest.is_empty() {
        statements.push(rest.to_owned());
    }
    statements
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct RecordedChecksum {
    checksum: String,
}

/// Applies pending ClickHouse migrations to `database` (created if missing).
pub async fn migrate_clickhouse(
    url: &str,
    database: &str,
    migrations: &[Migration],
) -> Result<MigrateReport, MigrateError> {
    let failed = |e: clickhouse::error::Error| MigrateError::ClickHouse {
        url: url.to_owned(),
        message: e.to_string(),
    };
    let server = clickhouse::Client::default()
        .with_url(url)
        .with_validation(false);
    let quoted = format!("`{}`", database.replace('`', ""));
    server
        .query(&format!("CREATE DATABASE IF NOT EXISTS {quoted}"))
        .execute()
        .await
        .map_err(failed)?;
    let client = server.clone().with_database(database);
    client
        .query(
            "CREATE TABLE IF NOT EXISTS cinema_schema_migrations \
             (version String, name String, checksum String, applied_at DateTime) \
             ENGINE = MergeTree ORDER BY version",
        )
        .execute()
        .await
        .map_err(failed)?;
    let mut report = MigrateReport::default();
    for migration in migrations {
        let recorded = client
            .query("SELECT checksum FROM cinema_schema_migrations WHERE version = ? LIMIT 1")
            .bind(&migration.version)
            .fetch_optional::<RecordedChecksum>()
            .await
            .map_err(failed)?;
        if let Some(recorded) = recorded {
            if recorded.checksum != migration.checksum {
                return Err(MigrateError::Changed {
                    name: migration.name.clone(),
                    recorded: recorded.checksum,
                    current: migration.checksum.clone(),
                });
            }
            report.already_applied += 1;
            continue;
        }
        for statement in clickhouse_statements(&migration.sql) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| MigrateError::ClickHouse {
                    url: url.to_owned(),
                    message: format!("{}: {e}", migration.name),
                })?;
        }
        client
            .query("INSERT INTO cinema_schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, now())")
            .bind(&migration.version)
            .bind(&migration.name)
            .bind(&migration.checksum)
            .execute()
            .await
            .map_err(failed)?;
        println!("clickhouse: applied {}", migration.name);
        report.applied.push(migration.name.clone());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ClickHouse files split on `;` at line ends, skipping comments and blanks.
    #[test]
    fn splits_clickhouse_statements() {
        let sql = "-- comment\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nINSERT INTO a VALUES (1);\nSELECT ';' ";
        assert_eq!(
            clickhouse_statements(sql),
            vec![
                "CREATE TABLE a (x UInt8)\nENGINE = Memory".to_owned(),
                "INSERT INTO a VALUES (1)".to_owned(),
                "SELECT ';'".to_owned(),
            ]
        );
    }

    /// The checksum is stable across runs (it is stored in databases).
    #[test]
    fn checksum_is_stable() {
        assert_eq!(
            checksum("CREATE TABLE t ();"),
            checksum("CREATE TABLE t ();")
        );
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum(""), "cbf29ce484222325");
    }
}
