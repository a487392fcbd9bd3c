//! Incremental Server-Sent Events parsing: bytes arrive in arbitrary pieces (a line may be
//! split across TCP reads, several events may share one), events come out as soon as their
//! blank line arrives. Only `data` matters to the OpenAI wire format; `event`, `id`, `retry`
//! and comments are skipped.

/// Largest event accepted; an upstream sending more without a blank line is broken.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Parser state across reads.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
}

/// An event too large to be real.
#[derive(Debug)]
pub struct SseTooLarge;

impl SseParser {
    /// Feeds bytes, pushing the `data` of each completed event into `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseTooLarge> {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(out);
            } else {
                self.line.push(b);
                if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseTooLarge);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        let line = String::from_utf8_lossy(&self.line);
        let (field, value) = match line.find(':') {
            Some(0) => {
                self.line.clear();
                return;
            }
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_crlf_comments_and_multiline() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let input = b": keep-alive\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: x\ndata: [DONE]\n\n";
        for piece in input.chunks(3) {
            p.feed(piece, &mut out).unwrap();
        }
        assert_eq!(out, vec!["{\"a\":\n1}".to_string(), "[DONE]".to_string()]);
    }
}
