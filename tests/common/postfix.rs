//! A private, real Postfix for one test: its own config, queue and log
//! under a temporary directory, listening on a free port on 127.0.0.1,
//! relaying every non-local message to an [`SmtpSink`]. Several can run at
//! once in one test binary. The system Postfix is not involved: each
//! instance has its own main.cf and master.cf, and /etc/postfix's are unused.
//!
//! Needs root (Postfix's master starts its daemons as the `postfix` user)
//! and the `postfix` package (tests/setup.sh installs it): a test checks
//! `require(&[Need::Root, Need::Postfix, Need::Swaks])` first.
#![allow(dead_code)]

pub use super::process::free_port;
use super::{require::Need, smtp_sink::SmtpSink};
use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// Debian's paths (tests/setup.sh installs the package).
const POSTFIX: &str = "/usr/sbin/postfix";
const POSTQUEUE: &str = "/usr/sbin/postqueue";
const POSTCONF: &str = "/usr/sbin/postconf";

/// Where the readiness probe connects from. Milters are disabled for this
/// address (`smtpd_milter_maps`), so the probe never shows up as a session
/// in the milter under test; test clients use other 127.x addresses.
const PROBE_IP: &str = "127.0.0.2";

/// How long Postfix may take to answer with its banner. It normally takes
/// 1-3 s (postfix-script checks the installation first); this is generous
/// for a loaded 2-core machine, not a speed requirement.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Postfix's STARTTLS setup.
#[derive(Clone, Debug)]
pub struct PostfixTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CAs for client certificates: Postfix hands `{cert_subject}` and
    /// `{cert_issuer}` to milters only for a client certificate it verified.
    pub ca_file: Option<PathBuf>,
    /// `smtpd_tls_ask_ccert`: ask the client for a certificate.
    pub ask_ccert: bool,
}

/// What a test wants of its Postfix. `Default` gives no milters,
/// `milter_default_action = tempfail`, no TLS, no relay or local domains.
#[derive(Clone, Debug)]
pub struct PostfixOptions {
    /// `smtpd_milters`, e.g. `"inet:127.0.0.1:PORT"`.
    pub smtpd_milters: Option<String>,
    /// `non_smtpd_milters`: for mail Postfix makes itself (see below).
    pub non_smtpd_milters: Option<String>,
    /// `milter_default_action` when the milter is unreachable or fails.
    pub milter_default_action: String,
    /// `internal_mail_filter_classes = bounce`: bounces Postfix generates
    /// go through `non_smtpd_milters`.
    pub bounce_through_milter: bool,
    pub tls: Option<PostfixTls>,
    /// Further main.cf settings; they replace generated ones of the same name.
    pub extra_main_cf: Vec<(String, String)>,
    /// Further master.cf lines (services, `-o` continuation lines).
    pub extra_master_cf: Vec<String>,
    /// Domains Postfix accepts from any client and relays to the sink.
    pub relay_domains: Vec<String>,
    /// The smtpd port; `None`: a free one. Fixed when another instance
    /// must know it before this one starts (routes between two instances).
    pub listen_port: Option<u16>,
    /// `mydestination`: any local part is accepted at RCPT time and a user
    /// that does not exist bounces afterwards, so a test gets a real DSN.
    pub local_domain: Option<String>,
}

impl Default for PostfixOptions {
    fn default() -> Self {
        PostfixOptions {
            smtpd_milters: None,
            non_smtpd_milters: None,
            milter_default_action: "tempfail".into(),
            bounce_through_milter: false,
            tls: None,
            extra_main_cf: Vec::new(),
            extra_master_cf: Vec::new(),
            relay_domains: Vec::new(),
            listen_port: None,
            local_domain: None,
        }
    }
}

/// A running private Postfix. Dropping it stops it and removes its files;
/// if the test is failing, the instance's log is printed first.
pub struct Postfix {
    dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
    /// Started: from then on a failing test gets the log printed on drop
    /// (a failed start panics with it already).
    ready: bool,
}

