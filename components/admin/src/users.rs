//! User administration in the console and the API (admins: `users:manage`): the list,
//! block and unblock, roles, and impersonation. All of it is the auth component's
//! (`/api/v1/auth/users/...`), called with the signed-in admin's token, so auth keeps
//! one set of rules and writes the audit entries.
//!
//! An impersonation token is kept in its own cookie while the admin holds it: every
//! page shows a banner naming the user, `/admin/impersonation` shows the token and its
//! claims (with `act` naming the admin), and one click ends it (auth revokes the
//! session).

use base64::Engine;
use cinema_edge::outbound::HostAnswer;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::content::{Fields, parse_id};
use crate::error::{AdminError, AdminResult};
use crate::reply::{Reply, html, set_cookie};
use crate::session::{self, IMPERSONATION_COOKIE, Session, USERS_MANAGE};
use crate::settings::Settings;
use crate::views;
use crate::{console::chrome, see_other};

/// A user row from auth's list.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    pub is_blocked: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    pub created: String,
}

/// Auth's page of users.
#[derive(Debug, Deserialize)]
pub struct UserPage {
    pub items: Vec<UserRow>,
    pub total: i64,
    pub page_number: i64,
    pub page_size: i64,
}

/// The claims of a token, unverified (it is shown, not trusted).
pub fn claims_of(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The user an impersonation token acts as (its `sub`).
pub fn impersonated_user(token: &str) -> Option<String> {
    claims_of(token)?.get("sub")?.as_str().map(str::to_owned)
}

/// Auth's answer as a result: 2xx is the answer, 4xx a refusal in auth's words.
fn accepted(answer: HostAnswer) -> AdminResult<HostAnswer> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    if answer.status.is_client_error() {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        return Err(AdminError::AuthRefused {
            status: answer.status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("refused")
                .to_owned(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("the account service refused")
                .to_owned(),
        });
    }
    Err(AdminError::AuthUnavailable(answer.describe()))
}

/// Calls auth's user administration as the signed-in admin.
pub async fn call(
    settings: &Settings,
    session: &Session,
    method: Method,
    path: &str,
) -> AdminResult<HostAnswer> {
    session.require(USERS_MANAGE)?;
    let body = (method == Method::POST).then(Vec::new);
    let answer = session::auth_as(settings, session)
        .request(method, path, body.map(bytes::Bytes::from))
        .await
        .map_err(|e| AdminError::AuthUnavailable(e.to_string()))?;
    accepted(answer)
}

/// The list of users (auth's query string passed along: `query`, `page_number`).
pub async fn list(settings: &Settings, session: &Session, query: &str) -> AdminResult<UserPage> {
    let answer = call(
        settings,
        session,
        Method::GET,
        &format!("/api/v1/auth/users?{query}"),
    )
    .await?;
    serde_json::from_slice(&answer.body)
        .map_err(|e| AdminError::Internal(format!("auth user list: {e}")))
}

/// Role names an admin can grant.
pub async fn role_names(settings: &Settings, session: &Session) -> AdminResult<Vec<String>> {
    let answer = call(settings, session, Method::GET, "/api/v1/auth/roles").await?;
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| AdminError::Internal(format!("auth roles: {e}")))?;
    Ok(body["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// `GET /admin/users`.
pub async fn page(settings: &Settings, session: &Session, query: &str) -> AdminResult<Reply> {
    let text = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let users = list(settings, session, query).await?;
    let roles = role_names(settings, session).await?;
    Ok(html(
        StatusCode::OK,
        views::users_page(&chrome(session), &users, &roles, &text),
    ))
}

/// Starts impersonating `user`: auth's token goes into the impersonation cookie.
pub async fn impersonate(
    settings: &Settings,
    session: &Session,
    user: &str,
) -> AdminResult<String> {
    if session.claims.act.is_some() {
        return Err(AdminError::Forbidden("end the impersonation first"));
    }
    let answer = call(
        settings,
        session,
        Method::POST,
        &format!("/api/v1/auth/users/{user}/impersonate"),
    )
    .await?;
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| AdminError::Internal(format!("auth impersonation: {e}")))?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AdminError::Internal("auth impersonation answered no token".into()))
}

/// `POST /admin/users/{id}/{block|unblock|roles|impersonate}`.
pub async fn act(
    settings: &Settings,
    session: &Session,
    user: &str,
    action: &str,
    form: &Fields,
    secure: bool,
) -> AdminResult<Reply> {
    let user = parse_id(user, "user_id")?;
    let base = format!("/api/v1/auth/users/{user}");
    match action {
        "block" => {
            call(settings, session, Method::POST, &format!("{base}/block")).await?;
        }
        "unblock" => {
            call(settings, session, Method::DELETE, &format!("{base}/block")).await?;
        }
        "roles" => {
            let role = form.get("role").map_or("", |r| r.trim());
            if role.is_empty()
                || !role
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            {
                return Err(AdminError::invalid("role", "pick a role"));
            }
            let method = match form.get("op").map(String::as_str) {
                Some("revoke") => Method::DELETE,
                _ => Method::POST,
            };
            call(settings, session, method, &format!("{base}/roles/{role}")).await?;
        }
        "impersonate" => {
            let token = impersonate(settings, session, &user).await?;
            let mut reply = see_other(session, "/admin/impersonation");
            set_cookie(
                &mut reply,
                &session::cookie(IMPERSONATION_COOKIE, &token, secure),
            );
            return Ok(reply);
        }
        _ => return Err(AdminError::NotFound("page")),
    }
    Ok(see_other(session, "/admin/users"))
}

/// `GET /admin/impersonation`: the token held and its claims.
pub fn impersonation_page(session: &Session) -> AdminResult<Reply> {
    let token = session
        .impersonation
        .as_deref()
        .ok_or(AdminError::NotFound("impersonation"))?;
    let claims = claims_of(token).unwrap_or(Value::Null);
    Ok(html(
        StatusCode::OK,
        views::impersonation_page(&chrome(session), token, &claims),
    ))
}

/// `POST /admin/impersonation/end`: auth ends the session, the cookie goes.
pub async fn end_impersonation(
    settings: &Settings,
    session: &Session,
    secure: bool,
) -> AdminResult<Reply> {
    if let Some(token) = &session.impersonation {
        session::sign_out(settings, token).await;
    }
    let mut reply = see_other(session, "/admin/users");
    set_cookie(
        &mut reply,
        &session::cookie(IMPERSONATION_COOKIE, "", secure),
    );
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token's claims are read for display (not trusted): the `sub` names the user.
    #[test]
    fn impersonated_user_is_the_token_sub() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"u1","act":{"sub":"a1"}}"#);
        let token = format!("h.{payload}.s");
        assert_eq!(impersonated_user(&token).as_deref(), Some("u1"));
        assert_eq!(claims_of(&token).expect("claims")["act"]["sub"], "a1");
        assert_eq!(impersonated_user("garbage"), None);
    }
}
