//! Who is trusted, and what a hostile sender can do to the log: only an
//! authenticated client or one in `trusted_networks` skips the checks; a
//! null-sender DSN from the outside is checked, never rewritten; a quoted
//! local part cannot forge a field of the log line.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dns::TestDns, message, send, send_on, Daemon, LogCapture, TestKey, Transaction};
use indymilter_test::{EomAction, SocketInfo, Status, TestConnection};

const DSN: &str = include_str!("fixtures/bounce/postfix-dsn.eml");

/// Enforcing, with every verdict at end of message (so that our header is
/// there to look at).
async fn daemon() -> (TestDns, Daemon) {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let daemon = Daemon::start(&common::config(&dns, "reject_at_rcpt = false")).await;
    (dns, daemon)
}

/// A connection whose client address the MTA does not give (an unknown
/// family) proves nothing: its unsigned mail is checked and rejected.
#[tokio::test]
async fn unknown_client_address_is_checked_not_trusted() {
    let (_logs, _guard) = LogCapture::for_thread();
    let (_dns, daemon) = daemon().await;
    let mut conn = TestConnection::open(daemon.addr).await.expect("open");
    let status = conn
        .connect("unknown", SocketInfo::Unknown)
        .await
        .expect("connect");
    assert!(common::goes_on(&status), "{status:?}");
    conn.helo("mail.sender.test").await.expect("helo");
    let t = Transaction::new(
        "127.0.0.10",
        "alice@sender.test",
        message("alice@sender.test"),
    );
    let outcome = send_on(&mut conn, &t).await;
    outcome.assert_rejected("", &["5.7.20"]);
    assert!(outcome
        .auth_results()
        .is_some_and(|ar| ar.contains("mailkey=fail")));
}

/// A DSN from an untrusted client (a remote MTA bouncing to a local user)
/// is checked like any message and its body is left as sent: only the
/// MTA's own bounces (trusted clients) get the guidance paragraph.
#[tokio::test]
async fn remote_null_sender_dsn_is_checked_and_not_rewritten() {
    let (_logs, _guard) = LogCapture::for_thread();
    let (_dns, daemon) = daemon().await;
    let t = Transaction::new("127.0.0.10", "", DSN.to_string());
    let outcome = send(daemon.addr, &t).await;
    assert!(outcome.auth_results().is_some(), "checked: our A-R header");
    let rewritten = outcome
        .actions
        .actions
        .iter()
        .any(|a| matches!(a, EomAction::ReplaceBody { .. }));
    assert!(!rewritten, "a remote DSN's body is never replaced");
}

/// `"x verdict=accept"@sender.test` is logged as one quoted string.
#[tokio::test]
async fn quoted_local_part_cannot_forge_a_log_field() {
    let (logs, _guard) = LogCapture::for_thread();
    let (_dns, daemon) = daemon().await;
    let from = "\"x verdict=accept reply=-\"@sender.test";
    let t = Transaction::new("127.0.0.10", from, message("alice@sender.test"));
    let outcome = send(daemon.addr, &t).await;
    assert!(matches!(outcome.status, Status::Reject { .. }));
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("queue_id=QUEUEID1"))
        .unwrap_or_else(|| panic!("no message line in: {log}"));
    let field = r#"mail_from="<\"x verdict=accept reply=-\"@sender.test>""#;
    assert!(line.contains(field), "{line}");
    let rest = line.replace(field, "");
    assert_eq!(rest.matches(" verdict=").count(), 1, "{line}");
    assert!(line.contains(" verdict=reject "), "{line}");
}
