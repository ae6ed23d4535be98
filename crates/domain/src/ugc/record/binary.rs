//! The binary shape of a record: how the intake writes events to Kafka, and how the ugc
//! component hands them to the intake.
//!
//! JSON made every event cost a text encoding in the component, a parse and a second
//! encoding in the intake, and a parse in each consumer; a profile of the intake under
//! load had a quarter of the host's CPU in `serde_json`. In this shape a heartbeat is 70
//! bytes instead of about 210, and reading one is copying fixed fields.
//!
//! Layout (integers little-endian):
//! - header: [`MAGIC`] (`0xCE`, a byte no JSON text starts with) and [`VERSION`];
//! - then each event as a `u32` length and that many bytes: the type (`u8`, its
//!   position in [`EventType::ALL`]), `event_id` and `user_id` (16 bytes each),
//!   `occurred_at_ms` (`i64`), then the payload's fields in declaration order: ids 16
//!   bytes, `position_s`/`duration_s` `u32`, `score` `u8`, `value` `i8`, `text` a `u32`
//!   length and UTF-8.
//!
//! Ids travel as the 16 bytes of a UUID and come back in canonical text (lowercase,
//! hyphenated). So only events whose ids are already canonical are written this way
//! ([`encode_event`] says when one is not), and a decoded event equals the one encoded.
//! The length before each event lets a reader report one bad event alone and go on.

use super::super::{EventType, UgcEvent, UgcPayload, canonical_uuid_bytes, uuid_text};

/// First byte of a binary record.
pub const MAGIC: u8 = 0xCE;
/// Second byte: the layout's version.
pub const VERSION: u8 = 1;
/// The two bytes every binary record starts with.
pub const HEADER: [u8; 2] = [MAGIC, VERSION];
/// Media type of a binary body on the intake (`POST /intake/ugc`).
pub const CONTENT_TYPE: &str = "application/vnd.cinema.ugc-events";

/// Whether `payload` is in this shape (of any version).
pub fn is_binary(payload: &[u8]) -> bool {
    payload.first() == Some(&MAGIC)
}

/// Appends `event` (its length, then its bytes) to `out`; `false`, with `out` as it
/// was, when an id is not a UUID in canonical text or the event is too big for a
/// `u32` length.
pub fn encode_event(out: &mut Vec<u8>, event: &UgcEvent) -> bool {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if write_event(out, event).is_none() {
        out.truncate(start);
        return false;
    }
    let Ok(length) = u32::try_from(out.len() - start - 4) else {
        out.truncate(start);
        return false;
    };
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    true
}

fn write_id(out: &mut Vec<u8>, id: &str) -> Option<()> {
    out.extend_from_slice(&canonical_uuid_bytes(id)?);
    Some(())
}

fn write_event(out: &mut Vec<u8>, event: &UgcEvent) -> Option<()> {
    let kind = event.payload.event_type();
    let position = EventType::ALL.iter().position(|k| *k == kind)?;
    out.push(u8::try_from(position).ok()?);
    write_id(out, &event.event_id)?;
    write_id(out, &event.user_id)?;
    out.extend_from_slice(&event.occurred_at_ms.to_le_bytes());
    match &event.payload {
        UgcPayload::ViewProgress {
            film_id,
            position_s,
            duration_s,
        } => {
            write_id(out, film_id)?;
            out.extend_from_slice(&position_s.to_le_bytes());
            out.extend_from_slice(&duration_s.to_le_bytes());
        }
        UgcPayload::BookmarkSet { film_id }
        | UgcPayload::BookmarkRemoved { film_id }
        | UgcPayload::RatingRemoved { film_id } => write_id(out, film_id)?,
        UgcPayload::RatingSet { film_id, score } => {
            write_id(out, film_id)?;
            out.push(*score);
        }
        UgcPayload::ReviewPosted {
            review_id,
            film_id,
            text,
        } => {
            write_id(out, review_id)?;
            write_id(out, film_id)?;
            out.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        UgcPayload::ReviewDeleted { review_id } | UgcPayload::ReviewLikeRemoved { review_id } => {
            write_id(out, review_id)?;
        }
        UgcPayload::ReviewLikeSet { review_id, value } => {
            write_id(out, review_id)?;
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    Some(())
}

/// `events` as one binary record (no size bound), or `None` when one of them cannot
/// be written in this shape (see [`encode_event`]).
pub fn encode_all(events: &[UgcEvent]) -> Option<Vec<u8>> {
    let mut record = Vec::with_capacity(HEADER.len() + events.len() * 80);
    record.extend_from_slice(&HEADER);
    events
        .iter()
        .all(|event| encode_event(&mut record, event))
        .then_some(record)
}

/// Why a binary record or one of its events does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("not a binary record: it does not start with the byte 0x{MAGIC:X}")]
    NotBinary,
    #[error("binary record of version {0}, this reader knows version {VERSION}")]
    UnknownVersion(u8),
    #[error("binary record cut short: an event's length says {wanted} bytes, {left} are left")]
    CutShort { wanted: usize, left: usize },
    #[error("binary event ends early")]
    EventEndsEarly,
    #[error("binary event has {0} bytes after its last field")]
    TrailingBytes(usize),
    #[error("binary event of unknown type {0}")]
    UnknownType(u8),
    #[error("binary review text is not UTF-8")]
    TextNotUtf8,
}

/// One event's bytes as they were framed in a record, or the rest of a record whose
/// framing broke.
pub type Framed<'a> = Result<&'a [u8], (&'a [u8], BinaryError)>;

/// The events of a binary record, each as its framed bytes, in order; a broken frame
/// ends the walk with the rest of the record. `Err` for a record of another version or
/// another shape.
pub fn frames(record: &[u8]) -> Result<impl Iterator<Item = Framed<'_>>, BinaryError> {
    match record {
        [MAGIC, VERSION, ..] => {}
        [MAGIC, version, ..] => return Err(BinaryError::UnknownVersion(*version)),
        _ => return Err(BinaryError::NotBinary),
    }
    let mut rest = &record[HEADER.len()..];
    let mut broken = false;
    Ok(std::iter::from_fn(move || {
        if rest.is_empty() || broken {
            return None;
        }
        let Some((length, after)) = rest.split_first_chunk::<4>() else {
            broken = true;
            return Some(Err((rest, BinaryError::EventEndsEarly)));
        };
        let wanted = u32::from_le_bytes(*length) as usize;
        if wanted > after.len() {
            broken = true;
            return Some(Err((
                rest,
                BinaryError::CutShort {
                    wanted,
                    left: after.len(),
                },
            )));
        }
        let (event, next) = after.split_at(wanted);
        rest = next;
        Some(Ok(event))
    }))
}

/// Reads fixed fields off the front of an event's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(BinaryError::EventEndsEarly)?;
        self.0 = rest;
        Ok(*head)
    }

    fn id(&mut self) -> Result<String, BinaryError> {
        Ok(uuid_text(&self.take::<16>()?))
    }

    fn u32(&mut self) -> Result<u32, BinaryError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn text(&mut self) -> Result<String, BinaryError> {
        let length = self.u32()? as usize;
        if length > self.0.len() {
            return Err(BinaryError::EventEndsEarly);
        }
        let (text, rest) = self.0.split_at(length);
        self.0 = rest;
        std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| BinaryError::TextNotUtf8)
    }
}

