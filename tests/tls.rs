//! The peer-certificate check through the real milter socket: the MTA's TLS
//! macros, and the active STARTTLS probe against responders on their own
//! loopback addresses (127.0.0.21 …) with certificates from a test CA made
//! in code. Each test uses its own client address, so the probe cache of
//! one never answers for another.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message, send, send_on,
    tls::{probe_port, self_signed, unix_now, Behaviour, Leaf, Pki, Responder},
    Daemon, Outcome, Transaction,
};
use indymilter_test::{MacroStage, SocketInfo, Status, TestConnection};
use mailkey_milter::{
    config::TlsConfig,
    tls::{CertProblem, ProbeKind, Problem, TrustStore},
};
use std::net::SocketAddr;

const FROM: &str = "alice@sender.test";
const HELO: &str = "mail.sender.test";

/// A daemon that trusts `pki`'s CA and probes on the responders' port;
/// `extra` adds keys to `[tls]`. The evidence is the MTA's and the probe's
/// (the sender domain's is tests/tls_evidence.rs's).
async fn setup(pki: &Pki, extra: &str) -> (TestDns, Daemon) {
    let dns = TestDns::start(common::sender_zone()).await;
    // Decided at end of message, where the header with the certificate's
    // reason is written (tests/early_reject.rs has the RCPT stage).
    let config = common::config(
        &dns,
        &format!(
            "reject_at_rcpt = false\n[tls]\nevidence = [\"mta-verified\", \"probe\"]\n\
             probe_port = {}\nprobe_timeout_ms = 1500\nca_file = \"{}\"\n{extra}",
            probe_port(),
            pki.ca_file().display()
        ),
    );
    let daemon = Daemon::start(&config).await;
    (dns, daemon)
}

/// A message from `ip` over an encrypted session without a verified client
/// certificate: the check must probe.
fn unverified_tls(ip: &str) -> Transaction<'static> {
    let mut t = Transaction::new(ip, FROM, message(FROM));
    t.tls_macros = vec![("{tls_version}", "TLSv1.3")];
    t
}

fn starttls(identity: common::tls::Identity) -> Behaviour {
    Behaviour::StartTls {
        identity,
        ocsp: None,
    }
}

fn assert_rejected(outcome: &Outcome, code: &str, why: &str) {
    let reply = outcome.assert_rejected(code, &[why]);
    // The guidance names the certificate fix, not the mailkey steps.
    assert!(
        reply.contains("from a trusted CA") && reply.contains("for mail.sender.test"),
        "{reply}"
    );
    assert!(!reply.contains("keygen"), "{reply}");
}

fn assert_tempfail(outcome: &Outcome, why: &str) {
    outcome.assert_tempfailed("451-4.7.5", &[why]);
}

#[tokio::test]
async fn ca_signed_leaf_for_the_helo_name_passes() {
    let pki = Pki::new("valid");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 100));
    let responder = Responder::start("127.0.0.21", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.21")).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    let ar = outcome.ar();
    assert!(
        ar.contains(
            "x-tls=pass (TLSv1.3, cert verified by probe for mail.sender.test, \
             CN=mail.sender.test)"
        ),
        "{ar}"
    );
    assert_eq!(responder.connections(), 1);
}

