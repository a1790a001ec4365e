//! Column values as Debezium's JSON converter writes them (schemas disabled), with
//! `decimal.handling.mode=string`, `time.precision.mode=adaptive_time_microseconds`,
//! `binary.handling.mode=bytes` (base64 in JSON). The table is in docs/connectors.md.
//!
//! Values come from two places that encode some types differently: the binlog (signed
//! integers whatever the column, ENUM as its index, SET as a bit mask, TIMESTAMP as epoch
//! seconds) and the snapshot's binary-protocol rows (typed, TIMESTAMP in the session's time
//! zone, which the snapshot sets to UTC).

use base64::Engine as _;
use mysql_async::Value;
use serde_json::{json, Value as Json};

use crate::schema::Column;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Binlog,
    Snapshot,
}

fn base64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn text(bytes: &[u8], column: &Column) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_string()),
        // A latin1 (or other single-byte) column: each byte is its code point.
        Err(_) if column.data_type.contains("char") || column.data_type.contains("text") => {
            Json::String(bytes.iter().map(|&b| b as char).collect())
        }
        Err(_) => base64(bytes),
    }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date and time of `secs` after the epoch (UTC).
fn civil_from_secs(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// ISO-8601 UTC with as many fraction digits as the column keeps (Debezium's ZonedTimestamp).
fn zoned(secs: i64, micros: u32, fsp: u32) -> Json {
    let (y, mo, d, h, mi, s) = civil_from_secs(secs);
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if fsp > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(&frac[..fsp.min(6) as usize]);
    }
    out.push('Z');
    Json::String(out)
}

fn parse_number(bytes: &[u8]) -> Json {
    let s = String::from_utf8_lossy(bytes);
    if let Ok(i) = s.parse::<i64>() {
        json!(i)
    } else if let Ok(u) = s.parse::<u64>() {
        json!(u)
    } else if let Ok(f) = s.parse::<f64>() {
        json!(f)
    } else {
        Json::String(s.into_owned())
    }
}

/// An integer column's value: the binlog writes unsigned columns as signed numbers of the
/// column's width.
fn integer(i: i64, column: &Column) -> Json {
    if !column.unsigned || i >= 0 {
        return json!(i);
    }
    let u = match column.data_type.as_str() {
        "tinyint" => u64::from(i as u8),
        "smallint" => u64::from(i as u16),
        "mediumint" => (i as u64) & 0x00ff_ffff,
        "int" => u64::from(i as u32),
        _ => i as u64,
    };
    json!(u)
}

fn set_labels(mask: &[u8], column: &Column) -> Json {
    let mut bits: u64 = 0;
    for (i, b) in mask.iter().enumerate().take(8) {
        bits |= u64::from(*b) << (8 * i);
    }
    let chosen: Vec<&str> = column
        .labels
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, l)| l.as_str())
        .collect();
    Json::String(chosen.join(","))
}

