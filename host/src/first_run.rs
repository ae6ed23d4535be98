//! The first run and the production guard of `cinema up`.
//!
//! `--first-run` (what `make up` passes) makes what an empty platform lacks before
//! anyone can use it, and nothing else, so starting again changes nothing:
//! - a token signing key when none signs or is about to (sealed when a key-encryption
//!   key is given, as `cinema keys rotate` does);
//! - a demo catalogue when `content.film` is empty (`cinema seed`, a few thousand
//!   films; the ETL's first catch-up indexes it);
//! - a first admin when no account holds `admin`, with a generated password that is
//!   printed once, on stdout, and never logged.
//!
//! `--production` refuses `--first-run` and refuses to start while the platform
//! database answers that no signing key exists: keys there are an operator's act
//! (`cinema keys rotate` with a key-encryption key). When the database does not answer
//! at all the host starts anyway (with a warning) and serves what does not need it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use cinema_domain::key_seal::KeyEncryptionKey;

use crate::auth_ops::{ADMIN_ROLE, AdminOutcome, AuthOpsError, create_admin, rotate_keys};
use crate::seed::{SeedError, SeedReport, seed};

/// What `--first-run` may make.
#[derive(Debug, Clone)]
pub struct FirstRunSettings {
    /// Films of the demo catalogue seeded into an empty `content`.
    pub demo_films: usize,
    /// Email of the first admin.
    pub admin_email: String,
    /// Lifetime of access tokens (the first key's retirement schedule needs it).
    pub token_ttl: Duration,
}

/// The first admin, as made (or found) by the first run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstAdmin {
    /// A new account with this generated password.
    Created { email: String, password: String },
    /// An account with that email existed: it was granted `admin`, its password kept.
    Promoted { email: String },
}

/// What the first run made; `None` where nothing was missing.
#[derive(Debug, Clone, Default)]
pub struct FirstRunReport {
    pub signing_key: Option<String>,
    pub demo_catalogue: Option<SeedReport>,
    pub admin: Option<FirstAdmin>,
}

impl FirstRunReport {
    pub fn made_anything(&self) -> bool {
        self.signing_key.is_some() || self.demo_catalogue.is_some() || self.admin.is_some()
    }
}

/// Why the first run or the production guard stopped the start.
#[derive(Debug, thiserror::Error)]
pub enum FirstRunError {
    #[error(
        "postgres is unreachable: {0} (is it running? `scripts/services.sh up`; migrated? `cinema migrate`)"
    )]
    Connect(String),
    #[error("{context}: {message} (has `cinema migrate` run?)")]
    Query {
        context: &'static str,
        message: String,
    },
    #[error("first run: {0}")]
    Keys(#[from] AuthOpsError),
    #[error("first run: demo catalogue: {0}")]
    Seed(#[from] SeedError),
    #[error(
        "--production: no signing key in the platform database; make one with \
         `cinema keys rotate` (with CINEMA_SIGNING_KEY_ENCRYPTION_KEY, so it is sealed at rest), then start again"
    )]
    NoSigningKey,
    #[error(
        "--first-run makes a development key, demo content and an admin; it cannot be combined with --production"
    )]
    FirstRunInProduction,
}

fn query_error(context: &'static str) -> impl Fn(tokio_postgres::Error) -> FirstRunError {
    move |e| FirstRunError::Query {
        context,
        message: cinema_postgres::describe(&e),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, FirstRunError> {
    let (client, connection) = cinema_postgres::connect(url)
        .await
        .map_err(|e| FirstRunError::Connect(cinema_postgres::describe(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Whether a key signs now or will (one `cinema keys rotate` made and not retired).
async fn has_signing_key(client: &tokio_postgres::Client) -> Result<bool, FirstRunError> {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM auth.signing_keys \
             WHERE retired_at IS NULL OR retired_at > now())",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .map_err(query_error("read signing keys"))
}

/// Makes what `auth_url`'s and `content_url`'s databases lack (see the module docs).
pub async fn prepare(
    auth_url: &str,
    content_url: &str,
    settings: &FirstRunSettings,
    kek: Option<&KeyEncryptionKey>,
) -> Result<FirstRunReport, FirstRunError> {
    let mut report = FirstRunReport::default();
    let auth = connect(auth_url).await?;
    if !has_signing_key(&auth).await? {
        // No key signs yet, so the new one signs at once.
        let rotation = rotate_keys(auth_url, Duration::ZERO, settings.token_ttl, kek).await?;
        report.signing_key = Some(rotation.new_kid);
    }
    let has_admin: bool = auth
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM auth.user_roles ur \
             JOIN auth.roles r ON r.id = ur.role_id WHERE r.name = $1)",
            &[&ADMIN_ROLE],
        )
        .await
        .map(|row| row.get(0))
        .map_err(query_error("look for an admin"))?;
    if !has_admin {
        let password = generate_password();
        report.admin = Some(
            match create_admin(auth_url, &settings.admin_email, &password).await? {
                AdminOutcome::Created { .. } => FirstAdmin::Created {
                    email: settings.admin_email.clone(),
                    password,
                },
                AdminOutcome::Promoted { .. } => FirstAdmin::Promoted {
                    email: settings.admin_email.clone(),
                },
            },
        );
    }
    drop(auth);
    let content = connect(content_url).await?;
    let content_is_empty: bool = content
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM content.film)", &[])
        .await
        .map(|row| row.get(0))
        .map_err(query_error("look at the catalogue"))?;
    drop(content);
    if content_is_empty && settings.demo_films > 0 {
        report.demo_catalogue = Some(seed(content_url, settings.demo_films).await?);
        eprintln!();
    }
    Ok(report)
}

/// The production guard: `Err(NoSigningKey)` when the database says no key signs;
/// `Ok` when one does, or when it cannot be asked (logged: the host starts, and auth
/// answers 503 until it can).
pub async fn require_signing_key(auth_url: &str) -> Result<(), FirstRunError> {
    let client = match connect(auth_url).await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "--production: cannot check the signing keys now; starting anyway");
            return Ok(());
        }
    };
    if has_signing_key(&client).await? {
        Ok(())
    } else {
        Err(FirstRunError::NoSigningKey)
    }
}