#[tokio::test]
async fn second_message_uses_the_cached_probe_result() {
    let pki = Pki::new("cache");
    let leaf = pki.leaf(Leaf::valid(&["*.sender.test"], 101));
    let responder = Responder::start("127.0.0.29", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    for _ in 0..2 {
        // A new SMTP session each time, as a sending host's next message.
        let outcome = send(daemon.addr, &unverified_tls("127.0.0.29")).await;
        assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
        assert!(outcome.ar().contains("x-tls=pass"), "{}", outcome.ar());
    }
    assert_eq!(
        responder.connections(),
        1,
        "the second message made no probe"
    );
}

#[tokio::test]
async fn expired_certificate_is_rejected() {
    let pki = Pki::new("expired");
    let leaf = pki.leaf(Leaf {
        names: &[HELO],
        not_before: -400 * 86_400,
        not_after: -86_400,
        serial: 102,
    });
    let _responder = Responder::start("127.0.0.22", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.22")).await;
    assert_rejected(
        &outcome,
        "550-5.7.5",
        "tls check fail for sender.test: certificate expired",
    );
    assert!(
        outcome.ar().contains("x-tls=fail (certificate expired on "),
        "{}",
        outcome.ar()
    );
}

#[tokio::test]
async fn self_signed_certificate_is_rejected() {
    let pki = Pki::new("selfsigned");
    let _responder = Responder::start("127.0.0.23", starttls(self_signed(&[HELO])));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.23")).await;
    assert_rejected(&outcome, "550-5.7.5", "self-signed certificate");
    assert!(outcome
        .ar()
        .contains("x-tls=fail (self-signed certificate; no verified client certificate)"));
}

#[tokio::test]
async fn certificate_from_an_unknown_ca_is_rejected() {
    let pki = Pki::new("trusted");
    let other = Pki::new("unknown");
    let leaf = other.leaf(Leaf::valid(&[HELO], 103));
    let _responder = Responder::start("127.0.0.36", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.36")).await;
    assert_rejected(
        &outcome,
        "550-5.7.5",
        "certificate not signed by a trusted CA",
    );
}

#[tokio::test]
async fn certificate_revoked_by_crl_is_rejected() {
    let pki = Pki::new("revoked");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 104));
    let crl = pki.crl(&[104]);
    let _responder = Responder::start("127.0.0.24", starttls(leaf));
    let (_dns, daemon) = setup(&pki, &format!("crl_files = [\"{}\"]", crl.display())).await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.24")).await;
    assert_rejected(&outcome, "550-5.7.5", "certificate revoked by CRL");
    assert!(
        outcome
            .ar()
            .contains("x-tls=fail (certificate revoked by CRL; no verified client certificate)"),
        "{}",
        outcome.ar()
    );
}

#[tokio::test]
async fn certificate_revoked_by_stapled_ocsp_is_rejected() {
    let pki = Pki::new("ocsp-revoked");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 110));
    let ocsp = Some(pki.ocsp(&leaf, 110, true));
    let identity = leaf;
    let _responder = Responder::start("127.0.0.39", Behaviour::StartTls { identity, ocsp });
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.39")).await;
    assert_rejected(
        &outcome,
        "550-5.7.5",
        "certificate revoked by stapled OCSP response",
    );
}

#[tokio::test]
async fn stapled_ocsp_saying_good_passes() {
    let pki = Pki::new("ocsp-good");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 111));
    let ocsp = Some(pki.ocsp(&leaf, 111, false));
    let identity = leaf;
    let _responder = Responder::start("127.0.0.40", Behaviour::StartTls { identity, ocsp });
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.40")).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

#[tokio::test]
async fn crl_that_does_not_list_the_certificate_changes_nothing() {
    let pki = Pki::new("crl-other");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 105));
    let crl = pki.crl(&[999]);
    let _responder = Responder::start("127.0.0.37", starttls(leaf));
    let (_dns, daemon) = setup(&pki, &format!("crl_files = [\"{}\"]", crl.display())).await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.37")).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

