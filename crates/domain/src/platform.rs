//! Platform events other than UGC: what auth and the catalog announce, for the notify
//! worker (and anyone else) to react to. One JSON object per event, tagged by `type`:
//!
//! ```json
//! {"event_id": "…", "occurred_at_ms": 1764000000000, "type": "user.registered",
//!  "user_id": "…", "email": "a@example.com", "locale": "ru", "first_name": "Anna"}
//! ```
//!
//! Auth writes its events into `platform.outbox` in the same statement as the change (the
//! SQL there builds exactly these objects); the host relays them to Kafka
//! [`AUTH_EVENTS_TOPIC`] keyed by user id. `event_id` makes every consumer idempotent.

use serde::{Deserialize, Serialize};

/// Kafka topic of account events.
pub const AUTH_EVENTS_TOPIC: &str = "auth.events";
/// Kafka topic of catalog events.
pub const CATALOG_EVENTS_TOPIC: &str = "catalog.events";

/// An event with its id and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformEvent {
    pub event_id: String,
    pub occurred_at_ms: i64,
    #[serde(flatten)]
    pub kind: PlatformEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PlatformEventKind {
    /// A new account (password or social sign-up).
    #[serde(rename = "user.registered")]
    UserRegistered {
        user_id: String,
        email: String,
        locale: String,
        #[serde(default)]
        first_name: String,
        /// Already confirmed (a social provider vouched for it): no confirmation link.
        #[serde(default)]
        email_confirmed: bool,
    },
    /// The account's password changed.
    #[serde(rename = "password.changed")]
    PasswordChanged {
        user_id: String,
        email: String,
        locale: String,
    },
    /// An admin blocked the account.
    #[serde(rename = "user.blocked")]
    UserBlocked {
        user_id: String,
        email: String,
        locale: String,
    },
    /// The account's owner asked to move it to `new_email` (proving the password); it
    /// moves only once the new address is confirmed. `email` is the address it has now.
    #[serde(rename = "email.change_requested")]
    EmailChangeRequested {
        user_id: String,
        email: String,
        locale: String,
        new_email: String,
    },
    /// A film became visible in the catalog.
    #[serde(rename = "film.published")]
    FilmPublished { film_id: String, title: String },
}

impl PlatformEventKind {
    /// The user the event is about, if it is about one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::UserRegistered { user_id, .. }
            | Self::PasswordChanged { user_id, .. }
            | Self::UserBlocked { user_id, .. }
            | Self::EmailChangeRequested { user_id, .. } => Some(user_id),
            Self::FilmPublished { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire shape is flat, tagged by `type`, as auth's SQL builds it.
    #[test]
    fn events_are_flat_objects_tagged_by_type() {
        let wire = r#"{"event_id":"e","occurred_at_ms":1,"type":"user.registered",
                       "user_id":"u","email":"a@example.com","locale":"en","first_name":"Anna"}"#;
        let event: PlatformEvent = serde_json::from_str(wire).expect("decodes");
        assert_eq!(event.kind.user_id(), Some("u"));
        assert!(
            matches!(event.kind, PlatformEventKind::UserRegistered { ref locale, .. } if locale == "en")
        );
        let back = serde_json::to_value(&event).expect("encodes");
        assert_eq!(back["type"], "user.registered");
        assert_eq!(back["email"], "a@example.com");
    }

    /// An email change request carries the current address and the new one, as auth's
    /// SQL builds it.
    #[test]
    fn email_change_request_carries_both_addresses() {
        let wire = r#"{"event_id":"e","occurred_at_ms":1,"type":"email.change_requested",
                       "user_id":"u","email":"old@example.com","locale":"ru",
                       "new_email":"new@example.com"}"#;
        let event: PlatformEvent = serde_json::from_str(wire).expect("decodes");
        assert_eq!(event.kind.user_id(), Some("u"));
        assert_eq!(
            event.kind,
            PlatformEventKind::EmailChangeRequested {
                user_id: "u".into(),
                email: "old@example.com".into(),
                locale: "ru".into(),
                new_email: "new@example.com".into(),
            }
        );
        let back = serde_json::to_value(&event).expect("encodes");
        assert_eq!(back["type"], "email.change_requested");
        assert_eq!(back["email"], "old@example.com");
        assert_eq!(back["new_email"], "new@example.com");
    }
}
