//! JSON stored in TEXT columns, read into its Rust type. A value that does not parse is a
//! read error naming the type, never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;

/// A JSON document in a TEXT column.
#[derive(Debug, Clone, Default, PartialEq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct JsonText<T: std::fmt::Debug>(pub T);

impl<T: Serialize + std::fmt::Debug> ToSql<Text, diesel::sqlite::Sqlite> for JsonText<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: Serialize + std::fmt::Debug> ToSql<Text, diesel::pg::Pg> for JsonText<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        out.write_all(serde_json::to_string(&self.0)?.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl<T, DB> FromSql<Text, DB> for JsonText<T>
where
    T: DeserializeOwned + std::fmt::Debug,
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let s = String::from_sql(bytes)?;
        serde_json::from_str(&s)
            .map(JsonText)
            .map_err(|e| format!("stored JSON is not a {}: {e}", std::any::type_name::<T>()).into())
    }
}
