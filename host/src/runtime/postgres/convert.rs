//! Value conversions between Postgres' binary wire format and `spin:postgres` values.
//!
//! Results: every column becomes a `db-value` by its Postgres type (booleans, integers,
//! floats, text-like types and enums, bytea, date, time, timestamp[tz], uuid, json[b],
//! numeric as a base-10 string, int4/int8/num ranges, int4/int8/numeric/text arrays,
//! interval); NULL is `db-null`; anything else is `unsupported` with its raw bytes.
//!
//! Parameters: each `parameter-value` is encoded for the type Postgres inferred for its
//! placeholder, widening integers and floats when lossless and parsing strings into
//! uuid, numeric, json and enum values, so guests need not mirror every column type.
//! A value that cannot be sent as the placeholder's type is a `bad-parameter` error
//! naming the placeholder.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use fallible_iterator::FallibleIterator;
use postgres_protocol::types as wire;
use postgres_types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::runtime::bindings::spin::postgres::postgres::{
    Column, DbDataType, DbValue, Error, Interval, ParameterValue, RangeBoundKind,
};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Whether a statement changes session state that must not outlive the guest's
/// connection (open transaction, settings, listeners, temp objects, prepared
/// statements, cursors, advisory locks).
pub fn changes_session_state(statement: &str) -> bool {
    let words: Vec<String> = statement
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    let first = words.first().map(String::as_str).unwrap_or_default();
    let second = words.get(1).map(String::as_str).unwrap_or_default();
    matches!(
        first,
        "BEGIN"
            | "START"
            | "SET"
            | "RESET"
            | "LISTEN"
            | "PREPARE"
            | "DECLARE"
            | "SAVEPOINT"
            | "LOCK"
    ) || (first == "CREATE" && matches!(second, "TEMP" | "TEMPORARY"))
        || statement.to_ascii_lowercase().contains("pg_advisory_lock")
        || statement.to_ascii_lowercase().contains("set_config")
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

/// Any column, as its type and raw bytes.
struct Raw<'a> {
    bytes: Option<&'a [u8]>,
}

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self { bytes: Some(raw) })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Self { bytes: None })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn is_text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

/// The interface's data type for a Postgres type.
pub fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSON | Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY | Type::INT2_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => {
            DbDataType::ArrayStr
        }
        Type::INTERVAL => DbDataType::Interval,
        _ if is_text_like(ty) => DbDataType::Str,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

/// A result column.
pub fn column(column: &tokio_postgres::Column) -> Column {
    Column {
        name: column.name().to_owned(),
        data_type: data_type(column.type_()),
    }
}

/// A result row.
pub fn row(row: &tokio_postgres::Row) -> Result<Vec<DbValue>, Error> {
    (0..row.len())
        .map(|index| {
            let ty = row.columns()[index].type_();
            let raw: Raw<'_> = row
                .try_get(index)
                .map_err(|e| Error::ValueConversionFailed(format!("column {index}: {e}")))?;
            decode(ty, raw.bytes).map_err(|e| {
                Error::ValueConversionFailed(format!(
                    "column `{}` ({}): {e}",
                    row.columns()[index].name(),
                    ty.name()
                ))
            })
        })
        .collect()
}

