//! The UGC write path end to end: the ugc component (token, validation, idempotency)
//! → the host's intake → Kafka (tansu) → the ugc-loader → ClickHouse. Each test has
//! its own topic, consumer group, spool and ClickHouse database.

mod common;

use std::time::Duration;

use common::kafka::PrivateKafka;
use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use serde_json::{Value, json};

const FILM: &str = "30000000-0000-4000-8000-000000000001";
const PASSWORD: &str = "correct horse battery staple";

/// Everything one test's platform needs, so it can be started again.
struct Platform {
    database_url: String,
    clickhouse_database: String,
    jwks: String,
    topic: String,
    group: String,
    spool: TempDir,
    brokers: String,
    /// Where the loader reaches ClickHouse (a proxy in the outage test).
    loader_clickhouse_url: String,
    internal_port: u16,
    /// Spin variables that replace the defaults (e.g. a proxied `DATABASE_URL`).
    component_overrides: Vec<(&'static str, String)>,
}

impl Platform {
    async fn new(brokers: &str) -> Self {
        let (database_url, clickhouse_database, jwks) =
            common::platform_database_with_clickhouse().await;
        Self {
            database_url,
            clickhouse_database,
            jwks,
            topic: common::unique("ugc_events"),
            group: common::unique("ugc_loader"),
            spool: TempDir::new("spool"),
            brokers: brokers.to_owned(),
            loader_clickhouse_url: common::clickhouse_url(),
            internal_port: free_port(),
            component_overrides: Vec::new(),
        }
    }

    fn start(&self, extra_args: &[&str]) -> TestApp {
        let mut options = AppOptions::default()
            .component_databases(&self.database_url)
            .env("SPIN_VARIABLE_JWKS", &self.jwks)
            .env(
                "SPIN_VARIABLE_INTERNAL_API_URL",
                format!("http://127.0.0.1:{}", self.internal_port),
            )
            .args_from(&[
                "--kafka-brokers",
                &self.brokers,
                "--ugc-topic",
                &self.topic,
                "--ugc-loader-group",
                &self.group,
                "--spool-dir",
                self.spool.path(),
                "--clickhouse-url",
                &self.loader_clickhouse_url,
                "--clickhouse-database",
                &self.clickhouse_database,
                "--kafka-delivery-timeout-ms",
                "1500",
                "--ugc-postgres-url",
                &self.database_url,
                "--ugc-read-model-group",
                &format!("{}_read_model", self.group),
            ])
            .args_from(extra_args);
        for (name, value) in &self.component_overrides {
            options = options.env(name, value.clone());
        }
        options.manifest = Some(common::workspace_root().join("spin.toml"));
        options.internal_listen = Some(format!("127.0.0.1:{}", self.internal_port));
        spawn_app(options)
    }

    fn clickhouse(&self) -> clickhouse::Client {
        common::clickhouse(&self.clickhouse_database)
    }

    /// `(rows after folding repeats, distinct event ids)` in `ugc_events`.
    async fn counts(&self, filter: &str) -> (u64, u64) {
        common::ugc_event_counts(&self.clickhouse_database, filter).await
    }

