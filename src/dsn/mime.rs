//! Where the text to rewrite is: the first top-level `text/plain` part of a
//! multipart body, located by mail-parser, and what its transfer encoding
//! means for the rewrite.
//!
//! The milter sees the header block and the body apart, and mail-parser
//! wants a whole message, so the body is parsed behind a minimal header
//! block that names the boundary; offsets are then taken back to the body.

use super::{ascii_compatible, RewriteError};
use mail_parser::{DecodeProblems, MessageParser, MessagePart, PartFlags};
use std::ops::Range;

/// The text part to append to.
pub(super) struct TextPart {
    /// The part's content in the body: after the blank line that ends its
    /// headers, up to the line end before the next delimiter (that line
    /// end belongs to the delimiter, RFC 2046 §5.1.1).
    pub range: Range<usize>,
    pub content: Content,
}

/// What the content's transfer encoding lets us do with it.
pub(super) enum Content {
    /// `7bit`, `8bit`, `binary` or none: append as is.
    Plain,
    /// Append encoded, keeping the original encoded text.
    QuotedPrintable,
    /// The decoded text: it has to be encoded again as a whole.
    Base64(Vec<u8>),
}

/// Damage that makes a part's extent uncertain: a part that no delimiter
/// ended, or one ended in the middle of a line, or the parser's part or
/// depth limit (what lies beyond it was not looked at).
const STRUCTURAL: [PartFlags; 3] = [
    PartFlags::MISSING_DELIMITER,
    PartFlags::FALLBACK_DELIMITER,
    PartFlags::LIMIT_REACHED,
];

/// Finds the first top-level `text/plain` part with content in `body`, a
/// multipart body delimited by `boundary`.
pub(super) fn text_part(body: &[u8], boundary: &str) -> Result<TextPart, RewriteError> {
    let quoted = boundary.replace('\\', "\\\\").replace('"', "\\\"");
    let head = format!("Content-Type: multipart/report; boundary=\"{quoted}\"\r\n\r\n");
    let raw = [head.as_bytes(), body].concat();
    let message = MessageParser::new()
        .parse(&raw)
        .ok_or(RewriteError::TooLarge)?;
    let root = message.root_part();
    // The parser must have read the boundary we were given, not another.
    if root.content_type().and_then(|ct| ct.attribute("boundary")) != Some(boundary) {
        return Err(RewriteError::UnusableBoundary(boundary.into()));
    }
    // Parts are numbered in document order, the body itself being 0.
    if let Some((i, part)) = message
        .parts()
        .enumerate()
        .find(|(_, p)| p.flags().contains(PartFlags::LIMIT_REACHED))
    {
        return Err(damaged(i, part.flags()));
    }
    if root.flags().contains(PartFlags::UNTERMINATED) {
        return Err(RewriteError::NoClosingDelimiter(boundary.into()));
    }
    let children: Vec<MessagePart<'_>> = root.children().collect();
    if children.is_empty() || !root.flags().is_empty() {
        return Err(RewriteError::NoDelimiter(boundary.into()));
    }
    for (i, part) in children.iter().enumerate() {
        if STRUCTURAL.iter().any(|f| part.flags().contains(*f)) {
            return Err(damaged(i + 1, part.flags()));
        }
    }
    for (i, part) in children.iter().enumerate() {
        let Some(found) = as_text(part, &raw)? else {
            continue;
        };
        // Back from the parsed message to the body.
        let start = found.range.start.checked_sub(head.len());
        let end = found.range.end.checked_sub(head.len());
        return match (start, end) {
            (Some(start), Some(end)) if start <= end && end <= body.len() => Ok(TextPart {
                range: start..end,
                content: found.content,
            }),
            _ => Err(damaged(i + 1, part.flags())),
        };
    }
    Err(RewriteError::NoTextPart)
}

/// `part` as the text to append to, `None` when it is not a `text/plain`
/// part with content. `raw` is the parsed message.
fn as_text(part: &MessagePart<'_>, raw: &[u8]) -> Result<Option<TextPart>, RewriteError> {
    // RFC 2045 §5.2: no Content-Type means text/plain; charset=us-ascii.
    // One the parser could not read is not assumed to be text.
    let (plain, charset) = match part.content_type() {
        Some(ct) => (
            ct.ctype().eq_ignore_ascii_case("text")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("plain")),
            ct.attribute("charset"),
        ),
        None => (!part.headers().contains("Content-Type"), None),
    };
    if !plain {
        return Ok(None);
    }
    let charset = charset.unwrap_or("us-ascii");
    if !ascii_compatible(charset) {
        return Err(RewriteError::Charset(charset.into()));
    }
    let (start, end) = (part.offset_body() as usize, part.offset_end() as usize);
    // Headers only, nothing readable to append to: no blank line after
    // them, or the blank line is the line end of the next delimiter.
    let after = raw.get(end..).unwrap_or_default();
    let line_end_follows = after.starts_with(b"\n") || after.starts_with(b"\r\n");
    if part.flags().contains(PartFlags::NO_BLANK_LINE) || start > end || !line_end_follows {
        return Ok(None);
    }
    let encoding = part
        .content_transfer_encoding()
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let content = match encoding.as_str() {
        "7bit" | "8bit" | "binary" => Content::Plain,
        "quoted-printable" => Content::QuotedPrintable,
        "base64" => {
            let (text, problems) = part.decoded_checked();
            if problems.contains(DecodeProblems::MALFORMED_TRANSFER_ENCODING) {
                return Err(RewriteError::Base64);
            }
            Content::Base64(text.into_owned())
        }
        other => return Err(RewriteError::Encoding(other.into())),
    };
    Ok(Some(TextPart {
        range: start..end,
        content,
    }))
}

fn damaged(part: usize, flags: PartFlags) -> RewriteError {
    RewriteError::Damaged {
        part,
        problems: flags.names().collect::<Vec<_>>().join(", "),
    }
}