/// Decodes one non-text-format value.
pub fn decode(ty: &Type, raw: Option<&[u8]>) -> Result<DbValue, BoxError> {
    let Some(raw) = raw else {
        return Ok(DbValue::DbNull);
    };
    Ok(match *ty {
        Type::BOOL => DbValue::Boolean(bool::from_sql(ty, raw)?),
        Type::CHAR => DbValue::Int8(i8::from_sql(ty, raw)?),
        Type::INT2 => DbValue::Int16(i16::from_sql(ty, raw)?),
        Type::INT4 => DbValue::Int32(i32::from_sql(ty, raw)?),
        Type::INT8 => DbValue::Int64(i64::from_sql(ty, raw)?),
        Type::FLOAT4 => DbValue::Floating32(f32::from_sql(ty, raw)?),
        Type::FLOAT8 => DbValue::Floating64(f64::from_sql(ty, raw)?),
        Type::BYTEA => DbValue::Binary(raw.to_vec()),
        Type::DATE => {
            let date = NaiveDate::from_sql(ty, raw)?;
            DbValue::Date((date.year(), date.month() as u8, date.day() as u8))
        }
        Type::TIME => {
            let time = NaiveTime::from_sql(ty, raw)?;
            DbValue::Time((
                time.hour() as u8,
                time.minute() as u8,
                time.second() as u8,
                time.nanosecond(),
            ))
        }
        Type::TIMESTAMP => DbValue::Datetime(datetime_tuple(NaiveDateTime::from_sql(ty, raw)?)),
        Type::TIMESTAMPTZ => DbValue::Datetime(datetime_tuple(
            DateTime::<Utc>::from_sql(ty, raw)?.naive_utc(),
        )),
        Type::UUID => DbValue::Uuid(uuid::Uuid::from_sql(ty, raw)?.to_string()),
        // jsonb's binary form is a version byte (1) and the JSON text.
        Type::JSONB => DbValue::Jsonb(
            raw.strip_prefix(&[1])
                .ok_or("unknown jsonb version")?
                .to_vec(),
        ),
        Type::JSON => DbValue::Jsonb(raw.to_vec()),
        Type::NUMERIC => DbValue::Decimal(numeric_to_string(raw)?),
        Type::INT4_RANGE => {
            DbValue::RangeInt32(decode_range(raw, |b| i32::from_sql(&Type::INT4, b))?)
        }
        Type::INT8_RANGE => {
            DbValue::RangeInt64(decode_range(raw, |b| i64::from_sql(&Type::INT8, b))?)
        }
        Type::NUM_RANGE => DbValue::RangeDecimal(decode_range(raw, numeric_to_string)?),
        Type::INT4_ARRAY => DbValue::ArrayInt32(Vec::<Option<i32>>::from_sql(ty, raw)?),
        Type::INT2_ARRAY => DbValue::ArrayInt32(
            Vec::<Option<i16>>::from_sql(ty, raw)?
                .into_iter()
                .map(|v| v.map(i32::from))
                .collect(),
        ),
        Type::INT8_ARRAY => DbValue::ArrayInt64(Vec::<Option<i64>>::from_sql(ty, raw)?),
        Type::NUMERIC_ARRAY => DbValue::ArrayDecimal(decode_array(raw, numeric_to_string)?),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => {
            DbValue::ArrayStr(decode_array(raw, |b| {
                Ok(std::str::from_utf8(b)?.to_owned())
            })?)
        }
        Type::INTERVAL => DbValue::Interval(decode_interval(raw)?),
        _ if is_text_like(ty) => DbValue::Str(std::str::from_utf8(raw)?.to_owned()),
        _ => DbValue::Unsupported(raw.to_vec()),
    })
}

fn datetime_tuple(value: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    (
        value.year(),
        value.month() as u8,
        value.day() as u8,
        value.hour() as u8,
        value.minute() as u8,
        value.second() as u8,
        value.nanosecond(),
    )
}

type Bound<T> = Option<(T, RangeBoundKind)>;

fn decode_range<T>(
    raw: &[u8],
    element: impl Fn(&[u8]) -> Result<T, BoxError>,
) -> Result<(Bound<T>, Bound<T>), BoxError> {
    let bound = |bound: wire::RangeBound<Option<&[u8]>>| -> Result<Bound<T>, BoxError> {
        Ok(match bound {
            wire::RangeBound::Inclusive(Some(b)) => Some((element(b)?, RangeBoundKind::Inclusive)),
            wire::RangeBound::Exclusive(Some(b)) => Some((element(b)?, RangeBoundKind::Exclusive)),
            _ => None,
        })
    };
    match wire::range_from_sql(raw)? {
        // The interface has no "empty": an empty range reads as unbounded on both sides.
        wire::Range::Empty => Ok((None, None)),
        wire::Range::Nonempty(lower, upper) => Ok((bound(lower)?, bound(upper)?)),
    }
}

