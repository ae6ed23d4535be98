//! Social login: OAuth 2.0 authorization code with PKCE (S256) and `state`, for Yandex,
//! VK ID and Google, each with its documented endpoints and user-info shape.
//!
//! - `GET /oauth/{provider}/authorize` redirects to the provider; the state and the PKCE
//!   verifier wait in key-value for ten minutes, single use.
//! - `GET /oauth/{provider}/callback` checks the state, exchanges the code (with the
//!   verifier), reads the user's identity, then signs in the linked account, links the
//!   account with the same email, or creates one; answers a token pair.
//! - `POST /oauth/{provider}/link` (signed in) answers an authorize URL whose callback
//!   links the provider account to the caller; `DELETE /oauth/{provider}` unlinks it
//!   unless it is the account's only way to sign in.
//!
//! Endpoints and client credentials come from variables `oauth_<provider>_*`; a provider
//! without a client id is not offered (404 `provider_not_configured`).

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spin_sdk::pg::ParameterValue;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{ApiError, ApiResult, Reply, empty, json};
use crate::settings::Settings;
use crate::{Caller, Client};

/// How long an authorization may take between redirect and callback.
const STATE_TTL_SECONDS: i64 = 600;
/// Cookie that binds a sign-in to the browser that started it.
pub const BINDING_COOKIE: &str = "cinema_oauth_binding";
/// Path of the binding cookie: the authorize, link and callback routes.
const BINDING_COOKIE_PATH: &str = "/api/v1/auth/oauth";
/// Pending sign-ins one client address may hold at once.
pub const MAX_PENDING_PER_CLIENT: i64 = 20;
/// Pending sign-ins the table holds at most (about 300 bytes each).
pub const MAX_PENDING_TOTAL: i64 = 100_000;
/// Mailbox domains of Yandex: an address there is the Yandex account's own mailbox.
const YANDEX_MAIL_DOMAINS: &[&str] = &[
    "yandex.ru",
    "ya.ru",
    "yandex.com",
    "yandex.by",
    "yandex.kz",
    "yandex.ua",
    "narod.ru",
];

/// A supported provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Yandex,
    Vk,
    Google,
}

impl Provider {
    pub fn parse(name: &str) -> ApiResult<Self> {
        match name {
            "yandex" => Ok(Self::Yandex),
            "vk" => Ok(Self::Vk),
            "google" => Ok(Self::Google),
            _ => Err(ApiError::NotFound("provider")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Yandex => "yandex",
            Self::Vk => "vk",
            Self::Google => "google",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Self::Yandex => "login:email login:info",
            Self::Vk => "email",
            Self::Google => "openid email profile",
        }
    }
}

/// One provider's endpoints and credentials.
struct ProviderConfig {
    client_id: String,
    client_secret: String,
    authorize_url: String,
    token_url: String,
    userinfo_url: String,
    redirect_uri: String,
}

async fn variable(name: &str) -> String {
    spin_sdk::variables::get(name).await.unwrap_or_default()
}

async fn config(provider: Provider) -> ApiResult<ProviderConfig> {
    let p = provider.name();
    let client_id = variable(&format!("oauth_{p}_client_id")).await;
    if client_id.trim().is_empty() {
        return Err(ApiError::Conflict(
            "provider_not_configured",
            format!("sign-in with {p} is not configured"),
        ));
    }
    let base = variable("oauth_redirect_base").await;
    Ok(ProviderConfig {
        client_id,
        client_secret: variable(&format!("oauth_{p}_client_secret")).await,
        authorize_url: variable(&format!("oauth_{p}_authorize_url")).await,
        token_url: variable(&format!("oauth_{p}_token_url")).await,
        userinfo_url: variable(&format!("oauth_{p}_userinfo_url")).await,
        redirect_uri: format!(
            "{}/api/v1/auth/oauth/{p}/callback",
            base.trim_end_matches('/')
        ),
    })
}

fn random_token() -> String {
    cinema_domain::token::generate_refresh_token()
}

fn sha256(value: &str) -> Vec<u8> {
    <sha2::Sha256 as sha2::Digest>::digest(value.as_bytes()).to_vec()
}

/// The `Set-Cookie` value of the binding cookie (`value` empty: delete it).
fn binding_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() {
        0
    } else {
        STATE_TTL_SECONDS
    };
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{BINDING_COOKIE}={value}; Path={BINDING_COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )
}

