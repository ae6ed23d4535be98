//! The write requests' inputs: path ids and JSON bodies, checked field by field into
//! [`Draft`]s, then stamped into [`UgcEvent`]s.
//!
//! Bodies are read as `serde_json::Value` and each field is taken by hand, so every
//! error names the field as the client wrote it: `position_s` in a single-event body,
//! `events[3].position_s` in a batch. This module checks shapes and JSON types; the
//! rules themselves (ranges, UUIDs, review length) are [`UgcPayload::validate`]'s, run
//! on every draft before anything is stamped. A batch is all or nothing: the first
//! invalid event rejects the request.
//!
//! [`stamp`] gives each draft its ids (see [`crate::ids`] for the derivations) and the
//! server's `user_id` and `occurred_at_ms`; it cannot fail. Pure: no I/O.

use cinema_domain::ugc::{EventType, MAX_EVENTS_PER_BATCH, UgcEvent, UgcPayload};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ids::{
    IDEMPOTENCY_KEY_HEADER, IdempotencyKey, canonical_uuid, event_id_for_key, review_id_for,
};
use crate::route::Write;

/// Field naming the whole batch of `POST /events`.
pub const EVENTS_FIELD: &str = "events";
/// Field naming the `Idempotency-Key` header in errors.
pub const IDEMPOTENCY_KEY_FIELD: &str = "Idempotency-Key";
/// Field naming a whole non-batch body that is not a JSON object.
pub const BODY_FIELD: &str = "body";
/// The only event type `POST /events` accepts; the others have their own routes.
/// `review_id` of a review draft until [`stamp`] derives the real one from its event
/// id; a valid UUID so validation can run first. Never leaves the component.
const PENDING_REVIEW_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A field that breaks a rule, named as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `film_id`, `events[3].position_s`, `Idempotency-Key`, ...
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a request's input is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// 400: the body is not JSON; the parser's message, without positions.
    NotJson(String),
    /// 422: a value breaks a rule.
    Invalid(Invalid),
}

impl From<Invalid> for InputError {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

pub type InputResult<T, E = InputError> = Result<T, E>;

/// One valid event before the server stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The validated payload; a review's `review_id` is [`PENDING_REVIEW_ID`] until
    /// [`stamp`].
    pub payload: UgcPayload,
    /// The body's `event_id` (canonical form), used when no `Idempotency-Key` is sent.
    pub client_event_id: Option<String>,
}

/// A UUID from the request path, canonicalized; `field` names it (`film_id`,
/// `review_id`).
pub fn path_uuid(field: &str, segment: &str) -> Result<String, Invalid> {
    canonical_uuid(segment).ok_or_else(|| Invalid::new(field, "must be a UUID"))
}

/// The request's `Idempotency-Key`, if it sent one (once, and valid).
pub fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<IdempotencyKey>, Invalid> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Invalid::new(IDEMPOTENCY_KEY_FIELD, "must be sent once"));
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(|message| Invalid::new(IDEMPOTENCY_KEY_FIELD, message))
}

/// The drafts of a write: its path ids checked and, for writes with a body, the body
/// parsed.
pub fn drafts(write: Write<'_>, body: &[u8]) -> InputResult<Vec<Draft>> {
    let film = |id: &str| path_uuid("film_id", id);
    let review = |id: &str| path_uuid("review_id", id);
    let no_body = |payload: UgcPayload| -> InputResult<Vec<Draft>> {
        Ok(vec![Draft {
            payload,
            client_event_id: None,
        }])
    };
    match write {
        Write::ViewProgress => match valid_heartbeats(body) {
            Some(drafts) => Ok(drafts),
            None => view_progress_batch(&parse_json(body)?),
        },
        Write::BookmarkSet { film_id } => no_body(UgcPayload::BookmarkSet {
            film_id: film(film_id)?,
        }),
        Write::BookmarkRemoved { film_id } => no_body(UgcPayload::BookmarkRemoved {
            film_id: film(film_id)?,
        }),
        Write::RatingRemoved { film_id } => no_body(UgcPayload::RatingRemoved {
            film_id: film(film_id)?,
        }),
        Write::ReviewLikeRemoved { review_id } => no_body(UgcPayload::ReviewLikeRemoved {
            review_id: review(review_id)?,
        }),
        // Whether the caller may is the handler's check (it needs the read model).
        Write::ReviewDeleted { review_id } => no_body(UgcPayload::ReviewDeleted {
            review_id: review(review_id)?,
        }),
        Write::RatingSet { film_id } => {
            let film_id = film(film_id)?;
            single(body, |fields| {
                Ok(UgcPayload::RatingSet {
                    film_id,
                    score: fields.count::<u8>("score")?,
                })
            })
        }
        Write::ReviewPosted { film_id } => {
            let film_id = film(film_id)?;
            single(body, |fields| {
                Ok(UgcPayload::ReviewPosted {
                    review_id: PENDING_REVIEW_ID.to_owned(),
                    film_id,
                    // Stored as checked: the length rule counts the trimmed text.
                    text: fields.string("text")?.trim().to_owned(),
                })
            })
        }
        Write::ReviewLikeSet { review_id } => {
            let review_id = review(review_id)?;
            single(body, |fields| {
                Ok(UgcPayload::ReviewLikeSet {
                    review_id,
                    value: fields.like_value("value")?,
                })
            })
        }
    }
}

