//! TLS to Postgres, as the URL's `sslmode` asks, for the components' connections (the
//! runtime's `spin:postgres`) and for the host's own (`cinema` commands): verified TLS
//! with `require` and `prefer`, none with `disable`, and no connection to a server whose
//! certificate the host cannot verify.
//!
//! Each test runs its own Postgres on a loopback port that accepts TLS connections only
//! (`hostssl` in `pg_hba.conf`), with a certificate for `127.0.0.1` issued by a test CA;
//! the host trusts that CA (or an impostor's) through `SSL_CERT_FILE`.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{AppOptions, TestApp, spawn_app};
use serde_json::{Value, json};

/// A throwaway Postgres cluster that only takes TLS connections, with its certificates.
struct TlsOnlyPostgres {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl TlsOnlyPostgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(common::unique("cinema_pg_tls"));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        issue_certificates(&dir);
        let bin = postgres_bin_dir();
        let (uid, gid) = postgres_user();
        chown_recursive(&dir, "postgres:postgres");
        let data = dir.join("data");
        run_checked(
            Command::new(bin.join("initdb"))
                .uid(uid)
                .gid(gid)
                .args([
                    "--auth=trust",
                    "--username=postgres",
                    "--no-sync",
                    "--encoding=UTF8",
                ])
                .arg("-D")
                .arg(&data),
            "initdb",
        );
        // TLS connections only: a plain-text connection finds no pg_hba.conf entry.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        let port = common::free_port();
        let server = Command::new(bin.join("postgres"))
            .uid(uid)
            .gid(gid)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "ssl=on", "-c", "fsync=off"])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.pem").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        let cluster = Self { dir, port, server };
        cluster.wait_until_ready(&bin);
        cluster
    }

    fn wait_until_ready(&self, bin: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the TLS-only Postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, sslmode: Option<&str>) -> String {
        let base = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        match sslmode {
            Some(mode) => format!("{base}?sslmode={mode}"),
            None => base,
        }
    }

    /// The CA that issued the server's certificate.
    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// A CA that did not: what a client trusting only it makes of the server is what it
    /// would make of an impostor on the path.
    fn impostor_ca(&self) -> String {
        self.dir.join("impostor-ca.pem").display().to_string()
    }
}

impl Drop for TlsOnlyPostgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, nothing to keep.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_checked(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Debian's Postgres server binaries (`/usr/lib/postgresql/<version>/bin`).
fn postgres_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries in /usr/lib/postgresql (`scripts/services.sh up`)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb under /usr/lib/postgresql")
}

/// The `postgres` system user: Postgres refuses to run as root.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let output = run_checked(Command::new("id").args([flag, "postgres"]), "id postgres");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

fn chown_recursive(dir: &Path, owner: &str) {
    run_checked(Command::new("chown").arg("-R").arg(owner).arg(dir), "chown");
}

/// A test CA, a server certificate for `127.0.0.1` and `localhost` issued by it, and an
/// impostor CA, written into `dir` (EC P-256 keys, valid for two days).
fn issue_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        run_checked(
            Command::new("openssl").current_dir(dir).args(args),
            "openssl",
        )
    };
    for ca in ["ca", "impostor-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=cinema {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ]);
    }
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write the extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("key permissions");
}

/// The runtime fixture app, allowed to reach `postgres`, trusting `ca_file`.
fn app_trusting(postgres: &TlsOnlyPostgres, ca_file: &str) -> TestApp {
    spawn_app(AppOptions::default().env("SSL_CERT_FILE", ca_file).env(
        "SPIN_VARIABLE_OUTBOUND_ALLOWED",
        format!("postgres://127.0.0.1:{}", postgres.port),
    ))
}

/// Whether the probe's connection to `address` is encrypted, or the error it got.
async fn connection_is_tls(app: &TestApp, address: &str) -> (u16, Value) {
    app.post_json(
        "/probe/pg/query",
        json!({
            "statement": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            "address": address,
        }),
    )
    .await
}