/// Whether cookies must be `Secure`: the public base URL is https.
async fn secure_cookies() -> bool {
    variable("oauth_redirect_base")
        .await
        .trim()
        .to_ascii_lowercase()
        .starts_with("https://")
}

/// An authorize URL to send the browser to, and the binding cookie for that browser.
struct Authorization {
    url: String,
    set_cookie: String,
}

/// Builds the provider's authorize URL and records the pending sign-in.
async fn begin(
    settings: &Settings,
    client: &Client,
    provider: Provider,
    link_user: Option<Uuid>,
) -> ApiResult<Authorization> {
    let config = config(provider).await?;
    let state = random_token();
    let binding = random_token();
    let verifier = random_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(&verifier));
    let db = Db::open(&settings.database_url).await?;
    let rows = db
        .rows(
            "WITH purge AS (DELETE FROM auth.oauth_pending WHERE expires_at < now()), \
             ins AS ( \
                 INSERT INTO auth.oauth_pending \
                     (state_hash, binding_hash, provider, verifier, link_user, client_ip, expires_at) \
                 SELECT $1, $2, $3, $4, $5, $6::text::inet, now() + make_interval(secs => $7) \
                 WHERE ($6::text IS NULL OR (SELECT count(*) FROM auth.oauth_pending \
                        WHERE client_ip = $6::text::inet AND expires_at > now()) < $8) \
                   AND (SELECT count(*) FROM (SELECT 1 FROM auth.oauth_pending LIMIT $9) AS held) < $9 \
                 RETURNING 1) \
             SELECT (SELECT count(*) FROM ins) AS inserted, \
                    (SELECT count(*) FROM auth.oauth_pending \
                     WHERE client_ip = $6::text::inet AND expires_at > now()) AS held_by_client",
            vec![
                ParameterValue::Binary(sha256(&state)),
                ParameterValue::Binary(sha256(&binding)),
                ParameterValue::Str(provider.name().into()),
                ParameterValue::Str(verifier),
                link_user.map_or(ParameterValue::DbNull, |id| ParameterValue::Uuid(id.to_string())),
                // Capped per client; a proxy that named no client is capped only in all.
                client.throttle_ip.clone().map_or(ParameterValue::DbNull, ParameterValue::Str),
                ParameterValue::Floating64(STATE_TTL_SECONDS as f64),
                ParameterValue::Int64(MAX_PENDING_PER_CLIENT),
                ParameterValue::Int64(MAX_PENDING_TOTAL),
            ],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::Internal("pending sign-in insert answered no row".into()))?;
    if row.get::<i64>("inserted").unwrap_or(0) != 1 {
        if row.get::<i64>("held_by_client").unwrap_or(0) >= MAX_PENDING_PER_CLIENT {
            return Err(ApiError::TooManyAttempts(STATE_TTL_SECONDS as u64));
        }
        return Err(ApiError::Unavailable(
            "too_many_pending_sign_ins",
            "the pending social sign-in table is full".into(),
        ));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &config.redirect_uri)
        .append_pair("state", &state)
        .append_pair("scope", provider.scope())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let separator = if config.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok(Authorization {
        url: format!("{}{separator}{query}", config.authorize_url),
        set_cookie: binding_cookie(&binding, secure_cookies().await),
    })
}