impl Postfix {
    /// Writes the instance's configuration and starts it in the foreground
    /// (`postfix start-fg`), returning once its SMTP port answers with a
    /// 220 banner. Panics with the Postfix log when it does not start.
    /// Blocks for a second or more: from an async test whose runtime also
    /// serves the milter, this is fine (Postfix calls no milter at start).
    pub fn start(opts: PostfixOptions, sink: &SmtpSink) -> Postfix {
        let started = Instant::now();
        require_postfix();
        reap_stale_instances();
        // The port is free when picked, but something may take it before
        // master binds it: then start afresh on another.
        for attempt in 1..=3 {
            let mut instance = Postfix::launch(&opts, sink);
            match instance.wait_for_banner() {
                Ok(()) => {
                    instance.ready = true;
                    let dir = instance.dir.display();
                    eprintln!("postfix: {dir} ready in {:.1?}", started.elapsed());
                    return instance;
                }
                Err(why) if attempt < 3 && instance.log().contains("Address already in use") => {
                    eprintln!(
                        "postfix: {why}; port {} was taken, retrying",
                        instance.addr.port()
                    );
                }
                Err(why) => panic!(
                    "private Postfix did not start: {why}\n{}",
                    instance.diagnostics()
                ),
            }
        }
        unreachable!()
    }

    /// Creates the instance's directory and configuration on a free port and
    /// runs `postfix start-fg` there.
    fn launch(opts: &PostfixOptions, sink: &SmtpSink) -> Postfix {
        let dir = instance_dir();
        // Postfix daemons (user postfix) must reach their files through it.
        for sub in ["", "etc", "queue", "data"] {
            fs::create_dir_all(dir.join(sub)).expect("create instance dir");
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        run_ok(Command::new("chown").arg("postfix").arg(dir.join("data")));
        let port = opts.listen_port.unwrap_or_else(free_port);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let cidr = format!("{PROBE_IP}/32 DISABLE\n");
        fs::write(dir.join("etc/milter_maps.cidr"), cidr).expect("write cidr");
        fs::write(dir.join("etc/main.cf"), main_cf(opts, &dir, sink)).expect("write main.cf");
        let mut master = master_cf(addr);
        for line in &opts.extra_master_cf {
            master.push_str(line);
            master.push('\n');
        }
        fs::write(dir.join("etc/master.cf"), master).expect("write master.cf");
        let out = fs::File::create(dir.join("start-fg.out")).unwrap();
        let child = Command::new(POSTFIX)
            .arg("-c")
            .arg(dir.join("etc"))
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn postfix start-fg");
        Postfix {
            dir,
            addr,
            child: Some(child),
            ready: false,
        }
    }

    /// Where the instance's smtpd listens: 127.0.0.1 and a free port.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The instance's directory: etc/ (main.cf, master.cf), queue/, data/,
    /// maillog.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instance's log so far (its `maillog_file`).
    pub fn log(&self) -> String {
        fs::read(self.dir.join("maillog"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a log line contains every one of `parts` and returns it;
    /// panics with the log after `timeout` (a behaviour wait).
    pub fn wait_for_log(&self, parts: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "no Postfix log line with {parts:?} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes main.cf settings as an admin does (`postconf -e`) and
    /// reloads (`postfix reload`); new connections and deliveries use them.
    pub fn reconfigure(&self, settings: &[(&str, String)]) {
        let etc = self.dir.join("etc");
        for (name, value) in settings {
            run_ok(
                Command::new(POSTCONF)
                    .arg("-c")
                    .arg(&etc)
                    .arg("-e")
                    .arg(format!("{name}={value}")),
            );
        }
        run_ok(Command::new(POSTFIX).arg("-c").arg(&etc).arg("reload"));
    }

    /// `postqueue -f`: attempt delivery of everything queued now, instead of
    /// after Postfix's retry back-off (minutes).
    pub fn flush(&self) {
        run_ok(
            Command::new(POSTQUEUE)
                .arg("-c")
                .arg(self.dir.join("etc"))
                .arg("-f"),
        );
    }

    /// Connects from [`PROBE_IP`] until smtpd greets with 220, the master
    /// process exits, or [`START_TIMEOUT`] passes.
    fn wait_for_banner(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_error = String::from("no attempt");
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("postfix start-fg exited with {status}"));
            }
            match probe(self.addr, self.banner_tag()) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "no 220 banner on {} within {START_TIMEOUT:?}: {last_error}",
            self.addr
        ))
    }

    fn banner_tag(&self) -> String {
        banner_tag(&self.dir)
    }

    /// The log plus what start-fg printed before logging was up.
    fn diagnostics(&self) -> String {
        let out = fs::read_to_string(self.dir.join("start-fg.out")).unwrap_or_default();
        format!(
            "--- maillog ---\n{}--- postfix start-fg output ---\n{out}",
            self.log()
        )
    }

    /// Stops master and its daemons; the foreground `postfix` exits with it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.join("etc"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Did not stop: kill master itself (killing the script would not).
        kill_master(&self.dir, "-KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.ready && std::thread::panicking() {
            eprintln!(
                "Postfix instance {} at {}:\n{}",
                self.dir.display(),
                self.addr,
                self.diagnostics()
            );
        }
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The lines of `postfix-examples/FILE` that are neither comments nor
/// blank: the tests run the shipped examples, so they cannot drift.
pub fn example_lines(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("postfix-examples")
        .join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The `name = value` settings of the main.cf example `file`, each value
/// passed through `value` (to put in the test's own addresses).
pub fn example_settings(file: &str, value: impl Fn(&str) -> String) -> Vec<(String, String)> {
    example_lines(file)
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), value(v.trim())))
        .collect()
}

