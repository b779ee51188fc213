//! The mailkey check through the real milter socket, with keys published on
//! a real DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dns::TestDns, message, open, send, send_on, Daemon, TestKey, Transaction};
use indymilter_test::{EomAction, Status};

const FROM: &str = "alice@sender.test";
const CLIENT: &str = "127.0.0.10";

/// A daemon whose DNS publishes `records` at mailkey.sender.test.
async fn setup(records: &[&str], extra_config: &str) -> (TestDns, Daemon) {
    let mut zone = common::sender_zone();
    for r in records {
        zone = zone.txt("mailkey.sender.test", r);
    }
    let dns = TestDns::start(zone).await;
    let daemon = Daemon::start(&common::config(&dns, extra_config)).await;
    (dns, daemon)
}

fn assert_rejected(outcome: &common::Outcome, code: &str, why: &str) {
    // Every reject ends with the guidance for its failure, which names
    // the key's record.
    outcome.assert_rejected(code, &[why, "mailkey.sender.test"]);
}

#[tokio::test]
async fn ed25519_signature_passes() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept);
    let ar = outcome
        .auth_results()
        .expect("Authentication-Results added");
    assert!(ar.starts_with("mx.receiver.test;"), "{ar}");
    assert!(
        ar.contains("mailkey=pass header.d=sender.test header.s=mailkey header.a=ed25519-sha256"),
        "{ar}"
    );
}

#[tokio::test]
async fn rsa_signature_passes() {
    let key = TestKey::rsa(2048);
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(outcome
        .auth_results()
        .unwrap()
        .contains("mailkey=pass header.d=sender.test header.s=mailkey header.a=rsa-sha256"));
}

#[tokio::test]
async fn tampered_body_is_rejected() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key
        .sign(&message(FROM), "sender.test", "mailkey")
        .replace("numbers", "NUMBERS");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(&outcome, "550-5.7.20", "body hash mismatch");
}

#[tokio::test]
async fn tampered_signed_header_is_rejected() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key
        .sign(&message(FROM), "sender.test", "mailkey")
        .replace("Quarterly", "Urgent");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(&outcome, "550-5.7.20", "bad signature");
}

#[tokio::test]
async fn unsigned_message_from_a_domain_with_a_key_is_rejected() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_rejected(&outcome, "550-5.7.20", "no mailkey signature");
    let ar = outcome.auth_results().unwrap();
    assert!(
        ar.contains("mailkey=fail (no mailkey signature) header.d=sender.test"),
        "{ar}"
    );
}

#[tokio::test]
async fn signature_by_another_domain_does_not_count() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "other.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(
        &outcome,
        "550-5.7.20",
        "mailkey signature is for d=other.test",
    );
}

#[tokio::test]
async fn right_key_under_another_selector_does_not_count() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "sender.test", "default");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(&outcome, "550-5.7.20", "uses selector \"default\"");
}

#[tokio::test]
async fn body_length_tag_does_not_count() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign_with(&message(FROM), "sender.test", "mailkey", |mut o| {
        o.body_length = true;
        o
    });
    assert!(signed.contains(" l="), "the signer made an l= signature");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(&outcome, "550-5.7.20", "l= body length tag");
}

#[tokio::test]
async fn signature_not_covering_from_does_not_count() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign_with(&message(FROM), "sender.test", "mailkey", |mut o| {
        o.headers = vec!["Subject", "Date"];
        o
    });
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_rejected(&outcome, "550-5.7.20", "does not cover the From header");
}

#[tokio::test]
async fn key_rotation_second_record_verifies() {
    let old = TestKey::ed25519();
    let new = TestKey::rsa(2048);
    let (_dns, daemon) = setup(&[&old.record, &new.record], "").await;
    let signed = new.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome.auth_results().unwrap().contains("mailkey=pass"));
}

#[tokio::test]
async fn testing_domain_is_never_rejected() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record_with("t=y")], "").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    let ar = outcome.auth_results().unwrap();
    assert!(
        ar.contains("mailkey=fail (no mailkey signature; domain is testing: t=y)"),
        "{ar}"
    );
}

#[tokio::test]
async fn malformed_record_is_a_permerror_reject() {
    let (_dns, daemon) = setup(&["v=DKIM1; k=ed25519; p=not*base64"], "").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_rejected(
        &outcome,
        "550-5.7.20",
        "no usable key at mailkey.sender.test: key does not parse",
    );
    // Decided at the end of message: a DKIM2 chain in the message (its keys
    // are named there, not at mailkey.D) could still pass mailkey; alone,
    // mailkey's failure is not refused at RCPT (docs/decisions.md).
    assert!(!outcome.at_rcpt, "refused before the body");
}

