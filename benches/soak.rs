//! Soak: the real `mailkey-milter` binary under sustained hostile load.
//! Many MTA connections at once over a unix socket push a mix of good,
//! bad and hostile transactions (huge headers, many signatures, garbage,
//! aborted transactions, clients without TLS macros that make the daemon
//! probe them), while the daemon's resident memory is sampled every second
//! from /proc/PID/status. Keys, SPF and MX come from the test DNS server on
//! 127.0.0.1; every client address is on 127.0.0.0/8.
//!
//! `bash bench/soak.sh [--messages N] [--connections C]` (defaults
//! 1,000,000 and 1,000) prints msg/s, the outcome counts, the largest RSS
//! and the largest `RssAnon` (anonymous memory: the heap, not the page
//! cache of mapped files).
//!
//! `bash bench/soak.sh --burst [--connections C] [--size BYTES]` (defaults
//! 100 and 50,000,000): C connections each send one signed message of
//! BYTES at once and wait until every body is in, so that the daemon holds
//! all of them, then end them together; memory is read at that moment and
//! sampled every 100 ms: what a burst of large mail costs (SECURITY.md
//! "Soak").
//!
//! The daemon runs with `MALLOC_MMAP_THRESHOLD_=65536`, as the systemd unit
//! starts it, unless the caller's environment sets it. Under `cargo test`
//! the soak runs 48 messages on 12 connections and the burst 4 messages of
//! 1 MB, and both assert that every transaction got its answer and the
//! daemon survived.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{dns::TestDns, message, process, sender_zone, TestKey, VERIFIED_TLS};
use indymilter_test::{MacroStage, ProtoOpts, SocketInfo, Status, TestConnection};
use std::{
    ffi::CString,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

/// One transaction as the MTA passes it: header fields and body.
struct Msg {
    fields: Vec<(CString, CString)>,
    body: Vec<u8>,
    /// Send no TLS macros, so that the daemon probes the client.
    probe: bool,
    /// Stop after the headers and abort (client gone, RSET).
    abort: bool,
}

const MIX: usize = 12;

#[derive(Default)]
struct Counts {
    accept: AtomicU64,
    reject: AtomicU64,
    tempfail: AtomicU64,
    aborted: AtomicU64,
    /// Protocol errors: a dropped connection or a broken reply.
    errors: AtomicU64,
    /// The slowest transaction of each kind in the mix, in ms.
    slowest: [AtomicU64; MIX],
}

/// What the command line asks for.
struct Args {
    full: bool,
    burst: bool,
    messages: Option<usize>,
    connections: Option<usize>,
    size: Option<usize>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        full: false,
        burst: false,
        messages: None,
        connections: None,
        size: None,
    };
    while let Some(a) = args.next() {
        let mut number = |what: &str| -> Option<usize> {
            let n = args
                .next()
                .and_then(|v| v.replace(['_', ','], "").parse().ok());
            Some(n.unwrap_or_else(|| panic!("{what} needs a number")))
        };
        match a.as_str() {
            "--bench" => parsed.full = true,
            "--burst" => parsed.burst = true,
            "--messages" => parsed.messages = number("--messages"),
            "--connections" => parsed.connections = number("--connections"),
            "--size" => parsed.size = number("--size"),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let full = parsed.full;
    if parsed.burst || !full {
        let connections = parsed.connections.unwrap_or(if full { 100 } else { 4 });
        let size = parsed
            .size
            .unwrap_or(if full { 50_000_000 } else { 1_000_000 });
        runtime.block_on(burst(connections.clamp(1, 1000), size, full));
    }
    if !parsed.burst {
        let (messages, connections) = match full {
            true => (
                parsed.messages.unwrap_or(1_000_000),
                parsed.connections.unwrap_or(1000),
            ),
            false => (
                parsed.messages.unwrap_or(48),
                parsed.connections.unwrap_or(12),
            ),
        };
        // The daemon caps concurrent milter connections at 1000.
        runtime.block_on(soak(messages, connections.clamp(1, 1000), full));
    }
}

/// The real daemon as a child process, on a unix socket, with the test DNS
/// server; killed when dropped.
struct Daemon {
    child: std::process::Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: process::TempDir,
    _dns: TestDns,
}

impl Daemon {
    /// `extra`: configuration lines (top level and tables before `[dns]`).
    async fn start(name: &str, key: &TestKey, extra: &str) -> Daemon {
        let dns = TestDns::start(sender_zone().txt("mailkey.sender.test", &key.record)).await;
        let dir = process::temp_dir(name);
        let socket = dir.join("milter.sock");
        let config = dir.join("soak.toml");
        process::write(
            &config,
            &format!(
                "listen = \"unix:{}\"\n{}",
                socket.display(),
                common::config(&dns, extra)
            ),
        );
        // warn: a soak log at info is one line per message, and is not what
        // is measured; warnings and errors are kept to be counted.
        let log = dir.join("daemon.log");
        let mut command = std::process::Command::new(process::BIN);
        command
            .args(["--config", &config.to_string_lossy()])
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        // As contrib/mailkey-milter.service starts it.
        if std::env::var_os(MMAP_THRESHOLD).is_none() {
            command.env(MMAP_THRESHOLD, "65536");
        }
        let child = command.spawn().expect("start mailkey-milter");
        wait_for_socket(&socket).await;
        Daemon {
            child,
            socket,
            log,
            _dir: dir,
            _dns: dns,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon: whether it was still alive, and its log.
    /// CPU seconds the daemon used so far (user + system), from
    /// /proc/PID/stat: work done, which a shared machine disturbs less than
    /// msg/s.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // After the command name in parentheses: state is field 3, utime
        // and stime are fields 14 and 15, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
        let hz = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        (ticks(11) + ticks(12)) / hz
    }

    fn stop(mut self) -> (bool, String) {
        let alive = self.child.try_wait().expect("wait").is_none();
        let _ = self.child.kill();
        let _ = self.child.wait();
        (
            alive,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

const MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";

/// What a run measured once its clients are done; the daemon is stopped.
struct Ended {
    elapsed: Duration,
    /// MiB.
    max_rss: f64,
    max_anon: f64,
    /// CPU seconds of the daemon.
    cpu: f64,
    alive: bool,
    logged: String,
    errors_logged: usize,
    panics: usize,
}

impl Ended {
    fn now(daemon: Daemon, sampler: Sampler, started: Instant) -> Ended {
        let elapsed = started.elapsed();
        let (max_rss, max_anon) = sampler.stop();
        let cpu = daemon.cpu_seconds();
        let (alive, logged) = daemon.stop();
        Ended {
            elapsed,
            max_rss,
            max_anon,
            cpu,
            alive,
            errors_logged: logged.matches("ERROR").count(),
            panics: logged.matches("panicked").count(),
            logged,
        }
    }

    /// The memory, health and CPU lines of `kind` (soak, burst); `unit` of
    /// the CPU per message: µs or ms.
    fn print(&self, kind: &str, at: &str, messages: usize, unit: &str) {
        println!(
            "{kind}: max RSS {:.1} MiB, max RssAnon {:.1} MiB{at}; daemon {}; log: {} ERROR lines, {} panics",
            self.max_rss,
            self.max_anon,
            if self.alive { "alive" } else { "DIED" },
            self.errors_logged,
            self.panics
        );
        let scale = if unit == "ms" { 1e3 } else { 1e6 };
        println!(
            "{kind}: daemon CPU {:.1} s = {:.0} {unit} per message",
            self.cpu,
            self.cpu * scale / messages as f64
        );
    }
}

/// The daemon's largest `VmRSS` and `RssAnon` (KiB), sampled every
/// `every` until dropped.
struct Sampler {
    max_rss: Arc<AtomicU64>,
    max_anon: Arc<AtomicU64>,
    pid: u32,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// `report` is called after each sample with the current RSS (KiB).
    fn start(pid: u32, every: Duration, report: impl Fn(u64) + Send + 'static) -> Sampler {
        let max_rss = Arc::new(AtomicU64::new(0));
        let max_anon = Arc::new(AtomicU64::new(0));
        let (rss, anon) = (max_rss.clone(), max_anon.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = memory_kib(pid);
                rss.fetch_max(now.rss, Relaxed);
                anon.fetch_max(now.anon, Relaxed);
                report(now.rss);
            }
        });
        Sampler {
            max_rss,
            max_anon,
            pid,
            task,
        }
    }

    /// Takes a last sample; the largest RSS and RssAnon in MiB.
    fn stop(self) -> (f64, f64) {
        self.task.abort();
        let now = memory_kib(self.pid);
        let rss = self.max_rss.fetch_max(now.rss, Relaxed).max(now.rss);
        let anon = self.max_anon.fetch_max(now.anon, Relaxed).max(now.anon);
        (rss as f64 / 1024.0, anon as f64 / 1024.0)
    }
}

async fn soak(messages: usize, connections: usize, full: bool) {
    let key = TestKey::ed25519();
    let daemon = Daemon::start("soak", &key, "").await;
    let pid = daemon.pid();

    // 200 signatures per hostile message; 10 under `cargo test`, where the
    // daemon is a debug build and its crypto is 100 times slower.
    let mix = Arc::new(mix(&key, if full { 200 } else { 10 }));
    let counts = Arc::new(Counts::default());
    let next = Arc::new(AtomicUsize::new(0));
    println!("soak: {messages} messages, {connections} concurrent milter connections (unix socket), daemon pid {pid}");
    let started = Instant::now();
    let sampler = {
        let next = next.clone();
        Sampler::start(pid, Duration::from_secs(1), move |rss| {
            let secs = started.elapsed().as_secs();
            if secs > 0 && secs % 10 == 0 {
                let done = next.load(Relaxed).min(messages);
                println!(
                    "soak: {secs:>4} s  {done:>9} messages  {:>7.0} msg/s  RSS {:.1} MiB",
                    done as f64 / started.elapsed().as_secs_f64(),
                    rss as f64 / 1024.0
                );
            }
        })
    };
    let clients = Clients {
        mix,
        counts: counts.clone(),
        next,
        messages,
        hold: None,
    };
    for t in clients.spawn(&daemon.socket, connections) {
        t.await.expect("client task");
    }
    let end = Ended::now(daemon, sampler, started);
    let (elapsed, alive, logged) = (end.elapsed, end.alive, &end.logged);
    let c = |a: &AtomicU64| a.load(Relaxed);
    println!(
        "soak: {messages} messages in {:.1} s = {:.0} msg/s; accept {}, reject {}, tempfail {}, aborted {}, protocol errors {}",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        c(&counts.accept),
        c(&counts.reject),
        c(&counts.tempfail),
        c(&counts.aborted),
        c(&counts.errors)
    );
    end.print(
        "soak",
        &format!(" at {connections} connections"),
        messages,
        "µs",
    );
    let slowest: Vec<String> = counts
        .slowest
        .iter()
        .map(|ms| format!("{}", c(ms)))
        .collect();
    println!(
        "soak: slowest transaction per kind (ms): {}",
        slowest.join(" ")
    );
    if !full {
        assert!(alive, "the daemon died:\n{logged}");
        assert_eq!(end.panics, 0, "{logged}");
        assert_eq!(
            c(&counts.errors),
            0,
            "protocol errors; daemon log:\n{logged}"
        );
        assert!(c(&counts.accept) > 0 && c(&counts.reject) > 0);
        assert_eq!(
            c(&counts.accept) + c(&counts.reject) + c(&counts.tempfail) + c(&counts.aborted),
            messages as u64
        );
    }
}

/// 127.0.(c / 250).(c % 250 + 2): never 127.0.0.1, the trusted one.
fn client_ip(c: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (c / 250) as u8, (c % 250 + 2) as u8))
}

/// A burst: `connections` signed messages of `size` bytes each, sent at
/// once, one per connection; each waits after its body until all bodies
/// are in (the memory then is that of every message at once), then all
/// end. The end-of-message deadline is raised so that every message is
/// verified (and its memory counted), not abandoned.
async fn burst(connections: usize, size: usize, full: bool) {
    let key = TestKey::ed25519();
    let daemon = Daemon::start("burst", &key, "[limits]\neom_timeout_ms = 600000").await;
    let pid = daemon.pid();
    let signed = common::large_signed_message(&key, "alice@sender.test", size);
    let (head, body) = signed.split_once("\r\n\r\n").unwrap_or((&signed, ""));
    let msg = Msg {
        fields: fields(head),
        body: body.as_bytes().to_vec(),
        probe: false,
        abort: false,
    };
    let body_len = msg.body.len();
    drop(signed);
    println!(
        "burst: {connections} messages of {:.1} MB at once, one per milter connection (unix socket), daemon pid {pid}",
        body_len as f64 / 1e6
    );
    let counts = Arc::new(Counts::default());
    let hold = Arc::new(Hold {
        arrived: AtomicUsize::new(0),
        go: tokio::sync::Semaphore::new(0),
    });
    let started = Instant::now();
    let sampler = Sampler::start(pid, Duration::from_millis(100), |_| {});
    let clients = Clients {
        mix: Arc::new(vec![msg]),
        counts: counts.clone(),
        next: Arc::new(AtomicUsize::new(0)),
        messages: connections,
        hold: Some(hold.clone()),
    };
    let tasks = clients.spawn(&daemon.socket, connections);
    // Every body answered (or its connection failed): the daemon holds
    // every message, none has ended.
    while hold.arrived.load(Relaxed) + (counts.errors.load(Relaxed) as usize) < connections {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = memory_kib(pid);
    println!(
        "burst: all {connections} messages received, none ended, after {:.1} s: RSS {:.1} MiB, RssAnon {:.1} MiB",
        started.elapsed().as_secs_f64(),
        held.rss as f64 / 1024.0,
        held.anon as f64 / 1024.0
    );
    hold.go.close();
    for t in tasks {
        t.await.expect("client task");
    }
    let end = Ended::now(daemon, sampler, started);
    let (elapsed, alive, logged) = (end.elapsed, end.alive, &end.logged);
    let c = |a: &AtomicU64| a.load(Relaxed);
    println!(
        "burst: {connections} messages in {:.1} s = {:.1} msg/s ({:.0} MB/s); accept {}, reject {}, tempfail {}, protocol errors {}",
        elapsed.as_secs_f64(),
        connections as f64 / elapsed.as_secs_f64(),
        (connections * body_len) as f64 / 1e6 / elapsed.as_secs_f64(),
        c(&counts.accept),
        c(&counts.reject),
        c(&counts.tempfail),
        c(&counts.errors)
    );
    end.print("burst", "", connections, "ms");
    if !full {
        assert!(alive, "the daemon died:\n{logged}");
        assert_eq!(
            c(&counts.accept),
            connections as u64,
            "every signed message passes; daemon log:\n{logged}"
        );
    }
}

/// What the client connections share.
struct Clients {
    /// Message `n` is `mix[n % mix.len()]`.
    mix: Arc<Vec<Msg>>,
    counts: Arc<Counts>,
    /// The next message number; the clients stop at `messages`.
    next: Arc<AtomicUsize>,
    messages: usize,
    hold: Option<Arc<Hold>>,
}

impl Clients {
    /// `connections` clients on `socket`, each from an address of its own.
    fn spawn(self, socket: &Path, connections: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let shared = Arc::new(self);
        (0..connections)
            .map(|c| {
                let (socket, s) = (socket.to_path_buf(), shared.clone());
                tokio::spawn(async move { client(&socket, client_ip(c), &s).await })
            })
            .collect()
    }
}

/// One MTA connection: transactions until `messages` are sent; a broken
/// connection is counted and replaced.
/// `hold`: wait there after each body (the burst).
async fn client(socket: &Path, ip: IpAddr, shared: &Clients) {
    let Clients {
        mix,
        counts,
        next,
        messages,
        ..
    } = shared;
    let hold = shared.hold.as_deref();
    let mut conn: Option<TestConnection> = None;
    loop {
        let n = next.fetch_add(1, Relaxed);
        if n >= *messages {
            break;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match open(socket, ip, hold.is_some()).await {
                Ok(c) => c,
                Err(_) => {
                    counts.errors.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let msg = &mix[n % mix.len()];
        let t = Instant::now();
        let result = transaction(&mut c, msg, hold).await;
        counts.slowest[n % mix.len()].fetch_max(t.elapsed().as_millis() as u64, Relaxed);
        match result {
            Ok(status) => {
                let counter = match status {
                    None => &counts.aborted,
                    Some(Status::Accept | Status::Continue) => &counts.accept,
                    Some(Status::Tempfail { .. }) => &counts.tempfail,
                    Some(_) => &counts.reject,
                };
                counter.fetch_add(1, Relaxed);
                conn = Some(c);
            }
            Err(e) => {
                if counts.errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("soak: first protocol error: {e}");
                }
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

type Result<T> = std::result::Result<T, indymilter_test::TestError>;

/// `answer_body`: do not offer the option to leave body chunks unanswered,
/// so that a client knows when the daemon has taken its body in.
async fn open(socket: &Path, ip: IpAddr, answer_body: bool) -> Result<TestConnection> {
    let mut opts = ProtoOpts::all();
    if answer_body {
        opts.remove(ProtoOpts::NOREPLY_BODY);
    }
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_opts(opts)
        // A burst of large messages on 2 cores takes minutes to verify.
        .read_timeout(Duration::from_secs(600))
        .open_unix(socket)
        .await?;
    conn.macros(MacroStage::Connect, [("j", "mx.receiver.test")])
        .await?;
    conn.connect(
        "client.sender.test",
        SocketInfo::Inet(SocketAddr::new(ip, 40000)),
    )
    .await?;
    conn.helo("mail.sender.test").await?;
    Ok(conn)
}

/// Burst transactions wait after their body until every one has sent its
/// own: the daemon then holds all the messages at once.
struct Hold {
    arrived: AtomicUsize,
    /// Closed to let them all go on to the end of message.
    go: tokio::sync::Semaphore,
}

/// One transaction; `None` when it was aborted, else the final status (a
/// reject before end of message ends it as the MTA would, with an abort).
async fn transaction(
    conn: &mut TestConnection,
    msg: &Msg,
    hold: Option<&Hold>,
) -> Result<Option<Status>> {
    let mut macros = vec![("i", "SOAK1")];
    if !msg.probe {
        macros.extend(VERIFIED_TLS);
    }
    conn.macros(MacroStage::Mail, macros).await?;
    let status = conn.mail(["<alice@sender.test>"]).await?;
    if !common::goes_on(&status) {
        conn.abort().await?;
        return Ok(Some(status));
    }
    let opts = conn.negotiated_opts();
    if !opts.contains(ProtoOpts::NO_RCPT) {
        conn.rcpt(["<bob@receiver.test>"]).await?;
    }
    for (name, value) in &msg.fields {
        let status = conn.header(name.clone(), value.clone()).await?;
        if !common::goes_on(&status) {
            conn.abort().await?;
            return Ok(Some(status));
        }
    }
    if msg.abort {
        conn.abort().await?;
        return Ok(None);
    }
    if !opts.contains(ProtoOpts::NO_EOH) {
        conn.eoh().await?;
    }
    for chunk in msg.body.chunks(65535) {
        conn.body(chunk.to_vec()).await?;
    }
    if let Some(hold) = hold {
        hold.arrived.fetch_add(1, Relaxed);
        let _ = hold.go.acquire().await; // an error: closed, go on
    }
    let (_, status) = conn.eom().await?;
    Ok(Some(status))
}

/// The mix, one entry per message in turn: four good, one unsigned, one
/// with a broken signature, and one each of the hostile kinds.
fn mix(key: &TestKey, signatures: usize) -> Vec<Msg> {
    let plain = message("alice@sender.test");
    let signed = key.sign(&plain, "sender.test", "mailkey");
    let tampered = signed.replace("the numbers", "the NUMBERS");
    let signature = signed.split_once("\r\nFrom:").map_or("", |(s, _)| s);
    let many_sigs = format!("{}\r\n{signed}", vec![signature; signatures].join("\r\n"));
    let huge = format!(
        "X-Huge: {}\r\n{}{signed}",
        "a".repeat(60_000),
        "X-Filler: hostile header\r\n".repeat(1000)
    );
    let msg = |text: &str, probe, abort| {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        Msg {
            fields: fields(head),
            body: body.as_bytes().to_vec(),
            probe,
            abort,
        }
    };
    let mut mix = vec![
        msg(&signed, false, false),
        msg(&signed, false, false),
        msg(&signed, true, false),
        msg(&signed, false, false),
        msg(&plain, false, false),
        msg(&tampered, false, false),
        msg(&many_sigs, false, false),
        msg(&huge, false, false),
        msg(&signed, false, true),
    ];
    mix.push(garbage(1));
    mix.push(msg(&signed, false, false));
    mix.push(garbage(2));
    assert_eq!(mix.len(), MIX);
    mix
}

/// Random bytes (no NUL: the milter protocol cannot carry it) as header
/// names, values and body; deterministic per `seed`.
fn garbage(seed: u64) -> Msg {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u8).max(1)
            })
            .collect()
    };
    let fields = (0..40)
        .map(|i| {
            let c = |v: Vec<u8>| CString::new(v).unwrap_or_default();
            (c(bytes(1 + i % 30)), c(bytes(i * 50)))
        })
        .collect();
    Msg {
        fields,
        body: bytes(20_000),
        probe: seed % 2 == 0,
        abort: false,
    }
}

/// Header fields as the MTA passes them: value with its leading space,
/// folded lines joined with LF.
fn fields(head: &str) -> Vec<(CString, CString)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.into(), v.into()));
        }
    }
    out.into_iter()
        .map(|(n, v)| {
            (
                CString::new(n).expect("name"),
                CString::new(v).expect("value"),
            )
        })
        .collect()
}

/// Resident memory of a process, in KiB.
struct Memory {
    /// `VmRSS`: everything resident, mapped files' page cache included.
    rss: u64,
    /// `RssAnon`: anonymous memory (heap, stacks): what only swap could
    /// take back.
    anon: u64,
}

fn memory_kib(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

async fn wait_for_socket(path: &PathBuf) {
    for _ in 0..200 {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not listen on {}", path.display());
}
