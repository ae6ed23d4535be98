//! Every query of the auth component. Statements are single and atomic where the
//! protocol needs it (refresh rotation spends the old token and issues the new one in
//! one statement), so no transaction spans requests or round trips.

use cinema_domain::key_seal::{self, KeyEncryptionKey};
use cinema_domain::token::Jwk;
use spin_sdk::pg::{Connection, ParameterValue, Row};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub struct Db {
    connection: Connection,
}

fn uuid(value: Uuid) -> ParameterValue {
    ParameterValue::Uuid(value.to_string())
}

fn text(value: &str) -> ParameterValue {
    ParameterValue::Str(value.to_owned())
}

fn optional_text(value: Option<&str>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, text)
}

fn required<T: spin_sdk::pg::Decode>(row: &Row, column: &str) -> ApiResult<T> {
    row.get(column).ok_or_else(|| {
        ApiError::Internal(format!("column {column} missing or of an unexpected type"))
    })
}

/// A user as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub email_confirmed: bool,
    /// Language of the mails (`ru`, `en`).
    pub locale: String,
    pub roles: Vec<String>,
    pub created: String,
}

/// What an access token of a user carries.
pub struct Grants {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// `iat`, never before the user's latest revocation (see [`Db::grants`]).
    pub issued_at: i64,
}

/// What login needs to know about an account.
pub struct Credentials {
    pub id: Uuid,
    pub password_hash: Option<String>,
}

/// A live session, from a refresh.
pub struct Refreshed {
    pub session_id: Uuid,
    pub user_id: Uuid,
}

/// Why a refresh token did not rotate.
pub enum RefreshRefusal {
    Unknown,
    Expired,
    /// Already spent: the family has been revoked.
    Reused {
        session_id: Uuid,
    },
    SessionEnded,
}

/// One login history entry.
pub struct HistoryEntry<'a> {
    pub user_id: Uuid,
    pub ip: Option<&'a str>,
    pub user_agent: &'a str,
    pub success: bool,
    pub method: &'a str,
    pub failure_reason: Option<&'a str>,
}

const TS: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

/// A CTE that writes a platform event (`cinema_domain::platform`) for each row of
/// `source` (columns `id`, `email`, `locale`) into `platform.outbox`, which the host relays
/// to Kafka `auth.events`. `extra` adds fields (`'first_name', u.first_name`).
pub fn outbox_event(event_type: &str, source: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "outbox AS ( \
             INSERT INTO platform.outbox (id, topic, key, payload) \
             SELECT e.id, '{topic}', {source}.id::text, jsonb_build_object( \
                 'event_id', e.id::text, \
                 'occurred_at_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
                 'type', '{event_type}', 'user_id', {source}.id::text, \
                 'email', {source}.email, 'locale', {source}.locale{extra}) \
             FROM {source} CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id) e \
             RETURNING id)",
        topic = cinema_domain::platform::AUTH_EVENTS_TOPIC,
    )
}

impl Db {
    pub async fn open(url: &str) -> ApiResult<Self> {
        Ok(Self {
            connection: Connection::open(url).await?,
        })
    }

    pub async fn rows(&self, statement: &str, params: Vec<ParameterValue>) -> ApiResult<Vec<Row>> {
        Ok(self
            .connection
            .query(statement, params)
            .await?
            .collect()
            .await?)
    }

    pub async fn execute(&self, statement: &str, params: Vec<ParameterValue>) -> ApiResult<u64> {
        Ok(self.connection.execute(statement, params).await?)
    }

