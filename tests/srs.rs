//! SRS (#15) through the real milter socket: forwarded mail re-injected by
//! the MTA gets an SRS sender, bounces to a valid SRS address go back to
//! the original sender, forged or expired ones are refused at RCPT.

mod common;

use common::{dns::TestDns, message, open, process, send, Daemon, Transaction};
use indymilter_test::{EomAction, MacroStage, ProtoOpts, Status};
use mailkey_milter::srs::Srs;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRETS: &str = "# first signs\nnew-secret\nold-secret\n";

async fn daemon(dir: &std::path::Path) -> (TestDns, Daemon) {
    let secret_file = dir.join("srs.secrets");
    process::write(&secret_file, SECRETS);
    let dns = TestDns::start(common::sender_zone()).await;
    let extra = format!(
        "[srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    );
    // Monitor mode: the checks' verdict is not what these tests are about.
    let config = common::config(&dns, &extra).replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
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
    let (_dns, d) = daemon(&dir).await;
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
    let (_dns, d) = daemon(&dir).await;
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
async fn bounce_to(d: &Daemon, rcpt: &str) -> (Status, Vec<EomAction>) {
    let mut conn = open(d.addr, "127.0.0.10".parse().unwrap(), "mail.sender.test").await;
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
    let (_dns, d) = daemon(&dir).await;
    let srs = old_scheme().forward("alice@sender.test", now()).unwrap();
    let (status, actions) = bounce_to(&d, &srs).await;
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
    let (_dns, d) = daemon(&dir).await;
    let valid = old_scheme().forward("alice@sender.test", now()).unwrap();
    let forged = valid.replace("=alice@", "=mallory@");
    assert_invalid(&bounce_to(&d, &forged).await.0, "hash does not verify");
    let stranger = Srs::new("fwd.test", vec![b"not ours".to_vec()], 21);
    let foreign = stranger.forward("alice@sender.test", now()).unwrap();
    assert_invalid(&bounce_to(&d, &foreign).await.0, "hash does not verify");
    let old = old_scheme()
        .forward("alice@sender.test", now() - 30 * 86_400)
        .unwrap();
    assert_invalid(&bounce_to(&d, &old).await.0, "expired");
    // Not an SRS address at all: left to the MTA.
    assert_eq!(
        bounce_to(&d, "postmaster@fwd.test").await.0,
        Status::Continue
    );
}
