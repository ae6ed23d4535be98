//! The ClickHouse row of one event (`ugc_events`, see migrations/clickhouse).

use cinema_domain::ugc::{UgcEvent, UgcPayload};
use serde::Serialize;
use uuid::Uuid;

/// Table the loader writes.
pub const TABLE: &str = "ugc_events";

/// One row of `ugc_events`; absent ids are the nil UUID, absent numbers 0.
#[derive(Debug, Clone, PartialEq, Serialize, clickhouse::Row)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub event_type: &'static str,
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub film_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub review_id: Uuid,
    /// Seconds since the epoch (DateTime('UTC')).
    pub occurred_at: u32,
    pub position_s: u32,
    pub duration_s: u32,
    pub score: i8,
    pub value: i8,
    pub text: String,
    pub loaded_at: u32,
    /// Milliseconds from acceptance at the intake to the insert.
    pub load_lag_ms: u32,
}

impl EventRow {
    /// Stamps the row as loaded at `now_ms` (just before the insert), so `load_lag_ms`
    /// is acceptance-to-insert.
    pub fn loaded(mut self, occurred_at_ms: i64, now_ms: i64) -> Self {
        self.loaded_at = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        self.load_lag_ms = u32::try_from((now_ms - occurred_at_ms).max(0)).unwrap_or(u32::MAX);
        self
    }
}

/// A field's UUID: by fixed positions for canonical text (what decoded records carry),
/// by the general parser for anything else.
fn uuid(field: &str, value: &str) -> Result<Uuid, String> {
    cinema_domain::ugc::canonical_uuid_bytes(value)
        .map(Uuid::from_bytes)
        .map_or_else(|| Uuid::parse_str(value), Ok)
        .map_err(|_| format!("{field} is not a UUID: {value:?}"))
}

impl TryFrom<&UgcEvent> for EventRow {
    type Error = String;

    fn try_from(event: &UgcEvent) -> Result<Self, String> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let lag_ms = u32::try_from((now_ms - event.occurred_at_ms).max(0)).unwrap_or(u32::MAX);
        let mut row = EventRow {
            event_id: uuid("event_id", &event.event_id)?,
            event_type: event.payload.type_name(),
            user_id: uuid("user_id", &event.user_id)?,
            film_id: Uuid::nil(),
            review_id: Uuid::nil(),
            occurred_at: u32::try_from(event.occurred_at_ms.max(0) / 1000).unwrap_or(u32::MAX),
            position_s: 0,
            duration_s: 0,
            score: 0,
            value: 0,
            text: String::new(),
            loaded_at: now,
            load_lag_ms: lag_ms,
        };
        if let Some(film_id) = event.payload.film_id() {
            row.film_id = uuid("film_id", film_id)?;
        }
        match &event.payload {
            UgcPayload::ViewProgress {
                position_s,
                duration_s,
                ..
            } => {
                row.position_s = *position_s;
                row.duration_s = *duration_s;
            }
            UgcPayload::RatingSet { score, .. } => row.score = *score as i8,
            UgcPayload::ReviewPosted {
                review_id, text, ..
            } => {
                row.review_id = uuid("review_id", review_id)?;
                row.text = text.clone();
            }
            UgcPayload::ReviewDeleted { review_id }
            | UgcPayload::ReviewLikeRemoved { review_id } => {
                row.review_id = uuid("review_id", review_id)?;
            }
            UgcPayload::ReviewLikeSet { review_id, value } => {
                row.review_id = uuid("review_id", review_id)?;
                row.value = *value;
            }
            _ => {}
        }
        Ok(row)
    }
}
