//! Shared vocabulary of the cinema platform: types, validation, event schemas and
//! token claims used by components, host and workers alike.
//!
//! No I/O lives here (no runtime, no drivers, no sockets): the crate builds for
//! `wasm32-wasip2` and native targets.
//!
//! Modules:
//! - [`account`]: email normalization and password rules;
//! - [`client_addr`]: the client address behind trusted proxies (`X-Forwarded-For`);
//! - [`error`]: the JSON error body every HTTP surface of the platform answers with;
//! - [`token`]: access-token claims, JWKS and the verifier every component uses;
//! - [`key_seal`]: private signing keys sealed at rest with the operator's key;
//! - [`password`]: argon2id password hashing;
//! - [`platform`]: account and catalog events (what notify reacts to);
//! - [`ugc`]: user-generated content events and their validation.

pub mod account;
pub mod client_addr;
pub mod error;
pub mod key_seal;
pub mod password;
pub mod platform;
pub mod token;
pub mod ugc;
