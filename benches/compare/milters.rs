//! The two milters under test, each a real process on a unix socket:
//! our release binary and Debian's OpenDKIM in verify mode.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::process::{Child, Command};

/// A milter process; killed when dropped.
pub struct Milter {
    pub socket: PathBuf,
    /// What its Authentication-Results says for a good signature.
    pub pass_marker: &'static str,
    child: Child,
}

impl Milter {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("milter is running")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// One published key: the domain and the DKIM record (`v=DKIM1; k=…; p=…`).
pub struct PublishedKey {
    pub domain: String,
    pub record: String,
}

/// Our daemon with all four checks on: mailkey and SPF against the test
/// DNS server at `dns`, MX there too, the certificate check satisfied by
/// the verified-certificate macros the load generator sends.
pub async fn start_ours(dir: &Path, dns: std::net::SocketAddr) -> Milter {
    let socket = dir.join("mailkey.sock");
    let config = dir.join("mailkey-milter.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"unix:{}\"\nmode = \"enforce\"\nauthserv_id = \"mx.receiver.test\"\n\
             trusted_networks = [\"127.0.0.1/32\"]\nsocket_mode = \"0666\"\n\
             [dns]\nnameservers = [\"{dns}\"]\ntimeout_ms = 2000\n",
            socket.display()
        ),
    )
    .expect("write config");
    // One log line per message, as in production; kept out of the way.
    let log = std::fs::File::create(dir.join("mailkey-milter.log")).expect("log file");
    let child = Command::new(crate::common::process::BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start mailkey-milter");
    wait_for_socket(&socket).await;
    Milter {
        socket,
        pass_marker: "mailkey=pass",
        child,
    }
}

/// OpenDKIM, verify mode only, its keys from a file (`TestDNSData`), so
/// it sends no DNS query at all.
pub async fn start_opendkim(dir: &Path, keys: &[PublishedKey]) -> Milter {
    let socket = dir.join("opendkim.sock");
    let data = dir.join("opendkim-keys");
    // A flat data set: name, whitespace, TXT value (spaces dropped: the
    // value is everything after the first whitespace, but better safe).
    let lines: String = keys
        .iter()
        .map(|k| {
            format!(
                "mailkey._domainkey.{} {}\n",
                k.domain,
                k.record.replace(' ', "")
            )
        })
        .collect();
    std::fs::write(&data, lines).expect("write key data");
    let config = dir.join("opendkim.conf");
    std::fs::write(
        &config,
        format!(
            "Mode v\nSocket local:{}\nUMask 000\nTestDNSData file:{}\n\
             AuthservID mx.receiver.test\nSyslog no\nBackground no\n\
             PidFile {}\n",
            socket.display(),
            data.display(),
            dir.join("opendkim.pid").display()
        ),
    )
    .expect("write opendkim.conf");
    let child = Command::new("opendkim")
        .arg("-f")
        .arg("-x")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start opendkim (run bench/setup.sh)");
    wait_for_socket(&socket).await;
    Milter {
        socket,
        pass_marker: "dkim=pass",
        child,
    }
}

async fn wait_for_socket(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not appear within 10 s", path.display());
}

/// The first line of `opendkim -V`.
pub fn opendkim_version() -> String {
    std::process::Command::new("opendkim")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "OpenDKIM (version unknown)".into())
}
