//! End to end: a real Postfix (a private instance on loopback ports) with
//! the daemon in `smtpd_milters`, a real SMTP client (swaks) in front, and
//! an SMTP sink behind it reading what Postfix delivers.
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh installs them): skipped
//! with a note without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message,
    postfix::{self, Postfix, PostfixOptions},
    smtp_sink::{SmtpSink, DELIVERY},
    swaks, Daemon, TestKey,
};

const FROM: &str = "alice@sender.test";
const TO: &str = "bob@receiver.test";

struct Setup {
    _dns: TestDns,
    daemon: Option<Daemon>,
    sink: SmtpSink,
    postfix: Postfix,
    dir: common::process::TempDir,
}

/// DNS with a mailkey for sender.test, the daemon with `config_extra`, and
/// Postfix using it. The TLS check is left to its own tests.
async fn setup(name: &str, key: &TestKey, mode: &str, config_extra: &str) -> Setup {
    let zone = common::sender_zone().txt("mailkey.sender.test", &key.record);
    let config_extra = format!("[tls]\nenforce = false\n{config_extra}");
    setup_with(name, zone, mode, &config_extra, None).await
}

/// Like [`setup`] with a zone, the whole daemon config extra, and Postfix
/// TLS settings (main.cf.tls of the examples, with the test's files).
async fn setup_with(
    name: &str,
    zone: common::dns::Zone,
    mode: &str,
    config_extra: &str,
    tls: Option<&TlsFiles>,
) -> Setup {
    let dns = TestDns::start(zone).await;
    let config = common::config(&dns, config_extra)
        .replace("mode = \"enforce\"", &format!("mode = \"{mode}\""));
    let daemon = Daemon::start(&config).await;
    let sink = SmtpSink::start();
    let mut extra_main_cf = example_main_cf("main.cf", &format!("inet:{}", daemon.addr));
    if let Some(tls) = tls {
        for (k, v) in postfix::example_settings("main.cf.tls", str::to_string) {
            let v = match k.as_str() {
                "smtpd_tls_cert_file" => tls.server_cert.display().to_string(),
                "smtpd_tls_key_file" => tls.server_key.display().to_string(),
                "smtpd_tls_CApath" => tls.ca_dir.display().to_string(),
                _ => v,
            };
            extra_main_cf.push((k, v));
        }
    }
    let opts = PostfixOptions {
        extra_main_cf,
        relay_domains: vec!["receiver.test".into()],
        ..Default::default()
    };
    let postfix = tokio::task::block_in_place(|| Postfix::start(opts, &sink));
    let dir = common::process::temp_dir(&format!("e2e-{name}"));
    Setup {
        _dns: dns,
        daemon: Some(daemon),
        sink,
        postfix,
        dir,
    }
}

/// The settings of `postfix-examples/FILE`, with the documented milter
/// address replaced by the test daemon's: the tests run the shipped example.
fn example_main_cf(file: &str, milter: &str) -> Vec<(String, String)> {
    let settings = postfix::example_settings(file, |v| v.replace("inet:127.0.0.1:8895", milter));
    assert!(
        settings.iter().any(|(k, _)| k == "smtpd_milters"),
        "{file} attaches no milter"
    );
    settings
}

/// Certificates from a test CA made in code, written to files.
struct TlsFiles {
    _pki: common::tls::Pki,
    ca_dir: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
}

