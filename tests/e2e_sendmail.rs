//! End to end with a real Sendmail 8.17 (unpacked Debian packages, private
//! configuration on loopback ports) using `sendmail-examples/sendmail.mc`'s
//! INPUT_MAIL_FILTER and macro lines, swaks in front, an SMTP sink behind.
//!
//! Needs root, the unpacked Sendmail, m4, unshare and swaks (tests/setup.sh):
//! skipped with a note without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns, message, sendmail::Sendmail, smtp_sink::SmtpSink, swaks, Daemon, TestKey,
};

const FROM: &str = "alice@sender.test";

struct Setup {
    _dns: TestDns,
    _daemon: Daemon,
    sink: SmtpSink,
    sendmail: Sendmail,
}

async fn setup(key: &TestKey) -> Setup {
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let daemon = Daemon::start(&common::config(&dns, "[tls]\nenforce = false")).await;
    let sink = SmtpSink::start();
    let milter = format!("inet:{}@127.0.0.1", daemon.addr.port());
    let sendmail = tokio::task::block_in_place(|| Sendmail::start(&milter, &sink));
    Setup {
        _dns: dns,
        _daemon: daemon,
        sink,
        sendmail,
    }
}

impl Setup {
    async fn send(&self, data: &str) -> swaks::Swaks {
        swaks::submit(
            self.sendmail.dir(),
            self.sendmail.smtp_addr(),
            FROM,
            "bob@receiver.test",
            data,
            &[],
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_message_is_delivered_with_our_header() {
    if !common::require(common::require::WITH_SENDMAIL) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup(&key).await;
    let out = s
        .send(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    assert!(out.final_code().starts_with("250"), "{}", out.output);
    let got = s.sink.delivered(1).await;
    let text = got[0].text();
    assert!(
        text.contains("Authentication-Results: mx.receiver.test;"),
        "{text}"
    );
    assert!(
        text.contains("mailkey=pass header.d=sender.test header.s=mailkey"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_message_is_refused_with_guidance() {
    if !common::require(common::require::WITH_SENDMAIL) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup(&key).await;
    let tampered = key
        .sign(&message(FROM), "sender.test", "mailkey")
        .replace("numbers", "NUMBERS");
    let out = s.send(&tampered).await;
    println!("{}", out.output);
    let reply = out.final_reply().expect("a reply");
    assert_eq!(reply.code(), "550 5.7.20", "{}", out.output);
    let text = reply.text();
    assert!(text.contains("body hash mismatch"), "{text}");
    assert!(
        text.contains("The body was changed after signing (a footer or a filter)"),
        "{text}"
    );
    assert!(s.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_verify_macro_decides_the_certificate_check() {
    if !common::require(common::require::WITH_SENDMAIL) {
        return;
    }
    let key = TestKey::ed25519();
    let pki = common::tls::Pki::new("sendmail-e2e");
    let (server_cert, server_key) = pki.write(
        "server",
        &pki.leaf(common::tls::Leaf::valid(&["mta.test"], 2)),
    );
    let (client_cert, client_key) = pki.write(
        "client",
        &pki.leaf(common::tls::Leaf::valid(&["mail.sender.test"], 3)),
    );
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    // Every check enforced; no probe: only Sendmail's {verify} can prove the
    // client's certificate.
    let daemon = Daemon::start(&common::config(&dns, "[tls]\nprobe = false")).await;
    let sink = SmtpSink::start();
    let milter = format!("inet:{}@127.0.0.1", daemon.addr.port());
    let tls = common::sendmail::SendmailTls {
        ca: &pki.ca_file(),
        cert: &server_cert,
        key: &server_key,
    };
    let sendmail = tokio::task::block_in_place(|| Sendmail::start_with(&milter, &sink, Some(tls)));
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let (cert, key_file) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );

    // {verify}=OK: a certificate Sendmail verified against the CA.
    let tls_args = ["--tls", "--tls-cert", &cert, "--tls-key", &key_file];
    let out = swaks::submit(
        sendmail.dir(),
        sendmail.smtp_addr(),
        FROM,
        "bob@receiver.test",
        &signed,
        &tls_args,
    )
    .await;
    assert!(out.final_code().starts_with("250"), "{}", out.output);
    let got = sink.delivered(1).await;
    assert!(got[0].text().contains("x-tls=pass"), "{}", got[0].text());

    // {verify}=NO: encrypted, but no certificate shown.
    let out = swaks::submit(
        sendmail.dir(),
        sendmail.smtp_addr(),
        FROM,
        "bob@receiver.test",
        &signed,
        &["--tls"],
    )
    .await;
    assert_eq!(
        out.final_reply().expect("a reply").code(),
        "550 5.7.5",
        "{}",
        out.output
    );
}
