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
use spin_sdk::key_value::Store;
use spin_sdk::pg::ParameterValue;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{ApiError, ApiResult, Reply, empty, json};
use crate::settings::Settings;
use crate::{Caller, Client};

/// How long an authorization may take between redirect and callback.
const STATE_TTL_SECONDS: i64 = 600;

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

/// What waits in key-value between the redirect and the callback.
#[derive(Serialize, Deserialize)]
struct PendingAuthorization {
    provider: Provider,
    verifier: String,
    created_at: i64,
    /// Set when a signed-in user links this provider.
    link_user: Option<Uuid>,
}

fn random_token() -> String {
    cinema_domain::token::generate_refresh_token()
}

fn state_key(state: &str) -> String {
    format!("auth:oauth-state:{state}")
}

async fn store() -> ApiResult<Store> {
    Store::open_default().await.map_err(|e| {
        ApiError::Unavailable("state_store_unavailable", format!("key-value store: {e:?}"))
    })
}

/// Builds the provider's authorize URL and remembers the state.
async fn begin(provider: Provider, link_user: Option<Uuid>) -> ApiResult<String> {
    let config = config(provider).await?;
    let state = random_token();
    let verifier = random_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let pending = PendingAuthorization {
        provider,
        verifier,
        created_at: crate::now(),
        link_user,
    };
    let bytes = serde_json::to_vec(&pending).map_err(|e| ApiError::Internal(e.to_string()))?;
    store()
        .await?
        .set(&state_key(&state), &bytes)
        .await
        .map_err(|e| {
            ApiError::Unavailable("state_store_unavailable", format!("key-value store: {e:?}"))
        })?;
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
    Ok(format!("{}{separator}{query}", config.authorize_url))
}

/// `GET /oauth/{provider}/authorize`: 302 to the provider.
pub async fn authorize(provider: Provider) -> ApiResult<Reply> {
    let url = begin(provider, None).await?;
    let mut reply = empty(StatusCode::FOUND);
    reply.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_str(&url).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(reply)
}

/// `POST /oauth/{provider}/link`: the authorize URL that links to the caller.
pub async fn link(caller: Caller, provider: Provider) -> ApiResult<Reply> {
    let url = begin(provider, Some(caller.user_id)).await?;
    Ok(json(StatusCode::OK, &json!({ "authorize_url": url })))
}

/// `DELETE /oauth/{provider}`: unlink, unless it is the only way to sign in.
pub async fn unlink(caller: Caller, provider: Provider) -> ApiResult<Reply> {
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
    first_name: String,
    last_name: String,
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
            Identity {
                subject: text(&info, "id"),
                email: Some(text(&info, "default_email")).filter(|e| !e.is_empty()),
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
                email: Some(text(&info, "email")).filter(|e| verified && !e.is_empty()),
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

/// `GET /oauth/{provider}/callback`.
pub async fn callback(
    settings: &Settings,
    provider: Provider,
    query: &str,
    client: &Client,
) -> ApiResult<Reply> {
    let params = query_pairs(query);
    let state = params.get("state").cloned().unwrap_or_default();
    let invalid_state = || {
        ApiError::Unauthorized(
            "oauth_state_invalid",
            "unknown or expired sign-in attempt; start again".into(),
        )
    };
    if state.is_empty() {
        return Err(invalid_state());
    }
    let store = store().await?;
    let key = state_key(&state);
    let pending = store
        .get(&key)
        .await
        .map_err(|e| {
            ApiError::Unavailable("state_store_unavailable", format!("key-value store: {e:?}"))
        })?
        .and_then(|bytes| serde_json::from_slice::<PendingAuthorization>(&bytes).ok())
        .ok_or_else(invalid_state)?;
    // Single use, whatever happens next.
    let _ = store.delete(&key).await;
    if pending.provider != provider || crate::now() - pending.created_at > STATE_TTL_SECONDS {
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
    let db = Db::open(&settings.database_url).await?;
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
        db.execute(
            "INSERT INTO auth.social_accounts (provider, subject, user_id, email) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (provider, subject) DO NOTHING",
            vec![
                subject_params[0].clone(),
                subject_params[1].clone(),
                ParameterValue::Uuid(link_user.to_string()),
                identity.email.clone().map_or(ParameterValue::DbNull, ParameterValue::Str),
            ],
        )
        .await
        .map_err(|e| match e {
            ApiError::UniqueViolation(_) => ApiError::Conflict("provider_already_linked", format!("another {} account is already linked", provider.name())),
            other => other,
        })?;
        return Ok(json(StatusCode::OK, &json!({ "linked": provider.name() })));
    }

    let user_id = match linked {
        Some(user_id) => user_id,
        None => {
            let email = identity
                .email
                .as_deref()
                .and_then(|e| cinema_domain::account::normalize_email(e).ok())
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "oauth_email_missing",
                        "the provider did not share a verified email".into(),
                    )
                })?;
            let user_id = match db.credentials(&email).await? {
                Some(existing) => existing.id,
                None => {
                    let id = Uuid::new_v4();
                    // The account and its `user.registered` event (the provider vouched
                    // for the email), in one statement.
                    db.rows(
                        &format!(
                            "WITH u AS ( \
                                 INSERT INTO auth.users (id, email, first_name, last_name, email_confirmed) \
                                 VALUES ($1, $2, $3, $4, true) \
                                 ON CONFLICT ON CONSTRAINT users_email_key DO NOTHING \
                                 RETURNING id, email, locale, first_name), \
                             {} \
                             SELECT count(*) AS inserted FROM u",
                            crate::db::outbox_event(
                                "user.registered",
                                "u",
                                "'first_name', u.first_name, 'email_confirmed', true"
                            )
                        ),
                        vec![
                            ParameterValue::Uuid(id.to_string()),
                            ParameterValue::Str(email.clone()),
                            ParameterValue::Str(identity.first_name.chars().take(100).collect()),
                            ParameterValue::Str(identity.last_name.chars().take(100).collect()),
                        ],
                    )
                    .await?;
                    db.credentials(&email)
                        .await?
                        .map(|c| c.id)
                        .ok_or_else(|| ApiError::Internal("user vanished".into()))?
                }
            };
            db.execute(
                "INSERT INTO auth.social_accounts (provider, subject, user_id, email) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (provider, subject) DO NOTHING",
                vec![subject_params[0].clone(), subject_params[1].clone(), ParameterValue::Uuid(user_id.to_string()), ParameterValue::Str(email)],
            )
            .await
            .map_err(|e| match e {
                ApiError::UniqueViolation(_) => ApiError::Conflict("provider_already_linked", format!("this user has another {} account linked", provider.name())),
                other => other,
            })?;
            user_id
        }
    };
    crate::sign_in(&db, settings, user_id, client, provider.name()).await
}
