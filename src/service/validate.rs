//! Field checks shared by every door. Limits are the documented ones where a seed gives one
//! (4000 characters per message, seed 001) and generous but finite elsewhere.

use crate::error::{AppError, AppResult};

/// Longest chat message (seed 001).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Most agents one user may own (seed 001).
pub const MAX_AGENTS_PER_USER: i64 = 50;
/// Longest system prompt.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 20_000;
/// Longest names and titles.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest URL.
pub const MAX_URL_CHARS: usize = 2_048;
/// Longest search string.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Page size cap for every list.
pub const MAX_PAGE: i64 = 100;

/// Trims and checks a required string's length (in characters).
pub fn required(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    max_len(field, v, max)?;
    Ok(v.to_string())
}

/// Checks a string's length (in characters).
pub fn max_len(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A plausible email address, lower-cased.
pub fn email(value: &str) -> AppResult<String> {
    let v = value.trim().to_lowercase();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(AppError::validation(
            "email",
            "email is not a valid address",
        ));
    }
    Ok(v)
}

/// A username: 2–64 of letters, digits, `_ . -`.
pub fn username(value: &str) -> AppResult<String> {
    let v = value.trim();
    let ok = (2..=64).contains(&v.chars().count())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(AppError::validation(
            "username",
            "username must be 2-64 letters, digits, '_', '.' or '-'",
        ));
    }
    Ok(v.to_string())
}

/// A password of 8–256 characters.
pub fn password(value: &str) -> AppResult<()> {
    let n = value.chars().count();
    if !(8..=256).contains(&n) {
        return Err(AppError::validation(
            "password",
            "password must be 8-256 characters",
        ));
    }
    Ok(())
}

/// A sampling temperature in [0, 2].
pub fn temperature(value: f64) -> AppResult<f64> {
    if !(0.0..=2.0).contains(&value) || value.is_nan() {
        return Err(AppError::validation(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    Ok(value)
}

/// A page size in [1, MAX_PAGE], with a default.
pub fn limit(value: Option<i64>, default: i64) -> AppResult<i64> {
    let v = value.unwrap_or(default);
    if !(1..=MAX_PAGE).contains(&v) {
        return Err(AppError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(v)
}

/// Deepest offset a paged list accepts: past it the database would walk (and discard) a
/// million rows per request; such lists have cursors or search instead.
pub const MAX_OFFSET: i64 = 1_000_000;

/// An offset in [0, MAX_OFFSET].
pub fn offset(value: Option<i64>) -> AppResult<i64> {
    let v = value.unwrap_or(0);
    if v < 0 {
        return Err(AppError::validation(
            "offset",
            "offset must not be negative",
        ));
    }
    if v > MAX_OFFSET {
        return Err(AppError::validation(
            "offset",
            format!("offset must be at most {MAX_OFFSET}"),
        ));
    }
    Ok(v)
}

/// The offset of a 1-based `page` of `limit` rows, refused (not overflowed) past
/// [`MAX_OFFSET`].
pub fn page_offset(page: i64, limit: i64) -> AppResult<i64> {
    if page < 1 {
        return Err(AppError::validation("page", "page must be at least 1"));
    }
    (page - 1)
        .checked_mul(limit)
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or_else(|| {
            AppError::validation("page", format!("page is past the last {MAX_OFFSET} rows"))
        })
}

/// A URL-safe slug from a display name (`Expert Python` → `expert-python`).
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "agent".into()
    } else {
        out.chars().take(64).collect()
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub fn like_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_patterns() {
        assert_eq!(slugify("Expert Python Avancé!"), "expert-python-avanc");
        assert_eq!(slugify("***"), "agent");
        assert_eq!(like_pattern("50%_a"), "%50\\%\\_a%");
    }

    #[test]
    fn emails() {
        assert_eq!(email(" User@Example.com ").unwrap(), "user@example.com");
        assert!(email("nope").is_err());
        assert!(email("a@b").is_err());
    }
}
