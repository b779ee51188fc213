//! Properties on generated input, for the two places where hostile or
//! broken bytes meet our text:
//!
//! - The DSN rewrite (`mailkey_milter::dsn`), driven as the milter drives
//!   it (header block to `classify`, body to `append_guidance`): it never
//!   panics, and a message it rewrites still parses as MIME with every part
//!   but the text part byte-identical, and the text part's decoded text
//!   extended by exactly the guidance paragraph. Anything else must leave
//!   the message as it was (the milter then delivers it unchanged).
//! - `verdict::sanitize`: whatever the input, one safe SMTP reply line.
//! - `Authentication-Results` (RFC 8601, `ar_syntax`): what our
//!   writer writes, the parser reads back exactly — any property value,
//!   any reason in a comment, monitor mode or not (issue #21).
//!
//! Inputs: arbitrary bytes; generated DSNs of every shape the rewrite
//! distinguishes (charsets, transfer encodings, line ends, missing
//! delimiters and blank lines, nested messages, tokens that look like
//! delimiters or encodings); and the real Postfix and Sendmail DSNs of
//! tests/fixtures/bounce with random edits.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_parser::{MessageParser, PartFlags};
use mailkey_milter::{
    ar_syntax as syntax,
    auth_results::header_value,
    checks::{self, CheckResult, Effect, Status},
    config::{Config, GuidanceConfig},
    dsn::{self, Kind},
    guidance,
    verdict::{sanitize, Verdict, MAX_LINE_TEXT},
};
use proptest::{collection::vec, prelude::*, sample::select};

const POSTFIX_DSN: &[u8] = include_bytes!("fixtures/bounce/postfix-dsn.eml");
const SENDMAIL_DSN: &[u8] = include_bytes!("fixtures/bounce/sendmail-dsn.eml");

// ---------------------------------------------------------------- DSN --

/// The header block (with the line end of its last field, as the milter
/// has it) and the body of `message`; `None` without a blank line.
fn split(message: &[u8]) -> Option<(&[u8], &[u8])> {
    (0..message.len()).find_map(|i| {
        let rest = message[i..].strip_prefix(b"\n")?;
        let body = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))?;
        Some((&message[..=i], body))
    })
}

/// What the milter makes of `message`: the rewritten message, or `None`
/// when it is left as it was.
fn rewrite(message: &[u8], paragraph: &[String]) -> Option<Vec<u8>> {
    let (head, body) = split(message)?;
    let Kind::Dsn { boundary } = dsn::classify(head) else {
        return None;
    };
    let new_body = dsn::append_guidance(body, boundary.as_deref(), paragraph).ok()?;
    let blank = &message[head.len()..message.len() - body.len()];
    Some([head, blank, &new_body].concat())
}

/// A top-level part as mail-parser sees it.
struct Part {
    plain: bool,
    raw: Vec<u8>,
    /// Decoded text with LF line ends, for text parts.
    text: Option<String>,
    /// Where its content is in the message.
    body: usize,
    end: usize,
}

/// Damage that would make "the same parts" meaningless.
const STRUCTURAL: [PartFlags; 4] = [
    PartFlags::MISSING_DELIMITER,
    PartFlags::FALLBACK_DELIMITER,
    PartFlags::UNTERMINATED,
    PartFlags::LIMIT_REACHED,
];

fn top_level_parts(message: &[u8]) -> Result<Vec<Part>, TestCaseError> {
    let parsed = MessageParser::new().parse(message);
    let parsed = parsed.ok_or_else(|| TestCaseError::fail("does not parse"))?;
    let root = parsed.root_part();
    prop_assert!(root.is_content_type("multipart", "report"));
    let mut parts = Vec::new();
    for p in std::iter::once(root).chain(root.children()) {
        for flag in STRUCTURAL {
            prop_assert!(!p.flags().contains(flag), "{:?}", p.flags());
        }
    }
    for p in root.children() {
        let plain = p
            .content_type()
            .is_none_or(|ct| ct.ctype() == "text" && ct.subtype() == Some("plain"));
        parts.push(Part {
            plain,
            raw: p.raw().to_vec(),
            text: p.text().map(|t| t.replace("\r\n", "\n")),
            body: p.offset_body() as usize,
            end: p.offset_end() as usize,
        });
    }
    Ok(parts)
}

/// The property: unchanged, or exactly the paragraph added to one text
/// part and every other byte as it was.
fn check_rewrite(message: &[u8], paragraph: &[String]) -> Result<(), TestCaseError> {
    check_rewrite_of(message, paragraph).map_err(|e| {
        let out = rewrite(message, paragraph).unwrap_or_default();
        TestCaseError::fail(format!(
            "{e}\nmessage: b\"{}\"\nrewritten: b\"{}\"",
            message.escape_ascii(),
            out.escape_ascii()
        ))
    })
}

