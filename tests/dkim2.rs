//! DKIM2 through the real milter socket (docs/protocol.md, "mailkey v2 =
//! DKIM2"): a chain for this transaction's envelope passes mailkey, a
//! replay (another RCPT, another MAIL FROM), a broken chain and a change
//! without recipe fail it with their own guidance, DKIM1 keeps working,
//! `no_key = "reject"` does not pre-empt a DKIM2 pass at RCPT; the
//! milter's own DKIM2 signatures (originator, forwarding hop with recipe)
//! verify at a second daemon. Keys on a real DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message, send, Daemon, LogCapture, Outcome, TestKey, Transaction, RECIPIENT,
};
use indymilter_test::{EomAction, Status};
use std::net::Ipv4Addr;

const FROM: &str = "alice@sender.test";
const NO_KEY_REJECTED: &str = "[mailkey]\nno_key = \"reject\"\n";

/// sender.test (SPF for all of loopback, an MX) with `key` as its DKIM2
/// key (selector mailkey), and fwd.test likewise with `fwd`.
fn zone(key: &TestKey, fwd: &TestKey) -> Zone {
    common::sender_zone()
        .txt("mailkey._domainkey.sender.test", &key.record)
        .txt("fwd.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("fwd.test", 10, "mx.fwd.test")
        .a("mx.fwd.test", Ipv4Addr::new(127, 0, 0, 30))
        .txt("mailkey._domainkey.fwd.test", &fwd.record)
        // HELO names of the bounce senders: SPF checks postmaster@HELO.
        .txt("mx.receiver.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .txt("mx.fwd.test", "v=spf1 ip4:127.0.0.0/8 -all")
}

/// A bounce (null sender) from `client`, which says HELO `helo`.
fn bounce_tx<'a>(
    client: &str,
    helo: &'a str,
    message: String,
    rcpt: &[&'a str],
) -> Transaction<'a> {
    let mut t = tx(client, "", message, rcpt);
    t.helo = helo;
    t
}

async fn receiver(zone: Zone, extra: &str) -> (TestDns, Daemon) {
    let dns = TestDns::start(zone).await;
    let daemon = Daemon::start(&common::config(&dns, extra)).await;
    (dns, daemon)
}

fn signed(key: &TestKey, rcpt: &[&str]) -> String {
    key.sign_dkim2(&message(FROM), "sender.test", "mailkey", FROM, rcpt)
}

fn tx<'a>(client: &str, from: &'a str, message: String, rcpt: &[&'a str]) -> Transaction<'a> {
    let mut t = Transaction::new(client, from, message);
    t.rcpts = rcpt.iter().map(|r| format!("<{r}>")).collect();
    t
}

/// Every one of `parts` is in `text`.
fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing: {text}");
    }
}

fn assert_rejected(o: &Outcome, reason: &str, guidance: &str) {
    assert!(!o.at_rcpt, "decided at RCPT: {}", o.reply());
    o.assert_rejected("550-5.7.20", &[reason, guidance]);
}

#[tokio::test]
async fn a_chain_for_this_envelope_passes_mailkey_where_no_mailkey_is_published() {
    let logs = LogCapture::global();
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (_dns, d) = receiver(zone(&key, &fwd), NO_KEY_REJECTED).await;
    let o = send(
        d.addr,
        &tx("127.0.0.41", FROM, signed(&key, &[RECIPIENT]), &[RECIPIENT]),
    )
    .await;
    // No mailkey.sender.test: without DKIM2, no_key = "reject" refuses.
    assert!(!o.at_rcpt, "refused at RCPT: {}", o.reply());
    assert!(o.is_accept(), "{:?}", o.status);
    assert_has(
        &o.ar(),
        &[
            "mailkey=pass (dkim2 i=1 by sender.test) header.d=sender.test header.s=mailkey",
            "dkim2=pass (i=1 sender.test pass) header.d=sender.test",
        ],
    );
    let line = logs.line_with(&["client=127.0.0.41", "verdict="]);
    assert!(
        line.contains("mailkey=pass") && line.contains("dkim2=pass"),
        "{line}"
    );
    assert!(
        line.contains("dkim2_chain=\"i=1 sender.test pass\""),
        "{line}"
    );
}

