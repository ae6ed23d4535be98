//! The catalog contract end to end: `cinema up` with the real spin.toml (auth issues
//! the tokens, catalog checks them), the ETL indexing a freshly migrated Postgres, and
//! the search API on the internal port.

mod common;

use std::time::Duration;

use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

const DRAMA: &str = "10000000-0000-4000-8000-000000000001";
const COMEDY: &str = "10000000-0000-4000-8000-000000000002";
const SCIFI: &str = "10000000-0000-4000-8000-000000000003";
const KEANU: &str = "20000000-0000-4000-8000-000000000001";
const LANA: &str = "20000000-0000-4000-8000-000000000002";
const ALYOSHA: &str = "20000000-0000-4000-8000-000000000003";
const MATRIX: &str = "30000000-0000-4000-8000-000000000001";
const RELOADED: &str = "30000000-0000-4000-8000-000000000002";
const YOLKI: &str = "30000000-0000-4000-8000-000000000003";
const BRAT: &str = "30000000-0000-4000-8000-000000000004";
const SERIES: &str = "30000000-0000-4000-8000-000000000005";
const SUBSCRIBER_ROLE: &str = "00000000-0000-4000-8000-000000000003";
const PASSWORD: &str = "correct horse battery staple";

/// A small catalog: Russian and English titles, `ё`, a paid film, a series, people in
/// several films and roles.
const FIXTURE_SQL: &str = "
INSERT INTO content.genre (id, name) VALUES
    ('10000000-0000-4000-8000-000000000001', 'Драма'),
    ('10000000-0000-4000-8000-000000000002', 'Комедия'),
    ('10000000-0000-4000-8000-000000000003', 'Фантастика');
INSERT INTO content.person (id, full_name) VALUES
    ('20000000-0000-4000-8000-000000000001', 'Киану Ривз'),
    ('20000000-0000-4000-8000-000000000002', 'Lana Wachowski'),
    ('20000000-0000-4000-8000-000000000003', 'Алёша Попович');
INSERT INTO content.film (id, title, description, creation_date, rating, type, access) VALUES
    ('30000000-0000-4000-8000-000000000001', 'Матрица', 'Хакер Нео узнаёт правду о мире, в котором живёт', '1999-03-31', 8.7, 'movie', 'free'),
    ('30000000-0000-4000-8000-000000000002', 'The Matrix Reloaded', 'Neo and the rebels fight the machines', '2003-05-15', 7.2, 'movie', 'subscription'),
    ('30000000-0000-4000-8000-000000000003', 'Ёлки', 'Новогодние истории в разных городах', '2010-12-16', 6.1, 'movie', 'free'),
    ('30000000-0000-4000-8000-000000000004', 'Брат', 'Данила Багров приезжает в Петербург', '1997-12-12', 8.0, 'movie', 'free'),
    ('30000000-0000-4000-8000-000000000005', 'Долгая история', 'Сериал о семье', NULL, NULL, 'tv_show', 'subscription');
INSERT INTO content.film_genre (id, film_id, genre_id) VALUES
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000003'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000003'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000002'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000004', '10000000-0000-4000-8000-000000000001'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000005', '10000000-0000-4000-8000-000000000001');
INSERT INTO content.film_person (id, film_id, person_id, role) VALUES
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', 'actor'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002', 'director'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002', 'writer'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000001', 'actor'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000002', 'director'),
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000003', '20000000-0000-4000-8000-000000000003', 'actor');
";

struct Catalog {
    app: TestApp,
    db: tokio_postgres::Client,
    database_url: String,
    index: TempDir,
    jwks: String,
}

