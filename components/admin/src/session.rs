//! Console sessions: who is signed in, through which cookies, and the CSRF rule.
//!
//! The console keeps no state of its own. Signing in posts the email and password to
//! the auth component (`/api/v1/auth/login`), which owns passwords, throttling, blocks
//! and login history; the answer's access and refresh tokens go into `HttpOnly`,
//! `SameSite=Strict` cookies scoped to `/admin` (`Secure` when the request came over
//! TLS). Each request verifies the access token locally (`cinema_edge`), so content
//! editing keeps working while auth is down, until the token expires; an expired one
//! is renewed with the refresh token through auth, and a refused renewal (logged out,
//! revoked, blocked) ends the console session.
//!
//! Only tokens with the `admin` or `manager` role get in. CSRF: every console write
//! carries a form field equal to a random cookie set at sign-in (`csrf_token`), and a
//! cross-origin `Origin` is refused outright; the JSON API takes the token in the
//! `X-CSRF-Token` header when it is used with cookies, and needs none with a bearer
//! token (browsers never send those on their own).

use std::collections::HashMap;

use cinema_domain::token::{AccessClaims, TokenError};
use cinema_edge::AuthError;
use cinema_edge::outbound::HostApi;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::error::{AdminError, AdminResult};
use crate::reply::{Reply, set_cookie};
use crate::settings::Settings;

/// Cookie holding the access token.
pub const ACCESS_COOKIE: &str = "cinema_admin";
/// Cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "cinema_admin_refresh";
/// Cookie holding the CSRF token every console form repeats.
pub const CSRF_COOKIE: &str = "cinema_admin_csrf";
/// Cookie holding an impersonation token while an admin acts as a user.
pub const IMPERSONATION_COOKIE: &str = "cinema_admin_act";
/// Form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Cookies live at most this long; the refresh token may outlive them.
const COOKIE_MAX_AGE_SECONDS: u64 = 12 * 3600;
/// Roles that may use the console.
pub const CONSOLE_ROLES: [&str; 2] = ["admin", "manager"];
/// Permission to edit content, and to manage users.
pub const CONTENT_EDIT: &str = "content:edit";
pub const USERS_MANAGE: &str = "users:manage";

/// A signed-in console user.
#[derive(Debug)]
pub struct Session {
    pub claims: AccessClaims,
    /// The access token, for calls to auth on the user's behalf.
    pub access_token: String,
    /// The session's CSRF token: `Some` for cookie sessions (made afresh when the
    /// cookie is missing, so a write without it fails), `None` for bearer callers.
    pub csrf: Option<String>,
    /// An impersonation token this admin holds, if any.
    pub impersonation: Option<String>,
    /// Cookies to set on the answer (tokens renewed during this request).
    pub renewed_cookies: Vec<String>,
}

impl Session {
    pub fn user_id(&self) -> &str {
        &self.claims.sub
    }

    pub fn may(&self, permission: &str) -> bool {
        self.claims.has_permission(permission)
    }

    /// `Ok` when the token grants `permission`; else 403 naming what is needed.
    pub fn require(&self, permission: &'static str) -> AdminResult<()> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(AdminError::Forbidden(match permission {
                USERS_MANAGE => "only admins may manage users",
                _ => "your role may not do this",
            }))
        }
    }

    /// Sets the renewed cookies on `reply`.
    pub fn finish(&self, mut reply: Reply) -> Reply {
        for cookie in &self.renewed_cookies {
            set_cookie(&mut reply, cookie);
        }
        reply
    }
}

/// The request's cookies by name (the first of a repeated name wins).
pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut found = HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                found
                    .entry(name.trim().to_owned())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    found
}

/// Whether the request came over TLS (directly or through a proxy that says so).
pub fn over_tls(headers: &HeaderMap, uri: &http::Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for a console cookie (`value` empty: delete it).
pub fn cookie(name: &str, value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() {
        0
    } else {
        COOKIE_MAX_AGE_SECONDS
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A fresh random token (CSRF): 32 hex digits from a v4 UUID's randomness, twice.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Constant-time equality of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The host the request was sent to: the URI's authority (how wasi-http carries it),
/// else the `Host` header.
pub fn request_host(headers: &HeaderMap, uri: &http::Uri) -> Option<String> {
    uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// An `Origin`, when sent, must be `host`; an unknown host fails closed.
pub fn check_origin(headers: &HeaderMap, host: Option<&str>) -> AdminResult<()> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if !host.is_some_and(|host| origin_host.eq_ignore_ascii_case(host)) {
            return Err(AdminError::CsrfFailed);
        }
    }
    Ok(())
}

/// The CSRF rule of a console write: an `Origin`, when sent, must be this host (an
/// unknown host fails closed), and `submitted` must equal the session's token.
pub fn check_csrf(
    session: &Session,
    submitted: Option<&str>,
    headers: &HeaderMap,
    host: Option<&str>,
) -> AdminResult<()> {
    check_origin(headers, host)?;
    match (&session.csrf, submitted) {
        // Bearer-token callers (the JSON API) are not exposed to CSRF.
        (None, _) => Ok(()),
        (Some(expected), Some(submitted)) if same_token(expected, submitted) => Ok(()),
        _ => Err(AdminError::CsrfFailed),
    }
}

/// Whether the token may use the console at all: a console role, and never an
/// impersonation token (an admin acting as a manager would edit under their name).
fn admit(claims: &AccessClaims) -> AdminResult<()> {
    if claims.act.is_some() {
        return Err(AdminError::Forbidden(
            "an impersonation token cannot use the console; end the impersonation",
        ));
    }
    if CONSOLE_ROLES.iter().any(|role| claims.has_role(role)) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(
            "only admins and managers may use the console",
        ))
    }
}

