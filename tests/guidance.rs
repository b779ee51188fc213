//! The guidance at the end of every reject reply, for each check's reject
//! code, through the real milter socket with records on a real DNS server
//! on 127.0.0.1: the reason line(s) first, then exactly the guidance lines
//! (with `[guidance] url` and `contact`), within RFC 5321's limits.

mod common;

use common::{
    dns::{TestDns, Zone},
    message, send, Daemon, TestKey, Transaction,
};
use indymilter_test::Status;
use std::net::Ipv4Addr;

const CLIENT: &str = "127.0.0.10";
const URL: &str = "https://mailkey.example/setup";
const CONTACT: &str = "postmaster@receiver.test";

/// The reply lines a rejected sender at `d` reads after the reasons.
fn guidance(d: &str) -> Vec<String> {
    vec![
        format!("To prove that mail from {d} is really yours, publish a mailkey"),
        "(a signing key in DNS that receivers check each message against):".into(),
        format!("1. run: mailkey-milter keygen --domain {d} --out /etc/mailkey"),
        "   (or use any DKIM signer with selector \"mailkey\")".into(),
        format!("2. publish the printed TXT record at mailkey.{d} and sign outgoing mail."),
        format!("Details: {URL}"),
        format!("Contact: {CONTACT}"),
    ]
}

/// Sends `message` from `from` and returns the reply lines, each checked
/// for the code and the RFC 5321 limits, without the code.
async fn rejected(zone: Zone, extra: &str, from: &str, message: String, code: &str) -> Vec<String> {
    rejected_with(zone, extra, "", from, message, code).await
}

/// [`rejected`] with more `[guidance]` settings.
async fn rejected_with(
    zone: Zone,
    extra: &str,
    guidance_extra: &str,
    from: &str,
    message: String,
    code: &str,
) -> Vec<String> {
    let dns = TestDns::start(zone).await;
    let config = common::config(
        &dns,
        &format!("{extra}\n[guidance]\nurl = \"{URL}\"\ncontact = \"{CONTACT}\"\n{guidance_extra}"),
    );
    let daemon = Daemon::start(&config).await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, from, message)).await;
    assert!(
        matches!(outcome.status, Status::Reject { .. }),
        "{:?}",
        outcome.status
    );
    let reply = outcome.reply();
    let lines: Vec<&str> = reply.split("\r\n").collect();
    assert!(lines.len() <= 32, "{} lines: {reply}", lines.len());
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            // "550-5.7.20 text" on every line but the last, "550 5.7.20 text".
            let sep = if i == last { ' ' } else { '-' };
            let prefix = format!("{}{sep}{} ", &code[..3], &code[4..]);
            assert!(line.starts_with(&prefix), "{line:?} lacks {prefix:?}");
            assert!(line.len() + 2 <= 512, "{} octets: {line}", line.len() + 2);
            line[prefix.len()..].to_string()
        })
        .collect()
}

/// The reasons, then exactly the guidance for `d`.
fn assert_reasons_then_guidance(lines: &[String], reasons: &[&str], d: &str) {
    let want = guidance(d);
    assert_eq!(lines.len(), reasons.len() + want.len(), "{lines:#?}");
    for (line, reason) in lines.iter().zip(reasons) {
        assert!(line.contains(reason), "{line:?} does not say {reason:?}");
    }
    assert_eq!(&lines[reasons.len()..], want.as_slice());
}

/// `x.test` with an MX and the given SPF record.
fn zone(spf: &str) -> Zone {
    Zone::default()
        .txt("x.test", spf)
        .mx("x.test", 10, "mx.x.test")
        .a("mx.x.test", Ipv4Addr::new(127, 0, 0, 25))
}

const SPF_PASS: &str = "v=spf1 ip4:127.0.0.10 -all";

#[tokio::test]
async fn mailkey_reject_5_7_20() {
    let key = TestKey::ed25519();
    let z = zone(SPF_PASS).txt("mailkey.x.test", &key.record);
    let lines = rejected(z, "", "a@x.test", message("a@x.test"), "550 5.7.20").await;
    assert_reasons_then_guidance(
        &lines,
        &["mailkey check fail for x.test: no mailkey signature"],
        "x.test",
    );
}

#[tokio::test]
async fn spf_reject_5_7_23() {
    let lines = rejected(
        zone("v=spf1 -all"),
        "",
        "a@x.test",
        message("a@x.test"),
        "550 5.7.23",
    )
    .await;
    assert_reasons_then_guidance(
        &lines,
        &["spf check fail for x.test: 127.0.0.10 is not authorised by the SPF record of x.test"],
        "x.test",
    );
}

#[tokio::test]
async fn mx_rejects_5_1_8_and_5_7_27() {
    let a_only = Zone::default()
        .txt("x.test", SPF_PASS)
        .a("x.test", Ipv4Addr::new(127, 0, 0, 30));
    let lines = rejected(a_only, "", "a@x.test", message("a@x.test"), "550 5.1.8").await;
    assert_reasons_then_guidance(&lines, &["x.test has no MX record"], "x.test");

    let null = Zone::default().txt("x.test", SPF_PASS).mx("x.test", 0, ".");
    let lines = rejected(null, "", "a@x.test", message("a@x.test"), "550 5.7.27").await;
    assert_reasons_then_guidance(&lines, &["x.test publishes a null MX"], "x.test");
}

#[tokio::test]
async fn ip_literal_reject_5_1_7_uses_a_placeholder_domain() {
    let from = "a@[127.0.0.1]";
    let lines = rejected(
        Zone::default(),
        "[spf]\nenforce = false",
        from,
        message(from),
        "550 5.1.7",
    )
    .await;
    assert_reasons_then_guidance(
        &lines,
        &["sender address uses the IP literal"],
        "your-domain.example",
    );
}

#[tokio::test]
async fn several_rejects_5_7_26() {
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let lines = rejected(z, "", "a@x.test", message("a@x.test"), "550 5.7.26").await;
    assert_reasons_then_guidance(
        &lines,
        &[
            "2 checks failed for x.test:",
            "spf check fail",
            "mx check fail",
        ],
        "x.test",
    );
}

#[tokio::test]
async fn custom_text_file_replaces_the_explanation() {
    let dir = common::process::temp_dir("guidance-text");
    let file = dir.join("guidance.txt");
    std::fs::write(
        &file,
        "We only take signed mail.\n\nAsk {domain}'s admin to sign it.\n",
    )
    .unwrap();
    let lines = rejected_with(
        zone("v=spf1 -all"),
        "",
        &format!("text_file = {file:?}"),
        "a@x.test",
        message("a@x.test"),
        "550 5.7.23",
    )
    .await;
    assert_eq!(
        &lines[1..],
        [
            "We only take signed mail.",
            "Ask x.test's admin to sign it.",
            &format!("Details: {URL}"),
            &format!("Contact: {CONTACT}"),
        ]
    );
}