#[tokio::test]
async fn no_key_reject_still_refuses_unsigned_mail_at_the_end_of_message() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (_dns, d) = receiver(zone(&key, &fwd), NO_KEY_REJECTED).await;
    let o = send(d.addr, &tx("127.0.0.42", FROM, message(FROM), &[RECIPIENT])).await;
    assert!(!o.at_rcpt);
    o.assert_rejected("550-5.7.20", &["sender.test publishes no mailkey"]);
}

#[tokio::test]
async fn a_replay_to_another_recipient_fails_even_with_a_valid_dkim1_signature() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    // sender.test also publishes its DKIM1 mailkey and signs with it.
    let z = zone(&key, &fwd).txt("mailkey.sender.test", &key.record);
    let (_dns, d) = receiver(z, "").await;
    let both = key.sign(&signed(&key, &[RECIPIENT]), "sender.test", "mailkey");
    // As signed: both pass.
    let o = send(d.addr, &tx("127.0.0.43", FROM, both.clone(), &[RECIPIENT])).await;
    assert!(o.is_accept(), "{}", o.reply());
    // To someone else: the DKIM1 signature would replay, DKIM2 does not.
    let o = send(
        d.addr,
        &tx("127.0.0.43", FROM, both.clone(), &["carol@receiver.test"]),
    )
    .await;
    assert_rejected(
        &o,
        "DKIM2-Signature i=1 RCPT TO <carol@receiver.test> did not match",
        "resent without a DKIM2 hop",
    );
    // Every recipient of the transaction must be in rt=.
    let o = send(
        d.addr,
        &tx("127.0.0.43", FROM, both, &[RECIPIENT, "dave@receiver.test"]),
    )
    .await;
    assert_rejected(
        &o,
        "RCPT TO <dave@receiver.test> did not match",
        "resent without a DKIM2 hop",
    );
}

#[tokio::test]
async fn a_replay_from_another_mail_from_fails() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (_dns, d) = receiver(zone(&key, &fwd), "").await;
    let mallory = "mallory@sender.test";
    let o = send(
        d.addr,
        &tx(
            "127.0.0.44",
            mallory,
            signed(&key, &[RECIPIENT]),
            &[RECIPIENT],
        ),
    )
    .await;
    assert_rejected(
        &o,
        "DKIM2-Signature i=1 MAIL FROM <mallory@sender.test> did not match",
        "resent without a DKIM2 hop",
    );
    let ar = o.ar();
    assert!(ar.contains("dkim2=fail ("), "{ar}");
    assert!(ar.contains("header.d=sender.test header.i=1"), "{ar}");
}

#[tokio::test]
async fn a_change_without_recipe_fails() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (_dns, d) = receiver(zone(&key, &fwd), "").await;
    let footer = format!("{}-- \r\nA list footer\r\n", signed(&key, &[RECIPIENT]));
    let o = send(d.addr, &tx("127.0.0.45", FROM, footer, &[RECIPIENT])).await;
    assert_rejected(
        &o,
        "Message-Instance m=1 body hash sha256 mismatch",
        "no hop recorded how",
    );
}

/// The originator signs for carol@fwd.test; fwd.test adds a footer and its
/// hop with the recipe, from its SRS address to bob.
fn forwarded(key: &TestKey, fwd: &TestKey, srs: &str) -> String {
    let received = signed(key, &["carol@fwd.test"]);
    let modified = format!("{received}-- \r\nSent through fwd.test\r\n");
    fwd.hop_dkim2(&received, &modified, "fwd.test", srs, &[RECIPIENT])
}

const SRS: &str = "SRS0=HHHH=TT=sender.test=alice@fwd.test";