/// One event from its framed bytes.
pub fn decode_event(bytes: &[u8]) -> Result<UgcEvent, BinaryError> {
    let mut reader = Reader(bytes);
    let [kind] = reader.take::<1>()?;
    let kind = *EventType::ALL
        .get(usize::from(kind))
        .ok_or(BinaryError::UnknownType(kind))?;
    let event_id = reader.id()?;
    let user_id = reader.id()?;
    let occurred_at_ms = i64::from_le_bytes(reader.take()?);
    let payload = match kind {
        EventType::ViewProgress => UgcPayload::ViewProgress {
            film_id: reader.id()?,
            position_s: reader.u32()?,
            duration_s: reader.u32()?,
        },
        EventType::BookmarkSet => UgcPayload::BookmarkSet {
            film_id: reader.id()?,
        },
        EventType::BookmarkRemoved => UgcPayload::BookmarkRemoved {
            film_id: reader.id()?,
        },
        EventType::RatingSet => UgcPayload::RatingSet {
            film_id: reader.id()?,
            score: u8::from_le_bytes(reader.take()?),
        },
        EventType::RatingRemoved => UgcPayload::RatingRemoved {
            film_id: reader.id()?,
        },
        EventType::ReviewPosted => UgcPayload::ReviewPosted {
            review_id: reader.id()?,
            film_id: reader.id()?,
            text: reader.text()?,
        },
        EventType::ReviewDeleted => UgcPayload::ReviewDeleted {
            review_id: reader.id()?,
        },
        EventType::ReviewLikeSet => UgcPayload::ReviewLikeSet {
            review_id: reader.id()?,
            value: i8::from_le_bytes(reader.take()?),
        },
        EventType::ReviewLikeRemoved => UgcPayload::ReviewLikeRemoved {
            review_id: reader.id()?,
        },
    };
    if !reader.0.is_empty() {
        return Err(BinaryError::TrailingBytes(reader.0.len()));
    }
    Ok(UgcEvent {
        event_id,
        user_id,
        occurred_at_ms,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "10000000-0000-4000-8000-0000000000ab";
    const FILM: &str = "30000000-0000-4000-8000-000000000001";
    const REVIEW: &str = "40000000-0000-4000-8000-00000000cafe";

    fn event(n: u32, payload: UgcPayload) -> UgcEvent {
        UgcEvent {
            event_id: format!("00000000-0000-4000-8000-{n:012}"),
            user_id: USER.into(),
            occurred_at_ms: -1 + i64::from(n) * 1_764_150_000_000,
            payload,
        }
    }

    /// One event of every type, with extreme numbers and a review of many scripts.
    fn every_type() -> Vec<UgcEvent> {
        let film = || FILM.to_owned();
        let review = || REVIEW.to_owned();
        vec![
            event(
                0,
                UgcPayload::ViewProgress {
                    film_id: film(),
                    position_s: 0,
                    duration_s: u32::MAX,
                },
            ),
            event(1, UgcPayload::BookmarkSet { film_id: film() }),
            event(2, UgcPayload::BookmarkRemoved { film_id: film() }),
            event(
                3,
                UgcPayload::RatingSet {
                    film_id: film(),
                    score: 10,
                },
            ),
            event(4, UgcPayload::RatingRemoved { film_id: film() }),
            event(
                5,
                UgcPayload::ReviewPosted {
                    review_id: review(),
                    film_id: film(),
                    text: "Фильм — «шедевр» 🎬\n\"quoted\" \\ 終".into(),
                },
            ),
            event(
                6,
                UgcPayload::ReviewDeleted {
                    review_id: review(),
                },
            ),
            event(
                7,
                UgcPayload::ReviewLikeSet {
                    review_id: review(),
                    value: -1,
                },
            ),
            event(
                8,
                UgcPayload::ReviewLikeRemoved {
                    review_id: review(),
                },
            ),
        ]
    }

    /// Every type comes back equal, and a heartbeat is 70 bytes with its frame.
    #[test]
    fn every_event_type_round_trips() {
        let events = every_type();
        let record = encode_all(&events).expect("canonical ids");
        assert!(is_binary(&record));
        let back: Vec<UgcEvent> = frames(&record)
            .expect("version 1")
            .map(|frame| decode_event(frame.expect("framed")).expect("decodes"))
            .collect();
        assert_eq!(back, events);
        let heartbeat = encode_all(&events[..1]).expect("canonical ids");
        assert_eq!(
            heartbeat.len() - HEADER.len(),
            4 + 1 + 16 + 16 + 8 + 16 + 4 + 4
        );
    }

    /// Every byte value at every place of an id survives text and back, and the text is
    /// what the `uuid` crate's canonical form would be (lowercase, hyphenated).
    #[test]
    fn ids_survive_text_and_back() {
        for place in 0..16 {
            for value in 0..=255u8 {
                let mut bytes = [0x5a; 16];
                bytes[place] = value;
                let text = uuid_text(&bytes);
                assert_eq!(canonical_uuid_bytes(&text), Some(bytes), "{text}");
                assert_eq!(text.len(), 36);
                assert!(crate::ugc::is_uuid(&text), "{text}");
                assert_eq!(text, text.to_ascii_lowercase());
            }
        }
        assert_eq!(
            uuid_text(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    /// Ids that are UUIDs but not in canonical text (capitals, no hyphens, braces), or
    /// are not UUIDs at all, are not written in this shape.
    #[test]
    fn only_canonical_ids_are_written() {
        for id in [
            "30000000-0000-4000-8000-00000000000A",
            "30000000000040008000000000000001",
            "{30000000-0000-4000-8000-000000000001}",
            "30000000-0000-4000-8000-00000000000",
            "30000000-0000-4000-8000_000000000001",
            "not a uuid",
            "",
        ] {
            let mut events = every_type();
            events[0].payload = UgcPayload::BookmarkSet { film_id: id.into() };
            assert_eq!(encode_all(&events), None, "{id:?}");
            let mut out = b"kept".to_vec();
            assert!(!encode_event(&mut out, &events[0]));
            assert_eq!(out, b"kept", "nothing appended for {id:?}");
            events[0] = event(
                0,
                UgcPayload::BookmarkSet {
                    film_id: FILM.into(),
                },
            );
            events[0].user_id = id.into();
            assert_eq!(encode_all(&events), None, "user {id:?}");
        }
    }

    /// A record cut anywhere yields the whole events before the cut and reports the rest
    /// once; a damaged event is reported alone and its neighbours still decode.
    #[test]
    fn damage_is_reported_without_losing_the_neighbours() {
        let events = every_type();
        let record = encode_all(&events).expect("canonical ids");
        for cut in HEADER.len()..record.len() {
            let frames: Vec<_> = frames(&record[..cut]).expect("version 1").collect();
            let whole = frames.iter().filter(|f| f.is_ok()).count();
            assert!(frames[..whole].iter().all(Result::is_ok), "cut at {cut}");
            assert!(frames.len() - whole <= 1, "cut at {cut}");
        }
        // The second event's type byte set to an unknown type.
        let mut damaged = record.clone();
        let second = HEADER.len()
            + 4
            + u32::from_le_bytes(record[2..6].try_into().expect("a length")) as usize;
        damaged[second + 4] = 200;
        let decoded: Vec<_> = frames(&damaged)
            .expect("version 1")
            .map(|frame| decode_event(frame.expect("framed")))
            .collect();
        assert_eq!(decoded[1], Err(BinaryError::UnknownType(200)));
        assert_eq!(decoded[0].as_ref().ok(), Some(&events[0]));
        assert_eq!(decoded[2].as_ref().ok(), Some(&events[2]));
        assert!(matches!(
            frames(&[MAGIC, 9, 0]).err(),
            Some(BinaryError::UnknownVersion(9))
        ));
        assert!(matches!(
            frames(b"[{}]").err(),
            Some(BinaryError::NotBinary)
        ));
    }
}
