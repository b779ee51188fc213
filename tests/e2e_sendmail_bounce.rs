//! What Sendmail does with its own bounces: a real Sendmail 8.17 (private
//! instance, `sendmail-examples/sendmail.mc`'s milter and
//! `confERROR_MESSAGE` lines) accepts a message, the next hop (the SMTP
//! sink) refuses the recipient, and Sendmail returns a DSN to the sender.
//! Sendmail runs milters only on mail it receives over SMTP: the DSNs it
//! generates itself never pass them. What it does put into each of them is
//! its `ErrorHeader` file, written by `mailkey-milter bounce-text` — so the
//! bounced sender reads the guidance anyway (#23).
//!
//! `MAILKEY_WRITE_FIXTURES=1` writes the DSN to
//! tests/fixtures/bounce/sendmail-dsn.eml (tests/bounce.rs uses it).
//!
//! Needs root, the unpacked Sendmail, m4, unshare and swaks (tests/setup.sh):
//! skipped with a note without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message,
    process::{self, temp_dir, write},
    sendmail::Sendmail,
    smtp_sink::SmtpSink,
    swaks, Daemon,
};

const FROM: &str = "alice@sender.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_dsn_carries_the_guidance_of_its_error_header() {
    if !common::require(common::require::WITH_SENDMAIL) {
        return;
    }
    let logs = common::LogCapture::global();
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&common::config(&dns, "[tls]\nenforce = false")).await;
    let sink = SmtpSink::start();
    // The file, as the example's comment says to write it.
    let dir = temp_dir("sendmail-bounce");
    let config = dir.join("mk.toml");
    write(
        &config,
        "[guidance]\nurl = \"https://mailkey.example/setup\"\n",
    );
    let out = process::mailkey(&["bounce-text", "-c", config.to_str().unwrap()]).await;
    let paragraph = process::succeeded("bounce-text", out);
    let file = dir.join("mailkey-bounce.txt");
    write(&file, &paragraph);
    let milter = format!("inet:{}@127.0.0.1", daemon.addr.port());
    let sendmail =
        tokio::task::block_in_place(|| Sendmail::start_with_error_message(&milter, &sink, &file));

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

    let got = sink.delivered(1).await;
    let dsn = &got[0];
    assert_eq!(dsn.mail_from, "", "{got:#?}");
    assert_eq!(dsn.rcpt_to, [FROM]);
    let text = dsn.text();
    println!("{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(text.contains("550 5.1.1 No such user here"), "{text}");
    // The paragraph, line by line as written (Sendmail ends them CRLF).
    for line in paragraph.lines().filter(|l| !l.is_empty()) {
        assert!(text.contains(line), "{line:?} not in the DSN:\n{text}");
    }
    assert!(
        text.contains("Details: https://mailkey.example/setup"),
        "{text}"
    );
    // It is Sendmail's doing: the milter saw the accepted message, and
    // nothing with the null sender.
    assert!(!text.contains("X-Mailkey-Guidance"), "{text}");
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