fn detail(body: &Value) -> String {
    body["error"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `sslmode=require`, and a URL that says nothing (`prefer`), connect over TLS to a
/// server whose certificate chains to a trusted CA.
#[tokio::test]
async fn runtime_connects_over_verified_tls_when_the_address_asks_for_it() {
    let postgres = TlsOnlyPostgres::start();
    let app = app_trusting(&postgres, &postgres.ca());
    for address in [postgres.url(Some("require")), postgres.url(None)] {
        let (status, body) = connection_is_tls(&app, &address).await;
        assert_eq!(status, 200, "{address}: {body}");
        assert_eq!(body["rows"][0][0]["boolean"], true, "{address}: {body}");
    }
}

/// The attack: a server (or anyone on the path) presenting a certificate the host
/// cannot verify gets no connection, whatever the mode that uses TLS; the host does not
/// fall back to plain text or to unverified TLS.
#[tokio::test]
async fn runtime_refuses_a_server_whose_certificate_it_cannot_verify() {
    let postgres = TlsOnlyPostgres::start();
    let app = app_trusting(&postgres, &postgres.impostor_ca());
    for address in [postgres.url(Some("require")), postgres.url(None)] {
        let (status, body) = connection_is_tls(&app, &address).await;
        assert_ne!(status, 200, "{address}: {body}");
        assert_eq!(
            body["error"]["kind"], "connection_failed",
            "{address}: {body}"
        );
        let detail = detail(&body);
        assert!(detail.contains("TLS"), "{address}: {body}");
        assert!(detail.contains("UnknownIssuer"), "{address}: {body}");
    }
}

/// `sslmode=disable` sends no TLS at all: a server that takes TLS connections only
/// turns it away (pg_hba.conf has no entry for an unencrypted connection).
#[tokio::test]
async fn runtime_sends_no_tls_when_the_address_says_disable() {
    let postgres = TlsOnlyPostgres::start();
    let app = app_trusting(&postgres, &postgres.ca());
    let (status, body) = connection_is_tls(&app, &postgres.url(Some("disable"))).await;
    assert_eq!(
        body["error"]["kind"], "connection_failed",
        "{status} {body}"
    );
    assert!(detail(&body).contains("no encryption"), "{body}");
}

/// The host's own connections (here `cinema migrate`) follow the same rules: verified
/// TLS with a trusted CA, refused with an impostor's, none with `disable`.
#[tokio::test]
async fn host_commands_honour_sslmode_and_verify_the_server() {
    let postgres = TlsOnlyPostgres::start();
    let migrations = common::migrations_dir(&[(
        "postgres/0001_tls_probe.sql",
        "CREATE TABLE tls_probe (id int PRIMARY KEY);",
    )]);
    let clickhouse_database = common::test_database_name();
    // Runs `cinema migrate` against `url` trusting `ca_file`; asserts it succeeds or
    // fails as `succeeds` says and that its output says `says`.
    let migrate = |url: &str, ca_file: &str, succeeds: bool, says: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_cinema"))
            .env("SSL_CERT_FILE", ca_file)
            .arg("migrate")
            .arg("--migrations-dir")
            .arg(&migrations.0)
            .args([
                "--postgres-url",
                url,
                "--clickhouse-url",
                &common::clickhouse_url(),
            ])
            .args(["--clickhouse-database", &clickhouse_database])
            .output()
            .expect("run cinema migrate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.success(), succeeds, "{url}: {text}");
        assert!(text.contains(says), "{url}: {text}");
    };

    let impostor_ca = postgres.impostor_ca();
    let ca = postgres.ca();
    migrate(
        &postgres.url(Some("require")),
        &impostor_ca,
        false,
        "UnknownIssuer",
    );
    migrate(&postgres.url(Some("disable")), &ca, false, "no encryption");
    migrate(
        &postgres.url(Some("require")),
        &ca,
        true,
        "postgres: 1 applied",
    );

    let _ = clickhouse::Client::default()
        .with_url(common::clickhouse_url())
        .query(&format!("DROP DATABASE IF EXISTS `{clickhouse_database}`"))
        .execute()
        .await;
}
