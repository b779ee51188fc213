//! Rejecting before DATA: an enforced check that needs no message (SPF,
//! MX, TLS, an address-literal sender) that already failed is answered at
//! RCPT TO, with the reply the end of message would give, so the body is
//! never sent. Through the real milter socket, with the records on a real
//! DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message, open, send, Daemon, LogCapture, Outcome, TestKey, Transaction,
};
use indymilter_test::{MacroStage, Status};
use std::net::Ipv4Addr;

const CLIENT: &str = "127.0.0.10";
/// Clients of the tests that read the log, one each.
const CLIENT_2: &str = "127.0.0.12";
const CLIENT_3: &str = "127.0.0.13";
const CLIENT_4: &str = "127.0.0.14";
const FROM: &str = "a@x.test";

/// `x.test` with a mailkey key, an MX and the given SPF record.
fn zone(key: &TestKey, spf: &str) -> Zone {
    Zone::default()
        .txt("x.test", spf)
        .txt("mailkey.x.test", &key.record)
        .mx("x.test", 10, "mx.x.test")
        .a("mx.x.test", Ipv4Addr::new(127, 0, 0, 25))
}

fn signed(key: &TestKey) -> String {
    key.sign(&message(FROM), "x.test", "mailkey")
}

fn logs() -> &'static LogCapture {
    LogCapture::global()
}

/// The per-message lines of transactions from `client`.
fn message_lines(client: &str) -> Vec<String> {
    let client = format!("client={client} ");
    logs()
        .text()
        .lines()
        .filter(|l| l.contains("log_version=2") && l.contains(&client))
        .map(String::from)
        .collect()
}

fn assert_rejected_at_rcpt(o: &Outcome, code: &str) {
    assert!(o.at_rcpt, "not decided at RCPT: {:?}", o.status);
    o.assert_rejected(code, &[]);
}

#[tokio::test]
async fn spf_fail_is_rejected_at_rcpt_with_the_end_of_message_reply() {
    logs();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key, "v=spf1 -all")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;

    let early = send(daemon.addr, &Transaction::new(CLIENT_2, FROM, signed(&key))).await;
    assert_rejected_at_rcpt(&early, "550-5.7.23");
    assert!(
        early
            .reply()
            .contains("127.0.0.12 is not authorised by the SPF record of x.test: fail"),
        "{}",
        early.reply()
    );
    assert!(early.auth_results().is_none());

    // With `reject_at_rcpt = false` the same message is decided at end of
    // message, as before: the very same reply, and the header that only a
    // message has.
    daemon.reload(&common::config(&dns, "reject_at_rcpt = false"));
    let late = send(daemon.addr, &Transaction::new(CLIENT_2, FROM, signed(&key))).await;
    assert!(!late.at_rcpt);
    assert_eq!(early.reply(), late.reply());
    let ar = late.ar();
    assert!(
        ar.contains("mailkey=pass") && ar.contains("spf=fail"),
        "{ar}"
    );

    let lines = message_lines(CLIENT_2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, stage) in lines.iter().zip(["stage=rcpt", "stage=eom"]) {
        assert!(line.contains(stage), "{stage} not in {line}");
        assert!(
            line.contains("verdict=reject") && line.contains("550 5.7.23"),
            "{line}"
        );
        assert!(line.contains("spf=fail"), "{line}");
    }
    // At RCPT the message has not been read: mailkey's result is not there.
    assert!(lines[0].contains("mailkey=-"), "{}", lines[0]);
}

#[tokio::test]
async fn every_recipient_gets_the_same_reply_and_the_message_one_log_line() {
    logs();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key, "v=spf1 -all")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let mut conn = open(daemon.addr, CLIENT_3.parse().unwrap(), "mail.x.test").await;
    conn.macros(MacroStage::Mail, [("i", "QUEUEID1")])
        .await
        .unwrap();
    assert!(common::goes_on(
        &conn.mail([format!("<{FROM}>")]).await.unwrap()
    ));
    let mut replies = Vec::new();
    for rcpt in [
        "<bob@receiver.test>",
        "<carol@receiver.test>",
        "<dave@receiver.test>",
    ] {
        match conn.rcpt([rcpt]).await.unwrap() {
            Status::Reject { message: Some(m) } => replies.push(m),
            other => panic!("RCPT {rcpt}: {other:?}"),
        }
    }
    assert!(replies.iter().all(|r| *r == replies[0]));
    // Every recipient refused: the MTA ends the transaction without DATA.
    conn.abort().await.unwrap();
    let _ = conn.close().await;
    let lines = message_lines(CLIENT_3);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("stage=rcpt"), "{}", lines[0]);
    // The queue ID as far as the MTA has given one (MAIL stage).
    assert!(lines[0].contains("queue_id=QUEUEID1"), "{}", lines[0]);
}

