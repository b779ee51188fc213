//! A private, real Sendmail for end-to-end tests: the Debian packages
//! unpacked (they conflict with Postfix as installed packages; tests/setup.sh
//! puts them under /opt/mailkey-tests/sendmail), a `.cf` built from an `.mc`
//! that uses the milter lines of `sendmail-examples/sendmail.mc` verbatim,
//! listening on a loopback port and relaying to the test's SMTP sink.
//!
//! Sendmail runs in its own UTS and mount namespaces: there its host name is
//! the qualified `mta.test` (else it sleeps a minute trying to qualify the
//! machine's name) and its resolv.conf points at 127.0.0.1, so that no test
//! lookup ever leaves the machine.

use super::smtp_sink::SmtpSink;
use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const ROOT: &str = "/opt/mailkey-tests/sendmail";

pub struct Sendmail {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

/// The lines of the shipped example that attach the milter, with its
/// documented address replaced by `milter` (`inet:PORT@127.0.0.1`).
/// TLS files for Sendmail: the CA its clients' certificates must chain to,
/// and its own certificate and key.
pub struct SendmailTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// The example's TLS lines, pointing at copies of `tls`'s files in `dir`
/// (Sendmail refuses key files that others can read or that live below a
/// world-writable directory).
fn example_tls_lines(dir: &Path, tls: &SendmailTls<'_>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sendmail-examples/sendmail.mc");
    let text = std::fs::read_to_string(&path).expect("sendmail-examples/sendmail.mc");
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let copy = |from: &Path, name: &str| {
        let to = tls_dir.join(name);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        to.display().to_string()
    };
    let (ca, cert, key) = (
        copy(tls.ca, "ca.pem"),
        copy(tls.cert, "server.pem"),
        copy(tls.key, "server.key"),
    );
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let value = if l.starts_with("define(`confCACERT_PATH'") {
                tls_dir.display().to_string()
            } else if l.starts_with("define(`confCACERT'") {
                ca.clone()
            } else if l.starts_with("define(`confSERVER_CERT'") {
                cert.clone()
            } else if l.starts_with("define(`confSERVER_KEY'") {
                key.clone()
            } else {
                return None;
            };
            let name = l.split('\'').next().unwrap_or_default();
            Some(format!("{name}', `{value}')"))
        })
        .collect();
    assert_eq!(lines.len(), 4, "{path:?} lost its TLS lines");
    lines.join("dnl\n") + "dnl\n"
}

/// The example's `confERROR_MESSAGE` line, naming `file` instead.
fn example_error_message_line(file: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sendmail-examples/sendmail.mc");
    let text = std::fs::read_to_string(&path).expect("sendmail-examples/sendmail.mc");
    let line = text
        .lines()
        .find(|l| l.starts_with("define(`confERROR_MESSAGE'"))
        .unwrap_or_else(|| panic!("{path:?} has no confERROR_MESSAGE line"));
    let (name, _) = line.split_once(", `").expect("define(`X', `Y')");
    format!("{name}, `{}')dnl\n", file.display())
}

fn example_milter_lines(milter: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sendmail-examples/sendmail.mc");
    let text = std::fs::read_to_string(&path).expect("sendmail-examples/sendmail.mc");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.starts_with("INPUT_MAIL_FILTER(") || l.starts_with("define(`confMILTER_MACROS_")
        })
        .map(|l| l.replace("inet:8895@127.0.0.1", milter))
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("INPUT_MAIL_FILTER(")),
        "{path:?} attaches no milter"
    );
    lines.join("dnl\n") + "dnl\n"
}

impl Sendmail {
    /// Starts Sendmail with the milter at `milter` (`inet:PORT@127.0.0.1`),
    /// relaying mail for receiver.test to `sink`.
    pub fn start(milter: &str, sink: &SmtpSink) -> Sendmail {
        Self::start_with(milter, sink, None)
    }

    /// Like [`start`](Self::start), offering STARTTLS with `tls` (and asking
    /// clients for a certificate, which Sendmail verifies into `{verify}`).
    pub fn start_with(milter: &str, sink: &SmtpSink, tls: Option<SendmailTls<'_>>) -> Sendmail {
        Self::launch(milter, sink, tls, None)
    }