/// Letters and digits without look-alikes (no 0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A password of four groups of five, about 115 bits from the OS's random source; the
/// dashes make it pass the platform's rule (letters mixed with other characters).
pub fn generate_password() -> String {
    let mut password = String::with_capacity(23);
    let mut chosen = 0;
    // Unbiased: bytes at or past the largest multiple of the alphabet's size are drawn again.
    let limit = (256 / PASSWORD_ALPHABET.len() * PASSWORD_ALPHABET.len()) as u8;
    while chosen < 20 {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        for byte in bytes.into_iter().filter(|b| *b < limit) {
            if chosen == 20 {
                break;
            }
            if chosen > 0 && chosen % 5 == 0 {
                password.push('-');
            }
            password.push(char::from(
                PASSWORD_ALPHABET[usize::from(byte) % PASSWORD_ALPHABET.len()],
            ));
            chosen += 1;
        }
    }
    password
}

/// The lines printed once the platform serves: what the first run made and where to
/// go next (URLs, the admin's sign-in, a search with curl that works as printed).
pub fn next_steps(report: &FirstRunReport, public: SocketAddr, internal: SocketAddr) -> String {
    let base = format!("http://{public}");
    let mut text = String::new();
    if report.made_anything() {
        let _ = writeln!(text, "cinema: first run");
    } else {
        let _ = writeln!(
            text,
            "cinema: first run: nothing to make (a signing key, content and an admin exist)"
        );
    }
    if let Some(kid) = &report.signing_key {
        let _ = writeln!(text, "  made signing key {kid}");
    }
    if let Some(seeded) = &report.demo_catalogue {
        let _ = writeln!(
            text,
            "  seeded a demo catalogue: {} films, {} persons, {} genres",
            seeded.films, seeded.persons, seeded.genres
        );
    }
    let (email, password) = match &report.admin {
        Some(FirstAdmin::Created { email, password }) => {
            let _ = writeln!(
                text,
                "  created admin {email} with password {password}\n  \
                 (shown this once: keep it, or change it in the console)"
            );
            (email.as_str(), password.as_str())
        }
        Some(FirstAdmin::Promoted { email }) => {
            let _ = writeln!(
                text,
                "  granted admin to the existing account {email} (password unchanged)"
            );
            (email.as_str(), "PASSWORD")
        }
        None => ("ADMIN_EMAIL", "PASSWORD"),
    };
    let _ = writeln!(text, "next:");
    let _ = writeln!(text, "  admin console  {base}/admin");
    let _ = writeln!(text, "  API docs       {base}/api/docs");
    let _ = writeln!(
        text,
        "  health         http://{internal}/health   metrics http://{internal}/metrics"
    );
    let _ = writeln!(text, "  sign in and search:");
    let _ = writeln!(
        text,
        "    TOKEN=$(curl -s -X POST {base}/api/v1/auth/login -H 'content-type: application/json' \\\n      \
         -d '{{\"email\":\"{email}\",\"password\":\"{password}\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
    );
    let _ = writeln!(
        text,
        "    curl -H \"authorization: Bearer $TOKEN\" '{base}/api/v1/films/search?query=star&page_size=3'"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated passwords satisfy the platform's password rule and differ each time.
    #[test]
    fn generated_passwords_pass_the_password_rule_and_are_fresh() {
        let first = generate_password();
        assert_eq!(first.len(), 23, "{first}");
        assert_eq!(first.matches('-').count(), 3, "{first}");
        cinema_domain::account::validate_password(&first).expect("passes the rule");
        assert!(
            first
                .bytes()
                .all(|b| b == b'-' || PASSWORD_ALPHABET.contains(&b))
        );
        assert_ne!(first, generate_password());
    }

    /// Without an admin made, the next steps still give a command to adapt, and never a
    /// password that was not generated in this run.
    #[test]
    fn next_steps_print_the_password_only_when_one_was_made() {
        let public: SocketAddr = "127.0.0.1:3000".parse().expect("address");
        let internal: SocketAddr = "127.0.0.1:3001".parse().expect("address");
        let made = FirstRunReport {
            admin: Some(FirstAdmin::Created {
                email: "admin@cinema.local".into(),
                password: "abcde-23456-fghij-789kl".into(),
            }),
            ..FirstRunReport::default()
        };
        let text = next_steps(&made, public, internal);
        assert!(text.contains("abcde-23456-fghij-789kl"), "{text}");
        assert!(text.contains("http://127.0.0.1:3000/admin"), "{text}");
        let again = next_steps(&FirstRunReport::default(), public, internal);
        assert!(!again.contains("abcde"), "{again}");
        assert!(again.contains("\"password\":\"PASSWORD\""), "{again}");
    }
}
