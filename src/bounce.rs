//! Bounce guidance in the DSNs our own MTA generates (DESIGN.md "Bounce
//! guidance"): find the human-readable `text/plain` part of a
//! `multipart/report; report-type=delivery-status` message and append the
//! guidance paragraph to it.
//!
//! Everything here is a pure function of bytes. The rewrite touches the
//! bytes of that one part's content and nothing else: the boundaries, the
//! other parts (the `message/delivery-status` report, the returned message)
//! and the part's own headers stay byte-for-byte as they were, because a
//! DSN is read by programs as well as people. Anything we do not fully
//! understand is an error, and the caller leaves the message alone.

/// The header that marks a message we already added guidance to, so that
/// a DSN passing the milter twice gets it once.
pub const MARKER: &str = "X-Mailkey-Guidance";

/// What the header block says about a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not a delivery status notification: leave it alone.
    NotDsn,
    /// A DSN that carries our [`MARKER`] already.
    AlreadyGuided,
    /// A DSN with a `DKIM-Signature`: changing the body would break it.
    Signed,
    /// A DSN; the boundary is `None` when the header names none.
    Dsn { boundary: Option<String> },
}

/// Why a DSN was left unchanged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("multipart/report without a boundary parameter")]
    NoBoundary,
    #[error("no delimiter line for boundary {0:?}")]
    NoDelimiter(String),
    #[error("no closing delimiter for boundary {0:?}")]
    NoClosingDelimiter(String),
    #[error("no text/plain part at the top level")]
    NoTextPart,
    #[error("text part in charset {0:?}, which is not a superset of ASCII we know")]
    Charset(String),
    #[error("text part with Content-Transfer-Encoding {0:?}")]
    Encoding(String),
    #[error("text part with invalid base64")]
    Base64,
}

/// Reads the top-level header block (`Name: value` lines, folded lines
/// starting with white space).
pub fn classify(header_block: &[u8]) -> Kind {
    let headers = parse_headers(header_block);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(content_type) = get("Content-Type") else {
        return Kind::NotDsn;
    };
    let ct = ContentType::parse(content_type);
    let is_dsn = ct.mime_type == "multipart/report"
        && ct
            .param("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    if !is_dsn {
        Kind::NotDsn
    } else if get(MARKER).is_some() {
        Kind::AlreadyGuided
    } else if get("DKIM-Signature").is_some() {
        Kind::Signed
    } else {
        Kind::Dsn {
            boundary: ct.param("boundary").map(str::to_string),
        }
    }
}

