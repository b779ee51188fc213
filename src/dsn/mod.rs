//! Bounce guidance in the DSNs our own MTA generates: find the
//! human-readable `text/plain` part of a `multipart/report;
//! report-type=delivery-status` message and append the guidance paragraph
//! to it.
//!
//! Everything here is a pure function of bytes. The MIME structure is read
//! by mail-parser ([`mime`]) and the transfer encodings are written by
//! encodify, the codec library mail-parser itself decodes with. The
//! rewrite is a splice: the bytes of that one part's content are replaced
//! and nothing else changes. The boundaries, the other parts (the
//! `message/delivery-status` report, the returned message) and the part's
//! own headers stay byte-for-byte as they were, because a DSN is read by
//! programs as well as people. Anything the parser reports as damaged is
//! an error, and the caller leaves the message alone.

mod mime;

use encodify::{base64, qp};
use mail_parser::MessageParser;
use mime::Content;

/// The header that marks a message we already added guidance to, so that
/// a DSN passing the milter twice gets it once.
pub(crate) const MARKER: &str = "X-Mailkey-Guidance";

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
    #[error("boundary parameter {0:?} that cannot be written back as a parameter")]
    UnusableBoundary(String),
    #[error("no delimiter line for boundary {0:?}")]
    NoDelimiter(String),
    #[error("no closing delimiter for boundary {0:?}")]
    NoClosingDelimiter(String),
    #[error("damaged MIME structure in part {part}: {problems}")]
    Damaged { part: usize, problems: String },
    #[error("body too large for the MIME parser")]
    TooLarge,
    #[error("no text/plain part at the top level")]
    NoTextPart,
    #[error("text part in charset {0:?}, which is not a superset of ASCII we know")]
    Charset(String),
    #[error("text part with Content-Transfer-Encoding {0:?}")]
    Encoding(String),
    #[error("text part with invalid base64")]
    Base64,
    #[error("guidance text that contains the delimiter of boundary {0:?}")]
    DelimiterInGuidance(String),
}

/// Reads the top-level header block (`Name: value` lines, folded lines
/// starting with white space; with or without the blank line after it).
pub fn classify(header_block: &[u8]) -> Kind {
    // mail-parser wants the blank line that ends a header block.
    let mut block = header_block.to_vec();
    if !block.is_empty() && !block.ends_with(b"\n") {
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    let Some(message) = MessageParser::new().parse_headers(&block) else {
        return Kind::NotDsn;
    };
    let Some(ct) = message.content_type() else {
        return Kind::NotDsn;
    };
    let is_dsn = ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && ct
            .attribute("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    let headers = message.headers();
    if !is_dsn {
        Kind::NotDsn
    } else if headers.contains(MARKER) {
        Kind::AlreadyGuided
    } else if headers.contains("DKIM-Signature") {
        Kind::Signed
    } else {
        Kind::Dsn {
            boundary: ct.attribute("boundary").map(str::to_string),
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
    // Our text must not end the part early, wherever a lenient parser
    // looks for delimiters.
    let delimiter = format!("--{boundary}");
    if paragraph.iter().any(|l| l.contains(&delimiter)) {
        return Err(RewriteError::DelimiterInGuidance(boundary.into()));
    }
    let part = mime::text_part(body, boundary)?;
    // The line ends of what we add follow the message's own.
    let eol: &[u8] = if body.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let content = &body[part.range.clone()];
    let new_content = match part.content {
        Content::Plain => append_text(content, &join(paragraph, eol), eol),
        Content::QuotedPrintable => append_quoted_printable(content, paragraph, eol),
        Content::Base64(text) => {
            // Inside base64 the line ends are canonical CRLF (RFC 2045 §6.8).
            let text = append_text(&text, &join(paragraph, b"\r\n"), b"\r\n");
            let engine = if eol == b"\r\n" {
                base64::MIME
            } else {
                base64::MIME.wrapped(76, base64::LineEnding::Lf)
            };
            // The engine ends every line, the last one too; keep the
            // original's choice for the last one.
            let mut encoded = engine.encode(&text).into_bytes();
            if !content.ends_with(eol) && encoded.ends_with(eol) {
                encoded.truncate(encoded.len() - eol.len());
            }
            encoded
        }
    };
    let mut out = Vec::with_capacity(body.len() + new_content.len());
    out.extend_from_slice(&body[..part.range.start]);
    out.extend_from_slice(&new_content);
    out.extend_from_slice(&body[part.range.end..]);
    Ok(out)
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

/// The original encoded text kept as it is, and the paragraph appended in
/// quoted-printable (RFC 2045 §6.7: lines of at most 76 characters). The
/// line ends in between are what [`append_text`] would put between the
/// decoded texts: what the encoded text ends with (a soft break, a line
/// end it swallowed, white space that decoding drops) is read through the
/// decoder.
fn append_quoted_printable(content: &[u8], paragraph: &[String], eol: &[u8]) -> Vec<u8> {
    // encodify writes CRLF line ends, soft and hard; our text has no CR or
    // LF of its own, so every CRLF in the output is one of those.
    let mut encoded = qp::BODY.encode(join(paragraph, b"\n"));
    if eol == b"\n" {
        encoded = encoded.replace("\r\n", "\n");
    }
    let decoded = qp::BODY.decode(content).unwrap_or_default();
    let mut out = content.to_vec();
    if ends_with_soft_break(content, &decoded, eol) {
        // Swallowed by the `=` that ends the content.
        out.extend_from_slice(eol);
    }
    if !decoded.is_empty() && !decoded.ends_with(b"\n") {
        // Ends the sender's last line.
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out.extend_from_slice(encoded.as_bytes());
    if content.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
    out
}

/// Whether quoted-printable `content`, which decodes to `decoded`, ends
/// with a soft line break (`=`, maybe followed by white space) that the end
/// of the part cut off. The decoder decides (a final `=` may also end a
/// malformed escape): after a soft break, a line end vanishes in decoding.
fn ends_with_soft_break(content: &[u8], decoded: &[u8], eol: &[u8]) -> bool {
    let probe = [content, eol, b"x"].concat();
    qp::BODY
        .decode(&probe)
        .is_ok_and(|text| text.strip_suffix(b"x") == Some(decoded))
}

fn join(lines: &[String], eol: &[u8]) -> Vec<u8> {
    lines
        .iter()
        .map(|l| l.as_bytes())
        .collect::<Vec<_>>()
        .join(eol)
}

/// Charsets in which our ASCII text means the same bytes as in ASCII.
fn ascii_compatible(charset: &str) -> bool {
    let c = charset.trim().to_ascii_lowercase();
    matches!(c.as_str(), "us-ascii" | "ascii" | "utf-8" | "utf8")
        || c.starts_with("iso-8859-")
        || c.starts_with("windows-125")
}

#[cfg(test)]
mod tests;
