//! The admin edge component: the console at `/admin` (server-rendered HTML, a little
//! progressive JavaScript for the search-as-you-type pickers) and its JSON API at
//! `/admin/api`.
//!
//! Who may do what: only tokens with the `admin` or `manager` role get in ([`session`]);
//! content writes need `content:edit` (both roles), user administration needs
//! `users:manage` (admins). Content changes go straight to Postgres with their audit
//! entry in the same statement ([`content`]); user administration is the auth
//! component's, called with the signed-in admin's token ([`users`]).
//!
//! Every console write is a form POST checked for CSRF ([`session::check_csrf`]) and
//! answered with a redirect (303) or, when a field is refused, the same page again
//! with the message beside the field (422). API errors are JSON with a stable code
//! ([`error`]).
//!
//! Modules: [`console`] and [`api`] (the routes of each surface), [`session`] (sign-in, cookies, CSRF),
//! [`content`] (rules and queries), [`users`] (auth's user administration),
//! [`announcements`] (mail to everyone or a role, with progress),
//! [`views`] (pages), [`reply`] (responses), [`settings`].

mod announcements;
mod api;
mod console;
mod content;
mod error;
mod reply;
mod session;
mod settings;
mod users;
mod views;

use bytes::Bytes;
use http_body_util::BodyExt;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

use content::Fields;
use error::{AdminError, AdminResult, Surface};
use reply::Reply;

/// Largest request body accepted (forms and JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let path = request.uri().path().to_owned();
    let surface = if path == "/admin/api" || path.starts_with("/admin/api/") {
        Surface::Api
    } else {
        Surface::Console
    };
    let answer = match surface {
        Surface::Api => api::serve(request).await,
        Surface::Console => console::serve(request).await,
    };
    cinema_edge::reply::sized(match answer {
        Ok(reply) => reply,
        Err(error) => error.into_reply(surface, &path),
    })
}

/// The whole body, refused past [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(request: Request) -> AdminResult<Bytes> {
    let mut body = request.into_body();
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| AdminError::BadRequest("the body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(AdminError::BadRequest(
                    "the body must be at most 64 KiB".into(),
                ));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
}

/// A form body (`application/x-www-form-urlencoded`); the last of a repeated field
/// wins.
pub(crate) fn form_fields(body: &[u8]) -> Fields {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A JSON object body as fields: strings as they are, numbers and booleans as text,
/// null as empty. Anything but an object is 400.
pub(crate) fn json_fields(body: &[u8]) -> AdminResult<Fields> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| AdminError::BadRequest(format!("the body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| AdminError::BadRequest("the body must be a JSON object".into()))?;
    Ok(object
        .iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect())
}

/// A 303 after a console write, keeping renewed cookies.
pub(crate) fn see_other(session: &session::Session, location: &str) -> Reply {
    session.finish(reply::redirect(location))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Form fields decode percent-escapes and `+`; the last repeat wins.
    #[test]
    fn form_fields_decode_and_last_wins() {
        let fields = form_fields(b"title=Star+Wars%3A+IV&rating=8&rating=9");
        assert_eq!(fields["title"], "Star Wars: IV");
        assert_eq!(fields["rating"], "9");
    }

    /// JSON objects become fields; other JSON is refused.
    #[test]
    fn json_fields_take_objects_only() {
        let fields =
            json_fields(br#"{"title":"A","rating":7.5,"creation_date":null}"#).expect("object");
        assert_eq!(fields["rating"], "7.5");
        assert_eq!(fields["creation_date"], "");
        assert!(matches!(
            json_fields(b"[1]"),
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(json_fields(b"{"), Err(AdminError::BadRequest(_))));
    }
}
