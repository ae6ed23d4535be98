//! Several `cinema` hosts on one set of engines (issue 18 §3). Two `cinema up` processes
//! share one Postgres database, one Kafka topic with its consumer groups, one ClickHouse
//! database and one Redis-backed key-value store (the runtime config below), each with
//! its own ports, search index and spool, as they run behind a load balancer. Each test
//! proves one kind of sharing:
//! - UGC: both hosts join the loader and read-model groups and split the partitions;
//!   every event lands in ClickHouse exactly once and the read model ends at each
//!   user's last heartbeat, also when one host is killed in the middle of the load;
//! - auth: a token issued by one host works on the other, a logout through one stops
//!   the token on the other, and login throttling counts failures made on both;
//! - search: both hosts' indexes converge on the same content after edits, and the
//!   catalog's shared cache does not serve one host's older answer through the other;
//! - mail: both hosts relay auth's outbox and run notify in one group with one SMTP
//!   server, and each welcome mail and each announcement goes out once.

mod common;

use std::time::Duration;

use common::smtp::Smtp;
use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
/// Partitions of the events topic (the intake creates it with three).
const EVENT_PARTITIONS: u64 = 3;
/// Partitions notify's group reads: auth's and the catalog's event topics, three each
/// (the relay creates them).
const NOTIFY_PARTITIONS: u64 = 6;

/// The engines and names both hosts share.
struct Cluster {
    database_url: String,
    jwks: String,
    clickhouse_database: String,
    topic: String,
    loader_group: String,
    read_model_group: String,
    /// The Redis database behind the catalog's key-value store (this test's own).
    redis_db: u8,
    /// auth's and the catalog's event topics, notify's group and dead letters.
    auth_events_topic: String,
    catalog_events_topic: String,
    notify_group: String,
    notify_dead_letters: String,
    /// Where both hosts send mail (none: mail waits).
    smtp_url: Option<String>,
}

/// One `cinema up` of the cluster, with what is its own.
struct Host {
    app: TestApp,
    _index: TempDir,
    spool: TempDir,
}

impl Cluster {
    /// A migrated platform database with a signing key, a ClickHouse database, fresh
    /// topic and group names, and Redis database `redis_db` emptied.
    async fn new(redis_db: u8) -> Self {
        let (database_url, clickhouse_database, jwks) =
            common::platform_database_with_clickhouse().await;
        common::empty_redis_database(redis_db).await;
        let group = common::unique("many_hosts");
        Self {
            database_url,
            jwks,
            clickhouse_database,
            topic: common::unique("ugc_events"),
            loader_group: format!("{group}_loader"),
            read_model_group: format!("{group}_read_model"),
            redis_db,
            auth_events_topic: common::unique("auth_events"),
            catalog_events_topic: common::unique("catalog_events"),
            notify_group: format!("{group}_notify"),
            notify_dead_letters: common::unique("notify_dlq"),
            smtp_url: None,
        }
    }

    /// Starts one more host: its own public and internal ports, index and spool; the
    /// cluster's database, topic, groups, ClickHouse and Redis.
    fn start_host(&self) -> Host {
        let port = free_port();
        let internal_port = free_port();
        let index = TempDir::new("many_hosts_index");
        let spool = TempDir::new("many_hosts_spool");
        let mut options = AppOptions::default()
            .component_databases(&self.database_url)
            .env("SPIN_VARIABLE_JWKS", &self.jwks)
            .env(
                "SPIN_VARIABLE_AUTH_API_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .env(
                "SPIN_VARIABLE_INTERNAL_API_URL",
                format!("http://127.0.0.1:{internal_port}"),
            );
        for arg in [
            "--index-dir",
            index.path(),
            "--etl-postgres-url",
            &self.database_url,
            "--auth-postgres-url",
            &self.database_url,
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--ugc-topic",
            &self.topic,
            "--ugc-loader-group",
            &self.loader_group,
            "--ugc-read-model-group",
            &self.read_model_group,
            "--ugc-postgres-url",
            &self.database_url,
            "--spool-dir",
            spool.path(),
            "--clickhouse-url",
            &common::clickhouse_url(),
            "--clickhouse-database",
            &self.clickhouse_database,
            "--auth-events-topic",
            &self.auth_events_topic,
            "--catalog-events-topic",
            &self.catalog_events_topic,
            "--notify-group",
            &self.notify_group,
            "--notify-dead-letter-topic",
            &self.notify_dead_letters,
            "--public-base-url",
            &format!("http://127.0.0.1:{port}"),
        ] {
            options = options.arg(arg);
        }
        if let Some(smtp_url) = &self.smtp_url {
            options = options.arg("--smtp-url").arg(smtp_url.as_str());
        }
        options.manifest = Some(common::workspace_root().join("spin.toml"));
        options.listen = Some(format!("127.0.0.1:{port}"));
        options.internal_listen = Some(format!("127.0.0.1:{internal_port}"));
        // `make up`'s limits, with the catalog's cache in Redis: one store for all hosts.
        options.runtime_config = Some(format!(
            "{}\n[key_value_store.catalog]\ntype = \"redis\"\nurl = \"{}/{}\"\n",
            include_str!("../../cinema-runtime-config.toml"),
            common::redis_url(),
            self.redis_db
        ));
        Host {
            app: spawn_app(options),
            _index: index,
            spool,
        }
    }

