//! Mail preferences: which optional mail a user receives (`announcements`,
//! `film_digest`; security notices always go), read and changed by the user, and the
//! one-click unsubscribe link every optional mail carries.
//!
//! - `GET|PUT /api/v1/auth/me/notifications` `{"announcements": bool, "film_digest": bool}`
//!   (PUT takes either or both);
//! - `GET /api/v1/auth/unsubscribe?token=` shows what the link does, with a button;
//!   `POST` (what mail clients send for `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
//!   and the button) turns that category off. An unknown token is 404
//!   `unsubscribe_token_unknown`.

use bytes::Bytes;
use cinema_domain::token::hash_refresh_token;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::pg::ParameterValue;

use crate::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, Reply, empty, json};
use crate::settings::Settings;

/// The user's preferences (defaults when there is no row).
async fn read(caller: &Caller) -> ApiResult<Reply> {
    let rows = caller
        .db
        .rows(
            "SELECT COALESCE(p.announcements, true) AS announcements, \
                    COALESCE(p.film_digest, true) AS film_digest \
             FROM (SELECT $1::uuid AS user_id) u \
             LEFT JOIN auth.notification_preferences p ON p.user_id = u.user_id",
            vec![ParameterValue::Uuid(caller.user_id.to_string())],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::Internal("no preferences row".into()))?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "announcements": row.get::<bool>("announcements").unwrap_or(true),
            "film_digest": row.get::<bool>("film_digest").unwrap_or(true),
        }),
    ))
}

/// `GET /api/v1/auth/me/notifications`.
pub async fn get(caller: Caller) -> ApiResult<Reply> {
    read(&caller).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    announcements: Option<bool>,
    film_digest: Option<bool>,
}

/// `PUT /api/v1/auth/me/notifications`.
pub async fn put(caller: Caller, body: &[u8]) -> ApiResult<Reply> {
    let change: Change = crate::parse(body)?;
    let flag = |value: Option<bool>| value.map_or(ParameterValue::DbNull, ParameterValue::Boolean);
    caller
        .db
        .execute(
            "INSERT INTO auth.notification_preferences (user_id, announcements, film_digest) \
             VALUES ($1, COALESCE($2, true), COALESCE($3, true)) \
             ON CONFLICT (user_id) DO UPDATE SET \
                 announcements = COALESCE($2, auth.notification_preferences.announcements), \
                 film_digest = COALESCE($3, auth.notification_preferences.film_digest), \
                 modified = now()",
            vec![
                ParameterValue::Uuid(caller.user_id.to_string()),
                flag(change.announcements),
                flag(change.film_digest),
            ],
        )
        .await?;
    read(&caller).await
}

fn token_hash(query: &str) -> ApiResult<Vec<u8>> {
    let token = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| (16..=128).contains(&token.len()))
        .ok_or_else(|| ApiError::invalid("token", "must be the token from the unsubscribe link"))?;
    Ok(hash_refresh_token(&token).to_vec())
}

fn page(status: StatusCode, title: &str, body: &str) -> Reply {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui;max-width:32rem;margin:4rem auto\"><h1>{title}</h1>{body}</body></html>"
    );
    let mut reply = empty(status);
    *reply.body_mut() = http_body_util::Full::new(Bytes::from(html));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    reply
}

fn category_words(category: &str) -> &'static str {
    match category {
        "announcements" => "announcements",
        _ => "new-film digests",
    }
}

/// `GET /api/v1/auth/unsubscribe?token=`: a page with the button (a GET never
/// changes anything: link scanners follow links).
pub async fn confirm_page(settings: &Settings, query: &str) -> ApiResult<Reply> {
    let hash = token_hash(query)?;
    let db = Db::open(&settings.database_url).await?;
    let rows = db
        .rows(
            "SELECT category FROM auth.unsubscribe_tokens WHERE token_hash = $1",
            vec![ParameterValue::Binary(hash)],
        )
        .await?;
    let Some(category) = rows.first().and_then(|row| row.get::<String>("category")) else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "<p>This unsubscribe link is not valid.</p>",
        ));
    };
    let token: String = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let action = format!(
        "/api/v1/auth/unsubscribe?token={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    Ok(page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop receiving {} from cinema?</p><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            category_words(&category)
        ),
    ))
}

/// `POST /api/v1/auth/unsubscribe?token=`: turns the link's category off.
pub async fn unsubscribe(settings: &Settings, query: &str, wants_html: bool) -> ApiResult<Reply> {
    let hash = token_hash(query)?;
    let db = Db::open(&settings.database_url).await?;
    let rows = db
        .rows(
            "WITH t AS (SELECT user_id, category FROM auth.unsubscribe_tokens WHERE token_hash = $1) \
             INSERT INTO auth.notification_preferences (user_id, announcements, film_digest) \
             SELECT user_id, category <> 'announcements', category <> 'film_digest' FROM t \
             ON CONFLICT (user_id) DO UPDATE SET \
                 announcements = CASE WHEN (SELECT category FROM t) = 'announcements' THEN false \
                                      ELSE auth.notification_preferences.announcements END, \
                 film_digest = CASE WHEN (SELECT category FROM t) = 'film_digest' THEN false \
                                    ELSE auth.notification_preferences.film_digest END, \
                 modified = now() \
             RETURNING (SELECT category FROM t) AS category",
            vec![ParameterValue::Binary(hash)],
        )
        .await?;
    let Some(category) = rows.first().and_then(|row| row.get::<String>("category")) else {
        return Err(ApiError::NotFoundCode(
            "unsubscribe_token_unknown",
            "this unsubscribe link is not valid",
        ));
    };
    if wants_html {
        return Ok(page(
            StatusCode::OK,
            "Unsubscribed",
            &format!(
                "<p>You will no longer receive {} from cinema.</p>",
                category_words(&category)
            ),
        ));
    }
    Ok(json(StatusCode::OK, &json!({ "unsubscribed": category })))
}
