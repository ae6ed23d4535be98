//! Test fixture: exercises every interface of the platform world over plain HTTP so
//! that the host's integration tests can drive each one from outside.
//!
//! Routes (relative to the trigger's `/probe/...`):
//! - `GET /vars/{name}`: `spin:variables` lookup;
//! - `GET|PUT|DELETE /kv/{store}/{key}`, `GET /kv/{store}` (keys), `GET /kv-exists/{store}/{key}`;
//! - `POST /pg/query` and `POST /pg/execute` with `{"statement", "params": [{"type": value}]}`;
//! - `GET /outbound?url=...`: an outgoing GET;
//! - `GET /headers`: the request headers the host passed;
//! - `GET /trap`, `GET /spin`, `GET /oom`: a panic, an endless loop, a memory blow-up.
//!
//! Every failure is answered as JSON `{"error": {"kind", "detail"}}` with a 4xx/5xx
//! status, so tests can assert on the interface's error variants.

use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::pg::wit::postgres::{DbValue, ParameterValue, RangeBoundKind};

fn reply(status: u16, body: Value) -> impl IntoResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, spin_sdk::http::Json(body))
}

fn failure(status: u16, kind: &str, detail: impl std::fmt::Debug) -> (u16, Value) {
    (
        status,
        json!({"error": {"kind": kind, "detail": format!("{detail:?}")}}),
    )
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let path = request
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let method = request.method().clone();
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let body = match http_body_util::BodyExt::collect(request.into_body()).await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, value) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["vars", name]) => variables(name).await,
        ("GET", ["kv", store]) => kv_keys(store).await,
        ("GET", ["kv", store, key]) => kv_get(store, key).await,
        ("PUT", ["kv", store, key]) => kv_set(store, key, body).await,
        ("DELETE", ["kv", store, key]) => kv_delete(store, key).await,
        ("GET", ["kv-exists", store, key]) => kv_exists(store, key).await,
        ("POST", ["pg", "query"]) => pg(body, false).await,
        ("POST", ["pg", "execute"]) => pg(body, true).await,
        ("GET", ["outbound"]) => outbound(&query).await,
        ("GET", ["headers"]) => (200, Value::Object(headers)),
        ("GET", ["trap"]) => panic!("the probe was asked to trap"),
        ("GET", ["spin"]) => spin_forever(),
        ("GET", ["oom"]) => exhaust_memory(),
        _ => failure(404, "no_such_probe", path),
    };
    reply(status, value)
}

async fn variables(name: &str) -> (u16, Value) {
    match spin_sdk::variables::get(name).await {
        Ok(value) => (200, json!({"value": value})),
        Err(error) => failure(404, "variables", error),
    }
}

async fn open_store(label: &str) -> Result<spin_sdk::key_value::Store, (u16, Value)> {
    spin_sdk::key_value::Store::open(label)
        .await
        .map_err(|error| failure(403, "key_value_open", error))
}

async fn kv_get(label: &str, key: &str) -> (u16, Value) {
    let store = match open_store(label).await {
        Ok(store) => store,
        Err(failed) => return failed,
    };
    match store.get(key).await {
        Ok(Some(value)) => (200, json!({"value": String::from_utf8_lossy(&value)})),
        Ok(None) => failure(404, "key_value_missing", key),
        Err(error) => failure(503, "key_value", error),
    }
}

async fn kv_set(label: &str, key: &str, value: Vec<u8>) -> (u16, Value) {
    let store = match open_store(label).await {
        Ok(store) => store,
        Err(failed) => return failed,
    };
    match store.set(key, &value).await {
        Ok(()) => (200, json!({"stored": key})),
        Err(error) => failure(503, "key_value", error),
    }
}

async fn kv_delete(label: &str, key: &str) -> (u16, Value) {
    let store = match open_store(label).await {
        Ok(store) => store,
        Err(failed) => return failed,
    };
    match store.delete(key).await {
        Ok(()) => (200, json!({"deleted": key})),
        Err(error) => failure(503, "key_value", error),
    }
}

async fn kv_exists(label: &str, key: &str) -> (u16, Value) {
    let store = match open_store(label).await {
        Ok(store) => store,
        Err(failed) => return failed,
    };
    match store.exists(key).await {
        Ok(exists) => (200, json!({"exists": exists})),
        Err(error) => failure(503, "key_value", error),
    }
}

async fn kv_keys(label: &str) -> (u16, Value) {
    let store = match open_store(label).await {
        Ok(store) => store,
        Err(failed) => return failed,
    };
    let mut keys = store.get_keys().await;
    let mut all = Vec::new();
    while let Some(key) = keys.next().await {
        all.push(key);
    }
    all.sort();
    (200, json!({"keys": all}))
}