/// A receiving MTA for `domain` (relayed to the sink) that offers STARTTLS
/// with `cert` (certificate and key files) and verifies client
/// certificates against `ca_file`, with `extra_main_cf`.
pub fn verifying_receiver(
    domain: &str,
    (cert_file, key_file): (String, String),
    ca_file: PathBuf,
    extra_main_cf: Vec<(String, String)>,
) -> PostfixOptions {
    PostfixOptions {
        extra_main_cf,
        relay_domains: vec![domain.into()],
        tls: Some(PostfixTls {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: Some(ca_file),
            ask_ccert: true,
        }),
        ..Default::default()
    }
}

/// The main.cf settings of the shipped examples `files`, the documented
/// milter (`inet:127.0.0.1:8895`) and re-injection port (`10027`, of
/// `main.cf.forwarding`) replaced by the test's.
pub fn example_main_cf_at(
    files: &[&str],
    milter: SocketAddr,
    reinject: Option<u16>,
) -> Vec<(String, String)> {
    files
        .iter()
        .flat_map(|file| example_settings(file, |v| substitute(v, milter, reinject)))
        .collect()
}

/// The master.cf lines of `postfix-examples/FILE`, addresses replaced.
pub fn example_master_cf_at(file: &str, milter: SocketAddr, reinject: u16) -> Vec<String> {
    example_lines(file)
        .iter()
        .map(|l| substitute(l, milter, Some(reinject)))
        .collect()
}

fn substitute(value: &str, milter: SocketAddr, reinject: Option<u16>) -> String {
    let value = value.replace("inet:127.0.0.1:8895", &format!("inet:{milter}"));
    match reinject {
        Some(port) => value.replace("10027", &port.to_string()),
        None => value,
    }
}

