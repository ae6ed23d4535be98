//! Integration tests of the embedded component runtime: the real `cinema up` serving the
//! fixture components over real HTTP, with real Postgres and Redis on loopback.

mod common;

use std::time::Duration;

use common::{AppOptions, TestApp, spawn_app};
use serde_json::json;

/// The internal API's Prometheus text.
async fn metrics_text(app: &common::TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.internal))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// How many instances of `component` the app has created so far (its metric).
async fn instances_created(app: &common::TestApp, component: &str) -> u64 {
    let prefix = format!(r#"cinema_component_instances_created_total{{component="{component}"}}"#);
    metrics_text(app)
        .await
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("instances created metric")
}

/// Every response carries an `x-request-id`, a client's own id is kept, and the guest
/// sees Spin's request headers.
#[tokio::test]
async fn serves_component_with_request_id_and_spin_headers() {
    let app = spawn_app(AppOptions::default());
    let response = app.get("/probe/headers").await;
    assert_eq!(response.status(), 200);
    let generated = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let headers: serde_json::Value = response.json().await.expect("json");
    assert_eq!(headers["x-request-id"], generated.as_str());
    assert_eq!(headers["spin-path-info"], "/headers");
    assert_eq!(headers["spin-matched-route"], "/probe/...");
    assert_eq!(headers["spin-component-route"], "/probe");
    assert!(
        headers["spin-full-url"]
            .as_str()
            .expect("url")
            .ends_with("/probe/headers")
    );

    let response = app
        .http
        .get(app.url("/probe/headers"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
}

/// A path no trigger serves is a 404 with the platform's JSON error body.
#[tokio::test]
async fn unknown_route_is_json_404() {
    let app = spawn_app(AppOptions::default());
    let (status, body) = app.get_json("/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "route_not_found");
}

/// Component variables expand application variables, which the environment overrides;
/// unknown and malformed names come back as the interface's errors.
#[tokio::test]
async fn variables_resolve_defaults_environment_and_errors() {
    let app = spawn_app(AppOptions::default());
    let (status, body) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("hello, world"))
    );
    let (_, body) = app.get_json("/probe/vars/token").await;
    assert_eq!(body["value"], "s3cret-value");
    let (status, body) = app.get_json("/probe/vars/nope").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("Undefined"),
        "{body}"
    );
    let (_, body) = app.get_json("/probe/vars/no-pe").await;
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("InvalidName"),
        "{body}"
    );

    let app = spawn_app(AppOptions::default().env("SPIN_VARIABLE_GREETING", "privet"));
    let (_, body) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(body["value"], "privet, world");
}

/// A required variable without a value stops start-up with a message naming it.
#[tokio::test]
async fn missing_required_variable_stops_startup_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
            "--from",
        ])
        .arg(common::fixture_manifest())
        .env_remove("SPIN_VARIABLE_SECRET_TOKEN")
        .output()
        .expect("run cinema");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`secret_token`") && stderr.contains("SPIN_VARIABLE_SECRET_TOKEN"),
        "{stderr}"
    );
}

/// The in-memory `default` store keeps values across requests (and instances).
#[tokio::test]
async fn key_value_default_store_roundtrips() {
    let app = spawn_app(AppOptions::default());
    let put = app
        .http
        .put(app.url("/probe/kv/default/film"))
        .body("Stalker")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let (status, body) = app.get_json("/probe/kv/default/film").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("Stalker")));
    let (_, body) = app.get_json("/probe/kv-exists/default/film").await;
    assert_eq!(body["exists"], true);
    let (_, body) = app.get_json("/probe/kv/default").await;
    assert_eq!(body["keys"], json!(["film"]));
    let delete = app
        .http
        .delete(app.url("/probe/kv/default/film"))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 200);
    let (status, _) = app.get_json("/probe/kv/default/film").await;
    assert_eq!(status, 404);
}

