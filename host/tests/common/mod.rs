//! Test harness: starts the real `cinema` binary on loopback ports chosen by the OS and
//! gives tests a client for it. Services (Postgres, Redis) come from the environment
//! with loopback defaults; a missing one fails the test loudly.

#![allow(dead_code)]

pub mod kafka;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spin.toml")
}

/// A built component; panics with the fix when it is missing.
pub fn component_wasm(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("build/components")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the components first with `make components`",
        path.display()
    );
    path
}

/// The URL of `database` on the test Postgres, without TLS: the local Postgres offers
/// TLS with a self-signed certificate, which the host (like Spin) would refuse to trust.
pub fn postgres_url(database: &str) -> String {
    let base = std::env::var("CINEMA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{base}/{database}?sslmode=disable")
}

/// The database name of a `postgres://…/name[?options]` URL.
pub fn database_name(database_url: &str) -> &str {
    let path = database_url.rsplit('/').next().expect("a database name");
    path.split('?').next().unwrap_or(path)
}

/// The Postgres role each edge component connects as (migration 0010) and the
/// `spin.toml` variable holding its URL.
pub const COMPONENT_DATABASE_ROLES: [(&str, &str); 3] = [
    ("SPIN_VARIABLE_AUTH_DATABASE_URL", "cinema_auth"),
    ("SPIN_VARIABLE_ADMIN_DATABASE_URL", "cinema_admin"),
    ("SPIN_VARIABLE_UGC_DATABASE_URL", "cinema_ugc"),
];

/// `database_url` (any `postgres://[user[:password]@]host…` URL) with `role` as its user
/// and no password: the component roles log in where pg_hba.conf trusts loopback.
pub fn as_role(database_url: &str, role: &str) -> String {
    let (scheme, rest) = database_url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let address = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{role}@{address}{path}")
}

/// The components' database variables for the platform database at `database_url`:
/// each component connects as its own least-privilege role, as in production.
pub fn component_database_variables(database_url: &str) -> Vec<(&'static str, String)> {
    COMPONENT_DATABASE_ROLES
        .iter()
        .map(|(variable, role)| (*variable, as_role(database_url, role)))
        .collect()
}

