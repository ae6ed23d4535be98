//! The console's routes (`/admin/...`): pages, form posts and static assets.
//!
//! Reads answer pages; writes are form posts that pass the CSRF rule, then answer 303
//! to the page that shows the result, or the same page again with the refused fields
//! marked (422). Paths are matched exactly (a trailing `/` is ignored).

use http::{Method, StatusCode};
use spin_sdk::http::Request;

use crate::content::{
    Actor, Content, Fields, FilmDraft, FilmFilter, Kind, NamedDraft, NamedQuery, parse_id,
};
use crate::error::{AdminError, AdminResult, FieldError};
use crate::reply::{Reply, asset, html, redirect, set_cookie};
use crate::session::{
    self, ACCESS_COOKIE, CONTENT_EDIT, CSRF_COOKIE, CSRF_FIELD, IMPERSONATION_COOKIE,
    REFRESH_COOKIE, Session, USERS_MANAGE,
};
use crate::settings::Settings;
use crate::views::{self, Chrome};
use crate::{form_fields, read_body, see_other, users};

const ADMIN_CSS: &str = include_str!("../static/admin.css");
const ADMIN_JS: &str = include_str!("../static/admin.js");
/// Cookie carrying the sign-in form's CSRF token (before there is a session).
const LOGIN_CSRF_COOKIE: &str = "cinema_admin_login";

/// What a page needs to know about the signed-in user.
pub fn chrome(session: &Session) -> Chrome {
    Chrome {
        user_id: session.user_id().to_owned(),
        roles: session.claims.roles.clone(),
        may_manage_users: session.may(USERS_MANAGE),
        csrf: session.csrf.clone().unwrap_or_default(),
        impersonating: session
            .impersonation
            .as_deref()
            .and_then(users::impersonated_user),
    }
}

