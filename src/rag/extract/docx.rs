//! DOCX: the runs of `word/document.xml` (zip read by `zip`, XML by `quick-xml`),
//! paragraphs separated by blank lines. The decompressed part is capped, so a zip bomb
//! fails cleanly instead of filling memory.

use super::{unreadable, Extracted};
use crate::error::AppResult;
use quick_xml::events::Event;
use std::io::{Cursor, Read};

/// Bytes of XML per char of text allowed (markup is verbose); the cap on the main part.
const XML_PER_CHAR: u64 = 16;

/// The text of a Word document.
pub fn extract(bytes: &[u8], max_chars: usize) -> AppResult<Extracted> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| unreadable(format!("the DOCX is not a readable zip: {e}")))?;
    let part = archive
        .by_name("word/document.xml")
        .map_err(|_| unreadable("the DOCX has no word/document.xml"))?;
    let cap = (max_chars as u64).saturating_mul(XML_PER_CHAR).max(1 << 20);
    let mut xml = Vec::new();
    part.take(cap + 1)
        .read_to_end(&mut xml)
        .map_err(|e| unreadable(format!("the DOCX could not be decompressed: {e}")))?;
    if xml.len() as u64 > cap {
        return Err(unreadable(format!(
            "the DOCX's text part decompresses to more than {cap} bytes"
        )));
    }
    let xml = std::str::from_utf8(&xml).map_err(|_| unreadable("the DOCX's XML is not UTF-8"))?;
    Ok(Extracted {
        text: paragraphs(xml)?,
        pages: Vec::new(),
    })
}

/// Paragraph texts of WordprocessingML, one blank line between paragraphs.
fn paragraphs(xml: &str) -> AppResult<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut para = String::new();
    let mut in_text = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| unreadable(format!("the DOCX's XML is malformed: {e}")))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let p = para.trim_end();
                    if !p.is_empty() {
                        if !out.is_empty() {
                            out.push_str("\n\n");
                        }
                        out.push_str(p);
                    }
                    para.clear();
                }
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" => para.push('\t'),
                "br" | "cr" => para.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => para.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    para.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tabs_breaks_and_entities() {
        let xml = r#"<w:document xmlns:w="x"><w:body>
            <w:p><w:r><w:t>Fish &amp; chips</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve"> cost </w:t></w:r></w:p>
            <w:p><w:r><w:t>Line</w:t><w:br/><w:t>two &#233;</w:t></w:r></w:p>
            <w:p></w:p></w:body></w:document>"#;
        assert_eq!(
            paragraphs(xml).unwrap(),
            "Fish & chips\t cost\n\nLine\ntwo é"
        );
    }
}
