//! HTML: the readable text as html2text renders it (html5ever parses, so broken markup is
//! read the way browsers read it). Lines are not wrapped.

use super::unreadable;
use crate::error::AppResult;

/// Widest line html2text may produce: effectively no wrapping.
const NO_WRAP: usize = 1_000_000;

/// The text of an HTML document.
pub fn extract(bytes: &[u8]) -> AppResult<String> {
    html2text::config::plain()
        .link_footnotes(false)
        .string_from_read(bytes, NO_WRAP)
        .map(|t| t.lines().map(str::trim_end).collect::<Vec<_>>().join("\n"))
        .map_err(|e| unreadable(format!("the HTML could not be read: {e}")))
}