#[tokio::test]
async fn revoked_key_fails() {
    let (_dns, daemon) = setup(&["v=DKIM1; k=ed25519; p="], "").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_rejected(&outcome, "550-5.7.20", "key revoked");
}

#[tokio::test]
async fn dns_timeout_is_a_tempfail_never_an_accept() {
    let dns = TestDns::start(common::sender_zone().timeout("mailkey.sender.test")).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let key = TestKey::ed25519();
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    outcome.assert_tempfailed("451-4.4.3", &["DNS lookup of mailkey.sender.test failed"]);
}

#[tokio::test]
async fn no_key_is_accepted_by_default_and_rejected_with_no_key_reject() {
    let (_dns, daemon) = setup(&[], "").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(outcome
        .auth_results()
        .unwrap()
        .contains("mailkey=none (sender.test publishes no mailkey)"));

    let (_dns, daemon) = setup(&[], "[mailkey]\nno_key = \"reject\"").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_rejected(&outcome, "550-5.7.20", "sender.test publishes no mailkey");
}

#[tokio::test]
async fn monitor_mode_accepts_but_says_it_would_reject() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let config = common::config(&dns, "").replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    let ar = outcome.auth_results().unwrap();
    assert!(
        ar.contains("mailkey=fail (no mailkey signature; monitor mode, would reject: 550 5.7.20)"),
        "{ar}"
    );
}

#[tokio::test]
async fn unenforced_check_is_reported_not_applied() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "[mailkey]\nenforce = false").await;
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(outcome.auth_results().unwrap().contains("mailkey=fail"));
}

#[tokio::test]
async fn forged_authentication_results_are_deleted() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let forged = format!(
        "Authentication-Results: other.test; spf=pass\r\n\
         Authentication-Results: mx.receiver.test; mailkey=pass\r\n\
         Authentication-Results: (sneaky) MX.RECEIVER.TEST; spf=pass\r\n\
         Authentication-Results: \"mx.receiver\\.test\"; spf=pass\r\n\
         Authentication-Results: (x) \"\\mx.receiver.test\" (y); mailkey=pass\r\n\
         Authentication-Results: \"mx.receiver.test.evil\"; spf=pass\r\n{}",
        message(FROM)
    );
    let signed = key.sign(&forged, "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept);
    let deleted: Vec<i32> = outcome
        .actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::DeleteHeader { name, index }
                if name.to_bytes() == b"Authentication-Results" =>
            {
                Some(*index)
            }
            _ => None,
        })
        .collect();
    // The 2nd to 5th claim our authserv-id (the 4th and 5th as RFC 5322
    // quoted strings with quoted-pairs, #21); the last is deleted first.
    assert_eq!(deleted, vec![5, 4, 3, 2]);
    assert!(outcome
        .actions
        .has_insert_header(0, "Authentication-Results", indymilter_test::any()));
}

#[tokio::test]
async fn trusted_network_and_smtp_auth_are_not_checked() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    // 127.0.0.1 is the configured trusted network.
    let outcome = send(
        daemon.addr,
        &Transaction::new("127.0.0.1", FROM, message(FROM)),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept);
    assert_eq!(
        outcome.auth_results(),
        None,
        "trusted mail gets no check header"
    );

    let mut t = Transaction::new(CLIENT, FROM, message(FROM));
    t.mail_macros = vec![("{auth_authen}", "alice")];
    let outcome = send(daemon.addr, &t).await;
    assert_eq!(outcome.status, Status::Accept);
    assert_eq!(outcome.auth_results(), None);
}

#[tokio::test]
async fn hostile_signature_tags_cannot_inject_reply_lines() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let hostile = format!(
        "DKIM-Signature: v=1; a=ed25519-sha256; d=x%n.test; s=mailkey;\r\n h=from; bh=AAAA; b=AAAA\r\n{}",
        message(FROM)
    );
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, hostile)).await;
    let reply = outcome.reply();
    assert!(reply.starts_with("550-5.7.20"), "{reply}");
    // The sender-controlled d= reached the reply, defused.
    assert!(
        reply.contains("mailkey signature is for d=x%%n.test"),
        "{reply}"
    );
    for line in reply.split("\r\n") {
        assert!(
            line.starts_with("550-5.7.20 ") || line.starts_with("550 5.7.20 "),
            "injected line {line:?}"
        );
        assert!(
            !line.replace("%%", "").contains('%'),
            "unescaped % in {line:?}"
        );
    }
}