/// Who and when, as the server knows them, and the request's idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The token's `sub`.
    pub user_id: &'a str,
    /// Now, Unix milliseconds.
    pub occurred_at_ms: i64,
    pub idempotency_key: Option<&'a IdempotencyKey>,
}

/// The review a payload is about (likes, deletions).
fn review_target(payload: &UgcPayload) -> Option<String> {
    match payload {
        UgcPayload::ReviewDeleted { review_id }
        | UgcPayload::ReviewLikeSet { review_id, .. }
        | UgcPayload::ReviewLikeRemoved { review_id } => Some(review_id.clone()),
        _ => None,
    }
}

/// The events of valid drafts. Event ids: derived from the idempotency key when there
/// is one, else the body's `event_id`, else `fresh()`. Reviews get their id from their
/// event id.
pub fn stamp(
    drafts: Vec<Draft>,
    stamp: Stamp<'_>,
    mut fresh: impl FnMut() -> String,
) -> Vec<UgcEvent> {
    drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            let event_id = match (stamp.idempotency_key, draft.client_event_id) {
                (Some(key), _) => {
                    let target = draft
                        .payload
                        .film_id()
                        .map(str::to_owned)
                        .or_else(|| review_target(&draft.payload))
                        .unwrap_or_default();
                    let scope = format!("{}:{target}", draft.payload.type_name());
                    event_id_for_key(stamp.user_id, &scope, key, index)
                }
                (None, Some(client)) => client,
                (None, None) => fresh(),
            };
            let mut payload = draft.payload;
            if let UgcPayload::ReviewPosted { review_id, .. } = &mut payload {
                *review_id = review_id_for(&event_id);
            }
            UgcEvent {
                event_id,
                user_id: stamp.user_id.to_owned(),
                occurred_at_ms: stamp.occurred_at_ms,
                payload,
            }
        })
        .collect()
}

fn parse_json(body: &[u8]) -> InputResult<Value> {
    serde_json::from_slice(body).map_err(|error| {
        let message = error.to_string();
        // Positions help nobody over HTTP; keep what was wrong.
        let message = message.split(" at line").next().unwrap_or(&message);
        InputError::NotJson(format!("the body is not JSON: {message}"))
    })
}

/// `POST /events`: one event object or an array of 1 to [`MAX_EVENTS_PER_BATCH`].
fn view_progress_batch(body: &Value) -> InputResult<Vec<Draft>> {
    match body {
        Value::Object(object) => Ok(vec![view_progress(&Fields::new(object, None))?]),
        Value::Array(events) if events.is_empty() => {
            Err(Invalid::new(EVENTS_FIELD, "must hold at least one event").into())
        }
        Value::Array(events) if events.len() > MAX_EVENTS_PER_BATCH => Err(Invalid::new(
            EVENTS_FIELD,
            format!("must hold at most {MAX_EVENTS_PER_BATCH} events"),
        )
        .into()),
        Value::Array(events) => events
            .iter()
            .enumerate()
            .map(|(index, event)| match event {
                Value::Object(object) => Ok(view_progress(&Fields::new(object, Some(index)))?),
                _ => Err(Invalid::new(
                    format!("{EVENTS_FIELD}[{index}]"),
                    "must be an event object",
                )
                .into()),
            })
            .collect(),
        _ => Err(Invalid::new(
            EVENTS_FIELD,
            format!("must be an event object or an array of 1 to {MAX_EVENTS_PER_BATCH} of them"),
        )
        .into()),
    }
}

/// A heartbeat as a valid one is written: decoded straight into borrowed fields, with
/// no tree of values in between.
#[derive(Deserialize)]
struct PlainHeartbeat<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    film_id: &'a str,
    position_s: u32,
    duration_s: u32,
    #[serde(default, borrow)]
    event_id: Option<&'a str>,
}

impl PlainHeartbeat<'_> {
    fn draft(&self) -> Option<Draft> {
        if self.kind != EventType::ViewProgress.as_str() {
            return None;
        }
        let payload = UgcPayload::ViewProgress {
            film_id: canonical_uuid(self.film_id)?,
            position_s: self.position_s,
            duration_s: self.duration_s,
        };
        payload.validate().ok()?;
        let client_event_id = match self.event_id {
            Some(id) => Some(canonical_uuid(id)?),
            None => None,
        };
        Some(Draft {
            payload,
            client_event_id,
        })
    }
}

