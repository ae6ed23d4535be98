//! Roles and permissions administration (admin only): list, create, edit and delete
//! roles; grant and revoke a user's roles. Role names are lower-case identifiers; the
//! built-in `admin` role can be edited but not deleted or renamed.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::pg::ParameterValue;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Reply, empty, json};
use crate::{Caller, parse};

/// Manages roles and their permissions.
pub const ROLES_MANAGE: &str = "roles:manage";
/// Grants and revokes users' roles.
pub const USERS_MANAGE: &str = "users:manage";
/// The role that can never be deleted or renamed.
const PROTECTED_ROLE: &str = "admin";

fn require(caller: &Caller, permission: &'static str) -> ApiResult<()> {
    if caller.claims.has_permission(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(permission))
    }
}

fn check_role_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    let mut chars = name.chars();
    let valid = (2..=32).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ApiError::invalid(
            "name",
            "must be 2-32 lower-case letters, digits, `_` or `-`, starting with a letter",
        ))
    }
}

fn check_description(description: &str) -> ApiResult<String> {
    if description.chars().count() > 500 {
        return Err(ApiError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(description.trim().to_owned())
}

fn permissions_param(permissions: &[String]) -> ParameterValue {
    ParameterValue::ArrayStr(permissions.iter().map(|p| Some(p.clone())).collect())
}

fn role_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("id", "must be a UUID"))
}

const ROLE_SELECT: &str = "SELECT r.id, r.name, r.description, \
        coalesce(array_agg(rp.permission ORDER BY rp.permission) FILTER (WHERE rp.permission IS NOT NULL), '{}') AS permissions \
    FROM auth.roles r LEFT JOIN auth.role_permissions rp ON rp.role_id = r.id";

async fn role_json(
    caller: &Caller,
    filter: &str,
    params: Vec<ParameterValue>,
) -> ApiResult<Vec<serde_json::Value>> {
    let statement = format!("{ROLE_SELECT} {filter} GROUP BY r.id ORDER BY r.name");
    let rows = caller.db.rows(&statement, params).await?;
    rows.iter()
        .map(|row| {
            let permissions: Vec<Option<String>> = row.get("permissions").unwrap_or_default();
            Ok(json!({
                "id": row.get::<Uuid>("id").ok_or_else(|| ApiError::Internal("role id".into()))?,
                "name": row.get::<String>("name").unwrap_or_default(),
                "description": row.get::<String>("description").unwrap_or_default(),
                "permissions": permissions.into_iter().flatten().collect::<Vec<_>>(),
            }))
        })
        .collect()
}

async fn one_role(caller: &Caller, id: Uuid) -> ApiResult<serde_json::Value> {
    role_json(
        caller,
        "WHERE r.id = $1",
        vec![ParameterValue::Uuid(id.to_string())],
    )
    .await?
    .into_iter()
    .next()
    .ok_or(ApiError::NotFound("role"))
}

