//! The daemon under measurement: the real binary as a child process on a
//! unix socket, its memory sampled from /proc/PID/status and its CPU time
//! read from /proc/PID/stat.

use crate::common::{self, dns::TestDns, process, sender_zone, TestKey};
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

/// The real daemon as a child process, on a unix socket, with the test DNS
/// server; killed when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub _dir: process::TempDir,
    pub _dns: TestDns,
}

impl Daemon {
    /// `extra`: configuration lines (top level and tables before `[dns]`).
    pub async fn start(name: &str, key: &TestKey, extra: &str) -> Daemon {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon: whether it was still alive, and its log.
    /// CPU seconds the daemon used so far (user + system), from
    /// /proc/PID/stat: work done, which a shared machine disturbs less than
    /// msg/s.
    pub fn cpu_seconds(&self) -> f64 {
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

    pub fn stop(mut self) -> (bool, String) {
        let alive = self.child.try_wait().expect("wait").is_none();
        let _ = self.child.kill();
        let _ = self.child.wait();
        (
            alive,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

pub const MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";

/// What a run measured once its clients are done; the daemon is stopped.
pub struct Ended {
    pub elapsed: Duration,
    /// MiB.
    pub max_rss: f64,
    pub max_anon: f64,
    /// CPU seconds of the daemon.
    pub cpu: f64,
    pub alive: bool,
    pub logged: String,
    pub errors_logged: usize,
    pub panics: usize,
}

impl Ended {
    pub fn now(daemon: Daemon, sampler: Sampler, started: Instant) -> Ended {
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
    pub fn print(&self, kind: &str, at: &str, messages: usize, unit: &str) {
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
pub struct Sampler {
    pub max_rss: Arc<AtomicU64>,
    pub max_anon: Arc<AtomicU64>,
    pub pid: u32,
    pub task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// `report` is called after each sample with the current RSS (KiB).
    pub fn start(pid: u32, every: Duration, report: impl Fn(u64) + Send + 'static) -> Sampler {
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
    pub fn stop(self) -> (f64, f64) {
        self.task.abort();
        let now = memory_kib(self.pid);
        let rss = self.max_rss.fetch_max(now.rss, Relaxed).max(now.rss);
        let anon = self.max_anon.fetch_max(now.anon, Relaxed).max(now.anon);
        (rss as f64 / 1024.0, anon as f64 / 1024.0)
    }
}

/// Resident memory of a process, in KiB.
pub struct Memory {
    /// `VmRSS`: everything resident, mapped files' page cache included.
    pub rss: u64,
    /// `RssAnon`: anonymous memory (heap, stacks): what only swap could
    /// take back.
    pub anon: u64,
}

pub fn memory_kib(pid: u32) -> Memory {
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

pub async fn wait_for_socket(path: &PathBuf) {
    for _ in 0..200 {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not listen on {}", path.display());
}
