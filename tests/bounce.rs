//! Bounce guidance through the real milter socket: a DSN that Postfix
//! really generated (tests/fixtures/bounce/postfix-dsn.eml, captured by
//! tests/e2e_bounce.rs) and variants of it, sent as Postfix sends its own
//! bounces (null sender, client 127.0.0.1 = trusted), to bob@receiver.test,
//! whose domain does or does not publish a mailkey on a real DNS server on
//! 127.0.0.1. An independent MIME parser (mail-parser) checks the result.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    dsn::{parts, Part},
    message, send, Daemon, Outcome, TestKey, Transaction,
};
use indymilter_test::{EomAction, Status};
use mailkey_milter::{config::GuidanceConfig, guidance};

const FIXTURE: &str = include_str!("fixtures/bounce/postfix-dsn.eml");
const BOUNDARY: &str = "30A37994066.1795424319/mta.test";
const URL: &str = "https://mailkey.example/setup";
/// Where the first (text) part of the fixture ends.
const TEXT_END: &str =
    "\r\n\r\n--30A37994066.1795424319/mta.test\r\nContent-Description: Delivery report";
/// The fixture's text part: its headers, and its content.
const TEXT_HEAD: &str = "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";

/// A daemon whose DNS publishes a mailkey for receiver.test or not.
async fn daemon(recipient_has_key: bool) -> (TestDns, Daemon) {
    let mut zone = common::sender_zone();
    if recipient_has_key {
        zone = zone.txt("mailkey.receiver.test", &TestKey::ed25519().record);
    }
    let dns = TestDns::start(zone).await;
    let config = common::config(&dns, &format!("[guidance]\nurl = \"{URL}\""));
    (dns, Daemon::start(&config).await)
}

/// Sends `message` as Postfix sends a bounce it generated.
async fn bounce(daemon: &Daemon, message: &str) -> Outcome {
    let t = Transaction::new("127.0.0.1", "", message.to_string());
    let outcome = send(daemon.addr, &t).await;
    assert_eq!(outcome.status, Status::Accept, "a bounce is never refused");
    // Trusted: the sender checks were skipped, so no header of theirs.
    assert_eq!(outcome.auth_results(), None);
    outcome
}

