//! Records on the events topic: how accepted events are packed into Kafka messages.
//!
//! The intake writes one record per accepted request, or a few when the request is
//! large: that request's events, in order, at most [`MAX_RECORD_BYTES`] each (an event
//! bigger than that travels alone). All events of a request belong to one user, the
//! record's key, so a user's events stay in order on one partition exactly as when each
//! event was a record of its own; a record costs the producer, the broker and every
//! consumer the same whether it holds one event or a hundred, which is what makes
//! batches cheap end to end.
//!
//! Records are written in the [`binary`] shape whenever every id is a UUID in canonical
//! text (what the ugc component and the intake produce), else as a JSON array of events.
//! Readers take every shape: binary, a JSON array, or one JSON event object (records
//! written before binary records or before batching, spool replays of old versions, a
//! record produced by hand). A record whose events do not all decode is read event by
//! event, so one bad event is dead-lettered alone and the others load.

pub mod binary;

use serde_json::Value;

use super::UgcEvent;

/// Largest record the intake writes, in bytes (Kafka's default `message.max.bytes` is
/// about 1 MB; a quarter of it leaves room for headers and batch framing).
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// `events` packed into records of at most `max_bytes`, in order: binary when every
/// event can be, else JSON arrays.
pub fn encode(events: &[UgcEvent], max_bytes: usize) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    match encode_binary(events, max_bytes) {
        Some(records) => Ok(records),
        None => encode_json(events, max_bytes),
    }
}

/// `events` as binary records of at most `max_bytes`, or `None` when one of them
/// cannot be written in that shape.
fn encode_binary(events: &[UgcEvent], max_bytes: usize) -> Option<Vec<Vec<u8>>> {
    let header = binary::HEADER.len();
    let mut records = Vec::new();
    let mut record = Vec::with_capacity(events.len().saturating_mul(80).min(max_bytes) + header);
    record.extend_from_slice(&binary::HEADER);
    let mut encoded = Vec::with_capacity(128);
    for event in events {
        encoded.clear();
        if !binary::encode_event(&mut encoded, event) {
            return None;
        }
        if record.len() > header && record.len() + encoded.len() > max_bytes {
            records.push(std::mem::replace(&mut record, binary::HEADER.to_vec()));
        }
        record.extend_from_slice(&encoded);
    }
    if record.len() > header {
        records.push(record);
    }
    Some(records)
}

/// `events` as JSON arrays of at most `max_bytes`.
fn encode_json(events: &[UgcEvent], max_bytes: usize) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    let mut records = Vec::new();
    let mut record = Vec::with_capacity(events.len().saturating_mul(192).min(max_bytes) + 2);
    let mut encoded = Vec::with_capacity(256);
    for event in events {
        encoded.clear();
        serde_json::to_writer(&mut encoded, event)?;
        // `[` plus one event, or the events so far, a comma, this one and `]`.
        let full = !record.is_empty() && record.len() + 1 + encoded.len() + 1 > max_bytes;
        if full {
            record.push(b']');
            records.push(std::mem::take(&mut record));
        }
        record.push(if record.is_empty() { b'[' } else { b',' });
        record.extend_from_slice(&encoded);
    }
    if !record.is_empty() {
        record.push(b']');
        records.push(record);
    }
    Ok(records)
}

/// An event of a record that is not an event, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// Its position in the record's array (`None`: the record as a whole).
    pub index: Option<usize>,
    /// Its bytes: the whole record, or the event re-encoded from the array.
    pub payload: Vec<u8>,
    pub error: String,
}

/// What one record holds.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Its events, in order.
    pub events: Vec<UgcEvent>,
    /// What did not decode.
    pub undecodable: Vec<Undecodable>,
}