/// A store mapped to Redis by the runtime-config file really lives in Redis.
#[tokio::test]
async fn key_value_redis_store_from_runtime_config() {
    let app = spawn_app(AppOptions::default().runtime_config(format!(
        "[key_value_store.cache]\ntype = \"redis\"\nurl = \"{}\"\n",
        common::redis_url()
    )));
    let key = common::unique("kvtest");
    let put = app
        .http
        .put(app.url(&format!("/probe/kv/cache/{key}")))
        .body("Solaris")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let client = redis::Client::open(common::redis_url()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must run on 127.0.0.1:6379 for this test (`scripts/services.sh up`)");
    let stored: Option<String> = redis::AsyncCommands::get(&mut connection, &key)
        .await
        .expect("redis get");
    assert_eq!(stored.as_deref(), Some("Solaris"));
    let (status, body) = app.get_json(&format!("/probe/kv/cache/{key}")).await;
    assert_eq!((status, body["value"].as_str()), (200, Some("Solaris")));
    let _: () = redis::AsyncCommands::del(&mut connection, &key)
        .await
        .expect("cleanup");
}

/// Stores not listed in the component's `key_value_stores` are denied; a listed label
/// the runtime config does not map is a memory store of its own, apart from `default`.
#[tokio::test]
async fn key_value_denies_unlisted_stores_and_keeps_labels_apart() {
    let app = spawn_app(AppOptions::default());
    let (status, body) = app.get_json("/limited/kv/default/x").await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("AccessDenied"),
        "{body}"
    );
    // `cache` is listed for probe but not configured in this run: a memory store of
    // its own, which `default` does not see.
    let put = app
        .http
        .put(app.url("/probe/kv/cache/x"))
        .body("in the cache store")
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success(), "{}", put.status());
    let (status, body) = app.get_json("/probe/kv/cache/x").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get_json("/probe/kv/default/x").await;
    assert_eq!(status, 404, "labels are apart");
}

/// Outgoing HTTP reaches allowed hosts; any other destination fails inside the guest
/// with an error, and the host keeps serving.
#[tokio::test]
async fn outbound_http_is_limited_to_allowed_hosts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let mut app =
        spawn_app(AppOptions::default().env("SPIN_VARIABLE_OUTBOUND_ALLOWED", upstream.clone()));
    let (status, body) = app
        .get_json(&format!("/probe/outbound?url={upstream}/x"))
        .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(204)),
        "{body}"
    );

    let (status, body) = app
        .get_json(&format!("/limited/outbound?url={upstream}/x"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("HttpRequestDenied"),
        "{body}"
    );
    assert!(app.is_running());
    let (status, _) = app
        .get_json(&format!("/probe/outbound?url={upstream}/x"))
        .await;
    assert_eq!(status, 200);
}

/// A guest's request to the host's own internal API is answered in-process, by the
/// same routes and the same credential check as over the network: without the internal
/// credential it is refused (the probe has none), a component whose
/// `allowed_outbound_hosts` does not list the internal API cannot reach it at all, and
/// public routes answer.
#[tokio::test]
async fn requests_to_the_internal_api_are_answered_in_process_with_its_credential_check() {
    let internal = format!("127.0.0.1:{}", common::free_port());
    let app = spawn_app(AppOptions {
        internal_listen: Some(internal.clone()),
        ..AppOptions::default().env(
            "SPIN_VARIABLE_OUTBOUND_ALLOWED",
            format!("http://{internal}"),
        )
    });
    let (status, body) = app
        .get_json(&format!("/probe/outbound?url=http://{internal}/health"))
        .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(200)),
        "{body}"
    );

    // The attack: a guest without the credential asks for data through the shortcut.
    for guarded in ["/auth/revocations", "/search/films?query=a"] {
        let (status, body) = app
            .get_json(&format!("/probe/outbound?url=http://{internal}{guarded}"))
            .await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (200, Some(401)),
            "{guarded}: {body}"
        );
    }
    let (status, body) = app
        .get_json(&format!("/limited/outbound?url=http://{internal}/health"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("HttpRequestDenied")),
        "{body}"
    );

    let metrics = metrics_text(&app).await;
    let served = r#"cinema_internal_api_in_process_requests_total{component="probe"} 3"#;
    assert!(metrics.contains(served), "missing {served} in\n{metrics}");
}

/// A panicking guest answers 500 with a JSON code for that request only.
#[tokio::test]
async fn trapping_guest_fails_only_its_own_request() {
    let mut app = spawn_app(AppOptions::default());
    let response = app.get("/probe/trap").await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "component_trapped");
    assert!(app.is_running());
    let (status, _) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(status, 200);
}

/// A guest that never returns is stopped at its deadline; others keep being served.
#[tokio::test]
async fn endless_guest_is_stopped_at_its_deadline() {
    let mut app = spawn_app(
        AppOptions::default()
            .arg("--request-deadline-ms")
            .arg("500"),
    );
    let started = std::time::Instant::now();
    let (status, body) = app.get_json("/probe/spin").await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "component_deadline_exceeded");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(app.is_running());
    let (status, _) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(status, 200);
}