/// The settings that matter; the comments say why each is there.
fn main_cf(opts: &PostfixOptions, dir: &Path, sink: &SmtpSink) -> String {
    let d = dir.display();
    let mut settings: Vec<(&str, String)> = vec![
        ("compatibility_level", "3.6".into()),
        // Everything of this instance lives under its own directory.
        ("queue_directory", format!("{d}/queue")),
        ("data_directory", format!("{d}/data")),
        ("maillog_file", format!("{d}/maillog")),
        ("maillog_file_prefixes", format!("{d}")),
        // No name lookups: the only resolver here is not on loopback.
        ("myhostname", "mta.test".into()),
        // Tells the probe it reached this instance, not whatever else may
        // have grabbed the port.
        (
            "smtpd_banner",
            format!("$myhostname ESMTP Postfix {}", banner_tag(dir)),
        ),
        ("mydomain", "test".into()),
        ("smtp_dns_support_level", "disabled".into()),
        ("smtpd_peername_lookup", "no".into()),
        ("inet_interfaces", "127.0.0.1".into()),
        ("inet_protocols", "ipv4".into()),
        // Only 127.0.0.1 is "us"; test clients (127.0.0.20) are strangers
        // that may still send to the relay domains.
        ("mynetworks", "127.0.0.1/32".into()),
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks, reject_unauth_destination".into(),
        ),
        ("relay_domains", opts.relay_domains.join(" ")),
        // Every non-local message, bounces included, goes to the sink.
        ("relayhost", format!("[127.0.0.1]:{}", sink.addr().port())),
        (
            "mydestination",
            opts.local_domain.clone().unwrap_or_default(),
        ),
        // Accept any local part; unknown users bounce after queueing.
        ("local_recipient_maps", String::new()),
        ("alias_maps", String::new()),
        ("alias_database", String::new()),
        ("biff", "no".into()),
        // No postmaster notices: the sink receives only what a test sends.
        ("notify_classes", String::new()),
        // Do not slow down a test that sends several messages.
        ("in_flow_delay", "0".into()),
        ("milter_protocol", "6".into()),
        ("milter_default_action", opts.milter_default_action.clone()),
        (
            "smtpd_milter_maps",
            format!("cidr:{d}/etc/milter_maps.cidr"),
        ),
        // Postfix's defaults plus what mailkey-milter reads.
        (
            "milter_connect_macros",
            "j {daemon_name} {daemon_addr} v _ {client_addr}".into(),
        ),
        (
            "milter_helo_macros",
            "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}".into(),
        ),
        (
            "milter_mail_macros",
            "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer} \
             {tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"
                .into(),
        ),
        (
            "milter_rcpt_macros",
            "i {rcpt_addr} {rcpt_host} {rcpt_mailer}".into(),
        ),
        (
            "milter_end_of_data_macros",
            "i j {auth_authen} {daemon_name} {client_addr}".into(),
        ),
    ];
    if let Some(milters) = &opts.smtpd_milters {
        settings.push(("smtpd_milters", milters.clone()));
    }
    if let Some(milters) = &opts.non_smtpd_milters {
        settings.push(("non_smtpd_milters", milters.clone()));
    }
    if opts.bounce_through_milter {
        settings.push(("internal_mail_filter_classes", "bounce".into()));
    }
    if let Some(tls) = &opts.tls {
        settings.push(("smtpd_tls_security_level", "may".into()));
        settings.push(("smtpd_tls_cert_file", tls.cert_file.display().to_string()));
        settings.push(("smtpd_tls_key_file", tls.key_file.display().to_string()));
        settings.push((
            "smtpd_tls_ask_ccert",
            if tls.ask_ccert { "yes" } else { "no" }.into(),
        ));
        if let Some(ca) = &tls.ca_file {
            settings.push(("smtpd_tls_CAfile", ca.display().to_string()));
        }
        // "(using TLSv1.3 with cipher ...)" in Received: proof of STARTTLS.
        settings.push(("smtpd_tls_received_header", "yes".into()));
        settings.push(("smtpd_tls_loglevel", "1".into()));
    }
    for (name, value) in &opts.extra_main_cf {
        settings.retain(|(n, _)| n != name);
        settings.push((name, value.clone()));
    }
    let mut text = String::from("# Written by tests/common/postfix.rs for one test.\n");
    for (name, value) in settings {
        text.push_str(&format!("{name} = {value}\n"));
    }
    text
}

