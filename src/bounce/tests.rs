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
         Gr=C3=BC=C3=9Fe, long line=\r\n continued=",
    );
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    assert_eq!(
        out,
        replaced(
            &body,
            "continued=\r\n--B1",
            "continued\r\n\r\nLine one =3D ok\r\nLine two\r\n--B1"
        )
    );
}

#[test]
fn quoted_printable_lines_stay_short() {
    let line = format!("{} =end ", "x".repeat(100));
    let encoded = qp_encode_line(&line, b"\r\n");
    for l in encoded.split("\r\n") {
        assert!(l.len() <= 76, "{l}");
    }
    assert!(encoded.ends_with("=3Dend=20"), "{encoded}");
}

#[test]
fn base64_is_decoded_appended_and_reencoded() {
    let text = "Unzustellbar: Gr\u{fc}\u{df}e\r\n";
    let encoded = String::from_utf8(base64_encode_lines(text.as_bytes(), b"\r\n")).unwrap();
    let body = dsn(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}"
    ));
    let out = append_guidance(&body, Some("B1/mta.test"), &para()).unwrap();
    let new_text = format!("{text}\r\nLine one = ok\r\nLine two\r\n");
    let new_encoded = String::from_utf8(base64_encode_lines(new_text.as_bytes(), b"\r\n")).unwrap();
    assert_eq!(out, replaced(&body, &encoded, &new_encoded));
}

#[test]
fn base64_round_trips_every_length() {
    let data: Vec<u8> = (0..=255u8).collect();
    for n in 0..data.len() {
        let encoded = base64_encode_lines(&data[..n], b"\r\n");
        assert!(encoded.split(|b| *b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(base64_decode(&encoded).unwrap(), &data[..n]);
    }
    assert_eq!(base64_decode(b"QUJD").unwrap(), b"ABC");
    assert_eq!(base64_decode(b"QQ==").unwrap(), b"A");
    assert!(base64_decode(b"QU*D").is_none());
    assert!(base64_decode(b"QQ==QQ").is_none());
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
