//! User administration (the `users:manage` permission): list and search accounts,
//! block and unblock them, and impersonate one ("log in as").
//!
//! Every change writes its `admin.audit_log` entry in the same statement as the change,
//! so neither exists without the other. Blocking revokes the user's live sessions at
//! once (their refresh tokens stop working; access tokens already issued run out within
//! their short lifetime). Impersonation opens a session marked with the admin
//! (`auth.sessions.impersonator`) and answers one access token with an `act` claim
//! naming the admin, never a refresh token. Admins cannot block themselves, nor
//! impersonate someone who may manage users, nor impersonate while impersonating.

use cinema_domain::token::{AccessClaims, Actor, sign};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use spin_sdk::pg::{ParameterValue, Row};
use uuid::Uuid;

use crate::Caller;
use crate::error::{ApiError, ApiResult, Reply, empty, json};
use crate::roles::USERS_MANAGE;
use crate::settings::Settings;

/// Default and largest page of the user list.
const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 200;
/// Longest search text.
const MAX_QUERY_CHARS: usize = 200;

fn require(caller: &Caller) -> ApiResult<()> {
    caller.refuse_while_impersonating()?;
    if caller.claims.has_permission(USERS_MANAGE) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(USERS_MANAGE))
    }
}

fn user_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("user_id", "must be a UUID"))
}

fn column<T: spin_sdk::pg::Decode>(row: &Row, name: &str) -> ApiResult<T> {
    row.get(name)
        .ok_or_else(|| ApiError::Internal(format!("column {name} missing or mistyped")))
}

/// One account in the admin list.
#[derive(Debug, Serialize)]
struct UserSummary {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
    is_blocked: bool,
    roles: Vec<String>,
    created: String,
}

/// The list's query: `query` (email or name, case-insensitive substring),
/// `page_number` from 1, `page_size` 1..=200.
struct ListQuery {
    text: String,
    page_number: i64,
    page_size: i64,
}

