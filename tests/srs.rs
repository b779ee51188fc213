//! SRS (#15) through the real milter socket: forwarded mail re-injected by
//! the MTA gets an SRS sender, bounces to a valid SRS address go back to
//! the original sender, forged or expired ones are refused at RCPT.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message, open,
    process::{self, free_addr, Process},
    send, Daemon, TestKey, Transaction,
};
use indymilter_test::{EomAction, MacroStage, ProtoOpts, Status};
use mailkey_milter::srs::Srs;
use serde_json::Value;
use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

const SECRETS: &str = "# first signs\nnew-secret\nold-secret\n";

/// `[srs]` for fwd.test, a `[signing]` domain (as it must be), in `mode`.
/// Refusing at RCPT is SRS's own here (no early reject of the checks).
fn config(dir: &std::path::Path, dns: &TestDns, mode: &str) -> String {
    let secret_file = dir.join("srs.secrets");
    process::write(&secret_file, SECRETS);
    let key_file = dir.join("fwd.test.pem");
    TestKey::ed25519().write_pem(&key_file);
    let extra = format!(
        "reject_at_rcpt = false\n\
         [[signing.domains]]\ndomain = \"fwd.test\"\nkey_file = \"{}\"\n\
         [srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n",
        key_file.display(),
        secret_file.display()
    );
    common::config(dns, &extra).replace("mode = \"enforce\"", &format!("mode = \"{mode}\""))
}

async fn daemon(dir: &std::path::Path, mode: &str) -> (TestDns, Daemon) {
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&config(dir, &dns, mode)).await;
    (dns, daemon)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The same scheme as the daemon's, signing with the old secret (rotation:
/// addresses made before it must still reverse).
fn old_scheme() -> Srs {
    Srs::new("fwd.test", vec![b"old-secret".to_vec()], 21)
}

#[tokio::test]
async fn reinjected_forward_gets_an_srs_sender() {
    let dir = process::temp_dir("srs-forward");
    let (_dns, d) = daemon(&dir, "monitor").await;
    // 127.0.0.1 is trusted: the MTA re-injecting a forwarded message.
    let t = Transaction::new(
        "127.0.0.1",
        "alice@sender.test",
        message("alice@sender.test"),
    );
    let o = send(d.addr, &t).await;
    let changed = o.actions.actions.iter().find_map(|a| match a {
        EomAction::ChangeSender { mail, .. } => Some(mail.to_string_lossy().into_owned()),
        _ => None,
    });
    let changed = changed.expect("sender changed");
    assert!(changed.starts_with("<SRS0="), "{changed}");
    assert!(
        changed.ends_with("=sender.test=alice@fwd.test>"),
        "{changed}"
    );
    // It reverses with the daemon's secrets (the first one signed).
    let inner = changed.trim_matches(['<', '>']);
    let new = Srs::new("fwd.test", vec![b"new-secret".to_vec()], 21);
    assert_eq!(new.reverse(inner, now()).unwrap().0, "alice@sender.test");
}

#[tokio::test]
async fn untrusted_mail_keeps_its_sender() {
    let dir = process::temp_dir("srs-inbound");
    let (_dns, d) = daemon(&dir, "monitor").await;
    let t = Transaction::new(
        "127.0.0.10",
        "alice@sender.test",
        message("alice@sender.test"),
    );
    let o = send(d.addr, &t).await;
    assert!(
        !o.actions
            .actions
            .iter()
            .any(|a| matches!(a, EomAction::ChangeSender { .. })),
        "{:?}",
        o.actions.actions
    );
}

/// A bounce (`MAIL FROM:<>`) to `rcpt`: the RCPT status, and the end of
/// message actions when RCPT was accepted.
async fn bounce_to(addr: SocketAddr, rcpt: &str) -> (Status, Vec<EomAction>) {
    let mut conn = open(addr, "127.0.0.10".parse().unwrap(), "mail.sender.test").await;
    conn.macros(MacroStage::Mail, [("i", "QUEUEID1")])
        .await
        .unwrap();
    assert!(common::goes_on(&conn.mail(["<>"]).await.unwrap()));
    let status = conn.rcpt([format!("<{rcpt}>")]).await.unwrap();
    if status != Status::Continue {
        return (status, Vec::new());
    }
    conn.header("From", " MAILER-DAEMON@mx.sender.test")
        .await
        .unwrap();
    if !conn.negotiated_opts().contains(ProtoOpts::NO_EOH) {
        conn.eoh().await.unwrap();
    }
    conn.body(b"bounced\r\n".to_vec()).await.unwrap();
    let (actions, _) = conn.eom().await.unwrap();
    (status, actions.actions)
}

