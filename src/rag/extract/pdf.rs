//! PDF: pdfium (Chromium's PDF engine, from PyPI's `pypdfium2` wheel) reads each page's
//! text; pages are joined by a blank line and their ranges recorded. pdfium is bound once
//! per process on first use (pdfium-render keeps one binding per process, so it is a
//! process-wide static here too); its `thread_safe` feature serialises the calls.

use super::{unreadable, Extracted, PageSpan};
use crate::error::{AppError, AppResult, ErrorCode};
use std::path::PathBuf;
use std::sync::OnceLock;

/// pdfium as bound by the first use in this process.
static BOUND: OnceLock<Result<pdfium_render::prelude::Pdfium, String>> = OnceLock::new();

/// pdfium at a configured path, bound on first use.
pub struct Pdfium {
    library: PathBuf,
}

impl Pdfium {
    /// pdfium from `library` (not loaded yet).
    pub fn new(library: PathBuf) -> Self {
        Self { library }
    }

    fn get(&self) -> AppResult<&pdfium_render::prelude::Pdfium> {
        BOUND
            .get_or_init(|| {
                pdfium_render::prelude::Pdfium::bind_to_library(&self.library)
                    .map(pdfium_render::prelude::Pdfium::new)
                    .map_err(|e| format!("{}: {e}", self.library.display()))
            })
            .as_ref()
            .map_err(|e| {
                AppError::new(
                    ErrorCode::Unavailable,
                    format!("PDF reading is unavailable (pdfium did not load: {e}); run scripts/setup.sh"),
                )
            })
    }

    /// Whether pdfium loads.
    pub fn available(&self) -> bool {
        self.get().is_ok()
    }

    /// The text of a PDF, page by page (blocking).
    pub fn extract(&self, bytes: &[u8]) -> AppResult<Extracted> {
        let pdfium = self.get()?;
        let doc = pdfium
            .load_pdf_from_byte_slice(bytes, None)
            .map_err(|e| unreadable(format!("the PDF could not be read: {e}")))?;
        let mut text = String::new();
        let mut chars = 0usize;
        let mut pages = Vec::new();
        for (i, page) in doc.pages().iter().enumerate() {
            let page_text = page
                .text()
                .map_err(|e| unreadable(format!("page {} could not be read: {e}", i + 1)))?
                .all()
                .replace("\r\n", "\n")
                .replace('\r', "\n");
            if i > 0 {
                text.push_str("\n\n");
                chars += 2;
            }
            let start = chars;
            chars += page_text.chars().count();
            text.push_str(&page_text);
            pages.push(PageSpan {
                page: i as i32 + 1,
                start,
                end: chars,
            });
        }
        Ok(Extracted { text, pages })
    }
}
