//! Roles and permissions administration (admin only): list, create, edit and delete
//! roles; grant and revoke a user's roles. Role names are lower-case identifiers; the
//! built-in `admin` role can be edited but not deleted or renamed.
//!
//! Every change writes its `admin.audit_log` entry (`role.create`, `role.update`,
//! `role.delete` with the role before and after, `user.role_grant`/`user.role_revoke`)
//! in the same statement as the change. `users:manage` grants ordinary roles; a role
//! that itself carries `users:manage` or `roles:manage` (such as `admin`) is granted
//! and revoked only by a holder of `roles:manage`. Impersonation tokens manage nothing.

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
    caller.refuse_while_impersonating()?;
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

/// The role as the audit log shows it, from a CTE or table aliased `r` with columns
/// `name`, `description` and `permissions` (an array).
const AUDIT_ROLE_JSON: &str = "jsonb_build_object('name', r.name, 'description', r.description, 'permissions', to_jsonb(r.permissions))";

/// The audit entry of a role change by the caller, as a CTE named `audit` over the CTEs
/// `before_role` and `after_role` (either may be empty: create, delete).
fn role_audit(action_param: &str, entity: &str) -> String {
    format!(
        "audit AS ( \
             INSERT INTO admin.audit_log \
                 (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
             SELECT gen_random_uuid(), $actor, COALESCE((SELECT email FROM auth.users WHERE id = $actor), ''), \
                    {action_param}, 'role', {entity}, \
                    (SELECT {AUDIT_ROLE_JSON} FROM before_role r), \
                    (SELECT {AUDIT_ROLE_JSON} FROM after_role r) \
             RETURNING id)"
    )
}

/// Names a permission that does not exist: 422 on `permissions`; a taken name: 409.
fn role_write_error(error: ApiError) -> ApiError {
    match error {
        ApiError::ForeignKeyViolation(_) => {
            ApiError::invalid("permissions", "names a permission that does not exist")
        }
        ApiError::UniqueViolation(_) => {
            ApiError::Conflict("role_exists", "a role with this name exists".into())
        }
        other => other,
    }
}

/// Runs a role statement whose `$actor` placeholder is the caller (appended last).
async fn run_audited(
    caller: &Caller,
    statement: &str,
    mut params: Vec<ParameterValue>,
) -> ApiResult<()> {
    params.push(ParameterValue::Uuid(caller.user_id.to_string()));
    let actor = format!("${}", params.len());
    caller
        .db
        .rows(&statement.replace("$actor", &actor), params)
        .await
        .map_err(role_write_error)?;
    Ok(())
}

