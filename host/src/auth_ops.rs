//! Auth operations on the host CLI: `cinema keys rotate|list|jwks` and
//! `cinema users create-admin`.
//!
//! Key rotation never strands a token: the new key is published (in the JWKS) at once
//! but signs only after `activate_after` (time for verifiers' JWKS caches to refresh);
//! the old key signs until then and stays published until `token_ttl` later, when the
//! last token it signed has expired. With no key yet, the first one signs at once.
//!
//! Private keys are sealed at rest ([`cinema_domain::key_seal`]) when a key-encryption
//! key is given: `rotate` seals the new key, `seal` seals keys stored in clear, and
//! `reencrypt` moves every key to a new key-encryption key in one transaction.

use std::time::Duration;

use cinema_domain::account::{normalize_email, validate_password};
use cinema_domain::key_seal::{self, KeyEncryptionKey};
use cinema_domain::token::{Jwk, Jwks, generate_ed25519_key};

/// Role granted by `create-admin`.
pub const ADMIN_ROLE: &str = "admin";

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthOpsError {
    #[error(
        "postgres is unreachable: {0} (is it running? `scripts/services.sh up`; migrated? `cinema migrate`)"
    )]
    Connect(String),
    #[error("{context}: {message}")]
    Query {
        context: &'static str,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn query_error(context: &'static str) -> impl Fn(tokio_postgres::Error) -> AuthOpsError {
    move |e| AuthOpsError::Query {
        context,
        message: match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        },
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, AuthOpsError> {
    let (client, connection) = cinema_postgres::connect(url)
        .await
        .map_err(|e| AuthOpsError::Connect(e.to_string()))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Seals every private key stored in clear with `kek`; answers how many.
pub async fn seal_keys(url: &str, kek: &KeyEncryptionKey) -> Result<usize, AuthOpsError> {
    reseal(url, None, kek).await
}

/// Opens every private key with `old` (keys in clear need none) and seals it with
/// `new`, in one transaction; answers how many keys it rewrote.
pub async fn reencrypt_keys(
    url: &str,
    old: &KeyEncryptionKey,
    new: &KeyEncryptionKey,
) -> Result<usize, AuthOpsError> {
    reseal(url, Some(old), new).await
}

async fn reseal(
    url: &str,
    old: Option<&KeyEncryptionKey>,
    new: &KeyEncryptionKey,
) -> Result<usize, AuthOpsError> {
    let mut client = connect(url).await?;
    let transaction = client.transaction().await.map_err(query_error("begin"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock(7361627)", &[])
        .await
        .map_err(query_error("lock signing keys"))?;
    let rows = transaction
        .query(
            "SELECT kid, private_key FROM auth.signing_keys FOR UPDATE",
            &[],
        )
        .await
        .map_err(query_error("read signing keys"))?;
    let mut rewritten = 0;
    for row in rows {
        let kid: String = row.get(0);
        let stored: Vec<u8> = row.get(1);
        if old.is_none() && key_seal::is_sealed(&stored) {
            continue;
        }
        let plain = key_seal::open(&stored, &kid, old)
            .map_err(|e| AuthOpsError::Invalid(format!("key {kid}: {e}")))?;
        let sealed = key_seal::seal(&plain, &kid, new)
            .map_err(|e| AuthOpsError::Invalid(format!("key {kid}: {e}")))?;
        transaction
            .execute(
                "UPDATE auth.signing_keys SET private_key = $2 WHERE kid = $1",
                &[&kid, &sealed],
            )
            .await
            .map_err(query_error("write a sealed key"))?;
        rewritten += 1;
    }
    transaction.commit().await.map_err(query_error("commit"))?;
    Ok(rewritten)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub new_kid: String,
    pub activates_in: Duration,
    pub retiring: Vec<String>,
}

/// Adds a signing key and schedules the retirement of the current one(s).
pub async fn rotate_keys(
    url: &str,
    activate_after: Duration,
    token_ttl: Duration,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Rotation, AuthOpsError> {
    let mut client = connect(url).await?;
    let (private_key, public_key) =
        generate_ed25519_key().map_err(|e| AuthOpsError::Invalid(e.to_string()))?;
    let new_kid = format!("ed25519-{}", uuid::Uuid::new_v4().simple());
    let private_key = match kek {
        Some(kek) => key_seal::seal(&private_key, &new_kid, kek)
            .map_err(|e| AuthOpsError::Invalid(e.to_string()))?,
        None => private_key,
    };
    let transaction = client.transaction().await.map_err(query_error("begin"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock(7361627)", &[])
        .await
        .map_err(query_error("lock signing keys"))?;
    let current: Vec<String> = transaction
        .query(
            "SELECT kid FROM auth.signing_keys WHERE retired_at IS NULL",
            &[],
        )
        .await
        .map_err(query_error("read signing keys"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let activates_in = if current.is_empty() {
        Duration::ZERO
    } else {
        activate_after
    };
    let activate_seconds = activates_in.as_secs_f64();
    let ttl_seconds =
        token_ttl.as_secs_f64() + cinema_domain::token::CLOCK_SKEW_LEEWAY_SECONDS as f64;
    transaction
        .execute(
            "INSERT INTO auth.signing_keys (kid, public_key, private_key, activated_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[
                &new_kid,
                &public_key.as_slice(),
                &private_key,
                &activate_seconds,
            ],
        )
        .await
        .map_err(query_error("insert signing key"))?;
    transaction
        .execute(
            "UPDATE auth.signing_keys \
             SET retired_at = now() + make_interval(secs => $2), \
                 expires_at = now() + make_interval(secs => $2 + $3) \
             WHERE retired_at IS NULL AND kid <> $1",
            &[&new_kid, &activate_seconds, &ttl_seconds],
        )
        .await
        .map_err(query_error("retire signing keys"))?;
    // Keys no token can use any more are dropped after a day of grace.
    transaction
        .execute(
            "DELETE FROM auth.signing_keys WHERE expires_at < now() - interval '1 day'",
            &[],
        )
        .await
        .map_err(query_error("prune signing keys"))?;
    transaction.commit().await.map_err(query_error("commit"))?;
    Ok(Rotation {
        new_kid,
        activates_in,
        retiring: current,
    })
}

/// One row of `cinema keys list`.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    pub status: &'static str,
    pub activated_at: String,
    pub retired_at: Option<String>,
    pub expires_at: Option<String>,
}

/// Every signing key with its state now.
pub async fn list_keys(url: &str) -> Result<Vec<KeyStatus>, AuthOpsError> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT kid, \
                    CASE WHEN activated_at > now() THEN 'pending' \
                         WHEN retired_at IS NULL OR retired_at > now() THEN 'signing' \
                         WHEN expires_at > now() THEN 'published' \
                         ELSE 'expired' END, \
                    activated_at::text, retired_at::text, expires_at::text \
             FROM auth.signing_keys ORDER BY activated_at",
            &[],
        )
        .await
        .map_err(query_error("read signing keys"))?;
    Ok(rows
        .iter()
        .map(|row| KeyStatus {
            kid: row.get(0),
            status: match row.get::<_, &str>(1) {
                "pending" => "pending",
                "signing" => "signing",
                "published" => "published",
                _ => "expired",
            },
            activated_at: row.get(2),
            retired_at: row.get(3),
            expires_at: row.get(4),
        })
        .collect())
}

/// The JWKS: every key that can still verify a live token (pending ones included, so
/// caches know them before they sign).
pub async fn jwks(url: &str) -> Result<Jwks, AuthOpsError> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT kid, public_key FROM auth.signing_keys \
             WHERE expires_at IS NULL OR expires_at > now() ORDER BY activated_at",
            &[],
        )
        .await
        .map_err(query_error("read signing keys"))?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let kid: String = row.get(0);
        let public: Vec<u8> = row.get(1);
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| AuthOpsError::Invalid(format!("public key of {kid} is not 32 bytes")))?;
        keys.push(Jwk::ed25519(kid, &public));
    }
    Ok(Jwks { keys })
}

/// What `create-admin` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    Created { user_id: uuid::Uuid },
    Promoted { user_id: uuid::Uuid },
}

