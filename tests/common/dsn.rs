//! A delivery status notification as an independent MIME parser
//! (mail-parser) sees it: what tests/bounce.rs and tests/e2e_bounce.rs
//! check of the DSNs the milter rewrote (still a clean multipart/report).
#![allow(dead_code)]

/// One top-level part of a multipart/report.
pub struct Part {
    /// `type/subtype`; `text/plain` without a Content-Type (RFC 2045 §5.2).
    pub kind: String,
    /// The part as it stands in the message.
    pub raw: Vec<u8>,
    /// A text part's decoded text, with LF line ends.
    pub text: Option<String>,
}

/// The top-level parts of `message`; panics unless it is a
/// multipart/report whose parts parse without problems.
pub fn parts(message: &[u8]) -> Vec<Part> {
    let msg = mail_parser::MessageParser::default()
        .parse(message)
        .expect("the DSN parses");
    let root = msg.root_part();
    assert!(root.is_content_type("multipart", "report"));
    root.children()
        .map(|p| {
            assert!(
                !p.has_problems(),
                "{:?}",
                p.flags().names().collect::<Vec<_>>()
            );
            let kind = p.content_type().map_or("text/plain".into(), |ct| {
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            });
            let text = p
                .is_text()
                .then(|| p.text().unwrap_or_default().replace("\r\n", "\n"));
            Part {
                kind,
                raw: p.raw().to_vec(),
                text,
            }
        })
        .collect()
}

/// The `type/subtype` of each part of [`parts`].
pub fn kinds(message: &[u8]) -> Vec<String> {
    parts(message).into_iter().map(|p| p.kind).collect()
}