/// The drafts of a `POST /events` body whose every heartbeat is plainly valid (the
/// usual request, and the hot path of the intake), or `None` for anything else:
/// escaped strings, whole floats, nulls, repeated keys, a rule broken. `None` costs a
/// second reading through [`view_progress_batch`], which accepts everything this
/// accepts, with the same drafts, and names the field of whatever it refuses.
fn valid_heartbeats(body: &[u8]) -> Option<Vec<Draft>> {
    match body.iter().find(|b| !b.is_ascii_whitespace())? {
        b'[' => {
            let heartbeats: Vec<PlainHeartbeat<'_>> = serde_json::from_slice(body).ok()?;
            if heartbeats.is_empty() || heartbeats.len() > MAX_EVENTS_PER_BATCH {
                return None;
            }
            heartbeats.iter().map(PlainHeartbeat::draft).collect()
        }
        b'{' => Some(vec![
            serde_json::from_slice::<PlainHeartbeat<'_>>(body)
                .ok()?
                .draft()?,
        ]),
        _ => None,
    }
}

fn view_progress(fields: &Fields<'_>) -> Result<Draft, Invalid> {
    if fields.string("type")? != EventType::ViewProgress.as_str() {
        return Err(fields.invalid(
            "type",
            "only view_progress events are accepted on this route",
        ));
    }
    let film_id = fields.string("film_id")?;
    let payload = UgcPayload::ViewProgress {
        // Left as sent when it is not a UUID: validation names it.
        film_id: canonical_uuid(film_id).unwrap_or_else(|| film_id.to_owned()),
        position_s: fields.count("position_s")?,
        duration_s: fields.count("duration_s")?,
    };
    fields.draft(payload)
}

/// A non-batch body: one JSON object, turned into one draft by `payload`.
fn single(
    body: &[u8],
    payload: impl FnOnce(&Fields<'_>) -> Result<UgcPayload, Invalid>,
) -> InputResult<Vec<Draft>> {
    let Value::Object(object) = parse_json(body)? else {
        return Err(Invalid::new(BODY_FIELD, "must be a JSON object").into());
    };
    let fields = Fields::new(&object, None);
    Ok(vec![fields.draft(payload(&fields)?)?])
}

/// The fields of one JSON object; in errors, those of a batch's `index`-th event are
/// named with their place (`events[3].position_s`). The name is only made for an error.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    index: Option<usize>,
}

impl<'a> Fields<'a> {
    fn new(object: &'a Map<String, Value>, index: Option<usize>) -> Self {
        Self { object, index }
    }

    fn invalid(&self, field: &str, message: impl Into<String>) -> Invalid {
        let name = match self.index {
            Some(index) => format!("{EVENTS_FIELD}[{index}].{field}"),
            None => field.to_owned(),
        };
        Invalid::new(name, message)
    }

