//! Integration tests of `spin:postgres` in the embedded runtime: the fixture component
//! drives a real Postgres through the host's shared pools.

mod common;

use common::{AppOptions, TestApp, spawn_app};
use serde_json::{Value, json};

async fn app_with_database() -> (TestApp, String) {
    let url = common::fresh_database().await;
    let app = spawn_app(AppOptions::default().env("SPIN_VARIABLE_PG_ADDRESS", url.clone()));
    (app, url)
}

async fn query(app: &TestApp, statement: &str, params: Value) -> (u16, Value) {
    app.post_json(
        "/probe/pg/query",
        json!({"statement": statement, "params": params}),
    )
    .await
}

async fn execute(app: &TestApp, statement: &str, params: Value) -> (u16, Value) {
    app.post_json(
        "/probe/pg/execute",
        json!({"statement": statement, "params": params}),
    )
    .await
}

/// Every value type of the interface survives a round trip through a real table, and
/// columns report the interface's data types.
#[tokio::test]
async fn every_value_type_roundtrips() {
    let (app, _) = app_with_database().await;
    let (status, body) = execute(
        &app,
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); ",
        json!([]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = execute(
        &app,
        "CREATE TABLE everything (
            b boolean, c \"char\", i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
            t text, v varchar(20), bin bytea, d date, tm time, ts timestamp, tstz timestamptz,
            u uuid, j json, jb jsonb, n numeric, r4 int4range, a4 int4[], a8 bigint[], an numeric[],
            at text[], iv interval, e mood)",
        json!([]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let params = json!([
        {"boolean": true}, {"int8": 7}, {"int16": -300}, {"int32": 70000}, {"int64": 9000000000i64},
        {"floating32": 1.5}, {"floating64": -2.25}, {"str": "Сталкер ё"}, {"str": "Solaris"},
        {"binary": "raw"}, {"date": [1979, 5, 25]}, {"time": [13, 45, 30, 500000000]},
        {"datetime": [2024, 2, 29, 23, 59, 58, 0]}, {"timestamp": 1700000000},
        {"uuid": "6f1c2e34-6b5e-4a53-9f0e-1a2b3c4d5e6f"}, {"jsonb": {"a": [1, 2]}}, {"jsonb": {"b": null}},
        {"decimal": "-12345678901234567890.000123"}, {"range_int32": [1, 10]},
        {"array_int32": [1, null, 3]}, {"array_int64": [9000000000i64]}, {"array_decimal": ["1.5", null]},
        {"array_str": ["a", "б", null]}, {"interval": [1500000, 2, 3]}, {"str": "happy"}
    ]);
    let placeholders: Vec<String> = (1..=25).map(|i| format!("${i}")).collect();
    let (status, body) = execute(
        &app,
        &format!(
            "INSERT INTO everything VALUES ({})",
            placeholders.join(", ")
        ),
        params,
    )
    .await;
    assert_eq!((status, &body["affected"]), (200, &json!(1)), "{body}");

    let (status, body) = query(&app, "SELECT * FROM everything", json!([])).await;
    assert_eq!(status, 200, "{body}");
    let row = &body["rows"][0];
    let expected = json!([
        {"boolean": true}, {"int8": 7}, {"int16": -300}, {"int32": 70000}, {"int64": 9000000000i64},
        {"floating32": 1.5}, {"floating64": -2.25}, {"str": "Сталкер ё"}, {"str": "Solaris"},
        {"binary": [114, 97, 119]}, {"date": [1979, 5, 25]}, {"time": [13, 45, 30, 500000000]},
        {"datetime": [2024, 2, 29, 23, 59, 58, 0]}, {"datetime": [2023, 11, 14, 22, 13, 20, 0]},
        {"uuid": "6f1c2e34-6b5e-4a53-9f0e-1a2b3c4d5e6f"}, {"jsonb": "{\"a\":[1,2]}"}, {"jsonb": "{\"b\": null}"},
        {"decimal": "-12345678901234567890.000123"},
        {"range_int32": [{"inclusive": "1"}, {"exclusive": "10"}]},
        {"array_int32": [1, null, 3]}, {"array_int64": [9000000000i64]}, {"array_decimal": ["1.5", null]},
        {"array_str": ["a", "б", null]}, {"interval": [1500000, 2, 3]}, {"str": "happy"}
    ]);
    assert_eq!(row, &expected);
    let types: Vec<&str> = body["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            c["type"]
                .as_str()
                .expect("type")
                .trim_start_matches("DbDataType::")
        })
        .collect();
    assert_eq!(
        types,
        [
            "Boolean",
            "Int8",
            "Int16",
            "Int32",
            "Int64",
            "Floating32",
            "Floating64",
            "Str",
            "Str",
            "Binary",
            "Date",
            "Time",
            "Datetime",
            "Datetime",
            "Uuid",
            "Jsonb",
            "Jsonb",
            "Decimal",
            "RangeInt32",
            "ArrayInt32",
            "ArrayInt64",
            "ArrayDecimal",
            "ArrayStr",
            "Interval",
            "Str"
        ]
    );

    let (status, body) = query(
        &app,
        "SELECT NULL::int AS nothing, point(1,2) AS odd",
        json!([]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], json!({"null": null}));
    assert!(body["rows"][0][1].get("unsupported").is_some(), "{body}");
    assert_eq!(body["columns"][1]["type"], "DbDataType::Other(\"point\")");
}

/// Database errors arrive as `query-failed(db-error)` with SQLSTATE; bad parameters as
/// `bad-parameter`; destinations outside `allowed_outbound_hosts` as `connection-failed`.
#[tokio::test]
async fn errors_map_to_interface_variants() {
    let (app, _) = app_with_database().await;
    let (status, body) = query(&app, "SELEC 1", json!([])).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["kind"], "query_failed");
    assert_eq!(body["error"]["code"], "42601");

    execute(&app, "CREATE TABLE films (id int PRIMARY KEY)", json!([])).await;
    execute(&app, "INSERT INTO films VALUES (1)", json!([])).await;
    let (_, body) = execute(&app, "INSERT INTO films VALUES (1)", json!([])).await;
    assert_eq!(body["error"]["code"], "23505", "{body}");

    let (_, body) = query(&app, "SELECT $1::int", json!([{"str": "not a number"}])).await;
    assert_eq!(body["error"]["kind"], "bad_parameter", "{body}");
    let (_, body) = query(&app, "SELECT $1::int", json!([{"int64": 9000000000i64}])).await;
    assert_eq!(body["error"]["kind"], "bad_parameter", "{body}");
    let (_, body) = query(&app, "SELECT $1::int, $2::int", json!([{"int32": 1}])).await;
    assert_eq!(body["error"]["kind"], "bad_parameter", "{body}");

    let (_, body) = app
        .post_json(
            "/probe/pg/query",
            json!({"statement": "SELECT 1", "address": "postgres://postgres@127.0.0.2:5432/postgres"}),
        )
        .await;
    assert_eq!(body["error"]["kind"], "connection_failed", "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("allowed_outbound_hosts"),
        "{body}"
    );

    // The component without permissions cannot reach the database at all.
    let (_, body) = app
        .post_json("/limited/pg/query", json!({"statement": "SELECT 1"}))
        .await;
    assert_eq!(body["error"]["kind"], "connection_failed", "{body}");
}