#[tokio::test]
async fn mx_fail_is_rejected_at_rcpt_with_5_1_8() {
    let key = TestKey::ed25519();
    let z = Zone::default()
        .txt("x.test", "v=spf1 ip4:127.0.0.10 -all")
        .txt("mailkey.x.test", &key.record)
        .a("x.test", Ipv4Addr::new(127, 0, 0, 30));
    let dns = TestDns::start(z).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let o = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed(&key))).await;
    assert_rejected_at_rcpt(&o, "550-5.1.8");
    assert!(
        o.reply().contains("x.test has no MX record"),
        "{}",
        o.reply()
    );
}

#[tokio::test]
async fn ip_literal_sender_is_rejected_at_rcpt_with_5_1_7() {
    let dns = TestDns::start(Zone::default()).await;
    let daemon = Daemon::start(&common::config(&dns, "[spf]\nenforce = false")).await;
    let sender = "a@[127.0.0.1]";
    let o = send(
        daemon.addr,
        &Transaction::new(CLIENT, sender, message(sender)),
    )
    .await;
    assert_rejected_at_rcpt(&o, "550-5.1.7");
}

#[tokio::test]
async fn plaintext_session_is_rejected_at_rcpt_with_5_7_10() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key, "v=spf1 ip4:127.0.0.10 -all")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let mut t = Transaction::new(CLIENT, FROM, signed(&key));
    t.tls_macros = Vec::new();
    let o = send(daemon.addr, &t).await;
    assert_rejected_at_rcpt(&o, "550-5.7.10");
    assert!(o.reply().contains("STARTTLS was not used"), "{}", o.reply());
}

#[tokio::test]
async fn mailkey_failure_waits_for_the_end_of_message() {
    logs();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key, "v=spf1 ip4:127.0.0.14 -all")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    // Unsigned, from a domain that publishes a key.
    let o = send(
        daemon.addr,
        &Transaction::new(CLIENT_4, FROM, message(FROM)),
    )
    .await;
    assert!(!o.at_rcpt);
    assert!(o.reply().starts_with("550-5.7.20"), "{}", o.reply());
    assert!(o.auth_results().is_some());
    let lines = message_lines(CLIENT_4);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("stage=eom"), "{}", lines[0]);
}

#[tokio::test]
async fn monitor_mode_never_rejects_at_rcpt() {
    let key = TestKey::ed25519();
    // With bounce guidance the RCPT stage is negotiated in monitor mode
    // too; without it, it is not: accepted either way.
    for extra in ["", "[guidance]\nbounces = true"] {
        let dns = TestDns::start(zone(&key, "v=spf1 -all")).await;
        let config =
            common::config(&dns, extra).replace("mode = \"enforce\"", "mode = \"monitor\"");
        let daemon = Daemon::start(&config).await;
        let o = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed(&key))).await;
        assert!(!o.at_rcpt, "{extra}: {:?}", o.status);
        assert!(o.is_accept(), "{extra}: {:?}", o.status);
        let ar = o.ar();
        assert!(
            ar.contains("spf=fail") && ar.contains("monitor mode, would reject: 550 5.7.23"),
            "{ar}"
        );
    }
}

#[tokio::test]
async fn spf_temperror_is_decided_at_end_of_message() {
    // Every query for x.test is lost: at RCPT the verdict would be a
    // tempfail, which a check reading the message could still turn into a
    // reject, so it waits for the end of message.
    let dns = TestDns::start(Zone::default().timeout("x.test")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let o = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert!(!o.at_rcpt);
    o.assert_tempfailed("451-4.7.24", &[]);
}