pub async fn serve(request: Request) -> AdminResult<Reply> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let secure = session::over_tls(request.headers(), request.uri());
    match (&method, segments.as_slice()) {
        (&Method::GET, ["static", "admin.css"]) => {
            return Ok(asset("text/css; charset=utf-8", ADMIN_CSS));
        }
        (&Method::GET, ["static", "admin.js"]) => {
            return Ok(asset("text/javascript; charset=utf-8", ADMIN_JS));
        }
        (&Method::GET, ["login"]) => return Ok(login_form(&request, &query, None, "")),
        (&Method::POST, ["login"]) => return sign_in(request).await,
        _ => {}
    }
    let settings = Settings::load().await?;
    let session = session::current(request.headers(), request.uri(), &settings).await?;
    let headers = request.headers().clone();
    let host = session::request_host(&headers, request.uri());
    let form = if method == Method::POST {
        let form = form_fields(&read_body(request).await?);
        session::check_csrf(
            &session,
            form.get(CSRF_FIELD).map(String::as_str),
            &headers,
            host.as_deref(),
        )?;
        form
    } else {
        Fields::new()
    };
    let reply = match (&method, segments.as_slice()) {
        (&Method::GET, [] | [""]) => redirect("/admin/films"),
        (&Method::POST, ["logout"]) => return Ok(sign_out(&settings, &session, secure).await),
        (&Method::GET, ["films"]) => films(&settings, &session, &query).await?,
        (&Method::GET, ["films", "new"]) => {
            let values = Fields::new();
            html(
                StatusCode::OK,
                views::film_page(&chrome(&session), None, &values, &[], None),
            )
        }
        (&Method::POST, ["films"]) => create_film(&settings, &session, &form).await?,
        (&Method::GET, ["films", id]) => film(&settings, &session, id, &query).await?,
        (&Method::POST, ["films", id]) => update_film(&settings, &session, id, &form).await?,
        (&Method::POST, ["films", id, "delete"]) => {
            session.require(CONTENT_EDIT)?;
            let id = parse_id(id, "film_id")?;
            if !content(&settings)
                .await?
                .delete_film(&id, &actor(&session))
                .await?
            {
                return Err(AdminError::NotFound("film"));
            }
            see_other(&session, "/admin/films")
        }
        (&Method::POST, ["films", id, "genres"]) => {
            add_genre(&settings, &session, id, &form).await?
        }
        (&Method::POST, ["films", id, "genres", genre, "delete"]) => {
            session.require(CONTENT_EDIT)?;
            let (id, genre) = (parse_id(id, "film_id")?, parse_id(genre, "genre_id")?);
            content(&settings)
                .await?
                .remove_film_genre(&id, &genre, &actor(&session))
                .await?;
            see_other(&session, &format!("/admin/films/{id}"))
        }
        (&Method::POST, ["films", id, "persons"]) => {
            add_person(&settings, &session, id, &form).await?
        }
        (&Method::POST, ["films", id, "persons", person, role, "delete"]) => {
            session.require(CONTENT_EDIT)?;
            let (id, person) = (parse_id(id, "film_id")?, parse_id(person, "person_id")?);
            content(&settings)
                .await?
                .remove_film_person(&id, &person, role, &actor(&session))
                .await?;
            see_other(&session, &format!("/admin/films/{id}"))
        }
        (&Method::GET, [plural]) if kind(plural).is_some() => {
            named_list(
                &settings,
                &session,
                kind(plural).unwrap_or(Kind::Genre),
                &query,
            )
            .await?
        }
        (&Method::GET, [plural, "new"]) if kind(plural).is_some() => {
            let kind = kind(plural).unwrap_or(Kind::Genre);
            html(
                StatusCode::OK,
                views::named_page(&chrome(&session), kind, None, &Fields::new(), &[], None),
            )
        }
        (&Method::POST, [plural]) if kind(plural).is_some() => {
            save_named(
                &settings,
                &session,
                kind(plural).unwrap_or(Kind::Genre),
                None,
                &form,
            )
            .await?
        }
        (&Method::GET, [plural, id]) if kind(plural).is_some() => {
            named(
                &settings,
                &session,
                kind(plural).unwrap_or(Kind::Genre),
                id,
                &query,
            )
            .await?
        }
        (&Method::POST, [plural, id]) if kind(plural).is_some() => {
            save_named(
                &settings,
                &session,
                kind(plural).unwrap_or(Kind::Genre),
                Some(id),
                &form,
            )
            .await?
        }
        (&Method::POST, [plural, id, "delete"]) if kind(plural).is_some() => {
            session.require(CONTENT_EDIT)?;
            let kind = kind(plural).unwrap_or(Kind::Genre);
            let id = parse_id(id, "id")?;
            if !content(&settings)
                .await?
                .delete_named(kind, &id, &actor(&session))
                .await?
            {
                return Err(AdminError::NotFound(kind.entity()));
            }
            see_other(&session, &format!("/admin/{}", kind.plural()))
        }
        (&Method::GET, ["audit"]) => {
            let filter = crate::content::AuditFilter::parse(&query)?;
            let page = content(&settings).await?.audit(&filter).await?;
            html(
                StatusCode::OK,
                views::audit_page(&chrome(&session), &page, &filter),
            )
        }
        (&Method::GET, ["users"]) => users::page(&settings, &session, &query).await?,
        (&Method::GET, ["announcements"]) => {
            announcements_page(&settings, &session, &Fields::new(), &[], &query).await?
        }
        (&Method::POST, ["announcements"]) => {
            create_announcement(&settings, &session, &form).await?
        }
        (&Method::POST, ["users", id, action]) => {
            users::act(&settings, &session, id, action, &form, secure).await?
        }
        (&Method::GET, ["impersonation"]) => users::impersonation_page(&session)?,
        (&Method::POST, ["impersonation", "end"]) => {
            users::end_impersonation(&settings, &session, secure).await?
        }
        (_, _) => return Err(AdminError::NotFound("page")),
    };
    Ok(session.finish(reply))
}

async fn announcements_page(
    settings: &Settings,
    session: &Session,
    values: &Fields,
    errors: &[FieldError],
    query: &str,
) -> AdminResult<Reply> {
    session.require(USERS_MANAGE)?;
    let roles = users::role_names(settings, session).await?;
    let pg = cinema_edge::pg::Pg::open(&settings.database_url).await?;
    let list = crate::announcements::list(&pg).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let queued = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "queued");
    Ok(html(
        status,
        views::announcements_page(&chrome(session), &list, &roles, values, errors, queued),
    ))
}