#[tokio::test]
async fn certificate_for_another_name_is_rejected() {
    let pki = Pki::new("mismatch");
    let leaf = pki.leaf(Leaf::valid(&["mail.other.test"], 106));
    let _responder = Responder::start("127.0.0.25", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.25")).await;
    assert_rejected(
        &outcome,
        "550-5.7.5",
        "certificate name mismatch: it is for mail.other.test but the client is mail.sender.test",
    );
}

#[tokio::test]
async fn client_port_without_starttls_is_rejected_with_5_7_5() {
    let pki = Pki::new("nostarttls");
    let responder = Responder::start("127.0.0.26", Behaviour::NoStartTls);
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.26")).await;
    assert_rejected(
        &outcome,
        "550-5.7.5",
        &format!(
            "no certificate to verify: 127.0.0.26 port {} does not offer STARTTLS",
            probe_port()
        ),
    );
    assert_eq!(responder.connections(), 1);
}

#[tokio::test]
async fn silent_client_port_is_a_temporary_failure() {
    let pki = Pki::new("silent");
    let _responder = Responder::start("127.0.0.27", Behaviour::Silent);
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.27")).await;
    assert_tempfail(&outcome, "certificate probe failed");
    assert!(
        outcome
            .ar()
            .contains("x-tls=temperror (certificate probe failed:"),
        "{}",
        outcome.ar()
    );
}

/// Nothing listening will not change by itself: a definite 5.7.5 at once,
/// not days of deferrals (#23). Only a time-out defers (above).
#[tokio::test]
async fn closed_client_port_is_refused_at_once() {
    let pki = Pki::new("closed");
    // Nothing listens on 127.0.0.28.
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.28")).await;
    let nothing_listens = format!(
        "no certificate to verify: nothing listens on 127.0.0.28 port {}",
        probe_port()
    );
    let reply = outcome.assert_rejected("550-5.7.5", &[&nothing_listens]);
    // The guidance names a way to meet each accepted kind of evidence.
    assert!(
        reply.contains("present a client certificate from a trusted CA"),
        "{reply}"
    );
    assert!(
        reply.contains("offer STARTTLS on 127.0.0.28 port 25"),
        "{reply}"
    );
    assert!(outcome
        .ar()
        .contains("x-tls=fail (no certificate to verify: nothing listens"));
}

#[tokio::test]
async fn certificate_verified_by_postfix_passes_without_a_probe() {
    let pki = Pki::new("postfix");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 107));
    let responder = Responder::start("127.0.0.30", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    // Transaction::new carries the macros of a verified client certificate.
    let outcome = send(
        daemon.addr,
        &Transaction::new("127.0.0.30", FROM, message(FROM)),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(
        outcome
            .ar()
            .contains("x-tls=pass (TLSv1.3, cert verified by MTA, CN=mail.sender.test)"),
        "{}",
        outcome.ar()
    );
    assert_eq!(responder.connections(), 0, "no probe was made");
}

/// A session whose TLS macros come at the HELO stage, as Sendmail sends
/// them with `confMILTER_MACROS_HELO`.
async fn send_with_helo_macros(addr: SocketAddr, ip: &str, macros: &[(&str, &str)]) -> Outcome {
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .open_tcp(addr)
        .await
        .unwrap();
    conn.macros(MacroStage::Connect, [("j", "mx.receiver.test")])
        .await
        .unwrap();
    let client = SocketAddr::new(ip.parse().unwrap(), 40000);
    conn.connect("client.sender.test", SocketInfo::Inet(client))
        .await
        .unwrap();
    conn.macros(MacroStage::Helo, macros.iter().copied())
        .await
        .unwrap();
    assert!(common::goes_on(&conn.helo(HELO).await.unwrap()));
    let mut t = Transaction::new(ip, FROM, message(FROM));
    t.tls_macros = Vec::new();
    let outcome = send_on(&mut conn, &t).await;
    let _ = conn.close().await;
    outcome
}

/// `{verify}=OK` passes without a probe; `FAIL` (an untrusted certificate)
/// is reported, never decisive by itself: the probe decides (#23).
#[tokio::test]
async fn sendmail_verify_ok_passes_and_fail_leaves_it_to_the_probe() {
    let pki = Pki::new("sendmail");
    let responder = Responder::start("127.0.0.32", starttls(self_signed(&[HELO])));
    let (_dns, daemon) = setup(&pki, "").await;
    let sendmail = |verify| {
        [
            ("{tls_version}", "TLSv1.3"),
            ("{cipher}", "TLS_AES_256_GCM_SHA384"),
            ("{cipher_bits}", "256"),
            ("{cert_subject}", "/CN=mail.sender.test"),
            ("{cert_issuer}", "/CN=Test CA"),
            ("{verify}", verify),
        ]
    };
    let ok = send_with_helo_macros(daemon.addr, "127.0.0.32", &sendmail("OK")).await;
    assert_eq!(ok.status, Status::Accept, "{}", ok.reply());
    assert!(
        ok.ar()
            .contains("x-tls=pass (TLSv1.3, cert verified by MTA, /CN=mail.sender.test)"),
        "{}",
        ok.ar()
    );
    assert_eq!(responder.connections(), 0, "no probe was made");
    let fail = send_with_helo_macros(daemon.addr, "127.0.0.32", &sendmail("FAIL")).await;
    assert_rejected(
        &fail,
        "550-5.7.5",
        "self-signed certificate; the client certificate failed verification by the MTA \
         (verify=FAIL)",
    );
    assert_eq!(responder.connections(), 1, "the probe decided");
}

#[tokio::test]
async fn sendmail_verify_no_makes_a_probe() {
    let pki = Pki::new("sendmail-no");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 108));
    let responder = Responder::start("127.0.0.38", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    let macros = [("{tls_version}", "TLSv1.2"), ("{verify}", "NO")];
    let outcome = send_with_helo_macros(daemon.addr, "127.0.0.38", &macros).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(outcome
        .ar()
        .contains("x-tls=pass (TLSv1.2, cert verified by probe"));
    assert_eq!(responder.connections(), 1);
}