pub async fn list(caller: Caller) -> ApiResult<Reply> {
    require(&caller, ROLES_MANAGE)?;
    let roles = role_json(&caller, "", vec![]).await?;
    Ok(json(StatusCode::OK, &json!({ "roles": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Writes a role's permission set: removes what is gone, adds what is new.
async fn set_permissions(caller: &Caller, id: Uuid, permissions: &[String]) -> ApiResult<()> {
    caller
        .db
        .execute(
            "WITH removed AS (DELETE FROM auth.role_permissions WHERE role_id = $1 AND permission <> ALL($2::text[])) \
             INSERT INTO auth.role_permissions (role_id, permission) \
             SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
            vec![ParameterValue::Uuid(id.to_string()), permissions_param(permissions)],
        )
        .await
        .map_err(|e| match e {
            ApiError::ForeignKeyViolation(_) => ApiError::invalid("permissions", "names a permission that does not exist"),
            other => other,
        })?;
    Ok(())
}

pub async fn create(caller: Caller, body: &[u8]) -> ApiResult<Reply> {
    require(&caller, ROLES_MANAGE)?;
    let input: NewRole = parse(body)?;
    let name = check_role_name(&input.name)?;
    let description = check_description(&input.description)?;
    let id = Uuid::new_v4();
    caller
        .db
        .execute(
            "INSERT INTO auth.roles (id, name, description) VALUES ($1, $2, $3)",
            vec![
                ParameterValue::Uuid(id.to_string()),
                ParameterValue::Str(name),
                ParameterValue::Str(description),
            ],
        )
        .await
        .map_err(|e| match e {
            ApiError::UniqueViolation(_) => {
                ApiError::Conflict("role_exists", "a role with this name exists".into())
            }
            other => other,
        })?;
    if let Err(error) = set_permissions(&caller, id, &input.permissions).await {
        // Keep the API atomic: a role is created with its permissions or not at all.
        let _ = caller
            .db
            .execute(
                "DELETE FROM auth.roles WHERE id = $1",
                vec![ParameterValue::Uuid(id.to_string())],
            )
            .await;
        return Err(error);
    }
    Ok(json(StatusCode::CREATED, &one_role(&caller, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleUpdate {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

pub async fn update(caller: Caller, raw_id: &str, body: &[u8]) -> ApiResult<Reply> {
    require(&caller, ROLES_MANAGE)?;
    let id = role_id(raw_id)?;
    let input: RoleUpdate = parse(body)?;
    let current = one_role(&caller, id).await?;
    let name = input.name.as_deref().map(check_role_name).transpose()?;
    if current["name"] == PROTECTED_ROLE && name.as_deref().is_some_and(|n| n != PROTECTED_ROLE) {
        return Err(ApiError::Conflict(
            "role_protected",
            "the admin role cannot be renamed".into(),
        ));
    }
    let description = input
        .description
        .as_deref()
        .map(check_description)
        .transpose()?;
    caller
        .db
        .execute(
            "UPDATE auth.roles SET name = coalesce($2, name), description = coalesce($3, description) WHERE id = $1",
            vec![
                ParameterValue::Uuid(id.to_string()),
                name.map_or(ParameterValue::DbNull, ParameterValue::Str),
                description.map_or(ParameterValue::DbNull, ParameterValue::Str),
            ],
        )
        .await
        .map_err(|e| match e {
            ApiError::UniqueViolation(_) => ApiError::Conflict("role_exists", "a role with this name exists".into()),
            other => other,
        })?;
    if let Some(permissions) = &input.permissions {
        set_permissions(&caller, id, permissions).await?;
    }
    Ok(json(StatusCode::OK, &one_role(&caller, id).await?))
}

pub async fn delete(caller: Caller, raw_id: &str) -> ApiResult<Reply> {
    require(&caller, ROLES_MANAGE)?;
    let id = role_id(raw_id)?;
    let current = one_role(&caller, id).await?;
    if current["name"] == PROTECTED_ROLE {
        return Err(ApiError::Conflict(
            "role_protected",
            "the admin role cannot be deleted".into(),
        ));
    }
    caller
        .db
        .execute(
            "DELETE FROM auth.roles WHERE id = $1",
            vec![ParameterValue::Uuid(id.to_string())],
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Grants (`grant = true`) or revokes a role of a user, by role name; idempotent.
pub async fn assign(caller: Caller, raw_user: &str, role: &str, grant: bool) -> ApiResult<Reply> {
    require(&caller, USERS_MANAGE)?;
    let user =
        Uuid::parse_str(raw_user).map_err(|_| ApiError::invalid("user_id", "must be a UUID"))?;
    let params = vec![
        ParameterValue::Uuid(user.to_string()),
        ParameterValue::Str(role.to_owned()),
    ];
    let found = caller
        .db
        .rows(
            "SELECT (SELECT id FROM auth.users WHERE id = $1) AS user_id, (SELECT id FROM auth.roles WHERE name = $2) AS role_id",
            params.clone(),
        )
        .await?;
    let row = found
        .first()
        .ok_or_else(|| ApiError::Internal("no row".into()))?;
    if row.get::<Uuid>("user_id").is_none() {
        return Err(ApiError::NotFound("user"));
    }
    if row.get::<Uuid>("role_id").is_none() {
        return Err(ApiError::NotFound("role"));
    }
    // The change and its audit entry (roles before and after) in one statement; a
    // grant already held or a revoke of a role not held changes and records nothing.
    let change = if grant {
        "changed AS ( \
             INSERT INTO auth.user_roles (user_id, role_id, granted_by) \
             SELECT $1, id, $3 FROM auth.roles WHERE name = $2 \
             ON CONFLICT DO NOTHING RETURNING role_id)"
    } else {
        "changed AS ( \
             DELETE FROM auth.user_roles \
             WHERE user_id = $1 AND role_id = (SELECT id FROM auth.roles WHERE name = $2) \
             RETURNING role_id)"
    };
    let statement = format!(
        "WITH held AS ( \
             SELECT r.name FROM auth.user_roles ur JOIN auth.roles r ON r.id = ur.role_id \
             WHERE ur.user_id = $1), \
         {change}, \
         audit AS ( \
             INSERT INTO admin.audit_log \
                 (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
             SELECT $4, $3, COALESCE((SELECT email FROM auth.users WHERE id = $3), ''), \
                    $5, 'user', $1, \
                    jsonb_build_object('roles', \
                        (SELECT COALESCE(jsonb_agg(name ORDER BY name), '[]') FROM held)), \
                    jsonb_build_object('roles', \
                        (SELECT COALESCE(jsonb_agg(name ORDER BY name), '[]') FROM ( \
                             SELECT name FROM held WHERE $6 OR name <> $2 \
                             UNION SELECT $2 WHERE $6) AS after)) \
             FROM changed RETURNING id) \
         SELECT count(*) AS audited FROM audit"
    );
    caller
        .db
        .rows(
            &statement,
            vec![
                params[0].clone(),
                params[1].clone(),
                ParameterValue::Uuid(caller.user_id.to_string()),
                ParameterValue::Uuid(Uuid::new_v4().to_string()),
                ParameterValue::Str(
                    if grant {
                        "user.role_grant"
                    } else {
                        "user.role_revoke"
                    }
                    .to_owned(),
                ),
                ParameterValue::Boolean(grant),
            ],
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