async fn create_announcement(
    settings: &Settings,
    session: &Session,
    form: &Fields,
) -> AdminResult<Reply> {
    session.require(USERS_MANAGE)?;
    let roles = users::role_names(settings, session).await?;
    match crate::announcements::AnnouncementDraft::check(form, &roles) {
        Ok(draft) => {
            let pg = cinema_edge::pg::Pg::open(&settings.database_url).await?;
            crate::announcements::create(&pg, &draft, session.user_id()).await?;
            Ok(see_other(session, "/admin/announcements?queued=1"))
        }
        Err(errors) => announcements_page(settings, session, form, &errors, "").await,
    }
}

fn kind(plural: &str) -> Option<Kind> {
    Kind::from_plural(plural)
}

fn actor(session: &Session) -> Actor {
    Actor {
        user_id: session.user_id().to_owned(),
    }
}

async fn content(settings: &Settings) -> AdminResult<Content> {
    Content::open(&settings.database_url).await
}

/// The sign-in page, with a fresh form token in its cookie.
fn login_form(request: &Request, query: &str, error: Option<&str>, email: &str) -> Reply {
    let next = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .filter(|next| safe_next(next))
        .unwrap_or_else(|| "/admin/films".into());
    let token = session::random_token();
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut reply = html(status, views::login_page(error, email, &next, &token));
    let secure = session::over_tls(request.headers(), request.uri());
    set_cookie(
        &mut reply,
        &session::cookie(LOGIN_CSRF_COOKIE, &token, secure),
    );
    reply
}

/// Where to go after sign-in: a console path only (no open redirects).
fn safe_next(next: &str) -> bool {
    next.starts_with("/admin/")
        && !next.starts_with("//")
        && !next.contains("://")
        && !next.contains('\\')
}

async fn sign_in(request: Request) -> AdminResult<Reply> {
    let headers = request.headers().clone();
    let secure = session::over_tls(&headers, request.uri());
    session::check_origin(
        &headers,
        session::request_host(&headers, request.uri()).as_deref(),
    )?;
    let jar = session::cookies(&headers);
    let form = form_fields(&read_body(request).await?);
    let expected = jar.get(LOGIN_CSRF_COOKIE).cloned().unwrap_or_default();
    let submitted = form.get(CSRF_FIELD).cloned().unwrap_or_default();
    if expected.is_empty() || expected != submitted {
        return Err(AdminError::CsrfFailed);
    }
    let email = form
        .get("email")
        .map(|e| e.trim().to_owned())
        .unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let next = form
        .get("next")
        .filter(|next| safe_next(next))
        .cloned()
        .unwrap_or_else(|| "/admin/films".into());
    let settings = Settings::load().await?;
    let forwarded_for = cinema_edge::outbound::forwarded_for(&headers);
    let pair =
        match session::sign_in(&settings, &email, &password, forwarded_for.as_deref()).await? {
            Ok(pair) => pair,
            Err(refused) => {
                let status = match refused {
                    session::SignInRefused::Throttled => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::UNAUTHORIZED,
                };
                let mut reply = html(
                    status,
                    views::login_page(Some(refused.message()), &email, &next, &submitted),
                );
                set_cookie(
                    &mut reply,
                    &session::cookie(LOGIN_CSRF_COOKIE, &submitted, secure),
                );
                return Ok(reply);
            }
        };
    let mut reply = redirect(&next);
    set_cookie(
        &mut reply,
        &session::cookie(ACCESS_COOKIE, &pair.access_token, secure),
    );
    set_cookie(
        &mut reply,
        &session::cookie(REFRESH_COOKIE, &pair.refresh_token, secure),
    );
    set_cookie(
        &mut reply,
        &session::cookie(CSRF_COOKIE, &session::random_token(), secure),
    );
    set_cookie(&mut reply, &session::cookie(LOGIN_CSRF_COOKIE, "", secure));
    Ok(reply)
}

async fn sign_out(settings: &Settings, session: &Session, secure: bool) -> Reply {
    session::sign_out(settings, &session.access_token).await;
    if let Some(token) = &session.impersonation {
        session::sign_out(settings, token).await;
    }
    let mut reply = redirect("/admin/login");
    for name in [
        ACCESS_COOKIE,
        REFRESH_COOKIE,
        CSRF_COOKIE,
        IMPERSONATION_COOKIE,
    ] {
        set_cookie(&mut reply, &session::cookie(name, "", secure));
    }
    reply
}