fn with_cookie(mut reply: Reply, set_cookie: &str) -> ApiResult<Reply> {
    reply.headers_mut().append(
        http::header::SET_COOKIE,
        http::HeaderValue::from_str(set_cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(reply)
}

/// `GET /oauth/{provider}/authorize`: 302 to the provider, with the binding cookie.
pub async fn authorize(
    settings: &Settings,
    client: &Client,
    provider: Provider,
) -> ApiResult<Reply> {
    let authorization = begin(settings, client, provider, None).await?;
    let mut reply = empty(StatusCode::FOUND);
    reply.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_str(&authorization.url)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    with_cookie(reply, &authorization.set_cookie)
}

/// `POST /oauth/{provider}/link`: the authorize URL that links to the caller; the
/// binding cookie goes to the client that asked.
pub async fn link(
    settings: &Settings,
    client: &Client,
    caller: Caller,
    provider: Provider,
) -> ApiResult<Reply> {
    caller.refuse_while_impersonating()?;
    let authorization = begin(settings, client, provider, Some(caller.user_id)).await?;
    with_cookie(
        json(
            StatusCode::OK,
            &json!({ "authorize_url": authorization.url }),
        ),
        &authorization.set_cookie,
    )
}

/// `DELETE /oauth/{provider}`: unlink, unless it is the only way to sign in.
pub async fn unlink(caller: Caller, provider: Provider) -> ApiResult<Reply> {
    caller.refuse_while_impersonating()?;
    let rows = caller
        .db
        .rows(
            "SELECT (SELECT password_hash IS NOT NULL FROM auth.users WHERE id = $1) AS has_password, \
                    (SELECT count(*) FROM auth.social_accounts WHERE user_id = $1) AS linked, \
                    (SELECT count(*) FROM auth.social_accounts WHERE user_id = $1 AND provider = $2) AS this_one",
            vec![ParameterValue::Uuid(caller.user_id.to_string()), ParameterValue::Str(provider.name().into())],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::Internal("no row".into()))?;
    if row.get::<i64>("this_one").unwrap_or(0) == 0 {
        return Err(ApiError::NotFound("linked account"));
    }
    let has_password = row
        .get::<Option<bool>>("has_password")
        .flatten()
        .unwrap_or(false);
    if !has_password && row.get::<i64>("linked").unwrap_or(0) <= 1 {
        return Err(ApiError::Conflict(
            "last_sign_in_method",
            "set a password before unlinking the only provider".into(),
        ));
    }
    caller
        .db
        .execute(
            "DELETE FROM auth.social_accounts WHERE user_id = $1 AND provider = $2",
            vec![
                ParameterValue::Uuid(caller.user_id.to_string()),
                ParameterValue::Str(provider.name().into()),
            ],
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The identity a provider vouches for.
struct Identity {
    subject: String,
    email: Option<String>,
    /// The provider vouches that the user owns `email` (see the module doc).
    email_verified: bool,
    first_name: String,
    last_name: String,
}

/// Whether `email` is a Yandex account's own mailbox (Yandex owns the domain).
fn is_yandex_mailbox(email: &str) -> bool {
    email.rsplit_once('@').is_some_and(|(_, domain)| {
        YANDEX_MAIL_DOMAINS.contains(&domain.to_ascii_lowercase().as_str())
    })
}

async fn send(request: http::Request<Full<Bytes>>) -> ApiResult<Value> {
    let uri = request.uri().to_string();
    let unavailable = |detail: String| ApiError::Unavailable("provider_unavailable", detail);
    let response = spin_sdk::http::send(request)
        .await
        .map_err(|e| unavailable(format!("{uri}: {e:?}")))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unavailable(format!("{uri}: {e:?}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(ApiError::Unauthorized(
            "oauth_exchange_failed",
            format!("the provider refused the sign-in ({status})"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| unavailable(format!("{uri}: not JSON: {e}")))
}

fn form(url: &str, pairs: &[(&str, &str)]) -> ApiResult<http::Request<Full<Bytes>>> {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        body.append_pair(name, value);
    }
    http::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body.finish())))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Exchanges the code and reads the user's identity in the provider's own shape.
async fn identify(
    provider: Provider,
    config: &ProviderConfig,
    code: &str,
    verifier: &str,
    device_id: Option<&str>,
) -> ApiResult<Identity> {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", config.redirect_uri.as_str()),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("code_verifier", verifier),
    ];
    if let Some(device_id) = device_id {
        pairs.push(("device_id", device_id));
    }
    let token = send(form(&config.token_url, &pairs)?).await?;
    let access_token = text(&token, "access_token");
    if access_token.is_empty() {
        return Err(ApiError::Unauthorized(
            "oauth_exchange_failed",
            "the provider sent no access token".into(),
        ));
    }
    let identity = match provider {
        // https://yandex.ru/dev/id/doc/en/user-information
        Provider::Yandex => {
            let request = http::Request::get(&config.userinfo_url)
                .header(http::header::AUTHORIZATION, format!("OAuth {access_token}"))
                .body(Full::new(Bytes::new()))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let info = send(request).await?;
            let email = Some(text(&info, "default_email")).filter(|e| !e.is_empty());
            Identity {
                subject: text(&info, "id"),
                // Yandex ID does not say whether `default_email` was verified; an address
                // of a Yandex mailbox domain is the account's own mailbox, anything else
                // may be typed in by the user.
                email_verified: email.as_deref().is_some_and(is_yandex_mailbox),
                email,
                first_name: text(&info, "first_name"),
                last_name: text(&info, "last_name"),
            }
        }
        // https://id.vk.com/about/business/go/docs/en/vkid/latest/vk-id/connection/api-description
        Provider::Vk => {
            let info = send(form(
                &config.userinfo_url,
                &[
                    ("access_token", &access_token),
                    ("client_id", &config.client_id),
                ],
            )?)
            .await?;
            let user = &info["user"];
            Identity {
                subject: text(user, "user_id"),
                email: Some(text(user, "email")).filter(|e| !e.is_empty()),
                // VK ID's user_info documents no verification flag for `email`.
                email_verified: false,
                first_name: text(user, "first_name"),
                last_name: text(user, "last_name"),
            }
        }
        // https://developers.google.com/identity/openid-connect/openid-connect#obtainuserinfo
        Provider::Google => {
            let request = http::Request::get(&config.userinfo_url)
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {access_token}"),
                )
                .body(Full::new(Bytes::new()))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let info = send(request).await?;
            let verified = info["email_verified"].as_bool().unwrap_or(false);
            Identity {
                subject: text(&info, "sub"),
                email: Some(text(&info, "email")).filter(|e| !e.is_empty()),
                email_verified: verified,
                first_name: text(&info, "given_name"),
                last_name: text(&info, "family_name"),
            }
        }
    };
    if identity.subject.is_empty() {
        return Err(ApiError::Unauthorized(
            "oauth_exchange_failed",
            "the provider sent no user id".into(),
        ));
    }
    Ok(identity)
}

fn query_pairs(query: &str) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// A pending sign-in, taken by its callback.
struct Pending {
    provider: String,
    verifier: String,
    link_user: Option<Uuid>,
}

/// What became of a callback's `state`.
enum Taken {
    /// The pending sign-in, now deleted (single use).
    Pending(Pending),
    /// The state is pending, but this browser did not start it: left for its owner.
    OtherBrowser,
    /// Unknown, used or expired.
    Unknown,
}

/// Takes (deletes) the pending sign-in of `state` if `binding` is the cookie of the
/// browser that started it; a callback from any other browser leaves it in place, so a
/// leaked callback URL cannot burn the real user's sign-in.
async fn take_pending(db: &Db, state: &str, binding: Option<&str>) -> ApiResult<Taken> {
    let binding_hash = binding
        .filter(|b| !b.is_empty() && b.len() <= 256)
        .map(sha256)
        .unwrap_or_default();
    let rows = db
        .rows(
            "WITH taken AS ( \
                 DELETE FROM auth.oauth_pending WHERE state_hash = $1 AND binding_hash = $2 \
                 RETURNING provider, verifier, link_user, expires_at > now() AS live) \
             SELECT provider, verifier, link_user, live FROM taken \
             UNION ALL \
             SELECT NULL, NULL, NULL, false FROM auth.oauth_pending \
             WHERE state_hash = $1 AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM taken)",
            vec![
                ParameterValue::Binary(sha256(state)),
                ParameterValue::Binary(binding_hash),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Taken::Unknown);
    };
    let provider: Option<String> = row.get::<Option<String>>("provider").flatten();
    let Some(provider) = provider else {
        return Ok(Taken::OtherBrowser);
    };
    if !row.get::<bool>("live").unwrap_or(false) {
        return Ok(Taken::Unknown);
    }
    Ok(Taken::Pending(Pending {
        provider,
        verifier: row
            .get::<Option<String>>("verifier")
            .flatten()
            .unwrap_or_default(),
        link_user: row.get::<Option<Uuid>>("link_user").flatten(),
    }))
}

/// `GET /oauth/{provider}/callback`; `binding` is the browser's binding cookie.
pub async fn callback(
    settings: &Settings,
    provider: Provider,
    query: &str,
    client: &Client,
    binding: Option<&str>,
) -> ApiResult<Reply> {
    let reply = finish(settings, provider, query, client, binding).await?;
    // The binding served its one sign-in.
    with_cookie(reply, &binding_cookie("", secure_cookies().await))
}

async fn finish(
    settings: &Settings,
    provider: Provider,
    query: &str,
    client: &Client,
    binding: Option<&str>,
) -> ApiResult<Reply> {
    let params = query_pairs(query);
    let state = params.get("state").cloned().unwrap_or_default();
    let invalid_state = || {
        ApiError::Unauthorized(
            "oauth_state_invalid",
            "unknown or expired sign-in attempt; start again".into(),
        )
    };
    if state.is_empty() || state.len() > 256 {
        return Err(invalid_state());
    }
    let db = Db::open(&settings.database_url).await?;
    // Single use, whatever happens next.
    let pending = match take_pending(&db, &state, binding).await? {
        Taken::Pending(pending) => pending,
        Taken::OtherBrowser => {
            return Err(ApiError::Unauthorized(
                "oauth_browser_mismatch",
                "this sign-in was started in another browser; start again here".into(),
            ));
        }
        Taken::Unknown => return Err(invalid_state()),
    };
    if pending.provider != provider.name() {
        return Err(invalid_state());
    }
    if let Some(error) = params.get("error") {
        return Err(ApiError::Unauthorized(
            "oauth_denied",
            format!("the provider did not grant access ({error})"),
        ));
    }
    let code = params
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::invalid("code", "is missing"))?;
    let config = config(provider).await?;
    let identity = identify(
        provider,
        &config,
        code,
        &pending.verifier,
        params.get("device_id").map(String::as_str),
    )
    .await?;
    let subject_params = vec![
        ParameterValue::Str(provider.name().into()),
        ParameterValue::Str(identity.subject.clone()),
    ];
    let linked: Option<Uuid> = db
        .rows(
            "SELECT user_id FROM auth.social_accounts WHERE provider = $1 AND subject = $2",
            subject_params.clone(),
        )
        .await?
        .first()
        .and_then(|row| row.get("user_id"));

    if let Some(link_user) = pending.link_user {
        if linked.is_some_and(|owner| owner != link_user) {
            return Err(ApiError::Conflict(
                "provider_account_taken",
                "this account is linked to another user".into(),
            ));
        }
        record_link(
            &db,
            subject_params,
            link_user,
            identity.email.clone(),
            format!("another {} account is already linked", provider.name()),
        )
        .await?;
        return Ok(json(StatusCode::OK, &json!({ "linked": provider.name() })));
    }

    let user_id = match linked {
        Some(user_id) => user_id,
        None => link_or_create(&db, provider, &identity, &subject_params).await?,
    };
    crate::sign_in(&db, settings, user_id, client, provider.name()).await
}

