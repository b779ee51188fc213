//! Bounds on what one sender can make the milter do (issue #13), through the
//! real milter socket with a real DNS server on 127.0.0.1: signature
//! amplification, the end-of-message deadline, the message size limit.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dns::TestDns, message, send, Daemon, TestKey, Transaction};
use indymilter_test::Status;
use std::time::Duration;

const FROM: &str = "alice@sender.test";
const CLIENT: &str = "127.0.0.10";

async fn setup(key: &TestKey, extra_config: &str) -> (TestDns, Daemon) {
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let daemon = Daemon::start(&common::config(&dns, extra_config)).await;
    (dns, daemon)
}

/// `n` forged mailkey signatures for sender.test, each with `tags`
/// (`{i}` is replaced by its number), one header field per line.
fn forged(n: usize, tags: &str) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=sender.test;\r\n \
                 s=mailkey; h=from; bh=AAAA; b=AAAA; {}\r\n",
                tags.replace("{i}", &i.to_string())
            )
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_l_signatures_are_refused_after_five() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&key, "").await;
    let mail = format!("{}{}", forged(1000, "l={i}"), message(FROM));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, mail)).await;
    outcome.assert_rejected(
        "550-5.7.20",
        &[
            "l= is not accepted",
            "1000 mailkey signatures, only the first 5 were considered",
        ],
    );
}

#[tokio::test]
async fn a_valid_signature_after_the_first_five_does_not_count() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&key, "").await;
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    // 999 forgeries above the real signature (headers are read top down).
    let mail = format!("{}{signed}", forged(999, "t={i}"));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, mail)).await;
    outcome.assert_rejected(
        "550-5.7.20",
        &["1000 mailkey signatures, only the first 5 were considered"],
    );
    // The same signature below four forgeries is found.
    let mail = format!("{}{signed}", forged(4, "t={i}"));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, mail)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome.auth_results().unwrap().contains("mailkey=pass"));
}

/// A zone whose every answer comes 3 s late, with a resolver that waits for
/// it, and an end-of-message deadline of 300 ms.
async fn slow_dns(mode: &str) -> (TestDns, Daemon) {
    let dns = TestDns::start(common::sender_zone().delay(Duration::from_secs(3))).await;
    // The RCPT stage would wait for the answers: this is about the end of
    // message alone.
    let config = common::config(
        &dns,
        "reject_at_rcpt = false\n[limits]\neom_timeout_ms = 300",
    )
    .replace("timeout_ms = 500", "timeout_ms = 8000")
    .replace("mode = \"enforce\"", &format!("mode = \"{mode}\""));
    let daemon = Daemon::start(&config).await;
    (dns, daemon)
}

#[tokio::test]
async fn checks_past_the_eom_deadline_tempfail() {
    let (_dns, daemon) = slow_dns("enforce").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    outcome.assert_tempfailed(
        "451-4.3.0",
        &["not finished within the end-of-message deadline of 300 ms"],
    );
}

#[tokio::test]
async fn checks_past_the_eom_deadline_are_accepted_in_monitor_mode() {
    let (_dns, daemon) = slow_dns("monitor").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    let ar = outcome.auth_results().unwrap();
    assert!(
        ar.contains(
            "mailkey=temperror (not finished within the end-of-message deadline of 300 ms; \
             monitor mode, would tempfail: 451 4.3.0)"
        ),
        "{ar}"
    );
}

/// A message with a body of `size` bytes, signed.
fn big(key: &TestKey, size: usize) -> String {
    common::large_signed_message(key, FROM, size)
}

#[tokio::test]
async fn message_over_max_message_size_is_rejected_552() {
    let key = TestKey::ed25519();
    let limit = "[limits]\nmax_message_size = 65536";
    let (_dns, daemon) = setup(&key, limit).await;
    // Under the limit, the signature verifies.
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, big(&key, 30_000)),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    // Over it, the same kind of message cannot be verified.
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, big(&key, 200_000)),
    )
    .await;
    outcome.assert_rejected(
        "552 5.3.4",
        &[
            "message too big for the checks",
            "max_message_size is 65536",
        ],
    );
}