/// The events of one record (see the module docs for the shapes).
pub fn decode(payload: &[u8]) -> Decoded {
    if binary::is_binary(payload) {
        return decode_binary(payload);
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return match serde_json::from_slice::<UgcEvent>(payload) {
            Ok(event) => Decoded {
                events: vec![event],
                undecodable: Vec::new(),
            },
            Err(error) => whole_record(payload, &error),
        };
    }
    // The usual case in one pass; only a record with a bad event is read twice.
    if let Ok(events) = serde_json::from_slice::<Vec<UgcEvent>>(payload) {
        return Decoded {
            events,
            undecodable: Vec::new(),
        };
    }
    let items = match serde_json::from_slice::<Vec<Value>>(payload) {
        Ok(items) => items,
        Err(error) => return whole_record(payload, &error),
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        let payload = serde_json::to_vec(&item).unwrap_or_default();
        match serde_json::from_value::<UgcEvent>(item) {
            Ok(event) => decoded.events.push(event),
            Err(error) => decoded.undecodable.push(Undecodable {
                index: Some(index),
                payload,
                error: error.to_string(),
            }),
        }
    }
    decoded
}

/// The events of a binary record; a bad event is reported alone, a broken frame with
/// the rest of the record.
fn decode_binary(payload: &[u8]) -> Decoded {
    let frames = match binary::frames(payload) {
        Ok(frames) => frames,
        Err(error) => return whole_record(payload, &error),
    };
    let mut decoded = Decoded::default();
    for (index, frame) in frames.enumerate() {
        let (bytes, result) = match frame {
            Ok(bytes) => (bytes, binary::decode_event(bytes)),
            Err((rest, error)) => (rest, Err(error)),
        };
        match result {
            Ok(event) => decoded.events.push(event),
            Err(error) => decoded.undecodable.push(Undecodable {
                index: Some(index),
                payload: bytes.to_vec(),
                error: error.to_string(),
            }),
        }
    }
    decoded
}