/// An address that says `sslmode=disable` (what spin.toml's defaults and every test
/// database URL say, so that a local Postgres whose certificate is self-signed is
/// reached at all) connects and queries without TLS, though this Postgres offers it.
/// `postgres_tls.rs` covers the other modes.
#[tokio::test]
async fn an_address_with_sslmode_disable_connects_without_tls() {
    let (app, url) = app_with_database().await;
    assert!(url.ends_with("?sslmode=disable"), "{url}");
    let (status, body) = app
        .post_json(
            "/probe/pg/query",
            json!({
                "statement": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                "address": url,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0]["boolean"], false, "{body}");
}

/// Requests reuse pooled connections instead of connecting every time.
#[tokio::test]
async fn connections_are_pooled_across_requests() {
    let (app, _) = app_with_database().await;
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = query(&app, "SELECT pg_backend_pid()", json!([])).await;
        assert_eq!(status, 200, "{body}");
        pids.insert(body["rows"][0][0]["int32"].as_i64().expect("pid"));
    }
    assert!(
        pids.len() <= 2,
        "20 sequential requests used {} connections",
        pids.len()
    );
}

/// A transaction a guest leaves open never leaks into another request's connection.
#[tokio::test]
async fn open_transaction_does_not_leak_between_requests() {
    let (app, _) = app_with_database().await;
    execute(&app, "CREATE TABLE t (x int)", json!([])).await;
    let (status, body) = app
        .post_json(
            "/probe/pg/query",
            json!({"before": ["BEGIN", "INSERT INTO t VALUES (1)"], "statement": "SELECT count(*) FROM t"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], json!({"int64": 1}));
    for _ in 0..5 {
        let (_, body) = query(
            &app,
            "SELECT count(*), pg_current_xact_id_if_assigned() IS NULL FROM t",
            json!([]),
        )
        .await;
        assert_eq!(
            body["rows"][0][0],
            json!({"int64": 0}),
            "uncommitted row leaked: {body}"
        );
        assert_eq!(
            body["rows"][0][1],
            json!({"boolean": true}),
            "ran inside a leaked transaction: {body}"
        );
    }
}

/// `numeric` as Postgres itself reads and writes it: for generated decimal texts (signs,
/// leading zeros, up to 40 digits each side, zero, `.5`, `5.`), the host's binary
/// encoding is the value Postgres parses from the text, and the host's decoding of
/// Postgres' binary value is the text Postgres prints. Checked against the real server.
#[test]
fn numeric_conversion_agrees_with_postgres_both_ways() {
    use bytes::BytesMut;
    use cinema_host::runtime::postgres::convert::{numeric_from_str, numeric_to_string};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

    /// A `numeric` parameter already in Postgres' binary form.
    #[derive(Debug)]
    struct Encoded(BytesMut);
    impl ToSql for Encoded {
        fn to_sql(
            &self,
            _: &Type,
            out: &mut BytesMut,
        ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            out.extend_from_slice(&self.0);
            Ok(IsNull::No)
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }
        to_sql_checked!();
    }
    /// A `numeric` result as Postgres sent it.
    struct Binary(Vec<u8>);
    impl<'a> FromSql<'a> for Binary {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Self(raw.to_vec()))
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }
    }

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let client = runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&common::postgres_url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("Postgres on 127.0.0.1:5432 (`scripts/services.sh up`)");
        tokio::spawn(connection);
        client
    });
    let decimal = (
        prop::sample::select(vec!["", "-", "+"]),
        "0{0,3}[0-9]{0,40}",
        prop::option::of("[0-9]{0,40}"),
    )
        .prop_filter_map("a number has digits", |(sign, integer, fraction)| {
            let has_digits =
                !integer.is_empty() || fraction.as_deref().is_some_and(|f| !f.is_empty());
            has_digits.then(|| match fraction {
                Some(fraction) => format!("{sign}{integer}.{fraction}"),
                None => format!("{sign}{integer}"),
            })
        });
    let mut runner = TestRunner::new(Config::with_cases(512));
    runner
        .run(&decimal, |text| {
            let (printed, ours_read_back, theirs) = runtime.block_on(async {
                let printed: String = client
                    .query_one("SELECT $1::text::numeric::text", &[&text])
                    .await
                    .expect("postgres parses the text")
                    .get(0);
                let mut encoded = BytesMut::new();
                numeric_from_str(&text, &mut encoded).expect("the host encodes it");
                let ours_read_back: String = client
                    .query_one("SELECT $1::numeric::text", &[&Encoded(encoded)])
                    .await
                    .expect("postgres takes the host's binary numeric")
                    .get(0);
                let theirs: Binary = client
                    .query_one("SELECT $1::text::numeric", &[&text])
                    .await
                    .expect("postgres sends a binary numeric")
                    .get(0);
                (printed, ours_read_back, theirs)
            });
            prop_assert_eq!(&ours_read_back, &printed, "encoding {}", text);
            let decoded = numeric_to_string(&theirs.0).expect("the host decodes it");
            prop_assert_eq!(&decoded, &printed, "decoding {}", text);
            Ok(())
        })
        .expect("numeric conversion agrees with Postgres");
}