/// The JSON of one value of `column`.
pub fn to_json(value: Value, column: &Column, origin: Origin) -> Json {
    let ty = column.data_type.as_str();
    let fsp = column.size.unwrap_or(0);
    match (ty, value) {
        (_, Value::NULL) => Json::Null,
        ("tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year", Value::Int(i)) => {
            integer(i, column)
        }
        (_, Value::UInt(u)) => json!(u),
        (_, Value::Int(i)) if ty == "enum" => {
            let label = usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| column.labels.get(i));
            Json::String(label.cloned().unwrap_or_default())
        }
        (_, Value::Int(i)) if ty == "bit" => {
            if column.size == Some(1) {
                json!(i != 0)
            } else {
                base64(&i.to_le_bytes())
            }
        }
        (_, Value::Int(i)) => json!(i),
        (_, Value::Float(f)) => json!(f),
        (_, Value::Double(d)) => json!(d),
        ("decimal", Value::Bytes(b)) => Json::String(String::from_utf8_lossy(&b).into_owned()),
        (
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year" | "float" | "double",
            Value::Bytes(b),
        ) => parse_number(&b),
        ("set", Value::Bytes(b)) if origin == Origin::Binlog => set_labels(&b, column),
        ("bit", Value::Bytes(b)) => {
            if column.size == Some(1) {
                json!(b.iter().any(|x| *x != 0))
            } else {
                // Debezium's bytes for BIT(n) are little-endian.
                let mut le = b.clone();
                le.reverse();
                base64(&le)
            }
        }
        ("timestamp", Value::Bytes(b)) => {
            // The binlog's TIMESTAMP2: "secs" or "secs.micros", already UTC.
            let s = String::from_utf8_lossy(&b);
            let (secs, frac) = s.split_once('.').unwrap_or((&s, ""));
            let micros = format!("{frac:0<6}")
                .get(..6)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            match secs.parse::<i64>() {
                Ok(0) if micros == 0 => Json::Null,
                Ok(secs) => zoned(secs, micros, fsp),
                Err(_) => Json::String(s.into_owned()),
            }
        }
        (
            "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "geometry"
            | "point" | "linestring" | "polygon",
            Value::Bytes(b),
        ) => base64(&b),
        (_, Value::Bytes(b)) => text(&b, column),
        ("date", Value::Date(y, m, d, ..)) => {
            if m == 0 || d == 0 {
                Json::Null
            } else {
                json!(days_from_civil(i64::from(y), u32::from(m), u32::from(d)))
            }
        }
        (_, Value::Date(y, m, d, h, mi, s, us)) => {
            if m == 0 || d == 0 {
                return Json::Null;
            }
            let secs = days_from_civil(i64::from(y), u32::from(m), u32::from(d)) * 86_400
                + i64::from(h) * 3600
                + i64::from(mi) * 60
                + i64::from(s);
            if ty == "timestamp" {
                zoned(secs, us, fsp)
            } else if fsp <= 3 {
                json!(secs * 1000 + i64::from(us / 1000))
            } else {
                json!(secs * 1_000_000 + i64::from(us))
            }
        }
        (_, Value::Time(neg, days, h, m, s, us)) => {
            let micros =
                ((i64::from(days) * 24 + i64::from(h)) * 3600 + i64::from(m) * 60 + i64::from(s))
                    * 1_000_000
                    + i64::from(us);
            json!(if neg { -micros } else { micros })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &str) -> Column {
        Column::from_sql_type("c", t)
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(
            to_json(
                Value::Date(2024, 2, 29, 0, 0, 0, 0),
                &col("date"),
                Origin::Binlog
            ),
            json!(19_782)
        );
        assert_eq!(
            to_json(
                Value::Date(2024, 2, 29, 1, 2, 3, 456_789),
                &col("datetime(3)"),
                Origin::Binlog
            ),
            json!(1_709_168_523_456i64)
        );
        assert_eq!(
            to_json(
                Value::Date(2024, 2, 29, 1, 2, 3, 456_789),
                &col("datetime(6)"),
                Origin::Binlog
            ),
            json!(1_709_168_523_456_789i64)
        );
        assert_eq!(
            to_json(
                Value::Bytes(b"1709168523.120000".to_vec()),
                &col("timestamp(2)"),
                Origin::Binlog
            ),
            json!("2024-02-29T01:02:03.12Z")
        );
        assert_eq!(
            to_json(
                Value::Date(2024, 2, 29, 1, 2, 3, 0),
                &col("timestamp"),
                Origin::Snapshot
            ),
            json!("2024-02-29T01:02:03Z")
        );
        assert_eq!(
            to_json(
                Value::Time(true, 1, 2, 0, 0, 5),
                &col("time(6)"),
                Origin::Binlog
            ),
            json!(-(26i64 * 3600 * 1_000_000 + 5))
        );
    }

    #[test]
    fn integers_enums_sets_bits() {
        assert_eq!(
            to_json(Value::Int(-1), &col("int(10) unsigned"), Origin::Binlog),
            json!(4_294_967_295u64)
        );
        assert_eq!(
            to_json(Value::Int(-1), &col("bigint unsigned"), Origin::Binlog),
            json!(u64::MAX)
        );
        assert_eq!(
            to_json(Value::Int(-1), &col("tinyint"), Origin::Binlog),
            json!(-1)
        );
        assert_eq!(
            to_json(Value::Int(2), &col("enum('a','b')"), Origin::Binlog),
            json!("b")
        );
        assert_eq!(
            to_json(
                Value::Bytes(b"b".to_vec()),
                &col("enum('a','b')"),
                Origin::Snapshot
            ),
            json!("b")
        );
        assert_eq!(
            to_json(
                Value::Bytes(vec![0b101]),
                &col("set('x','y','z')"),
                Origin::Binlog
            ),
            json!("x,z")
        );
        assert_eq!(
            to_json(
                Value::Bytes(b"x,z".to_vec()),
                &col("set('x','y','z')"),
                Origin::Snapshot
            ),
            json!("x,z")
        );
        assert_eq!(
            to_json(Value::Bytes(vec![1]), &col("bit(1)"), Origin::Binlog),
            json!(true)
        );
        assert_eq!(
            to_json(
                Value::Bytes(b"12.30".to_vec()),
                &col("decimal(10,2)"),
                Origin::Binlog
            ),
            json!("12.30")
        );
        assert_eq!(
            to_json(Value::Bytes(vec![0, 255]), &col("blob"), Origin::Binlog),
            json!("AP8=")
        );
        assert_eq!(
            to_json(
                Value::Bytes("zoë 🦀".as_bytes().to_vec()),
                &col("varchar(10)"),
                Origin::Binlog
            ),
            json!("zoë 🦀")
        );
    }
}