fn auth_error(error: AuthError) -> AdminError {
    match error {
        AuthError::KeysUnavailable(detail) => AdminError::AuthUnavailable(detail),
        AuthError::MissingToken | AuthError::InvalidToken(_) | AuthError::Revoked => {
            AdminError::NotSignedIn
        }
    }
}

/// Tokens auth answers to a login or a refresh.
#[derive(Debug, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// The caller's session: a bearer token (JSON API) or the console cookies, renewed
/// through auth when the access token expired.
pub async fn current(
    headers: &HeaderMap,
    uri: &http::Uri,
    settings: &Settings,
) -> AdminResult<Session> {
    if let Some(token) = cinema_edge::bearer_token(headers) {
        let claims = cinema_edge::verify_token(token).await.map_err(auth_error)?;
        admit(&claims)?;
        return Ok(Session {
            claims,
            access_token: token.to_owned(),
            csrf: None,
            impersonation: None,
            renewed_cookies: Vec::new(),
        });
    }
    let jar = cookies(headers);
    let secure = over_tls(headers, uri);
    let mut csrf_cookie = jar.get(CSRF_COOKIE).filter(|t| !t.is_empty()).cloned();
    let impersonation = jar
        .get(IMPERSONATION_COOKIE)
        .filter(|t| !t.is_empty())
        .cloned();
    let access = jar
        .get(ACCESS_COOKIE)
        .filter(|t| !t.is_empty())
        .ok_or(AdminError::NotSignedIn)?;
    let (claims, access_token, renewed_cookies) = match cinema_edge::verify_token(access).await {
        Ok(claims) => (claims, access.clone(), Vec::new()),
        Err(AuthError::InvalidToken(TokenError::Expired)) => {
            let refresh = jar.get(REFRESH_COOKIE).ok_or(AdminError::NotSignedIn)?;
            let pair = refresh_tokens(settings, refresh).await?;
            let claims = cinema_edge::verify_token(&pair.access_token)
                .await
                .map_err(auth_error)?;
            let renewed = vec![
                cookie(ACCESS_COOKIE, &pair.access_token, secure),
                cookie(REFRESH_COOKIE, &pair.refresh_token, secure),
            ];
            (claims, pair.access_token, renewed)
        }
        Err(error) => return Err(auth_error(error)),
    };
    admit(&claims)?;
    let mut renewed_cookies = renewed_cookies;
    // The CSRF cookie lives as long as the session: renewed with the tokens, and made
    // afresh when it is gone (a write in this very request then fails: the form
    // cannot carry a token nobody has seen).
    let csrf = match csrf_cookie.take() {
        Some(token) => {
            if !renewed_cookies.is_empty() {
                renewed_cookies.push(cookie(CSRF_COOKIE, &token, secure));
            }
            token
        }
        None => {
            let token = random_token();
            renewed_cookies.push(cookie(CSRF_COOKIE, &token, secure));
            token
        }
    };
    let csrf = Some(csrf);
    Ok(Session {
        claims,
        access_token,
        csrf,
        impersonation,
        renewed_cookies,
    })
}

fn auth_api(settings: &Settings) -> HostApi {
    HostApi::new(&settings.auth_api_url, "admin", None)
}

async fn refresh_tokens(settings: &Settings, refresh_token: &str) -> AdminResult<TokenPair> {
    let answer = auth_api(settings)
        .post_json(
            "/api/v1/auth/refresh",
            serde_json::to_vec(&json!({ "refresh_token": refresh_token })).unwrap_or_default(),
        )
        .await
        .map_err(|e| AdminError::AuthUnavailable(e.to_string()))?;
    match answer.status {
        StatusCode::OK => serde_json::from_slice(&answer.body)
            .map_err(|e| AdminError::Internal(format!("auth refresh answer: {e}"))),
        status if status.is_client_error() => Err(AdminError::NotSignedIn),
        _ => Err(AdminError::AuthUnavailable(format!(
            "refresh: {}",
            answer.describe()
        ))),
    }
}

/// Why a sign-in was refused, in words for the login form.
#[derive(Debug)]
pub enum SignInRefused {
    WrongCredentials,
    Blocked,
    Throttled,
    NotStaff,
}

impl SignInRefused {
    pub fn message(&self) -> &'static str {
        match self {
            Self::WrongCredentials => "wrong email or password",
            Self::Blocked => "this account is blocked",
            Self::Throttled => "too many failed attempts; try again in a few minutes",
            Self::NotStaff => "only admins and managers may use the console",
        }
    }
}

