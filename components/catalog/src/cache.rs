//! The response cache in the catalog's own key-value store (`catalog`), keyed by the
//! search index version, and the ETags made from it.
//!
//! - The index version is held in the instance's memory ([`IndexVersionRecord`]) and
//!   asked of the host's `/search/version` when older than `index_version_check_ms`
//!   (a failed check keeps the stale version); a search answer at a newer version
//!   moves it on at once.
//! - `catalog:v{version}:{canonical request}` holds one response ([`Entry`]), stored as
//!   a small JSON header line and the body exactly as served, so a hit is one
//!   key-value read and no JSON work on the body. A new index version makes every
//!   older key unreachable, which is the invalidation; old keys are never deleted (the
//!   store is expected to evict or be flushed).
//!
//! The cache is best effort: a store that cannot be opened, read or written only
//! means a miss (logged to stderr); it never fails a request. Without any known
//! version nothing is cached. Entries are not authorization decisions: they carry the
//! film's `access` so the paid-content rule runs on every hit.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spin_sdk::key_value::Store;

/// The catalog's key-value store in `spin.toml`: no other component lists it.
pub const STORE_LABEL: &str = "catalog";

use crate::upstream::Upstream;

/// Prefix of every key this component writes.
pub const KEY_PREFIX: &str = "catalog:";
/// Canonical requests longer than this are hashed in the key, so keys stay short
/// enough for every key-value backend.
pub const MAX_CANONICAL_IN_KEY: usize = 200;

/// The index version this instance knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexVersionRecord {
    pub version: u64,
    /// When the version was last confirmed, milliseconds since the epoch.
    pub checked_at_ms: i64,
}

/// One cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `"v{version}-{hash}"`, quotes included.
    pub etag: String,
    /// The JSON body exactly as served (the ETag hashes these bytes).
    pub body: Bytes,
    /// Lists: `X-Total-Count`.
    pub total: Option<u64>,
    /// Lists: `X-Page-Count`.
    pub page_count: Option<u64>,
    /// Film detail: the film's `access`, so the paid rule is checked on hits.
    pub access: Option<String>,
}

/// What an [`Entry`] stores besides its body (its first line).
#[derive(Serialize, Deserialize)]
struct EntryHeader {
    etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<String>,
}

impl Entry {
    /// `{header JSON}\n{body}`: the header is one line (compact JSON has no raw
    /// newline), the body follows untouched.
    pub fn encode(&self) -> Vec<u8> {
        let header = EntryHeader {
            etag: self.etag.clone(),
            total: self.total,
            page_count: self.page_count,
            access: self.access.clone(),
        };
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// The entry [`Entry::encode`] made, or `None` for anything else (an older format,
    /// a corrupt value).
    pub fn decode(bytes: Vec<u8>) -> Option<Self> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header: EntryHeader = serde_json::from_slice(&bytes[..newline]).ok()?;
        let body = Bytes::from(bytes).slice(newline + 1..);
        Some(Self {
            etag: header.etag,
            body,
            total: header.total,
            page_count: header.page_count,
            access: header.access,
        })
    }
}

/// The strong ETag of a body served at an index version:
/// `"v{version}-{first 16 hex digits of sha256(body)}"`.
pub fn etag(version: u64, body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"v{version}-{hex}\"")
}

/// Whether an `If-None-Match` header value matches `etag` (`*`, or one of a
/// comma-separated list, weak or strong).
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The key of a response at an index version.
pub fn entry_key(version: u64, canonical: &str) -> String {
    if canonical.len() <= MAX_CANONICAL_IN_KEY {
        format!("{KEY_PREFIX}v{version}:{canonical}")
    } else {
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{KEY_PREFIX}v{version}:sha256:{hex}")
    }
}