#[tokio::test]
async fn a_forwarded_chain_passes_for_the_forwarder_and_names_the_originator() {
    let logs = LogCapture::global();
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (_dns, d) = receiver(zone(&key, &fwd), NO_KEY_REJECTED).await;
    let o = send(
        d.addr,
        &tx("127.0.0.46", SRS, forwarded(&key, &fwd, SRS), &[RECIPIENT]),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert_has(
        &o.ar(),
        &[
            "mailkey=pass (dkim2 i=2 by fwd.test, originator sender.test) header.d=fwd.test",
            "dkim2=pass (i=1 sender.test pass, i=2 fwd.test pass) header.d=sender.test",
        ],
    );
    let line = logs.line_with(&["client=127.0.0.46", "verdict="]);
    assert!(
        line.contains("dkim2_chain=\"i=1 sender.test pass, i=2 fwd.test pass\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_broken_chain_fails_with_its_guidance() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    // The originator's published key is another one: hop 1 does not verify.
    let other = TestKey::ed25519();
    let (_dns, d) = receiver(zone(&other, &fwd), "").await;
    let o = send(
        d.addr,
        &tx("127.0.0.47", SRS, forwarded(&key, &fwd, SRS), &[RECIPIENT]),
    )
    .await;
    assert_rejected(
        &o,
        "DKIM2 chain of fwd.test fails: DKIM2-Signature i=1 selector mailkey incorrect signature",
        "The DKIM2 chain of fwd.test does not verify",
    );
    assert!(
        o.ar().contains("header.d=sender.test header.i=1"),
        "{}",
        o.ar()
    );
}

#[tokio::test]
async fn dkim1_mailkey_signatures_keep_working() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let z = zone(&key, &fwd).txt("mailkey.sender.test", &key.record);
    let (_dns, d) = receiver(z, NO_KEY_REJECTED).await;
    let dkim1 = key.sign(&message(FROM), "sender.test", "mailkey");
    let o = send(d.addr, &tx("127.0.0.48", FROM, dkim1, &[RECIPIENT])).await;
    assert!(o.is_accept(), "{}", o.reply());
    let ar = o.ar();
    assert!(
        ar.contains("mailkey=pass header.d=sender.test header.s=mailkey"),
        "{ar}"
    );
    assert!(ar.contains("dkim2=none"), "{ar}");
}

#[tokio::test]
async fn a_failure_under_t_y_is_reported_and_not_rejected() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let z = common::sender_zone()
        .txt("mailkey._domainkey.sender.test", &key.record_with("t=y"))
        .txt("mailkey._domainkey.fwd.test", &fwd.record);
    let (_dns, d) = receiver(z, "").await;
    let o = send(
        d.addr,
        &tx(
            "127.0.0.49",
            FROM,
            signed(&key, &[RECIPIENT]),
            &["carol@receiver.test"],
        ),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert!(o.ar().contains("dkim2=fail"), "{}", o.ar());
}

fn inserted(o: &Outcome, name: &str) -> usize {
    o.actions
        .actions
        .iter()
        .filter(|a| matches!(a, EomAction::InsertHeader { name: n, .. } if n.to_bytes() == name.as_bytes()))
        .count()
}

/// A signing daemon for sender.test with `signatures`, and fwd.test.
async fn signer(dns: &TestDns, key: &TestKey, signatures: &str, extra: &str) -> Daemon {
    let dir = common::process::temp_dir("dkim2-signer");
    let path = dir.join("sender.test.pem");
    key.write_pem(&path);
    std::mem::forget(dir);
    let config = format!(
        "[[signing.domains]]\ndomain = \"sender.test\"\nkey_file = \"{}\"\n\
         signatures = {signatures}\n{extra}",
        path.display()
    );
    Daemon::start(&common::config(dns, &config)).await
}

/// A forwarding host for fwd.test: DKIM2 only, SRS, `[dkim2] forward`.
async fn forwarder(dns: &TestDns, fwd: &TestKey) -> Daemon {
    let dir = common::process::temp_dir("dkim2-fwd");
    let (key_file, secret) = (dir.join("fwd.pem"), dir.join("srs.secrets"));
    fwd.write_pem(&key_file);
    common::process::write(&secret, "forwarding-secret\n");
    std::mem::forget(dir);
    let config = format!(
        "[[signing.domains]]\ndomain = \"fwd.test\"\nkey_file = \"{}\"\n\
         signatures = [\"dkim2\"]\n\
         [srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n\
         [dkim2]\nforward = true\n",
        key_file.display(),
        secret.display()
    );
    Daemon::start(&common::config(dns, &config)).await
}

#[tokio::test]
async fn the_milter_signs_dkim2_for_the_envelope_beside_or_instead_of_dkim1() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (dns, r) = receiver(zone(&key, &fwd), NO_KEY_REJECTED).await;
    let rcpt = [RECIPIENT, "carol@receiver.test"];
    for (signatures, dkim1) in [("[\"dkim2\"]", 0), ("[\"mailkey\", \"dkim2\"]", 1)] {
        let s = signer(&dns, &key, signatures, "").await;
        let o = send(s.addr, &tx("127.0.0.1", FROM, message(FROM), &rcpt)).await;
        assert!(o.is_accept(), "{:?}", o.status);
        assert_eq!(inserted(&o, "DKIM2-Signature"), 1, "{signatures}");
        assert_eq!(inserted(&o, "Message-Instance"), 1, "{signatures}");
        assert_eq!(inserted(&o, "DKIM-Signature"), dkim1, "{signatures}");
        // Verified at a receiver, with both recipients in one transaction.
        let out = o.with_inserted_headers(&message(FROM));
        let o = send(r.addr, &tx("127.0.0.50", FROM, out, &rcpt)).await;
        assert!(o.is_accept(), "{signatures}: {}", o.reply());
        assert!(
            o.ar().contains("mailkey=pass (dkim2 i=1 by sender.test)"),
            "{}",
            o.ar()
        );
    }
}

#[tokio::test]
async fn a_from_outside_the_signing_domain_gets_no_dkim2_signature() {
    let logs = LogCapture::global();
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let dns = TestDns::start(zone(&key, &fwd)).await;
    let s = signer(&dns, &key, "[\"mailkey\", \"dkim2\"]", "").await;
    let m = message("alice@elsewhere.test");
    let mut t = tx("127.0.0.1", FROM, m, &[RECIPIENT]);
    t.helo = "from-outside.sender.test";
    let o = send(s.addr, &t).await;
    assert!(o.is_accept(), "{:?}", o.status);
    assert_eq!(inserted(&o, "DKIM2-Signature"), 0);
    assert_eq!(inserted(&o, "DKIM-Signature"), 1);
    let line = logs.line_with(&["not DKIM2-signed for sender.test"]);
    assert!(line.contains("From is not authentic"), "{line}");
    // DKIM2 alone: the message cannot be signed, so on_error defers it.
    let s = signer(&dns, &key, "[\"dkim2\"]", "").await;
    let o = send(s.addr, &t).await;
    assert!(
        matches!(o.status, Status::Tempfail { .. }),
        "{:?}",
        o.status
    );
}

#[tokio::test]
async fn a_forwarding_host_adds_a_hop_with_the_recipe_for_a_chain_its_door_verified() {
    let (key, fwd) = (TestKey::ed25519(), TestKey::ed25519());
    let (dns, r) = receiver(zone(&key, &fwd), NO_KEY_REJECTED).await;
    let f = forwarder(&dns, &fwd).await;
    let arrived = signed(&key, &["carol@fwd.test"]);
    let with_footer = format!("{arrived}-- \r\nSent through fwd.test\r\n");
    // The second pass (trusted) of a message its door never verified: no hop.
    let o = send(
        f.addr,
        &tx("127.0.0.1", FROM, with_footer.clone(), &[RECIPIENT]),
    )
    .await;
    assert_eq!(inserted(&o, "DKIM2-Signature"), 0);
    // The door (first pass) verifies it for carol@fwd.test ...
    let o = send(
        f.addr,
        &tx("127.0.0.51", FROM, arrived, &["carol@fwd.test"]),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    // ... and the second pass, with the footer and the alias's target,
    // gets an SRS sender and a hop with a recipe.
    let o = send(
        f.addr,
        &tx("127.0.0.1", FROM, with_footer.clone(), &[RECIPIENT]),
    )
    .await;
    assert_eq!(inserted(&o, "DKIM2-Signature"), 1);
    assert_eq!(inserted(&o, "Message-Instance"), 1);
    let srs = o
        .actions
        .actions
        .iter()
        .find_map(|a| match a {
            EomAction::ChangeSender { mail, .. } => Some(mail.to_string_lossy().into_owned()),
            _ => None,
        })
        .expect("SRS sender");
    let srs = srs.trim_matches(['<', '>']).to_string();
    let out = o.with_inserted_headers(&with_footer);
    let o = send(r.addr, &tx("127.0.0.52", &srs, out, &[RECIPIENT])).await;
    assert!(o.is_accept(), "{}", o.reply());
    let ar = o.ar();
    assert!(
        ar.contains("mailkey=pass (dkim2 i=2 by fwd.test, originator sender.test)"),
        "{ar}"
    );
    assert!(
        ar.contains("dkim2=pass (i=1 sender.test pass, i=2 fwd.test pass)"),
        "{ar}"
    );
}

/// A DSN from receiver.test about `returned`, to `rcpt`.
fn dsn(returned: &str, rcpt: &str) -> String {
    format!(
        "From: MAILER-DAEMON@receiver.test\r\nTo: {rcpt}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Date: Mon, 23 Nov 2026 10:05:00 +0000\r\nMessage-ID: <bounce.1@receiver.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B0\"\r\n\r\n\
         --B0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
         Your message could not be delivered.\r\n\r\n\
         --B0\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.receiver.test\r\n\r\n\
         Final-Recipient: rfc822; {RECIPIENT}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B0\r\nContent-Type: message/rfc822\r\n\r\n{returned}\r\n--B0--\r\n"
    )
}

/// sender.test signs DKIM2 and refuses DSNs that do not verify; receiver.test
/// (the recipient's domain) signs its DSNs with `r`.
async fn originator(dns: &TestDns, key: &TestKey, refuse: bool) -> Daemon {
    signer(
        dns,
        key,
        "[\"dkim2\"]",
        &format!("[dkim2]\nrefuse_unverified_dsn = {refuse}\n"),
    )
    .await
}

#[tokio::test]
async fn a_dsn_about_our_message_is_taken_only_when_it_verifies() {
    let logs = LogCapture::global();
    let (key, fwd, r) = (TestKey::ed25519(), TestKey::ed25519(), TestKey::ed25519());
    let z = zone(&key, &fwd).txt("mailkey._domainkey.receiver.test", &r.record);
    let dns = TestDns::start(z).await;
    let s = originator(&dns, &key, true).await;
    let ours = signed(&key, &[RECIPIENT]);
    let signed_dsn = |by: &TestKey, d: &str| {
        let m = dsn(&ours, FROM).replace("@receiver.test\r\nTo", &format!("@{d}\r\nTo"));
        by.sign_dkim2(&m, d, "mailkey", "", &[FROM])
    };
    // Signed by the recipient's domain: verified, taken.
    let o = send(
        s.addr,
        &bounce_tx(
            "127.0.0.53",
            "mx.receiver.test",
            signed_dsn(&r, "receiver.test"),
            &[FROM],
        ),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert!(
        o.ar().contains("dkim2=pass (i=1 receiver.test pass)"),
        "{}",
        o.ar()
    );
    logs.line_with(&[
        "DKIM2 DSN about our message (newest hop i=1 by sender.test): i=1 receiver.test pass",
    ]);
    // Not signed at all (backscatter of a forgery looks so): refused.
    let o = send(
        s.addr,
        &bounce_tx("127.0.0.53", "mx.receiver.test", dsn(&ours, FROM), &[FROM]),
    )
    .await;
    o.assert_rejected(
        "550-5.7.20",
        &[
            "DSN not verified: DSN is not DKIM2 signed",
            "This bounce is about a message DKIM2-signed by us",
        ],
    );
    // Signed by a domain the message was not sent to: refused.
    let o = send(
        s.addr,
        &bounce_tx(
            "127.0.0.53",
            "mx.receiver.test",
            signed_dsn(&fwd, "fwd.test"),
            &[FROM],
        ),
    )
    .await;
    assert!(
        o.reply()
            .contains("DSN not verified: DSN signer is not aligned"),
        "{}",
        o.reply()
    );
    // Not refusing (the default): taken, and the header says why not.
    let s = originator(&dns, &key, false).await;
    let o = send(
        s.addr,
        &bounce_tx("127.0.0.53", "mx.receiver.test", dsn(&ours, FROM), &[FROM]),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert!(
        o.ar()
            .contains("dkim2=fail (FAIL: DSN not verified: DSN is not DKIM2 signed)"),
        "{}",
        o.ar()
    );
}

/// `message` with the milter's header and body actions applied as an MTA
/// applies them (headers inserted at the top, replaced, removed; the body
/// replaced); the new sender and recipients.
/// Where the `index`th (from 1) field called `name` is in `fields`.
fn occurrence(fields: &[(String, String)], name: &std::ffi::CStr, index: i32) -> Option<usize> {
    let name = name.to_string_lossy();
    fields
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| n.eq_ignore_ascii_case(&name))
        .nth(usize::try_from(index).ok()?.checked_sub(1)?)
        .map(|(i, _)| i)
}

fn applied(o: &Outcome, message: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").expect("header block");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push_str("\r\n");
                v.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            fields.push((n.to_string(), v.to_string()));
        }
    }
    let mut body = body.to_string();
    for action in &o.actions.actions {
        match action {
            EomAction::InsertHeader {
                index: 0,
                name,
                value,
            } => fields.insert(
                0,
                (
                    name.to_string_lossy().into(),
                    value.to_string_lossy().replace('\n', "\r\n"),
                ),
            ),
            EomAction::ChangeHeader { name, index, value } => {
                if let Some(at) = occurrence(&fields, name, *index) {
                    fields[at].1 = value.to_string_lossy().replace('\n', "\r\n");
                }
            }
            EomAction::DeleteHeader { name, index } => {
                if let Some(at) = occurrence(&fields, name, *index) {
                    fields.remove(at);
                }
            }
            _ => {}
        }
    }
    if let Some(new) = o.replaced_body() {
        body = String::from_utf8(new).expect("body");
    }
    let head: String = fields.iter().map(|(n, v)| format!("{n}:{v}\r\n")).collect();
    format!("{head}\r\n{body}")
}

#[tokio::test]
async fn a_forwarder_passes_a_verified_dsn_back_and_the_originator_verifies_it() {
    let (key, fwd, r) = (TestKey::ed25519(), TestKey::ed25519(), TestKey::ed25519());
    let z = zone(&key, &fwd).txt("mailkey._domainkey.receiver.test", &r.record);
    let dns = TestDns::start(z).await;
    let f = forwarder(&dns, &fwd).await;
    let s = originator(&dns, &key, true).await;
    // What fwd.test forwarded: sent to carol@fwd.test, a footer added,
    // its hop from its SRS address to bob.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let srs = mailkey_milter::srs::Srs::new("fwd.test", vec![b"forwarding-secret".to_vec()], 21)
        .forward(FROM, now)
        .unwrap();
    let forwarded = forwarded(&key, &fwd, &srs);
    // receiver.test bounces it to the SRS address, signed.
    let bounce = r.sign_dkim2(
        &dsn(&forwarded, &srs),
        "receiver.test",
        "mailkey",
        "",
        &[&srs],
    );
    // 1. fwd.test's door: verified, rebuilt for the hop before it.
    let o = send(
        f.addr,
        &bounce_tx("127.0.0.54", "mx.receiver.test", bounce.clone(), &[&srs]),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert!(
        o.ar().contains("dkim2=pass (i=1 receiver.test pass)"),
        "{}",
        o.ar()
    );
    assert!(o.replaced_body().is_some(), "the DSN was not rebuilt");
    let rebuilt = applied(&o, &bounce);
    assert!(
        rebuilt.contains("From: MAILER-DAEMON@fwd.test"),
        "{rebuilt}"
    );
    assert!(
        !rebuilt.contains("Sent through fwd.test"),
        "our footer is undone: {rebuilt}"
    );
    // 2. Its second pass signs the DSN as fwd.test's, to Alice.
    let o = send(
        f.addr,
        &bounce_tx("127.0.0.1", "mx.fwd.test", rebuilt.clone(), &[FROM]),
    )
    .await;
    assert_eq!(inserted(&o, "DKIM2-Signature"), 1, "{:?}", o.actions);
    let passed_back = applied(&o, &rebuilt);
    // 3. sender.test verifies it: a DSN about its own message, from a domain
    // it sent the message to.
    let o = send(
        s.addr,
        &bounce_tx("127.0.0.55", "mx.fwd.test", passed_back, &[FROM]),
    )
    .await;
    assert!(o.is_accept(), "{}", o.reply());
    assert!(
        o.ar().contains("dkim2=pass (i=1 fwd.test pass)"),
        "{}",
        o.ar()
    );
    // The bounce as receiver.test sent it does not verify at sender.test:
    // it was signed for the SRS address, and its newest hop is fwd.test's.
    let o = send(
        s.addr,
        &bounce_tx("127.0.0.55", "mx.fwd.test", bounce, &[FROM]),
    )
    .await;
    assert!(o.reply().contains("DSN not verified"), "{}", o.reply());
}

/// `check-domain sender.test --key FILE --dkim2-selector mailkey` against
/// `zone`: (exit code, output).
async fn check_domain_dkim2(zone: Zone, key: &TestKey) -> (i32, String) {
    let dir = common::process::temp_dir("dkim2-check-domain");
    let file = dir.join("sender.test.pem");
    key.write_pem(&file);
    let dns = TestDns::start(zone).await;
    let ns = dns.addr().to_string();
    let out = common::process::mailkey(&[
        "check-domain",
        "sender.test",
        "--nameserver",
        &ns,
        "--key",
        file.to_str().unwrap(),
        "--dkim2-selector",
        "mailkey",
    ])
    .await;
    let text = common::process::stdout(&out);
    println!("{text}");
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn check_domain_tests_a_dkim2_signature_and_the_one_record_rule() {
    let key = TestKey::ed25519();
    // The mailkey record, and the CNAME keygen prints for DKIM verifiers.
    let ready = |z: Zone| {
        z.txt("mailkey.sender.test", &key.record)
            .cname("mailkey._domainkey.sender.test", "mailkey.sender.test")
    };
    let (code, out) = check_domain_dkim2(ready(common::sender_zone()), &key).await;
    assert!(
        out.contains(
            "✓ dkim2: a DKIM2 test message signed with the key (selector mailkey) verifies with \
             the key at mailkey._domainkey.sender.test"
        ),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
    // A rotation at mailkey.sender.test: two records behind the selector.
    let rotating =
        ready(common::sender_zone()).txt("mailkey.sender.test", &TestKey::ed25519().record);
    let (code, out) = check_domain_dkim2(rotating, &key).await;
    assert!(
        out.contains("! dkim2: mailkey._domainkey.sender.test holds 2 records"),
        "{out}"
    );
    assert!(
        out.contains("✗ dkim2: a DKIM2 test message signed with the key (selector mailkey) does not verify: DKIM2-Signature i=1 public key mailkey has multiple records"),
        "{out}"
    );
    assert_eq!(code, 1, "{out}");
}