    /// Like [`start`](Self::start), with the example's `confERROR_MESSAGE`
    /// naming `file`: its text goes into the bounces Sendmail writes.
    pub fn start_with_error_message(milter: &str, sink: &SmtpSink, file: &Path) -> Sendmail {
        Self::launch(milter, sink, None, Some(file))
    }

    fn launch(
        milter: &str,
        sink: &SmtpSink,
        tls: Option<SendmailTls<'_>>,
        error_message: Option<&Path>,
    ) -> Sendmail {
        let binary = Path::new(ROOT).join("usr/libexec/sendmail/sendmail");
        assert!(
            binary.exists(),
            "Sendmail is not unpacked at {ROOT}: run tests/setup.sh"
        );
        let port = super::process::free_port();
        let dir = Path::new(ROOT)
            .with_file_name("run")
            .join(format!("sendmail-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        let p = |name: &str| dir.join(name).display().to_string();
        std::fs::write(dir.join("aliases"), "postmaster: root\n").unwrap();
        std::fs::write(dir.join("service.switch"), "hosts files\naliases files\n").unwrap();
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let sink_port = sink.addr().port();
        let mc = format!(
            "divert(0)dnl\nVERSIONID(`mailkey-milter test')dnl\nOSTYPE(`linux')dnl\n\
             define(`confDOMAIN_NAME', `mta.test')dnl\n\
             define(`QUEUE_DIR', `{queue}')dnl\ndefine(`confPID_FILE', `{pid}')dnl\n\
             define(`STATUS_FILE', `{stats}')dnl\ndefine(`ALIAS_FILE', `{aliases}')dnl\n\
             define(`confSERVICE_SWITCH_FILE', `{switch}')dnl\n\
             define(`confDONT_PROBE_INTERFACES', `True')dnl\n\
             define(`SMART_HOST', `[127.0.0.1]')dnl\n\
             define(`RELAY_MAILER_ARGS', `TCP $h {sink_port}')dnl\n\
             define(`ESMTP_MAILER_ARGS', `TCP $h {sink_port}')dnl\n\
             define(`SMTP_MAILER_ARGS', `TCP $h {sink_port}')dnl\n\
             FEATURE(`accept_unresolvable_domains')dnl\nFEATURE(`nocanonify')dnl\n\
             RELAY_DOMAIN(`receiver.test')dnl\n\
             DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl\n{milter_lines}\
             MAILER(`smtp')dnl\n",
            queue = p("queue"),
            pid = p("sendmail.pid"),
            stats = p("statistics"),
            aliases = p("aliases"),
            switch = p("service.switch"),
            milter_lines = example_milter_lines(milter)
                + &tls
                    .as_ref()
                    .map_or(String::new(), |t| example_tls_lines(&dir, t))
                + &error_message.map_or(String::new(), |f| {
                    // Sendmail reads the file only below a safe directory
                    // path (not /tmp): a copy of its own.
                    let copy = dir.join("error-header.txt");
                    std::fs::copy(f, &copy).unwrap();
                    example_error_message_line(&copy)
                }),
        );
        std::fs::write(dir.join("test.mc"), mc).unwrap();
        let cf_dir = format!("{ROOT}/usr/share/sendmail/cf");
        let cf = Command::new("m4")
            .arg(format!("-D_CF_DIR_={cf_dir}/"))
            .arg(format!("{cf_dir}/m4/cf.m4"))
            .arg(dir.join("test.mc"))
            .output()
            .expect("m4 (tests/setup.sh installs it)");
        assert!(
            cf.status.success(),
            "m4: {}",
            String::from_utf8_lossy(&cf.stderr)
        );
        std::fs::write(dir.join("test.cf"), cf.stdout).unwrap();
        let cf_path = p("test.cf");
        // Build the alias database, then run the daemon in the foreground.
        let script = format!(
            "mount --bind {resolv} /etc/resolv.conf && hostname mta.test && \
             {bin} -C {cf_path} -bi && exec {bin} -C {cf_path} -bD",
            resolv = p("resolv.conf"),
            bin = binary.display(),
        );
        let out = std::fs::File::create(dir.join("sendmail.out")).unwrap();
        let child = Command::new("unshare")
            .args(["--mount", "--uts", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("unshare (util-linux)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            let log = std::fs::read_to_string(dir.join("sendmail.out")).unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Sendmail did not start on {addr}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sendmail { child, dir, addr }
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Sendmail {
    fn drop(&mut self) {
        // The daemon is sh's exec'd child, so its pid is the child's pid.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
