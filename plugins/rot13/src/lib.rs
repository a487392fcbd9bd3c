//! `rot13`: a `document_before_ingest` hook for a file type Hearth cannot read. A `*.rot13`
//! file is the header `\0ROT13\n` and ROT13-scrambled text; the hook unscrambles it so it is
//! indexed like any text. Other files are left to other plugins (`{"text": null}`).

use base64::Engine;
use extism_pdk::{plugin_fn, FnResult, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Document {
    filename: String,
    content_base64: String,
}

fn rot13(c: char) -> char {
    match c {
        'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
        'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
        _ => c,
    }
}

/// The document's text, when it is a `.rot13` file.
#[plugin_fn]
pub fn document_before_ingest(Json(doc): Json<Document>) -> FnResult<Json<Value>> {
    if !doc.filename.ends_with(".rot13") {
        return Ok(Json(json!({ "text": null })));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(doc.content_base64)?;
    let body = bytes.strip_prefix(b"\0ROT13\n".as_slice()).unwrap_or(&bytes);
    let text: String = String::from_utf8_lossy(body).chars().map(rot13).collect();
    Ok(Json(json!({ "text": text })))
}