#[tokio::test]
async fn require_encryption_accepts_tls_without_a_certificate() {
    let pki = Pki::new("encryption");
    let responder = Responder::start("127.0.0.33", starttls(self_signed(&[HELO])));
    let (_dns, daemon) = setup(&pki, "require = \"encryption\"").await;
    let mut t = unverified_tls("127.0.0.33");
    t.tls_macros = vec![
        ("{tls_version}", "TLSv1.3"),
        ("{cipher}", "TLS_AES_128_GCM_SHA256"),
        ("{cipher_bits}", "128"),
    ];
    let outcome = send(daemon.addr, &t).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    assert!(
        outcome.ar().contains(
            "x-tls=pass (TLSv1.3, TLS_AES_128_GCM_SHA256 128 bits, no certificate required)"
        ),
        "{}",
        outcome.ar()
    );
    assert_eq!(responder.connections(), 0, "no probe was made");
}

#[tokio::test]
async fn plaintext_session_is_rejected_with_5_7_10() {
    let pki = Pki::new("plain");
    let responder = Responder::start("127.0.0.34", starttls(self_signed(&[HELO])));
    let (_dns, daemon) = setup(&pki, "").await;
    let mut t = Transaction::new("127.0.0.34", FROM, message(FROM));
    t.tls_macros = Vec::new();
    let outcome = send(daemon.addr, &t).await;
    assert_rejected(
        &outcome,
        "550-5.7.10",
        "tls check fail for sender.test: session not encrypted: STARTTLS was not used",
    );
    assert!(outcome
        .ar()
        .contains("x-tls=fail (session not encrypted: STARTTLS was not used)"));
    assert_eq!(responder.connections(), 0, "no probe was made");
}

#[tokio::test]
async fn monitor_mode_never_rejects_but_says_what_it_would_do() {
    let pki = Pki::new("monitor");
    let _responder = Responder::start("127.0.0.35", starttls(self_signed(&[HELO])));
    let dns = TestDns::start(common::sender_zone()).await;
    // Decided at end of message, where the header with the certificate's
    // reason is written (tests/early_reject.rs has the RCPT stage).
    let config = common::config(
        &dns,
        &format!(
            "reject_at_rcpt = false\n[tls]\nprobe_port = {}\nca_file = \"{}\"",
            probe_port(),
            pki.ca_file().display()
        ),
    )
    .replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.35")).await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(
        outcome.ar().contains(
            "x-tls=fail (self-signed certificate; no verified client certificate; sender domain: "
        ),
        "{}",
        outcome.ar()
    );
    assert!(
        outcome
            .ar()
            .contains("; monitor mode, would reject: 550 5.7.5)"),
        "{}",
        outcome.ar()
    );
}

#[tokio::test]
async fn trusted_clients_are_never_probed() {
    let pki = Pki::new("trusted-client");
    // 127.0.0.1 is the test config's trusted network.
    let responder = Responder::start("127.0.0.1", starttls(self_signed(&[HELO])));
    let (_dns, daemon) = setup(&pki, "").await;
    let outcome = send(daemon.addr, &unverified_tls("127.0.0.1")).await;
    assert_eq!(outcome.status, Status::Accept);
    assert_eq!(outcome.auth_results(), None);
    assert_eq!(responder.connections(), 0);
}

