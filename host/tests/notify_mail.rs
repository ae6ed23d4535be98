//! Mail end to end: auth writes an event into its outbox with the change, the host's
//! relay produces it to Kafka, notify records the deliveries and sends them to a real
//! SMTP server process (Python's aiosmtpd, writing a Maildir) on loopback.

mod common;

use std::time::Duration;

use common::smtp::Smtp;
use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const PREFERENCES: &str = "/api/v1/auth/me/notifications";

/// One test's platform: its database, topics, groups and spool.
struct Platform {
    database_url: String,
    jwks: String,
    port: u16,
    topic: String,
    catalog_topic: String,
    group: String,
    dead_letters: String,
    spool: TempDir,
}

impl Platform {
    async fn new() -> Self {
        let (database_url, jwks) = common::platform_database().await;
        Self {
            database_url,
            jwks,
            port: free_port(),
            topic: common::unique("auth_events"),
            catalog_topic: common::unique("catalog_events"),
            group: common::unique("notify"),
            dead_letters: common::unique("notify_dlq"),
            spool: TempDir::new("spool"),
        }
    }

    fn start(&self, smtp: &Smtp, group: &str) -> TestApp {
        let base = format!("http://127.0.0.1:{}", self.port);
        let mut options = AppOptions::default()
            .component_databases(&self.database_url)
            .env("SPIN_VARIABLE_JWKS", &self.jwks)
            .env("SPIN_VARIABLE_AUTH_API_URL", &base);
        for arg in [
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--no-ugc-loader",
            "--spool-dir",
            self.spool.path(),
            "--ugc-postgres-url",
            &self.database_url,
            "--auth-events-topic",
            &self.topic,
            "--catalog-events-topic",
            &self.catalog_topic,
            "--digest-delay-seconds",
            "2",
            "--notify-group",
            group,
            "--notify-dead-letter-topic",
            &self.dead_letters,
            "--smtp-url",
            &smtp.url(),
            "--public-base-url",
            &base,
        ] {
            options = options.arg(arg);
        }
        options.manifest = Some(common::workspace_root().join("spin.toml"));
        options.listen = Some(format!("127.0.0.1:{}", self.port));
        spawn_app(options)
    }
}

/// The link in a mail's text.
fn link_in(mail: &Value) -> String {
    let text = mail["text"].as_str().expect("text part");
    text.split_whitespace()
        .find(|word| word.contains("/api/v1/auth/confirm?token="))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"))
        .to_owned()
}

/// Registration sends a welcome mail in the user's locale (Russian by default) with a
/// confirmation link; following it confirms the email once (the second time the link
/// is gone); a password change sends a security notice.
#[tokio::test]
async fn registration_mails_a_link_that_confirms_the_email_once() {
    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let email = format!("{}@example.com", common::unique("newcomer"));
    let token = app.sign_up_and_log_in(&email, PASSWORD).await;

    let mails = smtp.wait_for(&email, 1, Duration::from_secs(30)).await;
    let welcome = &mails[0];
    assert_eq!(welcome["subject"], "Добро пожаловать в cinema");
    assert!(
        welcome["html"]
            .as_str()
            .is_some_and(|h| h.contains("Подтвердить почту"))
    );
    assert!(
        welcome["message_id"]
            .as_str()
            .is_some_and(|id| id.contains(".welcome."))
    );
    let link = link_in(welcome);
    assert!(link.starts_with(&app.base), "{link}");

    let confirmed = app.http.get(&link).send().await.expect("follow the link");
    assert_eq!(confirmed.status(), 200);
    assert_eq!(
        confirmed.json::<Value>().await.expect("json")["email_confirmed"],
        true
    );
    let again = app.http.get(&link).send().await.expect("follow it again");
    assert_eq!(again.status(), 410);
    let page = app
        .http
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .expect("as a browser");
    assert!(page.text().await.expect("page").contains("already used"));
    let me: Value = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["email_confirmed"], true);

    let changed = app
        .http
        .post(app.url("/api/v1/auth/me/password"))
        .bearer_auth(&token)
        .json(&json!({"current_password": PASSWORD, "new_password": "another long passphrase 2"}))
        .send()
        .await
        .expect("change the password");
    assert!(changed.status().is_success(), "{:?}", changed.text().await);
    let mails = smtp.wait_for(&email, 2, Duration::from_secs(30)).await;
    assert!(
        mails
            .iter()
            .any(|m| m["subject"] == "Пароль cinema изменён"),
        "{mails:?}"
    );
}