fn param(value: &Value) -> Result<ParameterValue, String> {
    let Some((kind, value)) = value.as_object().and_then(|o| o.iter().next()) else {
        return Err(format!(
            "parameter must be {{\"type\": value}}, got {value}"
        ));
    };
    let int = || value.as_i64().ok_or(format!("{kind} needs an integer"));
    let float = || value.as_f64().ok_or(format!("{kind} needs a number"));
    let text = || {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("{kind} needs a string"))
    };
    let ints = |v: &Value| -> Vec<i64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    };
    Ok(match kind.as_str() {
        "null" => ParameterValue::DbNull,
        "boolean" => ParameterValue::Boolean(value.as_bool().ok_or("boolean needs true/false")?),
        "int8" => ParameterValue::Int8(int()? as i8),
        "int16" => ParameterValue::Int16(int()? as i16),
        "int32" => ParameterValue::Int32(int()? as i32),
        "int64" => ParameterValue::Int64(int()?),
        "floating32" => ParameterValue::Floating32(float()? as f32),
        "floating64" => ParameterValue::Floating64(float()?),
        "str" => ParameterValue::Str(text()?),
        "binary" => ParameterValue::Binary(text()?.into_bytes()),
        "uuid" => ParameterValue::Uuid(text()?),
        "jsonb" => ParameterValue::Jsonb(value.to_string().into_bytes()),
        "decimal" => ParameterValue::Decimal(text()?),
        "timestamp" => ParameterValue::Timestamp(int()?),
        "date" => {
            let v = ints(value);
            ParameterValue::Date((v[0] as i32, v[1] as u8, v[2] as u8))
        }
        "time" => {
            let v = ints(value);
            ParameterValue::Time((v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u32))
        }
        "datetime" => {
            let v = ints(value);
            ParameterValue::Datetime((
                v[0] as i32,
                v[1] as u8,
                v[2] as u8,
                v[3] as u8,
                v[4] as u8,
                v[5] as u8,
                v[6] as u32,
            ))
        }
        "array_int32" => ParameterValue::ArrayInt32(
            value
                .as_array()
                .map(|a| a.iter().map(|v| v.as_i64().map(|i| i as i32)).collect())
                .unwrap_or_default(),
        ),
        "array_int64" => ParameterValue::ArrayInt64(
            value
                .as_array()
                .map(|a| a.iter().map(Value::as_i64).collect())
                .unwrap_or_default(),
        ),
        "array_str" => ParameterValue::ArrayStr(
            value
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        ),
        "array_decimal" => ParameterValue::ArrayDecimal(
            value
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        ),
        "range_int32" => {
            let v = ints(value);
            ParameterValue::RangeInt32((
                Some((v[0] as i32, RangeBoundKind::Inclusive)),
                Some((v[1] as i32, RangeBoundKind::Exclusive)),
            ))
        }
        "interval" => {
            let v = ints(value);
            ParameterValue::Interval(spin_sdk::pg::Interval {
                micros: v[0],
                days: v[1] as i32,
                months: v[2] as i32,
            })
        }
        other => return Err(format!("unknown parameter type {other}")),
    })
}

fn bound<T: std::fmt::Display>(bound: &Option<(T, RangeBoundKind)>) -> Value {
    match bound {
        None => Value::Null,
        Some((value, RangeBoundKind::Inclusive)) => json!({"inclusive": value.to_string()}),
        Some((value, RangeBoundKind::Exclusive)) => json!({"exclusive": value.to_string()}),
    }
}

fn db_value(value: &DbValue) -> Value {
    match value {
        DbValue::Boolean(v) => json!({"boolean": v}),
        DbValue::Int8(v) => json!({"int8": v}),
        DbValue::Int16(v) => json!({"int16": v}),
        DbValue::Int32(v) => json!({"int32": v}),
        DbValue::Int64(v) => json!({"int64": v}),
        DbValue::Floating32(v) => json!({"floating32": v}),
        DbValue::Floating64(v) => json!({"floating64": v}),
        DbValue::Str(v) => json!({"str": v}),
        DbValue::Binary(v) => json!({"binary": v}),
        DbValue::Date(v) => json!({"date": [v.0, v.1, v.2]}),
        DbValue::Time(v) => json!({"time": [v.0, v.1, v.2, v.3]}),
        DbValue::Datetime(v) => json!({"datetime": [v.0, v.1, v.2, v.3, v.4, v.5, v.6]}),
        DbValue::Timestamp(v) => json!({"timestamp": v}),
        DbValue::Uuid(v) => json!({"uuid": v}),
        DbValue::Jsonb(v) => json!({"jsonb": String::from_utf8_lossy(v)}),
        DbValue::Decimal(v) => json!({"decimal": v}),
        DbValue::RangeInt32(v) => json!({"range_int32": [bound(&v.0), bound(&v.1)]}),
        DbValue::RangeInt64(v) => json!({"range_int64": [bound(&v.0), bound(&v.1)]}),
        DbValue::RangeDecimal(v) => json!({"range_decimal": [bound(&v.0), bound(&v.1)]}),
        DbValue::ArrayInt32(v) => json!({"array_int32": v}),
        DbValue::ArrayInt64(v) => json!({"array_int64": v}),
        DbValue::ArrayDecimal(v) => json!({"array_decimal": v}),
        DbValue::ArrayStr(v) => json!({"array_str": v}),
        DbValue::Interval(v) => json!({"interval": [v.micros, v.days, v.months]}),
        DbValue::DbNull => json!({"null": null}),
        DbValue::Unsupported(v) => json!({"unsupported": v}),
    }
}