/// A guest that allocates without bound hits its memory limit and fails alone.
#[tokio::test]
async fn memory_blowup_is_contained() {
    let mut app = spawn_app(AppOptions::default().arg("--memory-limit-mib").arg("32"));
    let (status, body) = app.get_json("/probe/oom").await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "component_trapped");
    assert!(app.is_running());
    let (status, _) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(status, 200);
}

/// The internal API reports health and per-route, per-component metrics.
#[tokio::test]
async fn internal_api_reports_health_and_metrics() {
    let app = spawn_app(AppOptions::default());
    let (status, _) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(status, 200);
    let _ = app.get("/probe/trap").await;
    let health: serde_json::Value = app
        .http
        .get(format!("{}/health", app.internal))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["components"], json!(["limited", "probe"]));
    let metrics = metrics_text(&app).await;
    for expected in [
        r#"cinema_http_requests_total{component="probe",route="/probe/...",status="2xx"} 1"#,
        r#"cinema_http_request_errors_total{component="probe",route="/probe/...",kind="trap"} 1"#,
        "cinema_http_request_duration_seconds_bucket",
        r#"cinema_component_instances_created_total{component="probe"}"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
}

/// Sequential requests reuse a pre-instantiated instance instead of creating one each.
#[tokio::test]
async fn instances_are_reused_across_requests() {
    let app = spawn_app(AppOptions::default());
    for _ in 0..30 {
        let (status, _) = app.get_json("/probe/vars/greeting").await;
        assert_eq!(status, 200);
    }
    let created = instances_created(&app, "probe").await;
    assert!(
        created <= 3,
        "30 sequential requests created {created} instances"
    );
}

/// Many concurrent requests are all served (instances are added as needed).
#[tokio::test]
async fn concurrent_requests_are_all_served() {
    let app = spawn_app(AppOptions::default());
    let requests = (0..64).map(|i| {
        let client = app.http.clone();
        let url = app.url(&format!("/probe/kv/default/key{i}"));
        async move {
            let put = client
                .put(&url)
                .body(format!("value{i}"))
                .send()
                .await
                .expect("put");
            let get = client.get(&url).send().await.expect("get");
            (
                put.status().as_u16(),
                get.json::<serde_json::Value>().await.expect("json"),
                i,
            )
        }
    });
    for (status, body, i) in futures::future::join_all(requests).await {
        assert_eq!(status, 200);
        assert_eq!(body["value"], format!("value{i}"));
    }
}

/// A Redis-backed store whose Redis is unreachable answers the guest with an error
/// quickly; the host keeps serving everything else.
#[tokio::test]
async fn key_value_errors_cleanly_when_redis_is_unreachable() {
    let mut app = spawn_app(AppOptions::default().runtime_config(
        "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n",
    ));
    let started = std::time::Instant::now();
    let (status, body) = app.get_json("/probe/kv/cache/anything").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("redis unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(app.is_running());
    let (status, _) = app.get_json("/probe/kv/default/anything").await;
    assert_eq!(status, 404, "the in-memory store still answers");
}

/// An upstream that answers after `delay`, so guests calling it stay in flight (waiting
/// on I/O) that long. Answers its address.
async fn slow_upstream(delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "slow"
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Serves three copies of the probe (`/a`, `/b`, `/c`), each allowed to call
/// `upstream`, with `options`; the folder holds the manifest while the app runs.
fn spawn_three_probes(upstream: &str, mut options: AppOptions) -> (TestApp, common::TempDir) {
    let dir = common::TempDir::new("three_probes");
    let wasm = common::workspace_root().join("build/components/fixture_probe.wasm");
    let mut manifest = String::from(
        "spin_manifest_version = 2\n[application]\nname = \"three-probes\"\n\
         [variables]\ngreeting = { default = \"hello\" }\n",
    );
    for id in ["a", "b", "c"] {
        manifest.push_str(&format!(
            "[[trigger.http]]\nroute = \"/{id}/...\"\ncomponent = \"{id}\"\n\
             [component.{id}]\nsource = \"{wasm}\"\nallowed_outbound_hosts = [\"{upstream}\"]\n\
             [component.{id}.variables]\ngreeting = \"{{{{ greeting }}}}\"\n",
            wasm = wasm.display()
        ));
    }
    let path = std::path::Path::new(dir.path()).join("spin.toml");
    std::fs::write(&path, manifest).expect("write manifest");
    options.manifest = Some(path);
    (spawn_app(options), dir)
}

/// Each component has its own share of the instance pool: a burst that fills the
/// shares of two components makes their extra requests wait, then answer 503
/// `component_busy` with `Retry-After` (never 500), while a third component answers
/// at once.
#[tokio::test]
async fn a_burst_on_two_components_leaves_a_third_answering() {
    let upstream = slow_upstream(Duration::from_secs(3)).await;
    let (app, _dir) = spawn_three_probes(
        &upstream,
        AppOptions::default()
            .arg("--max-instances")
            .arg("6")
            .arg("--queue-timeout-ms")
            .arg("300"),
    );

    let burst = ["a", "b"].into_iter().flat_map(|id| {
        let client = app.http.clone();
        let url = app.url(&format!("/{id}/outbound?url={upstream}/hold"));
        (0..8).map(move |_| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client.get(&url).send().await.expect("burst request");
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").cloned();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                (status, retry_after, body)
            }
        })
    });
    let burst = tokio::spawn(futures::future::join_all(burst));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = std::time::Instant::now();
    let (status, body) = app.get_json("/c/vars/greeting").await;
    assert_eq!(
        status, 200,
        "the third component answers during the burst: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the third component waited {:?} behind the burst",
        started.elapsed()
    );

    let answers = burst.await.expect("burst");
    let busy = answers.iter().filter(|(status, ..)| *status == 503).count();
    for (status, retry_after, body) in &answers {
        match status {
            200 => {}
            503 => {
                assert_eq!(body["error"]["code"], "component_busy", "{body}");
                assert_eq!(
                    retry_after.as_ref().and_then(|v| v.to_str().ok()),
                    Some("1")
                );
            }
            other => panic!("a burst request answered {other}: {body}"),
        }
    }
    assert!(
        busy >= 8,
        "16 requests on two shares of 2 should turn most away, {busy} were"
    );
}