/// Response of a catalog request: status, headers, JSON body (`Null` when none).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn ids(&self) -> Vec<String> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("expected an array, got {}", self.body))
            .iter()
            .map(|item| item["uuid"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A platform database holding [`FIXTURE_SQL`]: its URL, the JWKS of its signing keys,
/// and a client to change content with.
async fn fixture_database() -> (String, String, tokio_postgres::Client) {
    let (database_url, jwks) = common::platform_database().await;
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    db.batch_execute(FIXTURE_SQL)
        .await
        .expect("fixture content");
    (database_url, jwks, db)
}

async fn start() -> Catalog {
    let (database_url, jwks, db) = fixture_database().await;
    let index = TempDir::new("index");
    let catalog = Catalog::serve(database_url, jwks, db, index);
    catalog.wait_until_indexed(MATRIX).await;
    catalog
}

/// `cinema up` with the real spin.toml, its catalog pointed at its own internal API.
fn start_app(
    database_url: &str,
    jwks: &str,
    index_dir: &str,
    etl_postgres_url: &str,
    extra_args: &[&str],
) -> TestApp {
    let internal_port = free_port();
    let mut options = AppOptions::default()
        .component_databases(database_url)
        .env("SPIN_VARIABLE_JWKS", jwks)
        .env(
            "SPIN_VARIABLE_INTERNAL_API_URL",
            format!("http://127.0.0.1:{internal_port}"),
        )
        .arg("--index-dir")
        .arg(index_dir)
        .arg("--etl-postgres-url")
        .arg(etl_postgres_url);
    for arg in extra_args {
        options = options.arg(*arg);
    }
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.internal_listen = Some(format!("127.0.0.1:{internal_port}"));
    // The limits `make up` runs with (the catalog serves several requests per instance).
    options.runtime_config = Some(include_str!("../../cinema-runtime-config.toml").to_owned());
    spawn_app(options)
}

/// [`start_app`] with its ETL pointed at an address where no Postgres answers, so its
/// index in `index` is never built.
fn start_app_whose_index_is_never_built(
    database_url: &str,
    jwks: &str,
    index: &TempDir,
) -> TestApp {
    start_app(
        database_url,
        jwks,
        index.path(),
        "postgres://postgres@127.0.0.1:1/cinema",
        &[],
    )
}

impl Catalog {
    /// `cinema up` over a fixture database ([`start_app`]), its ETL keeping `index` from
    /// the same database.
    fn serve(
        database_url: String,
        jwks: String,
        db: tokio_postgres::Client,
        index: TempDir,
    ) -> Self {
        let etl_url = database_url.clone();
        Self::serve_with_etl(database_url, jwks, db, index, &etl_url)
    }

    /// [`Catalog::serve`] with the ETL reading Postgres at `etl_url` (a proxy that can cut
    /// it, or an address where nothing answers).
    fn serve_with_etl(
        database_url: String,
        jwks: String,
        db: tokio_postgres::Client,
        index: TempDir,
        etl_url: &str,
    ) -> Self {
        Self::serve_with_args(database_url, jwks, db, index, etl_url, &[])
    }

    /// The fixture and [`FILLER_FILMS`] imported just before `cinema up` starts, its
    /// ETL catching up every second; returns once the first build serves.
    async fn serve_fillers_catching_up_every_second(index_name: &str) -> Self {
        let (database_url, jwks, db) = fixture_database().await;
        insert_fillers(&db, FILLER_FILMS).await;
        let etl_url = database_url.clone();
        let catalog = Self::serve_with_args(
            database_url,
            jwks,
            db,
            TempDir::new(index_name),
            &etl_url,
            &["--etl-catch-up-seconds", "1"],
        );
        catalog
            .wait_until_indexed_within(MATRIX, Duration::from_secs(120))
            .await;
        catalog
    }

    /// [`Catalog::serve_with_etl`] with more `cinema up` flags.
    fn serve_with_args(
        database_url: String,
        jwks: String,
        db: tokio_postgres::Client,
        index: TempDir,
        etl_url: &str,
        extra_args: &[&str],
    ) -> Self {
        let app = start_app(&database_url, &jwks, index.path(), etl_url, extra_args);
        Self {
            app,
            db,
            database_url,
            index,
            jwks,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.get_with(path, token, &[]).await
    }

    async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.app.http.get(self.app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request reaches cinema");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn internal(&self, path: &str) -> (u16, Value) {
        let response = self
            .app
            .http
            .get(format!("{}{path}", self.app.internal))
            .header(common::INTERNAL_TOKEN_HEADER, common::INTERNAL_TOKEN)
            .send()
            .await
            .expect("internal api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn user(&self) -> String {
        self.app
            .sign_up_and_log_in(
                &format!("{}@example.com", common::unique("viewer")),
                PASSWORD,
            )
            .await
    }

    /// A user with the `subscriber` role (granted in Postgres, then logged in again).
    async fn subscriber(&self) -> String {
        let email = format!("{}@example.com", common::unique("subscriber"));
        self.app.sign_up_and_log_in(&email, PASSWORD).await;
        common::grant_role(&self.database_url, &email, SUBSCRIBER_ROLE).await;
        let (status, login) = self
            .app
            .post_json(
                "/api/v1/auth/login",
                serde_json::json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "{login}");
        login["access_token"].as_str().expect("token").to_owned()
    }

    /// Waits until the search API serves a film (the first build is done).
    async fn wait_until_indexed(&self, film: &str) {
        self.wait_until_indexed_within(film, Duration::from_secs(30))
            .await;
    }

    async fn wait_until_indexed_within(&self, film: &str, within: Duration) {
        let path = format!("/search/films/{film}");
        let found = TestApp::eventually(within, || async {
            (self.internal(&path).await.0 == 200).then_some(())
        })
        .await;
        assert!(
            found.is_some(),
            "film {film} was not indexed within {within:?}"
        );
    }

    /// `POST /etl/reindex` on the internal API: its status and JSON body, once the
    /// rebuild went live or failed (a future that owns what it needs, to spawn).
    fn post_reindex(&self) -> impl std::future::Future<Output = (u16, Value)> + Send + 'static {
        let request = self
            .app
            .http
            .post(format!("{}/etl/reindex", self.app.internal))
            .header(common::INTERNAL_TOKEN_HEADER, common::INTERNAL_TOKEN)
            .timeout(Duration::from_secs(180));
        async move {
            let response = request.send().await.expect("reindex request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    }

    /// Polls the search API until `check` accepts the answer to `path` (10 s at most).
    async fn eventually_internal(&self, path: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
        self.eventually_internal_within(path, Duration::from_secs(10), check)
            .await
    }

    async fn eventually_internal_within(
        &self,
        path: &str,
        within: Duration,
        check: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let (status, body) = self.internal(path).await;
            if check(status, &body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{path} never matched within {within:?}; last answer: {last}");
    }
}

/// Films a full build of the fixture takes seconds over, while an edit takes
/// milliseconds: all titled `Filler N`.
const FILLER_FILMS: u32 = 60_000;

async fn insert_fillers(db: &tokio_postgres::Client, count: u32) {
    let count = i32::try_from(count).expect("filler count");
    db.execute(
        "INSERT INTO content.film (id, title, description, rating)
         SELECT gen_random_uuid(), 'Filler ' || i, 'A film made to fill the catalog, number ' || i,
                (i % 100) / 10.0
         FROM generate_series(1, $1) AS i",
        &[&count],
    )
    .await
    .expect("filler films");
}

/// The URL of the same database reached through another local port (a proxy's).
fn through_port(database_url: &str, port: u16) -> String {
    let database = common::database_name(database_url);
    format!("postgres://postgres@127.0.0.1:{port}/{database}?sslmode=disable")
}

/// The index builds (`build-*`) in an index directory, sorted.
fn build_dirs(index_dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(index_dir)
        .expect("index dir")
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with("build-"))
        .collect();
    names.sort();
    names
}

/// The build the index directory's `current` link names.
fn current_build(index_dir: &str) -> String {
    std::fs::read_link(std::path::Path::new(index_dir).join("current"))
        .expect("current link")
        .to_string_lossy()
        .into_owned()
}

fn search_titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every catalog route refuses a request without a valid token; the OpenAPI document
/// is public and names the routes.
#[tokio::test]
async fn catalog_routes_require_an_access_token() {
    let catalog = start().await;
    for path in [
        "/api/v1/films".to_owned(),
        "/api/v1/films/search?query=matrix".to_owned(),
        format!("/api/v1/films/{MATRIX}"),
        "/api/v1/genres".to_owned(),
        format!("/api/v1/genres/{DRAMA}"),
        "/api/v1/persons/search?query=keanu".to_owned(),
        format!("/api/v1/persons/{KEANU}"),
        format!("/api/v1/persons/{KEANU}/film"),
    ] {
        let reply = catalog.get(&path, None).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        let reply = catalog.get(&path, Some("not-a-token")).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
    }
    let openapi = catalog.get("/api/v1/openapi.json", None).await;
    assert_eq!(openapi.status, 200);
    assert_eq!(
        openapi.body["openapi"].as_str().map(|v| &v[..2]),
        Some("3.")
    );
    for path in [
        "/api/v1/films",
        "/api/v1/films/search",
        "/api/v1/films/{film_id}",
        "/api/v1/genres",
        "/api/v1/persons/search",
    ] {
        let paths = openapi.body["paths"].as_object().expect("paths");
        assert!(
            paths
                .keys()
                .any(|p| p.starts_with(&path[..path.find('{').unwrap_or(path.len())])),
            "openapi lacks {path}"
        );
    }
}

/// The film list sorts by rating or date either way, pages, filters by genre, and
/// reports the total.
#[tokio::test]
async fn film_list_sorts_pages_and_filters() {
    let catalog = start().await;
    let token = catalog.user().await;
    let token = Some(token.as_str());

    let best = catalog.get("/api/v1/films?sort=-imdb_rating", token).await;
    assert_eq!(best.status, 200, "{}", best.body);
    assert_eq!(best.ids()[..4], [MATRIX, BRAT, RELOADED, YOLKI]);
    assert_eq!(best.header("x-total-count"), Some("5"));
    let first = &best.body[0];
    assert_eq!(first["title"], "Матрица");
    assert_eq!(first["imdb_rating"], 8.7);
    assert_eq!(first["access"], "free");

    let worst = catalog.get("/api/v1/films?sort=imdb_rating", token).await;
    assert_eq!(worst.ids()[..4], [YOLKI, RELOADED, BRAT, MATRIX]);

    let oldest = catalog.get("/api/v1/films?sort=creation_date", token).await;
    assert_eq!(oldest.ids()[..4], [BRAT, MATRIX, RELOADED, YOLKI]);

    let page = catalog
        .get(
            "/api/v1/films?sort=-imdb_rating&page_size=2&page_number=2",
            token,
        )
        .await;
    assert_eq!(page.ids(), [RELOADED, YOLKI]);
    assert_eq!(page.header("x-page-count"), Some("3"));

    let scifi = catalog
        .get(
            &format!("/api/v1/films?genre={SCIFI}&sort=-imdb_rating"),
            token,
        )
        .await;
    assert_eq!(scifi.ids(), [MATRIX, RELOADED]);

    let paid_series = catalog
        .get("/api/v1/films?type=tv_show&access=subscription", token)
        .await;
    assert_eq!(paid_series.ids(), [SERIES]);

    let nineties = catalog
        .get(
            "/api/v1/films?year_from=1990&year_to=1999&rating_from=8.5",
            token,
        )
        .await;
    assert_eq!(nineties.ids(), [MATRIX]);
}

/// Film detail lists genres and people by role; a `subscription` film needs the
/// `subscriber` role (403 `subscription_required` otherwise), a free one does not.
#[tokio::test]
async fn film_detail_and_the_paid_content_rule() {
    let catalog = start().await;
    let viewer = catalog.user().await;

    let matrix = catalog
        .get(&format!("/api/v1/films/{MATRIX}"), Some(&viewer))
        .await;
    assert_eq!(matrix.status, 200, "{}", matrix.body);
    let body = &matrix.body;
    assert_eq!(body["uuid"], MATRIX);
    assert_eq!(body["title"], "Матрица");
    assert_eq!(body["imdb_rating"], 8.7);
    assert_eq!(body["creation_date"], "1999-03-31");
    assert_eq!(body["type"], "movie");
    assert_eq!(body["access"], "free");
    assert_eq!(
        body["genre"],
        serde_json::json!([{"uuid": SCIFI, "name": "Фантастика"}])
    );
    assert_eq!(
        body["actors"],
        serde_json::json!([{"uuid": KEANU, "full_name": "Киану Ривз"}])
    );
    assert_eq!(
        body["directors"],
        serde_json::json!([{"uuid": LANA, "full_name": "Lana Wachowski"}])
    );
    assert_eq!(
        body["writers"],
        serde_json::json!([{"uuid": LANA, "full_name": "Lana Wachowski"}])
    );

    let refused = catalog
        .get(&format!("/api/v1/films/{RELOADED}"), Some(&viewer))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "subscription_required");

    let subscriber = catalog.subscriber().await;
    let allowed = catalog
        .get(&format!("/api/v1/films/{RELOADED}"), Some(&subscriber))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.body["access"], "subscription");

    // Lists show paid films to everyone, marked as such.
    let list = catalog
        .get("/api/v1/films?access=subscription", Some(&viewer))
        .await;
    assert_eq!(list.status, 200);
    assert!(list.ids().contains(&RELOADED.to_owned()));
}

/// Search finds inflected Russian forms, `е` for `ё`, a typo, a prefix being typed (also
/// with a typo after its first letter), English stems, and marks the matched words.
#[tokio::test]
async fn search_understands_russian_english_typos_and_prefixes() {
    let catalog = start().await;
    let token = catalog.user().await;
    let token = Some(token.as_str());
    for (query, expected) in [
        ("матрицы", MATRIX),
        ("елки", YOLKI),
        ("ЁЛКИ", YOLKI),
        ("матирца", MATRIX),
        ("матр", MATRIX),
        ("матп", MATRIX),
        ("reloading", RELOADED),
        ("петербурге", BRAT),
        ("ривз", MATRIX),
    ] {
        let reply = catalog
            .get(&format!("/api/v1/films/search?query={query}"), token)
            .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert!(
            reply.ids().contains(&expected.to_owned()),
            "{query} should find {expected}, got {}",
            reply.body
        );
    }
    let nothing = catalog
        .get("/api/v1/films/search?query=zzzzqqq", token)
        .await;
    assert_eq!(nothing.status, 200);
    assert!(nothing.ids().is_empty());

    let (status, page) = catalog.internal("/search/films?query=матрицы").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["uuid"], MATRIX);
    assert_eq!(page["items"][0]["highlight"]["title"], "<b>Матрица</b>");
    let facets = page["facets"]["genre"].as_array().expect("genre facets");
    assert!(
        facets
            .iter()
            .any(|f| f["uuid"] == SCIFI && f["name"] == "Фантастика" && f["count"] == 1)
    );
    // What the catalog asks for its lists and searches: the same page, no genre counts;
    // a facet value the host does not know is a 400 naming the parameter.
    let (status, plain) = catalog
        .internal("/search/films?query=матрицы&facets=none")
        .await;
    assert_eq!(status, 200);
    assert_eq!(plain["items"], page["items"]);
    assert_eq!(plain["total"], page["total"]);
    assert_eq!(plain["facets"]["genre"], serde_json::json!([]));
    let (status, refused) = catalog.internal("/search/films?facets=year").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "facets");

    let facets = catalog
        .get("/api/v1/films/search/facets?query=matrix", token)
        .await;
    assert_eq!(facets.status, 200, "{}", facets.body);
    assert_eq!(facets.body["genre"][0]["uuid"], SCIFI);
}

/// Genres list with film counts; persons are searchable and list their films with
/// every role they had.
#[tokio::test]
async fn genres_and_persons() {
    let catalog = start().await;
    let token = catalog.user().await;
    let token = Some(token.as_str());

    let genres = catalog.get("/api/v1/genres", token).await;
    assert_eq!(genres.status, 200, "{}", genres.body);
    assert_eq!(genres.ids().len(), 3);
    let drama = catalog.get(&format!("/api/v1/genres/{DRAMA}"), token).await;
    assert_eq!(drama.status, 200);
    assert_eq!(drama.body["name"], "Драма");
    assert_eq!(drama.body["film_count"], 2);
    let comedy = catalog
        .get(&format!("/api/v1/genres/{COMEDY}"), token)
        .await;
    assert_eq!(comedy.body["film_count"], 1);

    let found = catalog
        .get("/api/v1/persons/search?query=алеша", token)
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.ids(), [ALYOSHA]);

    let lana = catalog.get(&format!("/api/v1/persons/{LANA}"), token).await;
    assert_eq!(lana.status, 200, "{}", lana.body);
    assert_eq!(lana.body["full_name"], "Lana Wachowski");
    let films = lana.body["films"].as_array().expect("films");
    let matrix = films.iter().find(|f| f["uuid"] == MATRIX).expect("matrix");
    let mut roles: Vec<&str> = matrix["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["director", "writer"]);

    let keanu_films = catalog
        .get(&format!("/api/v1/persons/{KEANU}/film"), token)
        .await;
    assert_eq!(keanu_films.status, 200, "{}", keanu_films.body);
    let mut ids = keanu_films.ids();
    ids.sort();
    assert_eq!(ids, [MATRIX, RELOADED]);
    assert_eq!(keanu_films.body[0]["title"], "Матрица");
}

/// Bad paging, sort and filter values are 422 naming the parameter; unknown ids 404.
#[tokio::test]
async fn bad_parameters_are_422_and_unknown_ids_404() {
    let catalog = start().await;
    let token = catalog.user().await;
    let token = Some(token.as_str());
    for (path, field) in [
        ("/api/v1/films?page_size=0", "page_size"),
        ("/api/v1/films?page_size=1000", "page_size"),
        ("/api/v1/films?page_number=-1", "page_number"),
        ("/api/v1/films?page_number=abc", "page_number"),
        ("/api/v1/films?sort=title", "sort"),
        ("/api/v1/films?genre=drama", "genre"),
        ("/api/v1/films/search?query=x&page_size=x", "page_size"),
        ("/api/v1/films/search?query=x&rating_from=11", "rating_from"),
        (
            "/api/v1/persons/search?query=x&page_number=0",
            "page_number",
        ),
        ("/api/v1/films/not-a-uuid", "uuid"),
    ] {
        let reply = catalog.get(path, token).await;
        assert_eq!(reply.status, 422, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_parameter", "{path}");
        assert_eq!(
            reply.body["error"]["field"], field,
            "{path}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{path}: the message names {field}: {}",
            reply.body
        );
    }
    let unknown = "40000000-0000-4000-8000-000000000000";
    for (path, code) in [
        (format!("/api/v1/films/{unknown}"), "film_not_found"),
        (format!("/api/v1/genres/{unknown}"), "genre_not_found"),
        (format!("/api/v1/persons/{unknown}"), "person_not_found"),
        (
            format!("/api/v1/persons/{unknown}/film"),
            "person_not_found",
        ),
    ] {
        let reply = catalog.get(&path, token).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{path}");
    }
}

/// Answers are cached per index version: a repeat is a hit with the same ETag, a
/// matching `If-None-Match` is 304, and a published change makes a fresh answer.
#[tokio::test]
async fn responses_are_cached_until_the_index_publishes_and_answer_304() {
    let catalog = start().await;
    let token = catalog.user().await;
    let token = Some(token.as_str());
    let path = format!("/api/v1/films/{BRAT}");

    let first = catalog.get(&path, token).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("etag").to_owned();
    let second = catalog.get(&path, token).await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(second.body, first.body);

    let not_modified = catalog
        .get_with(&path, token, &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));

    catalog
        .db
        .execute(
            "UPDATE content.film SET title = 'Брат 2' WHERE id = $1::text::uuid",
            &[&BRAT],
        )
        .await
        .expect("update");
    let fresh = TestApp::eventually(Duration::from_secs(10), || async {
        let reply = catalog.get(&path, token).await;
        (reply.body["title"] == "Брат 2").then_some(reply)
    })
    .await
    .expect("the renamed film is served within 10 s");
    assert_ne!(fresh.header("etag"), Some(etag.as_str()));
    let stale = catalog
        .get_with(&path, token, &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(stale.status, 200, "an old ETag no longer matches");
}

/// Inserts, updates and deletes of films, a genre rename and a new person link reach
/// the index through LISTEN/NOTIFY, each within a second or so.
#[tokio::test]
async fn etl_applies_changes_incrementally() {
    let catalog = start().await;
    let db = &catalog.db;

    db.execute(
        "INSERT INTO content.film (id, title, description, rating) VALUES
         ('30000000-0000-4000-8000-000000000009', 'Сталкер', 'Зона исполняет желания', 8.1)",
        &[],
    )
    .await
    .expect("insert");
    catalog
        .eventually_internal("/search/films?query=сталкер", |_, body| {
            search_titles(body) == ["Сталкер"]
        })
        .await;

    db.execute(
        "UPDATE content.film SET title = 'Солярис' WHERE id = '30000000-0000-4000-8000-000000000009'",
        &[],
    )
    .await
    .expect("update");
    catalog
        .eventually_internal("/search/films?query=солярис", |_, body| {
            search_titles(body) == ["Солярис"]
        })
        .await;
    let (_, old) = catalog.internal("/search/films?query=сталкер").await;
    assert_eq!(old["total"], 0, "the old title is gone: {old}");

    db.execute(
        &format!("UPDATE content.genre SET name = 'Научная фантастика' WHERE id = '{SCIFI}'"),
        &[],
    )
    .await
    .expect("rename genre");
    catalog
        .eventually_internal(&format!("/search/films/{MATRIX}"), |_, body| {
            body["genre"][0]["name"] == "Научная фантастика"
        })
        .await;
    catalog
        .eventually_internal(&format!("/search/genres/{SCIFI}"), |_, body| {
            body["name"] == "Научная фантастика"
        })
        .await;

    db.execute(
        &format!(
            "INSERT INTO content.film_person (id, film_id, person_id, role)
             VALUES (gen_random_uuid(), '{BRAT}', '{ALYOSHA}', 'actor')"
        ),
        &[],
    )
    .await
    .expect("link person");
    catalog
        .eventually_internal(&format!("/search/films/{BRAT}"), |_, body| {
            body["actors"][0]["uuid"] == ALYOSHA
        })
        .await;
    catalog
        .eventually_internal(&format!("/search/persons/{ALYOSHA}"), |_, body| {
            body["films"].as_array().is_some_and(|f| f.len() == 2)
        })
        .await;
    catalog
        .eventually_internal(&format!("/search/films?person={ALYOSHA}"), |_, body| {
            body["total"] == 2
        })
        .await;

    db.execute(
        &format!("DELETE FROM content.film WHERE id = '{YOLKI}'"),
        &[],
    )
    .await
    .expect("delete");
    catalog
        .eventually_internal(&format!("/search/films/{YOLKI}"), |status, _| status == 404)
        .await;
    // Alyosha's own document no longer lists the deleted film.
    catalog
        .eventually_internal(&format!("/search/persons/{ALYOSHA}"), |_, body| {
            body["films"] == serde_json::json!([{"uuid": BRAT, "roles": ["actor"]}])
        })
        .await;
}

/// Changes made while the host (and its ETL) was stopped are picked up on restart,
/// including deletions, and the index version keeps growing.
#[tokio::test]
async fn etl_catches_up_after_being_stopped() {
    let catalog = start().await;
    let (_, before) = catalog.internal("/search/version").await;
    let version_before = before["version"].as_u64().expect("version");
    let Catalog {
        app,
        db,
        database_url,
        index,
        jwks,
    } = catalog;
    drop(app);
    db.batch_execute(&format!(
        "INSERT INTO content.film (id, title, rating) VALUES ('30000000-0000-4000-8000-000000000010', 'Кин-дза-дза!', 8.2);
         UPDATE content.film SET rating = 9.9 WHERE id = '{BRAT}';
         DELETE FROM content.film WHERE id = '{YOLKI}';
         UPDATE content.person SET full_name = 'Keanu Reeves' WHERE id = '{KEANU}';"
    ))
    .await
    .expect("changes while stopped");

    let catalog = Catalog::serve(database_url, jwks, db, index);
    let (status, version) = catalog.internal("/search/version").await;
    assert_eq!(
        status, 200,
        "the last published index serves at once: {version}"
    );
    catalog
        .eventually_internal("/search/films?query=кин", |_, body| {
            search_titles(body) == ["Кин-дза-дза!"]
        })
        .await;
    catalog
        .eventually_internal(&format!("/search/films/{YOLKI}"), |status, _| status == 404)
        .await;
    let brat = catalog
        .eventually_internal(&format!("/search/films/{BRAT}"), |_, body| {
            body["imdb_rating"] == 9.9
        })
        .await;
    assert_eq!(brat["title"], "Брат");
    catalog
        .eventually_internal(&format!("/search/films/{MATRIX}"), |_, body| {
            body["actors"][0]["full_name"] == "Keanu Reeves"
        })
        .await;
    let (_, after) = catalog.internal("/search/version").await;
    assert!(after["version"].as_u64().expect("version") > version_before);
}

/// `cinema reindex` builds the index from Postgres with a progress line, merged into
/// one segment (searches then walk one term dictionary a field), and the index it
/// builds serves a host that runs no ETL.
#[tokio::test]
async fn reindex_builds_an_index_a_host_can_serve() {
    let (database_url, jwks, db) = fixture_database().await;
    let index = TempDir::new("reindex");
    let output = common::run_cinema(&[
        "reindex",
        "--postgres-url",
        &database_url,
        "--index-dir",
        index.path(),
    ]);
    assert!(output.contains("indexed 8 documents"), "{output}");
    let builds = build_dirs(index.path());
    assert_eq!(builds.len(), 1, "one build on disk");
    let meta_path = std::path::Path::new(index.path())
        .join(&builds[0])
        .join("meta.json");
    let meta: Value = serde_json::from_slice(&std::fs::read(meta_path).expect("meta.json"))
        .expect("meta.json is JSON");
    assert_eq!(
        meta["segments"].as_array().map(Vec::len),
        Some(1),
        "the full build is merged into one segment: {meta}"
    );

    // Postgres "down" for this host's ETL: it retries, the index keeps serving.
    let catalog = Catalog::serve_with_etl(
        database_url,
        jwks,
        db,
        index,
        "postgres://postgres@127.0.0.1:1/cinema",
    );
    let (status, film) = catalog.internal(&format!("/search/films/{MATRIX}")).await;
    assert_eq!(status, 200, "{film}");
    let token = catalog.user().await;
    let list = catalog.get("/api/v1/films", Some(&token)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.ids().len(), 5);
}

/// `cinema reindex` builds beside the served build and switches only once complete: a
/// second run replaces the first (one build left on disk, `current` naming it, the new
/// content in it); a run that cannot reach Postgres fails and leaves the served build
/// as it was; a run against an index a host is serving refuses at once, saying what to
/// do instead.
#[tokio::test]
async fn reindex_switches_only_a_complete_build_and_never_under_a_running_host() {
    let (database_url, jwks, db) = fixture_database().await;
    let index = TempDir::new("reindex_twice");
    let reindex = |postgres_url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
            .args([
                "reindex",
                "--postgres-url",
                postgres_url,
                "--index-dir",
                index.path(),
            ])
            .output()
            .expect("run cinema reindex")
    };
    let builds = || build_dirs(index.path());
    let current = || current_build(index.path());
    assert!(reindex(&database_url).status.success());
    let first = builds();
    assert_eq!(first, [current()], "one build, and it is current");

    db.execute(
        "INSERT INTO content.film (id, title, rating) VALUES
         ('30000000-0000-4000-8000-000000000012', 'Солярис', 8.1)",
        &[],
    )
    .await
    .expect("a new film");
    let second = reindex(&database_url);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stdout).contains("indexed 9 documents"));
    let replaced = builds();
    assert_eq!(replaced, [current()], "one build, and it is current");
    assert_ne!(replaced, first, "the second run built anew");

    let failed = reindex("postgres://postgres@127.0.0.1:1/cinema");
    assert!(!failed.status.success());
    assert_eq!(
        builds(),
        replaced,
        "a failed run leaves the served build alone"
    );
    assert_eq!(current(), replaced[0]);

    let catalog = Catalog::serve(database_url.clone(), jwks, db, index);
    let (status, found) = catalog.internal("/search/films?query=солярис").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(search_titles(&found), ["Солярис"], "{found}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args([
            "reindex",
            "--postgres-url",
            &database_url,
            "--index-dir",
            catalog.index.path(),
        ])
        .output()
        .expect("run cinema reindex");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("/etl/reindex"), "{message}");
    let (status, found) = catalog.internal("/search/films?query=солярис").await;
    assert_eq!(status, 200, "the host still serves: {found}");
}

