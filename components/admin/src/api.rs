//! The JSON API (`/admin/api/...`): the console's operations for scripts and the
//! console's own pickers. A bearer access token (admin or manager) or the console
//! cookies sign a request in; with cookies, writes need the `X-CSRF-Token` header.
//!
//! - `GET /admin/api/films?query&genre&type&access&year&sort&page`, `POST /admin/api/films`,
//!   `GET|PUT|DELETE /admin/api/films/{id}`;
//! - `PUT|DELETE /admin/api/films/{id}/genres/{genre_id}`,
//!   `PUT|DELETE /admin/api/films/{id}/persons/{person_id}/{role}`;
//! - `GET|POST /admin/api/genres` and `/admin/api/persons` (`?query&page`: the pickers),
//!   `GET|PUT|DELETE /admin/api/{genres|persons}/{id}`;
//! - `GET /admin/api/audit?entity_type&action&entity_id&actor&page`;
//! - `GET /admin/api/users?query&page_number`, `POST|DELETE /admin/api/users/{id}/block`,
//!   `PUT|DELETE /admin/api/users/{id}/roles/{role}`, `POST /admin/api/users/{id}/impersonate`;
//! - `GET|POST /admin/api/announcements` (`{"subject", "body", "audience": "" | role}`);
//! - `GET /admin/api/me`: the caller's id, roles and permissions.
//!
//! Writes answer 201 with `{"id"}` (create), 200 with the record (update) or 204.
//! Refused fields are 422 `validation_failed` naming the first field.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use spin_sdk::http::Request;

use crate::content::{
    Actor, AuditFilter, Content, FilmDraft, FilmFilter, Kind, NamedDraft, NamedQuery, parse_id,
};
use crate::error::{AdminError, AdminResult};
use crate::reply::{Reply, json as json_reply};
use crate::session::{self, CONTENT_EDIT, CSRF_HEADER};
use crate::settings::Settings;
use crate::{json_fields, read_body, users};