fn decode_array<T>(
    raw: &[u8],
    element: impl Fn(&[u8]) -> Result<T, BoxError>,
) -> Result<Vec<Option<T>>, BoxError> {
    let array = wire::array_from_sql(raw)?;
    if array.dimensions().count()? > 1 {
        return Err("multi-dimensional arrays are not supported".into());
    }
    let mut values = array.values();
    let mut out = Vec::new();
    while let Some(value) = values.next()? {
        out.push(value.map(&element).transpose()?);
    }
    Ok(out)
}

fn decode_interval(raw: &[u8]) -> Result<Interval, BoxError> {
    let bytes: [u8; 16] = raw.try_into().map_err(|_| "interval must be 16 bytes")?;
    let [
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        m6,
        m7,
        d0,
        d1,
        d2,
        d3,
        n0,
        n1,
        n2,
        n3,
    ] = bytes;
    Ok(Interval {
        micros: i64::from_be_bytes([m0, m1, m2, m3, m4, m5, m6, m7]),
        days: i32::from_be_bytes([d0, d1, d2, d3]),
        months: i32::from_be_bytes([n0, n1, n2, n3]),
    })
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Postgres' binary `numeric` (base-10000 digits) as exact decimal text.
pub fn numeric_to_string(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<[u8; 2], BoxError> {
        Ok([
            *raw.get(i).ok_or("truncated numeric")?,
            *raw.get(i + 1).ok_or("truncated numeric")?,
        ])
    };
    let ndigits = i16::from_be_bytes(word(0)?);
    let weight = i16::from_be_bytes(word(2)?);
    let sign = u16::from_be_bytes(word(4)?);
    let dscale = u16::from_be_bytes(word(6)?);
    let digits = (0..ndigits.max(0) as usize)
        .map(|i| word(8 + 2 * i).map(i16::from_be_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_owned()),
        NUMERIC_PINF => return Ok("Infinity".to_owned()),
        NUMERIC_NINF => return Ok("-Infinity".to_owned()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err("invalid numeric sign".into()),
    }
    let digit_at = |position: i32| -> i16 {
        usize::try_from(position)
            .ok()
            .and_then(|p| digits.get(p).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for position in 0..=i32::from(weight) {
            if position == 0 {
                text.push_str(&digit_at(0).to_string());
            } else {
                text.push_str(&format!("{:04}", digit_at(position)));
            }
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut fraction = String::new();
        let mut position = i32::from(weight) + 1;
        while fraction.len() < usize::from(dscale) {
            fraction.push_str(&format!("{:04}", digit_at(position)));
            position += 1;
        }
        fraction.truncate(usize::from(dscale));
        text.push_str(&fraction);
    }
    Ok(text)
}

/// Exact decimal text (`-12.3400`, `NaN`, `Infinity`) as Postgres' binary `numeric`.
pub fn numeric_from_str(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    let special = match text.trim() {
        "NaN" | "nan" => Some(NUMERIC_NAN),
        "Infinity" | "inf" | "+Infinity" => Some(NUMERIC_PINF),
        "-Infinity" | "-inf" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        for word in [0u16, 0, sign, 0] {
            out.put_u16(word);
        }
        return Ok(());
    }
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (integer.is_empty() && fraction.is_empty()) || !all_digits(integer) || !all_digits(fraction)
    {
        return Err(format!("`{text}` is not a decimal number").into());
    }
    let integer = integer.trim_start_matches('0');
    let dscale = u16::try_from(fraction.len()).map_err(|_| "too many fraction digits")?;
    let int_pad = (4 - integer.len() % 4) % 4;
    let frac_pad = (4 - fraction.len() % 4) % 4;
    let padded = format!(
        "{}{integer}{fraction}{}",
        "0".repeat(int_pad),
        "0".repeat(frac_pad)
    );
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0i16, |acc, b| acc * 10 + i16::from(b - b'0'))
        })
        .collect();
    let mut weight =
        i32::try_from((integer.len() + int_pad) / 4).map_err(|_| "number too large")? - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, sign) = if groups.is_empty() {
        (0, NUMERIC_POS)
    } else {
        (weight, if negative { NUMERIC_NEG } else { NUMERIC_POS })
    };
    out.put_i16(i16::try_from(groups.len()).map_err(|_| "number too large")?);
    out.put_i16(i16::try_from(weight).map_err(|_| "number too large")?);
    out.put_u16(sign);
    out.put_u16(dscale);
    for group in groups {
        out.put_i16(group);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

/// One guest parameter, encoded for the type of its placeholder.
#[derive(Debug)]
pub struct Param {
    value: ParameterValue,
}

/// Pairs guest parameters with their placeholders' types.
pub fn params_for(values: &[ParameterValue], types: &[Type]) -> Result<Vec<Param>, Error> {
    if values.len() != types.len() {
        return Err(Error::BadParameter(format!(
            "statement has {} placeholder(s) but {} parameter(s) were given",
            types.len(),
            values.len()
        )));
    }
    Ok(values
        .iter()
        .map(|value| Param {
            value: value.clone(),
        })
        .collect())
}

/// Borrowed `ToSql` views of parameters, as the driver wants them.
pub fn as_sql_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn mismatch(value: &str, ty: &Type) -> BoxError {
    format!("a {value} value cannot be sent as {}", ty.name()).into()
}

fn encode_integer(value: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let out_of_range = || -> BoxError { format!("{value} does not fit in {}", ty.name()).into() };
    match *ty {
        Type::CHAR => i8::try_from(value)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::INT2 => i16::try_from(value)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::INT4 => i32::try_from(value)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::INT8 => value.to_sql(ty, out),
        Type::OID => u32::try_from(value)
            .map_err(|_| out_of_range())?
            .to_sql(ty, out),
        Type::NUMERIC => {
            numeric_from_str(&value.to_string(), out)?;
            Ok(IsNull::No)
        }
        // Integers convert to floats only where exact.
        Type::FLOAT8 if value.unsigned_abs() < (1 << 53) => (value as f64).to_sql(ty, out),
        Type::FLOAT4 if value.unsigned_abs() < (1 << 24) => (value as f32).to_sql(ty, out),
        _ => Err(mismatch("integer", ty)),
    }
}

fn encode_text(text: &str, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::UUID => uuid::Uuid::parse_str(text)?.to_sql(ty, out),
        Type::NUMERIC => {
            numeric_from_str(text, out)?;
            Ok(IsNull::No)
        }
        Type::JSON => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)?;
            out.put_slice(text.as_bytes());
            Ok(IsNull::No)
        }
        Type::JSONB => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)?;
            out.put_u8(1);
            out.put_slice(text.as_bytes());
            Ok(IsNull::No)
        }
        _ if is_text_like(ty) => {
            out.put_slice(text.as_bytes());
            Ok(IsNull::No)
        }
        _ => Err(mismatch("string", ty)),
    }
}

