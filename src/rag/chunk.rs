//! Token-aware chunking: text-splitter cuts the extracted text into pieces of at most
//! `rag.chunk_tokens` tokens of the embedding model's own tokenizer, preferring paragraph,
//! then sentence, then word boundaries, with `rag.chunk_overlap` tokens shared between
//! neighbours. Pieces are slices of the text, so their spans are exact.

use super::extract::Extracted;
use std::path::Path;
use text_splitter::{ChunkConfig, TextSplitter};
use tokenizers::Tokenizer;

/// A chunk's place in the extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// First char (Unicode scalar value offset).
    pub start: usize,
    /// One past the last char.
    pub end: usize,
    /// The page where it starts (PDF).
    pub page: Option<i32>,
    /// The chars `start..end` of the text.
    pub text: String,
}

/// The chunker of a process (the tokenizer is loaded once).
pub struct Chunker {
    splitter: TextSplitter<Tokenizer>,
}

impl Chunker {
    /// A chunker counting tokens with the tokenizer at `path`.
    pub fn load(path: &Path, tokens: usize, overlap: usize) -> anyhow::Result<Self> {
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Sizes must count every token: no truncation, no padding.
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tokenizer.with_padding(None);
        let config = ChunkConfig::new(tokens)
            .with_overlap(overlap)?
            .with_sizer(tokenizer);
        Ok(Self {
            splitter: TextSplitter::new(config),
        })
    }

    /// The chunks of a document's text, in order (blocking: tokenizes the whole text).
    pub fn chunk(&self, doc: &Extracted) -> Vec<Piece> {
        self.splitter
            .chunk_char_indices(&doc.text)
            .map(|c| {
                let start = c.char_offset;
                Piece {
                    start,
                    end: start + c.chunk.chars().count(),
                    page: doc.page_at(start),
                    text: c.chunk.to_string(),
                }
            })
            .collect()
    }
}