fn check_rewrite_of(message: &[u8], paragraph: &[String]) -> Result<(), TestCaseError> {
    let Some(out) = rewrite(message, paragraph) else {
        return Ok(());
    };
    let before = top_level_parts(message)?;
    let after = top_level_parts(&out)?;
    prop_assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i].raw != after[i].raw)
        .collect();
    prop_assert_eq!(changed.len(), 1, "parts changed: {:?}", changed);
    let (old, new) = (&before[changed[0]], &after[changed[0]]);
    prop_assert!(old.plain && new.plain);
    // Byte-identical outside the content of that part: the boundaries, the
    // preamble and epilogue, the part's own headers.
    prop_assert!(out.starts_with(&message[..old.body]));
    prop_assert!(out.ends_with(&message[old.end..]));
    prop_assert!(out.len() > message.len());
    let (old_text, new_text) = (old.text.clone().unwrap(), new.text.clone().unwrap());
    let added = new_text.strip_prefix(old_text.as_str());
    let added =
        added.ok_or_else(|| TestCaseError::fail(format!("{old_text:?} -> {new_text:?}")))?;
    // The paragraph after a line break (a blank line when the text ends
    // mid-line), maybe followed by the original's final line break.
    let p = paragraph.join("\n");
    let forms = [
        format!("\n{p}"),
        format!("\n\n{p}"),
        format!("\n{p}\n"),
        format!("\n\n{p}\n"),
    ];
    prop_assert!(forms.contains(&added.to_string()), "added {:?}", added);
    if !old_text.is_empty() && !old_text.ends_with('\n') {
        prop_assert!(added.starts_with("\n\n"), "no blank line: {:?}", added);
    }
    Ok(())
}

/// The paragraph the milter appends, or other printable ASCII lines.
fn paragraph() -> impl Strategy<Value = Vec<String>> {
    let config = GuidanceConfig {
        url: Some("https://mailkey.example/setup".into()),
        ..GuidanceConfig::default()
    };
    prop_oneof![
        Just(guidance::bounce_paragraph(&config, "sender.test")),
        vec("[ -~]{0,100}", 1..5),
    ]
}

const BOUNDARIES: &[&str] = &[
    "30A37994066.1795424319/mta.test",
    "=_Part_0_1",
    "a b",
    "x",
    "q\"uote",
];

/// Bytes that mean something to a MIME reader, and some that mean nothing.
fn tokens(boundary: &str) -> impl Strategy<Value = Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let special: Vec<Vec<u8>> = [
        "\r\n",
        "\n",
        "\r",
        "\r\n\r\n",
        "=",
        "=\r\n",
        "= \r\n",
        "=3D",
        "=C3=BC",
        "=4",
        " ",
        "\t",
        "--",
        "Text line",
        "QUJD",
        "QQ==",
        "*",
        "\u{fc}",
        "\u{2019}",
        "Content-Type: text/plain\r\n",
        "Content-Transfer-Encoding: base64\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        format!("\r\n{delimiter}\r\n").into_bytes(),
        format!("\r\n{delimiter}--\r\n").into_bytes(),
        delimiter.into_bytes(),
        vec![0xff, 0x00],
    ])
    .collect();
    vec(select(special), 0..12).prop_map(|t| t.concat())
}

const EOLS: &[&[u8]] = &[b"\r\n", b"\n"];

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("text/plain"),
    Some("text/plain; charset=utf-8"),
    Some("TEXT/PLAIN; CHARSET=\"ISO-8859-1\""),
    Some("text/plain; charset=utf-16"),
    Some("text/html"),
    Some("message/delivery-status"),
    Some("message/rfc822"),
    Some("text/rfc822-headers"),
    Some("multipart/mixed; boundary=inner"),
    Some(";;"),
];

const ENCODINGS: &[Option<&str>] = &[
    None,
    Some("7bit"),
    Some("8bit"),
    Some("binary"),
    Some("quoted-printable"),
    Some("Quoted-Printable"),
    Some("base64"),
    Some("x-uuencode"),
];

/// One part: its header lines, whether the blank line is there, content.
fn part(boundary: &str) -> impl Strategy<Value = (Vec<String>, bool, Vec<u8>)> {
    let content = prop_oneof![
        tokens(boundary),
        // Real base64, wrapped like an encoder does.
        vec(any::<u8>(), 0..200).prop_map(|data| {
            let encoded = encodify::base64::MIME.encode(&data);
            encoded.trim_end().as_bytes().to_vec()
        }),
        Just(b"Subject: returned\r\n\r\nThe message.\r\n".to_vec()),
        Just(b"--inner\r\n\r\ninside\r\n--inner--\r\n".to_vec()),
    ];
    (
        select(CONTENT_TYPES),
        select(ENCODINGS),
        any::<bool>(),
        content,
    )
        .prop_map(|(ct, cte, blank, content)| {
            let mut headers = Vec::new();
            if let Some(ct) = ct {
                headers.push(format!("Content-Type: {ct}"));
            }
            if let Some(cte) = cte {
                headers.push(format!("Content-Transfer-Encoding: {cte}"));
            }
            (headers, blank || content.is_empty(), content)
        })
}