    /// Inserts a user; `Ok(false)` when the email is taken.
    pub async fn insert_user(
        &self,
        id: Uuid,
        email: &str,
        password_hash: &str,
        first_name: &str,
        last_name: &str,
        locale: &str,
    ) -> ApiResult<bool> {
        // The account and its `user.registered` event, in one statement.
        let rows = self
            .rows(
                &format!(
                    "WITH u AS ( \
                         INSERT INTO auth.users (id, email, password_hash, first_name, last_name, locale) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ON CONSTRAINT users_email_key DO NOTHING \
                         RETURNING id, email, locale, first_name), \
                     {} \
                     SELECT count(*) AS inserted FROM u",
                    outbox_event("user.registered", "u", "'first_name', u.first_name")
                ),
                vec![
                    uuid(id),
                    text(email),
                    text(password_hash),
                    text(first_name),
                    text(last_name),
                    text(locale),
                ],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row.get::<i64>("inserted"))
            .is_some_and(|n| n == 1))
    }

    pub async fn profile(&self, user_id: Uuid) -> ApiResult<Option<Profile>> {
        let statement = format!(
            "SELECT u.id::text AS id, u.email, u.first_name, u.last_name, u.email_confirmed, u.locale, \
                    to_char(u.created AT TIME ZONE 'UTC', {TS}) AS created, \
                    coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.name IS NOT NULL), '{{}}') AS roles \
             FROM auth.users u \
             LEFT JOIN auth.user_roles ur ON ur.user_id = u.id \
             LEFT JOIN auth.roles r ON r.id = ur.role_id \
             WHERE u.id = $1 GROUP BY u.id"
        );
        let rows = self.rows(&statement, vec![uuid(user_id)]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let roles: Vec<Option<String>> = required(row, "roles")?;
        Ok(Some(Profile {
            id: required(row, "id")?,
            email: required(row, "email")?,
            first_name: required(row, "first_name")?,
            last_name: required(row, "last_name")?,
            email_confirmed: required(row, "email_confirmed")?,
            locale: required(row, "locale")?,
            roles: roles.into_iter().flatten().collect(),
            created: required(row, "created")?,
        }))
    }

    pub async fn credentials(&self, email: &str) -> ApiResult<Option<Credentials>> {
        let rows = self
            .rows(
                "SELECT id, password_hash FROM auth.users WHERE email = $1",
                vec![text(email)],
            )
            .await?;
        rows.first()
            .map(|row| {
                Ok(Credentials {
                    id: required(row, "id")?,
                    password_hash: row.get::<Option<String>>("password_hash").flatten(),
                })
            })
            .transpose()
    }

    pub async fn password_hash(&self, user_id: Uuid) -> ApiResult<Option<String>> {
        let rows = self
            .rows(
                "SELECT password_hash FROM auth.users WHERE id = $1",
                vec![uuid(user_id)],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row.get::<Option<String>>("password_hash").flatten()))
    }

    /// Role names, the union of their permissions, and the `iat` a token issued now
    /// must carry: now, or the user's latest revocation's `not_before` when that is
    /// later (it is rounded up to the next second, so a token issued just after a role
    /// change is not mistaken for one issued before it).
    pub async fn grants(&self, user_id: Uuid) -> ApiResult<Grants> {
        let rows = self
            .rows(
                "SELECT coalesce(array_agg(DISTINCT r.name), '{}') AS roles, \
                        coalesce(array_agg(DISTINCT rp.permission) FILTER (WHERE rp.permission IS NOT NULL), '{}') AS permissions, \
                        greatest(floor(extract(epoch FROM now())), \
                                 (SELECT max(ceil(extract(epoch FROM not_before))) FROM auth.revocations \
                                  WHERE user_id = $1))::bigint AS issued_at \
                 FROM (SELECT 1) AS one \
                 LEFT JOIN auth.user_roles ur ON ur.user_id = $1 \
                 LEFT JOIN auth.roles r ON r.id = ur.role_id \
                 LEFT JOIN auth.role_permissions rp ON rp.role_id = r.id",
                vec![uuid(user_id)],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::Internal("grants answered no row".into()))?;
        let roles: Vec<Option<String>> = required(row, "roles")?;
        let permissions: Vec<Option<String>> = required(row, "permissions")?;
        Ok(Grants {
            roles: roles.into_iter().flatten().collect(),
            permissions: permissions.into_iter().flatten().collect(),
            issued_at: required(row, "issued_at")?,
        })
    }

    /// The key that signs now: (kid, PKCS#8 private key).
    /// The key that signs now, opened with `kek` when it is sealed at rest. Answers
    /// 503 `signing_key_missing` without one, `signing_key_locked` when it is sealed and
    /// `kek` is absent or wrong.
    pub async fn signing_key(
        &self,
        kek: Option<&KeyEncryptionKey>,
    ) -> ApiResult<(String, Vec<u8>)> {
        let rows = self
            .rows(
                "SELECT kid, private_key FROM auth.signing_keys \
                 WHERE activated_at <= now() AND (retired_at IS NULL OR retired_at > now()) \
                 ORDER BY activated_at DESC LIMIT 1",
                vec![],
            )
            .await?;
        let row = rows.first().ok_or_else(|| {
            ApiError::Unavailable(
                "signing_key_missing",
                "no token signing key is active: an operator must run `cinema keys rotate`".into(),
            )
        })?;
        let kid: String = required(row, "kid")?;
        let stored: Vec<u8> = required(row, "private_key")?;
        let private_key = key_seal::open(&stored, &kid, kek).map_err(|error| {
            ApiError::Unavailable(
                "signing_key_locked",
                format!(
                    "signing key {kid}: {error}; set the auth component's signing_key_encryption_key"
                ),
            )
        })?;
        Ok((kid, private_key))
    }

    /// Every key that can still verify a live token.
    pub async fn published_keys(&self) -> ApiResult<Vec<Jwk>> {
        let rows = self
            .rows(
                "SELECT kid, public_key FROM auth.signing_keys \
                 WHERE expires_at IS NULL OR expires_at > now() ORDER BY activated_at",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let kid: String = required(row, "kid")?;
                let public: Vec<u8> = required(row, "public_key")?;
                let public: [u8; 32] = public
                    .try_into()
                    .map_err(|_| ApiError::Internal(format!("public key {kid} is not 32 bytes")))?;
                Ok(Jwk::ed25519(kid, &public))
            })
            .collect()
    }

    /// Opens a session with its first refresh token, atomically.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_session(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        refresh_hash: [u8; 32],
        ttl_days: i32,
        ip: Option<&str>,
        user_agent: &str,
    ) -> ApiResult<()> {
        self.execute(
            "WITH session AS ( \
                 INSERT INTO auth.sessions (id, user_id, expires_at, ip, user_agent) \
                 VALUES ($1, $2, now() + make_interval(days => $4), $5::text::inet, $6) RETURNING id) \
             INSERT INTO auth.refresh_tokens (token_hash, session_id, expires_at) \
             SELECT $3, id, now() + make_interval(days => $4) FROM session",
            vec![
                uuid(session_id),
                uuid(user_id),
                ParameterValue::Binary(refresh_hash.to_vec()),
                ParameterValue::Int32(ttl_days),
                optional_text(ip),
                text(user_agent),
            ],
        )
        .await?;
        Ok(())
    }

    /// Spends `old` and issues `new` in the same session, atomically; refusals say why.
    pub async fn rotate_refresh(
        &self,
        old: [u8; 32],
        new: [u8; 32],
        ttl_days: i32,
    ) -> ApiResult<Result<Refreshed, RefreshRefusal>> {
        let rows = self
            .rows(
                "WITH live AS ( \
                     SELECT rt.session_id, s.user_id FROM auth.refresh_tokens rt \
                     JOIN auth.sessions s ON s.id = rt.session_id \
                     JOIN auth.users u ON u.id = s.user_id \
                     WHERE rt.token_hash = $1 AND rt.used_at IS NULL AND rt.expires_at > now() \
                       AND s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.is_blocked), \
                 spent AS ( \
                     UPDATE auth.refresh_tokens SET used_at = now() \
                     WHERE token_hash = $1 AND used_at IS NULL AND session_id IN (SELECT session_id FROM live) \
                     RETURNING session_id), \
                 fresh AS ( \
                     INSERT INTO auth.refresh_tokens (token_hash, session_id, expires_at) \
                     SELECT $2, session_id, now() + make_interval(days => $3) FROM spent RETURNING session_id), \
                 touched AS ( \
                     UPDATE auth.sessions SET last_used = now() WHERE id IN (SELECT session_id FROM fresh) RETURNING id) \
                 SELECT spent.session_id, live.user_id FROM spent JOIN live USING (session_id)",
                vec![
                    ParameterValue::Binary(old.to_vec()),
                    ParameterValue::Binary(new.to_vec()),
                    ParameterValue::Int32(ttl_days),
                ],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(Ok(Refreshed {
                session_id: required(row, "session_id")?,
                user_id: required(row, "user_id")?,
            }));
        }
        let rows = self
            .rows(
                "SELECT session_id, used_at IS NOT NULL AS used, expires_at <= now() AS expired \
                 FROM auth.refresh_tokens WHERE token_hash = $1",
                vec![ParameterValue::Binary(old.to_vec())],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Err(RefreshRefusal::Unknown));
        };
        let session_id: Uuid = required(row, "session_id")?;
        if required::<bool>(row, "used")? {
            self.revoke_session(session_id, "refresh_token_reuse")
                .await?;
            return Ok(Err(RefreshRefusal::Reused { session_id }));
        }
        if required::<bool>(row, "expired")? {
            return Ok(Err(RefreshRefusal::Expired));
        }
        Ok(Err(RefreshRefusal::SessionEnded))
    }

    pub async fn revoke_session(&self, session_id: Uuid, reason: &str) -> ApiResult<bool> {
        let revoked = self
            .execute(
                "UPDATE auth.sessions SET revoked_at = now(), revoked_reason = $2 \
                 WHERE id = $1 AND revoked_at IS NULL",
                vec![uuid(session_id), text(reason)],
            )
            .await?;
        Ok(revoked == 1)
    }

    /// Revokes one of the user's sessions; `false` when it is not theirs or not live.
    pub async fn revoke_own_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: &str,
    ) -> ApiResult<bool> {
        let revoked = self
            .execute(
                "UPDATE auth.sessions SET revoked_at = now(), revoked_reason = $3 \
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                vec![uuid(session_id), uuid(user_id), text(reason)],
            )
            .await?;
        Ok(revoked == 1)
    }

    pub async fn revoke_all_sessions(&self, user_id: Uuid, reason: &str) -> ApiResult<u64> {
        self.execute(
            "UPDATE auth.sessions SET revoked_at = now(), revoked_reason = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL",
            vec![uuid(user_id), text(reason)],
        )
        .await
    }

    /// Whether the session behind an access token is still live (and its user not blocked).
    pub async fn session_is_live(&self, user_id: Uuid, session_id: Uuid) -> ApiResult<bool> {
        let rows = self
            .rows(
                "SELECT 1 AS live FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id \
                 WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now() \
                 AND NOT u.is_blocked",
                vec![uuid(session_id), uuid(user_id)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub async fn record_login(&self, entry: HistoryEntry<'_>) -> ApiResult<()> {
        self.execute(
            "INSERT INTO auth.login_history (id, user_id, ip, user_agent, success, method, failure_reason) \
             VALUES ($1, $2, $3::text::inet, $4, $5, $6, $7)",
            vec![
                uuid(Uuid::new_v4()),
                uuid(entry.user_id),
                optional_text(entry.ip),
                text(entry.user_agent),
                ParameterValue::Boolean(entry.success),
                text(entry.method),
                optional_text(entry.failure_reason),
            ],
        )
        .await?;
        Ok(())
    }

    /// One page of the user's login history, newest first.
    pub async fn history(
        &self,
        user_id: Uuid,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<serde_json::Value>, i64)> {
        let statement = format!(
            "SELECT to_char(at AT TIME ZONE 'UTC', {TS}) AS at, host(ip) AS ip, user_agent, success, method, \
                    failure_reason, count(*) OVER () AS total \
             FROM auth.login_history WHERE user_id = $1 ORDER BY at DESC, id LIMIT $2 OFFSET $3"
        );
        let rows = self
            .rows(
                &statement,
                vec![
                    uuid(user_id),
                    ParameterValue::Int64(limit),
                    ParameterValue::Int64(offset),
                ],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => required(row, "total")?,
            None => self.history_count(user_id).await?,
        };
        let entries = rows
            .iter()
            .map(|row| {
                Ok(serde_json::json!({
                    "at": required::<String>(row, "at")?,
                    "ip": row.get::<Option<String>>("ip").flatten(),
                    "user_agent": required::<String>(row, "user_agent")?,
                    "success": required::<bool>(row, "success")?,
                    "method": required::<String>(row, "method")?,
                    "failure_reason": row.get::<Option<String>>("failure_reason").flatten(),
                }))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((entries, total))
    }

    async fn history_count(&self, user_id: Uuid) -> ApiResult<i64> {
        let rows = self
            .rows(
                "SELECT count(*) AS total FROM auth.login_history WHERE user_id = $1",
                vec![uuid(user_id)],
            )
            .await?;
        rows.first().map_or(Ok(0), |row| required(row, "total"))
    }

    /// The user's live sessions, most recently used first.
    pub async fn sessions(
        &self,
        user_id: Uuid,
        current: Uuid,
    ) -> ApiResult<Vec<serde_json::Value>> {
        let statement = format!(
            "SELECT id, to_char(created AT TIME ZONE 'UTC', {TS}) AS created, \
                    to_char(last_used AT TIME ZONE 'UTC', {TS}) AS last_used, \
                    to_char(expires_at AT TIME ZONE 'UTC', {TS}) AS expires_at, host(ip) AS ip, user_agent \
             FROM auth.sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
             ORDER BY last_used DESC"
        );
        let rows = self.rows(&statement, vec![uuid(user_id)]).await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = required(row, "id")?;
                Ok(serde_json::json!({
                    "id": id,
                    "created": required::<String>(row, "created")?,
                    "last_used": required::<String>(row, "last_used")?,
                    "expires_at": required::<String>(row, "expires_at")?,
                    "ip": row.get::<Option<String>>("ip").flatten(),
                    "user_agent": required::<String>(row, "user_agent")?,
                    "current": id == current,
                }))
            })
            .collect()
    }

    /// Updates names and locale at once and, with `new_email`, records the owner's
    /// request to move the account there (`email.change_requested`, which notify turns
    /// into a confirmation link to the new address) in the same statement. The email
    /// itself changes only when that link is followed ([`Self::confirm_email`]).
    /// `Ok(false)`, and nothing changed, when another account has `new_email`.
    pub async fn update_profile(
        &self,
        user_id: Uuid,
        new_email: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
        locale: Option<&str>,
    ) -> ApiResult<bool> {
        let rows = self
            .rows(
                &format!(
                    "WITH taken AS ( \
                         SELECT EXISTS (SELECT 1 FROM auth.users WHERE email = $2::text AND id <> $1) AS taken), \
                     u AS ( \
                         UPDATE auth.users SET first_name = coalesce($3, first_name), \
                                last_name = coalesce($4, last_name), locale = coalesce($5, locale) \
                         WHERE id = $1 AND NOT (SELECT taken FROM taken) \
                         RETURNING id, email, locale), \
                     moving AS (SELECT id, email, locale FROM u WHERE $2::text IS NOT NULL AND u.email <> $2::text), \
                     {} \
                     SELECT (SELECT taken FROM taken) AS taken",
                    outbox_event("email.change_requested", "moving", "'new_email', $2::text")
                ),
                vec![
                    uuid(user_id),
                    optional_text(new_email),
                    optional_text(first_name),
                    optional_text(last_name),
                    optional_text(locale),
                ],
            )
            .await?;
        let taken = rows
            .first()
            .and_then(|row| row.get::<bool>("taken"))
            .ok_or_else(|| ApiError::Internal("profile update answered no row".into()))?;
        Ok(!taken)
    }

    /// Sets the password and records `password.changed`, in one statement.
    pub async fn set_password(&self, user_id: Uuid, password_hash: &str) -> ApiResult<()> {
        self.rows(
            &format!(
                "WITH u AS ( \
                     UPDATE auth.users SET password_hash = $2 WHERE id = $1 \
                     RETURNING id, email, locale), \
                 {} \
                 SELECT count(*) AS changed FROM u",
                outbox_event("password.changed", "u", "")
            ),
            vec![uuid(user_id), text(password_hash)],
        )
        .await?;
        Ok(())
    }

    /// Spends a confirmation token, once and before it expires. A welcome link confirms
    /// the email it was issued for, only while the account still has it; an email-change
    /// link (with `previous_email`) moves the account to its address and confirms it,
    /// only while the account still has the address the change was asked from. `false`
    /// otherwise. `EmailTaken` when another account took the address meanwhile: the
    /// statement fails as a whole, so the token stays unused.
    pub async fn confirm_email(&self, token_hash: [u8; 32]) -> ApiResult<bool> {
        let result = self
            .rows(
                "WITH c AS ( \
                     UPDATE auth.email_confirmations SET used_at = now() \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
                     RETURNING user_id, email, previous_email), \
                 u AS ( \
                     UPDATE auth.users SET email = c.email, email_confirmed = true \
                     FROM c WHERE auth.users.id = c.user_id \
                       AND auth.users.email = coalesce(c.previous_email, c.email) \
                     RETURNING auth.users.id) \
                 SELECT count(*) AS confirmed FROM u",
                vec![ParameterValue::Binary(token_hash.to_vec())],
            )
            .await;
        let rows = match result {
            Ok(rows) => rows,
            // The only unique constraint this statement can hit is the users' email.
            Err(ApiError::UniqueViolation(_)) => return Err(ApiError::EmailTaken),
            Err(other) => return Err(other),
        };
        Ok(rows
            .first()
            .and_then(|row| row.get::<i64>("confirmed"))
            .is_some_and(|n| n == 1))
    }
}