/// Creates a user with the `admin` role, or grants the role to an existing user (whose
/// password is then left as it is).
pub async fn create_admin(
    url: &str,
    email: &str,
    password: &str,
) -> Result<AdminOutcome, AuthOpsError> {
    let email = normalize_email(email).map_err(|e| AuthOpsError::Invalid(e.to_string()))?;
    let mut client = connect(url).await?;
    let transaction = client.transaction().await.map_err(query_error("begin"))?;
    let existing = transaction
        .query_opt(
            "SELECT id FROM auth.users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await
        .map_err(query_error("look up user"))?;
    let outcome = match existing {
        Some(row) => AdminOutcome::Promoted {
            user_id: row.get(0),
        },
        None => {
            validate_password(password).map_err(|e| AuthOpsError::Invalid(e.to_string()))?;
            let hash = cinema_domain::password::hash_password(password)
                .map_err(|e| AuthOpsError::Invalid(e.to_string()))?;
            let user_id = uuid::Uuid::new_v4();
            transaction
                .execute(
                    "INSERT INTO auth.users (id, email, password_hash, email_confirmed) VALUES ($1, $2, $3, true)",
                    &[&user_id, &email, &hash],
                )
                .await
                .map_err(query_error("insert user"))?;
            AdminOutcome::Created { user_id }
        }
    };
    let user_id = match &outcome {
        AdminOutcome::Created { user_id } | AdminOutcome::Promoted { user_id } => *user_id,
    };
    let granted = transaction
        .execute(
            "INSERT INTO auth.user_roles (user_id, role_id) \
             SELECT $1, id FROM auth.roles WHERE name = $2 ON CONFLICT DO NOTHING",
            &[&user_id, &ADMIN_ROLE],
        )
        .await
        .map_err(query_error("grant admin role"))?;
    let role_exists = transaction
        .query_opt("SELECT 1 FROM auth.roles WHERE name = $1", &[&ADMIN_ROLE])
        .await
        .map_err(query_error("look up admin role"))?
        .is_some();
    if !role_exists {
        return Err(AuthOpsError::Invalid(
            "role `admin` is missing: run `cinema migrate`".into(),
        ));
    }
    let _ = granted;
    transaction.commit().await.map_err(query_error("commit"))?;
    Ok(outcome)
}