fn notice(query: &str) -> Option<&'static str> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| match (k.as_ref(), v.as_ref()) {
        ("saved", _) => Some("Saved. The public catalog shows the change within seconds."),
        ("created", _) => Some("Created."),
        _ => None,
    })
}

async fn films(settings: &Settings, session: &Session, query: &str) -> AdminResult<Reply> {
    let filter = FilmFilter::parse(query)?;
    let db = content(settings).await?;
    let page = db.films(&filter).await?;
    let genres = db.named(Kind::Genre, "", 1).await?;
    Ok(html(
        StatusCode::OK,
        views::films_page(&chrome(session), &page, &filter, &genres.items),
    ))
}

/// The film's stored values as form fields.
fn film_fields(film: &crate::content::Film) -> Fields {
    let mut fields = Fields::new();
    fields.insert("title".into(), film.title.clone());
    fields.insert("description".into(), film.description.clone());
    fields.insert(
        "creation_date".into(),
        film.creation_date.clone().unwrap_or_default(),
    );
    fields.insert(
        "rating".into(),
        film.rating.map(|r| format!("{r:.1}")).unwrap_or_default(),
    );
    fields.insert("type".into(), film.film_type.clone());
    fields.insert("access".into(), film.access.clone());
    fields
}

async fn film(settings: &Settings, session: &Session, id: &str, query: &str) -> AdminResult<Reply> {
    let id = parse_id(id, "film_id").map_err(|_| AdminError::NotFound("film"))?;
    let film = content(settings)
        .await?
        .film(&id)
        .await?
        .ok_or(AdminError::NotFound("film"))?;
    Ok(html(
        StatusCode::OK,
        views::film_page(
            &chrome(session),
            Some(&film),
            &film_fields(&film),
            &[],
            notice(query),
        ),
    ))
}

async fn create_film(settings: &Settings, session: &Session, form: &Fields) -> AdminResult<Reply> {
    session.require(CONTENT_EDIT)?;
    match FilmDraft::check(form) {
        Ok(draft) => {
            let id = content(settings)
                .await?
                .create_film(&draft, &actor(session))
                .await?;
            Ok(see_other(session, &format!("/admin/films/{id}?created=1")))
        }
        Err(errors) => Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            views::film_page(&chrome(session), None, form, &errors, None),
        )),
    }
}

async fn update_film(
    settings: &Settings,
    session: &Session,
    id: &str,
    form: &Fields,
) -> AdminResult<Reply> {
    session.require(CONTENT_EDIT)?;
    let id = parse_id(id, "film_id").map_err(|_| AdminError::NotFound("film"))?;
    let db = content(settings).await?;
    match FilmDraft::check(form) {
        Ok(draft) => {
            if !db.update_film(&id, &draft, &actor(session)).await? {
                return Err(AdminError::NotFound("film"));
            }
            Ok(see_other(session, &format!("/admin/films/{id}?saved=1")))
        }
        Err(errors) => {
            let film = db.film(&id).await?.ok_or(AdminError::NotFound("film"))?;
            Ok(html(
                StatusCode::UNPROCESSABLE_ENTITY,
                views::film_page(&chrome(session), Some(&film), form, &errors, None),
            ))
        }
    }
}

/// The film page again with a refused link field marked.
async fn film_with_error(
    settings: &Settings,
    session: &Session,
    id: &str,
    error: FieldError,
) -> AdminResult<Reply> {
    let film = content(settings)
        .await?
        .film(id)
        .await?
        .ok_or(AdminError::NotFound("film"))?;
    Ok(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        views::film_page(
            &chrome(session),
            Some(&film),
            &film_fields(&film),
            &[error],
            None,
        ),
    ))
}

