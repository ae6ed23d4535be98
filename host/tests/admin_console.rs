//! The admin console and its JSON API on the real spin.toml: sign-in through auth,
//! the role rules, CSRF, content editing with its audit entries, user administration
//! (block, roles, impersonation), a console edit reaching the public catalog through
//! the ETL, and the browsable API docs at `/api/docs`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
/// Roles of migrations/postgres/0001_auth.sql.
const ADMIN_ROLE: &str = "00000000-0000-4000-8000-000000000001";
const MANAGER_ROLE: &str = "00000000-0000-4000-8000-000000000002";

struct Console {
    app: TestApp,
    database_url: String,
    internal: String,
    _index: TempDir,
}

/// `cinema up` with the real spin.toml on a known port (the console reaches auth at
/// it), its ETL indexing this test's database.
async fn start() -> Console {
    let (database_url, jwks) = common::platform_database().await;
    let port = free_port();
    let internal_port = free_port();
    let index = TempDir::new("admin_index");
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env("SPIN_VARIABLE_JWKS", &jwks)
        .env(
            "SPIN_VARIABLE_AUTH_API_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .env(
            "SPIN_VARIABLE_INTERNAL_API_URL",
            format!("http://127.0.0.1:{internal_port}"),
        )
        .arg("--index-dir")
        .arg(index.path())
        .arg("--etl-postgres-url")
        .arg(&database_url);
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    options.internal_listen = Some(format!("127.0.0.1:{internal_port}"));
    let app = spawn_app(options);
    Console {
        app,
        database_url,
        internal: format!("http://127.0.0.1:{internal_port}"),
        _index: index,
    }
}

impl Console {
    /// Signs up a user with `role` (granted in Postgres, or none); returns the email.
    async fn user(&self, prefix: &str, role: Option<&str>) -> String {
        let email = format!("{}@example.com", common::unique(prefix));
        self.app.sign_up_and_log_in(&email, PASSWORD).await;
        if let Some(role) = role {
            common::grant_role(&self.database_url, &email, role).await;
        }
        email
    }

    /// An access and refresh token of `email`.
    async fn tokens(&self, email: &str) -> (String, String) {
        self.app.log_in_for_pair(email, PASSWORD).await
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches cinema");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: self.app.base.clone(),
            cookies: HashMap::new(),
            forwarded_for: None,
        }
    }

    /// A browser behind a trusted proxy that names it as `address`.
    fn browser_at(&self, address: &str) -> Browser {
        Browser {
            forwarded_for: Some(address.to_owned()),
            ..self.browser()
        }
    }
}