#[tokio::test]
async fn two_messages_on_one_connection_are_judged_separately() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let mut conn = open(daemon.addr, CLIENT.parse().unwrap(), "mail.sender.test").await;
    let unsigned = send_on(&mut conn, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert!(matches!(unsigned.status, Status::Reject { .. }));
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let good = send_on(&mut conn, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(good.status, Status::Accept, "{}", good.reply());
    // An aborted transaction (RSET) leaves nothing behind either.
    conn.abort().await.unwrap();
    let again = send_on(&mut conn, &Transaction::new(CLIENT, FROM, message(FROM))).await;
    assert!(matches!(again.status, Status::Reject { .. }));
}

#[tokio::test]
async fn null_sender_uses_the_helo_domain() {
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let mut t = Transaction::new(CLIENT, "", message("mailer-daemon@sender.test"));
    t.helo = "sender.test";
    let outcome = send(daemon.addr, &t).await;
    assert_rejected(&outcome, "550-5.7.20", "no mailkey signature");
}

#[tokio::test]
async fn lookups_are_cached_between_messages() {
    let key = TestKey::ed25519();
    let (dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    for _ in 0..3 {
        let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed.clone())).await;
        assert_eq!(outcome.status, Status::Accept);
    }
    assert_eq!(dns.queries("mailkey.sender.test"), 1);
}

#[tokio::test]
async fn key_records_are_parsed_once_per_ttl() {
    // Issue #21 item 5: the parsed lookup is cached, not the raw answer
    // parsed again for every message.
    use mailkey_milter::{
        checks::mailkey,
        config::{DnsConfig, NameServer},
        dns::Dns,
    };
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let resolver = Dns::new(&DnsConfig {
        nameservers: vec![NameServer(dns.addr())],
        timeout_ms: 500,
        cache_size: 100,
    })
    .unwrap();
    let first = mailkey::lookup(&resolver, "sender.test").await;
    let second = mailkey::lookup(&resolver, "Sender.Test").await;
    assert!(std::sync::Arc::ptr_eq(&first, &second), "parsed again");
    assert_eq!(dns.queries("mailkey.sender.test"), 1);
}

#[tokio::test]
async fn expired_signature_does_not_count() {
    use mailkey_milter::{
        checks::{mailkey, Status as S},
        config::{DnsConfig, MailkeyConfig, NameServer},
        dns::Dns,
        envelope::SenderDomain,
    };
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let signed = key.sign_with(&message(FROM), "sender.test", "mailkey", |mut o| {
        o.expiration = Some(std::time::Duration::from_secs(3600));
        o
    });
    assert!(signed.contains(" x="), "the signer set x=");
    let resolver = Dns::new(&DnsConfig {
        nameservers: vec![NameServer(dns.addr())],
        timeout_ms: 500,
        cache_size: 100,
    })
    .unwrap();
    let sender = SenderDomain::Domain("sender.test".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The same signature, judged at two moments: the clock decides.
    for (at, expected) in [(now, S::Pass), (now + 7200, S::Fail)] {
        let keys = mailkey::lookup(&resolver, "sender.test").await;
        let r = mailkey::check(
            &resolver,
            &MailkeyConfig::default(),
            &sender,
            keys,
            signed.as_bytes(),
            at,
            std::time::Instant::now() + std::time::Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(mailkey::Stopped::into_result);
        assert_eq!(r.status, expected, "{r:?}");
        if expected == S::Fail {
            assert_eq!(r.reason.as_deref(), Some("signature expired (x=)"));
        }
    }
}

/// A signed message, ready to take changes on its way.
fn signed_by(key: &TestKey, mail: &str) -> String {
    key.sign(mail, "sender.test", "mailkey")
}

#[tokio::test]
async fn a_bare_cr_put_into_the_body_breaks_the_signature() {
    // RFC 6376 §3.4.3/§3.4.4: a CR that does not end a line is text under
    // both body canonicalisations; it used to be dropped, so `ab` signed
    // passed as `a\rb` (issue #21 item 11).
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = signed_by(&key, &message(FROM));
    let changed = signed.replace("the numbers are", "the num\rbers are");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, changed)).await;
    assert_rejected(&outcome, "550-5.7.20", "body hash mismatch");
    // Signed with the bare CR in place, it verifies (as dkimpy's would).
    let with_cr = message(FROM).replace("the numbers are", "the num\rbers are");
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, FROM, signed_by(&key, &with_cr)),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