#[tokio::test]
async fn an_ipv4_mapped_client_is_its_ipv4_address_for_the_probe() {
    let pki = Pki::new("mapped");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 113));
    let responder = Responder::start("127.0.0.44", starttls(leaf));
    let (_dns, daemon) = setup(&pki, "").await;
    // The same host, as an MTA on an IPv6 socket and one on IPv4 give it.
    for ip in ["::ffff:127.0.0.44", "127.0.0.44"] {
        let outcome = send(daemon.addr, &unverified_tls(ip)).await;
        assert_eq!(outcome.status, Status::Accept, "{ip}: {}", outcome.reply());
        assert!(outcome.ar().contains("cert verified by probe"), "{ip}");
    }
    assert_eq!(
        responder.connections(),
        1,
        "one cache entry for both forms of the address"
    );
}

#[tokio::test]
async fn an_unspecified_client_address_is_never_probed() {
    // A probe of 0.0.0.0 or :: connects to our own host, whose certificate
    // would then answer for the client.
    let pki = Pki::new("unspecified");
    let (_dns, daemon) = setup(&pki, "").await;
    let cases = [
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("::ffff:0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("::", ":: is the unspecified address"),
    ];
    for (ip, why) in cases {
        let outcome = send(daemon.addr, &unverified_tls(ip)).await;
        // SPF fails too (the zone authorises 127.0.0.0/8 only): 5.7.26.
        assert!(
            matches!(outcome.status, Status::Reject { .. }),
            "{ip}: {:?}",
            outcome.status
        );
        let tls = format!(
            "x-tls=fail (no certificate to verify: the client address {why}, which is never probed;"
        );
        assert!(outcome.ar().contains(&tls), "{ip}: {}", outcome.ar());
    }
}

/// The verification itself with the clock injected: the same chain is
/// valid today and expired in two years.
#[test]
fn verification_time_is_injected() {
    let pki = Pki::new("clock");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 109));
    let trust = TrustStore::load(&TlsConfig {
        ca_file: Some(pki.ca_file()),
        ..TlsConfig::default()
    })
    .unwrap();
    let chain = [leaf.cert];
    assert!(trust.verify(&chain, None, unix_now()).is_ok());
    assert_eq!(
        trust
            .verify(&chain, None, unix_now() + 2 * 365 * 86_400)
            .unwrap_err(),
        CertProblem::Bad(Problem::new(
            ProbeKind::Expired,
            format!("certificate expired on {}", chain[0].not_after())
        ))
    );
    assert_eq!(
        trust
            .verify(&chain, None, unix_now() - 10 * 86_400)
            .unwrap_err(),
        CertProblem::Bad(Problem::new(
            ProbeKind::BadCertificate,
            "certificate not yet valid"
        ))
    );
}

#[test]
fn bad_trust_store_files_are_configuration_errors() {
    let pki = Pki::new("badfiles");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = TrustStore::load(&TlsConfig {
        ca_file: Some(garbage.clone()),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let e = TrustStore::load(&TlsConfig {
        crl_files: vec![garbage],
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("not a PEM CRL"), "{e}");
}

/// The stapled-response decision alone, without a handshake.
#[test]
fn stapled_ocsp_response_is_judged() {
    let pki = Pki::new("ocsp-unit");
    let leaf = pki.leaf(Leaf::valid(&[HELO], 112));
    let revoked = pki.ocsp(&leaf, 112, true);
    let good = pki.ocsp(&leaf, 112, false);
    let trust = TrustStore::load(&TlsConfig {
        ca_file: Some(pki.ca_file()),
        ..TlsConfig::default()
    })
    .unwrap();
    let chain = [leaf.cert];
    assert!(trust.verify(&chain, Some(&good), unix_now()).is_ok());
    assert_eq!(
        trust
            .verify(&chain, Some(&revoked), unix_now())
            .unwrap_err(),
        CertProblem::Bad(Problem::new(
            ProbeKind::Revoked,
            "certificate revoked by stapled OCSP response"
        ))
    );
    // Garbage tells nothing, as if nothing had been stapled.
    assert!(trust.verify(&chain, Some(b"junk"), unix_now()).is_ok());
}