    /// Waits until ClickHouse holds exactly `expected` events matching `filter`.
    async fn wait_for_rows(&self, filter: &str, expected: u64, within: Duration) {
        let mut last = (0, 0);
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            last = self.counts(filter).await;
            if last == (expected, expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "expected {expected} events ({filter}) in ClickHouse within {within:?}, found {last:?}"
        );
    }
}

impl AppOptionsExt for AppOptions {
    fn args_from(mut self, args: &[&str]) -> Self {
        for arg in args {
            self = self.arg(*arg);
        }
        self
    }
}

trait AppOptionsExt {
    fn args_from(self, args: &[&str]) -> Self;
}

async fn user_token(app: &TestApp) -> (String, String) {
    let email = format!("{}@example.com", common::unique("viewer"));
    let token = app.sign_up_and_log_in(&email, PASSWORD).await;
    let (_, me) = {
        let response = app
            .http
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("me");
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    };
    let id = me["id"].as_str().expect("user id").to_owned();
    (token, id)
}

/// The manager role, which grants `analytics:read` (migrations/postgres/0001_auth.sql).
const MANAGER_ROLE: &str = "00000000-0000-4000-8000-000000000002";

/// A user granted the manager role in Postgres, then logged in again: a token with
/// `analytics:read`.
async fn analyst_token(app: &TestApp, database_url: &str) -> String {
    let email = format!("{}@example.com", common::unique("analyst"));
    app.sign_up_and_log_in(&email, PASSWORD).await;
    common::grant_role(database_url, &email, MANAGER_ROLE).await;
    let (status, login) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    login["access_token"].as_str().expect("token").to_owned()
}

/// A loopback proxy in front of `url`'s `127.0.0.1:port`, and `url` with the proxy's
/// port in its place.
async fn proxied(url: &str, port: u16) -> (common::CuttableProxy, String) {
    let proxy =
        common::CuttableProxy::start(format!("127.0.0.1:{port}").parse().expect("address")).await;
    let through = url.replacen(&format!(":{port}"), &format!(":{}", proxy.port), 1);
    assert_ne!(through, url, "{url} has no :{port}");
    (proxy, through)
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("request reaches cinema");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn heartbeats(count: usize, from: u32) -> Value {
    Value::Array(
        (0..count as u32)
            .map(|i| json!({"type": "view_progress", "film_id": FILM, "position_s": from + i, "duration_s": 86400}))
            .collect(),
    )
}

/// Every kind of write is accepted with 202 and lands in ClickHouse once: a request
/// repeated with its Idempotency-Key is accepted again and stored once.
#[tokio::test]
async fn writes_reach_clickhouse_once_even_when_repeated() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;

    let (status, body) = send(
        &app,
        post.clone(),
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(100, 0)),
        Some("chunk-1"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["event_ids"].as_array().map(Vec::len), Some(100));
    let (status, again) = send(
        &app,
        post.clone(),
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(100, 0)),
        Some("chunk-1"),
    )
    .await;
    assert_eq!(status, 202, "a repeat is accepted again");
    assert_eq!(again["event_ids"], body["event_ids"]);

    let single =
        json!({"type": "view_progress", "film_id": FILM, "position_s": 7000, "duration_s": 7200});
    assert_eq!(
        send(
            &app,
            post.clone(),
            "/api/v1/ugc/events",
            &token,
            Some(single),
            None
        )
        .await
        .0,
        202
    );
    let film = format!("/api/v1/ugc/films/{FILM}");
    assert_eq!(
        send(
            &app,
            put.clone(),
            &format!("{film}/bookmark"),
            &token,
            None,
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        send(
            &app,
            put.clone(),
            &format!("{film}/rating"),
            &token,
            Some(json!({"score": 9})),
            None
        )
        .await
        .0,
        202
    );
    let (status, review) = send(
        &app,
        post.clone(),
        &format!("{film}/reviews"),
        &token,
        Some(json!({"text": "Отличный фильм"})),
        Some("review-1"),
    )
    .await;
    assert_eq!(status, 202, "{review}");
    let review_id = review["review_id"].as_str().expect("review id").to_owned();
    let (_, review_again) = send(
        &app,
        post,
        &format!("{film}/reviews"),
        &token,
        Some(json!({"text": "Отличный фильм"})),
        Some("review-1"),
    )
    .await;
    assert_eq!(review_again["review_id"], review_id.as_str());
    assert_eq!(
        send(
            &app,
            put,
            &format!("/api/v1/ugc/reviews/{review_id}/like"),
            &token,
            Some(json!({"value": 1})),
            None
        )
        .await
        .0,
        202
    );

    let mine = format!("user_id = toUUID('{user}')");
    platform
        .wait_for_rows(&mine, 105, Duration::from_secs(30))
        .await;
    let rating: i8 = platform
        .clickhouse()
        .query(&format!(
            "SELECT score FROM ugc_events FINAL WHERE {mine} AND event_type = 'rating_set'"
        ))
        .fetch_one()
        .await
        .expect("rating row");
    assert_eq!(rating, 9);
}

/// Bad input is 422 naming the field, a token is required, and nothing of a
/// rejected batch is stored.
#[tokio::test]
async fn bad_input_is_422_naming_the_field_and_stores_nothing() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    let film = format!("/api/v1/ugc/films/{FILM}");

    let (status, _) = {
        let response = app
            .http
            .post(app.url("/api/v1/ugc/events"))
            .json(&heartbeats(1, 0))
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 401);

