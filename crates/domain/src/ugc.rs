//! User-generated content events: what the ugc component accepts, the host produces to
//! Kafka (`ugc.events`, keyed by user id), the loader writes to ClickHouse and the
//! read models apply. One JSON shape end to end:
//!
//! ```json
//! {"event_id": "…uuid…", "user_id": "…uuid…", "occurred_at_ms": 1764150000000,
//!  "type": "view_progress", "film_id": "…", "position_s": 120, "duration_s": 5400}
//! ```
//!
//! `event_id` makes every consumer idempotent; `user_id` and `occurred_at_ms` are
//! stamped by the server, never taken from clients. Validation here is the single
//! rule set: [`UgcPayload::validate`] names the offending field.

use serde::{Deserialize, Serialize};

pub mod record;

/// Kafka topic of accepted UGC events.
pub const UGC_EVENTS_TOPIC: &str = "ugc.events";
/// Kafka topic of events the loader could not decode: [`dead_letter_topic`] of
/// [`UGC_EVENTS_TOPIC`].
pub const UGC_DEAD_LETTER_TOPIC: &str = "ugc.events.dlq";

/// The dead-letter topic of an events topic: its name with `.dlq` appended, so a
/// deployment (or a test) with its own events topic has its own dead letters.
pub fn dead_letter_topic(events_topic: &str) -> String {
    format!("{events_topic}.dlq")
}
/// Most events in one `POST /api/v1/ugc/events` batch.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// Longest review, in characters.
pub const MAX_REVIEW_CHARS: usize = 5_000;
/// Longest film a heartbeat may describe: two days, in seconds.
pub const MAX_DURATION_S: u32 = 172_800;

/// One accepted event.
///
/// Encoded and decoded by hand ([`FlatEvent`]): serde's derive for a flattened,
/// internally tagged payload goes through an intermediate tree, and every event is
/// encoded twice (the component, the intake) and decoded three times (the intake, the
/// loader, the read models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UgcEvent {
    /// Unique per event; repeats (same `Idempotency-Key` or `event_id`) share it.
    pub event_id: String,
    /// The authenticated user (token `sub`).
    pub user_id: String,
    /// When the server accepted it, Unix milliseconds.
    pub occurred_at_ms: i64,
    /// On the wire, `type` and the payload's fields sit beside the fields above.
    pub payload: UgcPayload,
}

/// The wire shape of an event, every payload field optional: decoded in one pass, then
/// checked against the fields its `type` needs. Fields another type would have are
/// ignored, as are unknown ones.
#[derive(Deserialize)]
struct FlatEvent {
    event_id: String,
    user_id: String,
    occurred_at_ms: i64,
    #[serde(rename = "type")]
    kind: String,
    film_id: Option<String>,
    position_s: Option<u32>,
    duration_s: Option<u32>,
    score: Option<u8>,
    review_id: Option<String>,
    text: Option<String>,
    value: Option<i8>,
}

/// An event's `type`: the one place its wire names are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ViewProgress,
    BookmarkSet,
    BookmarkRemoved,
    RatingSet,
    RatingRemoved,
    ReviewPosted,
    ReviewDeleted,
    ReviewLikeSet,
    ReviewLikeRemoved,
}

impl EventType {
    /// Every type, in declaration order.
    pub const ALL: [EventType; 9] = [
        Self::ViewProgress,
        Self::BookmarkSet,
        Self::BookmarkRemoved,
        Self::RatingSet,
        Self::RatingRemoved,
        Self::ReviewPosted,
        Self::ReviewDeleted,
        Self::ReviewLikeSet,
        Self::ReviewLikeRemoved,
    ];

    /// The name on the wire (`type`) and in ClickHouse.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ViewProgress => "view_progress",
            Self::BookmarkSet => "bookmark_set",
            Self::BookmarkRemoved => "bookmark_removed",
            Self::RatingSet => "rating_set",
            Self::RatingRemoved => "rating_removed",
            Self::ReviewPosted => "review_posted",
            Self::ReviewDeleted => "review_deleted",
            Self::ReviewLikeSet => "review_like_set",
            Self::ReviewLikeRemoved => "review_like_removed",
        }
    }

    /// The type a wire name denotes.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Every `type` name, for "expected one of" errors.
const EVENT_TYPE_NAMES: [&str; EventType::ALL.len()] = {
    let mut names = [""; EventType::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = EventType::ALL[i].as_str();
        i += 1;
    }
    names
};