    async fn postgres(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("connect to the platform database");
        tokio::spawn(connection);
        client
    }

    /// `(rows after folding repeats, distinct event ids)` of `users` in `ugc_events`.
    async fn event_counts(&self, users: &[String]) -> (u64, u64) {
        let users = users
            .iter()
            .map(|user| format!("toUUID('{user}')"))
            .collect::<Vec<_>>()
            .join(",");
        common::ugc_event_counts(&self.clickhouse_database, &format!("user_id IN ({users})")).await
    }

    /// Waits until the running hosts among `hosts` hold all `partitions` of `group`'s
    /// topics between them, each at least one (as each reports in
    /// `cinema_kafka_assigned_partitions`); panics with what they reported last.
    async fn wait_for_split(&self, group: &str, partitions: u64, hosts: &[&Host]) {
        let reported = || async {
            let mut held = Vec::new();
            for host in hosts {
                held.push(assigned_partitions(&host.app, group).await);
            }
            held
        };
        let split = TestApp::eventually(Duration::from_secs(60), || async {
            let held = reported().await;
            let all: u64 = held.iter().map(|held| held.unwrap_or(0)).sum();
            (all == partitions && held.iter().all(|held| held.is_some_and(|n| n > 0))).then_some(())
        })
        .await;
        assert!(
            split.is_some(),
            "group {group}: expected {} hosts splitting {partitions} partitions within 60 s; \
             partitions each reports now: {:?}",
            hosts.len(),
            reported().await
        );
    }
}

/// How many partitions `host` says its consumer of `group` holds (`None`: no figure).
async fn assigned_partitions(host: &TestApp, group: &str) -> Option<u64> {
    let series = format!("cinema_kafka_assigned_partitions{{group=\"{group}\"}}");
    host.metric(&series).await.map(|value| value as u64)
}