/// Whether a version record confirmed at `checked_at_ms` is still fresh at `now_ms`.
pub fn is_fresh(record: &IndexVersionRecord, now_ms: i64, check_ms: i64) -> bool {
    let age = now_ms.saturating_sub(record.checked_at_ms);
    (0..check_ms).contains(&age)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The index version this instance knows, and when it was confirmed.
static INDEX_VERSION: Mutex<Option<IndexVersionRecord>> = Mutex::new(None);

fn known_version() -> Option<IndexVersionRecord> {
    *INDEX_VERSION.lock().unwrap_or_else(PoisonError::into_inner)
}

fn remember_version(record: IndexVersionRecord) {
    let mut known = INDEX_VERSION.lock().unwrap_or_else(PoisonError::into_inner);
    // Never go back to an older version (a slow check answering after a newer one).
    if known.is_none_or(|k| record.version >= k.version) {
        *known = Some(record);
    }
}

thread_local! {
    /// The store, opened once per instance (components are single-threaded).
    static STORE: RefCell<Option<Rc<Store>>> = const { RefCell::new(None) };
}

/// The catalog's own key-value store (label [`STORE_LABEL`]), or nothing when it
/// cannot be opened.
pub struct Cache {
    store: Option<Rc<Store>>,
}

impl Cache {
    pub async fn open() -> Self {
        if let Some(store) = STORE.with_borrow(Clone::clone) {
            return Self { store: Some(store) };
        }
        match Store::open(STORE_LABEL).await {
            Ok(store) => {
                let store = Rc::new(store);
                STORE.with_borrow_mut(|held| *held = Some(store.clone()));
                Self { store: Some(store) }
            }
            Err(error) => {
                eprintln!("catalog: key-value store unavailable, not caching: {error:?}");
                Self { store: None }
            }
        }
    }

    /// The current index version: the known one while fresh, else asked of the host; a
    /// stale one when the host does not answer; `None` when the store is down or no
    /// version is known at all.
    pub async fn index_version(&self, upstream: &Upstream, check_ms: i64) -> Option<u64> {
        // Without a store nothing can be cached: skip the extra round trip.
        self.store.as_ref()?;
        let known = known_version();
        let now = now_ms();
        if let Some(record) = &known
            && is_fresh(record, now, check_ms)
        {
            return Some(record.version);
        }
        match upstream.index_version().await {
            Ok(version) => {
                remember_version(IndexVersionRecord {
                    version,
                    checked_at_ms: now,
                });
                Some(version)
            }
            Err(error) => {
                let stale = known.map(|record| record.version);
                eprintln!(
                    "catalog: index version check failed ({error}); using {}",
                    stale.map_or_else(|| "no cache".to_owned(), |v| format!("stale v{v}"))
                );
                stale
            }
        }
    }

    /// Records a version newer than `known`, learned from a search answer, so this
    /// instance stops reading the older entries before the next check.
    pub fn saw_version(&self, known: u64, seen: u64) {
        if seen > known {
            remember_version(IndexVersionRecord {
                version: seen,
                checked_at_ms: now_ms(),
            });
        }
    }

    pub async fn get(&self, key: &str) -> Option<Entry> {
        let store = self.store.as_ref()?;
        match store.get(key).await {
            Ok(Some(bytes)) => Entry::decode(bytes).or_else(|| {
                eprintln!("catalog: ignoring unreadable cache key {key}");
                None
            }),
            Ok(None) => None,
            Err(error) => {
                eprintln!("catalog: cache read of {key} failed: {error:?}");
                None
            }
        }
    }

    pub async fn put(&self, key: &str, entry: &Entry) {
        let Some(store) = &self.store else {
            return;
        };
        if let Err(error) = store.set(key, &entry.encode()).await {
            eprintln!("catalog: cache write of {key} failed: {error:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETags are the version and the first 16 hex digits of the body's sha256, quoted.
    #[test]
    fn etag_is_version_and_sha256_prefix() {
        // sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
        assert_eq!(etag(7, b""), "\"v7-e3b0c44298fc1c14\"");
        assert_ne!(etag(7, b"[]"), etag(8, b"[]"));
    }

    /// If-None-Match matches the same tag, a weak copy, one in a list, or `*`.
    #[test]
    fn if_none_match_accepts_exact_weak_listed_and_star() {
        let tag = "\"v7-e3b0c44298fc1c14\"";
        assert!(if_none_match_matches(tag, tag));
        assert!(if_none_match_matches("W/\"v7-e3b0c44298fc1c14\"", tag));
        assert!(if_none_match_matches("\"x\", \"v7-e3b0c44298fc1c14\"", tag));
        assert!(if_none_match_matches("*", tag));
        assert!(!if_none_match_matches("\"v6-e3b0c44298fc1c14\"", tag));
        assert!(!if_none_match_matches("", tag));
    }

    /// Keys name the version and the canonical request; long requests are hashed.
    #[test]
    fn entry_keys_embed_version_and_hash_long_requests() {
        assert_eq!(entry_key(3, "/api/v1/genres"), "catalog:v3:/api/v1/genres");
        let long = format!("/api/v1/films/search?query={}", "x".repeat(300));
        let key = entry_key(3, &long);
        assert!(key.starts_with("catalog:v3:sha256:"));
        assert_eq!(key.len(), "catalog:v3:sha256:".len() + 64);
        assert_ne!(key, entry_key(4, &long));
    }

    /// An entry reads back as written, its body byte for byte (newlines and all); other
    /// values (an older JSON format, garbage) read as a miss.
    #[test]
    fn entries_round_trip_and_other_values_are_misses() {
        let entry = Entry {
            etag: "\"v3-0011223344556677\"".into(),
            body: Bytes::from_static(b"{\"title\":\"line\\none\"}\n[1,2]"),
            total: Some(12),
            page_count: Some(2),
            access: Some("subscription".into()),
        };
        assert_eq!(Entry::decode(entry.encode()), Some(entry));
        assert_eq!(Entry::decode(br#"{"etag":"x","body":"[]"}"#.to_vec()), None);
        assert_eq!(Entry::decode(b"not json\n[]".to_vec()), None);
    }

    /// A version record is fresh for check_ms after it was confirmed, not longer, and
    /// not when it claims to come from the future.
    #[test]
    fn version_record_is_fresh_only_within_the_check_interval() {
        let record = IndexVersionRecord {
            version: 1,
            checked_at_ms: 10_000,
        };
        assert!(is_fresh(&record, 10_000, 1_000));
        assert!(is_fresh(&record, 10_999, 1_000));
        assert!(!is_fresh(&record, 11_000, 1_000));
        assert!(!is_fresh(&record, 9_000, 1_000));
    }
}