pub fn redis_url() -> String {
    std::env::var("CINEMA_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn clickhouse_url() -> String {
    std::env::var("CINEMA_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A client of the test ClickHouse's `database`.
pub fn clickhouse(database: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_database(database)
        .with_validation(false)
}

/// `(rows after folding repeats, distinct event ids)` in `database`'s `ugc_events`
/// where `filter` (an SQL condition) holds: equal and as many as were sent when every
/// event landed exactly once.
pub async fn ugc_event_counts(database: &str, filter: &str) -> (u64, u64) {
    let folded: u64 = clickhouse(database)
        .query(&format!(
            "SELECT count() FROM ugc_events FINAL WHERE {filter}"
        ))
        .fetch_one()
        .await
        .expect("count final");
    let distinct: u64 = clickhouse(database)
        .query(&format!(
            "SELECT uniqExact(event_id) FROM ugc_events WHERE {filter}"
        ))
        .fetch_one()
        .await
        .expect("uniqExact");
    (folded, distinct)
}

/// A unique, SQL-safe name for per-test databases, keys and tables.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Prefix of every database a test creates, in Postgres and ClickHouse; the creating
/// process's id follows (`cinema_test_p<pid>_<uuid>`), so what a finished or crashed
/// test process left behind can be told from what a running one uses.
const TEST_DATABASE_PREFIX: &str = "cinema_test_";

/// A name for a test database, Postgres's or ClickHouse's, owned by this process.
pub fn test_database_name() -> String {
    unique(&format!("{TEST_DATABASE_PREFIX}p{}", std::process::id()))
}

/// Whether a test database `name` may still be in use: its creating process runs.
/// Names without a process id (older harnesses) belong to no running test.
fn test_database_in_use(name: &str) -> bool {
    name.strip_prefix(TEST_DATABASE_PREFIX)
        .and_then(|rest| rest.strip_prefix('p'))
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Drops the Postgres and ClickHouse test databases no running test process uses:
/// those of earlier test binaries of this run and of crashed runs (every test binary
/// sweeps once, on its first database; `make test` sweeps again at the end). Errors are
/// ignored: the sweep only saves disk.
pub async fn sweep_test_databases() {
    let Ok((client, connection)) =
        tokio_postgres::connect(&postgres_url("postgres"), tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(connection);
    let like = format!("{}%", TEST_DATABASE_PREFIX.replace('_', "\\_"));
    if let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&like],
        )
        .await
    {
        for name in rows.iter().map(|row| row.get::<_, String>(0)) {
            if !test_database_in_use(&name) {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        }
    }
    let clickhouse = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_validation(false);
    if let Ok(names) = clickhouse
        .query("SELECT name FROM system.databases WHERE startsWith(name, ?)")
        .bind(TEST_DATABASE_PREFIX)
        .fetch_all::<String>()
        .await
    {
        for name in names {
            if !test_database_in_use(&name) {
                let _ = clickhouse
                    .query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute()
                    .await;
            }
        }
    }
}

/// Creates a fresh database and returns its URL (the first one of a test process
/// sweeps the leftovers of finished ones first: [`sweep_test_databases`]).
pub async fn fresh_database() -> String {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(sweep_test_databases).await;
    let name = test_database_name();
    let (client, connection) =
        tokio_postgres::connect(&postgres_url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("Postgres must run on 127.0.0.1:5432 for this test (`scripts/services.sh up`)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    postgres_url(&name)
}

/// Applies the platform's real migrations to `database_url`; ClickHouse gets a
/// throwaway database of its own, dropped afterwards.
pub async fn migrate(database_url: &str) {
    let clickhouse_database = test_database_name();
    let output = Command::new(env!("CARGO_BIN_EXE_cinema"))
        .arg("migrate")
        .arg("--migrations-dir")
        .arg(workspace_root().join("migrations"))
        .args([
            "--postgres-url",
            database_url,
            "--clickhouse-url",
            &clickhouse_url(),
        ])
        .args(["--clickhouse-database", &clickhouse_database])
        .output()
        .expect("run cinema migrate");
    let _ = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .query(&format!("DROP DATABASE IF EXISTS `{clickhouse_database}`"))
        .execute()
        .await;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh, migrated database with an active signing key: `(database_url, jwks)`, the
/// JWKS for components that check tokens from a variable.
pub async fn platform_database() -> (String, String) {
    let database_url = fresh_database().await;
    migrate(&database_url).await;
    rotate_keys(&database_url, &[]);
    let jwks = run_cinema(&["keys", "jwks", "--postgres-url", &database_url]);
    (database_url, jwks)
}

/// [`platform_database`] with its ClickHouse database kept (for tests of the UGC
/// pipeline): `(database_url, clickhouse_database, jwks)`.
pub async fn platform_database_with_clickhouse() -> (String, String, String) {
    let database_url = fresh_database().await;
    let clickhouse_database = migrate_with_clickhouse(&database_url);
    rotate_keys(&database_url, &[]);
    let jwks = run_cinema(&["keys", "jwks", "--postgres-url", &database_url]);
    (database_url, clickhouse_database, jwks)
}

/// Empties Redis database `db`, a test's own (the catalog cache is keyed by index
/// version, which tests sharing a database would mix up).
pub async fn empty_redis_database(db: u8) {
    let client = redis::Client::open(format!("{}/{db}", redis_url())).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 (`scripts/services.sh up`)");
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut connection)
        .await
        .expect("flush this test's redis database");
}

/// Grants the role `role_id` to the user with `email`, straight in Postgres (tokens
/// issued after this carry it).
pub async fn grant_role(database_url: &str, email: &str, role_id: &str) {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    let granted = db
        .execute(
            "INSERT INTO auth.user_roles (user_id, role_id)
             SELECT id, $2::text::uuid FROM auth.users WHERE email = $1",
            &[&email, &role_id],
        )
        .await
        .expect("grant a role");
    assert_eq!(granted, 1, "no user {email} to grant {role_id}");
}

/// Applies the real migrations to `database_url` and to a fresh ClickHouse database,
/// which is kept (for tests of the UGC pipeline); returns its name.
pub fn migrate_with_clickhouse(database_url: &str) -> String {
    let clickhouse_database = test_database_name();
    run_cinema(&[
        "migrate",
        "--migrations-dir",
        workspace_root()
            .join("migrations")
            .to_str()
            .expect("utf-8 path"),
        "--postgres-url",
        database_url,
        "--clickhouse-url",
        &clickhouse_url(),
        "--clickhouse-database",
        &clickhouse_database,
    ]);
    clickhouse_database
}

/// Runs `cinema` with `args`, asserts success and returns its stdout.
pub fn run_cinema(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args(args)
        .output()
        .expect("run cinema");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cinema {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `cinema keys rotate` with extra `args` against `database_url`.
pub fn rotate_keys(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args(["keys", "rotate", "--postgres-url", database_url])
        .args(args)
        .env("CINEMA_SIGNING_KEY_ENCRYPTION_KEY", TEST_KEK)
        .output()
        .expect("run cinema keys rotate");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The key-encryption key test signing keys are sealed with (`rotate_keys`) and test
/// apps open them with.
pub const TEST_KEK: &str = "7e57000000000000000000000000000000000000000000000000000000005eed";

/// The internal API's credential every test app runs with (tests query the internal
/// API directly with it).
pub const INTERNAL_TOKEN: &str = "test-internal-credential";
/// The header it goes in.
pub const INTERNAL_TOKEN_HEADER: &str = "x-cinema-internal-token";

/// A running `cinema up`.
pub struct TestApp {
    /// Behind a lock so a shared `&TestApp` can ask whether it still runs.
    child: std::sync::Mutex<Child>,
    pub base: String,
    pub internal: String,
    pub http: reqwest::Client,
    /// Every line it has printed on stdout so far.
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _runtime_config: Option<tempfile_path::TempFile>,
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Options for [`spawn_app`].
#[derive(Default, Clone)]
pub struct AppOptions {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub runtime_config: Option<String>,
    pub manifest: Option<PathBuf>,
    /// Public address; a free port chosen by the OS when `None`.
    pub listen: Option<String>,
    /// Internal API address (`127.0.0.1:0` unless a component must know it).
    pub internal_listen: Option<String>,
}

impl AppOptions {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }
    /// Points every component at the platform database `database_url`, each as its
    /// own role ([`component_database_variables`]).
    pub fn component_databases(mut self, database_url: &str) -> Self {
        for (variable, url) in component_database_variables(database_url) {
            self.env.push((variable.to_owned(), url));
        }
        self
    }
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    pub fn runtime_config(mut self, toml: impl Into<String>) -> Self {
        self.runtime_config = Some(toml.into());
        self
    }
}

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999), so no
/// outgoing connection of a parallel test (Postgres, Kafka, ClickHouse clients) and no
/// `bind(…:0)` can take the port between the moment it is picked and the moment the
/// app binds it; above the fixed ports of the local services.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port that is free and that nothing else in this process will be handed,
/// for apps that must know their own address before they start (their JWKS URL points
/// at themselves, a component's variable names the internal API).
///
/// Ports are taken in turn from [`PICKED_PORTS`], starting at an offset drawn from the
/// process id and the clock, so two test processes rarely walk the same ports and one
/// process never hands out a port twice. The OS's own `127.0.0.1:0` picks from the
/// ephemeral range, where an outgoing connection may grab it before the app binds.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PICKED_PORTS.end - PICKED_PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PICKED_PORTS.start + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PICKED_PORTS:?}")
}

/// Starts `cinema up` and waits for its "serving" line.
pub fn spawn_app(options: AppOptions) -> TestApp {
    let manifest = options.manifest.clone().unwrap_or_else(fixture_manifest);
    let mut command = Command::new(env!("CARGO_BIN_EXE_cinema"));
    command
        .arg("up")
        .arg("--from")
        .arg(&manifest)
        .args([
            "--listen",
            options.listen.as_deref().unwrap_or("127.0.0.1:0"),
        ])
        .args([
            "--internal-listen",
            options.internal_listen.as_deref().unwrap_or("127.0.0.1:0"),
        ])
        .args(&options.args)
        .env("SPIN_VARIABLE_SECRET_TOKEN", "s3cret-value")
        .env("CINEMA_INTERNAL_API_TOKEN", INTERNAL_TOKEN)
        .env("CINEMA_SIGNING_KEY_ENCRYPTION_KEY", TEST_KEK)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut runtime_config = None;
    if let Some(toml) = &options.runtime_config {
        let path = std::env::temp_dir().join(format!("{}.toml", unique("runtime_config")));
        std::fs::write(&path, toml).expect("write runtime config");
        command.arg("--runtime-config-file").arg(&path);
        runtime_config = Some(tempfile_path::TempFile(path));
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn cinema");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let printed_by_reader = printed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("cinema: serving") {
                let _ = tx.send(line.clone());
            }
            println!("[cinema stdout] {line}");
            printed_by_reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
        println!("[cinema stdout] closed");
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            panic!(
                "cinema did not start within 60 s (exit status: {status:?}); see its stderr above"
            );
        }
    };
    // "cinema: serving NAME on http://ADDR (internal http://ADDR)"
    let mut urls = line
        .split_whitespace()
        .filter(|w| w.contains("http://"))
        .map(|w| w.trim_start_matches('(').trim_end_matches(')').to_owned());
    let base = urls.next().expect("public url");
    let internal = urls.next().expect("internal url");
    TestApp {
        child: std::sync::Mutex::new(child),
        base,
        internal,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        stdout: printed,
        _runtime_config: runtime_config,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The lines it has printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches cinema")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request reaches cinema");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Sends `method path` with an optional bearer `token` and JSON `body`; answers the
    /// status and the JSON body (`null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches cinema");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Signs up `email` with the auth component and logs in; returns the access token.
    pub async fn sign_up_and_log_in(&self, email: &str, password: &str) -> String {
        let credentials = serde_json::json!({"email": email, "password": password});
        let signup = self
            .http
            .post(self.url("/api/v1/auth/signup"))
            .json(&credentials)
            .send()
            .await
            .expect("signup");
        assert_eq!(signup.status(), 201, "{:?}", signup.text().await);
        self.log_in(email, password).await
    }

    /// Logs `email` in (200 expected); returns the access token.
    pub async fn log_in(&self, email: &str, password: &str) -> String {
        self.log_in_for_pair(email, password).await.0
    }

    /// Logs `email` in (200 expected); returns the access and the refresh token.
    pub async fn log_in_for_pair(&self, email: &str, password: &str) -> (String, String) {
        let (status, login) = self
            .post_json(
                "/api/v1/auth/login",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login of {email}: {login}");
        let token = |name: &str| {
            login[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {login}"))
                .to_owned()
        };
        (token("access_token"), token("refresh_token"))
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns
    /// whether it did.
    pub fn terminate_within(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.exit_status().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the process at once (SIGKILL: no shutdown of any kind) and reaps it.
    pub fn kill(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How the process ended, once it has (`None` while it runs).
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_wait()
            .ok()
            .flatten()
    }

    /// Panics unless the process still runs, saying how it ended.
    pub fn assert_running(&self, when: &str) {
        if let Some(status) = self.exit_status() {
            panic!("cinema exited {when}: {status}; its stderr is above");
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .id()
    }

    /// The value of one series of the internal API's Prometheus text, written as it
    /// appears there (`cinema_etl_catch_ups_total`,
    /// `cinema_kafka_assigned_partitions{group="g"}`); `None` when absent or unreachable.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.internal))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Polls `check` until it returns `Some` or the deadline passes.
    pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(value) = check().await {
                return Some(value);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A loopback TCP proxy whose connections can be cut and restored, to take a service
/// (Postgres, ClickHouse) away from one client of it without stopping it for others.
pub struct CuttableProxy {
    pub port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CuttableProxy {
    /// A proxy to `target` on a port it binds at once (picked as [`free_port`] picks,
    /// but never released between the pick and the bind).
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = loop {
            // A port another process takes between the pick and the bind: pick again.
            if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", free_port())).await {
                break listener;
            }
        };
        let mut proxy = Self {
            port: listener.local_addr().expect("proxy address").port(),
            target,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    /// Accepts again on the same port.
    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind proxy port");
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropping this task drops the set, which aborts every proxied connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every open connection.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// A folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway migrations folder for `cinema migrate --migrations-dir`: `postgres/` and
/// `clickhouse/` holding `files` (paths relative to the folder, SQL), removed on drop.
pub fn migrations_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new("migrations");
    for kind in ["postgres", "clickhouse"] {
        std::fs::create_dir_all(dir.0.join(kind)).expect("create a migrations folder");
    }
    for (path, sql) in files {
        std::fs::write(dir.0.join(path), sql).expect("write a migration");
    }
    dir
}