/// Links the provider identity (`subject_params`: provider, subject) to `user_id`; a
/// user who already has another account of that provider is 409
/// `provider_already_linked` with `taken_message`.
async fn record_link(
    db: &Db,
    subject_params: Vec<ParameterValue>,
    user_id: Uuid,
    email: Option<String>,
    taken_message: String,
) -> ApiResult<()> {
    let mut params = subject_params;
    params.push(ParameterValue::Uuid(user_id.to_string()));
    params.push(email.map_or(ParameterValue::DbNull, ParameterValue::Str));
    db.execute(
        "INSERT INTO auth.social_accounts (provider, subject, user_id, email) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (provider, subject) DO NOTHING",
        params,
    )
    .await
    .map_err(|e| match e {
        ApiError::UniqueViolation(_) => ApiError::Conflict("provider_already_linked", taken_message),
        other => other,
    })?;
    Ok(())
}

/// A provider identity seen for the first time: the account with the same email when
/// both the provider and the account vouch for it, else a new account; refuses to
/// take over an account whose email nobody proved.
async fn link_or_create(
    db: &Db,
    provider: Provider,
    identity: &Identity,
    subject_params: &[ParameterValue],
) -> ApiResult<Uuid> {
    let email = identity
        .email
        .as_deref()
        .and_then(|e| cinema_domain::account::normalize_email(e).ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "oauth_email_missing",
                "the provider did not share an email".into(),
            )
        })?;
    let existing = db
        .rows(
            "SELECT id, email_confirmed FROM auth.users WHERE email = $1",
            vec![ParameterValue::Str(email.clone())],
        )
        .await?
        .first()
        .and_then(|row| Some((row.get::<Uuid>("id")?, row.get::<bool>("email_confirmed")?)));
    let user_id = match existing {
        Some((id, account_confirmed)) => {
            if !(account_confirmed && identity.email_verified) {
                return Err(ApiError::Conflict(
                    "oauth_link_requires_confirmation",
                    format!(
                        "an account with this email exists; sign in with its password (and confirm the email) and link {} from there",
                        provider.name()
                    ),
                ));
            }
            id
        }
        None => {
            let id = Uuid::new_v4();
            let confirmed = identity.email_verified;
            // The account and its `user.registered` event, in one statement; an email
            // the provider did not verify starts unconfirmed (the welcome mail carries
            // the confirmation link).
            let inserted = db
                .rows(
                    &format!(
                        "WITH u AS ( \
                             INSERT INTO auth.users (id, email, first_name, last_name, email_confirmed) \
                             VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT ON CONSTRAINT users_email_key DO NOTHING \
                             RETURNING id, email, locale, first_name, email_confirmed), \
                         {} \
                         SELECT count(*) AS inserted FROM u",
                        crate::db::outbox_event(
                            "user.registered",
                            "u",
                            "'first_name', u.first_name, 'email_confirmed', u.email_confirmed"
                        )
                    ),
                    vec![
                        ParameterValue::Uuid(id.to_string()),
                        ParameterValue::Str(email.clone()),
                        ParameterValue::Str(identity.first_name.chars().take(100).collect()),
                        ParameterValue::Str(identity.last_name.chars().take(100).collect()),
                        ParameterValue::Boolean(confirmed),
                    ],
                )
                .await?
                .first()
                .and_then(|row| row.get::<i64>("inserted"))
                .unwrap_or(0);
            if inserted != 1 {
                // Someone registered the address a moment ago: treat it as existing.
                return Err(ApiError::Conflict(
                    "oauth_link_requires_confirmation",
                    "an account with this email exists; sign in with its password and link from there".into(),
                ));
            }
            id
        }
    };
    record_link(
        db,
        subject_params.to_vec(),
        user_id,
        Some(email),
        format!("this user has another {} account linked", provider.name()),
    )
    .await?;
    Ok(user_id)
}