fn marker(o: &Outcome) -> Option<String> {
    o.actions.actions.iter().find_map(|a| match a {
        EomAction::AddHeader { name, value } if name.to_bytes() == b"X-Mailkey-Guidance" => {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

fn assert_unchanged(o: &Outcome) {
    assert!(o.replaced_body().is_none(), "body replaced");
    assert!(marker(o).is_none(), "marker added");
}

fn split(message: &str) -> (&str, &str) {
    message.split_once("\r\n\r\n").unwrap()
}

/// `message` as the MTA passes it on: its header, the body the milter
/// replaced; panics when the body was not replaced.
fn rewritten(o: &Outcome, message: &str) -> String {
    let body = o.replaced_body().expect("body replaced");
    let (head, _) = split(message);
    format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body))
}

/// The paragraph as a bounced sender at receiver.test reads it.
fn paragraph() -> Vec<String> {
    let config = GuidanceConfig {
        url: Some(URL.into()),
        ..GuidanceConfig::default()
    };
    guidance::bounce_paragraph(&config, "receiver.test")
}

/// `original` and `rewritten` (complete messages) differ in the decoded
/// text of the first part only, by the paragraph, and every other part is
/// byte-identical.
fn assert_guided(original: &str, rewritten: &[u8]) {
    let (before, after) = (parts(original.as_bytes()), parts(rewritten));
    assert_eq!(before.len(), 3);
    let kinds = |p: &[Part]| -> Vec<String> { p.iter().map(|p| p.kind.clone()).collect() };
    assert_eq!(
        kinds(&after),
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );
    assert_eq!(kinds(&before), kinds(&after));
    for i in 1..3 {
        assert_eq!(
            String::from_utf8_lossy(&before[i].raw),
            String::from_utf8_lossy(&after[i].raw),
            "part {i} changed"
        );
    }
    let old = before[0].text.clone().unwrap();
    let new = after[0].text.clone().unwrap();
    let added = new.strip_prefix(&old).unwrap_or_else(|| panic!("{new}"));
    assert_eq!(added.trim(), paragraph().join("\n").trim(), "{new}");
}

#[tokio::test]
async fn real_postfix_dsn_gets_the_paragraph_and_keeps_every_other_byte() {
    let (_dns, daemon) = daemon(false).await;
    let o = bounce(&daemon, FIXTURE).await;
    assert_eq!(marker(&o).as_deref(), Some(" appended for receiver.test"));
    let body = o.replaced_body().expect("body replaced");
    let (head, old_body) = split(FIXTURE);
    // Exactly the paragraph after the text, before the blank line that
    // ended the part: every other byte of the body as it was.
    let want = old_body.replacen(
        TEXT_END,
        &format!("\r\n\r\n{}{TEXT_END}", paragraph().join("\r\n")),
        1,
    );
    assert_eq!(String::from_utf8_lossy(&body), want);
    let text = String::from_utf8_lossy(&body);
    for line in [
        "About your domain receiver.test: it publishes no mailkey, so receivers",
        "1. Run: mailkey-milter keygen --domain receiver.test --out /etc/mailkey",
        "   (or configure any DKIM signer with selector \"mailkey\").",
        "2. Publish the printed TXT record at mailkey.receiver.test",
        "Details: https://mailkey.example/setup",
    ] {
        assert!(
            text.contains(&format!("\r\n{line}\r\n")),
            "no {line:?} in {text}"
        );
    }
    assert_guided(FIXTURE, format!("{head}\r\n\r\n{text}").as_bytes());
}

#[tokio::test]
async fn large_dsn_is_guided_from_the_spool_file() {
    // The bounce of a 1 MB message returned whole: past 32 KiB it waits in
    // the spool file, which the MIME rewrite reads and the new body
    // replaces.
    let returned = "\r\nthe numbers are attached.\r\n";
    let at = FIXTURE.rfind(returned).expect("returned message body");
    let filler = "0123456789 the numbers are attached, again and again.\r\n".repeat(20_000);
    let large = format!(
        "{}{returned}{filler}{}",
        &FIXTURE[..at],
        &FIXTURE[at + returned.len()..]
    );
    let (_dns, daemon) = daemon(false).await;
    let o = bounce(&daemon, &large).await;
    let body = o.replaced_body().expect("body replaced");
    let (head, old_body) = split(&large);
    let want = old_body.replacen(
        TEXT_END,
        &format!("\r\n\r\n{}{TEXT_END}", paragraph().join("\r\n")),
        1,
    );
    assert_eq!(body.len(), want.len());
    assert!(body == want.as_bytes(), "the returned message changed");
    let rewritten = format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body));
    assert_guided(&large, rewritten.as_bytes());
}

#[tokio::test]
async fn real_sendmail_dsn_with_a_headerless_text_part() {
    // Sendmail's own DSNs never pass a milter (tests/e2e_sendmail_bounce.rs),
    // but the format is a second real one: its text part has no headers.
    let dsn = include_str!("fixtures/bounce/sendmail-dsn.eml");
    let (_dns, daemon) = daemon(false).await;
    let o = bounce(&daemon, dsn).await;
    let rewritten = rewritten(&o, dsn);
    assert_guided(dsn, rewritten.as_bytes());
}

#[tokio::test]
async fn recipient_domain_with_a_mailkey_gets_no_paragraph() {
    let (_dns, daemon) = daemon(true).await;
    assert_unchanged(&bounce(&daemon, FIXTURE).await);
}

/// The fixture with its text part re-encoded as `encoding`.
fn with_text_encoding(encoding: &str, content: &str) -> String {
    let (start, rest) = FIXTURE.split_once(TEXT_HEAD).unwrap();
    let (_, after) = rest.split_once(TEXT_END).unwrap();
    let head = TEXT_HEAD.replace("8bit", encoding);
    format!("{start}{head}{content}{TEXT_END}{after}")
}

fn original_text() -> &'static str {
    let (_, rest) = FIXTURE.split_once(TEXT_HEAD).unwrap();
    rest.split_once(TEXT_END).unwrap().0
}

