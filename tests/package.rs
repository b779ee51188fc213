//! The Debian package (`cargo deb`, which tests/run.sh runs first) installs
//! with dpkg, and the installed binary runs from its installed path as the
//! unprivileged user the package creates, with the installed configuration.
//!
//! Needs root and dpkg; fails, never skips, when the package was not built.

mod common;

use common::process::free_addr;
use indymilter_test::TestConnection;
use std::{path::Path, process::Command, time::Duration};

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn package_installs_and_the_installed_daemon_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let deb = std::fs::read_dir(&dir)
        .unwrap_or_else(|_| {
            panic!("no {dir:?}: build the package with `cargo deb` (tests/run.sh does)")
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("a .deb in target/debian");
    run("dpkg", &["-i", deb.to_str().unwrap()]);

    assert!(Path::new("/usr/lib/systemd/system/mailkey-milter.service").exists());
    let passwd = run("getent", &["passwd", "mailkey-milter"]);
    let ids: Vec<u32> = passwd
        .split(':')
        .skip(2)
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let man = run("man", &["-w", "mailkey-milter"]);
    assert!(man.contains("man8/mailkey-milter.8"), "{man}");
    let effective = run(
        "/usr/sbin/mailkey-milter",
        &["check-config", "/etc/mailkey-milter.toml"],
    );
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
    run("dpkg", &["--purge", "mailkey-milter"]);
    assert!(!Path::new("/usr/sbin/mailkey-milter").exists());
}
