//! Reads tables as canonical JSON rows, the same on both backends: the database builds one
//! JSON object per row (`json_object` / `json_build_object`, blobs as hex), and
//! [`values::canonical`](super::values::canonical) irons out what still differs (SQLite's 0/1
//! booleans, timestamp spellings).

use super::tables::{Column, Kind, Table};
use super::values::canonical;
use crate::db::Backend;
use crate::error::{AppError, AppResult};
use diesel::sql_types::Text;
use serde_json::{Map, Value};

/// One row as the database built it.
#[derive(diesel::QueryableByName)]
pub struct JsonRow {
    /// The JSON object.
    #[diesel(sql_type = Text)]
    pub row: String,
}

/// Which rows a page query reads.
#[derive(Clone, Copy)]
pub enum Rows {
    /// The whole table.
    All,
    /// `page` rows whose first key column is above the bound.
    After,
    /// The rows whose first key column equals the bound.
    Equal,
}

/// A quoted identifier (names come from the registry, never from input).
fn ident(name: &str) -> String {
    format!("\"{name}\"")
}

/// A column's value expression in the row object.
fn value_sql(backend: Backend, col: &Column) -> String {
    let c = ident(col.name);
    match (backend, col.kind) {
        (Backend::Sqlite, Kind::Binary) => {
            format!("CASE WHEN {c} IS NULL THEN NULL ELSE lower(hex({c})) END")
        }
        (Backend::Postgres, Kind::Binary) => format!("encode({c}, 'hex')"),
        (Backend::Postgres, Kind::Timestamp) => {
            format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
        }
        (Backend::Postgres, Kind::Date) => format!("to_char({c}, 'YYYY-MM-DD')"),
        _ => c,
    }
}

/// The query reading `columns` of `table` as one JSON text per row, in key order.
pub fn select_sql(backend: Backend, table: &Table, columns: &[Column], rows: Rows) -> String {
    let pairs: Vec<String> = columns
        .iter()
        .map(|c| format!("'{}', {}", c.name, value_sql(backend, c)))
        .collect();
    let object = match backend {
        Backend::Sqlite => format!("json_object({})", pairs.join(", ")),
        Backend::Postgres => format!("json_build_object({})::text", pairs.join(", ")),
    };
    let first = ident(table.key[0]);
    let param = match backend {
        Backend::Sqlite => "?",
        Backend::Postgres => "$1",
    };
    let order: Vec<String> = table.key.iter().map(|k| ident(k)).collect();
    let filter = match rows {
        Rows::All => String::new(),
        Rows::After => format!(" WHERE {first} > {param}"),
        Rows::Equal => format!(" WHERE {first} = {param}"),
    };
    let limit = match rows {
        Rows::After => format!(" LIMIT {}", table.page),
        _ => String::new(),
    };
    format!(
        "SELECT {object} AS row FROM {}{filter} ORDER BY {}{limit}",
        ident(table.name),
        order.join(", ")
    )
}

/// Whether a table is read in pages (its first key column is an integer).
pub fn paged(table: &Table) -> bool {
    table
        .column(table.key[0])
        .is_some_and(|c| matches!(c.kind, Kind::Int | Kind::BigInt))
}

/// A row of `columns` in canonical form.
pub fn parse_row(table: &Table, columns: &[Column], text: &str) -> AppResult<Map<String, Value>> {
    let broken = |why: String| AppError::internal(format!("backup of {}: {why}", table.name));
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(o)) => o,
        _ => return Err(broken("a row is not a JSON object".into())),
    };
    let mut out = Map::with_capacity(columns.len());
    for c in columns {
        let v = object.remove(c.name).unwrap_or(Value::Null);
        out.insert(c.name.to_string(), canonical(c, v).map_err(broken)?);
    }
    Ok(out)
}

/// The first key column's value of a canonical row.
pub fn first_key(table: &Table, row: &Map<String, Value>) -> i64 {
    row.get(table.key[0])
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN)
}

/// Reads every row of `table` (all columns) inside the caller's snapshot transaction and
/// hands them to `sink` a page at a time. Expands to an expression of type `AppResult<u64>`
/// (the row count); `$conn` is a `db_run!` connection.
#[macro_export]
#[doc(hidden)]
macro_rules! __backup_read_table {
    ($conn:ident, $backend:expr, $table:expr, $columns:expr, $sink:expr) => {{
        use diesel_async::RunQueryDsl as _;
        use $crate::backup::dump::{first_key, paged, parse_row, select_sql, JsonRow, Rows};
        let table = $table;
        let columns = $columns;
        let outcome: $crate::error::AppResult<u64> = async {
            let mut count = 0u64;
            if !paged(table) {
                let rows: Vec<JsonRow> =
                    diesel::sql_query(select_sql($backend, table, columns, Rows::All))
                        .load(&mut *$conn)
                        .await?;
                let rows = rows
                    .iter()
                    .map(|r| parse_row(table, columns, &r.row))
                    .collect::<$crate::error::AppResult<Vec<_>>>()?;
                count += rows.len() as u64;
                ($sink)(rows)?;
                return Ok(count);
            }
            let after = select_sql($backend, table, columns, Rows::After);
            let equal = select_sql($backend, table, columns, Rows::Equal);
            let mut last = i64::MIN;
            loop {
                let rows: Vec<JsonRow> = diesel::sql_query(after.as_str())
                    .bind::<diesel::sql_types::BigInt, _>(last)
                    .load(&mut *$conn)
                    .await?;
                let full = rows.len() as i64 == table.page;
                let mut rows = rows
                    .iter()
                    .map(|r| parse_row(table, columns, &r.row))
                    .collect::<$crate::error::AppResult<Vec<_>>>()?;
                let Some(tail) = rows.last().map(|r| first_key(table, r)) else {
                    break;
                };
                if full && table.key.len() > 1 {
                    // The page may have cut a run of rows sharing the first key column: read
                    // that run whole.
                    rows.retain(|r| first_key(table, r) != tail);
                    let run: Vec<JsonRow> = diesel::sql_query(equal.as_str())
                        .bind::<diesel::sql_types::BigInt, _>(tail)
                        .load(&mut *$conn)
                        .await?;
                    for r in &run {
                        rows.push(parse_row(table, columns, &r.row)?);
                    }
                }
                last = tail;
                count += rows.len() as u64;
                ($sink)(rows)?;
                if !full {
                    break;
                }
            }
            Ok(count)
        }
        .await;
        outcome
    }};
}
pub use crate::__backup_read_table as read_table;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::tables::table;

    #[test]
    fn pages_follow_the_first_key_column() {
        let t = table("chunk_vectors").unwrap();
        let sql = select_sql(Backend::Postgres, t, t.columns, Rows::After);
        assert!(sql.contains("WHERE \"chunk_id\" > $1"), "{sql}");
        assert!(
            sql.contains("ORDER BY \"chunk_id\", \"model\" LIMIT 1000"),
            "{sql}"
        );
        assert!(sql.contains("encode(\"embedding\", 'hex')"), "{sql}");
        assert!(!paged(table("settings").unwrap()));
    }
}
