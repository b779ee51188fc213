//! What Sendmail does with its own bounces: a real Sendmail 8.17 (private
//! instance, `sendmail-examples/sendmail.mc`'s milter lines) accepts a
//! message, the next hop (the SMTP sink) refuses the recipient, and Sendmail
//! returns a DSN to the sender. Sendmail runs milters only on mail it
//! receives over SMTP; the DSNs it generates itself never pass them, so the
//! DSN arrives without guidance and the milter never sees it. (The senders
//! Sendmail refuses at SMTP time get the guidance in our reply text.)
//!
//! `MAILKEY_WRITE_FIXTURES=1` writes the DSN to
//! tests/fixtures/bounce/sendmail-dsn.eml (tests/bounce.rs uses it).
//!
//! Needs root, the unpacked Sendmail, m4, unshare and swaks (tests/setup.sh);
//! fails, never skips, without them.

mod common;

use common::{dns::TestDns, message, sendmail::Sendmail, smtp_sink::SmtpSink, swaks, Daemon};
use std::time::Duration;

const FROM: &str = "alice@sender.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_dsn_does_not_pass_the_milter() {
    let logs = common::LogCapture::global();
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&common::config(&dns, "[tls]\nenforce = false")).await;
    let sink = SmtpSink::start();
    let milter = format!("inet:{}@127.0.0.1", daemon.addr.port());
    let sendmail = tokio::task::block_in_place(|| Sendmail::start(&milter, &sink));

    let out = swaks::submit(
        sendmail.dir(),
        sendmail.smtp_addr(),
        FROM,
        "no-such-user@receiver.test",
        &message(FROM),
        &[],
    )
    .await;
    assert!(out.final_code().starts_with("250"), "{}", out.output);

    let got = sink.wait_for_async(1, Duration::from_secs(60)).await;
    let dsn = &got[0];
    assert_eq!(dsn.mail_from, "", "{got:#?}");
    assert_eq!(dsn.rcpt_to, [FROM]);
    let text = dsn.text();
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(text.contains("550 5.1.1 No such user here"), "{text}");
    assert!(!text.contains("X-Mailkey-Guidance"), "{text}");
    assert!(!text.contains("mailkey-milter keygen"), "{text}");
    // The milter saw the accepted message, and nothing with the null sender.
    let log = logs.text();
    assert!(log.contains("mail_from=\"<alice@sender.test>\""), "{log}");
    assert!(!log.contains("mail_from=\"<>\""), "{log}");
    if std::env::var_os("MAILKEY_WRITE_FIXTURES").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bounce/sendmail-dsn.eml");
        std::fs::write(&path, &dsn.data).unwrap();
        eprintln!("wrote {}", path.display());
    }
}