    let mut batch = heartbeats(10, 0);
    batch[7]["position_s"] = json!(-5);
    let over = heartbeats(501, 0);
    let long_text = "я".repeat(cinema_domain::ugc::MAX_REVIEW_CHARS + 1);
    for (method, path, body, field) in [
        (
            post.clone(),
            "/api/v1/ugc/events".to_owned(),
            json!({"type": "teleport", "film_id": FILM}),
            "type",
        ),
        (
            post.clone(),
            "/api/v1/ugc/events".to_owned(),
            batch,
            "events[7].position_s",
        ),
        (
            post.clone(),
            "/api/v1/ugc/events".to_owned(),
            over,
            "events",
        ),
        (
            put.clone(),
            format!("{film}/rating"),
            json!({"score": 11}),
            "score",
        ),
        (
            post.clone(),
            format!("{film}/reviews"),
            json!({"text": long_text}),
            "text",
        ),
        (
            put.clone(),
            "/api/v1/ugc/films/not-a-film/bookmark".to_owned(),
            Value::Null,
            "film_id",
        ),
    ] {
        let (status, body) = send(&app, method, &path, &token, Some(body), None).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
    // A valid sentinel arrives; nothing of the rejected requests does.
    assert_eq!(
        send(&app, put, &format!("{film}/bookmark"), &token, None, None)
            .await
            .0,
        202
    );
    platform
        .wait_for_rows(
            &format!("user_id = toUUID('{user}')"),
            1,
            Duration::from_secs(30),
        )
        .await;
}

/// The host (and its loader) killed with SIGKILL mid-stream and started again: every
/// accepted event is in ClickHouse exactly once after folding repeats.
#[tokio::test]
async fn loader_killed_mid_stream_loses_nothing_and_stores_each_event_once() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let batches = 20;
    for batch in 0..batches {
        let (status, body) = send(
            &app,
            reqwest::Method::POST,
            "/api/v1/ugc/events",
            &token,
            Some(heartbeats(500, batch * 500)),
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        if batch == batches / 2 {
            // Let the loader get going, then kill it in the middle of the stream.
            platform
                .wait_until_some(&format!("user_id = toUUID('{user}')"))
                .await;
        }
    }
    drop(app);
    let _app = platform.start(&[]);
    platform
        .wait_for_rows(
            &format!("user_id = toUUID('{user}')"),
            u64::from(batches) * 500,
            Duration::from_secs(60),
        )
        .await;
}

impl Platform {
    async fn wait_until_some(&self, filter: &str) {
        for _ in 0..300 {
            if self.counts(filter).await.1 > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no event reached ClickHouse within 15 s");
    }
}

/// Kafka stopped during intake: writes still answer 202 (the spool takes them), and
/// every one reaches ClickHouse once Kafka is back.
#[tokio::test]
async fn kafka_outage_spools_writes_and_delivers_them_when_it_returns() {
    let mut kafka = PrivateKafka::start();
    let platform = Platform::new(&kafka.brokers()).await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let mine = format!("user_id = toUUID('{user}')");
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(50, 0)),
        None,
    )
    .await;
    assert_eq!(status, 202);
    platform
        .wait_for_rows(&mine, 50, Duration::from_secs(30))
        .await;