impl Serialize for UgcEvent {
    /// The event's fields, then `type`, then the payload's fields in declaration order
    /// (what the derive wrote).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("event_id", &self.event_id)?;
        map.serialize_entry("user_id", &self.user_id)?;
        map.serialize_entry("occurred_at_ms", &self.occurred_at_ms)?;
        map.serialize_entry("type", self.payload.type_name())?;
        match &self.payload {
            UgcPayload::ViewProgress {
                film_id,
                position_s,
                duration_s,
            } => {
                map.serialize_entry("film_id", film_id)?;
                map.serialize_entry("position_s", position_s)?;
                map.serialize_entry("duration_s", duration_s)?;
            }
            UgcPayload::BookmarkSet { film_id }
            | UgcPayload::BookmarkRemoved { film_id }
            | UgcPayload::RatingRemoved { film_id } => map.serialize_entry("film_id", film_id)?,
            UgcPayload::RatingSet { film_id, score } => {
                map.serialize_entry("film_id", film_id)?;
                map.serialize_entry("score", score)?;
            }
            UgcPayload::ReviewPosted {
                review_id,
                film_id,
                text,
            } => {
                map.serialize_entry("review_id", review_id)?;
                map.serialize_entry("film_id", film_id)?;
                map.serialize_entry("text", text)?;
            }
            UgcPayload::ReviewDeleted { review_id }
            | UgcPayload::ReviewLikeRemoved { review_id } => {
                map.serialize_entry("review_id", review_id)?;
            }
            UgcPayload::ReviewLikeSet { review_id, value } => {
                map.serialize_entry("review_id", review_id)?;
                map.serialize_entry("value", value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for UgcEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let flat = FlatEvent::deserialize(deserializer)?;
        fn needed<T, E: Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
            value.ok_or_else(|| E::missing_field(field))
        }
        let Some(kind) = EventType::parse(&flat.kind) else {
            return Err(D::Error::unknown_variant(&flat.kind, &EVENT_TYPE_NAMES));
        };
        let payload = match kind {
            EventType::ViewProgress => UgcPayload::ViewProgress {
                film_id: needed(flat.film_id, "film_id")?,
                position_s: needed(flat.position_s, "position_s")?,
                duration_s: needed(flat.duration_s, "duration_s")?,
            },
            EventType::BookmarkSet => UgcPayload::BookmarkSet {
                film_id: needed(flat.film_id, "film_id")?,
            },
            EventType::BookmarkRemoved => UgcPayload::BookmarkRemoved {
                film_id: needed(flat.film_id, "film_id")?,
            },
            EventType::RatingSet => UgcPayload::RatingSet {
                film_id: needed(flat.film_id, "film_id")?,
                score: needed(flat.score, "score")?,
            },
            EventType::RatingRemoved => UgcPayload::RatingRemoved {
                film_id: needed(flat.film_id, "film_id")?,
            },
            EventType::ReviewPosted => UgcPayload::ReviewPosted {
                review_id: needed(flat.review_id, "review_id")?,
                film_id: needed(flat.film_id, "film_id")?,
                text: needed(flat.text, "text")?,
            },
            EventType::ReviewDeleted => UgcPayload::ReviewDeleted {
                review_id: needed(flat.review_id, "review_id")?,
            },
            EventType::ReviewLikeSet => UgcPayload::ReviewLikeSet {
                review_id: needed(flat.review_id, "review_id")?,
                value: needed(flat.value, "value")?,
            },
            EventType::ReviewLikeRemoved => UgcPayload::ReviewLikeRemoved {
                review_id: needed(flat.review_id, "review_id")?,
            },
        };
        Ok(Self {
            event_id: flat.event_id,
            user_id: flat.user_id,
            occurred_at_ms: flat.occurred_at_ms,
            payload,
        })
    }
}

/// What happened; `type` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UgcPayload {
    /// Player heartbeat: where the user is in a film.
    ViewProgress {
        film_id: String,
        position_s: u32,
        duration_s: u32,
    },
    BookmarkSet {
        film_id: String,
    },
    BookmarkRemoved {
        film_id: String,
    },
    /// A score 0..=10; one per user and film, the latest wins.
    RatingSet {
        film_id: String,
        score: u8,
    },
    RatingRemoved {
        film_id: String,
    },
    ReviewPosted {
        review_id: String,
        film_id: String,
        text: String,
    },
    ReviewDeleted {
        review_id: String,
    },
    /// `value` is 1 (like) or -1 (dislike); one per user and review.
    ReviewLikeSet {
        review_id: String,
        value: i8,
    },
    ReviewLikeRemoved {
        review_id: String,
    },
}