/// Returns `body` with `paragraph` (lines without line ends) appended to
/// its first top-level `text/plain` part, after a blank line.
pub fn append_guidance(
    body: &[u8],
    boundary: Option<&str>,
    paragraph: &[String],
) -> Result<Vec<u8>, RewriteError> {
    let boundary = boundary.ok_or(RewriteError::NoBoundary)?;
    let parts = split_parts(body, boundary)?;
    let eol: &[u8] = if memfind(body, b"\r\n").is_some() {
        b"\r\n"
    } else {
        b"\n"
    };
    for (start, end) in parts {
        let part = &body[start..end];
        let (head, content_offset) = split_part(part);
        let headers = parse_headers(head);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // RFC 2045 §5.2: no Content-Type means text/plain; charset=us-ascii.
        let ct = ContentType::parse(get("Content-Type").unwrap_or("text/plain"));
        if ct.mime_type != "text/plain" {
            continue;
        }
        let charset = ct.param("charset").unwrap_or("us-ascii");
        if !ascii_compatible(charset) {
            return Err(RewriteError::Charset(charset.into()));
        }
        let Some(offset) = content_offset else {
            // Headers only: nothing readable to append to.
            continue;
        };
        let encoding = get("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase();
        let content = &part[offset..];
        let new_content = match encoding.as_str() {
            "7bit" | "8bit" | "binary" => append_text(content, &join(paragraph, eol), eol),
            "quoted-printable" => {
                let encoded: Vec<String> =
                    paragraph.iter().map(|l| qp_encode_line(l, eol)).collect();
                append_text(strip_final_soft_break(content), &join(&encoded, eol), eol)
            }
            "base64" => {
                let text = base64_decode(content).ok_or(RewriteError::Base64)?;
                let text = append_text(&text, &join(paragraph, b"\r\n"), b"\r\n");
                let mut encoded = base64_encode_lines(&text, eol);
                if content.ends_with(eol) {
                    encoded.extend_from_slice(eol);
                }
                encoded
            }
            other => return Err(RewriteError::Encoding(other.into())),
        };
        let mut out = Vec::with_capacity(body.len() + new_content.len());
        out.extend_from_slice(&body[..start + offset]);
        out.extend_from_slice(&new_content);
        out.extend_from_slice(&body[end..]);
        return Ok(out);
    }
    Err(RewriteError::NoTextPart)
}

/// `content` + a blank line + `addition`, keeping line structure: a
/// missing final line end is added first, and a final line end of the
/// original (a blank line before the next delimiter) is kept after.
fn append_text(content: &[u8], addition: &[u8], eol: &[u8]) -> Vec<u8> {
    let ends_with_eol = content.ends_with(b"\n");
    let mut out = content.to_vec();
    if !content.is_empty() && !ends_with_eol {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out.extend_from_slice(addition);
    if ends_with_eol {
        out.extend_from_slice(eol);
    }
    out
}

fn join(lines: &[String], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// The parts of a multipart body as (start, end) byte ranges: from after
/// the delimiter line to before the line end that precedes the next
/// delimiter (RFC 2046 §5.1.1: that line end belongs to the delimiter).
fn split_parts(body: &[u8], boundary: &str) -> Result<Vec<(usize, usize)>, RewriteError> {
    let dash = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = memfind(&body[pos..], b"\n").map_or(body.len(), |i| pos + i + 1);
        let line = trim_eol(&body[pos..line_end]);
        if let Some(rest) = line.strip_prefix(dash.as_bytes()) {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            // Transport padding (white space) may follow the boundary.
            if rest.iter().all(|b| *b == b' ' || *b == b'\t') {
                if let Some(start) = open {
                    let end = pos - preceding_eol_len(body, pos);
                    parts.push((start, end.max(start)));
                }
                if closing {
                    return Ok(parts);
                }
                open = Some(line_end);
            }
        }
        pos = line_end;
    }
    if open.is_none() {
        Err(RewriteError::NoDelimiter(boundary.into()))
    } else {
        Err(RewriteError::NoClosingDelimiter(boundary.into()))
    }
}

fn preceding_eol_len(body: &[u8], pos: usize) -> usize {
    if pos >= 2 && &body[pos - 2..pos] == b"\r\n" {
        2
    } else if pos >= 1 && body[pos - 1] == b'\n' {
        1
    } else {
        0
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A part's header block and the offset of its content (after the blank
/// line); `None` when the part has no blank line, so no content.
fn split_part(part: &[u8]) -> (&[u8], Option<usize>) {
    if part.starts_with(b"\r\n") {
        return (&[], Some(2));
    }
    if part.starts_with(b"\n") {
        return (&[], Some(1));
    }
    let crlf = memfind(part, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = memfind(part, b"\n\n").map(|i| (i, i + 2));
    let first = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match first {
        Some((head_end, content)) => (&part[..head_end], Some(content)),
        None => (part, None),
    }
}

/// Unfolded header fields; names as written, values trimmed.
fn parse_headers(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

/// A parsed `Content-Type` value (RFC 2045 §5.1): the lower-cased type and
/// its parameters, quoted strings unquoted.
struct ContentType {
    mime_type: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    fn parse(value: &str) -> Self {
        let mut pieces = split_unquoted(value, ';').into_iter();
        let mime_type = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let params = pieces
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        Self { mime_type, params }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Charsets in which our ASCII text means the same bytes as in ASCII.
fn ascii_compatible(charset: &str) -> bool {
    let c = charset.trim().to_ascii_lowercase();
    matches!(c.as_str(), "us-ascii" | "ascii" | "utf-8" | "utf8")
        || c.starts_with("iso-8859-")
        || c.starts_with("windows-125")
}

/// Removes a soft line break (`=`, maybe followed by white space) that ends
/// a quoted-printable content: it joins with nothing, so the decoded text
/// is the same without it, and appending after it must not glue our first
/// line onto the last line of the text.
fn strip_final_soft_break(content: &[u8]) -> &[u8] {
    let trimmed = content
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(&content[..0], |i| &content[..=i]);
    trimmed.strip_suffix(b"=").unwrap_or(content)
}

/// One line of text in quoted-printable (RFC 2045 §6.7), with soft line
/// breaks so that no encoded line exceeds 76 characters.
fn qp_encode_line(line: &str, eol: &[u8]) -> String {
    let soft_break = if eol == b"\r\n" { "=\r\n" } else { "=\n" };
    let bytes = line.as_bytes();
    let mut out = String::new();
    let mut width = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let literal = (b'!'..=b'~').contains(&b) && b != b'=' || (b == b' ' && !last);
        let piece = if literal {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if width + piece.len() > 75 {
            out.push_str(soft_break);
            width = 0;
        }
        width += piece.len();
        out.push_str(&piece);
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 in lines of 76 characters (RFC 2045 §6.8), without a final line end.
fn base64_encode_lines(data: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(data.len() * 4 / 3 + 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                encoded.push(BASE64[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                encoded.push(b'=');
            }
        }
    }
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * eol.len());
    for (i, line) in encoded.chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
    }
    out
}

/// Decodes base64, ignoring line ends and white space; `None` on anything
/// else that is not base64.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut padding) = (0u32, 0, 0);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (padding <= 2).then_some(out)
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
