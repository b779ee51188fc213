//! The Debian package (`cargo deb`, which tests/run.sh runs first) installs
//! with dpkg, and the installed binary runs from its installed path as the
//! unprivileged user the package creates, with the installed configuration.
//!
//! Needs root, dpkg and the package built (`cargo deb`): skipped with a
//! note without them, failed under `CI=true`. It installs the package on
//! the machine it runs on (and purges it again).

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    process::{self, free_addr},
    require,
    require::deb_package,
    Need,
};
use indymilter_test::TestConnection;
use std::{path::Path, time::Duration};

/// Runs `cmd`; its stdout, or a panic with its output when it fails.
async fn run(cmd: &str, args: &[&str]) -> String {
    process::succeeded(
        &format!("{cmd} {args:?}"),
        process::run(cmd, args, b"").await,
    )
}

#[tokio::test]
async fn package_installs_and_the_installed_daemon_runs() {
    if !require(&[Need::Root, Need::DebianPackage, Need::Man]) {
        return;
    }
    let deb = deb_package().expect("a .deb in target/debian");
    run("dpkg", &["-i", deb.to_str().unwrap()]).await;

    assert!(Path::new("/usr/lib/systemd/system/mailkey-milter.service").exists());
    let passwd = run("getent", &["passwd", "mailkey-milter"]).await;
    let ids: Vec<u32> = passwd
        .split(':')
        .skip(2)
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let man = run("man", &["-w", "mailkey-milter"]).await;
    assert!(man.contains("man8/mailkey-milter.8"), "{man}");
    let effective = run(
        "/usr/sbin/mailkey-milter",
        &["check-config", "/etc/mailkey-milter.toml"],
    )
    .await;
    assert!(effective.contains("mode = \"monitor\""), "{effective}");

    // The installed binary, as the package's user, on a test port.
    let addr = free_addr();
    let listen = format!("inet:{addr}");
    let mut daemon = tokio::process::Command::new("/usr/sbin/mailkey-milter")
        .args(["--config", "/etc/mailkey-milter.toml", "--listen", &listen])
        .uid(ids[0])
        .gid(ids[1])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the installed daemon");
    let mut conn = None;
    for _ in 0..200 {
        if let Ok(c) = TestConnection::open(addr).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.expect("the installed daemon negotiates the milter protocol")
        .close()
        .await
        .unwrap();
    let _ = daemon.kill().await;
    run("dpkg", &["--purge", "mailkey-milter"]).await;
    assert!(!Path::new("/usr/sbin/mailkey-milter").exists());
}