/// A payload that breaks a rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Whether `value` is a UUID in any of its usual text forms (no dependency on a uuid
/// crate: the component stays lean).
pub fn is_uuid(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes.len() {
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => {
            // The four hyphens, then the digits between them, group by group.
            [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-')
                && [
                    &bytes[..8],
                    &bytes[9..13],
                    &bytes[14..18],
                    &bytes[19..23],
                    &bytes[24..],
                ]
                .iter()
                .all(|group| group.iter().all(u8::is_ascii_hexdigit))
        }
        _ => false,
    }
}

/// Where the 32 hex digits of a UUID in canonical text sit, two to a byte.
const UUID_DIGIT_PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// A UUID's 16 bytes in canonical text: lowercase, hyphenated (`8-4-4-4-12`).
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"00000000-0000-0000-0000-000000000000";
    for (byte, &at) in bytes.iter().zip(&UUID_DIGIT_PAIRS) {
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    // ASCII hex digits and hyphens are UTF-8, so this never falls back. (The plain
    // check: `from_utf8_lossy`'s chunk walk was 2.5% of the host under intake load.)
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

/// The 16 bytes of a UUID in canonical text (36 characters, lowercase, hyphenated), or
/// `None` for any other text: the one test of canonical ids.
pub fn canonical_uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let text: &[u8; 36] = text.as_bytes().try_into().ok()?;
    if text[8] != b'-' || text[13] != b'-' || text[18] != b'-' || text[23] != b'-' {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, &at) in bytes.iter_mut().zip(&UUID_DIGIT_PAIRS) {
        *byte = (lowercase_hex_value(text[at])? << 4) | lowercase_hex_value(text[at + 1])?;
    }
    Some(bytes)
}

/// A lowercase hex digit's value.
fn lowercase_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn check_uuid(field: &'static str, value: &str) -> Result<(), FieldError> {
    if is_uuid(value) {
        Ok(())
    } else {
        Err(field_error(field, "must be a UUID"))
    }
}

impl UgcPayload {
    /// The wire name of the event type.
    pub fn type_name(&self) -> &'static str {
        self.event_type().as_str()
    }

    /// The payload's [`EventType`].
    pub fn event_type(&self) -> EventType {
        match self {
            Self::ViewProgress { .. } => EventType::ViewProgress,
            Self::BookmarkSet { .. } => EventType::BookmarkSet,
            Self::BookmarkRemoved { .. } => EventType::BookmarkRemoved,
            Self::RatingSet { .. } => EventType::RatingSet,
            Self::RatingRemoved { .. } => EventType::RatingRemoved,
            Self::ReviewPosted { .. } => EventType::ReviewPosted,
            Self::ReviewDeleted { .. } => EventType::ReviewDeleted,
            Self::ReviewLikeSet { .. } => EventType::ReviewLikeSet,
            Self::ReviewLikeRemoved { .. } => EventType::ReviewLikeRemoved,
        }
    }

    /// The film the event is about, when it names one.
    pub fn film_id(&self) -> Option<&str> {
        match self {
            Self::ViewProgress { film_id, .. }
            | Self::BookmarkSet { film_id }
            | Self::BookmarkRemoved { film_id }
            | Self::RatingSet { film_id, .. }
            | Self::RatingRemoved { film_id }
            | Self::ReviewPosted { film_id, .. } => Some(film_id),
            _ => None,
        }
    }

    /// The review an event is about, if any.
    pub fn review_id(&self) -> Option<&str> {
        match self {
            Self::ReviewPosted { review_id, .. }
            | Self::ReviewDeleted { review_id }
            | Self::ReviewLikeSet { review_id, .. }
            | Self::ReviewLikeRemoved { review_id } => Some(review_id),
            _ => None,
        }
    }

    /// Checks every rule; the error names the first offending field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(film_id) = self.film_id() {
            check_uuid("film_id", film_id)?;
        }
        if let Some(review_id) = self.review_id() {
            check_uuid("review_id", review_id)?;
        }
        self.validate_values()
    }

    /// [`UgcPayload::validate`] but for the ids: for events whose ids are UUIDs by
    /// construction (decoded from a binary record, which carries ids as 16 bytes).
    pub fn validate_values(&self) -> Result<(), FieldError> {
        match self {
            Self::ViewProgress {
                position_s,
                duration_s,
                ..
            } => {
                if *duration_s == 0 || *duration_s > MAX_DURATION_S {
                    return Err(field_error(
                        "duration_s",
                        format!("must be from 1 to {MAX_DURATION_S}"),
                    ));
                }
                if position_s > duration_s {
                    return Err(field_error("position_s", "must not exceed duration_s"));
                }
            }
            Self::RatingSet { score, .. } if *score > 10 => {
                return Err(field_error("score", "must be from 0 to 10"));
            }
            Self::ReviewPosted { text, .. } => {
                let chars = text.trim().chars().count();
                if chars == 0 {
                    return Err(field_error("text", "must not be empty"));
                }
                if chars > MAX_REVIEW_CHARS {
                    return Err(field_error(
                        "text",
                        format!("must be at most {MAX_REVIEW_CHARS} characters"),
                    ));
                }
            }
            Self::ReviewLikeSet { value, .. } if *value != 1 && *value != -1 => {
                return Err(field_error("value", "must be 1 or -1"));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default events topic's dead letters go to `ugc.events.dlq`.
    #[test]
    fn default_dead_letter_topic_is_ugc_events_dlq() {
        assert_eq!(dead_letter_topic(UGC_EVENTS_TOPIC), UGC_DEAD_LETTER_TOPIC);
    }

    const FILM: &str = "30000000-0000-4000-8000-000000000001";

    /// The wire shape is flat: envelope fields and the payload's, with `type`.
    #[test]
    fn events_serialize_flat_with_a_type_tag() {
        let event = UgcEvent {
            event_id: "e".into(),
            user_id: "u".into(),
            occurred_at_ms: 5,
            payload: UgcPayload::RatingSet {
                film_id: FILM.into(),
                score: 9,
            },
        };
        let json = serde_json::to_value(&event).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({"event_id": "e", "user_id": "u", "occurred_at_ms": 5,
                "type": "rating_set", "film_id": FILM, "score": 9})
        );
        let back: UgcEvent = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
    }

    /// `validate_values` (for binary records, whose ids are bytes) checks every rule
    /// but the ids; `validate` checks the ids too, film first.
    #[test]
    fn validate_values_checks_all_but_the_ids() {
        let bad_ids = UgcPayload::ReviewLikeSet {
            review_id: "not-a-uuid".into(),
            value: 1,
        };
        assert_eq!(bad_ids.validate().expect_err("id").field, "review_id");
        assert!(bad_ids.validate_values().is_ok());
        let bad_value = UgcPayload::ReviewLikeSet {
            review_id: FILM.into(),
            value: 2,
        };
        assert_eq!(
            bad_value.validate_values().expect_err("value").field,
            "value"
        );
        let both_ids = UgcPayload::ReviewPosted {
            review_id: "x".into(),
            film_id: "y".into(),
            text: "good".into(),
        };
        assert_eq!(both_ids.validate().expect_err("ids").field, "film_id");
        assert_eq!(
            uuid_text(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    /// Each rule names its field.
    #[test]
    fn invalid_payloads_name_the_field() {
        let field = |payload: UgcPayload| payload.validate().expect_err("invalid").field;
        assert_eq!(
            field(UgcPayload::ViewProgress {
                film_id: FILM.into(),
                position_s: 10,
                duration_s: 5
            }),
            "position_s"
        );
        assert_eq!(
            field(UgcPayload::RatingSet {
                film_id: FILM.into(),
                score: 11
            }),
            "score"
        );
        assert_eq!(
            field(UgcPayload::BookmarkSet {
                film_id: "x".into()
            }),
            "film_id"
        );
        assert_eq!(
            field(UgcPayload::ReviewPosted {
                review_id: FILM.into(),
                film_id: FILM.into(),
                text: "я".repeat(MAX_REVIEW_CHARS + 1)
            }),
            "text"
        );
        assert_eq!(
            field(UgcPayload::ReviewLikeSet {
                review_id: FILM.into(),
                value: 0
            }),
            "value"
        );
    }

    fn every_kind_of_event() -> Vec<UgcEvent> {
        let review = "40000000-0000-4000-8000-000000000001".to_owned();
        let film = FILM.to_owned();
        [
            UgcPayload::ViewProgress {
                film_id: film.clone(),
                position_s: 60,
                duration_s: 5400,
            },
            UgcPayload::BookmarkSet {
                film_id: film.clone(),
            },
            UgcPayload::BookmarkRemoved {
                film_id: film.clone(),
            },
            UgcPayload::RatingSet {
                film_id: film.clone(),
                score: 7,
            },
            UgcPayload::RatingRemoved {
                film_id: film.clone(),
            },
            UgcPayload::ReviewPosted {
                review_id: review.clone(),
                film_id: film.clone(),
                text: "Sehr \"gut\"\n".into(),
            },
            UgcPayload::ReviewDeleted {
                review_id: review.clone(),
            },
            UgcPayload::ReviewLikeSet {
                review_id: review.clone(),
                value: -1,
            },
            UgcPayload::ReviewLikeRemoved { review_id: review },
        ]
        .into_iter()
        .enumerate()
        .map(|(n, payload)| UgcEvent {
            event_id: format!("event-{n}"),
            user_id: "10000000-0000-4000-8000-000000000001".into(),
            occurred_at_ms: 1_764_150_000_000 + n as i64,
            payload,
        })
        .collect()
    }

    /// The hand-written encoder writes the derive's bytes and the decoder reads them
    /// back, for every type; the decoder refuses an unknown type or a missing field by
    /// name, and ignores fields of other types and unknown fields.
    #[test]
    fn events_decode_as_they_encode() {
        /// What serde's derive wrote before the hand-written encoder.
        #[derive(Serialize)]
        struct Derived<'a> {
            event_id: &'a str,
            user_id: &'a str,
            occurred_at_ms: i64,
            #[serde(flatten)]
            payload: &'a UgcPayload,
        }
        for event in every_kind_of_event() {
            let json = serde_json::to_string(&event).expect("encode");
            let derived = serde_json::to_string(&Derived {
                event_id: &event.event_id,
                user_id: &event.user_id,
                occurred_at_ms: event.occurred_at_ms,
                payload: &event.payload,
            })
            .expect("encode");
            assert_eq!(json, derived, "the same bytes as the derive");
            let decoded: UgcEvent = serde_json::from_str(&json).expect(&json);
            assert_eq!(decoded, event, "{json}");
            let tagged: serde_json::Value = serde_json::from_str(&json).expect("json");
            assert_eq!(tagged["type"], event.payload.type_name(), "{json}");
        }
        let base = r#""event_id": "e", "user_id": "u", "occurred_at_ms": 1"#;
        let decode = |rest: &str| serde_json::from_str::<UgcEvent>(&format!("{{{base}, {rest}}}"));
        let error = decode(r#""type": "view_progress", "film_id": "f", "position_s": 1"#)
            .expect_err("duration missing");
        assert!(
            error.to_string().contains("missing field `duration_s`"),
            "{error}"
        );
        let error = decode(r#""type": "watched", "film_id": "f""#).expect_err("unknown type");
        assert!(
            error.to_string().contains("unknown variant `watched`")
                && error.to_string().contains("`review_like_removed`"),
            "names what is expected: {error}"
        );
        let kinds: Vec<EventType> = every_kind_of_event()
            .iter()
            .map(|event| event.payload.event_type())
            .collect();
        assert_eq!(kinds, EventType::ALL, "one event of each type, in order");
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        let ignored = decode(r#""type": "bookmark_set", "film_id": "f", "score": 3, "x": [1]"#)
            .expect("extra fields are ignored");
        assert_eq!(
            ignored.payload,
            UgcPayload::BookmarkSet {
                film_id: "f".into()
            }
        );
        assert!(decode(r#""type": "rating_set", "film_id": "f", "score": 300"#).is_err());
    }

    /// UUIDs are accepted hyphenated or plain, and nothing else.
    #[test]
    fn uuid_forms() {
        assert!(is_uuid(FILM));
        assert!(is_uuid(&FILM.replace('-', "")));
        assert!(!is_uuid("30000000-0000-4000-8000-00000000000g"));
        assert!(!is_uuid("3000000-00000-4000-8000-000000000001"));
        assert!(is_uuid(&FILM.to_uppercase()));
        for refused in [
            "",
            "{30000000-0000-4000-8000-000000000001}",
            "30000000-0000-4000-8000-0000000000011",
            "300000000000-4000-8000-000000000001-",
            "3000000000004000800000000000000g",
            "30000000-0000-4000-8000-00000000000é",
            "urn:uuid:30000000-0000-4000-8000-000000000001",
        ] {
            assert!(!is_uuid(refused), "{refused}");
        }
    }
}