#[tokio::test]
async fn a_signature_covering_other_signatures_verifies_over_them() {
    // An ESP's l= signature above ours, which lists DKIM-Signature in h=:
    // the ESP's is not verified (l=), but it must stay exactly where it is
    // for ours (issue #21 item 12).
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let esp = TestKey::ed25519().sign_with(&message(FROM), "esp.test", "s1", |mut o| {
        o.body_length = true;
        o
    });
    let signed = key.sign_with(&esp, "sender.test", "mailkey", |mut o| {
        o.headers = vec!["From", "To", "Subject", "DKIM-Signature"];
        o
    });
    let ours = signed.split_once("\r\nDKIM-Signature:").expect("two").0;
    assert!(
        ours.to_ascii_lowercase().contains(":dkim-signature"),
        "{ours}"
    );
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome.auth_results().unwrap().contains("mailkey=pass"));
}

#[tokio::test]
async fn a_trailing_dot_in_d_verifies_with_the_key_of_the_domain() {
    // d=sender.test. names sender.test (alignment already said so); its key
    // is the one at mailkey.sender.test (issue #21 item 13).
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = key.sign(&message(FROM), "sender.test.", "mailkey");
    assert!(signed.contains("d=sender.test.;"), "{signed}");
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

#[tokio::test]
async fn times_of_more_than_12_digits_and_l_0_do_not_count() {
    // RFC 6376 §3.5: t= and x= are 1*12DIGIT; l=0 signs no body at all.
    // Both signatures are otherwise valid (issue #21 item 13).
    let key = TestKey::ed25519();
    let (_dns, daemon) = setup(&[&key.record], "").await;
    let signed = signed_by(&key, &message(FROM));
    let long_t = key.resign(&signed, |tags| with_tag(tags, "t", "1000000000000"));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, long_t)).await;
    assert_rejected(
        &outcome,
        "550-5.7.20",
        "signature has t=1000000000000: RFC 6376 section 3.5 allows 1 to 12 digits",
    );
    let l_zero = key.resign(&signed, |tags| with_tag(tags, "l", "0"));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, l_zero)).await;
    assert_rejected(&outcome, "550-5.7.20", "l= body length tag");
    // The same edit that changes nothing the rules look at still verifies.
    let fine = key.resign(&signed, |tags| with_tag(tags, "t", "999999999999"));
    let outcome = send(daemon.addr, &Transaction::new(CLIENT, FROM, fine)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

/// `tags` (`; `-separated) with `name=value` in place of any `name=`.
fn with_tag(tags: &str, name: &str, value: &str) -> String {
    let prefix = format!("{name}=");
    let mut kept: Vec<String> = tags
        .split("; ")
        .filter(|t| !t.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    kept.push(format!("{name}={value}"));
    kept.join("; ")
}

#[tokio::test]
async fn relaxed_alignment_verifies_with_the_keys_of_the_signing_domain() {
    // D = bounces.sender.test publishes a key; the message is signed for
    // the parent sender.test, whose key is looked up before verifying.
    const BOUNCES: &str = "alice@bounces.sender.test";
    let own = TestKey::ed25519();
    let parent = TestKey::rsa(2048);
    let zone = common::sender_zone()
        .txt("bounces.sender.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("bounces.sender.test", 10, "mx.sender.test")
        .txt("mailkey.bounces.sender.test", &own.record)
        .txt("mailkey.sender.test", &parent.record);
    let dns = TestDns::start(zone).await;
    let relaxed = common::config(&dns, "[mailkey]\nalignment = \"relaxed\"");
    let daemon = Daemon::start(&relaxed).await;
    let signed = parent.sign(&message(BOUNCES), "sender.test", "mailkey");
    let outcome = send(
        daemon.addr,
        &Transaction::new(CLIENT, BOUNCES, signed.clone()),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome
        .auth_results()
        .unwrap()
        .contains("mailkey=pass header.d=sender.test"));
    // Strict alignment: the parent's signature does not count.
    let strict = Daemon::start(&common::config(&dns, "")).await;
    let outcome = send(strict.addr, &Transaction::new(CLIENT, BOUNCES, signed)).await;
    assert!(
        outcome
            .reply()
            .starts_with("550-5.7.20 mailkey check fail for bounces.sender.test: mailkey signature is for d=sender.test"),
        "{}",
        outcome.reply()
    );
}