/// Before the ETL ever built an index (its Postgres unreachable), catalog reads answer
/// 503 `search_unavailable` rather than an error page or a hang; auth still works.
#[tokio::test]
async fn without_an_index_catalog_reads_answer_503_search_unavailable() {
    let (database_url, jwks) = common::platform_database().await;
    let index = TempDir::new("never_built");
    let app = start_app_whose_index_is_never_built(&database_url, &jwks, &index);
    let token = app
        .sign_up_and_log_in(
            &format!("{}@example.com", common::unique("viewer")),
            PASSWORD,
        )
        .await;
    for path in [
        "/api/v1/films".to_owned(),
        "/api/v1/films/search?query=matrix".to_owned(),
        format!("/api/v1/films/{MATRIX}"),
        "/api/v1/genres".to_owned(),
    ] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request reaches cinema");
        assert_eq!(response.status(), 503, "{path}");
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "search_unavailable", "{path}");
    }
}

/// Readiness is not liveness: a host whose index is not built yet (its ETL cannot reach
/// Postgres) is alive (`/health` 200) but not ready (`/ready` 503, waiting for the
/// search index), so a load balancer keeps users away from its empty catalog; a host
/// with a built index is ready and names the version it serves.
#[tokio::test]
async fn a_host_is_ready_only_once_its_search_index_is_built() {
    let (database_url, jwks) = common::platform_database().await;
    let index = TempDir::new("never_built");
    let unbuilt = start_app_whose_index_is_never_built(&database_url, &jwks, &index);
    let probe = |app: &TestApp, path: &str| {
        let request = app.http.get(format!("{}{path}", app.internal)).send();
        async move {
            let response = request.await.expect("internal api");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(probe(&unbuilt, "/health").await.0, 200);
    let (status, body) = probe(&unbuilt, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status": "starting", "waiting_for": ["search_index"]})
    );

    let built = start().await;
    let (status, body) = probe(&built.app, "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["waiting_for"], serde_json::json!([]));
    let (_, version) = built.internal("/search/version").await;
    assert_eq!(body["search_index_version"], version["version"]);
}

/// Postgres lost mid-run (connections cut): the catalog keeps serving the last index,
/// the ETL retries with backoff, and once Postgres is back the changes made meanwhile
/// become searchable without a restart.
#[tokio::test]
async fn etl_survives_losing_postgres_and_catches_up_when_it_returns() {
    let (database_url, jwks, db) = fixture_database().await;
    let mut proxy = common::CuttableProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let etl_url = through_port(&database_url, proxy.port);
    let index = TempDir::new("index");
    let catalog = Catalog::serve_with_etl(database_url, jwks, db, index, &etl_url);
    catalog.wait_until_indexed(MATRIX).await;
    let token = catalog.user().await;

    proxy.cut().await;
    catalog
        .db
        .execute(
            "INSERT INTO content.film (id, title, rating) VALUES
             ('30000000-0000-4000-8000-000000000011', 'Зеркало', 8.0)",
            &[],
        )
        .await
        .expect("insert while the etl is cut off");
    let list = catalog
        .get("/api/v1/films/search?query=матрица", Some(&token))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.ids()[0], MATRIX);
    let (status, _) = catalog.internal("/search/films?query=зеркало").await;
    assert_eq!(status, 200);

    proxy.restore().await;
    catalog
        .eventually_internal_within(
            "/search/films?query=зеркало",
            Duration::from_secs(40),
            |_, body| search_titles(body) == ["Зеркало"],
        )
        .await;
}

/// A flood of notifications (more than the ETL queues) neither stalls the ETL nor
/// loses changes: it falls back to a catch-up, and SIGTERM still stops the host fast.
/// Names that sort differently by bytes and by a collation, a name shared by two
/// persons, a person in every role of one film, a person and a film with no links.
const ORDERING_FIXTURE_SQL: &str = "
INSERT INTO content.genre (id, name) VALUES
    ('10000000-0000-4000-8000-0000000000a1', 'drama'),
    ('10000000-0000-4000-8000-0000000000a2', 'Боевик'),
    ('10000000-0000-4000-8000-0000000000a3', 'анимация');
INSERT INTO content.person (id, full_name) VALUES
    ('20000000-0000-4000-8000-0000000000b1', 'de Niro'),
    ('20000000-0000-4000-8000-0000000000b2', 'Dean Martin'),
    ('20000000-0000-4000-8000-0000000000b3', 'Élodie'),
    ('20000000-0000-4000-8000-0000000000b4', 'adam'),
    ('20000000-0000-4000-8000-0000000000b6', 'Same Name'),
    ('20000000-0000-4000-8000-0000000000b5', 'Same Name'),
    ('20000000-0000-4000-8000-0000000000b7', 'Nobody Linked');
INSERT INTO content.film (id, title, description, creation_date, rating, type, access) VALUES
    ('30000000-0000-4000-8000-0000000000c1', 'Ordering', 'names in order', '2001-01-01', 5.5, 'movie', 'free'),
    ('30000000-0000-4000-8000-0000000000c2', 'Alone', 'no links at all', NULL, NULL, 'tv_show', 'subscription');
INSERT INTO content.film_genre (id, film_id, genre_id)
    SELECT gen_random_uuid(), '30000000-0000-4000-8000-0000000000c1', id FROM content.genre;
INSERT INTO content.film_person (id, film_id, person_id, role)
    SELECT gen_random_uuid(), '30000000-0000-4000-8000-0000000000c1', p.id, r.role
    FROM content.person p, (VALUES ('actor'), ('writer'), ('director')) AS r(role)
    WHERE p.id::text LIKE '20000000-0000-4000-8000-0000000000b%' AND p.full_name <> 'Nobody Linked'
      AND (r.role = 'actor' OR p.id = '20000000-0000-4000-8000-0000000000b3');
INSERT INTO content.film_person (id, film_id, person_id, role) VALUES
    (gen_random_uuid(), '30000000-0000-4000-8000-000000000003', '20000000-0000-4000-8000-0000000000b3', 'writer');
";

/// `POST /etl/reindex` builds beside the served index: an edit made while it runs is
/// searchable before the rebuild goes live, the rebuild goes live with the edit and a
/// deletion made meanwhile, and only the new build is left on disk.
#[tokio::test]
async fn an_edit_during_a_full_reindex_is_searchable_before_the_rebuild_goes_live() {
    let (database_url, jwks, db) = fixture_database().await;
    insert_fillers(&db, FILLER_FILMS).await;
    let index = TempDir::new("rebuild");
    let catalog = Catalog::serve(database_url, jwks, db, index);
    catalog
        .wait_until_indexed_within(MATRIX, Duration::from_secs(120))
        .await;
    let (_, before) = catalog.internal("/search/version").await;
    let version_before = before["version"].as_u64().expect("version");

    let reindex = tokio::spawn(catalog.post_reindex());
    catalog
        .eventually_internal("/search/version", |_, body| body["rebuild"].is_object())
        .await;

    catalog
        .db
        .execute(
            &format!("UPDATE content.film SET title = 'Сталкер' WHERE id = '{MATRIX}'"),
            &[],
        )
        .await
        .expect("edit");
    catalog
        .db
        .execute(
            &format!("DELETE FROM content.film WHERE id = '{YOLKI}'"),
            &[],
        )
        .await
        .expect("delete");
    catalog
        .eventually_internal("/search/films?query=сталкер", |_, body| {
            search_titles(body) == ["Сталкер"]
        })
        .await;
    let (_, during) = catalog.internal("/search/version").await;
    assert!(
        during["rebuild"].is_object() && !reindex.is_finished(),
        "the edit was published while the rebuild ran: {during}"
    );

    let (status, answer) = reindex.await.expect("reindex task");
    assert_eq!(status, 200, "{answer}");
    let rebuilt = answer["version"].as_u64().expect("version");
    assert!(
        rebuilt > during["version"].as_u64().expect("version") && rebuilt > version_before,
        "the rebuild publishes a newer version: {answer}"
    );
    let (_, after) = catalog.internal("/search/version").await;
    assert_eq!(after["version"], rebuilt, "{after}");
    assert!(after.get("rebuild").is_none(), "{after}");
    let (_, found) = catalog.internal("/search/films?query=сталкер").await;
    assert_eq!(search_titles(&found), ["Сталкер"], "{found}");
    let (status, _) = catalog.internal(&format!("/search/films/{YOLKI}")).await;
    assert_eq!(status, 404, "the deletion made during the rebuild holds");
    let (_, fillers) = catalog
        .internal("/search/films?query=filler&page_size=1")
        .await;
    assert_eq!(fillers["total"], FILLER_FILMS, "{fillers}");

    let builds = build_dirs(catalog.index.path());
    assert_eq!(builds.len(), 1, "the replaced build is deleted: {builds:?}");
    assert_eq!(current_build(catalog.index.path()), builds[0]);
}

/// The served index version (`/search/version`).
async fn served_version(catalog: &Catalog) -> u64 {
    let (_, body) = catalog.internal("/search/version").await;
    body["version"].as_u64().expect("version")
}

/// A metric series' value, once it has reached `at_least` (30 s at most).
async fn metric_reaching(catalog: &Catalog, series: &str, at_least: f64) -> f64 {
    let reached = TestApp::eventually(Duration::from_secs(30), || async {
        catalog
            .app
            .metric(series)
            .await
            .filter(|value| *value >= at_least)
    })
    .await;
    reached.unwrap_or_else(|| panic!("{series} did not reach {at_least} within 30 s"))
}

const CATCH_UPS: &str = "cinema_etl_catch_ups_total";
const MASS_UPDATE_BUILDS: &str = r#"cinema_etl_full_builds_total{cause="mass_update"}"#;

/// Renames the Matrix to «Сталкер» and waits until a search finds it.
async fn rename_matrix_until_searchable(catalog: &Catalog) {
    catalog
        .db
        .execute(
            &format!("UPDATE content.film SET title = 'Сталкер' WHERE id = '{MATRIX}'"),
            &[],
        )
        .await
        .expect("edit");
    catalog
        .eventually_internal("/search/films?query=сталкер", |_, body| {
            search_titles(body) == ["Сталкер"]
        })
        .await;
}

/// A bulk import is not a mass update. A full build's watermark trails its start by
/// the overlap (a minute), so for that minute every catch-up rereads the ids of the
/// rows imported just before; the index holds each at the same version (`modified`),
/// so they are skipped: nothing is rebuilt or republished, and an edit is published
/// as usual. (Before, each of those catch-ups rebuilt the whole index on the ETL loop,
/// holding edits for seconds.)
#[tokio::test]
async fn catch_ups_after_a_bulk_import_skip_the_rows_the_index_holds() {
    let catalog = Catalog::serve_fillers_catching_up_every_second("bulk-import").await;
    let built = served_version(&catalog).await;
    let before = metric_reaching(&catalog, CATCH_UPS, 0.0).await;

    // Three catch-ups, each rereading every filler (all modified inside the overlap).
    metric_reaching(&catalog, CATCH_UPS, before + 3.0).await;
    assert_eq!(
        catalog.app.metric(MASS_UPDATE_BUILDS).await.unwrap_or(0.0),
        0.0,
        "no catch-up took the import for a mass update"
    );
    assert_eq!(
        served_version(&catalog).await,
        built,
        "catch-ups that found nothing new publish nothing"
    );
    assert!(build_dirs(catalog.index.path()).len() == 1);

    rename_matrix_until_searchable(&catalog).await;
    assert!(served_version(&catalog).await > built);
    let (_, fillers) = catalog
        .internal("/search/films?query=filler&page_size=1")
        .await;
    assert_eq!(fillers["total"], FILLER_FILMS, "{fillers}");
}

/// A real mass update that no notification announced (made with triggers off, as a
/// restore or a bulk fix by hand would) is found by the periodic catch-up and rebuilt
/// beside the live index, which keeps serving and taking edits: an edit made while
/// the rebuild runs is searchable before it goes live, and the rebuild goes live with
/// the mass update and the edit.
#[tokio::test]
async fn a_mass_update_is_rebuilt_beside_the_live_index_while_edits_keep_flowing() {
    let catalog = Catalog::serve_fillers_catching_up_every_second("mass-update").await;
    let built = served_version(&catalog).await;

    catalog
        .db
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE content.film SET title = 'Remade ' || title, modified = now()
                 WHERE title LIKE 'Filler %';
             SET session_replication_role = origin;",
        )
        .await
        .expect("a mass update without notifications");
    // A catch-up found the mass update and started a rebuild.
    metric_reaching(&catalog, MASS_UPDATE_BUILDS, 1.0).await;
    let (_, version) = catalog.internal("/search/version").await;
    assert!(
        version["rebuild"].is_object(),
        "the rebuild runs beside: {version}"
    );

    rename_matrix_until_searchable(&catalog).await;
    let (_, during) = catalog.internal("/search/version").await;
    assert!(
        during["rebuild"].is_object(),
        "the edit was published while the rebuild ran: {during}"
    );

    catalog
        .eventually_internal_within(
            "/search/films?query=remade&page_size=1",
            Duration::from_secs(120),
            |_, body| body["total"] == FILLER_FILMS,
        )
        .await;
    let (_, found) = catalog.internal("/search/films?query=сталкер").await;
    assert_eq!(
        search_titles(&found),
        ["Сталкер"],
        "the edit went live with the rebuild"
    );
    assert!(served_version(&catalog).await > built);
    assert_eq!(
        catalog.app.metric(MASS_UPDATE_BUILDS).await,
        Some(1.0),
        "one rebuild covered the mass update"
    );
    // The old build goes once its writer has stopped, just after the new one serves.
    let one_build = TestApp::eventually(Duration::from_secs(10), || async {
        (build_dirs(catalog.index.path()).len() == 1).then_some(())
    })
    .await;
    assert!(
        one_build.is_some(),
        "the replaced build is deleted: {:?}",
        build_dirs(catalog.index.path())
    );
}

/// A `POST /etl/reindex` that loses Postgres midway answers 503
/// `search_index_unavailable`, never a 500 and never a half-made index: the served
/// build keeps answering with what it had; once Postgres is back a reindex goes live,
/// and only its build is left on disk.
#[tokio::test]
async fn a_reindex_that_loses_postgres_midway_is_503_and_the_served_index_keeps_answering() {
    let (database_url, jwks, db) = fixture_database().await;
    insert_fillers(&db, FILLER_FILMS).await;
    let mut proxy = common::CuttableProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let etl_url = through_port(&database_url, proxy.port);
    let index = TempDir::new("rebuild_fails");
    let catalog = Catalog::serve_with_etl(database_url, jwks, db, index, &etl_url);
    catalog
        .wait_until_indexed_within(MATRIX, Duration::from_secs(120))
        .await;
    let failing = tokio::spawn(catalog.post_reindex());
    catalog
        .eventually_internal("/search/version", |_, body| body["rebuild"].is_object())
        .await;
    proxy.cut().await;
    let (status, answer) = failing.await.expect("reindex task");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(
        answer["error"]["code"], "search_index_unavailable",
        "{answer}"
    );
    let (status, found) = catalog.internal("/search/films?query=матрица").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        search_titles(&found).first().map(String::as_str),
        Some("Матрица"),
        "{found}"
    );
    let (_, fillers) = catalog
        .internal("/search/films?query=filler&page_size=1")
        .await;
    assert_eq!(fillers["total"], FILLER_FILMS, "{fillers}");

    proxy.restore().await;
    let mut answered = (0, Value::Null);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        // 503 while the ETL is still reconnecting.
        answered = catalog.post_reindex().await;
        if answered.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        answered.0, 200,
        "a reindex once Postgres is back: {}",
        answered.1
    );
    let builds = build_dirs(catalog.index.path());
    assert_eq!(
        builds.len(),
        1,
        "failed and replaced builds are deleted: {builds:?}"
    );
}

