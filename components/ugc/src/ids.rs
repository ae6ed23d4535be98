//! Event and review ids: the `Idempotency-Key` header, the ids derived from it, and
//! fresh ids when a client gives none.
//!
//! Derived ids are UUID-formatted (RFC 9562 version 8, "custom", with the RFC variant
//! bits) from the first 16 bytes of a SHA-256:
//! - event id with an `Idempotency-Key`: `sha256(user_id "\n" scope "\n" key "\n" index)`,
//!   where `scope` is the event type and its target (`rating_set:<film id>`) and
//!   `index` is the event's position in the request (0 for single-event routes), in
//!   decimal. The same user sending the same key again gets the same ids, so the
//!   loader stores the events once;
//! - review id: `sha256("review_posted\n" event_id)`, so a repeated review post gets
//!   the same review id as the first;
//! - fresh event id (no key, no body `event_id`): a random 128-bit base per request
//!   (SipHash of the user, the time in nanoseconds and a counter under the standard
//!   library's random hash keys, `RandomState`, seeded from `wasi:random`) plus the
//!   event's place among the request's fresh ids.
//!
//! Pure but for [`FreshEventIds`] (clock, counter, entropy). This module does not
//! decide which id wins (see `input::stamp`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use cinema_domain::ugc::{canonical_uuid_bytes, is_uuid, uuid_text};
use sha2::{Digest, Sha256};

/// Request header naming a write for retries.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;
/// Domain separator of review ids derived from event ids.
const REVIEW_ID_DOMAIN: &str = "review_posted";

/// A valid `Idempotency-Key`: 1 to [`MAX_IDEMPOTENCY_KEY_CHARS`] printable ASCII
/// characters (space to `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value; the error is the message for the 422.
    pub fn parse(raw: &[u8]) -> Result<Self, &'static str> {
        let printable = raw.iter().all(|b| (b' '..=b'~').contains(b));
        if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_CHARS || !printable {
            return Err("must be 1 to 200 printable ASCII characters");
        }
        // Printable ASCII is UTF-8.
        String::from_utf8(raw.to_vec())
            .map(Self)
            .map_err(|_| "must be 1 to 200 printable ASCII characters")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Formats the first 16 bytes of a digest as a version 8 (custom) UUID with the RFC
/// 9562 variant: lowercase, hyphenated.
fn uuid_v8(digest: &[u8]) -> String {
    let mut bytes = [0u8; 16];
    for (slot, byte) in bytes.iter_mut().zip(digest) {
        *slot = *byte;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid_text(&bytes)
}

/// `8-4-4-4-12` groups of 32 ASCII hex digits.
fn hyphenate(hex: impl Iterator<Item = u8>) -> String {
    let mut out = String::with_capacity(36);
    for (i, digit) in hex.enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(digit));
    }
    out
}

/// The canonical (lowercase, hyphenated) form of a UUID in any form [`is_uuid`]
/// accepts, so that equal ids compare equal downstream.
pub fn canonical_uuid(value: &str) -> Option<String> {
    if is_canonical_uuid(value) {
        // The usual case: ids sent as ids are sent, copied as they are.
        return Some(value.to_owned());
    }
    if !is_uuid(value) {
        return None;
    }
    Some(hyphenate(
        value
            .bytes()
            .filter(|b| *b != b'-')
            .map(|b| b.to_ascii_lowercase()),
    ))
}

/// Whether `value` is already lowercase and hyphenated (`8-4-4-4-12` hex digits).
fn is_canonical_uuid(value: &str) -> bool {
    canonical_uuid_bytes(value).is_some()
}

/// The event id of the `index`-th event of a request sent with `key` by `user_id`;
/// `scope` (the event type and what it is about) keeps one key reused on another
/// route or film from colliding.
pub fn event_id_for_key(user_id: &str, scope: &str, key: &IdempotencyKey, index: usize) -> String {
    let digest = Sha256::new()
        .chain_update(user_id.as_bytes())
        .chain_update(b"\n")
        .chain_update(scope.as_bytes())
        .chain_update(b"\n")
        .chain_update(key.as_str().as_bytes())
        .chain_update(b"\n")
        .chain_update(index.to_string().as_bytes())
        .finalize();
    uuid_v8(&digest)
}

/// The id of the review posted by the event `event_id`.
pub fn review_id_for(event_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(REVIEW_ID_DOMAIN.as_bytes())
        .chain_update(b"\n")
        .chain_update(event_id.as_bytes())
        .finalize();
    uuid_v8(&digest)
}

