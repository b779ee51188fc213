//! Prometheus metrics (`[metrics] listen`): messages by verdict, check
//! results by check and result, check latency, DNS cache hits. Counters are
//! process-wide atomics, cheap enough to update on every message; the text
//! exposition is rendered on request.

use crate::{
    checks::{CheckName, CheckResult, Status, CHECKS},
    transaction::Evaluation,
    verdict::Action,
};
use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Room for this many registered checks (a unit test keeps it so).
const MAX_CHECKS: usize = 8;
const STATUSES: [Status; 7] = [
    Status::Pass,
    Status::Fail,
    Status::SoftFail,
    Status::Neutral,
    Status::None,
    Status::TempError,
    Status::PermError,
];
/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len()],
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }
}

struct Metrics {
    /// accept, reject, tempfail, would_reject (monitor mode).
    verdicts: [AtomicU64; 4],
    trusted: AtomicU64,
    results: [[AtomicU64; STATUSES.len()]; MAX_CHECKS],
    latency: [Histogram; MAX_CHECKS],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

static METRICS: Metrics = Metrics {
    verdicts: [const { AtomicU64::new(0) }; 4],
    trusted: AtomicU64::new(0),
    results: [const { [const { AtomicU64::new(0) }; STATUSES.len()] }; MAX_CHECKS],
    latency: [const { Histogram::new() }; MAX_CHECKS],
    cache_hits: AtomicU64::new(0),
    cache_misses: AtomicU64::new(0),
};

/// The registry position of `c`: its row in the per-check tables.
fn check_index(c: CheckName) -> Option<usize> {
    CHECKS
        .iter()
        .position(|x| x.name == c)
        .filter(|&i| i < MAX_CHECKS)
}

/// Counts one checked message.
pub fn record(e: &Evaluation) {
    let i = match e.verdict.action {
        Action::Accept => 0,
        Action::Reject => 1,
        Action::Tempfail => 2,
    };
    METRICS.verdicts[i].fetch_add(1, Relaxed);
    if e.verdict.would().is_some() {
        METRICS.verdicts[3].fetch_add(1, Relaxed);
    }
    for r in &e.results {
        record_result(r);
    }
}

fn record_result(r: &CheckResult) {
    let s = STATUSES.iter().position(|s| *s == r.status);
    if let (Some(c), Some(s)) = (check_index(r.check), s) {
        METRICS.results[c][s].fetch_add(1, Relaxed);
    }
}

pub fn record_trusted() {
    METRICS.trusted.fetch_add(1, Relaxed);
}

/// How long a check waited for its lookups.
pub fn observe_latency(check: CheckName, d: Duration) {
    if let Some(c) = check_index(check) {
        METRICS.latency[c].observe(d);
    }
}

pub fn cache_hit(hit: bool) {
    let counter = if hit {
        &METRICS.cache_hits
    } else {
        &METRICS.cache_misses
    };
    counter.fetch_add(1, Relaxed);
}

/// The Prometheus text exposition (format 0.0.4).
pub fn render() -> String {
    let m = &METRICS;
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP mailkey_milter_messages_total Checked messages by verdict (would_reject: monitor mode).\n");
    out.push_str("# TYPE mailkey_milter_messages_total counter\n");
    for (i, v) in ["accept", "reject", "tempfail", "would_reject"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(
            out,
            "mailkey_milter_messages_total{{verdict=\"{v}\"}} {}",
            m.verdicts[i].load(Relaxed)
        );
    }
    out.push_str("# HELP mailkey_milter_trusted_messages_total Messages from trusted clients (not checked).\n");
    out.push_str("# TYPE mailkey_milter_trusted_messages_total counter\n");
    let _ = writeln!(
        out,
        "mailkey_milter_trusted_messages_total {}",
        m.trusted.load(Relaxed)
    );
    out.push_str("# HELP mailkey_milter_check_results_total Check results by check and result.\n");
    out.push_str("# TYPE mailkey_milter_check_results_total counter\n");
    for (c, check) in CHECKS.iter().take(MAX_CHECKS).map(|c| c.name).enumerate() {
        for (s, status) in STATUSES.iter().enumerate() {
            let n = m.results[c][s].load(Relaxed);
            let _ = writeln!(
                out,
                "mailkey_milter_check_results_total{{check=\"{check}\",result=\"{status}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP mailkey_milter_check_seconds Time from MAIL FROM until a check's lookups were done.\n");
    out.push_str("# TYPE mailkey_milter_check_seconds histogram\n");
    for (c, check) in CHECKS.iter().take(MAX_CHECKS).map(|c| c.name).enumerate() {
        let h = &m.latency[c];
        for (bound, count) in BUCKETS.iter().zip(&h.counts) {
            let _ = writeln!(
                out,
                "mailkey_milter_check_seconds_bucket{{check=\"{check}\",le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let total = h.total.load(Relaxed);
        let _ = writeln!(
            out,
            "mailkey_milter_check_seconds_bucket{{check=\"{check}\",le=\"+Inf\"}} {total}"
        );
        let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "mailkey_milter_check_seconds_sum{{check=\"{check}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "mailkey_milter_check_seconds_count{{check=\"{check}\"}} {total}"
        );
    }
    out.push_str("# HELP mailkey_milter_dns_cache_lookups_total DNS cache lookups by outcome.\n");
    out.push_str("# TYPE mailkey_milter_dns_cache_lookups_total counter\n");
    let _ = writeln!(
        out,
        "mailkey_milter_dns_cache_lookups_total{{outcome=\"hit\"}} {}",
        m.cache_hits.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "mailkey_milter_dns_cache_lookups_total{{outcome=\"miss\"}} {}",
        m.cache_misses.load(Relaxed)
    );
    out
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics ") || request.starts_with("GET / ")
            {
                let body = render();
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_check_has_a_row() {
        assert!(super::CHECKS.len() <= super::MAX_CHECKS);
    }
}