    kafka.stop();
    for batch in 1..=4 {
        let (status, body) = send(
            &app,
            reqwest::Method::POST,
            "/api/v1/ugc/events",
            &token,
            Some(heartbeats(50, batch * 50)),
            None,
        )
        .await;
        assert_eq!(status, 202, "accepted while kafka is down: {body}");
        app.assert_running(&format!("after batch {batch} with kafka down"));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.assert_running("with kafka down for 3 s");
    kafka.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts = platform.counts(&mine).await;
        if counts == (250, 250) {
            break;
        }
        app.assert_running("while the spool was being delivered");
        assert!(
            std::time::Instant::now() < deadline,
            "250 events expected in ClickHouse within 60 s of kafka's return, found {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ClickHouse unreachable for the loader (connections cut through a proxy): writes are
/// still accepted, the loader commits nothing while inserts fail, and once ClickHouse
/// is back every event arrives once.
#[tokio::test]
async fn clickhouse_outage_commits_nothing_and_the_loader_catches_up() {
    let mut platform = Platform::new("127.0.0.1:9092").await;
    let clickhouse_port: u16 = common::clickhouse_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("clickhouse port");
    let mut proxy = common::CuttableProxy::start(
        format!("127.0.0.1:{clickhouse_port}")
            .parse()
            .expect("address"),
    )
    .await;
    platform.loader_clickhouse_url = format!("http://127.0.0.1:{}", proxy.port);
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let mine = format!("user_id = toUUID('{user}')");
    let post = reqwest::Method::POST;
    assert_eq!(
        send(
            &app,
            post.clone(),
            "/api/v1/ugc/events",
            &token,
            Some(heartbeats(20, 0)),
            None
        )
        .await
        .0,
        202
    );
    platform
        .wait_for_rows(&mine, 20, Duration::from_secs(30))
        .await;

    proxy.cut().await;
    for batch in 1..=3 {
        let (status, body) = send(
            &app,
            post.clone(),
            "/api/v1/ugc/events",
            &token,
            Some(heartbeats(20, batch * 20)),
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    // The loader keeps retrying; nothing new can have reached ClickHouse.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(platform.counts(&mine).await, (20, 20));
    // Restarting the host while ClickHouse is still unreachable shows that nothing
    // was committed: the new loader (same group) reads the 60 events again.
    drop(app);
    let app = platform.start(&[]);
    proxy.restore().await;
    platform
        .wait_for_rows(&mine, 80, Duration::from_secs(60))
        .await;
    drop(app);
}

/// The read models follow a user's own writes within a second or so: resume position,
/// bookmarks, the film's rating, reviews with likes, and an author-only deletion.
#[tokio::test]
async fn reads_follow_own_writes_through_the_read_models() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let (other, _) = user_token(&app).await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    let delete = reqwest::Method::DELETE;
    let get = reqwest::Method::GET;
    let film = format!("/api/v1/ugc/films/{FILM}");

    for position in [10, 20, 30] {
        let heartbeat = json!({"type": "view_progress", "film_id": FILM, "position_s": position, "duration_s": 5400});
        assert_eq!(
            send(
                &app,
                post.clone(),
                "/api/v1/ugc/events",
                &token,
                Some(heartbeat),
                None
            )
            .await
            .0,
            202
        );
    }
    let progress = eventually_get(
        &app,
        &format!("/api/v1/ugc/me/progress/{FILM}"),
        &token,
        |body| body["position_s"] == 30,
    )
    .await;
    assert_eq!(progress["duration_s"], 5400);

    assert_eq!(
        send(
            &app,
            put.clone(),
            &format!("{film}/bookmark"),
            &token,
            None,
            None
        )
        .await
        .0,
        202
    );
    eventually_get(&app, "/api/v1/ugc/me/bookmarks", &token, |body| {
        body["items"][0]["film_id"] == FILM
    })
    .await;
    assert_eq!(
        send(
            &app,
            delete.clone(),
            &format!("{film}/bookmark"),
            &token,
            None,
            None
        )
        .await
        .0,
        202
    );
    eventually_get(&app, "/api/v1/ugc/me/bookmarks", &token, |body| {
        body["total"] == 0
    })
    .await;

    assert_eq!(
        send(
            &app,
            put.clone(),
            &format!("{film}/rating"),
            &token,
            Some(json!({"score": 7})),
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        send(
            &app,
            put.clone(),
            &format!("{film}/rating"),
            &other,
            Some(json!({"score": 10})),
            None
        )
        .await
        .0,
        202
    );
    let rating = eventually_get(&app, &format!("{film}/rating"), &token, |body| {
        body["count"] == 2
    })
    .await;
    assert_eq!(rating["average"], 8.5);

    let (_, review) = send(
        &app,
        post.clone(),
        &format!("{film}/reviews"),
        &token,
        Some(json!({"text": "Пересматриваю каждый год"})),
        None,
    )
    .await;
    let review_id = review["review_id"].as_str().expect("review id").to_owned();
    assert_eq!(
        send(
            &app,
            put,
            &format!("/api/v1/ugc/reviews/{review_id}/like"),
            &other,
            Some(json!({"value": 1})),
            None
        )
        .await
        .0,
        202
    );
    let reviews = eventually_get(
        &app,
        &format!("{film}/reviews?sort=-likes"),
        &token,
        |body| body["items"][0]["likes"] == 1,
    )
    .await;
    assert_eq!(reviews["items"][0]["user_id"], user.as_str());

    let (status, body) = send(
        &app,
        delete.clone(),
        &format!("/api/v1/ugc/reviews/{review_id}"),
        &other,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "only the author deletes: {body}");
    assert_eq!(body["error"]["code"], "not_review_author");
    assert_eq!(
        send(
            &app,
            delete,
            &format!("/api/v1/ugc/reviews/{review_id}"),
            &token,
            None,
            None
        )
        .await
        .0,
        202
    );
    eventually_get(&app, &format!("{film}/reviews"), &token, |body| {
        body["total"] == 0
    })
    .await;
    let (status, _) = send(
        &app,
        get,
        &format!(
            "/api/v1/ugc/me/progress/{}",
            "30000000-0000-4000-8000-000000000099"
        ),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Polls a read route until `check` accepts its body (10 s at most).
async fn eventually_get(
    app: &TestApp,
    path: &str,
    token: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let (status, body) = send(app, reqwest::Method::GET, path, token, None, None).await;
        if status == 200 && check(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never matched within 10 s; last answer: {last}");
}

/// Analytics through the ugc component: refused (403 `permission_required`) without
/// `analytics:read`; with it, top films by viewers and watch time, daily viewers and
/// the completion rate of the loaded events; bad parameters are 422 naming them.
#[tokio::test]
async fn analytics_need_the_permission_and_read_the_loaded_events() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let watched: Vec<Value> = (5390..5400)
        .map(|position| json!({"type": "view_progress", "film_id": FILM, "position_s": position, "duration_s": 5400}))
        .collect();
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/ugc/events",
        &token,
        Some(Value::Array(watched)),
        None,
    )
    .await;
    assert_eq!(status, 202);
    platform
        .wait_for_rows(
            &format!("user_id = toUUID('{user}')"),
            10,
            Duration::from_secs(30),
        )
        .await;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today, today + chrono::Days::new(1));
    let top_views = format!("/api/v1/ugc/analytics/top_films?from={from}&to={to}&metric=views");
    let daily = format!("/api/v1/ugc/analytics/daily_viewers?from={from}&to={to}");
    let completion = format!("/api/v1/ugc/analytics/completion_rate?film_id={FILM}");
    let get = |path: String, token: String| {
        let app = &app;
        async move { send(app, reqwest::Method::GET, &path, &token, None, None).await }
    };

    for path in [&top_views, &daily, &completion] {
        let (status, body) = get(path.clone(), token.clone()).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "permission_required", "{path}");
    }

    let analyst = analyst_token(&app, &platform.database_url).await;
    let (status, top) = get(top_views.clone(), analyst.clone()).await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["metric"], "views");
    assert_eq!(top["items"][0]["film_id"], FILM);
    assert_eq!(top["items"][0]["value"], 1);
    let (_, watch) = get(
        format!("/api/v1/ugc/analytics/top_films?from={from}&to={to}&metric=watch_time"),
        analyst.clone(),
    )
    .await;
    assert_eq!(watch["items"][0]["value"], 5399);
    let (_, days) = get(daily, analyst.clone()).await;
    assert_eq!(days["items"][0]["day"], today.to_string());
    assert_eq!(days["items"][0]["viewers"], 1);
    let (_, rate) = get(completion, analyst.clone()).await;
    assert_eq!(rate["viewers"], 1);
    assert_eq!(rate["completed"], 1);

    for (query, field) in [
        (format!("top_films?from={to}&to={from}"), "to"),
        (
            format!("top_films?from={from}&to={to}&metric=likes"),
            "metric",
        ),
        (format!("top_films?from=yesterday&to={to}"), "from"),
        (format!("daily_viewers?from={from}"), "to"),
        ("completion_rate?film_id=42".to_owned(), "film_id"),
    ] {
        let (status, body) = get(format!("/api/v1/ugc/analytics/{query}"), analyst.clone()).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
}

/// Each dependency out of reach answers 503 with its own code, never a 500, and the
/// same request succeeds once it is back: reads without Postgres
/// (`database_unavailable`), analytics without ClickHouse (`analytics_unavailable`),
/// writes and analytics without the host's internal API (`intake_unavailable`,
/// `analytics_unavailable`).
#[tokio::test]
async fn unreachable_dependencies_answer_503_with_their_codes_then_recover() {
    let mut platform = Platform::new("127.0.0.1:9092").await;
    let (mut postgres, component_database_url) = proxied(&platform.database_url, 5432).await;
    let (mut clickhouse, clickhouse_url) = proxied(&common::clickhouse_url(), 8123).await;
    let (mut internal_api, internal_api_url) = proxied(
        &format!("http://127.0.0.1:{}", platform.internal_port),
        platform.internal_port,
    )
    .await;
    platform.loader_clickhouse_url = clickhouse_url;
    platform.component_overrides = common::component_database_variables(&component_database_url);
    platform.component_overrides.extend([
        (
            "SPIN_VARIABLE_DATABASE_HOST",
            format!("postgres://127.0.0.1:{}", postgres.port),
        ),
        ("SPIN_VARIABLE_INTERNAL_API_URL", internal_api_url),
    ]);
    let app = platform.start(&[]);
    let (token, _) = user_token(&app).await;
    let analyst = analyst_token(&app, &platform.database_url).await;
    let bookmarks = "/api/v1/ugc/me/bookmarks";
    let events = "/api/v1/ugc/events";
    let today = chrono::Utc::now().date_naive();
    let report = format!(
        "/api/v1/ugc/analytics/daily_viewers?from={today}&to={}",
        today + chrono::Days::new(1)
    );
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let expect = |status: u16, body: &Value, code: &str, what: &str| {
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}");
    };

    postgres.cut().await;
    let (status, body) = send(&app, get.clone(), bookmarks, &token, None, None).await;
    expect(
        status,
        &body,
        "database_unavailable",
        "bookmarks without postgres",
    );
    postgres.restore().await;
    assert_eq!(
        send(&app, get.clone(), bookmarks, &token, None, None)
            .await
            .0,
        200
    );

    clickhouse.cut().await;
    let (status, body) = send(&app, get.clone(), &report, &analyst, None, None).await;
    expect(
        status,
        &body,
        "analytics_unavailable",
        "analytics without clickhouse",
    );
    clickhouse.restore().await;
    assert_eq!(
        send(&app, get.clone(), &report, &analyst, None, None)
            .await
            .0,
        200
    );

    internal_api.cut().await;
    let (status, body) = send(
        &app,
        post.clone(),
        events,
        &token,
        Some(heartbeats(1, 0)),
        Some("k1"),
    )
    .await;
    expect(
        status,
        &body,
        "intake_unavailable",
        "a write without the host's intake",
    );
    let (status, body) = send(&app, get.clone(), &report, &analyst, None, None).await;
    expect(
        status,
        &body,
        "analytics_unavailable",
        "analytics without the host",
    );
    internal_api.restore().await;
    let (status, body) = send(
        &app,
        post,
        events,
        &token,
        Some(heartbeats(1, 0)),
        Some("k1"),
    )
    .await;
    assert_eq!(status, 202, "the same write once the host is back: {body}");
}

/// A request's events travel as one record (`cinema_domain::ugc::record`): a batch of
/// 100 heartbeats is one message on the topic, keyed by the token's user, holding the
/// events in the order sent, with the ids the 202 answered.
#[tokio::test]
async fn a_batch_of_events_is_one_record_keyed_by_its_user() {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;

    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let (status, answer) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(100, 0)),
        None,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let answered: Vec<String> = answer["event_ids"]
        .as_array()
        .expect("event_ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect();
    // Once the loader has stored them, the record is on the topic.
    platform
        .wait_for_rows(
            &format!("user_id = toUUID('{user}')"),
            100,
            Duration::from_secs(30),
        )
        .await;

    let consumer = common::kafka::reader(
        &platform.brokers,
        "record_reader",
        &platform.topic,
        &[("enable.partition.eof", "true")],
    );
    let partitions = consumer
        .fetch_metadata(Some(&platform.topic), Duration::from_secs(10))
        .expect("topic metadata")
        .topics()[0]
        .partitions()
        .len();
    let mut records = Vec::new();
    let mut partitions_at_end = 0;
    while partitions_at_end < partitions {
        match tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("the topic reads to its end within 30 s")
        {
            Ok(message) => records.push((
                message.key().unwrap_or_default().to_vec(),
                message.payload().unwrap_or_default().to_vec(),
            )),
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => partitions_at_end += 1,
            Err(error) => panic!("reading the topic: {error}"),
        }
    }
    let [(key, payload)] = records.as_slice() else {
        panic!("one record for one request, found {}", records.len());
    };
    assert_eq!(key.as_slice(), user.as_bytes());
    assert!(
        cinema_domain::ugc::record::binary::is_binary(payload),
        "the component's events travel binary"
    );
    let decoded = cinema_domain::ugc::record::decode(payload);
    assert!(decoded.undecodable.is_empty(), "{:?}", decoded.undecodable);
    let ids: Vec<&str> = decoded.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, answered);
    let positions: Vec<u32> = decoded
        .events
        .iter()
        .map(|event| match event.payload {
            cinema_domain::ugc::UgcPayload::ViewProgress { position_s, .. } => position_s,
            ref other => panic!("a heartbeat, got {other:?}"),
        })
        .collect();
    assert_eq!(positions, (0..100).collect::<Vec<u32>>());
    assert!(decoded.events.iter().all(|event| event.user_id == user));
}

/// Messages on the events topic that are not events (not JSON, or missing fields) go
/// to the topic's dead-letter topic with the reason and their origin in headers; the
/// events around them load as usual. In a record of several events, only the bad one
/// is dead-lettered (with its index); the others load.
#[tokio::test]
async fn undecodable_messages_go_to_the_dead_letter_topic_with_their_reason() {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let mine = format!("user_id = toUUID('{user}')");
    let post = reqwest::Method::POST;
    let (status, _) = send(
        &app,
        post.clone(),
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(1, 0)),
        None,
    )
    .await;
    assert_eq!(status, 202);
    platform
        .wait_for_rows(&mine, 1, Duration::from_secs(30))
        .await;

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &platform.brokers)
        .create()
        .expect("producer");
    let good_in_a_batch = format!(
        r#"{{"event_id":"6f000000-0000-4000-8000-000000000001","user_id":"{user}","occurred_at_ms":1764150000000,"type":"view_progress","film_id":"30000000-0000-4000-8000-000000000001","position_s":1,"duration_s":60}}"#
    );
    let bad_in_a_batch = r#"{"type":"view_progress","film_id":"y"}"#;
    let batch = format!("[{good_in_a_batch},{bad_in_a_batch}]");
    let garbage: [&[u8]; 3] = [
        b"not json at all",
        br#"{"type":"view_progress","film_id":"x"}"#,
        batch.as_bytes(),
    ];
    for payload in garbage {
        producer
            .send(
                FutureRecord::to(&platform.topic)
                    .key("garbage")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("garbage produced");
    }
    let (status, _) = send(
        &app,
        post,
        "/api/v1/ugc/events",
        &token,
        Some(heartbeats(5, 1)),
        None,
    )
    .await;
    assert_eq!(status, 202);
    platform
        .wait_for_rows(&mine, 7, Duration::from_secs(30))
        .await;

    let dead_letter_topic = cinema_domain::ugc::dead_letter_topic(&platform.topic);
    let consumer = common::kafka::reader(&platform.brokers, "dlq_reader", &dead_letter_topic, &[]);
    let mut letters = Vec::new();
    while letters.len() < garbage.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("dead letters arrive within 30 s")
            .expect("a dead letter");
        let headers: std::collections::HashMap<String, String> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        letters.push((message.payload().unwrap_or_default().to_vec(), headers));
    }
    let sent_alone = [garbage[0].to_vec(), garbage[1].to_vec()];
    for ((payload, headers), sent) in letters.iter().zip(&sent_alone) {
        assert_eq!(payload, sent);
        assert!(!headers.contains_key("x-source-index"), "{headers:?}");
    }
    let (payload, headers) = &letters[2];
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(payload).expect("the bad event's JSON"),
        serde_json::from_str::<serde_json::Value>(bad_in_a_batch).expect("JSON"),
    );
    assert_eq!(headers["x-source-index"], "1", "{headers:?}");
    for (_, headers) in &letters {
        assert!(!headers["x-error"].is_empty(), "{headers:?}");
        assert_eq!(headers["x-source-topic"], platform.topic);
        assert!(
            headers["x-source-offset"].parse::<i64>().is_ok(),
            "{headers:?}"
        );
    }
    assert!(
        letters[1].1["x-error"].contains("missing field"),
        "{:?}",
        letters[1].1
    );
}

