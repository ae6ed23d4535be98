//! The content schema (migrations/postgres/0002_content.sql) on a real Postgres: its
//! rules, `modified` kept by the database, and the change notifications the ETL reads.

mod common;

use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::AsyncMessage;

async fn connect(
    url: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = tx.send(notification.payload().to_owned());
            }
        }
    });
    (client, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let payload = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification within 5 s")
        .expect("channel open");
    serde_json::from_str(&payload).expect("JSON payload")
}

/// Every content change notifies `content_changes`; link changes move the film's
/// `modified`; updates keep `modified` current.
#[tokio::test]
async fn content_changes_notify_and_keep_modified() {
    let url = common::fresh_database().await;
    common::migrate(&url).await;
    let (db, mut changes) = connect(&url).await;
    db.batch_execute("LISTEN content_changes")
        .await
        .expect("listen");

    let film = uuid::Uuid::new_v4();
    let genre = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO content.genre (id, name) VALUES ($1, 'Драма')",
        &[&genre],
    )
    .await
    .expect("genre");
    assert_eq!(
        next(&mut changes).await,
        serde_json::json!({"table": "genre", "id": genre, "op": "INSERT"})
    );
    db.execute(
        "INSERT INTO content.film (id, title, rating, creation_date) VALUES ($1, 'Сталкер', 8.1, '1979-05-25')",
        &[&film],
    )
    .await
    .expect("film");
    assert_eq!(next(&mut changes).await["table"], "film");
    let before: chrono::DateTime<chrono::Utc> = db
        .query_one("SELECT modified FROM content.film WHERE id = $1", &[&film])
        .await
        .expect("row")
        .get(0);

    db.execute(
        "INSERT INTO content.film_genre (id, film_id, genre_id) VALUES ($1, $2, $3)",
        &[&uuid::Uuid::new_v4(), &film, &genre],
    )
    .await
    .expect("link");
    let change = next(&mut changes).await;
    assert_eq!(
        (change["table"].as_str(), change["op"].as_str()),
        (Some("film"), Some("UPDATE")),
        "{change}"
    );
    let after: chrono::DateTime<chrono::Utc> = db
        .query_one("SELECT modified FROM content.film WHERE id = $1", &[&film])
        .await
        .expect("row")
        .get(0);
    assert!(after > before, "a new link moves the film's modified");

    db.execute("DELETE FROM content.film WHERE id = $1", &[&film])
        .await
        .expect("delete");
    let mut deleted = false;
    for _ in 0..3 {
        let change = next(&mut changes).await;
        if change == serde_json::json!({"table": "film", "id": film, "op": "DELETE"}) {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "a deleted film is announced");
    let links: i64 = db
        .query_one("SELECT count(*) FROM content.film_genre", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(links, 0, "links go with their film");
}

/// The schema refuses ratings outside 0-10, unknown types, access levels and roles.
#[tokio::test]
async fn content_rules_are_enforced_by_the_database() {
    let url = common::fresh_database().await;
    common::migrate(&url).await;
    let (db, _) = connect(&url).await;
    for (statement, constraint) in [
        (
            "INSERT INTO content.film (id, title, rating) VALUES ($1, 'x', 10.5)",
            "film_rating_range",
        ),
        (
            "INSERT INTO content.film (id, title, type) VALUES ($1, 'x', 'cartoon')",
            "film_type_known",
        ),
        (
            "INSERT INTO content.film (id, title, access) VALUES ($1, 'x', 'vip')",
            "film_access_known",
        ),
        (
            "INSERT INTO content.film (id, title) VALUES ($1, '  ')",
            "film_title_not_blank",
        ),
    ] {
        let error = db
            .execute(statement, &[&uuid::Uuid::new_v4()])
            .await
            .expect_err(statement);
        assert_eq!(
            error.as_db_error().and_then(|e| e.constraint()),
            Some(constraint),
            "{statement}"
        );
    }
    let film = uuid::Uuid::new_v4();
    let person = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO content.film (id, title) VALUES ($1, 'Solaris')",
        &[&film],
    )
    .await
    .expect("film");
    db.execute(
        "INSERT INTO content.person (id, full_name) VALUES ($1, 'Andrei Tarkovsky')",
        &[&person],
    )
    .await
    .expect("person");
    let error = db
        .execute(
            "INSERT INTO content.film_person (id, film_id, person_id, role) VALUES ($1, $2, $3, 'producer')",
            &[&uuid::Uuid::new_v4(), &film, &person],
        )
        .await
        .expect_err("unknown role");
    assert_eq!(
        error.as_db_error().and_then(|e| e.constraint()),
        Some("film_person_role_known")
    );
}

/// `cinema seed` is deterministic and realistic: every film has genres and a director,
/// ratings cluster high, some people appear in many films, some films are paid.
#[tokio::test]
async fn seed_is_deterministic_and_realistic() {
    let url = common::fresh_database().await;
    common::migrate(&url).await;
    let (db, _) = connect(&url).await;
    let seed = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
            .args(["seed", "--films", "3000", "--postgres-url", &url])
            .output()
            .expect("run seed");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("seeded 3000 films"));
    };
    seed();
    let fingerprint = "SELECT md5(string_agg(id::text || title || coalesce(rating::text, ''), ',' ORDER BY id)) FROM content.film";
    let first: String = db
        .query_one(fingerprint, &[])
        .await
        .expect("fingerprint")
        .get(0);
    seed();
    let second: String = db
        .query_one(fingerprint, &[])
        .await
        .expect("fingerprint")
        .get(0);
    assert_eq!(first, second, "the same N gives the same rows");

    let row = db
        .query_one(
            "SELECT count(*), min(rating)::float8, max(rating)::float8, avg(rating)::float8, \
                    (count(*) FILTER (WHERE access = 'subscription'))::float8 / count(*), \
                    count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM content.film_genre g WHERE g.film_id = f.id)), \
                    count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM content.film_person p WHERE p.film_id = f.id AND p.role = 'director')) \
             FROM content.film f",
            &[],
        )
        .await
        .expect("stats");
    assert_eq!(row.get::<_, i64>(0), 3000);
    assert!(row.get::<_, f64>(1) >= 0.0 && row.get::<_, f64>(2) <= 10.0);
    let average = row.get::<_, f64>(3);
    assert!((5.5..=7.5).contains(&average), "average rating {average}");
    let paid = row.get::<_, f64>(4);
    assert!(
        (0.1..=0.3).contains(&paid),
        "share of subscription films {paid}"
    );
    assert_eq!(
        (row.get::<_, i64>(5), row.get::<_, i64>(6)),
        (0, 0),
        "every film has a genre and a director"
    );
    let busiest: i64 = db
        .query_one("SELECT max(n) FROM (SELECT count(*) AS n FROM content.film_person GROUP BY person_id) t", &[])
        .await
        .expect("busiest")
        .get(0);
    assert!(busiest >= 20, "someone appears in many films ({busiest})");
    let russian: i64 = db
        .query_one(
            "SELECT count(*) FROM content.person WHERE full_name ~ '[А-Яа-яЁё]'",
            &[],
        )
        .await
        .expect("names")
        .get(0);
    assert!(russian > 0, "Russian names are in the set");
}