    /// A present, non-null field.
    fn required(&self, field: &str) -> Result<&'a Value, Invalid> {
        match self.object.get(field) {
            None | Some(Value::Null) => Err(self.invalid(field, "is required")),
            Some(value) => Ok(value),
        }
    }

    fn string(&self, field: &str) -> Result<&'a str, Invalid> {
        self.required(field)?
            .as_str()
            .ok_or_else(|| self.invalid(field, "must be a string"))
    }

    /// A whole JSON number (`12` or `12.0`, not `12.5`).
    fn integer(&self, field: &str) -> Result<i64, Invalid> {
        let Value::Number(number) = self.required(field)? else {
            return Err(self.invalid(field, "must be a number"));
        };
        if let Some(value) = number.as_i64() {
            return Ok(value);
        }
        if number.as_u64().is_some() {
            return Err(self.invalid(field, "is too large"));
        }
        match number.as_f64() {
            Some(value) if value.is_finite() && value.fract() == 0.0 => {
                if value < i64::MIN as f64 || value > i64::MAX as f64 {
                    Err(self.invalid(field, "is too large"))
                } else {
                    Ok(value as i64)
                }
            }
            _ => Err(self.invalid(field, "must be a whole number")),
        }
    }

    /// A whole, non-negative number that fits `T` (seconds, a score).
    fn count<T: TryFrom<i64>>(&self, field: &str) -> Result<T, Invalid> {
        let value = self.integer(field)?;
        if value < 0 {
            return Err(self.invalid(field, "must not be negative"));
        }
        T::try_from(value).map_err(|_| self.invalid(field, "is too large"))
    }

    /// A like's `value`; whether it is 1 or -1 is the domain's rule.
    fn like_value(&self, field: &str) -> Result<i8, Invalid> {
        // Out of `i8`, 0 is just as wrong and gets the domain's message.
        Ok(i8::try_from(self.integer(field)?).unwrap_or(0))
    }

    /// The body's optional `event_id` (null is absent), canonicalized.
    fn event_id(&self) -> Result<Option<String>, Invalid> {
        match self.object.get("event_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => canonical_uuid(id)
                .map(Some)
                .ok_or_else(|| self.invalid("event_id", "must be a UUID")),
            Some(_) => Err(self.invalid("event_id", "must be a UUID")),
        }
    }

    /// A draft of `payload` once the domain's rules and the body's `event_id` pass.
    fn draft(&self, payload: UgcPayload) -> Result<Draft, Invalid> {
        payload
            .validate()
            .map_err(|error| self.invalid(error.field, error.message))?;
        Ok(Draft {
            client_event_id: self.event_id()?,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use cinema_domain::ugc::MAX_REVIEW_CHARS;
    use serde_json::json;

    use super::*;

    const FILM: &str = "30000000-0000-4000-8000-000000000001";
    const REVIEW: &str = "40000000-0000-4000-8000-000000000001";
    const EVENT: &str = "50000000-0000-4000-8000-000000000001";
    const USER: &str = "10000000-0000-4000-8000-000000000001";

    fn heartbeat(position_s: i64) -> Value {
        json!({"type": "view_progress", "film_id": FILM, "position_s": position_s,
               "duration_s": 5400})
    }

    fn events(body: &Value) -> InputResult<Vec<Draft>> {
        drafts(Write::ViewProgress, body.to_string().as_bytes())
    }

    fn with_body(write: Write<'_>, body: &Value) -> InputResult<Vec<Draft>> {
        drafts(write, body.to_string().as_bytes())
    }

    fn field_of(result: InputResult<Vec<Draft>>) -> String {
        match result {
            Err(InputError::Invalid(invalid)) => invalid.field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw.as_bytes()).expect("a valid key")
    }

    fn stamped(drafts: Vec<Draft>, key: Option<&IdempotencyKey>) -> Vec<UgcEvent> {
        let mut fresh_ids = 0;
        stamp(
            drafts,
            Stamp {
                user_id: USER,
                occurred_at_ms: 1_764_150_000_000,
                idempotency_key: key,
            },
            || {
                fresh_ids += 1;
                format!("fresh-{fresh_ids}")
            },
        )
    }

    /// A single heartbeat object is one view_progress event.
    #[test]
    fn single_heartbeat_object_is_one_view_progress_event() {
        let drafts = events(&heartbeat(120)).expect("valid");
        assert_eq!(
            drafts,
            vec![Draft {
                payload: UgcPayload::ViewProgress {
                    film_id: FILM.into(),
                    position_s: 120,
                    duration_s: 5400,
                },
                client_event_id: None,
            }]
        );
    }

    /// An array of 500 heartbeats is one batch of 500 events, in order.
    #[test]
    fn batch_of_500_events_is_accepted_in_order() {
        let batch: Vec<Value> = (0..500).map(heartbeat).collect();
        let drafts = events(&Value::Array(batch)).expect("valid");
        assert_eq!(drafts.len(), 500);
        assert!(matches!(
            drafts[499].payload,
            UgcPayload::ViewProgress {
                position_s: 499,
                ..
            }
        ));
    }

    /// 501 events are refused as a whole, naming `events`.
    #[test]
    fn batch_over_500_events_is_rejected_naming_events() {
        let batch: Vec<Value> = (0..501).map(heartbeat).collect();
        assert_eq!(field_of(events(&Value::Array(batch))), "events");
    }

    /// An empty array is refused, naming `events`.
    #[test]
    fn empty_batch_is_rejected_naming_events() {
        assert_eq!(field_of(events(&json!([]))), "events");
    }

    /// A body that is neither an object nor an array is refused, naming `events`.
    #[test]
    fn scalar_events_body_is_rejected_naming_events() {
        assert_eq!(field_of(events(&json!("hello"))), "events");
        assert_eq!(field_of(events(&json!([heartbeat(1), 7]))), "events[1]");
    }

    /// Negative seconds name the field, with the batch index in arrays.
    #[test]
    fn negative_position_is_rejected_naming_the_indexed_field() {
        assert_eq!(field_of(events(&heartbeat(-1))), "position_s");
        let batch = json!([heartbeat(1), heartbeat(2), heartbeat(3), heartbeat(-4)]);
        assert_eq!(field_of(events(&batch)), "events[3].position_s");
    }

    /// Wrong JSON types and missing fields name the field.
    #[test]
    fn wrong_json_types_and_missing_fields_are_rejected_naming_the_field() {
        let mut event = heartbeat(1);
        event["duration_s"] = json!("5400");
        assert_eq!(field_of(events(&event)), "duration_s");
        event["duration_s"] = json!(54.5);
        assert_eq!(field_of(events(&event)), "duration_s");
        event["duration_s"] = json!(5_000_000_000_u64);
        assert_eq!(field_of(events(&event)), "duration_s");
        let mut event = heartbeat(1);
        event["film_id"] = json!(42);
        assert_eq!(field_of(events(&json!([event]))), "events[0].film_id");
        let mut event = heartbeat(1);
        if let Some(object) = event.as_object_mut() {
            object.remove("position_s");
        }
        assert_eq!(field_of(events(&event)), "position_s");
    }

    /// Whole numbers written as floats are whole numbers.
    #[test]
    fn whole_floats_are_accepted_as_seconds() {
        let mut event = heartbeat(1);
        event["position_s"] = json!(120.0);
        assert!(events(&event).is_ok());
    }

    /// The domain's rules run on every event: position past the end names `position_s`,
    /// a bad film id names `film_id`.
    #[test]
    fn domain_rules_name_their_field() {
        let mut event = heartbeat(6000);
        assert_eq!(field_of(events(&event)), "position_s");
        event = heartbeat(1);
        event["film_id"] = json!("not-a-film");
        assert_eq!(
            field_of(events(&json!([heartbeat(0), event]))),
            "events[1].film_id"
        );
    }

    /// Other and unknown event types are refused on `/events`, naming `type`.
    #[test]
    fn only_view_progress_is_accepted_on_the_events_route() {
        let mut event = heartbeat(1);
        event["type"] = json!("rating_set");
        assert_eq!(field_of(events(&event)), "type");
        event["type"] = json!("teleport");
        assert_eq!(
            field_of(events(&json!([heartbeat(0), event]))),
            "events[1].type"
        );
        if let Some(object) = event.as_object_mut() {
            object.remove("type");
        }
        assert_eq!(field_of(events(&event)), "type");
    }

    /// One bad event fails the whole batch: no drafts come back.
    #[test]
    fn one_invalid_event_rejects_the_whole_batch() {
        let batch = json!([heartbeat(1), heartbeat(-2), heartbeat(3)]);
        assert!(events(&batch).is_err());
    }

    /// A body `event_id` must be a UUID, named with its index in batches.
    #[test]
    fn body_event_id_that_is_not_a_uuid_is_rejected_naming_it() {
        let mut event = heartbeat(1);
        event["event_id"] = json!("nope");
        assert_eq!(field_of(events(&event)), "event_id");
        assert_eq!(
            field_of(events(&json!([heartbeat(0), heartbeat(1), event]))),
            "events[2].event_id"
        );
        let mut event = heartbeat(1);
        event["event_id"] = json!(12);
        assert_eq!(field_of(events(&event)), "event_id");
    }

    /// Bodies that are not JSON are 400 `bad_json`, not 422.
    #[test]
    fn body_that_is_not_json_is_bad_json() {
        assert!(matches!(
            drafts(Write::ViewProgress, b"{not json"),
            Err(InputError::NotJson(_))
        ));
        assert!(matches!(
            drafts(Write::RatingSet { film_id: FILM }, b""),
            Err(InputError::NotJson(_))
        ));
    }

    /// The plain reading of heartbeats agrees with the field-by-field one: on every body
    /// below (each field of a heartbeat replaced by each odd value, or left out, alone
    /// and in a batch) it either steps aside or gives the very same drafts; and it does
    /// take the plain bodies.
    #[test]
    fn plain_heartbeats_read_the_same_as_field_by_field() {
        let odd_values = [
            "null",
            "true",
            "\"x\"",
            "-1",
            "0",
            "-0",
            "7",
            "120.0",
            "120.5",
            "1e2",
            "4294967296",
            "99999999999999999999",
            "[]",
            "{}",
            "\"view_progress\"",
            "\"rating_set\"",
            "\"view\\u005fprogress\"",
            "\"30000000-0000-4000-8000-000000000001\"",
            "\"30000000000040008000000000000001\"",
            "\"3000000A-0000-4000-8000-00000000000B\"",
            "\"3000000\\u0041-0000-4000-8000-000000000001\"",
            "\"30000000-0000-4000-8000-00000000000\"",
        ];
        let fields = [
            "type",
            "film_id",
            "position_s",
            "duration_s",
            "event_id",
            "extra",
        ];
        let plain = [
            ("type", "\"view_progress\""),
            ("film_id", "\"30000000-0000-4000-8000-000000000001\""),
            ("position_s", "120"),
            ("duration_s", "5400"),
        ];
        let object = |replaced: &str, value: Option<&str>| {
            let mut members: Vec<String> = plain
                .iter()
                .filter(|(name, _)| *name != replaced)
                .map(|(name, v)| format!("\"{name}\":{v}"))
                .collect();
            if let Some(value) = value {
                members.push(format!("\"{replaced}\":{value}"));
            }
            format!("{{{}}}", members.join(","))
        };
        let mut bodies = vec![
            object("", None),
            format!("[{}]", object("", None)),
            format!("  [{0}, {0}]  ", object("", None)),
            "[]".to_owned(),
            "[1]".to_owned(),
            format!(
                "[{}]",
                vec![object("", None); MAX_EVENTS_PER_BATCH + 1].join(",")
            ),
            format!("{{\"type\":\"view_progress\",{}", &object("", None)[1..]),
        ];
        for field in fields {
            bodies.push(object(field, None));
            for value in odd_values {
                let one = object(field, Some(value));
                bodies.push(format!("[{}, {one}]", object("", None)));
                bodies.push(one);
            }
        }
        let mut taken = 0;
        for body in &bodies {
            if let Some(fast) = valid_heartbeats(body.as_bytes()) {
                taken += 1;
                let slow = view_progress_batch(&parse_json(body.as_bytes()).expect("JSON"));
                assert_eq!(Ok(fast), slow, "{body}");
            }
        }
        assert!(valid_heartbeats(bodies[0].as_bytes()).is_some());
        assert!(valid_heartbeats(bodies[2].as_bytes()).is_some());
        assert!(taken > 20, "the plain reading took only {taken} bodies");
    }

    /// Path ids must be UUIDs, named `film_id` or `review_id`, before any body is read.
    #[test]
    fn bad_path_ids_are_rejected_naming_film_id_or_review_id() {
        assert_eq!(
            field_of(drafts(Write::BookmarkSet { film_id: "x" }, b"")),
            "film_id"
        );
        assert_eq!(
            field_of(drafts(Write::RatingSet { film_id: "x" }, b"not json")),
            "film_id"
        );
        assert_eq!(
            field_of(drafts(Write::ReviewLikeRemoved { review_id: "x" }, b"")),
            "review_id"
        );
    }

    /// Bookmarks and removals take no body; any body is ignored.
    #[test]
    fn bodiless_writes_ignore_the_body() {
        let drafts = drafts(Write::BookmarkRemoved { film_id: FILM }, b"junk").expect("valid");
        assert_eq!(
            drafts[0].payload,
            UgcPayload::BookmarkRemoved {
                film_id: FILM.into()
            }
        );
    }

    /// Scores are whole numbers from 0 to 10; anything else names `score`.
    #[test]
    fn rating_score_must_be_0_to_10_naming_score() {
        let rate = |body: Value| with_body(Write::RatingSet { film_id: FILM }, &body);
        assert!(rate(json!({"score": 0})).is_ok());
        assert!(rate(json!({"score": 10})).is_ok());
        for score in [
            json!(11),
            json!(-1),
            json!(300),
            json!("7"),
            json!(7.5),
            json!(null),
        ] {
            assert_eq!(field_of(rate(json!({ "score": score }))), "score");
        }
        assert_eq!(field_of(rate(json!([1]))), "body");
    }

    /// Review text must be a non-empty string within the limit; it is stored trimmed.
    #[test]
    fn review_text_is_checked_and_trimmed() {
        let post = |body: Value| with_body(Write::ReviewPosted { film_id: FILM }, &body);
        let drafts = post(json!({"text": "  great film \n"})).expect("valid");
        assert!(matches!(
            &drafts[0].payload,
            UgcPayload::ReviewPosted { text, .. } if text == "great film"
        ));
        assert_eq!(field_of(post(json!({"text": "   "}))), "text");
        assert_eq!(field_of(post(json!({"text": 5}))), "text");
        let long = "я".repeat(MAX_REVIEW_CHARS + 1);
        assert_eq!(field_of(post(json!({ "text": long }))), "text");
    }

    /// Like values are 1 or -1; anything else names `value`.
    #[test]
    fn like_value_must_be_1_or_minus_1_naming_value() {
        let like = |body: Value| with_body(Write::ReviewLikeSet { review_id: REVIEW }, &body);
        assert!(like(json!({"value": 1})).is_ok());
        assert!(like(json!({"value": -1})).is_ok());
        for value in [json!(0), json!(2), json!(-1000), json!(true)] {
            assert_eq!(field_of(like(json!({ "value": value }))), "value");
        }
    }

    /// With an `Idempotency-Key` a repeated request gets the same ids, per position.
    #[test]
    fn idempotency_key_gives_the_same_event_ids_on_repeat() {
        let batch = json!([heartbeat(1), heartbeat(2)]);
        let key = key("player-7f-chunk-12");
        let first = stamped(events(&batch).expect("valid"), Some(&key));
        let again = stamped(events(&batch).expect("valid"), Some(&key));
        assert_eq!(first, again);
        assert_ne!(first[0].event_id, first[1].event_id);
        let scope = format!("view_progress:{FILM}");
        assert_eq!(first[1].event_id, event_id_for_key(USER, &scope, &key, 1));
    }

    /// The key wins over a body `event_id`; without a key the body's id is used
    /// (canonicalized); without either a fresh id is made.
    #[test]
    fn event_id_comes_from_the_key_then_the_body_then_fresh() {
        let mut with_id = heartbeat(1);
        with_id["event_id"] = json!(EVENT.to_uppercase());
        let batch = json!([with_id, heartbeat(2)]);
        let key = key("k");
        let keyed = stamped(events(&batch).expect("valid"), Some(&key));
        assert_eq!(
            keyed[0].event_id,
            event_id_for_key(USER, &format!("view_progress:{FILM}"), &key, 0)
        );
        let unkeyed = stamped(events(&batch).expect("valid"), None);
        assert_eq!(unkeyed[0].event_id, EVENT);
        assert_eq!(unkeyed[1].event_id, "fresh-1");
    }

    /// The server stamps the user and the time; client-sent ones are ignored.
    #[test]
    fn server_stamps_user_and_time_ignoring_the_client() {
        let mut event = heartbeat(1);
        event["user_id"] = json!("someone-else");
        event["occurred_at_ms"] = json!(1);
        let stamped = stamped(events(&event).expect("valid"), None);
        assert_eq!(stamped[0].user_id, USER);
        assert_eq!(stamped[0].occurred_at_ms, 1_764_150_000_000);
    }

    /// A posted review gets a real id derived from its event id, stable on repeat.
    #[test]
    fn review_gets_an_id_derived_from_its_event_id() {
        let body = json!({"text": "great"});
        let key = key("review-once");
        let post = || {
            stamped(
                with_body(Write::ReviewPosted { film_id: FILM }, &body).expect("valid"),
                Some(&key),
            )
        };
        let first = post();
        let UgcPayload::ReviewPosted { review_id, .. } = &first[0].payload else {
            panic!("a review");
        };
        assert_ne!(review_id, PENDING_REVIEW_ID);
        assert_eq!(*review_id, review_id_for(&first[0].event_id));
        assert_eq!(first, post());
        assert!(first[0].payload.validate().is_ok());
    }

    /// No header is no key; a valid one is taken; an empty, overlong or repeated one
    /// names `Idempotency-Key`.
    #[test]
    fn idempotency_key_header_is_optional_but_checked() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(idempotency_key(&headers), Ok(None));
        headers.insert("idempotency-key", http::HeaderValue::from_static("abc"));
        assert_eq!(idempotency_key(&headers), Ok(Some(key("abc"))));
        for bad in ["", &"k".repeat(201)] {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(bad) {
                headers.insert("idempotency-key", value);
            }
            let error = idempotency_key(&headers).expect_err("refused");
            assert_eq!(error.field, "Idempotency-Key");
        }
        headers.append("idempotency-key", http::HeaderValue::from_static("def"));
        let error = idempotency_key(&headers).expect_err("refused");
        assert_eq!(error.field, "Idempotency-Key");
    }

    /// Path ids are canonicalized, so one film has one id downstream.
    #[test]
    fn path_ids_are_canonicalized() {
        let upper = FILM.to_uppercase();
        let drafts = drafts(Write::BookmarkSet { film_id: &upper }, b"").expect("valid");
        assert_eq!(drafts[0].payload.film_id(), Some(FILM));
    }

    /// Deleting a review is one `review_deleted` draft of the canonical review id, with
    /// no body; a bad id names `review_id`.
    #[test]
    fn review_deletion_is_one_review_deleted_draft_naming_review_id_when_bad() {
        let upper = REVIEW.to_uppercase();
        let drafts_of = |id: &str| drafts(Write::ReviewDeleted { review_id: id }, b"ignored");
        assert_eq!(
            drafts_of(&upper).expect("valid"),
            vec![Draft {
                payload: UgcPayload::ReviewDeleted {
                    review_id: REVIEW.into()
                },
                client_event_id: None,
            }]
        );
        assert_eq!(field_of(drafts_of("not-a-uuid")), "review_id");
    }

    /// A review deletion retried with the same `Idempotency-Key` gets the same event id,
    /// scoped to the review.
    #[test]
    fn review_deletion_with_the_same_key_gets_the_same_event_id() {
        let key = key("delete-once");
        let delete = || {
            stamped(
                drafts(Write::ReviewDeleted { review_id: REVIEW }, b"").expect("valid"),
                Some(&key),
            )
        };
        let first = delete();
        assert_eq!(first, delete());
        assert_eq!(
            first[0].event_id,
            event_id_for_key(USER, &format!("review_deleted:{REVIEW}"), &key, 0)
        );
    }
}

/// Properties of the heartbeat body parsers over generated bodies: they never panic,
/// every refusal names a field of the body, and the fast path agrees with the general
/// one: whatever [`valid_heartbeats`] accepts, [`view_progress_batch`] accepts with the
/// same drafts (its own docs promise this; the intake relies on it).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A JSON value as text for a heartbeat field, valid or not, in the spellings
    /// clients use: escaped strings, whole floats, exponents, nulls, big numbers.
    fn json_value(field: &'static str) -> BoxedStrategy<String> {
        let accepted: BoxedStrategy<String> = match field {
            "type" => prop_oneof![
                10 => Just("\"view_progress\"".to_owned()),
                1 => Just("\"view\\u005fprogress\"".to_owned()),
                1 => Just("\"rating_set\"".to_owned()),
            ]
            .boxed(),
            "film_id" | "event_id" => any::<u128>()
                .prop_flat_map(|n| {
                    let simple = format!("{n:032x}");
                    let hyphenated = format!(
                        "{}-{}-{}-{}-{}",
                        &simple[..8],
                        &simple[8..12],
                        &simple[12..16],
                        &simple[16..20],
                        &simple[20..]
                    );
                    prop_oneof![
                        6 => Just(format!("\"{hyphenated}\"")),
                        2 => Just(format!("\"{simple}\"")),
                        1 => Just(format!("\"{}\"", hyphenated.to_uppercase())),
                        1 => Just(format!("\"{{{hyphenated}}}\"")),
                    ]
                })
                .boxed(),
            // Positions mostly below durations, so most heartbeats keep the rule.
            "position_s" => prop_oneof![
                10 => (0u32..1000).prop_map(|n| n.to_string()),
                1 => (0u32..1000).prop_map(|n| format!("{n}.0")),
                1 => Just("1e2".to_owned()),
                1 => Just("-1".to_owned()),
                1 => Just("4294967296".to_owned()),
            ]
            .boxed(),
            _ => prop_oneof![
                10 => (1000u32..=86_400).prop_map(|n| n.to_string()),
                1 => Just("0".to_owned()),
                1 => Just("999999999".to_owned()),
                1 => Just("3600.0".to_owned()),
            ]
            .boxed(),
        };
        prop_oneof![
            30 => accepted,
            1 => prop::sample::select(vec!["null", "true", "\"\"", "\"12\"", "[]", "{}", "0.5"])
                .prop_map(str::to_owned),
        ]
        .boxed()
    }

    /// One event object as JSON text: the heartbeat fields in any order, each sometimes
    /// missing or repeated, sometimes an unknown key.
    fn event_object() -> impl Strategy<Value = String> {
        let field = prop::sample::select(vec![
            "type",
            "film_id",
            "position_s",
            "duration_s",
            "event_id",
            "extra",
        ]);
        let member = field.prop_flat_map(|name| (Just(name), json_value(name)));
        let required = (
            json_value("type"),
            json_value("film_id"),
            json_value("position_s"),
            json_value("duration_s"),
        );
        let more = prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(member, 1..3)];
        (required, more, any::<bool>()).prop_map(
            |((kind, film, position, duration), more, reversed)| {
                let mut members = vec![
                    format!("\"type\":{kind}"),
                    format!("\"film_id\":{film}"),
                    format!("\"position_s\":{position}"),
                    format!("\"duration_s\":{duration}"),
                ];
                members.extend(
                    more.iter()
                        .map(|(name, value)| format!("\"{name}\":{value}")),
                );
                if reversed {
                    members.reverse();
                }
                format!("{{{}}}", members.join(","))
            },
        )
    }

    /// A body: one event object, an array of them (empty too), or something else.
    fn body() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => event_object(),
            6 => prop::collection::vec(event_object(), 1..5)
                .prop_map(|events| format!("[{}]", events.join(","))),
            1 => prop::sample::select(vec!["", "null", "[]", "[1]", "\"x\"", "{", "[{}]"])
                .prop_map(str::to_owned),
        ]
    }

    /// Whether `field` names something of a heartbeat body as the parsers spell it.
    fn names_a_body_field(field: &str) -> bool {
        let field = match field.strip_prefix(EVENTS_FIELD) {
            Some("") => return true,
            Some(rest) => match rest.split_once(']') {
                Some((index, tail)) if index.starts_with('[') => match tail.strip_prefix('.') {
                    Some(name) => name,
                    None => return tail.is_empty(),
                },
                _ => return false,
            },
            None => field,
        };
        [
            "type",
            "film_id",
            "position_s",
            "duration_s",
            "event_id",
            BODY_FIELD,
        ]
        .contains(&field)
    }

    proptest! {
        // Cheap cases (a quarter of a second for 20,000): many, so the fast path's
        // acceptances are well covered too.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn heartbeat_bodies_parse_or_name_their_field_and_the_fast_path_agrees(body in body()) {
            let bytes = body.as_bytes();
            let general = parse_json(bytes).and_then(|value| view_progress_batch(&value));
            if let Some(fast) = valid_heartbeats(bytes) {
                prop_assert_eq!(general.as_ref(), Ok(&fast), "{}", body);
            }
            match drafts(Write::ViewProgress, bytes) {
                Ok(drafts) => prop_assert_eq!(Ok(drafts), general),
                Err(InputError::NotJson(_)) => {}
                Err(InputError::Invalid(invalid)) => {
                    prop_assert!(names_a_body_field(&invalid.field), "{:?} for {}", invalid, body);
                }
            }
        }
    }
}
