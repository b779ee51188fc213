//! The listener survives running out of file descriptors (EMFILE): a flood
//! of connections must not end the daemon. A test binary of its own, since
//! it exhausts the descriptors of its whole process.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dns::TestDns, message, send, Daemon, Transaction};
use indymilter_test::Status;
use std::{fs::File, process::Command, time::Duration};

#[tokio::test]
async fn accept_after_emfile_keeps_serving() {
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    // A low limit makes exhausting it cheap (util-linux's prlimit).
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit failed");

    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break, // EMFILE
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(hoard.len() < 100_000, "no EMFILE");
    }
    // One descriptor for a client; the daemon has none left to accept it.
    hoard.pop();
    let _client = std::net::TcpStream::connect(daemon.addr).expect("connect");
    // Let the daemon's accept fail (and retry) a few times.
    tokio::time::sleep(Duration::from_millis(350)).await;
    drop(hoard);

    // Without the retry the listener is gone: connecting is refused.
    let outcome = send(
        daemon.addr,
        &Transaction::new(
            "127.0.0.10",
            "alice@sender.test",
            message("alice@sender.test"),
        ),
    )
    .await;
    assert_eq!(outcome.status, Status::Accept);
    assert!(outcome.auth_results().is_some(), "the message was checked");
}
