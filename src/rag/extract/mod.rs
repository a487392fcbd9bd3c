//! Text extraction with positions. Each format's library produces the document's text;
//! paged formats also say where each page starts and ends in it. Offsets everywhere in
//! retrieval are Unicode scalar values (chars) into this text, which is stored with the
//! document so every chunk's span can be checked and shown in context.

mod docx;
mod html;
mod pdf;

use crate::config::RagConfig;
use crate::db::enums::DocumentKind;
use crate::error::{AppError, AppResult, ErrorCode};

pub use pdf::Pdfium;

/// A page of a paged document: its 1-based number and its char range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageSpan {
    /// 1-based.
    pub page: i32,
    /// First char.
    pub start: usize,
    /// One past the last char.
    pub end: usize,
}

/// A document's text and pages.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// The text chunks are cut from.
    pub text: String,
    /// Page ranges (PDF); empty for unpaged formats.
    pub pages: Vec<PageSpan>,
}

impl Extracted {
    /// The page holding char `offset`.
    pub fn page_at(&self, offset: usize) -> Option<i32> {
        self.pages
            .iter()
            .find(|p| offset >= p.start && offset < p.end.max(p.start + 1))
            .or(self.pages.last().filter(|p| offset >= p.end))
            .map(|p| p.page)
    }
}

/// Why a document has no text: the message is shown on the document.
pub fn unreadable(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::UnsupportedMediaType, message)
}

/// Extracts the text of a document of `kind` (blocking: call off the async runtime).
pub fn extract(
    kind: DocumentKind,
    bytes: &[u8],
    config: &RagConfig,
    pdfium: &Pdfium,
) -> AppResult<Extracted> {
    let extracted = match kind {
        DocumentKind::Other => return Err(unreadable("no plugin supplied this document's text")),
        DocumentKind::Pdf => pdfium.extract(bytes)?,
        DocumentKind::Docx => docx::extract(bytes, config.max_text_chars)?,
        DocumentKind::Html => Extracted {
            text: html::extract(bytes)?,
            pages: Vec::new(),
        },
        DocumentKind::Text | DocumentKind::Markdown | DocumentKind::Code | DocumentKind::Data => {
            let text = super::sniff::text_of(bytes)
                .ok_or_else(|| unreadable("the file is not UTF-8 text"))?;
            Extracted {
                text: text.replace("\r\n", "\n"),
                pages: Vec::new(),
            }
        }
        DocumentKind::Image => return Err(unreadable("images are stored, not indexed")),
    };
    checked(extracted, config)
}

/// Text supplied by a plugin's `document_before_ingest`, held to the same rules.
pub fn supplied(text: String, config: &RagConfig) -> AppResult<Extracted> {
    checked(
        Extracted {
            text: text.replace("\r\n", "\n"),
            pages: Vec::new(),
        },
        config,
    )
}

/// Refuses an empty text or one longer than `max_text_chars`.
fn checked(extracted: Extracted, config: &RagConfig) -> AppResult<Extracted> {
    if extracted.text.trim().is_empty() {
        return Err(unreadable("the document has no text to index"));
    }
    if extracted.text.chars().count() > config.max_text_chars {
        return Err(AppError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the document's text is longer than {} characters",
                config.max_text_chars
            ),
        ));
    }
    Ok(extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_found_by_offset() {
        let e = Extracted {
            text: "aaaa\n\nbbbb".into(),
            pages: vec![
                PageSpan {
                    page: 1,
                    start: 0,
                    end: 4,
                },
                PageSpan {
                    page: 2,
                    start: 6,
                    end: 10,
                },
            ],
        };
        assert_eq!(e.page_at(0), Some(1));
        assert_eq!(e.page_at(7), Some(2));
        assert_eq!(e.page_at(10), Some(2));
    }
}