fn naive_datetime(value: (i32, u8, u8, u8, u8, u8, u32)) -> Result<NaiveDateTime, BoxError> {
    let (year, month, day, hour, minute, second, nanos) = value;
    let date = NaiveDate::from_ymd_opt(year, month.into(), day.into()).ok_or("invalid date")?;
    let time = NaiveTime::from_hms_nano_opt(hour.into(), minute.into(), second.into(), nanos)
        .ok_or("invalid time")?;
    Ok(NaiveDateTime::new(date, time))
}

fn encode_datetime(
    value: NaiveDateTime,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    match *ty {
        Type::TIMESTAMP => value.to_sql(ty, out),
        Type::TIMESTAMPTZ => value.and_utc().to_sql(ty, out),
        Type::DATE => value.date().to_sql(ty, out),
        _ => Err(mismatch("datetime", ty)),
    }
}

fn encode_range<T>(
    range: &(Bound<T>, Bound<T>),
    ty: &Type,
    expected: &Type,
    element: impl Fn(&T, &mut BytesMut) -> Result<(), BoxError>,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    if ty != expected {
        return Err(mismatch(expected.name(), ty));
    }
    let bound = |bound: &Bound<T>,
                 out: &mut BytesMut|
     -> Result<wire::RangeBound<postgres_protocol::IsNull>, BoxError> {
        Ok(match bound {
            None => wire::RangeBound::Unbounded,
            Some((value, kind)) => {
                element(value, out)?;
                match kind {
                    RangeBoundKind::Inclusive => {
                        wire::RangeBound::Inclusive(postgres_protocol::IsNull::No)
                    }
                    RangeBoundKind::Exclusive => {
                        wire::RangeBound::Exclusive(postgres_protocol::IsNull::No)
                    }
                }
            }
        })
    };
    wire::range_to_sql(|out| bound(&range.0, out), |out| bound(&range.1, out), out)?;
    Ok(IsNull::No)
}