#[tokio::test]
async fn bounce_to_a_valid_srs_address_goes_back_to_the_sender() {
    let dir = process::temp_dir("srs-bounce");
    let (_dns, d) = daemon(&dir, "monitor").await;
    let srs = old_scheme().forward("alice@sender.test", now()).unwrap();
    let (status, actions) = bounce_to(d.addr, &srs).await;
    assert_eq!(status, Status::Continue);
    assert!(
        actions.contains(&EomAction::DeleteRecipient {
            rcpt: std::ffi::CString::new(format!("<{srs}>")).unwrap()
        }),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, EomAction::AddRecipient { rcpt, .. }
            if rcpt.to_bytes() == b"<alice@sender.test>")),
        "{actions:?}"
    );
}

fn assert_invalid(status: &Status, why: &str) {
    let Status::Reject { message: Some(m) } = status else {
        panic!("expected a reject with text, got {status:?}");
    };
    let m = m.to_string_lossy();
    assert!(m.starts_with("550 5.1.1 invalid SRS address"), "{m}");
    assert!(m.contains(why), "{m}");
}

#[tokio::test]
async fn forged_and_expired_srs_addresses_are_refused_at_rcpt() {
    let dir = process::temp_dir("srs-forged");
    let (_dns, d) = daemon(&dir, "enforce").await;
    let valid = old_scheme().forward("alice@sender.test", now()).unwrap();
    let forged = valid.replace("=alice@", "=mallory@");
    assert_invalid(&bounce_to(d.addr, &forged).await.0, "hash does not verify");
    let stranger = Srs::new("fwd.test", vec![b"not ours".to_vec()], 21);
    let foreign = stranger.forward("alice@sender.test", now()).unwrap();
    assert_invalid(&bounce_to(d.addr, &foreign).await.0, "hash does not verify");
    let old = old_scheme()
        .forward("alice@sender.test", now() - 30 * 86_400)
        .unwrap();
    assert_invalid(&bounce_to(d.addr, &old).await.0, "expired");
    // Not an SRS address at all: left to the MTA.
    assert_eq!(
        bounce_to(d.addr, "postmaster@fwd.test").await.0,
        Status::Continue
    );
}

/// Monitor mode never refuses, not even a bounce to a forged SRS address:
/// it says in the log what enforce mode would have answered. Enforce mode
/// refuses it and logs that too. Either line is what `report` counts.
#[tokio::test]
async fn srs_refusals_are_logged_and_counted_by_report() {
    let dns = TestDns::start(common::sender_zone()).await;
    let forged = old_scheme()
        .forward("alice@sender.test", now())
        .unwrap()
        .replace("=alice@", "=mallory@");
    for (mode, status, verdict, reply, would) in [
        ("monitor", Status::Continue, "accept", "-", "550 5.1.1"),
        (
            "enforce",
            Status::Reject { message: None },
            "reject",
            "550 5.1.1",
            "-",
        ),
    ] {
        let dir = process::temp_dir(&format!("srs-log-{mode}"));
        let file = dir.join("mk.toml");
        let addr = free_addr();
        let text = config(&dir, &dns, mode);
        process::write(
            &file,
            &format!("listen = \"inet:{addr}\"\nlog_format = \"json\"\n{text}"),
        );
        let daemon = Process::start(&["--config", file.to_str().unwrap()]);
        daemon.wait_for(&["started"]).await;
        let (got, _) = bounce_to(addr, &forged).await;
        match status {
            Status::Continue => assert_eq!(got, Status::Continue, "{mode}"),
            _ => assert!(matches!(got, Status::Reject { .. }), "{mode}: {got:?}"),
        }
        let line = daemon.wait_for(&["\"message\":\"recipient\""]).await;
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(
            v["log_version"],
            mailkey_milter::logging::LOG_VERSION,
            "{line}"
        );
        assert_eq!(v["queue_id"], "QUEUEID1", "{line}");
        assert_eq!(v["client"], "127.0.0.10", "{line}");
        assert_eq!(v["mail_from"], "<>", "{line}");
        assert_eq!(v["rcpt_to"], format!("<{forged}>"), "{line}");
        assert_eq!(v["stage"], "rcpt", "{line}");
        assert_eq!(
            (&v["verdict"], &v["reply"], &v["would_reject"]),
            (&verdict.into(), &reply.into(), &would.into()),
            "{line}"
        );
        assert_eq!(
            v["reasons"], "srs: invalid SRS address: SRS hash does not verify",
            "{line}"
        );
        // The report reads the log as the daemon wrote it.
        let log = dir.join("mk.log");
        process::write(&log, &(daemon.log().join("\n") + "\n"));
        let out = process::mailkey(&["report", log.to_str().unwrap(), "--json"]).await;
        let summary: Value = serde_json::from_str(&process::succeeded("report", out)).unwrap();
        assert_eq!(summary["invalid_srs_recipients"], 1, "{mode}: {summary:#}");
        let text = process::stdout(&process::mailkey(&["report", log.to_str().unwrap()]).await);
        assert!(text.contains("Invalid SRS recipients: 1 "), "{text}");
    }
}