/// A DSN generated part by part.
fn generated_dsn() -> impl Strategy<Value = Vec<u8>> {
    select(BOUNDARIES).prop_flat_map(|boundary| {
        (
            select(EOLS),
            tokens(boundary),
            vec(part(boundary), 0..4),
            select(&["--", "-- \t", "", "-"][..]),
            tokens(boundary),
        )
            .prop_map(move |(eol, preamble, parts, close, epilogue)| {
                let quoted = boundary.replace('"', "\\\"");
                let mut m = [
                    "From: MAILER-DAEMON@mta.test".into(),
                    "MIME-Version: 1.0".into(),
                    "Content-Type: multipart/report; report-type=delivery-status;".into(),
                    format!("\tboundary=\"{quoted}\""),
                    String::new(),
                ]
                .join(std::str::from_utf8(eol).unwrap_or("\r\n"))
                .into_bytes();
                m.extend_from_slice(eol);
                m.extend_from_slice(&preamble);
                for (headers, blank, content) in parts {
                    m.extend_from_slice(format!("--{boundary}").as_bytes());
                    m.extend_from_slice(eol);
                    for h in headers {
                        m.extend_from_slice(h.as_bytes());
                        m.extend_from_slice(eol);
                    }
                    if blank {
                        m.extend_from_slice(eol);
                    }
                    m.extend_from_slice(&content);
                    m.extend_from_slice(eol);
                }
                if close != "-" {
                    m.extend_from_slice(format!("--{boundary}{close}").as_bytes());
                    m.extend_from_slice(eol);
                }
                m.extend_from_slice(&epilogue);
                m
            })
    })
}

/// `base` with a few random edits: bytes deleted, inserted or replaced.
fn edited(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0..3u8,
        tokens("x"),
        0..40usize,
    );
    vec(edit, 0..4).prop_map(move |edits| {
        let mut m = base.to_vec();
        for (at, op, bytes, len) in edits {
            let i = at.index(m.len() + 1);
            let j = (i + len).min(m.len());
            match op {
                0 => drop(m.drain(i..j)),
                1 => drop(m.splice(i..i, bytes)),
                _ => drop(m.splice(i..j, bytes)),
            }
        }
        m
    })
}

proptest! {
    #[test]
    fn dsn_rewrite_of_arbitrary_bytes(message in vec(any::<u8>(), 0..2000), p in paragraph()) {
        check_rewrite(&message, &p)?;
    }

    #[test]
    fn dsn_rewrite_of_arbitrary_body(body in vec(any::<u8>(), 0..2000), p in paragraph()) {
        let (head, _) = split(POSTFIX_DSN).unwrap();
        check_rewrite(&[head, b"\r\n", &body].concat(), &p)?;
    }

    #[test]
    fn dsn_rewrite_of_generated_dsns(message in generated_dsn(), p in paragraph()) {
        check_rewrite(&message, &p)?;
    }

    #[test]
    fn dsn_rewrite_of_edited_postfix_dsn(message in edited(POSTFIX_DSN), p in paragraph()) {
        check_rewrite(&message, &p)?;
    }

    #[test]
    fn dsn_rewrite_of_edited_sendmail_dsn(message in edited(SENDMAIL_DSN), p in paragraph()) {
        check_rewrite(&message, &p)?;
    }
}

/// The generators reach the rewrite: a property that only ever saw
/// messages left alone would prove nothing.
#[test]
fn generated_dsns_are_rewritten_often() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let p = guidance::bounce_paragraph(&GuidanceConfig::default(), "sender.test");
    let rewritten = (0..400)
        .filter(|_| {
            let m = generated_dsn().new_tree(&mut runner).unwrap().current();
            rewrite(&m, &p).is_some()
        })
        .count();
    assert!(rewritten >= 40, "{rewritten} of 400 rewritten");
    for fixture in [POSTFIX_DSN, SENDMAIL_DSN] {
        assert!(rewrite(fixture, &p).is_some());
    }
}

// ----------------------------------------------------------- sanitize --