fn encode_array<T>(
    values: &[Option<T>],
    ty: &Type,
    element_type: &Type,
    element: impl Fn(&T, &mut BytesMut) -> Result<(), BoxError>,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    let dimension = wire::ArrayDimension {
        len: i32::try_from(values.len()).map_err(|_| "array too long")?,
        lower_bound: 1,
    };
    let _ = ty;
    wire::array_to_sql(
        Some(dimension),
        element_type.oid(),
        values.iter(),
        |value, out| match value {
            None => Ok(postgres_protocol::IsNull::Yes),
            Some(value) => {
                element(value, out)?;
                Ok(postgres_protocol::IsNull::No)
            }
        },
        out,
    )?;
    Ok(IsNull::No)
}

fn array_element_type(ty: &Type) -> Option<Type> {
    match ty.kind() {
        Kind::Array(element) => Some(element.clone()),
        _ => None,
    }
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        use ParameterValue as P;
        match &self.value {
            P::DbNull => Ok(IsNull::Yes),
            P::Boolean(v) if *ty == Type::BOOL => v.to_sql(ty, out),
            P::Boolean(_) => Err(mismatch("boolean", ty)),
            P::Int8(v) => encode_integer(i64::from(*v), ty, out),
            P::Int16(v) => encode_integer(i64::from(*v), ty, out),
            P::Int32(v) => encode_integer(i64::from(*v), ty, out),
            P::Int64(v) => encode_integer(*v, ty, out),
            P::Floating32(v) => match *ty {
                Type::FLOAT4 => v.to_sql(ty, out),
                Type::FLOAT8 => f64::from(*v).to_sql(ty, out),
                _ => Err(mismatch("float", ty)),
            },
            P::Floating64(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::NUMERIC if v.is_finite() => {
                    numeric_from_str(&v.to_string(), out)?;
                    Ok(IsNull::No)
                }
                _ => Err(mismatch("float", ty)),
            },
            P::Str(text) => encode_text(text, ty, out),
            P::Binary(bytes) if *ty == Type::BYTEA => {
                out.put_slice(bytes);
                Ok(IsNull::No)
            }
            P::Binary(_) => Err(mismatch("binary", ty)),
            P::Date((year, month, day)) => {
                let date = NaiveDate::from_ymd_opt(*year, (*month).into(), (*day).into())
                    .ok_or("invalid date")?;
                match *ty {
                    Type::DATE => date.to_sql(ty, out),
                    _ => encode_datetime(date.and_time(NaiveTime::MIN), ty, out),
                }
            }
            P::Time((hour, minute, second, nanos)) if *ty == Type::TIME => {
                NaiveTime::from_hms_nano_opt(
                    (*hour).into(),
                    (*minute).into(),
                    (*second).into(),
                    *nanos,
                )
                .ok_or("invalid time")?
                .to_sql(ty, out)
            }
            P::Time(_) => Err(mismatch("time", ty)),
            P::Datetime(value) => encode_datetime(naive_datetime(*value)?, ty, out),
            P::Timestamp(seconds) => {
                let value =
                    DateTime::<Utc>::from_timestamp(*seconds, 0).ok_or("timestamp out of range")?;
                encode_datetime(value.naive_utc(), ty, out)
            }
            P::Uuid(text) if *ty == Type::UUID => uuid::Uuid::parse_str(text)?.to_sql(ty, out),
            P::Uuid(text) => encode_text(text, ty, out),
            P::Jsonb(bytes) => {
                let text = std::str::from_utf8(bytes)?;
                match *ty {
                    Type::JSON | Type::JSONB => encode_text(text, ty, out),
                    _ => Err(mismatch("jsonb", ty)),
                }
            }
            P::Decimal(text) if *ty == Type::NUMERIC => {
                numeric_from_str(text, out)?;
                Ok(IsNull::No)
            }
            P::Decimal(text) => match *ty {
                Type::FLOAT8 => text.parse::<f64>()?.to_sql(ty, out),
                Type::FLOAT4 => text.parse::<f32>()?.to_sql(ty, out),
                _ => Err(mismatch("decimal", ty)),
            },
            P::RangeInt32(range) => encode_range(
                range,
                ty,
                &Type::INT4_RANGE,
                |v, out| {
                    out.put_i32(*v);
                    Ok(())
                },
                out,
            ),
            P::RangeInt64(range) => encode_range(
                range,
                ty,
                &Type::INT8_RANGE,
                |v, out| {
                    out.put_i64(*v);
                    Ok(())
                },
                out,
            ),
            P::RangeDecimal(range) => encode_range(
                range,
                ty,
                &Type::NUM_RANGE,
                |v, out| numeric_from_str(v, out),
                out,
            ),
            P::ArrayInt32(values) => {
                let element = array_element_type(ty).ok_or_else(|| mismatch("int32 array", ty))?;
                encode_array(
                    values,
                    ty,
                    &element,
                    |v, out| encode_integer(i64::from(*v), &element, out).map(|_| ()),
                    out,
                )
            }
            P::ArrayInt64(values) => {
                let element = array_element_type(ty).ok_or_else(|| mismatch("int64 array", ty))?;
                encode_array(
                    values,
                    ty,
                    &element,
                    |v, out| encode_integer(*v, &element, out).map(|_| ()),
                    out,
                )
            }
            P::ArrayDecimal(values) => {
                let element =
                    array_element_type(ty).ok_or_else(|| mismatch("decimal array", ty))?;
                if element != Type::NUMERIC {
                    return Err(mismatch("decimal array", ty));
                }
                encode_array(values, ty, &element, |v, out| numeric_from_str(v, out), out)
            }
            P::ArrayStr(values) => {
                let element = array_element_type(ty).ok_or_else(|| mismatch("string array", ty))?;
                encode_array(
                    values,
                    ty,
                    &element,
                    |v, out| encode_text(v, &element, out).map(|_| ()),
                    out,
                )
            }
            P::Interval(interval) if *ty == Type::INTERVAL => {
                out.put_i64(interval.micros);
                out.put_i32(interval.days);
                out.put_i32(interval.months);
                Ok(IsNull::No)
            }
            P::Interval(_) => Err(mismatch("interval", ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let mut out = BytesMut::new();
        numeric_from_str(text, &mut out).expect("encodes");
        numeric_to_string(&out).expect("decodes")
    }

    /// Decimal text survives encoding to numeric and back, digit for digit.
    #[test]
    fn numeric_roundtrips_exactly() {
        for (input, expected) in [
            ("0", "0"),
            ("12345.678", "12345.678"),
            ("-0.00012", "-0.00012"),
            (
                "100000000000000000000000000000000.1",
                "100000000000000000000000000000000.1",
            ),
            ("007.50", "7.50"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
            ("10000", "10000"),
            ("0.0001", "0.0001"),
        ] {
            assert_eq!(roundtrip(input), expected, "{input}");
        }
    }

    /// Malformed decimals are rejected, not guessed at.
    #[test]
    fn numeric_rejects_garbage() {
        for input in ["", "1e5", "abc", "1.2.3", "--1"] {
            assert!(
                numeric_from_str(input, &mut BytesMut::new()).is_err(),
                "{input}"
            );
        }
    }

    /// Statements that change session state are recognised.
    #[test]
    fn recognises_session_state_changes() {
        for statement in [
            "BEGIN",
            "  start transaction",
            "SET search_path TO x",
            "create temp table t()",
            "select pg_advisory_lock(1)",
        ] {
            assert!(changes_session_state(statement), "{statement}");
        }
        for statement in [
            "SELECT 1",
            "insert into t values (1)",
            "update settings set x = 1",
        ] {
            assert!(!changes_session_state(statement), "{statement}");
        }
    }
}
