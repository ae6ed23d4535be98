//! Integration tests of the ops subcommands: `cinema migrate` against real Postgres and
//! ClickHouse, and `cinema check-imports` against built components.

mod common;

use std::process::Command;

fn cinema() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cinema"))
}

/// Migrations apply once each, in order, are recorded, and an edited migration that
/// already ran is refused.
#[tokio::test]
async fn migrate_applies_each_file_once_and_refuses_edits() {
    let dir = std::env::temp_dir().join(common::unique("migrations"));
    std::fs::create_dir_all(dir.join("postgres")).expect("dir");
    std::fs::create_dir_all(dir.join("clickhouse")).expect("dir");
    std::fs::write(
        dir.join("postgres/0001_films.sql"),
        "CREATE TABLE films (id int PRIMARY KEY);",
    )
    .expect("write");
    std::fs::write(
        dir.join("postgres/0002_genres.sql"),
        "CREATE TABLE genres (id int);\nINSERT INTO films VALUES (1);",
    )
    .expect("write");
    std::fs::write(
        dir.join("clickhouse/0001_events.sql"),
        "CREATE TABLE events (id UInt64, at DateTime('UTC'))\nENGINE = MergeTree ORDER BY id;\nINSERT INTO events VALUES (1, now());",
    )
    .expect("write");
    let database = common::unique("cinema_migrate");
    let postgres_url = common::postgres_url(&database);
    let run = || {
        cinema()
            .arg("migrate")
            .arg("--migrations-dir")
            .arg(&dir)
            .args([
                "--postgres-url",
                &postgres_url,
                "--clickhouse-url",
                &common::clickhouse_url(),
            ])
            .args(["--clickhouse-database", &database])
            .output()
            .expect("run cinema migrate")
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("postgres: 2 applied, 0 already applied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("clickhouse: 1 applied, 0 already applied"),
        "{stdout}"
    );

    let second = run();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}");
    assert!(
        stdout.contains("postgres: 0 applied, 2 already applied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("clickhouse: 0 applied, 1 already applied"),
        "{stdout}"
    );

    let (client, connection) = tokio_postgres::connect(&postgres_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let films: i64 = client
        .query_one("SELECT count(*) FROM films", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(films, 1, "the second migration ran exactly once");
    let clickhouse = clickhouse::Client::default()
        .with_url(common::clickhouse_url())
        .with_validation(false)
        .with_database(&database);
    let events: u64 = clickhouse
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .expect("ClickHouse must run on 127.0.0.1:8123 for this test (`scripts/services.sh up`)");
    assert_eq!(events, 1);

    std::fs::write(
        dir.join("postgres/0001_films.sql"),
        "CREATE TABLE films (id bigint PRIMARY KEY);",
    )
    .expect("write");
    let edited = run();
    assert!(!edited.status.success());
    let stderr = String::from_utf8_lossy(&edited.stderr);
    assert!(
        stderr.contains("0001_films.sql was changed after it ran"),
        "{stderr}"
    );

    let _ = clickhouse
        .query(&format!("DROP DATABASE IF EXISTS `{database}`"))
        .execute()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every component of the platform's `spin.toml` imports only what `wit/` allows.
#[test]
fn platform_components_import_only_the_platform_world() {
    let root = common::workspace_root();
    let manifest = cinema_host::manifest::AppManifest::load(&root.join("spin.toml"))
        .expect("spin.toml is valid");
    assert!(!manifest.components.is_empty());
    let mut command = cinema();
    command
        .arg("check-imports")
        .arg("--wit")
        .arg(root.join("wit"));
    for component in manifest.components.values() {
        assert!(
            component.source.exists(),
            "{} is missing: build the components first with `make components`",
            component.source.display()
        );
        command.arg(&component.source);
    }
    let output = command.output().expect("run check-imports");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A component importing an interface outside the world (`spin:sqlite`) is rejected,
/// naming the import; the test fixture passes.
#[test]
fn check_imports_rejects_interfaces_outside_the_platform_world() {
    let wit = common::workspace_root().join("wit");
    let ok = cinema()
        .arg("check-imports")
        .arg("--wit")
        .arg(&wit)
        .arg(common::component_wasm("fixture_probe"))
        .output()
        .expect("run check-imports");
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    let forbidden = cinema()
        .arg("check-imports")
        .arg("--wit")
        .arg(&wit)
        .arg(common::component_wasm("fixture_forbidden_import"))
        .output()
        .expect("run check-imports");
    assert!(!forbidden.status.success());
    let stdout = String::from_utf8_lossy(&forbidden.stdout);
    assert!(stdout.contains("spin:sqlite/sqlite"), "{stdout}");
}