/// A component allowed many concurrent requests per instance serves them on few
/// instances, and every request sees only its own data (its headers, its id).
#[tokio::test]
async fn concurrent_requests_on_one_instance_each_see_their_own_data() {
    let upstream = slow_upstream(Duration::from_millis(600)).await;
    let (app, _dir) = spawn_three_probes(
        &upstream,
        AppOptions::default()
            .runtime_config("[component_limits.a]\nmax_concurrent_requests_per_instance = 32\n"),
    );

    // Requests waiting on I/O, arriving a little apart: each finds the instance idle
    // in its event loop and joins it. Echoes in between must each see their own
    // request.
    let holds = (0..16u64).map(|i| {
        let client = app.http.clone();
        let url = app.url(&format!("/a/outbound?url={upstream}/hold"));
        async move {
            tokio::time::sleep(Duration::from_millis(20 * i)).await;
            client
                .get(&url)
                .send()
                .await
                .expect("hold")
                .status()
                .as_u16()
        }
    });
    let echoes = (0..48u64).map(|i| {
        let client = app.http.clone();
        let url = app.url(&format!("/a/headers?n={i}"));
        async move {
            tokio::time::sleep(Duration::from_millis(7 * i)).await;
            let response = client
                .get(&url)
                .header("x-request-id", format!("echo-{i}"))
                .header("x-probe-marker", format!("marker-{i}"))
                .send()
                .await
                .expect("echo");
            let body: serde_json::Value = response.json().await.expect("json");
            (i, body)
        }
    });
    let (holds, echoes) = tokio::join!(
        futures::future::join_all(holds),
        futures::future::join_all(echoes)
    );
    assert!(holds.iter().all(|s| *s == 200), "{holds:?}");
    for (i, body) in echoes {
        assert_eq!(body["x-request-id"], format!("echo-{i}"), "{body}");
        assert_eq!(body["x-probe-marker"], format!("marker-{i}"), "{body}");
        assert!(
            body["spin-full-url"]
                .as_str()
                .is_some_and(|url| url.ends_with(&format!("/a/headers?n={i}"))),
            "{body}"
        );
    }
    let created = instances_created(&app, "a").await;
    // One instance per request would be 16 at least (the holds overlap for 300 ms).
    assert!(
        created <= 6,
        "overlapping requests on a component taking 32 at a time made {created} instances"
    );
}