/// `POST /roles`: the role, its permissions and its audit entry in one statement.
pub async fn create(caller: Caller, body: &[u8]) -> ApiResult<Reply> {
    require(&caller, ROLES_MANAGE)?;
    let input: NewRole = parse(body)?;
    let name = check_role_name(&input.name)?;
    let description = check_description(&input.description)?;
    let id = Uuid::new_v4();
    let statement = format!(
        "WITH created AS ( \
             INSERT INTO auth.roles (id, name, description) VALUES ($1, $2, $3) RETURNING id), \
         granted AS ( \
             INSERT INTO auth.role_permissions (role_id, permission) \
             SELECT created.id, p FROM created, unnest($4::text[]) AS p ON CONFLICT DO NOTHING), \
         before_role AS (SELECT NULL::text AS name, NULL::text AS description, NULL::text[] AS permissions WHERE false), \
         after_role AS ( \
             SELECT $2::text AS name, $3::text AS description, \
                    ARRAY(SELECT DISTINCT unnest($4::text[]) ORDER BY 1) AS permissions FROM created), \
         {} \
         SELECT count(*) AS audited FROM audit",
        role_audit("'role.create'", "$1")
    );
    run_audited(
        &caller,
        &statement,
        vec![
            ParameterValue::Uuid(id.to_string()),
            ParameterValue::Str(name),
            ParameterValue::Str(description),
            permissions_param(&input.permissions),
        ],
    )
    .await?;
    Ok(json(StatusCode::CREATED, &one_role(&caller, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleUpdate {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

/// The role's current row as the CTE `before_role` (locked against a concurrent edit).
const BEFORE_ROLE: &str = "before_role AS ( \
    SELECT r.name, r.description, \
           ARRAY(SELECT permission FROM auth.role_permissions WHERE role_id = r.id ORDER BY 1) AS permissions \
    FROM auth.roles r WHERE r.id = $1)";

/// `PATCH /roles/{id}`: name, description and permission set, audited, in one statement.
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
    let statement = format!(
        "WITH {BEFORE_ROLE}, \
         updated AS ( \
             UPDATE auth.roles SET name = coalesce($2, name), description = coalesce($3, description) \
             WHERE id = $1 RETURNING id, name, description), \
         removed AS ( \
             DELETE FROM auth.role_permissions \
             WHERE role_id = $1 AND $4::text[] IS NOT NULL AND permission <> ALL($4::text[])), \
         added AS ( \
             INSERT INTO auth.role_permissions (role_id, permission) \
             SELECT $1, p FROM unnest($4::text[]) AS p ON CONFLICT DO NOTHING), \
         after_role AS ( \
             SELECT u.name, u.description, \
                    CASE WHEN $4::text[] IS NULL THEN b.permissions \
                         ELSE ARRAY(SELECT DISTINCT unnest($4::text[]) ORDER BY 1) END AS permissions \
             FROM updated u, before_role b), \
         {} \
         SELECT count(*) AS audited FROM audit",
        role_audit("'role.update'", "$1")
    );
    run_audited(
        &caller,
        &statement,
        vec![
            ParameterValue::Uuid(id.to_string()),
            name.map_or(ParameterValue::DbNull, ParameterValue::Str),
            description.map_or(ParameterValue::DbNull, ParameterValue::Str),
            input
                .permissions
                .as_deref()
                .map_or(ParameterValue::DbNull, permissions_param),
        ],
    )
    .await?;
    Ok(json(StatusCode::OK, &one_role(&caller, id).await?))
}

/// `DELETE /roles/{id}`: the role goes with an audit entry holding what it was.
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
    let statement = format!(
        "WITH {BEFORE_ROLE}, \
         deleted AS (DELETE FROM auth.roles WHERE id = $1 RETURNING id), \
         after_role AS (SELECT NULL::text AS name, NULL::text AS description, NULL::text[] AS permissions WHERE false), \
         {} \
         SELECT count(*) AS audited FROM audit, deleted",
        role_audit("'role.delete'", "$1")
    );
    run_audited(
        &caller,
        &statement,
        vec![ParameterValue::Uuid(id.to_string())],
    )
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Permissions that make a role privileged: who holds them can hand out roles.
const PRIVILEGED_PERMISSIONS: [&str; 2] = [USERS_MANAGE, ROLES_MANAGE];

/// Grants (`grant = true`) or revokes a role of a user, by role name; idempotent.
pub async fn assign(caller: Caller, raw_user: &str, role: &str, grant: bool) -> ApiResult<Reply> {
    require(&caller, USERS_MANAGE)?;
    let user =
        Uuid::parse_str(raw_user).map_err(|_| ApiError::invalid("user_id", "must be a UUID"))?;
    let params = [
        ParameterValue::Uuid(user.to_string()),
        ParameterValue::Str(role.to_owned()),
    ];
    let found = caller
        .db
        .rows(
            "SELECT (SELECT id FROM auth.users WHERE id = $1) AS user_id, \
                    (SELECT id FROM auth.roles WHERE name = $2) AS role_id, \
                    EXISTS (SELECT 1 FROM auth.roles r JOIN auth.role_permissions rp ON rp.role_id = r.id \
                            WHERE r.name = $2 AND rp.permission = ANY($3::text[])) AS privileged",
            vec![
                params[0].clone(),
                params[1].clone(),
                permissions_param(&PRIVILEGED_PERMISSIONS.map(str::to_owned)),
            ],
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
    // Handing out (or taking away) the power to hand out roles is for those who
    // manage roles themselves (admins), not for every `users:manage` holder.
    if row.get::<bool>("privileged").unwrap_or(true) && !caller.claims.has_permission(ROLES_MANAGE)
    {
        return Err(ApiError::Refused(
            "privileged_role",
            "granting or revoking a role with users:manage or roles:manage needs roles:manage",
        ));
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
