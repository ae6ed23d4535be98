//! Access tokens: the claims every service reads, the JWKS that publishes verification
//! keys, and the verifier components use to check tokens themselves (no call to auth).
//!
//! Tokens are JWTs signed with EdDSA (Ed25519) and carry a `kid` header. Verification
//! accepts only EdDSA (never `none`, never HMAC with a public key as secret), requires a
//! known `kid`, a valid signature, the configured issuer and audience, and a time window
//! (`iat`/`exp`, with a small leeway for clock skew) checked against a caller-given
//! `now`, so callers control the clock and tests are deterministic.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Accepted clock skew between issuer and verifier, in seconds.
pub const CLOCK_SKEW_LEEWAY_SECONDS: i64 = 30;

/// Who is acting on someone else's behalf (impersonation by an admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// User id of the admin.
    pub sub: String,
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session id (the refresh-token family this token came from).
    pub sid: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// Present while an admin impersonates the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

impl AccessClaims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// Why a token was refused (or could not be made). Every variant maps to a 401 at the
/// edge, except [`TokenError::Signing`] and [`TokenError::InvalidKey`] (server faults).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not EdDSA")]
    WrongAlgorithm,
    #[error("token has no key id")]
    MissingKeyId,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued by someone else")]
    WrongIssuer,
    #[error("token is meant for another audience")]
    WrongAudience,
    #[error("signing key is not usable: {0}")]
    InvalidKey(String),
    #[error("failed to sign token: {0}")]
    Signing(String),
}

impl TokenError {
    /// The stable error code for HTTP responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::InvalidKey(_) | Self::Signing(_) => "token_signing_failed",
            _ => "invalid_token",
        }
    }
}

/// One public key in a JWKS (RFC 8037 `OKP` / `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// Public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(kid: impl Into<String>, public_key: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.into(),
            alg: Some("EdDSA".to_owned()),
            key_use: Some("sig".to_owned()),
        }
    }
}