/// Requests that made fresh ids in this instance; part of every fresh id's input.
static FRESH_ID_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// New, unique event ids for the writes of one request that come without an
/// idempotency key or body `event_id`: a 128-bit base drawn once per request from two
/// SipHash runs under this thread's random keys (each `RandomState` takes the thread's
/// keys, then the next), over the user, the time and a counter of this instance; the
/// request's `n`-th id is the base plus `n`. No cryptographic hash: the ids need to be
/// unique, not derived, and bases of two requests are 2^-128 apart from sharing a
/// range.
pub struct FreshEventIds {
    base: u128,
    issued: u128,
}

impl FreshEventIds {
    pub fn new(user_id: &str) -> Self {
        let count = FRESH_ID_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let high = RandomState::new().hash_one((user_id, now_ns, count));
        let low = RandomState::new().hash_one((count, now_ns, user_id));
        Self {
            base: (u128::from(high) << 64) | u128::from(low),
            issued: 0,
        }
    }

    /// The next id of this request.
    pub fn next_id(&mut self) -> String {
        let id = self.base.wrapping_add(self.issued);
        self.issued += 1;
        uuid_v8(&id.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "10000000-0000-4000-8000-000000000001";

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw.as_bytes()).expect("a valid key")
    }

    /// The same user, key and index always give the same event id.
    #[test]
    fn idempotency_key_gives_the_same_event_ids_on_repeat() {
        let first = event_id_for_key(USER, "s", &key("retry-me"), 0);
        assert_eq!(first, event_id_for_key(USER, "s", &key("retry-me"), 0));
    }

    /// Index, key, scope and user all change the id: a batch's events stay distinct,
    /// one key reused on another route or film and two users' keys never collide.
    #[test]
    fn idempotency_key_ids_differ_by_index_key_scope_and_user() {
        let base = event_id_for_key(USER, "s", &key("k"), 0);
        assert_ne!(base, event_id_for_key(USER, "s", &key("k"), 1));
        assert_ne!(base, event_id_for_key(USER, "s", &key("k2"), 0));
        assert_ne!(base, event_id_for_key(USER, "t", &key("k"), 0));
        assert_ne!(
            base,
            event_id_for_key("20000000-0000-4000-8000-000000000002", "s", &key("k"), 0)
        );
    }

    /// The derivation is pinned: `sha256(user "\n" scope "\n" key "\n" index)`, first 16 bytes,
    /// version 8 and RFC variant bits set. Consumers may recompute it.
    #[test]
    fn derived_event_id_is_the_documented_sha256_as_a_version_8_uuid() {
        let id = event_id_for_key("u", "s", &key("k"), 3);
        let digest = Sha256::digest(b"u\ns\nk\n3");
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expected = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        assert_eq!(id, expected);
        assert_eq!(id.as_bytes()[14], b'8', "version nibble");
        assert!(
            matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "variant"
        );
    }

    /// A review id follows from its event id, and differs from it.
    #[test]
    fn review_id_is_derived_from_the_event_id() {
        let event_id = event_id_for_key(USER, "s", &key("review-1"), 0);
        let review_id = review_id_for(&event_id);
        assert_eq!(review_id, review_id_for(&event_id));
        assert_ne!(review_id, event_id);
        assert!(is_uuid(&review_id));
    }

    /// Fresh ids are UUIDs and never repeat, within a request or across requests.
    #[test]
    fn fresh_event_ids_are_unique_uuids() {
        let ids: std::collections::HashSet<String> = (0..100)
            .flat_map(|_| {
                let mut fresh = FreshEventIds::new(USER);
                (0..100).map(move |_| fresh.next_id())
            })
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| is_canonical_uuid(id)));
    }

    /// Keys are 1 to 200 printable ASCII characters; anything else is refused.
    #[test]
    fn idempotency_key_must_be_1_to_200_printable_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"order 42 ~ retry").is_ok());
        assert!(IdempotencyKey::parse("k".repeat(200).as_bytes()).is_ok());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse("k".repeat(201).as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ".as_bytes()).is_err());
    }

    /// UUIDs in either accepted form come out lowercase and hyphenated.
    #[test]
    fn uuids_are_canonicalized_to_lowercase_hyphenated() {
        assert_eq!(
            canonical_uuid("30000000000040008000ABCDEF000001").as_deref(),
            Some("30000000-0000-4000-8000-abcdef000001")
        );
        assert_eq!(
            canonical_uuid("30000000-0000-4000-8000-abcdef000001").as_deref(),
            Some("30000000-0000-4000-8000-abcdef000001")
        );
        assert_eq!(
            canonical_uuid("30000000-0000-4000-8000-ABCDEF000001").as_deref(),
            Some("30000000-0000-4000-8000-abcdef000001")
        );
        assert_eq!(canonical_uuid("not-a-uuid"), None);
        assert_eq!(canonical_uuid("30000000-0000-4000-8000-abcdef00000g"), None);
    }
}
