//! Large messages (issue #21, item 9): past 32 KiB a message waits for the
//! end of message in an unlinked file in `[limits] spool_dir` and is
//! verified (or signed) from a read-only map of it, so the daemon's heap
//! does not grow with the message. Through the real milter socket, with a
//! real DNS server on 127.0.0.1: a signed 20 MB message passes and a
//! tampered one is refused while the daemon's anonymous memory stays flat;
//! a spool that cannot be created or written defers the message with
//! `451 4.3.0` and a log line naming the directory.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns, greet, large_signed_message, message, process, send, Daemon, LogCapture, Outcome,
    TestKey, Transaction, VERIFIED_TLS,
};
use indymilter_test::{MacroStage, ProtoOpts, Status, TestConnection};
use std::{path::Path, time::Duration};

const FROM: &str = "alice@sender.test";

fn zone(key: &TestKey) -> common::dns::Zone {
    common::sender_zone().txt("mailkey.sender.test", &key.record)
}

/// The test config with `[limits] spool_dir` and `extra` top-level keys.
fn config(dns: &TestDns, spool_dir: &Path, extra: &str) -> String {
    let limits = format!("[limits]\nspool_dir = \"{}\"", spool_dir.display());
    common::config(dns, &format!("{extra}\n{limits}"))
}

/// `RssAnon` of process `pid`, in bytes: its heap and stacks, not the page
/// cache of files it maps.
fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("RssAnon");
    kib * 1024
}

/// Sends `message` from `client` to the daemon at `addr` without the
/// no-reply option for body chunks, so that each chunk is answered: once
/// the body is sent, the daemon has taken all of it in. Returns the status
/// at end of message, the reply text, and how much `pid`'s anonymous
/// memory grew while the body came in.
async fn send_measured(
    addr: std::net::SocketAddr,
    pid: u32,
    message: &str,
) -> (Status, String, u64) {
    let conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_opts(ProtoOpts::all().difference(ProtoOpts::NOREPLY_BODY))
        .read_timeout(Duration::from_secs(120))
        .open_tcp(addr)
        .await
        .expect("open");
    let mut conn = greet(conn, "127.0.0.10".parse().unwrap(), "mail.sender.test").await;
    let mut macros = vec![("i", "SPOOL20MB")];
    macros.extend(VERIFIED_TLS);
    conn.macros(MacroStage::Mail, macros).await.unwrap();
    conn.mail([format!("<{FROM}>")]).await.unwrap();
    conn.rcpt(["<bob@receiver.test>"]).await.unwrap();
    let (head, body) = message.split_once("\r\n\r\n").unwrap();
    for (name, value) in common::header_fields(head) {
        conn.header(name, value).await.unwrap();
    }
    if !conn.negotiated_opts().contains(ProtoOpts::NO_EOH) {
        conn.eoh().await.unwrap();
    }
    let before = rss_anon(pid);
    let status = conn.body(body.as_bytes().to_vec()).await.unwrap();
    assert_eq!(status, Status::Continue);
    let grown = rss_anon(pid).saturating_sub(before);
    let (_, status) = conn.eom().await.unwrap();
    let reply = match &status {
        Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
            m.to_string_lossy().into_owned()
        }
        _ => String::new(),
    };
    let _ = conn.close().await;
    (status, reply, grown)
}

/// The message was deferred with `451 4.3.0`, and an error line of its
/// transaction says `why` … `detail`.
fn assert_deferred(outcome: &Outcome, why: &str, detail: &str) {
    outcome.assert_tempfailed("451 4.3.0", &[]);
    LogCapture::global().line_with(&["ERROR", &format!("QUEUEID1: {why}"), detail]);
}

#[tokio::test]
async fn a_20_mb_message_is_verified_from_the_spool_without_growing_the_heap() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = process::temp_dir("spool-20mb");
    let addr = process::free_addr();
    let file = dir.join("milter.toml");
    let text = format!("listen = \"inet:{addr}\"\n{}", config(&dns, &dir, ""));
    process::write(&file, &text);
    // The real binary, alone in its process: its memory is the daemon's.
    let daemon = process::Process::start(&["--config", &file.to_string_lossy()]);
    daemon.wait_for(&["started"]).await;
    let pid = daemon.child.id().expect("running");

    let signed = large_signed_message(&key, FROM, 20_000_000);
    let (status, reply, grown) = send_measured(addr, pid, &signed).await;
    assert_eq!(status, Status::Accept, "{reply}");
    // Without the spool the 20 MB are heap (RssAnon grows by at least
    // that); with it, only the 32 KiB before spooling and the buffers of
    // one body chunk at a time.
    assert!(grown < 4 << 20, "RssAnon grew by {grown} bytes for 20 MB");
    let line = daemon.wait_for(&["SPOOL20MB", "mailkey=pass"]).await;
    assert!(line.contains("verdict=accept"), "{line}");

    // One byte changed in the middle of the body: refused.
    let middle = signed.len() / 2;
    let tampered = format!("{}X{}", &signed[..middle], &signed[middle + 1..]);
    assert_ne!(tampered, signed);
    let (status, reply, grown) = send_measured(addr, pid, &tampered).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");
    assert!(reply.starts_with("550"), "{reply}");
    assert!(reply.contains("5.7.20"), "{reply}");
    assert!(grown < 4 << 20, "RssAnon grew by {grown} bytes for 20 MB");
}