#[tokio::test]
async fn message_over_max_message_size_from_a_domain_without_key_is_accepted() {
    let dns = TestDns::start(common::sender_zone()).await;
    let config = common::config(&dns, "[limits]\nmax_message_size = 65536");
    let daemon = Daemon::start(&config).await;
    let key = TestKey::ed25519();
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, big(&key, 200_000)),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome.auth_results().unwrap().contains("mailkey=none"));
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_their_turn() {
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&common::config(&dns, "[limits]\nmax_connections = 1")).await;
    let ip = CLIENT.parse().unwrap();
    let first = common::open(daemon.addr, ip, "mail.sender.test").await;
    let addr = daemon.addr;
    let second = tokio::spawn(async move { common::open(addr, ip, "mail.sender.test").await });
    // Not served while the first holds the only slot (an absence, so a
    // slow machine can only make this pass, never fail spuriously).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a second connection was served");
    first.close().await.unwrap();
    let mut second = second.await.unwrap();
    let outcome =
        common::send_on(&mut second, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
}

#[tokio::test]
async fn a_signature_listing_more_than_128_header_fields_is_refused() {
    // Every h= entry is work for the verifier (issue #21 item 4): a
    // signature listing more than 128 is refused before any hashing, and
    // the reply says what to sign instead.
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&key, "").await;
    let names: Vec<&'static str> = (0..128)
        .map(|i| &*Box::leak(format!("X-Absent-{i}").into_boxed_str()))
        .collect();
    let sign = |extra: &[&'static str]| {
        key.sign_with(&message(FROM), "sender.test", "mailkey", |mut o| {
            o.headers = [&["From"][..], extra].concat();
            o
        })
    };
    // 128 entries: verified as usual.
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, sign(&names[..127])),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    // 129: refused.
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, sign(&names))).await;
    outcome.assert_reply(
        "550-5.7.20",
        &[
            "signature lists 129 header fields in h=: at most 128 are accepted",
            "with at most 128 h= entries",
        ],
    );
}

/// A key record with distinct tags up to `octets` before its `p=`.
fn tag_flood(record: &str, octets: usize) -> String {
    let (head, p) = record.split_once("p=").expect("p=");
    let mut flood = head.to_string();
    for i in 0.. {
        if flood.len() >= octets {
            break;
        }
        flood.push_str(&format!("q{i}=x; "));
    }
    format!("{flood}p={p}")
}

#[tokio::test]
async fn key_records_beyond_the_size_caps_are_refused_unread() {
    // Issue #21 item 5: a 60 KB record of thousands of tags before a valid
    // p= was parsed (quadratically) for every message.
    let key = TestKey::ed25519();
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let four_junk = |zone: common::dns::Zone| {
        (0..4).fold(zone, |z, i| {
            z.txt(
                "mailkey.sender.test",
                &tag_flood(&format!("v=DKIM1; n={i}; p="), 4090),
            )
        })
    };
    for (records, says) in [
        // One record over 4,096 octets, the key in it.
        (
            common::sender_zone().txt("mailkey.sender.test", &tag_flood(&key.record, 5000)),
            "no usable key at mailkey.sender.test: record of 5",
        ),
        // 60 KB: not read at all.
        (
            common::sender_zone().txt("mailkey.sender.test", &tag_flood(&key.record, 60_000)),
            "TXT records of 60",
        ),
        // The real key and four records of 4,090 octets: over 16 KiB.
        (
            four_junk(common::sender_zone().txt("mailkey.sender.test", &key.record)),
            "octets in all, more than 16384 are read",
        ),
    ] {
        let dns = TestDns::start(records).await;
        let daemon = Daemon::start(&common::config(&dns, "")).await;
        let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed.clone())).await;
        outcome.assert_reply("550-5.7.20", &[says]);
    }
}

#[tokio::test]
async fn verification_stops_at_the_eom_deadline() {
    // Issue #21 item 7: the deadline bounds the work, not only the reply.
    // A 1 ms deadline passes while a 5 MB body is hashed; the verifier
    // then stops instead of going on after the reply.
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&key, "[limits]\neom_timeout_ms = 1").await;
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, big(&key, 5_000_000)),
    )
    .await;
    outcome.assert_reply(
        "451-4.3.0",
        &["not finished within the end-of-message deadline of 1 ms (verification stopped)"],
    );
}