/// Signs a new user up through `host` and logs in: the access token and the user id.
async fn new_user(host: &TestApp) -> (String, String) {
    let email = format!("{}@example.com", common::unique("viewer"));
    let token = host.sign_up_and_log_in(&email, PASSWORD).await;
    let (status, me) = host
        .call(reqwest::Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(status, 200, "{me}");
    (token, me["id"].as_str().expect("user id").to_owned())
}

/// A film id of its own for user number `user` (heartbeats need no catalogue row).
fn film_of(user: usize) -> String {
    format!("30000000-0000-4000-8000-{user:012}")
}

/// Posts `count` heartbeats for `film` through `host`, positions `from..from + count`.
async fn post_heartbeats(host: &TestApp, token: &str, film: &str, from: u32, count: u32) {
    let events: Vec<Value> = (from..from + count)
        .map(|position| {
            json!({"type": "view_progress", "film_id": film, "position_s": position, "duration_s": 86400})
        })
        .collect();
    let (status, body) = host
        .call(
            reqwest::Method::POST,
            "/api/v1/ugc/events",
            Some(token),
            Some(Value::Array(events)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Both hosts are members of both UGC groups, each holding partitions; users write
/// through both; one host is killed halfway (SIGKILL: no shutdown, uncommitted offsets)
/// and its users go on through the other. Every event lands in ClickHouse exactly once,
/// the survivor takes over every partition, and the read model ends at each user's
/// last heartbeat.
#[tokio::test]
async fn two_hosts_split_the_ugc_groups_and_each_event_lands_once_when_one_is_killed() {
    const USERS: usize = 6;
    const ROUNDS: u32 = 10;
    const PER_REQUEST: u32 = 100;
    let cluster = Cluster::new(4).await;
    let first = cluster.start_host();
    let second = cluster.start_host();
    let mut users = Vec::new();
    for user in 0..USERS {
        let through = if user % 2 == 0 { &first } else { &second };
        users.push(new_user(&through.app).await);
    }
    // The topic exists once the first write went through; the groups then settle.
    post_heartbeats(&first.app, &users[0].0, &film_of(0), 0, 1).await;
    for group in [&cluster.loader_group, &cluster.read_model_group] {
        cluster
            .wait_for_split(group, EVENT_PARTITIONS, &[&first, &second])
            .await;
    }

    for round in 0..ROUNDS {
        if round == ROUNDS / 2 {
            second.app.kill();
        }
        for (user, (token, _)) in users.iter().enumerate() {
            let through = if user % 2 == 1 && round < ROUNDS / 2 {
                &second
            } else {
                &first
            };
            post_heartbeats(
                &through.app,
                token,
                &film_of(user),
                round * PER_REQUEST,
                PER_REQUEST,
            )
            .await;
        }
    }

    for group in [&cluster.loader_group, &cluster.read_model_group] {
        cluster
            .wait_for_split(group, EVENT_PARTITIONS, &[&first])
            .await;
    }
    let ids: Vec<String> = users.iter().map(|(_, id)| id.clone()).collect();
    let expected = USERS as u64 * u64::from(ROUNDS * PER_REQUEST) + 1;
    let landed = TestApp::eventually(Duration::from_secs(60), || async {
        (cluster.event_counts(&ids).await == (expected, expected)).then_some(())
    })
    .await;
    assert!(
        landed.is_some(),
        "expected {expected} events once each in ClickHouse, found (folded, distinct) = {:?}",
        cluster.event_counts(&ids).await
    );

    let postgres = cluster.postgres().await;
    let last = i32::try_from(ROUNDS * PER_REQUEST - 1).expect("small");
    let caught_up = TestApp::eventually(Duration::from_secs(30), || async {
        let rows = postgres
            .query(
                "SELECT user_id::text, film_id::text, position_s FROM ugc.progress \
                 WHERE user_id::text = ANY($1)",
                &[&ids],
            )
            .await
            .expect("read ugc.progress");
        let done = rows.len() == USERS
            && rows.iter().all(|row| {
                let user = ids
                    .iter()
                    .position(|id| *id == row.get::<_, String>(0))
                    .expect("one of ours");
                row.get::<_, String>(1) == film_of(user) && row.get::<_, i32>(2) == last
            });
        done.then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the read model did not end at position {last} for each of the {USERS} users"
    );
    first.app.assert_running("after the load");
}

/// Auth state lives in the shared database, so the hosts agree on it: a token issued by
/// one is accepted by the other (and its refresh token too), a logout through the other
/// stops it on the first, and five failed logins split across both hosts lock the
/// account on both.
#[tokio::test]
async fn two_hosts_share_tokens_logouts_and_login_throttling() {
    let cluster = Cluster::new(5).await;
    let first = cluster.start_host();
    let second = cluster.start_host();
    let signed_in = ["/api/v1/auth/me", "/api/v1/ugc/me/bookmarks"];

    let email = format!("{}@example.com", common::unique("traveller"));
    first.app.sign_up_and_log_in(&email, PASSWORD).await;
    let (token, refresh_token) = first.app.log_in_for_pair(&email, PASSWORD).await;
    for path in signed_in {
        let (status, body) = second
            .app
            .call(reqwest::Method::GET, path, Some(&token), None)
            .await;
        assert_eq!(status, 200, "{path} on the other host: {body}");
    }
    let (status, refreshed) = second
        .app
        .post_json(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await;
    assert_eq!(status, 200, "refresh on the other host: {refreshed}");
    let token = refreshed["access_token"].as_str().expect("access token");

    let (status, body) = second
        .app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    for path in ["/api/v1/ugc/me/bookmarks", "/api/v1/genres"] {
        let refused = TestApp::eventually(Duration::from_secs(15), || async {
            let (status, body) = first
                .app
                .call(reqwest::Method::GET, path, Some(token), None)
                .await;
            (status == 401 && body["error"]["code"] == "token_revoked").then_some(())
        })
        .await;
        assert!(
            refused.is_some(),
            "{path} on the first host still takes a token logged out through the second"
        );
    }

    let locked = format!("{}@example.com", common::unique("guessed"));
    first.app.sign_up_and_log_in(&locked, PASSWORD).await;
    for attempt in 0..5 {
        let through = if attempt % 2 == 0 { &first } else { &second };
        let (status, body) = through
            .app
            .post_json(
                "/api/v1/auth/login",
                json!({"email": locked, "password": "not the password"}),
            )
            .await;
        assert_eq!(status, 401, "failed login {attempt}: {body}");
    }
    for host in [&first, &second] {
        let (status, body) = host
            .app
            .post_json(
                "/api/v1/auth/login",
                json!({"email": locked, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("too_many_attempts")),
            "five failures across both hosts lock the account on each: {body}"
        );
    }
}

/// Both hosts index the shared content database, each into its own index: after an
/// edit, an insert and a delete, both serve the same films, through the internal search
/// API and through the catalog (whose cache both share in Redis). The second host
/// starts after the first has cached the old title, so a cache keyed by a version the
/// two hosts could share by chance would show it here.
#[tokio::test]
async fn two_hosts_converge_on_the_same_content_after_edits() {
    const RENAMED: &str = "30000000-0000-4000-8000-00000000a001";
    const DELETED: &str = "30000000-0000-4000-8000-00000000a002";
    const ADDED: &str = "30000000-0000-4000-8000-00000000a003";
    let cluster = Cluster::new(15).await;
    let postgres = cluster.postgres().await;
    postgres
        .batch_execute(&format!(
            "INSERT INTO content.film (id, title, rating) VALUES
                ('{RENAMED}', 'Сталкер', 8.1), ('{DELETED}', 'Зеркало', 8.0);"
        ))
        .await
        .expect("seed films");
    let first = cluster.start_host();
    let (token, _) = new_user(&first.app).await;
    let title_through = |host: &TestApp, id: &str| {
        let request = host
            .http
            .get(host.url(&format!("/api/v1/films/{id}")))
            .bearer_auth(&token)
            .send();
        async move {
            let response = request.await.expect("catalog answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["title"].as_str().map(str::to_owned))
        }
    };
    let shown = TestApp::eventually(Duration::from_secs(30), || async {
        (title_through(&first.app, RENAMED).await == (200, Some("Сталкер".to_owned())))
            .then_some(())
    })
    .await;
    assert!(
        shown.is_some(),
        "the first host never served the seeded film"
    );

    postgres
        .batch_execute(&format!(
            "UPDATE content.film SET title = 'Солярис' WHERE id = '{RENAMED}';
             DELETE FROM content.film WHERE id = '{DELETED}';
             INSERT INTO content.film (id, title, rating) VALUES ('{ADDED}', 'Ностальгия', 7.9);"
        ))
        .await
        .expect("edit the content");
    let second = cluster.start_host();

    let expected = [
        (RENAMED, 200, Some("Солярис".to_owned())),
        (DELETED, 404, None),
        (ADDED, 200, Some("Ностальгия".to_owned())),
    ];
    for (name, host) in [("first", &first), ("second", &second)] {
        for (id, status, title) in &expected {
            let internal = TestApp::eventually(Duration::from_secs(30), || async {
                let response = host
                    .app
                    .http
                    .get(format!("{}/search/films/{id}", host.app.internal))
                    .header(common::INTERNAL_TOKEN_HEADER, common::INTERNAL_TOKEN)
                    .send()
                    .await
                    .expect("internal search api");
                let found = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let seen = (found, body["title"].as_str().map(str::to_owned));
                (seen == (*status, title.clone())).then_some(())
            })
            .await;
            assert!(
                internal.is_some(),
                "the {name} host's index never showed {id} as {status} {title:?}"
            );
            let through_catalog = TestApp::eventually(Duration::from_secs(15), || async {
                (title_through(&host.app, id).await == (*status, title.clone())).then_some(())
            })
            .await;
            assert!(
                through_catalog.is_some(),
                "the catalog on the {name} host never answered {id} as {status} {title:?}: {:?}",
                title_through(&host.app, id).await
            );
        }
    }
}

/// Both hosts relay auth's outbox to Kafka and run notify (relay, announcer, sender) in
/// one group, whose partitions they split, sending to one SMTP server. Users sign up through either host; an admin
/// queues an announcement for everyone through the second. Once every delivery is sent,
/// each user holds exactly one welcome mail and one announcement.
#[tokio::test]
async fn two_hosts_send_each_mail_once() {
    const USERS: usize = 6;
    const ADMIN_ROLE: &str = "00000000-0000-4000-8000-000000000001";
    const WELCOME: &str = "Добро пожаловать в cinema";
    const ANNOUNCEMENT: &str = "Two hosts, one mail";
    let smtp = Smtp::start();
    let mut cluster = Cluster::new(1).await;
    cluster.smtp_url = Some(smtp.url());
    let first = cluster.start_host();
    let second = cluster.start_host();
    cluster
        .wait_for_split(&cluster.notify_group, NOTIFY_PARTITIONS, &[&first, &second])
        .await;
    let mut emails = Vec::new();
    for user in 0..USERS {
        let through = if user % 2 == 0 { &first } else { &second };
        let email = format!("{}@example.com", common::unique("mailed"));
        through.app.sign_up_and_log_in(&email, PASSWORD).await;
        emails.push(email);
    }
    for email in &emails {
        smtp.wait_for(email, 1, Duration::from_secs(30)).await;
    }

    common::grant_role(&cluster.database_url, &emails[0], ADMIN_ROLE).await;
    let admin = second.app.log_in(&emails[0], PASSWORD).await;
    let queued = second
        .app
        .http
        .post(second.app.url("/admin/api/announcements"))
        .bearer_auth(&admin)
        .json(&json!({"subject": ANNOUNCEMENT, "body": "Sent once, whichever host takes it.", "audience": ""}))
        .send()
        .await
        .expect("queue the announcement");
    assert_eq!(queued.status(), 201, "{:?}", queued.text().await);

    // The positive signal: every delivery (a welcome and an announcement per user) is
    // recorded once and sent; a second send would need a second delivery row.
    let postgres = cluster.postgres().await;
    let all_sent = TestApp::eventually(Duration::from_secs(60), || async {
        let row = postgres
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM notify.deliveries",
                &[],
            )
            .await
            .expect("count deliveries");
        let (recorded, sent): (i64, i64) = (row.get(0), row.get(1));
        (recorded == 2 * USERS as i64 && sent == recorded).then_some(())
    })
    .await;
    assert!(
        all_sent.is_some(),
        "not every delivery was recorded once and sent"
    );
    let mails = smtp.mails();
    for email in &emails {
        for subject in [WELCOME, ANNOUNCEMENT] {
            let received = mails
                .iter()
                .filter(|mail| mail["to"] == email.as_str() && mail["subject"] == subject)
                .count();
            assert_eq!(
                received, 1,
                "{email} received {received} mails titled {subject:?}"
            );
        }
    }
}

/// A spool belongs to one host: a second host given the same folder (two hosts on one
/// machine with the default `--spool-dir`, say) refuses to start, saying why, instead of
/// replaying and deleting segments the first is still writing; the first keeps serving.
#[tokio::test]
async fn a_second_host_on_the_same_spool_folder_refuses_to_start() {
    let cluster = Cluster::new(2).await;
    let first = cluster.start_host();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args(["up", "--from"])
        .arg(common::workspace_root().join("spin.toml"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--ugc-topic",
            &cluster.topic,
            "--no-ugc-loader",
            "--spool-dir",
            first.spool.path(),
        ])
        .env("SPIN_VARIABLE_JWKS", &cluster.jwks)
        .env("CINEMA_INTERNAL_API_TOKEN", common::INTERNAL_TOKEN)
        .output()
        .expect("run a second cinema up");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second host started: {said}");
    assert!(
        said.contains("is in use by another cinema process")
            && said.contains("give each host its own --spool-dir"),
        "{said}"
    );
    first
        .app
        .assert_running("after a second host tried its spool");
    let (token, _) = new_user(&first.app).await;
    post_heartbeats(&first.app, &token, &film_of(0), 0, 10).await;
}