/// A cookie-keeping client that does not follow redirects, like a browser's forms.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    /// `X-Forwarded-For` sent with every request (a proxy in front naming the browser).
    forwarded_for: Option<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let value = value.to_str().unwrap_or_default();
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header());
        if let Some(address) = &self.forwarded_for {
            request = request.header("x-forwarded-for", address);
        }
        request
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET reaches cinema");
        self.page(response).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .request(reqwest::Method::POST, path)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .expect("POST reaches cinema");
        self.page(response).await
    }

    async fn page(&mut self, response: reqwest::Response) -> Page {
        self.remember(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page {
            status,
            location,
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// The session's CSRF token (the cookie every form repeats).
    fn csrf(&self) -> String {
        self.cookies
            .get("cinema_admin_csrf")
            .cloned()
            .expect("signed in: a CSRF cookie")
    }

    /// Signs in through the form; answers the page it ends on.
    async fn sign_in(&mut self, email: &str) -> Page {
        self.sign_in_with(email, PASSWORD).await
    }

    /// Signs in through the form with `password`.
    async fn sign_in_with(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200);
        let token = self
            .cookies
            .get("cinema_admin_login")
            .cloned()
            .expect("login token cookie");
        assert!(form.body.contains(&token), "the form carries its token");
        self.post(
            "/admin/login",
            &[
                ("csrf_token", &token),
                ("email", email),
                ("password", password),
                ("next", "/admin/films"),
            ],
        )
        .await
    }
}

/// The id at the end of a redirect to `/admin/films/{id}?...`.
fn id_in(location: &str) -> String {
    location
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .expect("an id in the location")
        .to_owned()
}

/// A manager signs in, creates a film, a genre and a person, links them (the genre by
/// typed name, as without JavaScript), and the film is then found by the public
/// catalog search with its genre and actor.
#[tokio::test]
async fn manager_creates_a_film_with_links_that_the_catalog_search_finds() {
    let console = start().await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let mut browser = console.browser();
    let landed = browser.sign_in(&manager).await;
    assert_eq!(landed.status, 303, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/admin/films"));
    let list = browser.get("/admin/films").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("New film"));
    let csrf = browser.csrf();

    let title = format!("Zerkalo {}", &common::unique("t")[2..10]);
    let created = browser
        .post(
            "/admin/films",
            &[
                ("csrf_token", &csrf),
                ("title", &title),
                ("description", "A film about memory."),
                ("creation_date", "1975-03-07"),
                ("rating", "8.1"),
                ("type", "movie"),
                ("access", "free"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let film = id_in(created.location.as_deref().expect("location"));

    let genre = browser
        .post(
            "/admin/genres",
            &[
                ("csrf_token", &csrf),
                ("name", "Arthouse"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(genre.status, 303, "{}", genre.body);
    let person = browser
        .post(
            "/admin/persons",
            &[("csrf_token", &csrf), ("full_name", "Margarita Terekhova")],
        )
        .await;
    let person_id = id_in(person.location.as_deref().expect("location"));

    let linked = browser
        .post(
            &format!("/admin/films/{film}/genres"),
            &[
                ("csrf_token", &csrf),
                ("genre_id", ""),
                ("genre_name", "arthouse"),
            ],
        )
        .await;
    assert_eq!(linked.status, 303, "{}", linked.body);
    let linked = browser
        .post(
            &format!("/admin/films/{film}/persons"),
            &[
                ("csrf_token", &csrf),
                ("person_id", &person_id),
                ("person_name", ""),
                ("role", "actor"),
            ],
        )
        .await;
    assert_eq!(linked.status, 303, "{}", linked.body);
    let unknown = browser
        .post(
            &format!("/admin/films/{film}/genres"),
            &[
                ("csrf_token", &csrf),
                ("genre_id", ""),
                ("genre_name", "Nonexistent"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.body.contains("no genre is called"),
        "{}",
        unknown.body
    );

    let page = browser.get(&format!("/admin/films/{film}")).await;
    assert!(page.body.contains("Arthouse") && page.body.contains("Margarita Terekhova"));

    // The public catalog, through the ETL.
    let viewer = console
        .app
        .sign_up_and_log_in(
            &format!("{}@example.com", common::unique("viewer")),
            PASSWORD,
        )
        .await;
    let found = TestApp::eventually(Duration::from_secs(20), || async {
        let (status, body) = console
            .api(
                reqwest::Method::GET,
                "/api/v1/films/search?query=zerkalo",
                &viewer,
                None,
            )
            .await;
        (status == 200
            && body
                .as_array()
                .is_some_and(|items| items.iter().any(|f| f["uuid"] == film.as_str())))
        .then_some(body)
    })
    .await
    .expect("the film is searchable within 20 s");
    assert!(found.to_string().contains(&title));
    let (status, detail) = console
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/films/{film}"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["genre"][0]["name"], "Arthouse");
    assert_eq!(detail["actors"][0]["full_name"], "Margarita Terekhova");
    let _ = &console.internal;
}

/// Console writes without the session's CSRF token, with a wrong one, or from another
/// origin are refused (403 `csrf_failed`) and change nothing; so is a sign-in without
/// the form's token.
#[tokio::test]
async fn console_writes_without_a_valid_csrf_token_are_refused() {
    let console = start().await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let mut browser = console.browser();
    let forged_login = browser
        .post(
            "/admin/login",
            &[("email", &manager), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(forged_login.status, 403);
    assert_eq!(browser.sign_in(&manager).await.status, 303);
    let csrf = browser.csrf();
    for token in ["", "not-the-token"] {
        let refused = browser
            .post(
                "/admin/films",
                &[("csrf_token", token), ("title", "Forged")],
            )
            .await;
        assert_eq!(refused.status, 403, "token {token:?}");
        assert!(refused.body.contains("another site"), "{}", refused.body);
    }
    let cross_origin = browser
        .http
        .post(format!("{}/admin/films", browser.base))
        .header(reqwest::header::COOKIE, browser.cookie_header())
        .header(reqwest::header::ORIGIN, "http://evil.example")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("csrf_token={csrf}&title=Forged"))
        .send()
        .await
        .expect("post");
    assert_eq!(cross_origin.status(), 403);
    // The API with cookies needs the header too.
    let api = browser
        .http
        .post(format!("{}/admin/api/films", browser.base))
        .header(reqwest::header::COOKIE, browser.cookie_header())
        .json(&json!({"title": "Forged"}))
        .send()
        .await
        .expect("post");
    assert_eq!(api.status(), 403);
    assert_eq!(
        api.json::<Value>().await.expect("json")["error"]["code"],
        "csrf_failed"
    );
    let (token, _) = console.tokens(&manager).await;
    let (_, films) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/films?query=Forged",
            &token,
            None,
        )
        .await;
    assert_eq!(films["total"], 0, "{films}");
}

/// Only admins and managers get in; managers edit content but not users; admins do
/// both.
#[tokio::test]
async fn role_rules_keep_viewers_out_and_managers_away_from_users() {
    let console = start().await;
    let viewer = console.user("viewer", None).await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let admin = console.user("admin", Some(ADMIN_ROLE)).await;

    let mut browser = console.browser();
    let refused = browser.sign_in(&viewer).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("only admins and managers"),
        "{}",
        refused.body
    );
    assert!(!browser.cookies.contains_key("cinema_admin"));
    let unsigned = console.browser().get("/admin/films").await;
    assert_eq!(unsigned.status, 303);
    assert_eq!(
        unsigned.location.as_deref(),
        Some("/admin/login?next=%2Fadmin%2Ffilms")
    );

    let (viewer_token, _) = console.tokens(&viewer).await;
    let (status, body) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/films",
            &viewer_token,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/films",
            "not-a-token",
            None,
        )
        .await;
    assert_eq!(status, 401);

    let (manager_token, _) = console.tokens(&manager).await;
    let (status, _) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/films",
            &manager_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users",
            &manager_token,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let mut manager_browser = console.browser();
    manager_browser.sign_in(&manager).await;
    let users_page = manager_browser.get("/admin/users").await;
    assert_eq!(users_page.status, 403);
    assert!(
        !manager_browser
            .get("/admin/films")
            .await
            .body
            .contains("href=\"/admin/users\"")
    );

    let (admin_token, _) = console.tokens(&admin).await;
    let (status, users) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users?query=example.com",
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{users}");
    assert!(users["total"].as_i64().expect("total") >= 3);
    let mut admin_browser = console.browser();
    admin_browser.sign_in(&admin).await;
    let page = admin_browser.get("/admin/users").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&viewer));
}

/// Every content change is in the audit log with who made it, what it was and the
/// fields before and after; a no-op save adds nothing.
#[tokio::test]
async fn content_changes_are_audited_with_who_what_and_the_diff() {
    let console = start().await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let (token, _) = console.tokens(&manager).await;
    let put = reqwest::Method::PUT;
    let (status, created) = console
        .api(
            reqwest::Method::POST,
            "/admin/api/films",
            &token,
            Some(json!({"title": "Draft", "rating": 5})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let film = created["id"].as_str().expect("id").to_owned();
    let (status, updated) = console
        .api(
            put.clone(),
            &format!("/admin/api/films/{film}"),
            &token,
            Some(json!({"title": "Final", "rating": 5})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["title"], "Final");
    let (status, _) = console
        .api(
            put.clone(),
            &format!("/admin/api/films/{film}"),
            &token,
            Some(json!({"title": "Final", "rating": 5})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, genre) = console
        .api(
            reqwest::Method::POST,
            "/admin/api/genres",
            &token,
            Some(json!({"name": "Noir"})),
        )
        .await;
    let genre = genre["id"].as_str().expect("genre id").to_owned();
    let (status, _) = console
        .api(
            put,
            &format!("/admin/api/films/{film}/genres/{genre}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            "/admin/api/genres",
            &token,
            Some(json!({"name": "Noir"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            "/admin/api/films",
            &token,
            Some(json!({"title": "", "rating": 11})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "title");
    let (status, _) = console
        .api(
            reqwest::Method::DELETE,
            &format!("/admin/api/films/{film}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);

    let (status, log) = console
        .api(
            reqwest::Method::GET,
            &format!("/admin/api/audit?entity_id={film}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["items"].as_array().expect("items");
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "film.create",
            "film.update",
            "film.genre_add",
            "film.delete"
        ]
    );
    for entry in entries {
        assert_eq!(entry["actor_email"], manager.as_str());
        assert_eq!(entry["entity_type"], "film");
    }
    let update = &entries[2];
    assert_eq!(update["before"]["title"], "Draft");
    assert_eq!(update["after"]["title"], "Final");
    assert_eq!(entries[1]["after"]["genre"], "Noir");
    assert_eq!(entries[0]["before"]["title"], "Final");
    assert!(entries[0]["after"].is_null());

    let mut browser = console.browser();
    browser.sign_in(&manager).await;
    let page = browser.get(&format!("/admin/audit?entity_id={film}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("film.update")
            && page.body.contains("Draft")
            && page.body.contains("Final")
    );
}

/// An admin blocks a user: the user's refresh token and password stop working at
/// once, and the block is audited. An admin impersonates another user: a token with
/// `act` naming the admin and no refresh token; admins cannot be impersonated and
/// managers cannot impersonate.
#[tokio::test]
async fn admins_block_users_and_impersonate_them() {
    let console = start().await;
    let admin = console.user("admin", Some(ADMIN_ROLE)).await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let victim = console.user("blocked", None).await;
    let other = console.user("other", None).await;
    let (admin_token, _) = console.tokens(&admin).await;
    let (_, victim_refresh) = console.tokens(&victim).await;
    let id_of = |users: &Value, email: &str| {
        users["items"]
            .as_array()
            .and_then(|items| items.iter().find(|u| u["email"] == email))
            .and_then(|u| u["id"].as_str())
            .map(str::to_owned)
            .expect("user listed")
    };
    let (_, users) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users?page_size=200",
            &admin_token,
            None,
        )
        .await;
    let (victim_id, other_id, admin_id) = (
        id_of(&users, &victim),
        id_of(&users, &other),
        id_of(&users, &admin),
    );

    let (status, _) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{victim_id}/block"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = console
        .app
        .post_json(
            "/api/v1/auth/refresh",
            json!({"refresh_token": victim_refresh}),
        )
        .await;
    assert!(
        status == 401 || status == 403,
        "refresh after block: {status} {body}"
    );
    let (status, _) = console
        .app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": victim, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{admin_id}/block"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("cannot_block_self"))
    );

    let (status, impersonation) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{other_id}/impersonate"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{impersonation}");
    assert!(impersonation.get("refresh_token").is_none());
    let acting = impersonation["access_token"].as_str().expect("token");
    let (status, me) = console
        .api(reqwest::Method::GET, "/api/v1/auth/me", acting, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], other.as_str());
    let claims: Value = {
        use base64::Engine;
        let payload = acting.split('.').nth(1).expect("payload");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(claims["act"]["sub"], admin_id.as_str());
    assert_eq!(claims["sub"], other_id.as_str());

    let (manager_token, _) = console.tokens(&manager).await;
    let (status, _) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{other_id}/impersonate"),
            &manager_token,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, users) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users?page_size=200",
            &admin_token,
            None,
        )
        .await;
    let manager_id = id_of(&users, &manager);
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{manager_id}/impersonate"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "managers do not manage users, so they can be impersonated: {body}"
    );
    let (status, body) = console
        .api(
            reqwest::Method::PUT,
            &format!("/admin/api/users/{other_id}/roles/admin"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{other_id}/impersonate"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("cannot_impersonate_admin"))
    );

    let (_, log) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/audit?entity_type=user",
            &admin_token,
            None,
        )
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "user.block",
            "user.impersonate",
            "user.impersonate",
            "user.role_grant"
        ]
    );
    let grant = &log["items"][0];
    assert_eq!(grant["before"]["roles"], json!([]));
    assert_eq!(grant["after"]["roles"], json!(["admin"]));

    // In the console: impersonation shows the banner and the claims; one click ends it.
    let mut browser = console.browser();
    browser.sign_in(&admin).await;
    let csrf = browser.csrf();
    let (_, users) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users?page_size=200",
            &admin_token,
            None,
        )
        .await;
    let target = console.user("target", None).await;
    let (_, users_after) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/users?page_size=200",
            &admin_token,
            None,
        )
        .await;
    let _ = users;
    let target_id = id_of(&users_after, &target);
    let started = browser
        .post(
            &format!("/admin/users/{target_id}/impersonate"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(started.location.as_deref(), Some("/admin/impersonation"));
    let shown = browser.get("/admin/impersonation").await;
    assert!(
        shown.body.contains("class=\"impersonation\""),
        "banner shown"
    );
    assert!(
        shown
            .body
            .contains(&format!("<strong id=\"act\">{admin_id}</strong>"))
            && shown.body.contains("&quot;act&quot;"),
        "act claim shown: {}",
        shown.body
    );
    let token = browser
        .cookies
        .get("cinema_admin_act")
        .cloned()
        .expect("impersonation cookie");
    let ended = browser
        .post("/admin/impersonation/end", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(ended.status, 303);
    assert!(!browser.cookies.contains_key("cinema_admin_act"));
    let (status, _) = console
        .api(reqwest::Method::GET, "/api/v1/auth/me", &token, None)
        .await;
    assert_eq!(status, 401, "the impersonation session ended");
}

/// Issue 14, item 4: failed console sign-ins count against the browser's own address
/// (passed through by the console, which calls auth over loopback), never against the
/// console: one browser that exhausts its address's budget does not lock out another.
#[tokio::test]
async fn console_sign_ins_are_throttled_by_the_browsers_address_not_the_consoles() {
    let console = start().await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let mut attacker = console.browser_at("203.0.113.5");
    // 20 wrong passwords, each for another (unknown) account: the address's limit (20)
    // is used up, no account's; the next attempt from it is refused.
    for n in 0..20 {
        let page = attacker
            .sign_in_with(&format!("guess{n}@example.com"), "Wrong-pass-1")
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "attempt {n}: {}",
            page.body
        );
    }
    let locked = attacker.sign_in(&manager).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(
        locked.body.contains("too many failed attempts"),
        "{}",
        locked.body
    );

    let mut colleague = console.browser_at("198.51.100.7");
    let landed = colleague.sign_in(&manager).await;
    assert_eq!(
        landed.status,
        StatusCode::SEE_OTHER,
        "another browser signs in: {}",
        landed.body
    );
    let mut direct = console.browser();
    assert_eq!(
        direct.sign_in(&manager).await.status,
        StatusCode::SEE_OTHER,
        "a browser on the console's own address is not throttled by the proxy's count"
    );
}

/// Issue 14, item 12: a console write from a session whose CSRF cookie is gone is
/// refused (the check fails closed), and the next page renews the cookie.
#[tokio::test]
async fn a_console_write_without_the_csrf_cookie_fails_closed() {
    let console = start().await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let mut browser = console.browser();
    assert_eq!(
        browser.sign_in(&manager).await.status,
        StatusCode::SEE_OTHER
    );
    browser.cookies.remove("cinema_admin_csrf");
    for token in ["", "anything"] {
        let refused = browser
            .post(
                "/admin/films",
                &[("csrf_token", token), ("title", "Forged without a cookie")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    browser.cookies.remove("cinema_admin_csrf");
    let api = browser
        .request(reqwest::Method::POST, "/admin/api/films")
        .json(&json!({"title": "Forged without a cookie"}))
        .send()
        .await
        .expect("post");
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    browser.cookies.remove("cinema_admin_csrf");
    let page = browser.get("/admin/films").await;
    assert_eq!(page.status, StatusCode::OK);
    let renewed = browser.csrf();
    assert!(
        page.body.contains(&renewed),
        "the form carries the new token"
    );
    let created = browser
        .post(
            "/admin/films",
            &[
                ("csrf_token", &renewed),
                ("title", "Made with a renewed token"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let (token, _) = console.tokens(&manager).await;
    let (_, films) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/films?query=Forged",
            &token,
            None,
        )
        .await;
    assert_eq!(films["total"], 0, "{films}");
}

/// The id of `email` in the console's user list.
async fn user_id_of(console: &Console, admin_token: &str, email: &str) -> String {
    let (_, users) = console
        .api(
            reqwest::Method::GET,
            &format!("/admin/api/users?query={email}"),
            admin_token,
            None,
        )
        .await;
    users["items"]
        .as_array()
        .and_then(|items| items.iter().find(|u| u["email"] == email))
        .and_then(|u| u["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{email} listed: {users}"))
}

/// Issue 14, item 10: an admin impersonating a manager holds a token that cannot use
/// the console, nor change the manager's email or password, sessions, providers or
/// roles; the impersonation itself is audited under the admin.
#[tokio::test]
async fn an_impersonation_token_cannot_enter_the_console_or_touch_account_security() {
    let console = start().await;
    let admin = console.user("admin", Some(ADMIN_ROLE)).await;
    let manager = console.user("manager", Some(MANAGER_ROLE)).await;
    let (admin_token, _) = console.tokens(&admin).await;
    let manager_id = user_id_of(&console, &admin_token, &manager).await;
    let admin_id = user_id_of(&console, &admin_token, &admin).await;
    let (status, impersonation) = console
        .api(
            reqwest::Method::POST,
            &format!("/admin/api/users/{manager_id}/impersonate"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{impersonation}");
    let acting = impersonation["access_token"].as_str().expect("token");

    let (status, body) = console
        .api(reqwest::Method::GET, "/admin/api/films", acting, None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "console API as the manager: {body}"
    );
    let (status, _) = console
        .api(
            reqwest::Method::POST,
            "/admin/api/films",
            acting,
            Some(json!({"title": "Made under another name"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let attempts: [(reqwest::Method, &str, Option<Value>); 7] = [
        (
            reqwest::Method::PATCH,
            "/api/v1/auth/me",
            Some(json!({"email": "taken.over@example.com", "current_password": PASSWORD})),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/me/password",
            Some(json!({"current_password": PASSWORD, "new_password": "Another-pass-9"})),
        ),
        (reqwest::Method::POST, "/api/v1/auth/logout_all", None),
        (
            reqwest::Method::DELETE,
            &format!("/api/v1/auth/me/sessions/{}", uuid::Uuid::new_v4()),
            None,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/oauth/google/link",
            None,
        ),
        (reqwest::Method::GET, "/api/v1/auth/roles", None),
        (
            reqwest::Method::POST,
            &format!("/api/v1/auth/users/{admin_id}/roles/manager"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = console.api(method.clone(), path, acting, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("impersonation_forbidden")),
            "{method} {path}: {answer}"
        );
    }
    // The manager's account is untouched: the password still works.
    console.tokens(&manager).await;
    let (_, log) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/audit?entity_type=user",
            &admin_token,
            None,
        )
        .await;
    let impersonation_entry = log["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["action"] == "user.impersonate"))
        .cloned()
        .expect("audited");
    assert_eq!(
        impersonation_entry["actor_email"],
        admin.as_str(),
        "{impersonation_entry}"
    );
}

/// Issue 14, item 11: role changes are audited with before and after, and a holder of
/// `users:manage` alone grants ordinary roles but not a role that can hand out roles.
#[tokio::test]
async fn role_changes_are_audited_and_only_role_managers_grant_privileged_roles() {
    let console = start().await;
    let admin = console.user("admin", Some(ADMIN_ROLE)).await;
    let (admin_token, _) = console.tokens(&admin).await;
    let (status, support) = console
        .api(
            reqwest::Method::POST,
            "/api/v1/auth/roles",
            &admin_token,
            Some(json!({"name": "support", "description": "helps users", "permissions": ["users:manage"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{support}");
    let support_id = support["id"].as_str().expect("id").to_owned();
    let (status, updated) = console
        .api(
            reqwest::Method::PATCH,
            &format!("/api/v1/auth/roles/{support_id}"),
            &admin_token,
            Some(json!({"description": "helps viewers", "permissions": ["users:manage", "analytics:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (status, bad) = console
        .api(
            reqwest::Method::PATCH,
            &format!("/api/v1/auth/roles/{support_id}"),
            &admin_token,
            Some(json!({"permissions": ["no:such"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    let helper = console.user("support", None).await;
    let viewer = console.user("viewer", None).await;
    let helper_id = user_id_of(&console, &admin_token, &helper).await;
    let viewer_id = user_id_of(&console, &admin_token, &viewer).await;
    let (status, _) = console
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/auth/users/{helper_id}/roles/support"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (helper_token, _) = console.tokens(&helper).await;
    for privileged in ["admin", "support"] {
        let (status, body) = console
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/auth/users/{viewer_id}/roles/{privileged}"),
                &helper_token,
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("privileged_role")),
            "{privileged}: {body}"
        );
    }
    let (status, body) = console
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/auth/users/{viewer_id}/roles/subscriber"),
            &helper_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "ordinary roles: {body}");

    let (status, _) = console
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/auth/roles/{support_id}"),
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, log) = console
        .api(
            reqwest::Method::GET,
            "/admin/api/audit?entity_type=role",
            &admin_token,
            None,
        )
        .await;
    let entries: Vec<&Value> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .rev()
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["role.create", "role.update", "role.delete"],
        "{log}"
    );
    assert_eq!(entries[0]["before"], Value::Null);
    assert_eq!(entries[0]["after"]["permissions"], json!(["users:manage"]));
    assert_eq!(entries[1]["before"]["description"], "helps users");
    assert_eq!(
        entries[1]["after"]["permissions"],
        json!(["analytics:read", "users:manage"])
    );
    assert_eq!(entries[2]["before"]["name"], "support");
    assert_eq!(entries[2]["after"], Value::Null);
    assert!(entries.iter().all(|e| e["actor_email"] == admin.as_str()));
}

/// `/api/docs` (the docs component of spin.toml) serves its page with a strict CSP and
/// Swagger UI's files under their versioned, immutable paths; the documents it shows
/// are this origin's; unknown paths and writes get the platform's JSON errors.
#[tokio::test]
async fn api_docs_are_served_with_a_strict_csp_and_unknown_paths_get_json_errors() {
    let console = start().await;
    let page = console.app.get("/api/docs").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.expect("page");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let assets: Vec<&str> = html
        .split('"')
        .filter(|part| part.starts_with("/api/docs/"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        let reply = console.app.get(asset).await;
        assert_eq!(reply.status(), 200, "{asset}");
        let cache = reply.headers()["cache-control"].to_str().expect("cache");
        if asset.contains("/swagger-ui/") {
            assert!(cache.contains("immutable"), "{asset}: {cache}");
        }
        assert!(!reply.bytes().await.expect("body").is_empty(), "{asset}");
    }
    let initializer = console.app.get("/api/docs/docs.js").await;
    let initializer = initializer.text().await.expect("docs.js");
    for document in [
        "/api/v1/auth/openapi.json",
        "/api/v1/openapi.json",
        "/api/v1/ugc/openapi.json",
    ] {
        assert!(initializer.contains(document), "{document}");
        let reply = console.app.get(document).await;
        assert_eq!(reply.status(), 200, "{document}");
        let document: Value = reply.json().await.expect("an OpenAPI document");
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
    }

    let missing = console
        .app
        .get("/api/docs/swagger-ui/0.0.0/swagger-ui.css")
        .await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "route_not_found");
    let write = console
        .app
        .http
        .post(console.app.url("/api/docs"))
        .send()
        .await
        .expect("post");
    assert_eq!(write.status(), 405);
    assert_eq!(write.headers()["allow"], "GET, HEAD");
    let body: Value = write.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

/// Headless Chromium (Debian's `chromium`) driven through chromedriver by a WebDriver
/// client, against the same platform (the console and the API docs).
mod in_chromium {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use fantoccini::{Client, ClientBuilder, Locator};
    use serde_json::{Value, json};

    use super::{ADMIN_ROLE, Console, MANAGER_ROLE, PASSWORD, start};
    use crate::common::{self, TestApp, free_port};

    /// chromedriver on a free loopback port, stopped on drop.
    struct Driver {
        child: Child,
        port: u16,
    }

    impl Driver {
        fn start() -> Self {
            let port = free_port();
            // Chromium reads the clock in Tokyo (UTC+9 all year), so pages that show
            // local time differ from UTC in a way the tests can check.
            let mut child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .env("TZ", "Asia/Tokyo")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver (`make test` installs Debian's chromium-driver)");
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not listen on {port}");
        }

        async fn browser(&self) -> Client {
            let mut capabilities = serde_json::Map::new();
            capabilities.insert(
                "goog:chromeOptions".into(),
                json!({
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1360,900",
                             "--lang=en-US"],
                }),
            );
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
                .expect("a chromium session")
        }
    }

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn fill(browser: &Client, css: &str, text: &str) {
        let field = browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(browser: &Client, css: &str) {
        browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    async fn path(browser: &Client) -> String {
        browser.current_url().await.expect("url").path().to_owned()
    }

    async fn sign_in(browser: &Client, console: &Console, email: &str) {
        browser
            .goto(&console.app.url("/admin/login"))
            .await
            .expect("login page");
        fill(browser, "input[name=email]", email).await;
        fill(browser, "input[name=password]", PASSWORD).await;
        click(browser, "form.card button[type=submit]").await;
        // The click returns before the navigation the form starts has finished.
        for _ in 0..100 {
            if path(browser).await != "/admin/login" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "still on the login page: {}",
            browser.source().await.unwrap_or_default()
        );
    }

    /// Waits until the page source contains `text`.
    async fn until_page_has(browser: &Client, text: &str) -> String {
        let mut source = String::new();
        for _ in 0..100 {
            source = browser.source().await.expect("source");
            if source.contains(text) {
                return source;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed {text:?}: {source}");
    }

    /// Types into a picker until its suggestion list (filled by the page's script from
    /// the JSON API) offers `name`, then picks it.
    async fn pick(browser: &Client, picker: &str, name: &str) {
        fill(browser, &format!("input[data-picker={picker}]"), name).await;
        let list = if picker == "genres" {
            "#genre-options"
        } else {
            "#person-options"
        };
        for _ in 0..100 {
            let offered = browser
                .execute(
                    &format!("return Array.from(document.querySelectorAll('{list} option')).map(o => o.value);"),
                    vec![],
                )
                .await
                .expect("script");
            if offered
                .as_array()
                .is_some_and(|v| v.iter().any(|o| o == name))
            {
                // Typing the last letter again fires `input` with the suggestions loaded.
                let field = browser
                    .find(Locator::Css(&format!("input[data-picker={picker}]")))
                    .await
                    .expect("picker");
                field
                    .send_keys(fantoccini::key::Key::Backspace.to_string().as_str())
                    .await
                    .expect("key");
                field.send_keys(&name[name.len() - 1..]).await.expect("key");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the {picker} picker never offered {name}");
    }

    /// A manager signs in with the browser, creates a film, attaches a genre and an
    /// actor with the search-as-you-type pickers, and the film is then found through
    /// the catalog search API; the users pages refuse the manager. The film page is
    /// saved as a screenshot (docs/admin-film-edit.png when CINEMA_SCREENSHOT_DIR=docs).
    #[tokio::test]
    async fn a_manager_creates_a_film_in_chromium_that_the_catalog_search_finds() {
        let console = start().await;
        let manager = console.user("manager", Some(MANAGER_ROLE)).await;
        let (token, _) = console.tokens(&manager).await;
        for (path, body) in [
            (
                "/admin/api/genres",
                json!({"name": "Drama", "description": "Serious stories"}),
            ),
            ("/admin/api/genres", json!({"name": "Science fiction"})),
            (
                "/admin/api/persons",
                json!({"full_name": "Natalya Bondarchuk"}),
            ),
        ] {
            let (status, created) = console
                .api(reqwest::Method::POST, path, &token, Some(body))
                .await;
            assert_eq!(status, 201, "{created}");
        }
        let driver = Driver::start();
        let browser = driver.browser().await;
        sign_in(&browser, &console, &manager).await;
        assert_eq!(path(&browser).await, "/admin/films");

        click(&browser, "a.button.primary").await;
        fill(&browser, "input[name=title]", "Solaris").await;
        fill(
            &browser,
            "textarea[name=description]",
            "A psychologist is sent to a station orbiting a distant planet.",
        )
        .await;
        browser
            .execute(
                "document.querySelector('input[name=creation_date]').value = '1972-03-20';",
                vec![],
            )
            .await
            .expect("date");
        fill(&browser, "input[name=rating]", "8.1").await;
        click(&browser, "form.film-form button.primary").await;
        until_page_has(&browser, "Danger zone").await;
        let film = path(&browser)
            .await
            .rsplit('/')
            .next()
            .expect("film id")
            .to_owned();

        pick(&browser, "genres", "Science fiction").await;
        click(&browser, "form.picker button[type=submit]").await;
        until_page_has(&browser, "Saved.").await;
        pick(&browser, "persons", "Natalya Bondarchuk").await;
        let forms = browser
            .find_all(Locator::Css("form.picker button[type=submit]"))
            .await
            .expect("pickers");
        forms[1].click().await.expect("add person");
        let page = until_page_has(&browser, "Natalya Bondarchuk</a>").await;
        assert!(page.contains("Science fiction"));

        let shot = browser.screenshot().await.expect("screenshot");
        let dir = std::env::var("CINEMA_SCREENSHOT_DIR")
            .map(|dir| common::workspace_root().join(dir))
            .unwrap_or_else(|_| std::env::temp_dir());
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join("admin-film-edit.png"), shot).expect("write the screenshot");

        let viewer = console
            .app
            .sign_up_and_log_in(
                &format!("{}@example.com", common::unique("viewer")),
                PASSWORD,
            )
            .await;
        let found = TestApp::eventually(Duration::from_secs(20), || async {
            let (status, body) = console
                .api(
                    reqwest::Method::GET,
                    "/api/v1/films/search?query=solaris",
                    &viewer,
                    None,
                )
                .await;
            (status == 200
                && body
                    .as_array()
                    .is_some_and(|films| films.iter().any(|f| f["uuid"] == film.as_str())))
            .then_some(())
        })
        .await;
        assert!(found.is_some(), "the film is searchable within 20 s");
        let (_, detail) = console
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/films/{film}"),
                &viewer,
                None,
            )
            .await;
        assert_eq!(detail["genre"][0]["name"], "Science fiction");
        assert_eq!(detail["actors"][0]["full_name"], "Natalya Bondarchuk");

        browser
            .goto(&console.app.url("/admin/users"))
            .await
            .expect("users page");
        let refused = browser.source().await.expect("source");
        assert!(
            refused.contains("only admins may manage users"),
            "{refused}"
        );
        browser.close().await.expect("close");
    }

    /// An admin blocks a user in the browser (confirming the dialog) and the user's
    /// refresh then fails; the admin logs in as another user and sees the `act` claim
    /// naming them.
    #[tokio::test]
    async fn an_admin_blocks_and_impersonates_users_in_chromium() {
        let console = start().await;
        let admin = console.user("admin", Some(ADMIN_ROLE)).await;
        let victim = console.user("victim", None).await;
        let other = console.user("other", None).await;
        let (_, victim_refresh) = console.tokens(&victim).await;
        let (admin_token, _) = console.tokens(&admin).await;
        let (_, me) = console
            .api(reqwest::Method::GET, "/api/v1/auth/me", &admin_token, None)
            .await;
        let admin_id = me["id"].as_str().expect("admin id").to_owned();

        let driver = Driver::start();
        let browser = driver.browser().await;
        sign_in(&browser, &console, &admin).await;
        browser
            .goto(&console.app.url(&format!("/admin/users?query={victim}")))
            .await
            .expect("users");
        click(
            &browser,
            &format!("tr[data-user=\"{victim}\"] button.danger"),
        )
        .await;
        browser.accept_alert().await.expect("confirm the block");
        until_page_has(&browser, "blocked</span>").await;
        let (status, _) = console
            .app
            .post_json(
                "/api/v1/auth/refresh",
                json!({"refresh_token": victim_refresh}),
            )
            .await;
        assert!(
            status == 401 || status == 403,
            "refresh after the block: {status}"
        );

        browser
            .goto(&console.app.url(&format!("/admin/users?query={other}")))
            .await
            .expect("users");
        let buttons = browser
            .find_all(Locator::Css(&format!(
                "tr[data-user=\"{other}\"] td.actions button"
            )))
            .await
            .expect("actions");
        let mut clicked = false;
        for button in buttons {
            if button.text().await.expect("label") == "Log in as" {
                button.click().await.expect("impersonate");
                clicked = true;
                break;
            }
        }
        assert!(clicked, "a Log in as button");
        until_page_has(&browser, "on behalf of admin").await;
        let act = browser
            .find(Locator::Css("#act"))
            .await
            .expect("act")
            .text()
            .await
            .expect("text");
        assert_eq!(act, admin_id);
        let claims: Value = serde_json::from_str(
            &browser
                .find(Locator::Css("#claims"))
                .await
                .expect("claims")
                .text()
                .await
                .expect("text"),
        )
        .expect("claims are JSON");
        assert_eq!(claims["act"]["sub"], admin_id.as_str());
        assert!(
            browser
                .find(Locator::Css("div.impersonation"))
                .await
                .is_ok(),
            "the banner shows"
        );
        click(&browser, "div.impersonation button").await;
        until_page_has(&browser, "Users</h1>").await;
        assert!(
            browser
                .find(Locator::Css("div.impersonation"))
                .await
                .is_err(),
            "the banner is gone"
        );
        browser.close().await.expect("close");
    }

    /// The audit log shows when a change happened in the reader's time zone (Tokyo
    /// here), to the second and no finer, with the UTC time as its tooltip.
    #[tokio::test]
    async fn console_moments_read_in_the_readers_time_zone_without_microseconds() {
        let console = start().await;
        let admin = console.user("admin", Some(ADMIN_ROLE)).await;
        let (token, _) = console.tokens(&admin).await;
        let (status, created) = console
            .api(
                reqwest::Method::POST,
                "/admin/api/films",
                &token,
                Some(json!({"title": "A moment", "rating": 5})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let film = created["id"].as_str().expect("id");

        let driver = Driver::start();
        let browser = driver.browser().await;
        sign_in(&browser, &console, &admin).await;
        browser
            .goto(&console.app.url(&format!("/admin/audit?entity_id={film}")))
            .await
            .expect("audit page");
        let moment = browser
            .find(Locator::Css("table.audit td time"))
            .await
            .expect("a moment in the audit log");
        let instant = moment
            .attr("datetime")
            .await
            .expect("datetime")
            .expect("a datetime attribute");
        let instant = chrono::DateTime::parse_from_rfc3339(&instant).expect("an RFC 3339 instant");
        let utc = instant.with_timezone(&chrono::Utc);
        let tokyo = utc + chrono::Duration::hours(9);
        // The script has run once the tooltip holds the server's UTC text.
        let mut tooltip = None;
        for _ in 0..50 {
            tooltip = moment.attr("title").await.expect("title");
            if tooltip.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            tooltip.as_deref(),
            Some(utc.format("%Y-%m-%d %H:%M:%S UTC").to_string().as_str())
        );
        let shown = moment.text().await.expect("text");
        assert!(!shown.contains("UTC"), "{shown}");
        assert!(!shown.contains('.'), "no fractions of a second: {shown}");
        assert!(
            shown.contains(&tokyo.format("%-I:%M:%S").to_string())
                && shown.contains(&tokyo.format("%b %-d, %Y").to_string()),
            "{shown} is not {tokyo} (Tokyo time, en-US)"
        );
        browser.close().await.expect("close");
    }

    /// `/api/docs` renders the auth, catalog and ugc documents in Chromium, under the
    /// page's strict CSP, and "Try it out" on login answers 200 with tokens from this
    /// origin (saved as docs/api-docs.png when CINEMA_SCREENSHOT_DIR=docs).
    #[tokio::test]
    async fn the_api_docs_show_three_apis_and_try_it_out_logs_in_on_this_origin() {
        let console = start().await;
        let email = console.user("docs", None).await;
        let driver = Driver::start();
        let browser = driver.browser().await;

        for (name, title, route) in [
            ("catalog", "cinema catalog", "/api/v1/films/search"),
            ("ugc", "cinema ugc", "/api/v1/ugc/events"),
            ("auth", "cinema auth", "/api/v1/auth/login"),
        ] {
            browser
                .goto(
                    &console
                        .app
                        .url(&format!("/api/docs?urls.primaryName={name}")),
                )
                .await
                .expect("docs page");
            let page = until_page_has(&browser, title).await;
            assert!(page.contains(route), "{name} lists {route}");
        }

        let login = "#operations-default-post_api_v1_auth_login";
        click(&browser, &format!("{login} .opblock-summary-control")).await;
        until_page_has(&browser, "Try it out").await;
        click(&browser, &format!("{login} .try-out__btn")).await;
        fill(
            &browser,
            &format!("{login} textarea.body-param__text"),
            &json!({"email": email, "password": PASSWORD}).to_string(),
        )
        .await;
        click(&browser, &format!("{login} button.execute")).await;
        let mut status = String::new();
        for _ in 0..100 {
            if let Ok(cell) = browser
                .find(Locator::Css(&format!(
                    "{login} .live-responses-table tr.response .response-col_status"
                )))
                .await
            {
                status = cell.text().await.unwrap_or_default();
                if !status.is_empty() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status.trim(), "200", "the login answered in the page");
        let answer = browser
            .find(Locator::Css(&format!(
                "{login} .live-responses-table tr.response .response-col_description"
            )))
            .await
            .expect("the response")
            .text()
            .await
            .expect("text");
        assert!(answer.contains("access_token"), "{answer}");

        // The picture shows the request and its answer.
        browser
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
                vec![json!(format!("{login} .live-responses-table"))],
            )
            .await
            .expect("scroll to the answer");
        let shot = browser.screenshot().await.expect("screenshot");
        let dir = std::env::var("CINEMA_SCREENSHOT_DIR")
            .map(|dir| common::workspace_root().join(dir))
            .unwrap_or_else(|_| std::env::temp_dir());
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join("api-docs.png"), shot).expect("write the screenshot");
        browser.close().await.expect("close");
    }
}