impl ListQuery {
    fn parse(raw: &str) -> ApiResult<Self> {
        let mut query = Self {
            text: String::new(),
            page_number: 1,
            page_size: DEFAULT_PAGE_SIZE,
        };
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.trim();
            match name.as_ref() {
                "query" => {
                    if value.chars().count() > MAX_QUERY_CHARS {
                        return Err(ApiError::invalid("query", "must be at most 200 characters"));
                    }
                    value.clone_into(&mut query.text);
                }
                "page_number" => {
                    query.page_number = value
                        .parse()
                        .ok()
                        .filter(|n: &i64| (1..=1_000_000).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid("page_number", "must be an integer from 1")
                        })?;
                }
                "page_size" => {
                    query.page_size = value
                        .parse()
                        .ok()
                        .filter(|n: &i64| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid("page_size", "must be an integer from 1 to 200")
                        })?;
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

/// `GET /api/v1/auth/users`: accounts newest first, with their roles.
pub async fn list(caller: Caller, raw_query: &str) -> ApiResult<Reply> {
    require(&caller)?;
    let query = ListQuery::parse(raw_query)?;
    let pattern = format!(
        "%{}%",
        query
            .text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = caller
        .db
        .rows(
            "SELECT u.id::text AS id, u.email, u.first_name, u.last_name, u.is_blocked, \
                    to_char(u.created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created, \
                    COALESCE((SELECT string_agg(r.name, ',' ORDER BY r.name) FROM auth.user_roles ur \
                              JOIN auth.roles r ON r.id = ur.role_id WHERE ur.user_id = u.id), '') AS roles, \
                    count(*) OVER () AS total \
             FROM auth.users u \
             WHERE $1 = '%%' OR u.email LIKE $1 \
                OR lower(u.first_name || ' ' || u.last_name) LIKE $1 \
             ORDER BY u.created DESC, u.id \
             LIMIT $2 OFFSET $3",
            vec![
                ParameterValue::Str(pattern),
                ParameterValue::Int64(query.page_size),
                ParameterValue::Int64((query.page_number - 1) * query.page_size),
            ],
        )
        .await?;
    let total = match rows.first() {
        Some(row) => column::<i64>(row, "total")?,
        None => 0,
    };
    let items = rows
        .iter()
        .map(|row| {
            let roles: String = column(row, "roles")?;
            Ok(UserSummary {
                id: column(row, "id")?,
                email: column(row, "email")?,
                first_name: column(row, "first_name")?,
                last_name: column(row, "last_name")?,
                is_blocked: column(row, "is_blocked")?,
                roles: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
                created: column(row, "created")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "items": items,
            "total": total,
            "page_number": query.page_number,
            "page_size": query.page_size,
        }),
    ))
}

/// `POST|DELETE /api/v1/auth/users/{id}/block`: blocks (revoking every live session)
/// or unblocks; 204 either way, also when nothing changed (no audit entry then).
pub async fn set_blocked(caller: Caller, raw_user: &str, blocked: bool) -> ApiResult<Reply> {
    require(&caller)?;
    let user = user_id(raw_user)?;
    if blocked && user == caller.user_id {
        return Err(ApiError::Refused(
            "cannot_block_self",
            "you cannot block your own account",
        ));
    }
    let rows = caller
        .db
        .rows(
            &format!(
                "WITH target AS ( \
                 SELECT id, is_blocked FROM auth.users WHERE id = $1 FOR UPDATE), \
             changed AS ( \
                 UPDATE auth.users u SET is_blocked = $2 FROM target \
                 WHERE u.id = target.id AND target.is_blocked <> $2 RETURNING u.id), \
             revoked AS ( \
                 UPDATE auth.sessions s SET revoked_at = now(), revoked_reason = 'blocked' \
                 WHERE $2 AND s.user_id IN (SELECT id FROM changed) AND s.revoked_at IS NULL \
                 RETURNING s.id), \
             blocked AS ( \
                 SELECT u.id, u.email, u.locale FROM auth.users u \
                 WHERE $2 AND u.id IN (SELECT id FROM changed)), \
             {}, \
             audit AS ( \
                 INSERT INTO admin.audit_log \
                     (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
                 SELECT $3, $4, COALESCE((SELECT email FROM auth.users WHERE id = $4), ''), \
                        CASE WHEN $2 THEN 'user.block' ELSE 'user.unblock' END, 'user', target.id, \
                        jsonb_build_object('is_blocked', target.is_blocked), \
                        jsonb_build_object('is_blocked', $2, \
                                           'sessions_revoked', (SELECT count(*) FROM revoked)) \
                 FROM target WHERE EXISTS (SELECT 1 FROM changed) RETURNING id) \
             SELECT (SELECT count(*) FROM target) AS found, \
                    (SELECT count(*) FROM audit) AS audited",
                crate::db::outbox_event("user.blocked", "blocked", "")
            ),
            vec![
                ParameterValue::Uuid(user.to_string()),
                ParameterValue::Boolean(blocked),
                ParameterValue::Uuid(Uuid::new_v4().to_string()),
                ParameterValue::Uuid(caller.user_id.to_string()),
            ],
        )
        .await?;
    let found: i64 = match rows.first() {
        Some(row) => column(row, "found")?,
        None => 0,
    };
    if found == 0 {
        return Err(ApiError::NotFound("user"));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /api/v1/auth/users/{id}/impersonate`: a short-lived access token for the
/// user with `act: {sub: <admin>}`, in a session of its own; no refresh token.
pub async fn impersonate(caller: Caller, settings: &Settings, raw_user: &str) -> ApiResult<Reply> {
    if caller.claims.act.is_some() {
        return Err(ApiError::Refused(
            "already_impersonating",
            "end the current impersonation first",
        ));
    }
    require(&caller)?;
    let user = user_id(raw_user)?;
    if user == caller.user_id {
        return Err(ApiError::Refused(
            "cannot_impersonate_self",
            "you are already yourself",
        ));
    }
    let ttl = settings
        .impersonation_ttl_seconds
        .min(settings.access_token_ttl_seconds);
    let session_id = Uuid::new_v4();
    // The session and the audit entry in one statement, only for a live, non-admin user.
    let rows = caller
        .db
        .rows(
            "WITH target AS ( \
                 SELECT u.id, u.email, u.is_blocked, \
                        EXISTS (SELECT 1 FROM auth.user_roles ur \
                                JOIN auth.role_permissions rp ON rp.role_id = ur.role_id \
                                WHERE ur.user_id = u.id AND rp.permission = $6) AS manages_users \
                 FROM auth.users u WHERE u.id = $1), \
             allowed AS (SELECT * FROM target WHERE NOT is_blocked AND NOT manages_users), \
             session AS ( \
                 INSERT INTO auth.sessions (id, user_id, expires_at, user_agent, impersonator) \
                 SELECT $2, id, now() + make_interval(secs => $3), 'impersonation', $4 \
                 FROM allowed RETURNING id), \
             audit AS ( \
                 INSERT INTO admin.audit_log \
                     (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
                 SELECT $5, $4, COALESCE((SELECT email FROM auth.users WHERE id = $4), ''), \
                        'user.impersonate', 'user', allowed.id, NULL, \
                        jsonb_build_object('session_id', $2::uuid, 'expires_in', $3) \
                 FROM allowed RETURNING id) \
             SELECT target.email, target.is_blocked, target.manages_users, \
                    (SELECT count(*) FROM session) AS opened \
             FROM target",
            vec![
                ParameterValue::Uuid(user.to_string()),
                ParameterValue::Uuid(session_id.to_string()),
                ParameterValue::Floating64(ttl as f64),
                ParameterValue::Uuid(caller.user_id.to_string()),
                ParameterValue::Uuid(Uuid::new_v4().to_string()),
                ParameterValue::Str(USERS_MANAGE.to_owned()),
            ],
        )
        .await?;
    let row = rows.first().ok_or(ApiError::NotFound("user"))?;
    if column::<bool>(row, "is_blocked")? {
        return Err(ApiError::Refused(
            "user_blocked",
            "a blocked user cannot be impersonated",
        ));
    }
    if column::<bool>(row, "manages_users")? {
        return Err(ApiError::Refused(
            "cannot_impersonate_admin",
            "users who may manage users cannot be impersonated",
        ));
    }
    if column::<i64>(row, "opened")? != 1 {
        return Err(ApiError::Internal(
            "impersonation session not opened".into(),
        ));
    }
    let email: String = column(row, "email")?;
    let (kid, private_key) = caller
        .db
        .signing_key(settings.key_encryption_key.as_ref())
        .await?;
    let grants = caller.db.grants(user).await?;
    let issued = grants.issued_at;
    let claims = AccessClaims {
        sub: user.to_string(),
        sid: session_id.to_string(),
        roles: grants.roles,
        permissions: grants.permissions,
        iat: issued,
        exp: issued + ttl,
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        act: Some(Actor {
            sub: caller.user_id.to_string(),
        }),
    };
    let token = sign(&claims, &kid, &private_key).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "user": {"id": user.to_string(), "email": email},
            "act": {"sub": caller.user_id.to_string()},
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list query takes `query`, `page_number` and `page_size`, refusing bad values
    /// by name, and ignores other parameters.
    #[test]
    fn list_query_parses_and_names_bad_values() {
        let query = ListQuery::parse("query=Ann&page_number=2&page_size=10&x=1").expect("valid");
        assert_eq!(
            (query.text.as_str(), query.page_number, query.page_size),
            ("Ann", 2, 10)
        );
        let defaults = ListQuery::parse("").expect("valid");
        assert_eq!((defaults.page_number, defaults.page_size), (1, 50));
        for (raw, field) in [
            ("page_size=0", "page_size"),
            ("page_size=201", "page_size"),
            ("page_number=0", "page_number"),
            ("page_number=x", "page_number"),
        ] {
            match ListQuery::parse(raw) {
                Err(error) => assert_eq!(error.field(), Some(field), "{raw}"),
                Ok(_) => panic!("{raw} accepted"),
            }
        }
    }
}
