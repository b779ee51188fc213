//! The load generator: `connections` MTA connections to one milter's unix
//! socket, each sending messages back to back for a fixed time, as Postfix
//! would present them (the milter client of tests/common). It speaks plain
//! milter protocol, so it drives OpenDKIM exactly as it drives ours.

use crate::common::{open_unix, send_on, Transaction};
use indymilter_test::EomAction;
use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::Barrier;

/// The messages of one algorithm and who sends them.
pub struct Workload {
    pub mail_from: String,
    pub messages: Arc<Vec<String>>,
}

/// What one run measured.
pub struct LoadResult {
    pub messages: usize,
    pub elapsed: Duration,
    /// Sorted.
    pub latencies: Vec<Duration>,
    /// Messages whose Authentication-Results said `<method>=pass`.
    pub passes: usize,
    /// CPU time of the milter process during the run.
    pub cpu: Duration,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency percentile in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        let n = self.latencies.len();
        if n == 0 {
            return 0.0;
        }
        self.latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0
    }

    pub fn cpu_us_per_msg(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }

    pub fn pass_share(&self) -> f64 {
        self.passes as f64 / self.messages.max(1) as f64
    }
}

/// The client address of connection `c` (a macro value only: no traffic
/// goes there). All inside 127.0.0.0/8, which the benchmark's SPF allows.
fn client_ip(c: usize) -> String {
    format!("127.0.{}.{}", c / 200, 10 + c % 200)
}

/// Runs `connections` connections against the milter at `socket` for
/// `duration`; `pid` is the milter process (for its CPU time) and
/// `pass_marker` what its Authentication-Results says for a good signature.
pub async fn run(
    socket: &Path,
    pid: u32,
    work: &Workload,
    connections: usize,
    duration: Duration,
    pass_marker: &'static str,
) -> LoadResult {
    // Everyone connects first; the clock starts when all are ready.
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (socket, barrier) = (socket.to_path_buf(), barrier.clone());
        let (messages, from) = (work.messages.clone(), work.mail_from.clone());
        tasks.push(tokio::spawn(async move {
            let ip = client_ip(c);
            let mut conn = open_unix(&socket, ip.parse().expect("ip"), "mail.sender.test").await;
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut latencies = Vec::new();
            let mut passes = 0;
            // Connections start at different messages, so the milter never
            // sees the same message twice in a row.
            let mut i = c * 7;
            while Instant::now() < deadline {
                let msg = messages[i % messages.len()].clone();
                i += 1;
                let t = Instant::now();
                let outcome = send_on(&mut conn, &Transaction::new(&ip, &from, msg)).await;
                latencies.push(t.elapsed());
                if says_pass(&outcome.actions.actions, pass_marker) {
                    passes += 1;
                }
            }
            (latencies, passes)
        }));
    }
    barrier.wait().await;
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut passes = 0;
    for t in tasks {
        let (l, p) = t.await.expect("client task");
        latencies.extend(l);
        passes += p;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    latencies.sort();
    LoadResult {
        messages: latencies.len(),
        elapsed,
        latencies,
        passes,
        cpu,
    }
}

/// Whether an Authentication-Results header the milter added contains
/// `marker` (e.g. `dkim=pass`).
fn says_pass(actions: &[EomAction], marker: &str) -> bool {
    actions.iter().any(|a| match a {
        EomAction::InsertHeader { name, value, .. } | EomAction::AddHeader { name, value } => {
            name.to_bytes()
                .eq_ignore_ascii_case(b"Authentication-Results")
                && value.to_string_lossy().contains(marker)
        }
        _ => false,
    })
}

/// User + system CPU time of process `pid` (all its threads), from
/// /proc/PID/stat fields 14 and 15, in clock ticks.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; the fields after it do not.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// `getconf CLK_TCK` (100 on every Linux we know, but ask).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
