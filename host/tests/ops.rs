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
    let migrations = common::migrations_dir(&[
        (
            "postgres/0001_films.sql",
            "CREATE TABLE films (id int PRIMARY KEY);",
        ),
        (
            "postgres/0002_genres.sql",
            "CREATE TABLE genres (id int);\nINSERT INTO films VALUES (1);",
        ),
        (
            "clickhouse/0001_events.sql",
            "CREATE TABLE events (id UInt64, at DateTime('UTC'))\nENGINE = MergeTree ORDER BY id;\nINSERT INTO events VALUES (1, now());",
        ),
    ]);
    let dir = &migrations.0;
    let database = common::unique("cinema_migrate");
    let postgres_url = common::postgres_url(&database);
    let run = || {
        cinema()
            .arg("migrate")
            .arg("--migrations-dir")
            .arg(dir)
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
}

/// `cinema completions bash` prints a script bash accepts, which completes the
/// subcommands (what `make install-cli` installs into /etc/bash_completion.d).
#[test]
fn bash_completion_completes_the_subcommands() {
    let script = cinema()
        .args(["completions", "bash"])
        .output()
        .expect("run cinema completions bash");
    assert!(script.status.success(), "{script:?}");
    let script = String::from_utf8(script.stdout).expect("utf-8 script");
    // Ask bash itself: load the script, then complete `cinema re` as readline would.
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{script}\nCOMP_WORDS=(cinema re); COMP_CWORD=1; COMP_LINE='cinema re'; \
             COMP_POINT=${{#COMP_LINE}}; _cinema cinema re cinema; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .expect("run bash");
    let words = String::from_utf8_lossy(&completed.stdout);
    assert!(
        completed.status.success(),
        "{words}\n{}",
        String::from_utf8_lossy(&completed.stderr)
    );
    assert_eq!(words.split_whitespace().collect::<Vec<_>>(), ["reindex"]);
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

/// `cinema up --first-run` with the real spin.toml over `database_url`, its public port
/// chosen up front so the catalog fetches the JWKS auth publishes there.
fn start_first_run(database_url: &str, index_dir: &str, extra_args: &[&str]) -> common::TestApp {
    let public_port = common::free_port();
    let internal_port = common::free_port();
    let mut options = common::AppOptions::default()
        .component_databases(database_url)
        .env("CINEMA_POSTGRES_URL", database_url)
        .env(
            "SPIN_VARIABLE_JWKS_URL",
            format!("http://127.0.0.1:{public_port}/.well-known/jwks.json"),
        )
        .env(
            "SPIN_VARIABLE_JWKS_OUTBOUND_HOST",
            format!("http://127.0.0.1:{public_port}"),
        )
        .env(
            "SPIN_VARIABLE_INTERNAL_API_URL",
            format!("http://127.0.0.1:{internal_port}"),
        )
        .arg("--first-run")
        .arg("--index-dir")
        .arg(index_dir);
    for arg in extra_args {
        options = options.arg(*arg);
    }
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{public_port}"));
    options.internal_listen = Some(format!("127.0.0.1:{internal_port}"));
    common::spawn_app(options)
}

/// Waits for the first run's "next:" block and answers all it printed.
async fn first_run_output(app: &common::TestApp) -> String {
    common::TestApp::eventually(std::time::Duration::from_secs(30), || async {
        let lines = app.stdout_lines();
        lines
            .iter()
            .any(|line| line.contains("/api/v1/films/search"))
            .then(|| lines.join("\n"))
    })
    .await
    .expect("the first run prints where to go next")
}

/// The roles claim of an access token (its signature is the platform's business; the
/// test only reads what it says).
fn token_roles(token: &str) -> Vec<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url claims"),
    )
    .expect("JSON claims");
    claims["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|role| role.as_str().map(str::to_owned))
        .collect()
}

async fn count(database_url: &str, query: &str) -> i64 {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    db.query_one(query, &[]).await.expect("count").get(0)
}

/// On an empty, migrated database `cinema up --first-run` ends serving a platform one
/// can use: the printed admin password signs in (an admin token; a wrong password does
/// not), the demo catalogue is searchable with that token, and a second start makes
/// nothing new and prints no password.
#[tokio::test(flavor = "multi_thread")]
async fn first_run_serves_a_usable_platform_and_a_second_start_makes_nothing() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    let index = common::TempDir::new("first_run_index");

    let mut app = start_first_run(&database_url, index.path(), &[]);
    let output = first_run_output(&app).await;
    assert!(output.contains("made signing key ed25519-"), "{output}");
    assert!(
        output.contains("seeded a demo catalogue: 3000 films"),
        "{output}"
    );
    let password = output
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("created admin admin@cinema.local with password ")
        })
        .unwrap_or_else(|| panic!("no admin password printed: {output}"))
        .to_owned();

    // The attack: someone guessing the first admin's password gets nowhere.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            serde_json::json!({"email": "admin@cinema.local", "password": "Admin-pass1"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let token = app.log_in("admin@cinema.local", &password).await;
    assert!(
        token_roles(&token).iter().any(|role| role == "admin"),
        "the first admin's token carries the admin role"
    );
    // The printed curl: a search of the demo catalogue with that token.
    let found = common::TestApp::eventually(std::time::Duration::from_secs(30), || async {
        let response = app
            .http
            .get(app.url("/api/v1/films/search?query=star&page_size=3"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?;
        // The public search answers a bare array of films, as the service it replaces.
        let body: serde_json::Value = response.json().await.ok()?;
        let items = body.as_array()?;
        (!items.is_empty()).then_some(items.len())
    })
    .await;
    assert_eq!(found, Some(3), "the demo catalogue is searchable");
    assert!(app.terminate_within(std::time::Duration::from_secs(30)));

    let app = start_first_run(&database_url, index.path(), &[]);
    let output = first_run_output(&app).await;
    assert!(output.contains("nothing to make"), "{output}");
    assert!(
        !output.contains(&password),
        "the password is printed once: {output}"
    );
    assert_eq!(
        count(&database_url, "SELECT count(*) FROM auth.signing_keys").await,
        1
    );
    assert_eq!(
        count(&database_url, "SELECT count(*) FROM content.film").await,
        3000
    );
    assert_eq!(
        count(&database_url, "SELECT count(*) FROM auth.users").await,
        1
    );
    app.log_in("admin@cinema.local", &password).await;
}

/// Runs `cinema up` with `args` over `database_url` and expects it to refuse to start:
/// answers its stderr.
fn refused_start(database_url: &str, args: &[&str]) -> String {
    let mut child = cinema()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--from",
            common::workspace_root()
                .join("spin.toml")
                .to_str()
                .expect("utf-8"),
        ])
        .args(args)
        .env("CINEMA_POSTGRES_URL", database_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cinema up");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cinema") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("cinema up {args:?} kept running; it should have refused to start");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "{stderr}");
    stderr
}