/// With several requests on one instance, a trap fails the requests that instance was
/// serving and no others: the host, the other instances and the next requests go on.
#[tokio::test]
async fn a_trap_in_a_shared_instance_fails_only_that_instance() {
    let upstream = slow_upstream(Duration::from_millis(500)).await;
    let (mut app, _dir) = spawn_three_probes(
        &upstream,
        AppOptions::default()
            .runtime_config("[component_limits.a]\nmax_concurrent_requests_per_instance = 8\n"),
    );

    let holds = (0..4).map(|_| {
        let client = app.http.clone();
        let url = app.url(&format!("/a/outbound?url={upstream}/hold"));
        async move {
            client
                .get(&url)
                .send()
                .await
                .expect("hold")
                .status()
                .as_u16()
        }
    });
    let holds = tokio::spawn(futures::future::join_all(holds));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = app.get_json("/a/trap").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("component_trapped"))
    );
    for status in holds.await.expect("holds") {
        // Served by the trapped instance (500) or by another one (200); never a hang.
        assert!(status == 200 || status == 500, "{status}");
    }
    assert!(app.is_running());
    let (status, _) = app.get_json("/a/vars/greeting").await;
    assert_eq!(status, 200);
    let (status, _) = app.get_json("/b/vars/greeting").await;
    assert_eq!(status, 200);
}

/// `[component_limits]` naming a component the application does not have stops the
/// start with a clear message.
#[tokio::test]
async fn component_limits_for_an_unknown_component_are_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args(["up", "--from"])
        .arg(common::workspace_root().join("host/tests/fixtures/spin.toml"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
        ])
        .arg("--runtime-config-file")
        .arg({
            let path = std::env::temp_dir().join(format!("{}.toml", common::unique("limits")));
            std::fs::write(
                &path,
                "[component_limits.nope]\nmax_requests_in_flight = 4\n",
            )
            .expect("write");
            path
        })
        .env("SPIN_VARIABLE_SECRET_TOKEN", "x")
        .env("CINEMA_INTERNAL_API_TOKEN", common::INTERNAL_TOKEN)
        .output()
        .expect("run cinema");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`nope` is not a component of this application"),
        "{stderr}"
    );
}

/// A client that opens a connection and sends its headers too slowly is cut off after
/// `--header-read-timeout-ms`; the listener keeps serving others.
#[tokio::test]
async fn a_client_slow_to_send_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(
        AppOptions::default()
            .arg("--header-read-timeout-ms")
            .arg("300"),
    );
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(b"GET /probe/vars/greeting HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "a connection with unfinished headers was still open after 5 s"
    );
    let (status, _) = app.get_json("/probe/vars/greeting").await;
    assert_eq!(status, 200);
}

/// At `--max-connections`, a new connection waits until an open one closes, then is
/// served.
#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(AppOptions::default().arg("--max-connections").arg("1"));
    let address = app.base.trim_start_matches("http://").to_owned();
    let request = b"GET /probe/vars/greeting HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    first.write_all(request).await.expect("first request");
    let mut buffer = [0u8; 4096];
    let read = first.read(&mut buffer).await.expect("first answer");
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buffer[..read])
    );

    let mut second = tokio::net::TcpStream::connect(&address)
        .await
        .expect("the kernel accepts into the backlog");
    second.write_all(request).await.expect("second request");
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "a connection past the cap was served while the first was open"
    );
    drop(first);
    let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buffer))
        .await
        .expect("served once the first connection closed")
        .expect("read");
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buffer[..read])
    );
}

/// SIGTERM lets a request in flight finish (and the process then exits); a second
/// signal exits at once without waiting for it.
#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_a_second_signal_exits() {
    let send_term = |app: &common::TestApp| {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &app.pid().to_string()])
            .status();
    };

    let upstream = slow_upstream(Duration::from_millis(1500)).await;
    let mut app = spawn_app(AppOptions::default().env("SPIN_VARIABLE_OUTBOUND_ALLOWED", &upstream));
    let url = app.url(&format!("/probe/outbound?url={upstream}/hold"));
    let client = app.http.clone();
    let in_flight =
        tokio::spawn(async move { client.get(&url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_term(&app);
    assert_eq!(in_flight.await.expect("task").expect("answered"), 200);
    let exited = TestApp::eventually(Duration::from_secs(10), || async {
        app.exit_status().map(|_| ())
    })
    .await;
    assert!(exited.is_some(), "cinema did not exit after draining");
    assert!(!app.is_running());

    let upstream = slow_upstream(Duration::from_secs(60)).await;
    let app = spawn_app(AppOptions::default().env("SPIN_VARIABLE_OUTBOUND_ALLOWED", &upstream));
    let url = app.url(&format!("/probe/outbound?url={upstream}/hold"));
    let client = app.http.clone();
    let _stuck =
        tokio::spawn(async move { client.get(&url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_term(&app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_term(&app);
    let status = TestApp::eventually(Duration::from_secs(5), || async { app.exit_status() }).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "a second signal must end cinema at once"
    );
}
