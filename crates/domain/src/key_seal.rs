//! Private signing keys at rest: sealed with a key-encryption key (KEK) the operator
//! provides, so a copy of the database (a backup, a replica, a read-only role) does not
//! hold usable signing keys.
//!
//! A sealed key is [`SEALED_PREFIX`] + a 12-byte random nonce + the ChaCha20-Poly1305
//! ciphertext of the PKCS#8 key, with the key id as associated data (a sealed key moved
//! to another row does not open). Bytes without the prefix are a key stored before
//! sealing existed (or without a KEK configured) and are used as they are;
//! `cinema keys seal` seals them.
//!
//! The KEK is 32 bytes written as 64 hex digits: the auth component reads it from its
//! `signing_key_encryption_key` variable, `cinema keys` from
//! `CINEMA_SIGNING_KEY_ENCRYPTION_KEY` (or `--key-encryption-key-file`).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

/// What every sealed key starts with (format version 1).
pub const SEALED_PREFIX: &[u8; 5] = b"CKS1:";
const NONCE_BYTES: usize = 12;

/// The key-encryption key.
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

/// Why a key could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the key-encryption key must be 64 hex digits (32 bytes)")]
    BadKeyEncryptionKey,
    #[error("the signing key is sealed and no key-encryption key is configured")]
    KeyEncryptionKeyMissing,
    #[error(
        "the signing key does not open with this key-encryption key (wrong key, or the row was altered)"
    )]
    WrongKeyOrAltered,
    #[error("sealing failed")]
    Seal,
}

impl KeyEncryptionKey {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(hex: &str) -> Result<Self, SealError> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SealError::BadKeyEncryptionKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| SealError::BadKeyEncryptionKey)?;
        }
        Ok(Self(key))
    }

    /// A fresh random key, as 64 hex digits (`cinema keys new-kek`).
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&self.0).into())
    }
}

/// Whether `stored` is sealed (else it is a plain PKCS#8 key).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Seals the PKCS#8 `private_key` of `kid`.
pub fn seal(private_key: &[u8], kid: &str, kek: &KeyEncryptionKey) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let ciphertext = kek
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: private_key,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal)?;
    let mut sealed = Vec::with_capacity(SEALED_PREFIX.len() + NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(SEALED_PREFIX);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The PKCS#8 key of `kid` from what the database holds: opened when sealed (which
/// needs `kek`), as it is when not.
pub fn open(
    stored: &[u8],
    kid: &str,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Vec<u8>, SealError> {
    let Some(rest) = stored.strip_prefix(SEALED_PREFIX.as_slice()) else {
        return Ok(stored.to_vec());
    };
    let kek = kek.ok_or(SealError::KeyEncryptionKeyMissing)?;
    if rest.len() < NONCE_BYTES {
        return Err(SealError::WrongKeyOrAltered);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    kek.cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| SealError::WrongKeyOrAltered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_hex(&KeyEncryptionKey::generate_hex()).expect("hex")
    }

    /// A sealed key opens only with its KEK and its own key id, and holds no plaintext.
    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_kid() {
        let kek = kek();
        let plain = b"a pkcs8 private key".to_vec();
        let sealed = seal(&plain, "kid-1", &kek).expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(plain.len()).any(|w| w == plain.as_slice()));
        assert_eq!(open(&sealed, "kid-1", Some(&kek)), Ok(plain.clone()));
        assert_eq!(
            open(&sealed, "kid-2", Some(&kek)),
            Err(SealError::WrongKeyOrAltered)
        );
        assert_eq!(
            open(&sealed, "kid-1", Some(&self::kek())),
            Err(SealError::WrongKeyOrAltered)
        );
        assert_eq!(
            open(&sealed, "kid-1", None),
            Err(SealError::KeyEncryptionKeyMissing)
        );
        assert_eq!(
            open(&plain, "kid-1", None),
            Ok(plain),
            "unsealed keys pass through"
        );
    }

    /// Only 64 hex digits make a KEK, and it never prints.
    #[test]
    fn kek_parsing_is_strict_and_never_printed() {
        assert!(KeyEncryptionKey::from_hex("00").is_err());
        assert!(KeyEncryptionKey::from_hex(&"zz".repeat(32)).is_err());
        let kek = KeyEncryptionKey::from_hex(&format!(" {} ", "ab".repeat(32))).expect("ok");
        assert_eq!(format!("{kek:?}"), "KeyEncryptionKey(..)");
    }
}