/// A full build reads the whole catalog with a scan per table and joins it itself; each
/// film and person it builds, and the row version it takes it at, equals what an
/// incremental update reads for that id (the aggregates in Postgres), orders included,
/// with or without a second connection.
#[tokio::test]
async fn a_full_build_reads_each_document_as_an_incremental_update_does() {
    use cinema_etl::source;
    use futures::TryStreamExt;

    let (database_url, _jwks) = common::platform_database().await;
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    };
    let db = connect().await;
    db.batch_execute(FIXTURE_SQL).await.expect("fixture");
    db.batch_execute(ORDERING_FIXTURE_SQL)
        .await
        .expect("ordering fixture");
    let ids = |table: &'static str| {
        let db = &db;
        async move {
            db.query(&format!("SELECT id FROM content.{table} ORDER BY id"), &[])
                .await
                .expect("ids")
                .iter()
                .map(|row| row.get::<_, uuid::Uuid>(0))
                .collect::<Vec<_>>()
        }
    };
    let film_ids = ids("film").await;
    let person_ids = ids("person").await;
    let mut expected_films = source::films_by_ids(&db, &film_ids).await.expect("films");
    let mut expected_persons = source::persons_by_ids(&db, &person_ids)
        .await
        .expect("persons");
    expected_films.sort_by(|(a, _), (b, _)| a.uuid.cmp(&b.uuid));
    expected_persons.sort_by(|(a, _), (b, _)| a.uuid.cmp(&b.uuid));
    assert_eq!(expected_films.len(), 7);
    assert_eq!(expected_persons.len(), 10);
    let (ordering, _) = expected_films
        .iter()
        .find(|(f, _)| f.title == "Ordering")
        .expect("ordering film");
    assert_eq!(ordering.actors.len(), 6, "{ordering:?}");
    assert_eq!(ordering.genre.len(), 6, "every genre");

    let side = connect().await;
    for side in [None, Some(&side)] {
        let mut links = source::CatalogLinks::read(&db, side).await.expect("links");
        let mut films: Vec<_> = links
            .films(&db)
            .await
            .expect("film rows")
            .try_collect()
            .await
            .expect("films");
        let mut persons: Vec<_> = links.persons().collect();
        films.sort_by(|(a, _), (b, _)| a.uuid.cmp(&b.uuid));
        persons.sort_by(|(a, _), (b, _)| a.uuid.cmp(&b.uuid));
        assert_eq!(films, expected_films, "side connection: {}", side.is_some());
        assert_eq!(
            persons,
            expected_persons,
            "side connection: {}",
            side.is_some()
        );
    }
}

#[tokio::test]
async fn a_notification_flood_falls_back_to_a_catch_up() {
    let mut catalog = start().await;
    catalog
        .db
        .batch_execute(
            "INSERT INTO content.film (id, title, rating)
             SELECT gen_random_uuid(), 'Flood ' || g, 5.0 FROM generate_series(1, 25000) g",
        )
        .await
        .expect("25000 inserts in one transaction");
    catalog
        .eventually_internal_within(
            "/search/films?query=flood&page_size=1",
            Duration::from_secs(60),
            |_, body| body["total"] == 25000,
        )
        .await;
    catalog
        .db
        .execute(
            "INSERT INTO content.film (id, title) VALUES
             ('30000000-0000-4000-8000-000000000012', 'Иваново детство')",
            &[],
        )
        .await
        .expect("insert after the flood");
    catalog
        .eventually_internal("/search/films?query=иваново", |_, body| {
            search_titles(body) == ["Иваново детство"]
        })
        .await;
    assert!(
        catalog.app.terminate_within(Duration::from_secs(10)),
        "cinema did not stop within 10 s of SIGTERM"
    );
}