#[tokio::test]
async fn a_spool_dir_that_vanished_defers_large_mail_and_says_why() {
    LogCapture::global(); // installed before the daemon logs
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = process::temp_dir("spool-vanished");
    let daemon = Daemon::start(&config(&dns, &dir, "")).await;
    std::fs::remove_dir(&*dir).expect("remove the spool dir");
    // Small mail stays in memory: unaffected.
    let small = key.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(daemon.addr, &Transaction::new("127.0.0.11", FROM, small)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    // Large mail cannot be kept, so it is not checked: deferred, never
    // accepted unchecked.
    let large = large_signed_message(&key, FROM, 200_000);
    let outcome = send(daemon.addr, &Transaction::new("127.0.0.11", FROM, large)).await;
    assert_deferred(
        &outcome,
        "failed to check message: cannot create a spool file in",
        &format!(
            "{} (limits.spool_dir): No such file or directory",
            dir.display()
        ),
    );
}

#[tokio::test]
async fn a_full_spool_file_system_defers_large_mail_and_says_why() {
    // A full file system of its own: a small tmpfs, which root mounts.
    if !common::require(&[common::Need::Root]) {
        return;
    }
    LogCapture::global(); // installed before the daemon logs
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = process::temp_dir("spool-full");
    let _tmpfs = Tmpfs::mount(&dir, "1m");
    let daemon = Daemon::start(&config(&dns, &dir, "")).await;
    let large = large_signed_message(&key, FROM, 3_000_000);
    let t = Transaction::new("127.0.0.12", FROM, large.clone());
    let outcome = send(daemon.addr, &t).await;
    assert_deferred(
        &outcome,
        "failed to check message: cannot write the spool file in",
        &format!(
            "{} (limits.spool_dir): No space left on device",
            dir.display()
        ),
    );
    // Monitor mode never stops mail: the same message goes on.
    let monitor = config(&dns, &dir, "").replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&monitor).await;
    assert_eq!(send(daemon.addr, &t).await.status, Status::Accept);
}

#[tokio::test]
async fn trusted_mail_is_signed_from_the_spool_or_deferred() {
    LogCapture::global(); // installed before the daemon logs
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = process::temp_dir("spool-signing");
    let key_file = dir.join("sender.test.pem");
    key.write_pem(&key_file);
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).unwrap();
    let signing = format!(
        "[[signing.domains]]\ndomain = \"sender.test\"\nkey_file = \"{}\"",
        key_file.display()
    );
    let daemon = Daemon::start(&config(&dns, &spool, &signing)).await;
    let large = large_signed_message(&key, FROM, 1_000_000);
    // Our own signature replaces the test's: strip it.
    let (_, unsigned) = large.split_once("\r\nFrom:").unwrap();
    let unsigned = format!("From:{unsigned}");
    let t = Transaction::new("127.0.0.1", FROM, unsigned.clone());
    let outcome = send(daemon.addr, &t).await;
    assert!(outcome.is_accept(), "{:?}", outcome.status);
    let value = outcome
        .actions
        .actions
        .iter()
        .find_map(|a| match a {
            indymilter_test::EomAction::InsertHeader { name, value, .. }
                if name.to_bytes() == b"DKIM-Signature" =>
            {
                Some(value.to_string_lossy().into_owned())
            }
            _ => None,
        })
        .expect("signed");
    // The signature covers the 1 MB body: our receiving side verifies it.
    let signed = format!(
        "DKIM-Signature:{}\r\n{unsigned}",
        value.replace('\n', "\r\n")
    );
    let outcome = send(daemon.addr, &Transaction::new("127.0.0.13", FROM, signed)).await;
    let ar = outcome.auth_results().expect("A-R");
    assert!(ar.contains("mailkey=pass"), "{ar}");

    // Without a spool the message cannot be signed: deferred, not sent
    // unsigned.
    std::fs::remove_dir(&spool).unwrap();
    let outcome = send(daemon.addr, &t).await;
    assert_deferred(
        &outcome,
        "failed to sign for sender.test: cannot create a spool file in",
        &spool.display().to_string(),
    );
}

#[tokio::test]
async fn check_config_start_and_reload_refuse_a_spool_dir_that_does_not_work() {
    let logs = LogCapture::global();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = process::temp_dir("spool-check-config");
    let file = dir.join("milter.toml");
    let missing = dir.join("missing");
    process::write(&file, &config(&dns, &missing, ""));
    let out = process::mailkey(&["check-config", &file.to_string_lossy()]).await;
    let stderr = process::stderr(&out);
    assert!(!out.status.success(), "{stderr}");
    let said = format!(
        "cannot create a spool file in {} (limits.spool_dir): No such file or directory",
        missing.display()
    );
    assert!(stderr.contains(&said), "{stderr}");
    let daemon = process::Process::start(&["--config", &file.to_string_lossy()]);
    daemon.wait_for(&[&said]).await;

    // A reload to it is refused, and the running spool goes on serving.
    let good = dir.join("good");
    std::fs::create_dir(&good).unwrap();
    let daemon = Daemon::start(&config(&dns, &good, "")).await;
    daemon.reload(&config(&dns, &missing, ""));
    logs.line_with(&["reload refused, keeping the running configuration", &said]);
    let large = large_signed_message(&key, FROM, 200_000);
    let outcome = send(daemon.addr, &Transaction::new("127.0.0.14", FROM, large)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
}

/// A tmpfs of `size` mounted on `dir` (tests run as root), unmounted when
/// dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs on {} failed: the tests run as root",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