/// `cinema up --production` will not start on a database without an operator-made
/// signing key (and will not make one: `--first-run` is refused with it); after
/// `cinema keys rotate` it starts.
#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_to_start_without_an_operator_made_signing_key() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;

    let stderr = refused_start(&database_url, &["--production"]);
    assert!(stderr.contains("cinema keys rotate"), "{stderr}");
    let stderr = refused_start(&database_url, &["--production", "--first-run"]);
    assert!(stderr.contains("--first-run"), "{stderr}");
    assert_eq!(
        count(&database_url, "SELECT count(*) FROM auth.signing_keys").await,
        0,
        "a refused start makes no key"
    );

    common::rotate_keys(&database_url, &[]);
    let app = common::spawn_app(
        common::AppOptions::default()
            .env("CINEMA_POSTGRES_URL", &database_url)
            .arg("--production"),
    );
    app.assert_running("after a key was made");
}

/// The harness cleans up after tests: databases made by a test process that has ended
/// (here a process that ran and exited) are dropped by the sweep, in Postgres and in
/// ClickHouse, and those of a running one (this process) are kept.
#[tokio::test]
async fn test_databases_of_ended_test_processes_are_swept_and_running_ones_kept() {
    let mut ended = Command::new("true").spawn().expect("run true");
    let ended_pid = ended.id();
    ended.wait().expect("true exits");
    let ours = common::test_database_name();
    let theirs = ours.replacen(
        &format!("_p{}_", std::process::id()),
        &format!("_p{ended_pid}_"),
        1,
    );
    assert_ne!(ours, theirs);
    let (postgres, connection) =
        tokio_postgres::connect(&common::postgres_url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to postgres");
    tokio::spawn(connection);
    let clickhouse = clickhouse::Client::default()
        .with_url(common::clickhouse_url())
        .with_validation(false);
    for name in [&ours, &theirs] {
        postgres
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a postgres database");
        clickhouse
            .query(&format!("CREATE DATABASE {name}"))
            .execute()
            .await
            .expect("create a clickhouse database");
    }

    common::sweep_test_databases().await;

    for (name, kept) in [(&ours, true), (&theirs, false)] {
        let in_postgres = postgres
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[name])
            .await
            .expect("list postgres databases")
            .is_some();
        let in_clickhouse: u64 = clickhouse
            .query("SELECT count() FROM system.databases WHERE name = ?")
            .bind(name.as_str())
            .fetch_one()
            .await
            .expect("list clickhouse databases");
        assert_eq!(
            (in_postgres, in_clickhouse == 1),
            (kept, kept),
            "{name}: kept in (postgres, clickhouse)"
        );
    }
    postgres
        .batch_execute(&format!("DROP DATABASE {ours}"))
        .await
        .expect("drop ours");
    clickhouse
        .query(&format!("DROP DATABASE {ours}"))
        .execute()
        .await
        .expect("drop ours");
}

/// `cinema up --signing-key-encryption-key-file` (a systemd credential, a mounted
/// secret) hands auth the key-encryption key from a file: keys sealed with it sign
/// logins although the environment holds another key (which could not open them); a
/// malformed or missing file stops the start, naming the file and never the contents.
#[tokio::test]
async fn cinema_up_reads_the_key_encryption_key_from_a_file() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    let kek = common::run_cinema(&["keys", "new-kek"]);
    let kek = kek.lines().last().expect("a key").trim().to_owned();
    let secrets = common::TempDir::new("secrets");
    let file = format!("{}/signing-kek", secrets.path());
    std::fs::write(&file, format!("{kek}\n")).expect("write the key file");
    common::rotate_keys(&database_url, &["--key-encryption-key-file", &file]);

    let mut options = common::AppOptions::default()
        .component_databases(&database_url)
        .arg("--signing-key-encryption-key-file")
        .arg(&file);
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    let app = common::spawn_app(options);
    app.sign_up_and_log_in(
        &format!("{}@example.com", common::unique("sealed")),
        "correct horse battery staple",
    )
    .await;
    drop(app);

    std::fs::write(&file, "not-a-key-encryption-key").expect("spoil the key file");
    let stderr = refused_start(&database_url, &["--signing-key-encryption-key-file", &file]);
    assert!(
        stderr.contains(&file) && stderr.contains("cinema keys new-kek"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-a-key-encryption-key"), "{stderr}");
    let stderr = refused_start(
        &database_url,
        &[
            "--signing-key-encryption-key-file",
            "/nonexistent/signing-kek",
        ],
    );
    assert!(
        stderr.contains("failed to read the key-encryption key file /nonexistent/signing-kek"),
        "{stderr}"
    );
}