pub async fn serve(request: Request) -> AdminResult<Reply> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(3).collect();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let settings = Settings::load().await?;
    let session = session::current(request.headers(), request.uri(), &settings).await?;
    let headers = request.headers().clone();
    let host = session::request_host(&headers, request.uri());
    let body = if matches!(method, Method::POST | Method::PUT | Method::DELETE) {
        let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        session::check_csrf(&session, csrf, &headers, host.as_deref())?;
        read_body(request).await?
    } else {
        bytes::Bytes::new()
    };
    let actor = Actor {
        user_id: session.user_id().to_owned(),
    };
    let db = || Content::open(&settings.database_url);
    let reply = match (&method, segments.as_slice()) {
        (&Method::GET, ["me"]) => json_reply(
            StatusCode::OK,
            &json!({
                "id": session.claims.sub,
                "roles": session.claims.roles,
                "permissions": session.claims.permissions,
                "act": session.claims.act.as_ref().map(|a| json!({"sub": a.sub})),
            }),
        ),
        (&Method::GET, ["films"]) => {
            let page = db().await?.films(&FilmFilter::parse(&query)?).await?;
            ok(&page)?
        }
        (&Method::POST, ["films"]) => {
            session.require(CONTENT_EDIT)?;
            let draft = FilmDraft::check(&json_fields(&body)?).map_err(AdminError::Invalid)?;
            let id = db().await?.create_film(&draft, &actor).await?;
            json_reply(StatusCode::CREATED, &json!({ "id": id }))
        }
        (&Method::GET, ["films", id]) => {
            let id = parse_id(id, "film_id")?;
            ok(&db()
                .await?
                .film(&id)
                .await?
                .ok_or(AdminError::NotFound("film"))?)?
        }
        (&Method::PUT, ["films", id]) => {
            session.require(CONTENT_EDIT)?;
            let id = parse_id(id, "film_id")?;
            let draft = FilmDraft::check(&json_fields(&body)?).map_err(AdminError::Invalid)?;
            let db = db().await?;
            if !db.update_film(&id, &draft, &actor).await? {
                return Err(AdminError::NotFound("film"));
            }
            ok(&db.film(&id).await?.ok_or(AdminError::NotFound("film"))?)?
        }
        (&Method::DELETE, ["films", id]) => {
            session.require(CONTENT_EDIT)?;
            let id = parse_id(id, "film_id")?;
            if !db().await?.delete_film(&id, &actor).await? {
                return Err(AdminError::NotFound("film"));
            }
            no_content()
        }
        (&Method::PUT, ["films", id, "genres", genre]) => {
            session.require(CONTENT_EDIT)?;
            let (id, genre) = (parse_id(id, "film_id")?, parse_id(genre, "genre_id")?);
            db().await?.add_film_genre(&id, &genre, &actor).await?;
            no_content()
        }
        (&Method::DELETE, ["films", id, "genres", genre]) => {
            session.require(CONTENT_EDIT)?;
            let (id, genre) = (parse_id(id, "film_id")?, parse_id(genre, "genre_id")?);
            if !db().await?.remove_film_genre(&id, &genre, &actor).await? {
                return Err(AdminError::NotFound("link"));
            }
            no_content()
        }
        (&Method::PUT, ["films", id, "persons", person, role]) => {
            session.require(CONTENT_EDIT)?;
            let (id, person) = (parse_id(id, "film_id")?, parse_id(person, "person_id")?);
            db().await?
                .add_film_person(&id, &person, role, &actor)
                .await?;
            no_content()
        }
        (&Method::DELETE, ["films", id, "persons", person, role]) => {
            session.require(CONTENT_EDIT)?;
            let (id, person) = (parse_id(id, "film_id")?, parse_id(person, "person_id")?);
            if !db()
                .await?
                .remove_film_person(&id, &person, role, &actor)
                .await?
            {
                return Err(AdminError::NotFound("link"));
            }
            no_content()
        }
        (&Method::GET, [plural]) if kind(plural).is_some() => {
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let list = NamedQuery::parse(&query);
            ok(&db()
                .await?
                .named(kind, &list.text, list.page_number)
                .await?)?
        }
        (&Method::POST, [plural]) if kind(plural).is_some() => {
            session.require(CONTENT_EDIT)?;
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let draft =
                NamedDraft::check(kind, &json_fields(&body)?).map_err(AdminError::Invalid)?;
            let id = db().await?.create_named(kind, &draft, &actor).await?;
            json_reply(StatusCode::CREATED, &json!({ "id": id }))
        }
        (&Method::GET, [plural, id]) if kind(plural).is_some() => {
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let id = parse_id(id, "id")?;
            ok(&db()
                .await?
                .one_named(kind, &id)
                .await?
                .ok_or(AdminError::NotFound(kind.entity()))?)?
        }
        (&Method::PUT, [plural, id]) if kind(plural).is_some() => {
            session.require(CONTENT_EDIT)?;
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let id = parse_id(id, "id")?;
            let draft =
                NamedDraft::check(kind, &json_fields(&body)?).map_err(AdminError::Invalid)?;
            let db = db().await?;
            if !db.update_named(kind, &id, &draft, &actor).await? {
                return Err(AdminError::NotFound(kind.entity()));
            }
            ok(&db
                .one_named(kind, &id)
                .await?
                .ok_or(AdminError::NotFound(kind.entity()))?)?
        }
        (&Method::DELETE, [plural, id]) if kind(plural).is_some() => {
            session.require(CONTENT_EDIT)?;
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let id = parse_id(id, "id")?;
            if !db().await?.delete_named(kind, &id, &actor).await? {
                return Err(AdminError::NotFound(kind.entity()));
            }
            no_content()
        }
        (&Method::GET, ["audit"]) => ok(&db().await?.audit(&AuditFilter::parse(&query)?).await?)?,
        (&Method::GET, ["announcements"]) => {
            session.require(crate::session::USERS_MANAGE)?;
            let pg = cinema_edge::pg::Pg::open(&settings.database_url).await?;
            ok(&crate::announcements::list(&pg).await?)?
        }
        (&Method::POST, ["announcements"]) => {
            session.require(crate::session::USERS_MANAGE)?;
            let roles = users::role_names(&settings, &session).await?;
            let draft =
                crate::announcements::AnnouncementDraft::check(&json_fields(&body)?, &roles)
                    .map_err(AdminError::Invalid)?;
            let pg = cinema_edge::pg::Pg::open(&settings.database_url).await?;
            let id = crate::announcements::create(&pg, &draft, session.user_id()).await?;
            json_reply(StatusCode::CREATED, &json!({ "id": id }))
        }
        (&Method::GET, ["users"]) => {
            let answer = users::call(
                &settings,
                &session,
                Method::GET,
                &format!("/api/v1/auth/users?{query}"),
            )
            .await?;
            passthrough(&answer.body)
        }
        (&Method::POST | &Method::DELETE, ["users", id, "block"]) => {
            let id = parse_id(id, "user_id")?;
            users::call(
                &settings,
                &session,
                method.clone(),
                &format!("/api/v1/auth/users/{id}/block"),
            )
            .await?;
            no_content()
        }
        (&Method::PUT | &Method::DELETE, ["users", id, "roles", role]) => {
            let id = parse_id(id, "user_id")?;
            let method = if method == Method::PUT {
                Method::POST
            } else {
                Method::DELETE
            };
            users::call(
                &settings,
                &session,
                method,
                &format!("/api/v1/auth/users/{id}/roles/{role}"),
            )
            .await?;
            no_content()
        }
        (&Method::POST, ["users", id, "impersonate"]) => {
            let id = parse_id(id, "user_id")?;
            let answer = users::call(
                &settings,
                &session,
                Method::POST,
                &format!("/api/v1/auth/users/{id}/impersonate"),
            )
            .await?;
            passthrough(&answer.body)
        }
        _ => return Err(AdminError::NotFound("route")),
    };
    Ok(session.finish(reply))
}

fn kind(plural: &str) -> Option<Kind> {
    Kind::from_plural(plural)
}

fn ok(value: &impl serde::Serialize) -> AdminResult<Reply> {
    let value = serde_json::to_value(value)
        .map_err(|e| AdminError::Internal(format!("encoding an answer: {e}")))?;
    Ok(json_reply(StatusCode::OK, &value))
}

fn no_content() -> Reply {
    cinema_edge::reply::empty(StatusCode::NO_CONTENT)
}

fn passthrough(body: &[u8]) -> Reply {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    json_reply(StatusCode::OK, &value)
}