#[tokio::test]
async fn quoted_printable_text_part() {
    // Non-ASCII text, an encoded '=', and a soft line break at the very end.
    let content = original_text()
        .replace("I'm sorry", "I=E2=80=99m sorry =3D")
        .replace("attached below.", "attached=\r\n below.")
        + "=";
    let dsn = with_text_encoding("quoted-printable", &content);
    let (_dns, daemon) = daemon(false).await;
    let o = bounce(&daemon, &dsn).await;
    let rewritten = rewritten(&o, &dsn);
    assert_guided(&dsn, rewritten.as_bytes());
    assert!(
        rewritten.contains("I=E2=80=99m sorry =3D"),
        "original encoding kept"
    );
}

#[tokio::test]
async fn base64_text_part() {
    let text = original_text().replace("I'm sorry", "I\u{2019}m sorry");
    let encoded = openssl::base64::encode_block(text.as_bytes());
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let dsn = with_text_encoding("base64", &lines.join("\r\n"));
    let (_dns, daemon) = daemon(false).await;
    let o = bounce(&daemon, &dsn).await;
    let rewritten = rewritten(&o, &dsn);
    assert_guided(&dsn, rewritten.as_bytes());
    for line in rewritten.lines() {
        assert!(line.len() <= 998);
    }
}

#[tokio::test]
async fn dsn_seen_twice_gets_the_paragraph_once() {
    let (_dns, daemon) = daemon(false).await;
    let first = bounce(&daemon, FIXTURE).await;
    let body = String::from_utf8(first.replaced_body().unwrap()).unwrap();
    let (head, _) = split(FIXTURE);
    // What the MTA made of the first pass, going through the milter again.
    let again = format!(
        "{head}\r\nX-Mailkey-Guidance:{}\r\n\r\n{body}",
        marker(&first).unwrap()
    );
    assert_unchanged(&bounce(&daemon, &again).await);
    assert_eq!(again.matches("mailkey-milter keygen").count(), 1);
}

#[tokio::test]
async fn null_sender_mail_that_is_no_dsn_is_left_alone() {
    let (_dns, daemon) = daemon(false).await;
    // An auto-reply.
    let auto_reply = message("alice@sender.test")
        .replace("Subject:", "Auto-Submitted: auto-replied\r\nSubject:");
    assert_unchanged(&bounce(&daemon, &auto_reply).await);
    // A read receipt: a report, but not about delivery status.
    let mdn = FIXTURE.replace(
        "report-type=delivery-status",
        "report-type=disposition-notification",
    );
    assert_unchanged(&bounce(&daemon, &mdn).await);
    // A sender that is not null: not a bounce.
    let t = Transaction::new("127.0.0.1", "alice@sender.test", FIXTURE.to_string());
    assert_unchanged(&send(daemon.addr, &t).await);
}

#[tokio::test]
async fn bounces_false_leaves_dsns_alone() {
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&common::config(&dns, "[guidance]\nbounces = false")).await;
    assert_unchanged(&bounce(&daemon, FIXTURE).await);
}

#[tokio::test]
async fn malformed_multipart_is_delivered_unchanged_and_logged() {
    let (logs, _guard) = common::LogCapture::for_thread();
    let (_dns, daemon) = daemon(false).await;

    let unclosed = FIXTURE.replace(&format!("--{BOUNDARY}--"), "");
    assert_unchanged(&bounce(&daemon, &unclosed).await);
    let no_boundary = FIXTURE.replace(&format!(";\r\n\tboundary=\"{BOUNDARY}\""), "");
    assert!(!no_boundary.contains("boundary="));
    assert_unchanged(&bounce(&daemon, &no_boundary).await);

    let log = logs.text();
    assert!(
        log.contains(&format!(
            "QUEUEID1: DSN to receiver.test left unchanged: no closing delimiter for boundary \"{BOUNDARY}\""
        )),
        "{log}"
    );
    assert!(
        log.contains("QUEUEID1: DSN to receiver.test left unchanged: multipart/report without a boundary parameter"),
        "{log}"
    );
}
