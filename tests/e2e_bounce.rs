//! End to end: bounce guidance in a real DSN. A private Postfix with the
//! shipped `postfix-examples/main.cf` and `main.cf.bounces` (the daemon in
//! `smtpd_milters` and `non_smtpd_milters`, `internal_mail_filter_classes =
//! bounce`) accepts a message for an unknown local user from swaks, bounces
//! it, and the DSN reaches the SMTP sink through the milter. Postfix gives
//! the milter `{client_addr}` 127.0.0.1 for its bounces: a trusted client,
//! whose mail is not checked but does get the guidance.
//!
//! `MAILKEY_WRITE_FIXTURES=1` also writes the unchanged DSN to
//! tests/fixtures/bounce/postfix-dsn.eml (tests/bounce.rs uses it).
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh): skipped with a note
//! without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message,
    postfix::{self, Postfix, PostfixOptions},
    smtp_sink::{Received, SmtpSink},
    swaks, Daemon, TestKey,
};

const FROM: &str = "alice@sender.test";

struct Setup {
    _dns: TestDns,
    _daemon: Daemon,
    sink: SmtpSink,
    postfix: Postfix,
    dir: common::process::TempDir,
}

/// The settings of the shipped example files, with the documented milter
/// address replaced by the test daemon's.
fn example_main_cf(files: &[&str], milter: &str) -> Vec<(String, String)> {
    let settings: Vec<(String, String)> = files
        .iter()
        .flat_map(|file| {
            postfix::example_settings(file, |v| v.replace("inet:127.0.0.1:8895", milter))
        })
        .collect();
    for key in [
        "smtpd_milters",
        "non_smtpd_milters",
        "internal_mail_filter_classes",
    ] {
        assert!(
            settings.iter().any(|(k, _)| k == key),
            "no {key} in {files:?}"
        );
    }
    settings
}

/// DNS for sender.test (a mailkey when `key` is given), the daemon, and
/// Postfix bouncing mail for unknown users at local.test.
async fn setup(name: &str, key: Option<&TestKey>) -> Setup {
    // The daemon's log lines (why a DSN was left unchanged) in the test output.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut zone = common::sender_zone();
    if let Some(key) = key {
        zone = zone.txt("mailkey.sender.test", &key.record);
    }
    let dns = TestDns::start(zone).await;
    let config = common::config(
        &dns,
        "[tls]\nenforce = false\n[guidance]\nurl = \"https://mailkey.example/setup\"",
    )
    // A DNS failure leaves the DSN unchanged (by design); on a loaded
    // machine 500 ms per attempt is short.
    .replace("timeout_ms = 500", "timeout_ms = 5000");
    let daemon = Daemon::start(&config).await;
    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        extra_main_cf: example_main_cf(
            &["main.cf", "main.cf.bounces"],
            &format!("inet:{}", daemon.addr),
        ),
        relay_domains: vec!["sender.test".into()],
        local_domain: Some("local.test".into()),
        ..Default::default()
    };
    let postfix = tokio::task::block_in_place(|| Postfix::start(opts, &sink));
    Setup {
        _dns: dns,
        _daemon: daemon,
        sink,
        postfix,
        dir: common::process::temp_dir(&format!("e2e-bounce-{name}")),
    }
}

impl Setup {
    /// Sends `data` to an unknown local user and returns the DSN the sink
    /// received.
    async fn bounce(&self, data: &str) -> Received {
        let out = swaks::submit(
            &self.dir,
            self.postfix.smtp_addr(),
            FROM,
            "no-such-user@local.test",
            data,
            &[],
        )
        .await;
        assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
        tokio::task::block_in_place(|| self.postfix.flush());
        let got = self.sink.delivered(1).await;
        assert_eq!(got.len(), 1, "{got:#?}");
        let dsn = got[0].clone();
        assert_eq!(dsn.mail_from, "", "a bounce has the null sender");
        assert_eq!(dsn.rcpt_to, [FROM]);
        dsn
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_bounce_to_a_domain_without_mailkey_gets_the_guidance() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let s = setup("nokey", None).await;
    let dsn = s.bounce(&message(FROM)).await;
    let text = dsn.text();
    println!("{text}");
    assert!(
        text.contains("\r\nX-Mailkey-Guidance: appended for sender.test\r\n"),
        "{text}"
    );
    let readable = common::dsn::parts(&dsn.data)[0]
        .text
        .clone()
        .expect("a text part");
    assert!(
        readable.contains("<no-such-user@local.test>: unknown user: \"no-such-user\""),
        "{readable}"
    );
    for line in [
        "About your domain sender.test: it publishes no mailkey, so receivers",
        "1. Run: mailkey-milter keygen --domain sender.test --out /etc/mailkey",
        "2. Publish the printed TXT record at mailkey.sender.test",
        "Details: https://mailkey.example/setup",
    ] {
        assert!(readable.contains(line), "no {line:?} in\n{readable}");
    }
    // The report and the returned message are still there, as parts.
    assert_eq!(
        common::dsn::kinds(&dsn.data),
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );
    assert!(text.contains("Final-Recipient: rfc822; no-such-user@local.test"));
    assert!(text.contains("Subject: Quarterly report"));
    // The original message went through the sender checks (untrusted
    // client); the bounce came from Postfix itself (trusted: not checked).
    let log = s.postfix.log();
    assert!(log.contains("sender non-delivery notification"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_bounce_to_a_domain_with_a_mailkey_is_unchanged() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let key = TestKey::ed25519();
    let s = setup("key", Some(&key)).await;
    let dsn = s
        .bounce(&key.sign(&message(FROM), "sender.test", "mailkey"))
        .await;
    let text = dsn.text();
    assert!(!text.contains("X-Mailkey-Guidance"), "{text}");
    assert!(!text.contains("mailkey-milter keygen"), "{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    if std::env::var_os("MAILKEY_WRITE_FIXTURES").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bounce/postfix-dsn.eml");
        std::fs::write(&path, &dsn.data).unwrap();
        eprintln!("wrote {}", path.display());
    }
}
