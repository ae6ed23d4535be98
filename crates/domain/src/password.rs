//! Password hashing: argon2id with OWASP's recommended minimum (19 MiB memory, two
//! passes, one lane), stored as PHC strings so parameters can be raised later while old
//! hashes still verify.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (OWASP: at least 19 MiB for argon2id with t=2, p=1).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("stored password hash is not a valid PHC string")]
    CorruptHash,
    #[error("failed to hash password: {0}")]
    Hashing(String),
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's accepted ranges.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches the stored PHC hash (parameters come from the hash).
pub fn verify_password(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::CorruptHash)?;
    Ok(hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash verifies its password only, and records argon2id with OWASP's parameters.
    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse battery staple").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_password("correct horse battery staple", &hash),
            Ok(true)
        );
        assert_eq!(verify_password("wrong", &hash), Ok(false));
        assert_ne!(
            hash,
            hash_password("correct horse battery staple").expect("hash"),
            "salted"
        );
    }

    /// A corrupt stored hash is an error, not a silent mismatch.
    #[test]
    fn corrupt_hash_is_an_error() {
        assert_eq!(
            verify_password("x", "not-a-hash"),
            Err(PasswordError::CorruptHash)
        );
    }
}