/// `text` with each `%%` read back as `%`; `None` if a `%` is not doubled.
fn undouble(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '%' && chars.next() != Some('%') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Any text, with the characters that matter to a reply line made common.
fn reply_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        any::<char>(),
        select(&['%', '\r', '\n', '\0', '\t', '\u{85}', '\u{2028}', 'é'][..]),
        proptest::char::range(' ', '~'),
    ];
    vec(c, 0..(2 * MAX_LINE_TEXT)).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn sanitized_text_is_one_safe_reply_line(text in reply_text()) {
        let out = sanitize(&text);
        prop_assert!(out.chars().all(|c| (' '..='~').contains(&c)), "{:?}", out);
        prop_assert!(!out.contains('\r') && !out.contains('\n'));
        let plain = undouble(&out);
        let plain = plain.ok_or_else(|| TestCaseError::fail(format!("single % in {out:?}")))?;
        // As sent, `%` doubled: at most MAX_LINE_TEXT octets, so that the
        // reply line with its code and CRLF is at most 512 (RFC 5321).
        prop_assert!(out.len() <= MAX_LINE_TEXT, "{} octets", out.len());
        let line = format!("550-5.7.26 {out}\r\n");
        prop_assert!(line.len() <= 512, "{} octets", line.len());
        // What is kept is the start of the text, unprintables as '?', as
        // much of it as fits.
        let want: String = text
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        prop_assert!(want.starts_with(&plain), "{:?} is not the start of {:?}", plain, want);
        if let Some(next) = want[plain.len()..].chars().next() {
            let needs = if next == '%' { 2 } else { 1 };
            prop_assert!(out.len() + needs > MAX_LINE_TEXT, "{:?} was cut short", out);
        }
    }
}

// ------------------------------------------------- Authentication-Results --

/// Any text, with the characters that matter to RFC 8601 made common.
fn ar_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        any::<char>(),
        select(&['"', '\\', ';', '(', ')', '@', '=', '.', ' ', '\r', '\n', '\t', 'é'][..]),
        proptest::char::range(' ', '~'),
    ];
    vec(c, 0..60).prop_map(|v| v.into_iter().collect())
}

/// What a written value reads back as: the text without control
/// characters, which a quoted-string cannot carry.
fn writable(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

proptest! {
    #[test]
    fn property_values_read_back_as_written(v in ar_text(), id in ar_text()) {
        let written = format!(
            "{}; spf=pass smtp.mailfrom={} (c); x-mx=fail smtp.mailfrom=b.test",
            syntax::authserv_id_value(&id),
            syntax::value(&v)
        );
        let parsed = syntax::parse(&written);
        let parsed = parsed.ok_or_else(|| TestCaseError::fail(format!("{written:?}")))?;
        prop_assert_eq!(parsed.authserv_id, writable(&id));
        prop_assert_eq!(parsed.results.len(), 2, "{:?}", written);
        let want = writable(&v);
        prop_assert_eq!(parsed.results[0].prop("smtp.mailfrom"), Some(want.as_str()));
        prop_assert_eq!(parsed.results[1].prop("smtp.mailfrom"), Some("b.test"));
        // An ARC-Authentication-Results of the same payload reads the same.
        let (i, arc) = syntax::parse_arc(&format!("i=7; {written}"))
            .ok_or_else(|| TestCaseError::fail(format!("{written:?}")))?;
        prop_assert_eq!(i, 7);
        prop_assert_eq!(arc.results, parsed.results);
    }

    #[test]
    fn our_header_reads_back_as_its_results(
        reasons in vec(proptest::option::of(ar_text()), 5),
        values in vec(ar_text(), 5),
        monitor in any::<bool>(),
    ) {
        let config = Config::default();
        let mut verdict = Verdict::accept();
        verdict.monitor_only = monitor;
        let results: Vec<CheckResult> = checks::CHECKS
            .iter()
            .zip(reasons.iter().zip(&values))
            .map(|(check, (reason, value))| {
                let r = CheckResult::new(check.name, Status::Fail, Effect::Accept)
                    .prop("smtp.mailfrom", value.clone());
                match reason {
                    Some(why) => r.reason(why.clone()),
                    None => r,
                }
            })
            .collect();
        let header = header_value(&config, &results, &verdict);
        let parsed = syntax::parse(&header)
            .ok_or_else(|| TestCaseError::fail(format!("{header:?}")))?;
        prop_assert_eq!(&parsed.authserv_id, &config.authserv_id);
        prop_assert_eq!(parsed.results.len(), results.len(), "{}", header);
        for (got, want) in parsed.results.iter().zip(&results) {
            let method = checks::find(want.check).map(|c| c.ar_method).unwrap_or_default();
            prop_assert_eq!(got.method.as_str(), method);
            prop_assert_eq!(got.result.as_str(), "fail");
            let value = writable(&want.props[0].1);
            prop_assert_eq!(got.prop("smtp.mailfrom"), Some(value.as_str()));
        }
    }
}
