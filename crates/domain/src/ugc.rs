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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UgcEvent {
    /// Unique per event; repeats (same `Idempotency-Key` or `event_id`) share it.
    pub event_id: String,
    /// The authenticated user (token `sub`).
    pub user_id: String,
    /// When the server accepted it, Unix milliseconds.
    pub occurred_at_ms: i64,
    #[serde(flatten)]
    pub payload: UgcPayload,
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
    let hex: String = value.chars().filter(|c| *c != '-').collect();
    let dashes_ok = value.len() == 32
        || (value.len() == 36
            && value
                .char_indices()
                .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23)));
    dashes_ok && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
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
        match self {
            Self::ViewProgress { .. } => "view_progress",
            Self::BookmarkSet { .. } => "bookmark_set",
            Self::BookmarkRemoved { .. } => "bookmark_removed",
            Self::RatingSet { .. } => "rating_set",
            Self::RatingRemoved { .. } => "rating_removed",
            Self::ReviewPosted { .. } => "review_posted",
            Self::ReviewDeleted { .. } => "review_deleted",
            Self::ReviewLikeSet { .. } => "review_like_set",
            Self::ReviewLikeRemoved { .. } => "review_like_removed",
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

    /// Checks every rule; the error names the first offending field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(film_id) = self.film_id() {
            check_uuid("film_id", film_id)?;
        }
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
            Self::ReviewPosted {
                review_id, text, ..
            } => {
                check_uuid("review_id", review_id)?;
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
            Self::ReviewDeleted { review_id } | Self::ReviewLikeRemoved { review_id } => {
                check_uuid("review_id", review_id)?;
            }
            Self::ReviewLikeSet { review_id, value } => {
                check_uuid("review_id", review_id)?;
                if *value != 1 && *value != -1 {
                    return Err(field_error("value", "must be 1 or -1"));
                }
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

    /// UUIDs are accepted hyphenated or plain, and nothing else.
    #[test]
    fn uuid_forms() {
        assert!(is_uuid(FILM));
        assert!(is_uuid(&FILM.replace('-', "")));
        assert!(!is_uuid("30000000-0000-4000-8000-00000000000g"));
        assert!(!is_uuid("3000000-00000-4000-8000-000000000001"));
    }
}
