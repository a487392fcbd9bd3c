//! One value of an archive: read from either backend's JSON, written in one canonical form,
//! and bound back into an INSERT with its column's type.

use super::tables::{Column, Kind};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{
    BigInt, Binary, Bool, Date, Double, HasSqlType, Integer, Nullable, Text, Timestamp,
};
use serde_json::Value;

/// The canonical timestamp form (UTC, microseconds).
const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// The canonical form of a value as a backend's JSON gave it (`json_object` on SQLite,
/// `json_build_object` on PostgreSQL), or why it does not fit its column.
pub fn canonical(col: &Column, v: Value) -> Result<Value, String> {
    if v.is_null() {
        return if col.nullable {
            Ok(Value::Null)
        } else {
            Err(format!("{} is null", col.name))
        };
    }
    let bad = |v: &Value| format!("{} holds {v}, not a {:?}", col.name, col.kind);
    Ok(match col.kind {
        Kind::Int | Kind::BigInt => match v.as_i64() {
            Some(i) if col.kind == Kind::BigInt || i32::try_from(i).is_ok() => Value::from(i),
            _ => return Err(bad(&v)),
        },
        Kind::Double => match v.as_f64() {
            Some(f) => Value::from(f),
            None => return Err(bad(&v)),
        },
        Kind::Bool => match &v {
            Value::Bool(b) => Value::Bool(*b),
            Value::Number(n) if n.as_i64() == Some(0) => Value::Bool(false),
            Value::Number(n) if n.as_i64() == Some(1) => Value::Bool(true),
            _ => return Err(bad(&v)),
        },
        Kind::Text => match v {
            Value::String(s) => Value::String(s),
            other => return Err(bad(&other)),
        },
        Kind::Timestamp => match v.as_str().and_then(parse_timestamp) {
            Some(t) => Value::String(t.format(TIMESTAMP).to_string()),
            None => return Err(bad(&v)),
        },
        Kind::Date => match v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        {
            Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            None => return Err(bad(&v)),
        },
        Kind::Binary => match v.as_str() {
            Some(s) if hex::decode(s).is_ok() => Value::String(s.to_ascii_lowercase()),
            _ => return Err(bad(&v)),
        },
    })
}

/// A timestamp as either backend writes it (`2026-11-30 12:00:00.123` on SQLite,
/// `2026-11-30T12:00:00.123456` here).
fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// A canonical value ready to bind.
pub enum Bound {
    /// Integer.
    Int(Option<i32>),
    /// BigInt.
    BigInt(Option<i64>),
    /// Double.
    Double(Option<f64>),
    /// Bool.
    Bool(Option<bool>),
    /// Text.
    Text(Option<String>),
    /// Timestamp.
    Timestamp(Option<NaiveDateTime>),
    /// Date.
    Date(Option<NaiveDate>),
    /// Binary.
    Binary(Option<Vec<u8>>),
}

impl Bound {
    /// A canonical value (checked by [`canonical`] first) as its column's type.
    pub fn from_canonical(col: &Column, v: &Value) -> Result<Bound, String> {
        let bad = || format!("{} holds {v}, not a {:?}", col.name, col.kind);
        let null = v.is_null();
        Ok(match col.kind {
            Kind::Int => Bound::Int(if null {
                None
            } else {
                Some(
                    v.as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(bad)?,
                )
            }),
            Kind::BigInt => Bound::BigInt(if null {
                None
            } else {
                Some(v.as_i64().ok_or_else(bad)?)
            }),
            Kind::Double => Bound::Double(if null {
                None
            } else {
                Some(v.as_f64().ok_or_else(bad)?)
            }),
            Kind::Bool => Bound::Bool(if null {
                None
            } else {
                Some(v.as_bool().ok_or_else(bad)?)
            }),
            Kind::Text => Bound::Text(if null {
                None
            } else {
                Some(v.as_str().ok_or_else(bad)?.to_string())
            }),
            Kind::Timestamp => Bound::Timestamp(if null {
                None
            } else {
                Some(v.as_str().and_then(parse_timestamp).ok_or_else(bad)?)
            }),
            Kind::Date => Bound::Date(if null {
                None
            } else {
                Some(
                    v.as_str()
                        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                        .ok_or_else(bad)?,
                )
            }),
            Kind::Binary => Bound::Binary(if null {
                None
            } else {
                Some(
                    v.as_str()
                        .and_then(|s| hex::decode(s).ok())
                        .ok_or_else(bad)?,
                )
            }),
        })
    }

    /// Bytes it holds (for batching by size).
    pub fn weight(&self) -> usize {
        match self {
            Bound::Text(Some(s)) => s.len(),
            Bound::Binary(Some(b)) => b.len(),
            _ => 8,
        }
    }

    /// Binds it as the next parameter of `query`.
    pub fn bind<'f, DB>(
        self,
        query: BoxedSqlQuery<'f, DB, SqlQuery>,
    ) -> BoxedSqlQuery<'f, DB, SqlQuery>
    where
        DB: diesel::backend::Backend
            + HasSqlType<Integer>
            + HasSqlType<BigInt>
            + HasSqlType<Double>
            + HasSqlType<Bool>
            + HasSqlType<Text>
            + HasSqlType<Timestamp>
            + HasSqlType<Date>
            + HasSqlType<Binary>,
        Option<i32>: ToSql<Nullable<Integer>, DB>,
        Option<i64>: ToSql<Nullable<BigInt>, DB>,
        Option<f64>: ToSql<Nullable<Double>, DB>,
        Option<bool>: ToSql<Nullable<Bool>, DB>,
        Option<String>: ToSql<Nullable<Text>, DB>,
        Option<NaiveDateTime>: ToSql<Nullable<Timestamp>, DB>,
        Option<NaiveDate>: ToSql<Nullable<Date>, DB>,
        Option<Vec<u8>>: ToSql<Nullable<Binary>, DB>,
    {
        match self {
            Bound::Int(v) => query.bind::<Nullable<Integer>, _>(v),
            Bound::BigInt(v) => query.bind::<Nullable<BigInt>, _>(v),
            Bound::Double(v) => query.bind::<Nullable<Double>, _>(v),
            Bound::Bool(v) => query.bind::<Nullable<Bool>, _>(v),
            Bound::Text(v) => query.bind::<Nullable<Text>, _>(v),
            Bound::Timestamp(v) => query.bind::<Nullable<Timestamp>, _>(v),
            Bound::Date(v) => query.bind::<Nullable<Date>, _>(v),
            Bound::Binary(v) => query.bind::<Nullable<Binary>, _>(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TS: Column = Column {
        name: "t",
        kind: Kind::Timestamp,
        nullable: false,
    };

    #[test]
    fn both_backends_timestamps_read_the_same() {
        let a = canonical(&TS, json!("2026-11-30 12:00:00.5")).unwrap();
        let b = canonical(&TS, json!("2026-11-30T12:00:00.500000")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, json!("2026-11-30T12:00:00.500000"));
    }

    #[test]
    fn sqlite_booleans_become_booleans() {
        let col = Column {
            name: "b",
            kind: Kind::Bool,
            nullable: false,
        };
        assert_eq!(canonical(&col, json!(1)).unwrap(), json!(true));
        assert!(canonical(&col, json!(2)).is_err());
        assert!(canonical(&col, Value::Null).is_err());
    }
}