/// Issue 14, item 8: the internal API refuses any caller without the platform's
/// credential (search, reindex, analytics, intake; health and metrics stay open), and
/// the intake takes the user behind events only from a verified access token: events
/// naming another user in the body land under the token's user, without a valid
/// token nothing is accepted, and a body that is not an intake request is a 400
/// `invalid_json` (`invalid_body` for the binary shape, whose records name the user
/// too and are re-stamped, not forwarded, when they name another).
#[tokio::test]
async fn the_internal_api_needs_the_credential_and_intake_takes_the_user_from_the_token() {
    let platform = Platform::new("127.0.0.1:9092").await;
    let app = platform.start(&[]);
    let (token, user) = user_token(&app).await;
    let victim = uuid::Uuid::new_v4().to_string();
    let internal = |method: reqwest::Method, path: &str| {
        app.http.request(method, format!("{}{path}", app.internal))
    };
    let event = json!({"events": [{
        "event_id": uuid::Uuid::new_v4().to_string(),
        "user_id": victim,
        "occurred_at_ms": 1_764_000_000_000_i64,
        "type": "view_progress", "film_id": FILM, "position_s": 7, "duration_s": 60
    }]});
    let unauthenticated = [
        internal(reqwest::Method::GET, "/search/films?query=x"),
        internal(reqwest::Method::GET, "/search/version"),
        internal(reqwest::Method::POST, "/etl/reindex"),
        internal(
            reqwest::Method::GET,
            "/analytics/daily_viewers?from=2026-01-01&to=2026-01-02",
        ),
        internal(reqwest::Method::POST, "/intake/ugc").json(&event),
        internal(reqwest::Method::POST, "/intake/ugc")
            .header(common::INTERNAL_TOKEN_HEADER, "not-the-credential")
            .bearer_auth(&token)
            .json(&event),
    ];
    for request in unauthenticated {
        let response = request.send().await.expect("internal api");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("internal_credential_required")),
            "{body}"
        );
    }
    for open in ["/health", "/metrics"] {
        let status = internal(reqwest::Method::GET, open)
            .send()
            .await
            .expect("open");
        assert_eq!(status.status().as_u16(), 200, "{open}");
    }

    let with_credential = |request: reqwest::RequestBuilder| {
        request.header(common::INTERNAL_TOKEN_HEADER, common::INTERNAL_TOKEN)
    };
    for (bearer, code) in [
        (None, "missing_token"),
        (Some("forged.token.here"), "invalid_token"),
    ] {
        let mut request =
            with_credential(internal(reqwest::Method::POST, "/intake/ugc")).json(&event);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.expect("intake");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "{body}"
        );
    }
    for body in ["not json", r#"{"events": [{"type": "view_progress"}]}"#] {
        let response = with_credential(internal(reqwest::Method::POST, "/intake/ugc"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("intake");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{body}: {answer}"
        );
    }
    let response = with_credential(internal(reqwest::Method::POST, "/intake/ugc"))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .expect("intake");
    assert_eq!(response.status().as_u16(), 202);

    // The same attack in the binary shape the component sends: a record naming the
    // victim, forwarded to Kafka as it came if the host did not look inside.
    use cinema_domain::ugc::record::binary;
    let forged = cinema_domain::ugc::UgcEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        user_id: victim.clone(),
        occurred_at_ms: 1_764_000_000_000,
        payload: cinema_domain::ugc::UgcPayload::ViewProgress {
            film_id: FILM.into(),
            position_s: 8,
            duration_s: 60,
        },
    };
    let record = binary::encode_all(std::slice::from_ref(&forged)).expect("canonical ids");
    let binary_intake = |body: Vec<u8>| {
        with_credential(internal(reqwest::Method::POST, "/intake/ugc"))
            .bearer_auth(&token)
            .header("content-type", binary::CONTENT_TYPE)
            .body(body)
    };
    let cut_short = record[..record.len() - 1].to_vec();
    let mut unknown_type = record.clone();
    unknown_type[binary::HEADER.len() + 4] = 250;
    for (what, body) in [
        ("JSON under the binary type", event.to_string().into_bytes()),
        ("a record cut short", cut_short),
        ("an event of unknown type", unknown_type),
    ] {
        let response = binary_intake(body).send().await.expect("intake");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{what}: {answer}"
        );
    }
    let response = binary_intake(record).send().await.expect("intake");
    assert_eq!(response.status().as_u16(), 202);
    platform
        .wait_for_rows(
            &format!("user_id = toUUID('{user}')"),
            2,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        platform
            .counts(&format!("user_id = toUUID('{victim}')"))
            .await,
        (0, 0),
        "nothing lands under the user the body named, JSON or binary"
    );
}