fn whole_record(payload: &[u8], error: &dyn std::fmt::Display) -> Decoded {
    Decoded {
        events: Vec::new(),
        undecodable: vec![Undecodable {
            index: None,
            payload: payload.to_vec(),
            error: error.to_string(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ugc::UgcPayload;

    fn heartbeat(n: u32) -> UgcEvent {
        UgcEvent {
            event_id: format!("00000000-0000-4000-8000-{n:012}"),
            user_id: "10000000-0000-4000-8000-000000000001".into(),
            occurred_at_ms: 1_764_150_000_000,
            payload: UgcPayload::ViewProgress {
                film_id: "30000000-0000-4000-8000-000000000001".into(),
                position_s: n,
                duration_s: 5400,
            },
        }
    }

    /// A request's events come back from its records in order, whatever the size bound.
    #[test]
    fn events_round_trip_through_records_in_order() {
        let events: Vec<UgcEvent> = (0..100).map(heartbeat).collect();
        for max_bytes in [1, 500, 4096, MAX_RECORD_BYTES] {
            let records = encode(&events, max_bytes).expect("encodable");
            let back: Vec<UgcEvent> = records
                .iter()
                .flat_map(|record| {
                    let decoded = decode(record);
                    assert!(decoded.undecodable.is_empty(), "{decoded:?}");
                    decoded.events
                })
                .collect();
            assert_eq!(back, events, "max_bytes {max_bytes}");
        }
    }

    /// Records stay within the bound; an event over it travels alone.
    #[test]
    fn records_stay_within_the_bound_and_a_big_event_travels_alone() {
        let events: Vec<UgcEvent> = (0..100).map(heartbeat).collect();
        let one = encode(&events[..1], MAX_RECORD_BYTES).expect("encodable")[0].len();
        let records = encode(&events, 10 * one).expect("encodable");
        assert!(records.len() >= 10, "{} records", records.len());
        assert!(records.iter().all(|r| r.len() <= 10 * one));
        let records = encode(&events[..3], one / 2).expect("encodable");
        assert_eq!(
            records.len(),
            3,
            "one event per record when each is over the bound"
        );
        assert_eq!(
            encode(&[], MAX_RECORD_BYTES).expect("encodable"),
            Vec::<Vec<u8>>::new()
        );
    }

    /// Events with canonical ids travel binary; one id in another form (still a UUID,
    /// or not one) makes the request's records JSON, and both read back the same.
    #[test]
    fn canonical_events_travel_binary_and_the_rest_as_json() {
        let events: Vec<UgcEvent> = (0..3).map(heartbeat).collect();
        let records = encode(&events, MAX_RECORD_BYTES).expect("encodable");
        assert!(binary::is_binary(&records[0]));
        assert_eq!(decode(&records[0]).events, events);
        for odd in ["30000000-0000-4000-8000-00000000000A", "user-7"] {
            let mut events = events.clone();
            events[2].user_id = odd.into();
            let records = encode(&events, MAX_RECORD_BYTES).expect("encodable");
            assert_eq!(records[0].first(), Some(&b'['), "{odd}");
            assert_eq!(decode(&records[0]).events, events);
        }
    }

    /// A binary record with a damaged event yields the others and reports that one
    /// with its index and bytes; a record of an unknown version is reported whole.
    #[test]
    fn a_bad_event_in_a_binary_record_is_reported_alone() {
        let events: Vec<UgcEvent> = (0..3).map(heartbeat).collect();
        let mut record = encode(&events, MAX_RECORD_BYTES)
            .expect("encodable")
            .remove(0);
        let frame = (record.len() - binary::HEADER.len()) / 3;
        // The second event's type byte.
        record[binary::HEADER.len() + frame + 4] = 99;
        let decoded = decode(&record);
        assert_eq!(decoded.events, vec![heartbeat(0), heartbeat(2)]);
        let [bad] = decoded.undecodable.as_slice() else {
            panic!("one undecodable event: {decoded:?}");
        };
        assert_eq!(bad.index, Some(1));
        assert_eq!(bad.payload.len(), frame - 4);
        assert!(bad.error.contains("unknown type 99"), "{}", bad.error);
        record[1] = 7;
        let decoded = decode(&record);
        assert!(decoded.events.is_empty());
        assert_eq!(decoded.undecodable[0].index, None);
        assert!(decoded.undecodable[0].error.contains("version 7"));
    }

    /// A record holding one event object (written before batching) is one event.
    #[test]
    fn a_single_event_object_is_one_event() {
        let record = serde_json::to_vec(&heartbeat(7)).expect("encodable");
        assert_eq!(decode(&record).events, vec![heartbeat(7)]);
    }

    /// One bad event in a record is reported alone, with its index and why; the others
    /// decode.
    #[test]
    fn one_bad_event_in_a_record_is_reported_alone() {
        let good = serde_json::to_string(&heartbeat(1)).expect("encodable");
        let record = format!(r#"[{good},{{"type":"view_progress","film_id":"x"}},{good}]"#);
        let decoded = decode(record.as_bytes());
        assert_eq!(decoded.events, vec![heartbeat(1), heartbeat(1)]);
        let [bad] = decoded.undecodable.as_slice() else {
            panic!("one undecodable event: {decoded:?}");
        };
        assert_eq!(bad.index, Some(1));
        assert!(bad.error.contains("missing field"), "{}", bad.error);
        let payload: Value = serde_json::from_slice(&bad.payload).expect("the event's JSON");
        assert_eq!(
            payload,
            serde_json::json!({"type": "view_progress", "film_id": "x"})
        );
    }

    /// A record that is not JSON is reported whole.
    #[test]
    fn a_record_that_is_not_json_is_reported_whole() {
        for payload in [&b"not json at all"[..], b"[1, 2", b""] {
            let decoded = decode(payload);
            assert!(decoded.events.is_empty());
            let [bad] = decoded.undecodable.as_slice() else {
                panic!("one undecodable record: {decoded:?}");
            };
            assert_eq!(bad.index, None);
            assert_eq!(bad.payload, payload);
        }
    }
}