/// Only the services a relay needs, none chrooted (the instance's files are
/// not set up for a chroot), smtpd on our port instead of 25.
fn master_cf(addr: SocketAddr) -> String {
    let services = [
        (format!("{addr}"), "inet", "n", "-", "smtpd"),
        ("pickup".into(), "unix", "n", "1", "pickup"),
        ("cleanup".into(), "unix", "n", "0", "cleanup"),
        ("qmgr".into(), "unix", "n", "1", "qmgr"),
        ("tlsmgr".into(), "unix", "-", "1", "tlsmgr"),
        ("rewrite".into(), "unix", "-", "-", "trivial-rewrite"),
        ("bounce".into(), "unix", "-", "0", "bounce"),
        ("defer".into(), "unix", "-", "0", "bounce"),
        ("trace".into(), "unix", "-", "0", "bounce"),
        ("verify".into(), "unix", "-", "1", "verify"),
        ("flush".into(), "unix", "n", "0", "flush"),
        ("proxymap".into(), "unix", "-", "-", "proxymap"),
        ("proxywrite".into(), "unix", "-", "1", "proxymap"),
        ("smtp".into(), "unix", "-", "-", "smtp"),
        ("relay".into(), "unix", "-", "-", "smtp"),
        ("showq".into(), "unix", "n", "-", "showq"),
        ("error".into(), "unix", "-", "-", "error"),
        ("retry".into(), "unix", "-", "-", "error"),
        ("discard".into(), "unix", "-", "-", "discard"),
        ("local".into(), "unix", "-", "-", "local"),
        ("anvil".into(), "unix", "-", "1", "anvil"),
        ("scache".into(), "unix", "-", "1", "scache"),
        // Writes maillog_file.
        ("postlog".into(), "unix-dgram", "n", "1", "postlogd"),
    ];
    let mut text = String::from("# service type private unpriv chroot wakeup maxproc command\n");
    for (name, kind, private, maxproc, command) in services {
        // pickup and qmgr wake up periodically, as in Postfix's own master.cf.
        let wakeup = match command {
            "pickup" => "60",
            "qmgr" => "300",
            _ => "-",
        };
        let unpriv = if command == "local" { "n" } else { "-" };
        text.push_str(&format!(
            "{name} {kind} {private} {unpriv} n {wakeup} {maxproc} {command}\n"
        ));
    }
    text
}

/// The instance's mark in its SMTP banner: its directory's name.
fn banner_tag(dir: &Path) -> String {
    format!(
        "({})",
        dir.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Reads the banner from `addr`, connecting from [`PROBE_IP`], and says QUIT.
/// The banner must carry `tag`.
fn probe(addr: SocketAddr, tag: String) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    // std cannot choose a connection's source address, tokio can. On a
    // thread of its own, so this works from inside a test's runtime too.
    let attempt = move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
            socket
                .bind(format!("{PROBE_IP}:0").parse().unwrap())
                .map_err(|e| format!("bind {PROBE_IP}: {e}"))?;
            let exchange = async {
                let mut stream = tokio::io::BufReader::new(socket.connect(addr).await?);
                let mut banner = String::new();
                stream.read_line(&mut banner).await?;
                let _ = stream.write_all(b"QUIT\r\n").await;
                Ok::<_, std::io::Error>(banner)
            };
            match tokio::time::timeout(Duration::from_secs(10), exchange).await {
                Ok(Ok(banner)) if banner.starts_with("220 ") && banner.contains(&tag) => Ok(()),
                Ok(Ok(banner)) => Err(format!("unexpected banner {banner:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no banner within 10 s".into()),
            }
        })
    };
    std::thread::spawn(attempt)
        .join()
        .unwrap_or_else(|_| Err("probe thread panicked".into()))
}

/// Panics, saying to run tests/setup.sh, unless Postfix is installed and
/// we are root: a test checks `require(&[Need::Root, Need::Postfix, ...])`
/// first, so this only catches one that forgot.
fn require_postfix() {
    for need in [Need::Postfix, Need::Root] {
        if let Some(why) = need.missing() {
            panic!("a private Postfix instance needs root and Postfix: {why} (see tests/common/require.rs)");
        }
    }
}

/// Runs a command, panicking with its output if it fails.
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Name prefix of instance directories in the temp dir; the pid after it
/// tells whether the owning test process is still alive.
const DIR_PREFIX: &str = "mailkey-postfix-";

/// A fresh directory for one instance.
fn instance_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Sends `signal` to the instance's master process, if one is running.
fn kill_master(dir: &Path, signal: &str) {
    let pid = fs::read_to_string(dir.join("queue/pid/master.pid")).unwrap_or_default();
    let pid = pid.trim();
    // The pid file may be stale and the pid reused: only ever kill a master.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !pid.is_empty() && comm.trim() == "master" {
        let _ = Command::new("kill").arg(signal).arg(pid).status();
    }
}

/// Stops and removes instances left by test processes that were killed
/// before their `Drop` ran (a leftover master would run forever). Once per
/// test process.
fn reap_stale_instances() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(DIR_PREFIX)
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            kill_master(&entry.path(), "-TERM");
            let _ = fs::remove_dir_all(entry.path());
        }
    });
}