async fn add_genre(
    settings: &Settings,
    session: &Session,
    id: &str,
    form: &Fields,
) -> AdminResult<Reply> {
    session.require(CONTENT_EDIT)?;
    let id = parse_id(id, "film_id").map_err(|_| AdminError::NotFound("film"))?;
    let db = content(settings).await?;
    match db
        .resolve(Kind::Genre, form.get("genre_id"), form.get("genre_name"))
        .await?
    {
        Ok(genre) => {
            db.add_film_genre(&id, &genre, &actor(session)).await?;
            Ok(see_other(session, &format!("/admin/films/{id}?saved=1")))
        }
        Err(message) => {
            film_with_error(
                settings,
                session,
                &id,
                FieldError {
                    field: "genre_id",
                    message,
                },
            )
            .await
        }
    }
}

async fn add_person(
    settings: &Settings,
    session: &Session,
    id: &str,
    form: &Fields,
) -> AdminResult<Reply> {
    session.require(CONTENT_EDIT)?;
    let id = parse_id(id, "film_id").map_err(|_| AdminError::NotFound("film"))?;
    let db = content(settings).await?;
    let role = form.get("role").map_or("actor", String::as_str);
    match db
        .resolve(Kind::Person, form.get("person_id"), form.get("person_name"))
        .await?
    {
        Ok(person) => {
            db.add_film_person(&id, &person, role, &actor(session))
                .await?;
            Ok(see_other(session, &format!("/admin/films/{id}?saved=1")))
        }
        Err(message) => {
            film_with_error(
                settings,
                session,
                &id,
                FieldError {
                    field: "person_id",
                    message,
                },
            )
            .await
        }
    }
}

async fn named_list(
    settings: &Settings,
    session: &Session,
    kind: Kind,
    query: &str,
) -> AdminResult<Reply> {
    let list = NamedQuery::parse(query);
    let text = list.text.as_str();
    let page = content(settings)
        .await?
        .named(kind, text, list.page_number)
        .await?;
    Ok(html(
        StatusCode::OK,
        views::named_list_page(&chrome(session), kind, &page, text),
    ))
}

async fn named(
    settings: &Settings,
    session: &Session,
    kind: Kind,
    id: &str,
    query: &str,
) -> AdminResult<Reply> {
    let id = parse_id(id, "id").map_err(|_| AdminError::NotFound(kind.entity()))?;
    let item = content(settings)
        .await?
        .one_named(kind, &id)
        .await?
        .ok_or(AdminError::NotFound(kind.entity()))?;
    let mut values = Fields::new();
    values.insert(kind.name_column().into(), item.name.clone());
    values.insert("description".into(), item.description.clone());
    Ok(html(
        StatusCode::OK,
        views::named_page(
            &chrome(session),
            kind,
            Some(&item),
            &values,
            &[],
            notice(query),
        ),
    ))
}

async fn save_named(
    settings: &Settings,
    session: &Session,
    kind: Kind,
    id: Option<&str>,
    form: &Fields,
) -> AdminResult<Reply> {
    session.require(CONTENT_EDIT)?;
    let db = content(settings).await?;
    let id = id
        .map(|id| parse_id(id, "id").map_err(|_| AdminError::NotFound(kind.entity())))
        .transpose()?;
    let existing = match &id {
        Some(id) => Some(
            db.one_named(kind, id)
                .await?
                .ok_or(AdminError::NotFound(kind.entity()))?,
        ),
        None => None,
    };
    let refused = |errors: Vec<FieldError>| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            views::named_page(
                &chrome(session),
                kind,
                existing.as_ref(),
                form,
                &errors,
                None,
            ),
        )
    };
    let draft = match NamedDraft::check(kind, form) {
        Ok(draft) => draft,
        Err(errors) => return Ok(refused(errors)),
    };
    let saved = match &id {
        Some(id) => db
            .update_named(kind, id, &draft, &actor(session))
            .await
            .map(|_| id.clone()),
        None => db.create_named(kind, &draft, &actor(session)).await,
    };
    match saved {
        Ok(saved) => Ok(see_other(
            session,
            &format!("/admin/{}/{saved}?saved=1", kind.plural()),
        )),
        Err(AdminError::Conflict(message)) => Ok(refused(vec![FieldError {
            field: kind.name_column(),
            message,
        }])),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After sign-in only console paths are followed: no open redirects.
    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert!(safe_next("/admin/films/1"));
        for bad in [
            "https://evil.example/admin/",
            "//evil.example",
            "/api/v1/films",
            "/admin/\\evil",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }
}
