use super::*;

const HEAD: &[u8] = b"From: MAILER-DAEMON@mta.test\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1/mta.test\"\r\n";

fn dsn(text_part: &str) -> Vec<u8> {
    format!(
        "This is a MIME-encapsulated message.\r\n\r\n--B1/mta.test\r\n{text_part}\r\n\
         --B1/mta.test\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mta.test\r\n\r\n\
         Final-Recipient: rfc822; x@local.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B1/mta.test\r\nContent-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\n--B1/mta.test\r\nbody\r\n\
         \r\n--B1/mta.test--\r\n"
    )
    .into_bytes()
}

fn para() -> Vec<String> {
    vec!["Line one = ok".into(), "Line two".into()]
}

/// The body with `old` (once) replaced by `new`: what a rewrite must give.
fn replaced(body: &[u8], old: &str, new: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(text.matches(old).count(), 1, "{old:?}");
    text.replacen(old, new, 1).into_bytes()
}

/// The decoded text of the first part of multipart `body`, LF line ends.
fn first_text(body: &[u8]) -> String {
    let message = [HEAD, b"\r\n", body].concat();
    let parsed = mail_parser::MessageParser::new().parse(&message).unwrap();
    let part = parsed.root_part().children().next().unwrap();
    part.text().unwrap().replace("\r\n", "\n")
}

#[test]
fn classifies_by_content_type_marker_and_signature() {
    assert_eq!(
        classify(HEAD),
        Kind::Dsn {
            boundary: Some("B1/mta.test".into())
        }
    );
    let with = |extra: &str| [HEAD, extra.as_bytes()].concat();
    assert_eq!(
        classify(&with("X-Mailkey-Guidance: appended\r\n")),
        Kind::AlreadyGuided
    );
    assert_eq!(classify(&with("DKIM-Signature: v=1\r\n")), Kind::Signed);
    assert_eq!(classify(b"Content-Type: text/plain\r\n"), Kind::NotDsn);
    assert_eq!(classify(b"Subject: out of office\r\n"), Kind::NotDsn);
    assert_eq!(
        classify(
            b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n"
        ),
        Kind::NotDsn
    );
    assert_eq!(
        classify(b"content-type: Multipart/Report; Report-Type=\"Delivery-Status\"\r\n"),
        Kind::Dsn { boundary: None }
    );
}

#[test]
fn seven_bit_text_gets_the_paragraph_and_nothing_else_changes() {
    let body = dsn("Content-Type: text/plain; charset=us-ascii\r\n\r\nYour mail bounced.\r\n");
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    let want = replaced(
        &body,
        "Your mail bounced.\r\n\r\n--B1",
        "Your mail bounced.\r\n\r\nLine one = ok\r\nLine two\r\n\r\n--B1",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn part_without_headers_is_text_plain() {
    let body = dsn("\r\nBounced.");
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(
        out,
        replaced(
            &body,
            "Bounced.\r\n--B1",
            "Bounced.\r\n\r\nLine one = ok\r\nLine two\r\n--B1"
        )
    );
}

#[test]
fn quoted_printable_is_appended_encoded() {
    let body = dsn(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Gr=C3=BC=C3=9Fe,  \r\nlast line",
    );
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(
        out,
        replaced(
            &body,
            "last line\r\n--B1",
            "last line\r\n\r\nLine one =3D ok\r\nLine two\r\n--B1"
        )
    );
}

#[test]
fn quoted_printable_soft_break_at_the_end_is_kept() {
    // "continued " then a soft break: the space is text, and the break
    // joins with the first line end we add.
    let body = dsn(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n\
         long line=\r\n continued =",
    );
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(
        out,
        replaced(
            &body,
            "continued =\r\n--B1",
            "continued =\r\n\r\n\r\nLine one =3D ok\r\nLine two\r\n--B1"
        )
    );
    assert_eq!(
        first_text(&out),
        "long line continued \n\nLine one = ok\nLine two"
    );
}

#[test]
fn quoted_printable_malformed_escape_at_the_end_is_no_soft_break() {
    // "==" is an escape gone wrong, kept as written by readers: the last
    // line ends in text, not in a soft break.
    let body = dsn("Content-Transfer-Encoding: quoted-printable\r\n\r\nAAAA==");
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(
        out,
        replaced(
            &body,
            "AAAA==\r\n--B1",
            "AAAA==\r\n\r\nLine one =3D ok\r\nLine two\r\n--B1"
        )
    );
}

#[test]
fn quoted_printable_soft_break_before_the_last_line_end() {
    // The soft break swallows the content's last line end: the text still
    // ends mid-line, and gets the blank line before the paragraph.
    let body = dsn("Content-Transfer-Encoding: quoted-printable\r\n\r\nsorry=\r\n");
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(first_text(&out), "sorry\n\nLine one = ok\nLine two\n");
    // A soft break after a complete line: the paragraph after one line end.
    let body = dsn("Content-Transfer-Encoding: quoted-printable\r\n\r\nsorry\r\n=");
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(first_text(&out), "sorry\n\nLine one = ok\nLine two");
}

#[test]
fn quoted_printable_lines_stay_short() {
    let line = format!("{} =end ", "x".repeat(100));
    let body = dsn("Content-Transfer-Encoding: quoted-printable\r\n\r\nBounced.\r\n");
    let out = append_guidance(&body, Some("B1/mta.test"), std::slice::from_ref(&line)).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    for l in text.split("\r\n") {
        assert!(l.len() <= 76, "{l}");
    }
    assert!(text.contains("=3Dend=20\r\n"), "{text}");
    assert_eq!(first_text(&out), format!("Bounced.\n\n{line}\n"));
}

#[test]
fn base64_is_decoded_appended_and_reencoded() {
    // "Unzustellbar: Grüße\r\n", and then with the paragraph (encoded by
    // an independent encoder).
    let encoded = "VW56dXN0ZWxsYmFyOiBHcsO8w59lDQo=";
    let body = dsn(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}"
    ));
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    let new_encoded = "VW56dXN0ZWxsYmFyOiBHcsO8w59lDQoNCkxpbmUgb25lID0gb2sNCkxpbmUgdHdvDQo=";
    assert_eq!(out, replaced(&body, encoded, new_encoded));
}

