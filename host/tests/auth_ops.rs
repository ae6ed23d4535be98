//! Integration tests of the auth schema and the auth ops commands (`cinema keys ...`,
//! `cinema users create-admin`) against a real, freshly migrated Postgres.

mod common;

use std::process::{Command, Output};

use cinema_domain::token::{AccessClaims, Jwks, TokenVerifier, sign};

fn cinema(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args(args)
        .env("CINEMA_POSTGRES_URL", database_url)
        .output()
        .expect("run cinema")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A fresh database with the platform's real migrations applied.
async fn migrated_database() -> (String, tokio_postgres::Client) {
    let url = common::fresh_database().await;
    common::migrate(&url).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    (url, client)
}

fn jwks(url: &str) -> Jwks {
    serde_json::from_str(&ok(cinema(&["keys", "jwks"], url))).expect("jwks json")
}

async fn private_key(client: &tokio_postgres::Client, kid: &str) -> Vec<u8> {
    client
        .query_one(
            "SELECT private_key FROM auth.signing_keys WHERE kid = $1",
            &[&kid],
        )
        .await
        .expect("key row")
        .get(0)
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        sub: uuid::Uuid::new_v4().to_string(),
        sid: uuid::Uuid::new_v4().to_string(),
        roles: vec![],
        permissions: vec![],
        iat: now,
        exp: now + 900,
        iss: "cinema-auth".into(),
        aud: "cinema".into(),
        act: None,
    }
}

/// The first key signs at once; a rotation publishes the new key immediately, keeps the
/// old one signing until the new one activates, and keeps it in the JWKS afterwards, so
/// tokens signed before the rotation keep verifying.
#[tokio::test]
async fn key_rotation_never_strands_a_live_token() {
    let (url, client) = migrated_database().await;
    let out = ok(cinema(&["keys", "rotate"], &url));
    assert!(out.contains("signing in 0 s"), "{out}");
    let first = jwks(&url);
    assert_eq!(first.keys.len(), 1);
    let old_kid = first.keys[0].kid.clone();
    let now = chrono::Utc::now().timestamp();
    let token = sign(
        &claims(now),
        &old_kid,
        &private_key(&client, &old_kid).await,
    )
    .expect("sign");

    let out = ok(cinema(&["keys", "rotate"], &url));
    assert!(
        out.contains("signing in 300 s") && out.contains(&format!("retiring {old_kid}")),
        "{out}"
    );
    let second = jwks(&url);
    assert_eq!(second.keys.len(), 2, "both keys are published");
    let list = ok(cinema(&["keys", "list"], &url));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&old_kid) && l.contains("signing")),
        "{list}"
    );
    assert!(list.lines().any(|l| l.contains("pending")), "{list}");

    let verifier = TokenVerifier::new(&second, "cinema-auth", "cinema");
    assert!(
        verifier.verify(&token, now).is_ok(),
        "a token signed before the rotation verifies"
    );

    // Emergency rotation: the new key signs at once, the old one is published only for
    // the clock-skew leeway past its last possible token.
    let out = ok(cinema(
        &[
            "keys",
            "rotate",
            "--activate-after-seconds",
            "0",
            "--token-ttl-seconds",
            "0",
        ],
        &url,
    ));
    assert!(out.contains("signing in 0 s"), "{out}");
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE retired_at IS NULL), count(*) FROM auth.signing_keys",
            &[],
        )
        .await
        .expect("count");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 3));
}

/// `create-admin` creates a confirmed admin with an argon2id hash, promotes an existing
/// user without touching the password, and refuses bad input with the field named.
#[tokio::test]
async fn create_admin_creates_then_promotes() {
    let (url, client) = migrated_database().await;
    let run = |email: &str, password: &str| {
        Command::new(env!("CARGO_BIN_EXE_cinema"))
            .args(["users", "create-admin", "--email", email])
            .env("CINEMA_POSTGRES_URL", &url)
            .env("CINEMA_ADMIN_PASSWORD", password)
            .output()
            .expect("run")
    };
    let out = ok(run(" Admin@Cinema.Example ", "s3cure-passw0rd"));
    assert!(out.contains("created admin"), "{out}");
    let row = client
        .query_one(
            "SELECT u.password_hash, u.email_confirmed, array_agg(r.name) FROM auth.users u \
             JOIN auth.user_roles ur ON ur.user_id = u.id JOIN auth.roles r ON r.id = ur.role_id \
             WHERE u.email = 'admin@cinema.example' GROUP BY u.id",
            &[],
        )
        .await
        .expect("admin row");
    let hash: String = row.get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(cinema_domain::password::verify_password("s3cure-passw0rd", &hash).expect("verify"));
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Vec<String>>(2), vec!["admin".to_owned()]);

    let out = ok(run("admin@cinema.example", "another-passw0rd"));
    assert!(out.contains("already existed"), "{out}");
    let unchanged: String = client
        .query_one(
            "SELECT password_hash FROM auth.users WHERE email = 'admin@cinema.example'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(unchanged, hash);

    let weak = run("second@cinema.example", "short");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("password:"),
        "{weak:?}"
    );
    let bad_email = run("not-an-email", "s3cure-passw0rd");
    assert!(!bad_email.status.success());
    assert!(
        String::from_utf8_lossy(&bad_email.stderr).contains("email:"),
        "{bad_email:?}"
    );
}

/// Login history lands in monthly partitions (not the default one), and emails are
/// kept normalized by the database itself.
#[tokio::test]
async fn auth_schema_partitions_history_and_guards_emails() {
    let (_, client) = migrated_database().await;
    let user = uuid::Uuid::new_v4();
    client
        .execute(
            "INSERT INTO auth.users (id, email) VALUES ($1, 'viewer@cinema.example')",
            &[&user],
        )
        .await
        .expect("insert user");
    client
        .execute(
            "INSERT INTO auth.login_history (id, user_id, success, method) VALUES ($1, $2, true, 'password')",
            &[&uuid::Uuid::new_v4(), &user],
        )
        .await
        .expect("insert history");
    let partition: String = client
        .query_one(
            "SELECT tableoid::regclass::text FROM auth.login_history",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert!(partition.starts_with("auth.login_history_2"), "{partition}");
    let error = client
        .execute(
            "INSERT INTO auth.users (id, email) VALUES ($1, 'Upper@Cinema.Example')",
            &[&uuid::Uuid::new_v4()],
        )
        .await
        .expect_err("not normalized");
    assert_eq!(
        error.as_db_error().and_then(|e| e.constraint()),
        Some("users_email_normalized")
    );
    let duplicate = client
        .execute(
            "INSERT INTO auth.users (id, email) VALUES ($1, 'viewer@cinema.example')",
            &[&uuid::Uuid::new_v4()],
        )
        .await
        .expect_err("duplicate");
    assert_eq!(
        duplicate.as_db_error().and_then(|e| e.constraint()),
        Some("users_email_key")
    );
}