fn pg_error(error: &spin_sdk::pg::Error) -> (u16, Value) {
    use spin_sdk::pg::wit::postgres::{Error as E, QueryError};
    let body = match error {
        spin_sdk::pg::Error::PgError(E::ConnectionFailed(m)) => {
            json!({"kind": "connection_failed", "detail": m})
        }
        spin_sdk::pg::Error::PgError(E::BadParameter(m)) => {
            json!({"kind": "bad_parameter", "detail": m})
        }
        spin_sdk::pg::Error::PgError(E::ValueConversionFailed(m)) => {
            json!({"kind": "value_conversion_failed", "detail": m})
        }
        spin_sdk::pg::Error::PgError(E::QueryFailed(QueryError::DbError(db))) => {
            json!({"kind": "query_failed", "code": db.code, "message": db.message, "detail": db.detail, "severity": db.severity})
        }
        spin_sdk::pg::Error::PgError(E::QueryFailed(QueryError::Text(m))) => {
            json!({"kind": "query_failed", "detail": m})
        }
        other => json!({"kind": "other", "detail": format!("{other:?}")}),
    };
    (502, json!({"error": body}))
}

async fn pg(body: Vec<u8>, execute: bool) -> (u16, Value) {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return failure(400, "bad_json", error),
    };
    let address = match request["address"].as_str() {
        Some(address) => address.to_owned(),
        None => match spin_sdk::variables::get("pg_address").await {
            Ok(address) => address,
            Err(error) => return failure(500, "variables", error),
        },
    };
    let statement = request["statement"].as_str().unwrap_or_default().to_owned();
    let params = match request["params"]
        .as_array()
        .map(|a| a.iter().map(param).collect::<Result<Vec<_>, _>>())
    {
        Some(Ok(params)) => params,
        Some(Err(error)) => return failure(400, "bad_param_json", error),
        None => Vec::new(),
    };
    let connection = match spin_sdk::pg::Connection::open(address).await {
        Ok(connection) => connection,
        Err(error) => return pg_error(&error),
    };
    // Several statements on one connection: e.g. a transaction.
    let before: Vec<String> = request["before"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for statement in before {
        if let Err(error) = connection.execute(statement, Vec::new()).await {
            return pg_error(&error);
        }
    }
    if execute {
        return match connection.execute(statement, params).await {
            Ok(count) => (200, json!({"affected": count})),
            Err(error) => pg_error(&error),
        };
    }
    let mut result = match connection.query(statement, params).await {
        Ok(result) => result,
        Err(error) => return pg_error(&error),
    };
    let columns: Vec<Value> = result
        .columns()
        .iter()
        .map(|c| json!({"name": c.name, "type": format!("{:?}", c.data_type)}))
        .collect();
    let mut rows = Vec::new();
    while let Some(row) = result.rows().next().await {
        rows.push(Value::Array(row.iter().map(db_value).collect()));
    }
    match result.result().await {
        Ok(()) => (200, json!({"columns": columns, "rows": rows})),
        Err(error) => pg_error(&error),
    }
}

async fn outbound(query: &str) -> (u16, Value) {
    let Some(url) = query.strip_prefix("url=") else {
        return failure(400, "missing_url", query);
    };
    match spin_sdk::http::get(url).await {
        Ok(response) => (200, json!({"status": response.status().as_u16()})),
        Err(error) => failure(502, "outbound", error),
    }
}

fn spin_forever() -> (u16, Value) {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn exhaust_memory() -> (u16, Value) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 8 << 20];
        block[0] = 1;
        blocks.push(std::hint::black_box(block));
    }
}
