//! What an upload is, decided from its bytes. The client's file name and Content-Type are
//! not trusted: a PDF is a PDF because it starts like one, an image because of its magic
//! bytes, a DOCX because it is a zip holding `word/document.xml`. Text is text when it is
//! UTF-8 without control bytes; only then does the name's extension choose among the text
//! flavours (markdown, code, data), which the bytes cannot tell apart.

use crate::db::enums::DocumentKind;
use crate::error::{AppError, AppResult, ErrorCode};
use std::io::Cursor;

/// An upload's kind and the Content-Type it is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// What it is.
    pub kind: DocumentKind,
    /// Served as.
    pub mime: &'static str,
}

/// File types accepted, for error messages.
pub const ACCEPTED: &str =
    "PDF, DOCX, text, Markdown, HTML, code (py, js, ts, rs, …), data (json, yaml, csv) and images (jpg, png, gif, webp)";

fn unsupported(what: &str) -> AppError {
    AppError::new(
        ErrorCode::UnsupportedMediaType,
        format!("unsupported file type: {what}; accepted: {ACCEPTED}"),
    )
    .with_details(serde_json::json!({ "field": "file" }))
}

/// Decides what `bytes` are. Empty files and anything not in [`ACCEPTED`] are errors.
pub fn sniff(bytes: &[u8], filename: &str) -> AppResult<Sniffed> {
    if bytes.is_empty() {
        return Err(AppError::validation("file", "the file is empty"));
    }
    let ext = extension(filename);
    if bytes.starts_with(b"%PDF-") {
        return Ok(Sniffed {
            kind: DocumentKind::Pdf,
            mime: "application/pdf",
        });
    }
    if let Some(mime) = image_mime(bytes) {
        return Ok(Sniffed {
            kind: DocumentKind::Image,
            mime,
        });
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return if is_docx(bytes) {
            Ok(Sniffed {
                kind: DocumentKind::Docx,
                mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            })
        } else {
            Err(unsupported("a zip archive that is not a Word document"))
        };
    }
    let text = text_of(bytes).ok_or_else(|| unsupported("binary content"))?;
    let head = text
        .trim_start()
        .get(..512.min(text.trim_start().len()))
        .unwrap_or("");
    let head_lower = head.to_ascii_lowercase();
    if head_lower.starts_with("<!doctype html")
        || head_lower.starts_with("<html")
        || (head_lower.starts_with('<')
            && (head_lower.contains("<body") || head_lower.contains("<head")))
    {
        return Ok(Sniffed {
            kind: DocumentKind::Html,
            mime: "text/html; charset=utf-8",
        });
    }
    let sniffed = match ext.as_str() {
        "md" | "markdown" => (DocumentKind::Markdown, "text/markdown; charset=utf-8"),
        "html" | "htm" => (DocumentKind::Html, "text/html; charset=utf-8"),
        "json" => {
            if serde_json::from_str::<serde_json::Value>(text).is_err() {
                return Err(AppError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the .json file is not valid JSON",
                )
                .with_details(serde_json::json!({ "field": "file" })));
            }
            (DocumentKind::Data, "application/json")
        }
        "yaml" | "yml" => (DocumentKind::Data, "application/yaml"),
        "csv" => (DocumentKind::Data, "text/csv; charset=utf-8"),
        "py" | "js" | "mjs" | "cjs" | "ts" | "tsx" | "jsx" | "rs" | "go" | "java" | "c" | "h"
        | "cpp" | "hpp" | "cs" | "rb" | "php" | "sh" | "sql" | "toml" | "css" | "kt" | "swift" => {
            (DocumentKind::Code, "text/plain; charset=utf-8")
        }
        _ => (DocumentKind::Text, "text/plain; charset=utf-8"),
    };
    Ok(Sniffed {
        kind: sniffed.0,
        mime: sniffed.1,
    })
}

/// The lower-case extension of a file name.
fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn image_mime(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Whether a zip holds a Word document's main part (read from the central directory only).
fn is_docx(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes))
        .map(|z| z.index_for_name("word/document.xml").is_some())
        .unwrap_or(false)
}

/// The text of UTF-8 bytes (a BOM dropped), or `None` for anything binary: invalid UTF-8 or
/// control bytes other than tab, newline, carriage return and form feed.
pub fn text_of(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0C'));
    (!binary).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_decides_not_the_name() {
        assert_eq!(
            sniff(b"%PDF-1.7 ...", "notes.txt").unwrap().kind,
            DocumentKind::Pdf
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nxxxx", "a.pdf").unwrap().kind,
            DocumentKind::Image
        );
        assert_eq!(
            sniff(b"plain words", "a.pdf").unwrap().kind,
            DocumentKind::Text
        );
        assert_eq!(
            sniff(b"<!DOCTYPE html><p>x</p>", "a.txt").unwrap().kind,
            DocumentKind::Html
        );
        assert_eq!(
            sniff(b"fn main() {}", "main.rs").unwrap().kind,
            DocumentKind::Code
        );
        assert_eq!(
            sniff(b"# Title", "a.md").unwrap().kind,
            DocumentKind::Markdown
        );
    }

    #[test]
    fn binary_and_empty_and_bad_json_are_refused() {
        let e = sniff(b"\x00\x01\x02ELF", "notes.txt").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        assert_eq!(
            sniff(b"", "a.txt").unwrap_err().code,
            ErrorCode::ValidationError
        );
        assert_eq!(
            sniff(b"{not json", "a.json").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            sniff(b"PK\x03\x04garbage", "a.docx").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
    }
}