#[test]
fn base64_lines_are_wrapped_in_the_body_line_ends() {
    let body = b"--b\nContent-Transfer-Encoding: base64\n\nQm91bmNlZC4=\n\n--b--\n";
    let long = "x".repeat(100);
    let out = append_guidance(body, Some("b"), std::slice::from_ref(&long)).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains('\r'), "{text}");
    let encoded: Vec<&str> = text.lines().skip(3).take_while(|l| !l.is_empty()).collect();
    assert!(encoded.len() >= 2, "{text}");
    assert!(encoded.iter().all(|l| l.len() <= 76), "{text}");
    // The blank line before the closing delimiter is kept.
    assert!(text.ends_with("=\n\n--b--\n"), "{text}");
}

#[test]
fn invalid_base64_is_an_error() {
    let body = dsn("Content-Transfer-Encoding: base64\r\n\r\nQU*D");
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &para()),
        Err(RewriteError::Base64)
    );
}

#[test]
fn part_whose_blank_line_is_the_delimiters_line_end_has_no_content() {
    let body = dsn("Content-Type: text/plain\r\n");
    assert!(String::from_utf8_lossy(&body).contains("text/plain\r\n\r\n--B1"));
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &para()),
        Err(RewriteError::NoTextPart)
    );
}

#[test]
fn malformed_multiparts_are_errors() {
    let body = dsn("\r\nBounced.");
    assert_eq!(
        append_guidance(&body, None, &para()),
        Err(RewriteError::NoBoundary)
    );
    let unclosed = replaced(&body, "--B1/mta.test--", "");
    assert_eq!(
        append_guidance(&unclosed, Some("B1/mta.test"), &para()),
        Err(RewriteError::NoClosingDelimiter("B1/mta.test".into()))
    );
    assert_eq!(
        append_guidance(&body, Some("other"), &para()),
        Err(RewriteError::NoDelimiter("other".into()))
    );
    // Delimiters only in the middle of lines: a lenient reader may take
    // them, we do not.
    assert_eq!(
        append_guidance(b"x--b\r\n\r\nText\r\nx--b--\r\n", Some("b"), &para()),
        Err(RewriteError::NoDelimiter("b".into()))
    );
    assert_eq!(
        append_guidance(&body, Some("a\r\nb"), &para()),
        Err(RewriteError::UnusableBoundary("a\r\nb".into()))
    );
    let sneaky = vec!["see --B1/mta.test".to_string()];
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &sneaky),
        Err(RewriteError::DelimiterInGuidance("B1/mta.test".into()))
    );
}

#[test]
fn quoted_boundary_with_escapes() {
    let body = b"--a\"b\r\n\r\nText\r\n--a\"b--\r\n";
    let out = append_guidance(body, Some("a\"b"), &para()).unwrap();
    assert_eq!(
        out,
        b"--a\"b\r\n\r\nText\r\n\r\nLine one = ok\r\nLine two\r\n--a\"b--\r\n"
    );
}

#[test]
fn unknown_charsets_and_encodings_are_left_alone() {
    let body = dsn("Content-Type: text/plain; charset=utf-16\r\n\r\nx");
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &para()),
        Err(RewriteError::Charset("utf-16".into()))
    );
    let body = dsn("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx");
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &para()),
        Err(RewriteError::Encoding("x-uuencode".into()))
    );
    let body = dsn("Content-Type: text/html\r\n\r\n<p>x</p>");
    assert_eq!(
        append_guidance(&body, Some("B1/mta.test"), &para()),
        Err(RewriteError::NoTextPart)
    );
}

#[test]
fn boundary_with_padding_and_lf_line_ends() {
    let body = b"--b \n\nText\n--b\nContent-Type: message/delivery-status\n\nX: y\n--b-- \n";
    let out = append_guidance(body, Some("b"), &para()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "--b \n\nText\n\nLine one = ok\nLine two\n--b\nContent-Type: message/delivery-status\n\nX: y\n--b-- \n"
    );
}