impl TlsFiles {
    fn new(tag: &str) -> TlsFiles {
        let pki = common::tls::Pki::new(tag);
        let server = pki.leaf(common::tls::Leaf::valid(&["mta.test"], 2));
        let client = pki.leaf(common::tls::Leaf::valid(&["mail.sender.test"], 3));
        let (server_cert, server_key) = pki.write("server", &server);
        let (client_cert, client_key) = pki.write("client", &client);
        TlsFiles {
            ca_dir: pki.ca_dir(),
            _pki: pki,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

impl Setup {
    /// Sends `data` with swaks from 127.0.0.20 (not a trusted network).
    async fn send(&self, data: &str) -> swaks::Swaks {
        self.send_with(data, &[]).await
    }

    /// Like [`send`](Self::send) with more swaks arguments (e.g. `--tls`).
    async fn send_with(&self, data: &str, extra: &[&str]) -> swaks::Swaks {
        swaks::submit(&self.dir, self.postfix.smtp_addr(), FROM, TO, data, extra).await
    }

    async fn delivered(&self, n: usize) -> Vec<common::smtp_sink::Received> {
        self.sink.delivered(n).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_message_is_delivered_with_our_header() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("pass", &key, "enforce", "").await;
    let out = s
        .send(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let got = s.delivered(1).await;
    let text = got[0].text();
    assert!(
        text.contains("Authentication-Results: mx.receiver.test;"),
        "{text}"
    );
    assert!(
        text.contains("mailkey=pass header.d=sender.test header.s=mailkey header.a=ed25519-sha256"),
        "{text}"
    );
    assert!(
        text.contains("spf=pass smtp.mailfrom=alice@sender.test"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_message_is_refused_with_guidance() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("reject", &key, "enforce", "").await;
    let tampered = key
        .sign(&message(FROM), "sender.test", "mailkey")
        .replace("numbers", "NUMBERS");
    let out = s.send(&tampered).await;
    let reply = out.final_reply().expect("a reply");
    println!("{}", out.output);
    assert_eq!(reply.code(), "550 5.7.20", "{}", out.output);
    let text = reply.text();
    assert!(text.contains("body hash mismatch"), "{text}");
    assert!(
        text.contains("The body was changed after signing (a footer or a filter)"),
        "{text}"
    );
    assert!(
        text.contains("Sign last, with the key at mailkey.sender.test"),
        "{text}"
    );
    // Postfix logs our reply as the reason.
    let log = tokio::task::block_in_place(|| {
        s.postfix
            .wait_for_log(&["milter-reject", "5.7.20"], DELIVERY)
    });
    assert!(log.contains("body hash mismatch"), "{log}");
    assert!(s.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_in_sender_data_reaches_the_client_as_written() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("percent", &key, "enforce", "").await;
    let hostile = format!(
        "DKIM-Signature: v=1; a=ed25519-sha256; d=x%n.test; s=mailkey;\r\n h=from; bh=AAAA; b=AAAA\r\n{}",
        message(FROM)
    );
    let out = s.send(&hostile).await;
    let reply = out.final_reply().expect("a reply");
    assert_eq!(reply.code(), "550 5.7.20", "{}", out.output);
    // We double the %; Postfix turns %% back into % (it treats reply text
    // like Sendmail does), so the client reads exactly what was sent.
    assert!(
        reply
            .text()
            .contains("mailkey signature is for d=x%n.test,"),
        "{}",
        out.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_delivers_and_says_what_it_would_do() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("monitor", &key, "monitor", "").await;
    let out = s.send(&message(FROM)).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let text = s.delivered(1).await[0].text();
    assert!(
        text.contains(
            "mailkey=fail (no mailkey signature; monitor mode, would reject: 550 5.7.20)"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_header_is_removed_before_delivery() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("forged", &key, "enforce", "").await;
    let forged = format!(
        "Authentication-Results: mx.receiver.test; mailkey=pass\r\n{}",
        message(FROM)
    );
    let out = s.send(&key.sign(&forged, "sender.test", "mailkey")).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let text = s.delivered(1).await[0].text();
    assert_eq!(
        text.matches("Authentication-Results: mx.receiver.test;")
            .count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains("mx.receiver.test; mailkey=pass\r\n"),
        "forged header survived: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milter_down_means_tempfail_not_unchecked_mail() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let mut s = setup("down", &key, "enforce", "").await;
    if let Some(daemon) = s.daemon.take() {
        daemon.shutdown().await;
    }
    let out = s
        .send(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    let reply = out.final_reply().expect("a reply");
    assert_eq!(reply.code(), "451 4.7.1", "{}", out.output);
    assert!(s.sink.messages().is_empty());
}

/// The full check, TLS included, as the README's last rollout stage runs it:
/// the certificate comes from Postfix's own verification of the client's
/// certificate (main.cf.tls), not from a probe.
const ALL_ENFORCED: &str = "[tls]\nprobe = false\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_client_certificate_passes_every_check() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let tls = TlsFiles::new("e2e-cert");
    let zone = common::sender_zone().txt("mailkey.sender.test", &key.record);
    let s = setup_with("cert", zone, "enforce", ALL_ENFORCED, Some(&tls)).await;
    let (cert, key_file) = (
        tls.client_cert.display().to_string(),
        tls.client_key.display().to_string(),
    );
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let out = s
        .send_with(
            &signed,
            &["--tls", "--tls-cert", &cert, "--tls-key", &key_file],
        )
        .await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let text = s.delivered(1).await[0].text();
    for part in [
        "mailkey=pass",
        "spf=pass",
        "x-mx=pass",
        "x-tls=pass (TLSv1.3, cert verified by MTA, CN=mail.sender.test)",
    ] {
        assert!(text.contains(part), "{part:?} missing: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_refused_when_tls_is_enforced() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let tls = TlsFiles::new("e2e-plain");
    let zone = common::sender_zone().txt("mailkey.sender.test", &key.record);
    let s = setup_with("plain", zone, "enforce", ALL_ENFORCED, Some(&tls)).await;
    let out = s
        .send(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    let reply = out.final_reply().expect("a reply");
    assert_eq!(reply.code(), "550 5.7.10", "{}", out.output);
    assert!(
        reply
            .text()
            .contains("Use STARTTLS when sending (Postfix: smtp_tls_security_level = may)"),
        "{}",
        out.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_fail_is_refused_with_5_7_23() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let zone = common::dns::Zone::default()
        .txt("sender.test", "v=spf1 ip4:192.0.2.1 -all")
        .mx("sender.test", 10, "mx.sender.test")
        .txt("mailkey.sender.test", &key.record);
    let s = setup_with("spf", zone, "enforce", "[tls]\nenforce = false\n", None).await;
    let out = s
        .send(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    let reply = out.final_reply().expect("a reply");
    assert_eq!(reply.code(), "550 5.7.23", "{}", out.output);
    assert!(
        reply
            .text()
            .contains("127.0.0.20 is not authorised by the SPF record of sender.test: fail"),
        "{}",
        out.output
    ); // Refused at RCPT TO: Postfix never asked for the body.
    let rcpt = out.reply_to("RCPT").expect("a reply to RCPT");
    assert_eq!(rcpt.code(), "550 5.7.23", "{}", out.output);
    assert!(out.reply_to("DATA").is_none(), "{}", out.output);
}