/// Signs in through auth; `Ok(Err(..))` is a refusal to show on the form.
/// `forwarded_for` names the browser to auth (which trusts it from loopback only), so
/// failed sign-ins count against the browser's address, never the console's.
pub async fn sign_in(
    settings: &Settings,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> AdminResult<Result<TokenPair, SignInRefused>> {
    let mut auth = auth_api(settings);
    if let Some(chain) = forwarded_for {
        auth = auth.with_forwarded_for(chain);
    }
    let answer = auth
        .post_json(
            "/api/v1/auth/login",
            serde_json::to_vec(&json!({ "email": email, "password": password }))
                .unwrap_or_default(),
        )
        .await
        .map_err(|e| AdminError::AuthUnavailable(e.to_string()))?;
    let pair: TokenPair = match answer.status {
        StatusCode::OK => serde_json::from_slice(&answer.body)
            .map_err(|e| AdminError::Internal(format!("auth login answer: {e}")))?,
        StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            return Ok(Err(SignInRefused::WrongCredentials));
        }
        StatusCode::FORBIDDEN => return Ok(Err(SignInRefused::Blocked)),
        StatusCode::TOO_MANY_REQUESTS => return Ok(Err(SignInRefused::Throttled)),
        _ => {
            return Err(AdminError::AuthUnavailable(format!(
                "login: {}",
                answer.describe()
            )));
        }
    };
    let claims = cinema_edge::verify_token(&pair.access_token)
        .await
        .map_err(auth_error)?;
    if admit(&claims).is_err() {
        // Not staff: end the session auth just opened.
        let _ = auth_api(settings)
            .with_bearer(&pair.access_token)
            .post_json("/api/v1/auth/logout", Vec::new())
            .await;
        return Ok(Err(SignInRefused::NotStaff));
    }
    Ok(Ok(pair))
}

/// Ends the session at auth (best effort: the cookies go either way).
pub async fn sign_out(settings: &Settings, access_token: &str) {
    match auth_api(settings)
        .with_bearer(access_token)
        .post_json("/api/v1/auth/logout", Vec::new())
        .await
    {
        Ok(answer) if answer.status.is_success() || answer.status.is_client_error() => {}
        Ok(answer) => eprintln!("admin: logout at auth: {}", answer.describe()),
        Err(error) => eprintln!("admin: logout at auth: {error}"),
    }
}

/// Calls auth on the signed-in user's behalf (user administration).
pub fn auth_as(settings: &Settings, session: &Session) -> HostApi {
    auth_api(settings).with_bearer(&session.access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cookies are read by name, trimmed, the first of a repeated name winning.
    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; cinema_admin=tok; a=2".parse().expect("header"),
        );
        let jar = cookies(&headers);
        assert_eq!(jar.get("a").map(String::as_str), Some("1"));
        assert_eq!(jar.get(ACCESS_COOKIE).map(String::as_str), Some("tok"));
    }

    /// Console cookies are HttpOnly, SameSite=Strict, scoped to /admin, Secure over
    /// TLS, and deleted with Max-Age=0.
    #[test]
    fn console_cookies_are_locked_down() {
        let set = cookie(ACCESS_COOKIE, "tok", true);
        for part in ["Path=/admin", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!cookie(ACCESS_COOKIE, "tok", false).contains("Secure"));
        assert!(cookie(ACCESS_COOKIE, "", false).contains("Max-Age=0"));
    }

    fn session(csrf: Option<&str>) -> Session {
        Session {
            claims: AccessClaims {
                sub: "u".into(),
                sid: "s".into(),
                roles: vec!["manager".into()],
                permissions: Vec::new(),
                iat: 0,
                exp: 1,
                iss: "i".into(),
                aud: "a".into(),
                act: None,
            },
            access_token: "t".into(),
            csrf: csrf.map(str::to_owned),
            impersonation: None,
            renewed_cookies: Vec::new(),
        }
    }

    /// A cookie session's write needs the matching token and no foreign origin; a
    /// bearer session needs none.
    #[test]
    fn csrf_rule() {
        let mut headers = HeaderMap::new();
        let host = Some("127.0.0.1:3000");
        let cookie_session = session(Some("abc"));
        let check = |session: &Session, token: Option<&str>, headers: &HeaderMap, host| {
            check_csrf(session, token, headers, host).is_ok()
        };
        assert!(check(&cookie_session, Some("abc"), &headers, host));
        assert!(!check(&cookie_session, Some("abd"), &headers, host));
        assert!(!check(&cookie_session, None, &headers, host));
        assert!(check(&session(None), None, &headers, host));
        headers.insert(
            header::ORIGIN,
            "http://evil.example".parse().expect("header"),
        );
        assert!(!check(&cookie_session, Some("abc"), &headers, host));
        headers.insert(
            header::ORIGIN,
            "http://127.0.0.1:3000".parse().expect("header"),
        );
        assert!(check(&cookie_session, Some("abc"), &headers, host));
        assert!(
            !check(&cookie_session, Some("abc"), &headers, None),
            "unknown host: closed"
        );
    }
}