/// An email change asked with the right password leaves the account on its address,
/// warns that address and mails a link to the new one; only following the link moves
/// the account (confirmed), and only once.
#[tokio::test]
async fn email_change_applies_only_after_the_new_address_confirms() {
    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let old = format!("{}@example.com", common::unique("mover"));
    let new = format!("{}@example.com", common::unique("moved"));
    let token = app.sign_up_and_log_in(&old, PASSWORD).await;
    let patch = |body: Value| {
        app.call(
            reqwest::Method::PATCH,
            "/api/v1/auth/me",
            Some(token.as_str()),
            Some(body),
        )
    };

    let (status, refused) = patch(json!({"email": new})).await;
    assert_eq!(
        (
            status,
            &refused["error"]["code"],
            &refused["error"]["field"]
        ),
        (422, &json!("validation_failed"), &json!("current_password")),
        "{refused}"
    );
    let (status, refused) =
        patch(json!({"email": new, "current_password": "not the password 1"})).await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (422, &json!("current_password")),
        "{refused}"
    );
    let (status, pending) = patch(json!({"email": new, "current_password": PASSWORD})).await;
    assert_eq!(
        (status, &pending["email"], &pending["pending_email"]),
        (200, &json!(old), &json!(new)),
        "{pending}"
    );
    let (_, me) = app
        .call(reqwest::Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(me["email"], old.as_str(), "{me}");
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": old, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "the old email still logs in: {body}");

    // The old address: its welcome and the security notice naming the new one.
    let at_old = smtp.wait_for(&old, 2, Duration::from_secs(30)).await;
    let notice = at_old
        .iter()
        .find(|m| {
            m["message_id"]
                .as_str()
                .is_some_and(|id| id.contains(".security."))
        })
        .unwrap_or_else(|| panic!("no security notice at the old address: {at_old:?}"));
    assert_eq!(notice["subject"], "Запрошена смена почты аккаунта cinema");
    assert!(text_contains(notice, &new), "{notice}");
    // The new address: the confirmation link.
    let at_new = smtp.wait_for(&new, 1, Duration::from_secs(30)).await;
    assert!(
        at_new[0]["message_id"]
            .as_str()
            .is_some_and(|id| id.contains(".email_change.")),
        "{at_new:?}"
    );
    assert_eq!(at_new[0]["subject"], "Подтвердите новый адрес почты cinema");
    let link = link_in(&at_new[0]);
    assert!(link.starts_with(&app.base), "{link}");

    let confirmed = app.http.get(&link).send().await.expect("follow the link");
    assert_eq!(confirmed.status(), 200);
    assert_eq!(
        confirmed.json::<Value>().await.expect("json")["email_confirmed"],
        true
    );
    let (_, me) = app
        .call(reqwest::Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(
        (&me["email"], &me["email_confirmed"]),
        (&json!(new), &json!(true)),
        "{me}"
    );
    let (status, body) = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": new, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "the new email logs in: {body}");
    let again = app.http.get(&link).send().await.expect("follow it again");
    assert_eq!(again.status(), 410);
}

/// Notify consuming every event again (a new consumer group: as if it had been killed
/// after sending, before committing) sends nothing twice.
#[tokio::test]
async fn events_consumed_again_send_nothing_twice() {
    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let email = format!("{}@example.com", common::unique("once"));
    app.sign_up_and_log_in(&email, PASSWORD).await;
    smtp.wait_for(&email, 1, Duration::from_secs(30)).await;
    drop(app);

    let replayed = platform.start(&smtp, &common::unique("notify_replay"));
    // The new group reads the topic from the start; give it time to have done so.
    let other = format!("{}@example.com", common::unique("later"));
    replayed.sign_up_and_log_in(&other, PASSWORD).await;
    smtp.wait_for(&other, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    smtp.wait_for(&email, 1, Duration::from_secs(1)).await;
}

/// With the SMTP server down, registration still succeeds and the mail is sent once
/// the server is back.
#[tokio::test]
async fn mail_waits_for_the_smtp_server_and_is_sent_when_it_returns() {
    let mut smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    smtp.stop();
    let email = format!("{}@example.com", common::unique("patient"));
    app.sign_up_and_log_in(&email, PASSWORD).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.mails().iter().all(|m| m["to"] != email.as_str()));
    smtp.restart();
    smtp.wait_for(&email, 1, Duration::from_secs(40)).await;
    app.assert_running("after the SMTP outage");
}

/// An announcement an admin writes for one role reaches that role's holders, minus
/// those who turned announcements off; it carries a one-click unsubscribe that turns
/// them off; the admin sees the progress.
#[tokio::test]
async fn an_announcement_reaches_a_role_except_who_opted_out_and_can_be_left_in_one_click() {
    const ADMIN_ROLE: &str = "00000000-0000-4000-8000-000000000001";
    const MANAGER_ROLE: &str = "00000000-0000-4000-8000-000000000002";
    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let user = |prefix: &str| format!("{}@example.com", common::unique(prefix));
    let (admin, keen, quiet, viewer) = (user("admin"), user("keen"), user("quiet"), user("viewer"));
    for email in [&admin, &keen, &quiet, &viewer] {
        app.sign_up_and_log_in(email, PASSWORD).await;
    }
    common::grant_role(&platform.database_url, &admin, ADMIN_ROLE).await;
    common::grant_role(&platform.database_url, &keen, MANAGER_ROLE).await;
    common::grant_role(&platform.database_url, &quiet, MANAGER_ROLE).await;
    let token_of = |email: String| {
        let app = &app;
        async move {
            let (status, body) = app
                .post_json(
                    "/api/v1/auth/login",
                    json!({"email": email, "password": PASSWORD}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().expect("token").to_owned()
        }
    };
    let quiet_token = token_of(quiet.clone()).await;
    let turned_off = app
        .http
        .put(app.url("/api/v1/auth/me/notifications"))
        .bearer_auth(&quiet_token)
        .json(&json!({"announcements": false}))
        .send()
        .await
        .expect("preferences");
    assert_eq!(turned_off.status(), 200);
    assert_eq!(
        turned_off.json::<Value>().await.expect("json"),
        json!({"announcements": false, "film_digest": true})
    );

    let admin_token = token_of(admin.clone()).await;
    let queued = app
        .http
        .post(app.url("/admin/api/announcements"))
        .bearer_auth(&admin_token)
        .json(&json!({"subject": "Maintenance tonight", "body": "The site rests at 2 am.\n\nBack by 3.", "audience": "manager"}))
        .send()
        .await
        .expect("queue");
    assert_eq!(queued.status(), 201, "{:?}", queued.text().await);

    let announcement = |mails: &[Value]| -> Vec<Value> {
        mails
            .iter()
            .filter(|m| m["subject"] == "Maintenance tonight")
            .cloned()
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let received = loop {
        let got = announcement(&smtp.mails());
        if !got.is_empty() || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received_now = announcement(&smtp.mails());
    assert_eq!(received_now.len(), 1, "only the keen manager: {received:?}");
    let mail = &received_now[0];
    assert_eq!(mail["to"], keen.as_str());
    assert!(
        mail["text"]
            .as_str()
            .is_some_and(|t| t.contains("Back by 3."))
    );
    let header = mail["list_unsubscribe"]
        .as_str()
        .expect("List-Unsubscribe header");
    let url = header.trim_start_matches('<').trim_end_matches('>');
    assert_eq!(mail["list_unsubscribe_post"], "List-Unsubscribe=One-Click");

    let page = app.http.get(url).send().await.expect("GET the link");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("Unsubscribe"));
    let keen_token = token_of(keen.clone()).await;
    let (_, still_on) = app
        .call(reqwest::Method::GET, PREFERENCES, Some(&keen_token), None)
        .await;
    assert_eq!(still_on["announcements"], true, "a GET changes nothing");
    assert_eq!(one_click(&app, url).await, 200);
    let (_, off) = app
        .call(reqwest::Method::GET, PREFERENCES, Some(&keen_token), None)
        .await;
    assert_eq!(off["announcements"], false);

    // Refusals: an unknown link, a preferences body with an unknown field.
    let unknown = app
        .http
        .post(app.url("/api/v1/auth/unsubscribe?token=0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .expect("unknown token");
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.expect("json")["error"]["code"],
        "unsubscribe_token_unknown"
    );
    let bad = app
        .http
        .put(app.url("/api/v1/auth/me/notifications"))
        .bearer_auth(&keen_token)
        .json(&json!({"newsletters": false}))
        .send()
        .await
        .expect("bad preferences");
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.expect("json")["error"]["code"],
        "bad_json"
    );

    let progress = TestApp::eventually(Duration::from_secs(10), || async {
        let list: Value = app
            .http
            .get(app.url("/admin/api/announcements"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (list[0]["sent"] == 1).then_some(list)
    })
    .await
    .expect("the progress shows the mail sent");
    assert_eq!(progress[0]["recipients"], 1);
    assert_eq!(progress[0]["status"], "expanded");
}

/// Mail that can never be delivered (a recipient no SMTP server would take) is marked
/// `failed` with the reason, and a dead letter for it reaches the dead-letter topic.
#[tokio::test]
async fn undeliverable_mail_is_marked_failed_and_dead_lettered() {
    use rdkafka::Message;

    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let (db, connection) = tokio_postgres::connect(&platform.database_url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    let event_id: uuid::Uuid = db
        .query_one(
            "INSERT INTO notify.deliveries (event_id, user_id, template, recipient, locale, context) \
             VALUES (gen_random_uuid(), gen_random_uuid(), 'security', 'not an address', 'en', \
                     '{\"reason\": \"blocked\", \"email\": \"x\"}') RETURNING event_id",
            &[],
        )
        .await
        .expect("a delivery")
        .get(0);
    let failed = TestApp::eventually(Duration::from_secs(20), || async {
        let row = db
            .query_one(
                "SELECT status, COALESCE(last_error, '') FROM notify.deliveries WHERE event_id = $1",
                &[&event_id],
            )
            .await
            .ok()?;
        (row.get::<_, String>(0) == "failed").then(|| row.get::<_, String>(1))
    })
    .await
    .expect("the delivery failed for good");
    assert!(failed.contains("recipient"), "{failed}");

    let consumer =
        common::kafka::reader("127.0.0.1:9092", "dlq_reader", &platform.dead_letters, &[]);
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a dead letter within 30 s")
        .expect("a message");
    let letter: Value =
        serde_json::from_slice(message.payload().unwrap_or_default()).expect("JSON");
    assert_eq!(letter["event_id"], event_id.to_string());
    assert_eq!(letter["template"], "security");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("recipient"))
    );
    app.assert_running("after a dead letter");
}

/// A new film reaches the users it suits, at most once a day: who bookmarked a film by
/// its director, who rated a film of its genre 8 or more; not who rated lower, not who
/// turned digests off. Films published together share one digest; a film published
/// after today's digest waits for tomorrow's. Each mail is in its user's locale and
/// its one-click unsubscribe turns digests off.
#[tokio::test]
async fn new_films_reach_the_users_they_suit_in_one_digest_a_day() {
    let smtp = Smtp::start();
    let platform = Platform::new().await;
    let app = platform.start(&smtp, &platform.group);
    let user = |prefix: &str| format!("{}@example.com", common::unique(prefix));
    let (fan, critic, lukewarm, quiet) =
        (user("fan"), user("critic"), user("lukewarm"), user("quiet"));
    let mut tokens = std::collections::HashMap::new();
    for email in [&fan, &critic, &lukewarm, &quiet] {
        tokens.insert(email.clone(), app.sign_up_and_log_in(email, PASSWORD).await);
    }
    let patch = reqwest::Method::PATCH;
    let critic_token = Some(tokens[&critic].as_str());
    let (status, profile) = app
        .call(
            patch.clone(),
            "/api/v1/auth/me",
            critic_token,
            Some(json!({"locale": "en"})),
        )
        .await;
    assert_eq!(
        (status, &profile["locale"]),
        (200, &json!("en")),
        "{profile}"
    );
    let (status, refused) = app
        .call(
            patch,
            "/api/v1/auth/me",
            critic_token,
            Some(json!({"locale": "de"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/auth/me/notifications",
            Some(&tokens[&quiet]),
            Some(json!({"film_digest": false})),
        )
        .await;
    assert_eq!(status, 200);

    let (db, connection) = tokio_postgres::connect(&platform.database_url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    let id_of = |email: &String| {
        let db = &db;
        let email = email.clone();
        async move {
            let row = db
                .query_one("SELECT id FROM auth.users WHERE email = $1", &[&email])
                .await
                .expect("user id");
            row.get::<_, uuid::Uuid>(0)
        }
    };
    let (fan_id, critic_id, lukewarm_id, quiet_id) = (
        id_of(&fan).await,
        id_of(&critic).await,
        id_of(&lukewarm).await,
        id_of(&quiet).await,
    );
    // The back catalog, loaded before: its films announce nothing.
    let director = uuid::Uuid::new_v4();
    let noir = uuid::Uuid::new_v4();
    let (brother, old_noir) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.batch_execute(&format!(
        "BEGIN; \
         INSERT INTO content.person (id, full_name) VALUES ('{director}', 'Алексей Балабанов'); \
         INSERT INTO content.genre (id, name) VALUES ('{noir}', 'Noir'); \
         INSERT INTO content.film (id, title) VALUES ('{brother}', 'Брат'), ('{old_noir}', 'The Third Man'); \
         INSERT INTO content.film_person (id, film_id, person_id, role) \
             VALUES (gen_random_uuid(), '{brother}', '{director}', 'director'); \
         INSERT INTO content.film_genre (id, film_id, genre_id) \
             VALUES (gen_random_uuid(), '{old_noir}', '{noir}'); \
         DELETE FROM platform.outbox WHERE topic = 'catalog.events'; \
         COMMIT;"
    ))
    .await
    .expect("back catalog");
    // What the users did, as the UGC read models hold it.
    db.batch_execute(&format!(
        "INSERT INTO ugc.bookmarks (user_id, film_id, occurred_at, active) VALUES \
             ('{fan_id}', '{brother}', now(), true), ('{quiet_id}', '{brother}', now(), true); \
         INSERT INTO ugc.ratings (user_id, film_id, score, occurred_at) VALUES \
             ('{critic_id}', '{old_noir}', 9, now()), ('{lukewarm_id}', '{old_noir}', 5, now());"
    ))
    .await
    .expect("bookmarks and ratings");

    // Two new films, each inserted with its people and genres as the console does it.
    let publish = |title: &str, by_director: bool, in_noir: bool| {
        let film = uuid::Uuid::new_v4();
        let mut sql = format!(
            "BEGIN; INSERT INTO content.film (id, title, creation_date, access) \
             VALUES ('{film}', '{title}', '2026-01-01', 'subscription'); "
        );
        if by_director {
            sql += &format!(
                "INSERT INTO content.film_person (id, film_id, person_id, role) \
                 VALUES (gen_random_uuid(), '{film}', '{director}', 'director'); "
            );
        }
        if in_noir {
            sql += &format!(
                "INSERT INTO content.film_genre (id, film_id, genre_id) \
                 VALUES (gen_random_uuid(), '{film}', '{noir}'); "
            );
        }
        sql += "COMMIT;";
        let db = &db;
        async move {
            db.batch_execute(&sql).await.expect("publish a film");
            film
        }
    };
    publish("Брат 2", true, false).await;
    publish("Груз 200", true, true).await;

    let digests = |to: &str| -> Vec<Value> {
        smtp.mails()
            .into_iter()
            .filter(|m| {
                m["to"] == to
                    && m["message_id"]
                        .as_str()
                        .is_some_and(|id| id.contains(".film_digest."))
            })
            .collect()
    };
    let fan_mail = TestApp::eventually(Duration::from_secs(40), || async {
        let mails = digests(&fan);
        (!mails.is_empty()).then_some(mails)
    })
    .await
    .expect("the fan's digest");
    let critic_mail = TestApp::eventually(Duration::from_secs(20), || async {
        let mails = digests(&critic);
        (!mails.is_empty()).then_some(mails)
    })
    .await
    .expect("the critic's digest");

    // The fan: one digest with both films, in Russian, because of the director.
    assert_eq!(fan_mail.len(), 1, "{fan_mail:?}");
    assert_eq!(fan_mail[0]["subject"], "Новые фильмы для вас: 2");
    let text = fan_mail[0]["text"].as_str().expect("text");
    assert!(text.contains("- Брат 2 (2026), по подписке"), "{text}");
    assert!(text.contains("- Груз 200 (2026)"), "{text}");
    assert!(text.contains("Режиссёр — Алексей Балабанов"), "{text}");
    // The critic: only the noir film, in English, because of the genre.
    assert_eq!(critic_mail.len(), 1, "{critic_mail:?}");
    assert_eq!(critic_mail[0]["subject"], "New for you: Груз 200");
    let text = critic_mail[0]["text"].as_str().expect("text");
    assert!(
        text.contains("Noir: you rated films of this genre highly."),
        "{text}"
    );

    // A third film the same day: the critic's suggestion waits for tomorrow.
    let later = publish("Морфий", false, true).await;
    let waiting = TestApp::eventually(Duration::from_secs(20), || async {
        let row = db
            .query_opt(
                "SELECT digest_day FROM notify.digest_items WHERE user_id = $1 AND film_id = $2",
                &[&critic_id, &later],
            )
            .await
            .ok()??;
        Some(row.get::<_, Option<chrono::NaiveDate>>(0))
    })
    .await
    .expect("the later film is suggested to the critic");
    assert_eq!(waiting, None, "not sent today");
    // Two more delays: still one digest each; nothing for the others.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(digests(&critic).len(), 1, "one digest a day");
    assert_eq!(digests(&fan).len(), 1);
    assert!(digests(&lukewarm).is_empty(), "rated the genre below 8");
    assert!(digests(&quiet).is_empty(), "turned film digests off");

    // One click in the fan's mail turns digests off.
    let header = fan_mail[0]["list_unsubscribe"]
        .as_str()
        .expect("List-Unsubscribe header");
    let url = header.trim_start_matches('<').trim_end_matches('>');
    assert!(text_contains(&fan_mail[0], url));
    assert_eq!(one_click(&app, url).await, 200);
    let (_, preferences) = app
        .call(reqwest::Method::GET, PREFERENCES, Some(&tokens[&fan]), None)
        .await;
    assert_eq!(
        preferences,
        json!({"announcements": true, "film_digest": false})
    );
    app.assert_running("after the digests");
}

/// RFC 8058's one-click unsubscribe: a form POST to the link; answers the status.
async fn one_click(app: &TestApp, url: &str) -> u16 {
    app.http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("one click")
        .status()
        .as_u16()
}

fn text_contains(mail: &Value, needle: &str) -> bool {
    mail["text"]
        .as_str()
        .is_some_and(|text| text.contains(needle))
}