/// A JSON Web Key Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Checks access tokens against a JWKS.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier for the Ed25519 keys of `jwks`; other key types are ignored.
    pub fn new(jwks: &Jwks, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| {
                DecodingKey::from_ed_components(&k.x)
                    .ok()
                    .map(|key| (k.kid.clone(), key))
            })
            .collect();
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// Whether a key id is known (callers refresh their JWKS when it is not).
    pub fn knows_key(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Verifies `token` at time `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        self.verify_keyed(token, now).map(|(claims, _kid)| claims)
    }

    /// Verifies `token` at time `now` and also answers the id of the key that signed it
    /// (callers that remember verified tokens check later that the key is still
    /// published).
    pub fn verify_keyed(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessClaims, String), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        // Lifetime first, from the claims as sent: an expired token is refused for
        // what it says without paying for the signature (it would be refused anyway).
        check_lifetime(&unverified_claims(token)?, now)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time and audience are checked below against the caller's clock and settings.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        check_lifetime(&claims, now)?;
        Ok((claims, kid))
    }
}

/// The claims of `token` as sent, signature not checked: only for refusing early.
fn unverified_claims(token: &str) -> Result<AccessClaims, TokenError> {
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

/// The `kid` of a token's header, if the header decodes and names one.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Whether claims already verified are within their lifetime at `now` (with the clock
/// skew leeway): [`TokenError::Expired`] or [`TokenError::NotYetValid`] otherwise.
pub fn check_lifetime(claims: &AccessClaims, now: i64) -> Result<(), TokenError> {
    if now >= claims.exp + CLOCK_SKEW_LEEWAY_SECONDS {
        return Err(TokenError::Expired);
    }
    if claims.iat > now + CLOCK_SKEW_LEEWAY_SECONDS {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Signs claims with an Ed25519 private key (PKCS#8 DER) under key id `kid`.
pub fn sign(
    claims: &AccessClaims,
    kid: &str,
    private_key_pkcs8_der: &[u8],
) -> Result<String, TokenError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    // Parse first: jsonwebtoken would only fail at signing time with a vague error.
    ed25519_dalek::SigningKey::from_pkcs8_der(private_key_pkcs8_der)
        .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(private_key_pkcs8_der),
    )
    .map_err(|e| TokenError::Signing(e.to_string()))
}

/// A fresh Ed25519 key pair: (PKCS#8 DER private key, raw 32-byte public key).
pub fn generate_ed25519_key() -> Result<(Vec<u8>, [u8; 32]), TokenError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
    Ok((der.as_bytes().to_vec(), key.verifying_key().to_bytes()))
}

/// Tokens whose signature, issuer and audience checked out, remembered by the SHA-256
/// of the whole token with their claims and signing key id, so a token seen again costs
/// a hash and a lookup instead of an Ed25519 verification (clients send the same token
/// for minutes). A remembered token is still refused once expired, and once its key
/// leaves the verifier's key set (a retired key's tokens stop with it). At most
/// `capacity` tokens: when full, expired ones go, and if none has, all of them.
#[derive(Debug)]
pub struct VerifiedTokens {
    capacity: usize,
    entries: HashMap<[u8; 32], (AccessClaims, String)>,
}

/// A token's key in [`VerifiedTokens`].
pub type TokenDigest = [u8; 32];

impl VerifiedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// The digest `token` is remembered by.
    pub fn digest(token: &str) -> TokenDigest {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of a token remembered as verified, checked again for lifetime at
    /// `now`; `None` when it is not remembered or its key is no longer in `keys`.
    pub fn recall(
        &mut self,
        digest: &TokenDigest,
        keys: &TokenVerifier,
        now: i64,
    ) -> Option<Result<AccessClaims, TokenError>> {
        let (claims, kid) = self.entries.get(digest)?;
        if !keys.knows_key(kid) {
            self.entries.remove(digest);
            return None;
        }
        Some(check_lifetime(claims, now).map(|()| claims.clone()))
    }

    /// Remembers a token [`TokenVerifier::verify_keyed`] accepted.
    pub fn remember(&mut self, digest: TokenDigest, claims: AccessClaims, kid: String, now: i64) {
        if self.entries.len() >= self.capacity {
            self.entries
                .retain(|_, (claims, _)| check_lifetime(claims, now).is_ok());
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(digest, (claims, kid));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Bytes of entropy in a refresh token.
const REFRESH_TOKEN_BYTES: usize = 32;

/// A new opaque refresh token (256 random bits, base64url).
pub fn generate_refresh_token() -> String {
    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a refresh token: its SHA-256 (the token itself is never stored).
pub fn hash_refresh_token(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "cinema-auth";
    const AUDIENCE: &str = "cinema";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> AccessClaims {
        AccessClaims {
            sub: "6f1c2e34-6b5e-4a53-9f0e-1a2b3c4d5e6f".into(),
            sid: "0b3e8c8e-1111-4a53-9f0e-1a2b3c4d5e6f".into(),
            roles: vec!["subscriber".into()],
            permissions: vec!["films:premium".into()],
            iat: NOW,
            exp: NOW + 900,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            act: None,
        }
    }

    fn keypair(kid: &str) -> (Vec<u8>, Jwk) {
        let (private, public) = generate_ed25519_key().expect("key");
        (private, Jwk::ed25519(kid, &public))
    }

    fn verifier(keys: Vec<Jwk>) -> TokenVerifier {
        TokenVerifier::new(&Jwks { keys }, ISSUER, AUDIENCE)
    }

    /// A token signed with a published key verifies and yields its claims.
    #[test]
    fn signed_token_verifies_against_jwks() {
        let (private, jwk) = keypair("k1");
        let token = sign(&claims(), "k1", &private).expect("sign");
        let verified = verifier(vec![jwk]).verify(&token, NOW + 10).expect("valid");
        assert_eq!(verified, claims());
        assert!(verified.has_role("subscriber") && verified.has_permission("films:premium"));
    }

    /// Expired tokens fail (past the leeway), fresh ones inside it pass.
    #[test]
    fn expiry_is_enforced_with_leeway() {
        let (private, jwk) = keypair("k1");
        let token = sign(&claims(), "k1", &private).expect("sign");
        let verifier = verifier(vec![jwk]);
        assert!(
            verifier
                .verify(&token, NOW + 900 + CLOCK_SKEW_LEEWAY_SECONDS - 1)
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&token, NOW + 900 + CLOCK_SKEW_LEEWAY_SECONDS),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verifier.verify(&token, NOW - 3600),
            Err(TokenError::NotYetValid)
        );
    }

    /// Unknown key ids, other keys, tampering, issuer and audience are all refused.
    #[test]
    fn refuses_foreign_or_tampered_tokens() {
        let (private, jwk) = keypair("k1");
        let (other_private, _) = keypair("k2");
        let verifier = verifier(vec![jwk.clone()]);
        let unknown = sign(&claims(), "k2", &other_private).expect("sign");
        assert_eq!(verifier.verify(&unknown, NOW), Err(TokenError::UnknownKey));
        let forged = sign(&claims(), "k1", &other_private).expect("sign");
        assert_eq!(verifier.verify(&forged, NOW), Err(TokenError::BadSignature));

        let token = sign(&claims(), "k1", &private).expect("sign");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut tampered = claims();
        tampered.roles.push("admin".into());
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).expect("json"));
        assert_eq!(
            verifier.verify(&parts.join("."), NOW),
            Err(TokenError::BadSignature)
        );

        let mut wrong_issuer = claims();
        wrong_issuer.iss = "someone-else".into();
        let token = sign(&wrong_issuer, "k1", &private).expect("sign");
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::WrongIssuer));
        let mut wrong_audience = claims();
        wrong_audience.aud = "elsewhere".into();
        let token = sign(&wrong_audience, "k1", &private).expect("sign");
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::WrongAudience));
        assert_eq!(
            verifier.verify("not.a.token", NOW),
            Err(TokenError::Malformed)
        );
    }

    /// `alg: none` and HMAC tokens are refused before any key is consulted.
    #[test]
    fn refuses_other_algorithms() {
        let (_, jwk) = keypair("k1");
        let verifier = verifier(vec![jwk]);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).expect("json"));
        assert!(
            verifier
                .verify(&format!("{header}.{payload}."), NOW)
                .is_err()
        );
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("k1".into());
        let token = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(b"secret"))
            .expect("hs256");
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(TokenError::WrongAlgorithm)
        );
    }

    /// Keys rotate: a verifier with both keys accepts tokens from either.
    #[test]
    fn verifier_with_both_keys_accepts_old_and_new_tokens() {
        let (old_private, old_jwk) = keypair("old");
        let (new_private, new_jwk) = keypair("new");
        let verifier = verifier(vec![old_jwk, new_jwk]);
        for (kid, key) in [("old", &old_private), ("new", &new_private)] {
            let token = sign(&claims(), kid, key).expect("sign");
            assert!(verifier.verify(&token, NOW).is_ok(), "{kid}");
        }
    }

    /// Refresh tokens are long, unique, and stored only as a 32-byte digest.
    /// A remembered token is answered without a signature check, but still expires, and
    /// stops once its key leaves the key set; a full memo forgets before it grows.
    #[test]
    fn verified_tokens_expire_and_stop_with_their_key() {
        let (private, jwk) = keypair("k1");
        let (_, other) = keypair("k2");
        let token = sign(&claims(), "k1", &private).expect("sign");
        let with_key = verifier(vec![jwk]);
        let mut memo = VerifiedTokens::new(2);
        let digest = VerifiedTokens::digest(&token);
        assert!(memo.recall(&digest, &with_key, NOW).is_none());
        let (claims, kid) = with_key.verify_keyed(&token, NOW).expect("verifies");
        memo.remember(digest, claims.clone(), kid, NOW);
        assert_eq!(
            memo.recall(&digest, &with_key, NOW),
            Some(Ok(claims.clone()))
        );
        let expired = claims.exp + CLOCK_SKEW_LEEWAY_SECONDS;
        assert_eq!(
            memo.recall(&digest, &with_key, expired),
            Some(Err(TokenError::Expired))
        );
        let key_retired = verifier(vec![other]);
        assert!(memo.recall(&digest, &key_retired, NOW).is_none());
        assert!(memo.is_empty(), "a token whose key left is forgotten");

        for n in 0..5u8 {
            memo.remember([n; 32], claims.clone(), "k1".into(), NOW);
            assert!(memo.len() <= 2);
        }
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = generate_refresh_token();
        let b = generate_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
    }

    /// The JWKS wire shape follows RFC 8037.
    #[test]
    fn jwk_wire_shape() {
        let jwk = Jwk::ed25519("k1", &[7u8; 32]);
        let json = serde_json::to_value(Jwks { keys: vec![jwk] }).expect("json");
        assert_eq!(json["keys"][0]["kty"], "OKP");
        assert_eq!(json["keys"][0]["crv"], "Ed25519");
        assert_eq!(json["keys"][0]["alg"], "EdDSA");
        assert_eq!(json["keys"][0]["use"], "sig");
        assert_eq!(json["keys"][0]["x"].as_str().expect("x").len(), 43);
    }
}
