//! mailkey-milter beside OpenDKIM, in one run: both milters as real
//! processes on unix sockets, driven by the same load generator over the
//! same signed messages (rsa-2048 and ed25519) at several connection
//! counts. Writes BENCHMARKS.md and bench/compare.png.
//!
//! Run it with `bench/compare.sh` (installs OpenDKIM and gnuplot first).
//! Plain `cargo bench` only prints how: the comparison takes minutes and
//! needs OpenDKIM. Knobs (environment): BENCH_SECONDS per point (3),
//! BENCH_CONNECTIONS ("1,2,4,8,16,32,64,128,256"), BENCH_MESSAGES (200).

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "compare/load.rs"]
mod load;
#[path = "compare/messages.rs"]
mod messages;
#[path = "compare/milters.rs"]
mod milters;
#[path = "compare/report.rs"]
mod report;

use common::{dns, TestKey};
use load::{LoadResult, Workload};
use milters::{Milter, PublishedKey};
use std::{net::Ipv4Addr, path::Path, sync::Arc, time::Duration};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One algorithm: its sending domain, key and messages.
struct Algorithm {
    name: &'static str,
    domain: &'static str,
    key: TestKey,
}

#[tokio::main]
async fn main() {
    if std::env::var_os("MAILKEY_COMPARE").is_none() {
        println!("compare: the side-by-side run with OpenDKIM is bench/compare.sh");
        return;
    }
    let seconds: f64 = env_or("BENCH_SECONDS", 3.0);
    let connections: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "1,2,4,8,16,32,64,128,256".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let count: usize = env_or("BENCH_MESSAGES", 200);
    let load_before = report::load_average();

    let algorithms = [
        Algorithm {
            name: "rsa-2048",
            domain: "rsa.sender.test",
            key: TestKey::rsa(2048),
        },
        Algorithm {
            name: "ed25519",
            domain: "ed25519.sender.test",
            key: TestKey::ed25519(),
        },
    ];
    // Every sending domain passes SPF (all of 127.0.0.0/8) and has a real
    // MX; its key is published where each milter looks for it.
    let mut zone = dns::Zone::default();
    for a in &algorithms {
        let mx = format!("mx.{}", a.domain);
        zone = zone
            .txt(a.domain, "v=spf1 ip4:127.0.0.0/8 -all")
            .mx(a.domain, 10, &mx)
            .a(&mx, Ipv4Addr::new(127, 0, 0, 25))
            .txt(&format!("mailkey.{}", a.domain), &a.key.record);
    }
    let dns = dns::TestDns::start(zone).await;
    let dir = common::process::temp_dir("compare");
    let published: Vec<PublishedKey> = algorithms
        .iter()
        .map(|a| PublishedKey {
            domain: a.domain.into(),
            record: a.key.record.clone(),
        })
        .collect();
    let ours = milters::start_ours(&dir, dns.addr()).await;
    let theirs = milters::start_opendkim(&dir, &published).await;

    let duration = Duration::from_secs_f64(seconds);
    let mut rows = Vec::new();
    println!(
        "{:<9} {:>5}  {:>22}  {:>22}  {:>6}",
        "", "conns", "ours msg/s p99 µs/msg", "OpenDKIM msg/s p99 µs", "ratio"
    );
    // The last algorithm also gets a point at 1,000 connections (what
    // limits.max_connections allows), for memory; BENCH_THOUSAND=0 skips it.
    let with_thousand = std::env::var("BENCH_THOUSAND").as_deref() != Ok("0");
    let mut thousand = None;
    for (i, a) in algorithms.iter().enumerate() {
        let from = format!("sender@{}", a.domain);
        let work = Workload {
            messages: Arc::new(messages::signed(&a.key, &from, a.domain, count)),
            mail_from: from,
        };
        // Warm-up: caches filled, threads started, nothing recorded.
        for m in [&ours, &theirs] {
            run(m, &work, 4, Duration::from_millis(500)).await;
        }
        for &c in &connections {
            let o = run(&ours, &work, c, duration).await;
            let t = run(&theirs, &work, c, duration).await;
            println!(
                "{:<9} {:>5}  {:>8.0} {:>6.2} {:>6.0}  {:>8.0} {:>6.2} {:>6.0}  {:>5.2}×  pass {:.0}%/{:.0}%",
                a.name,
                c,
                o.rate(),
                o.pct_ms(0.99),
                o.cpu_us_per_msg(),
                t.rate(),
                t.pct_ms(0.99),
                t.cpu_us_per_msg(),
                o.rate() / t.rate().max(f64::MIN_POSITIVE),
                o.pass_share() * 100.0,
                t.pass_share() * 100.0,
            );
            rows.push(report::Row {
                algorithm: a.name,
                connections: c,
                ours: o,
                theirs: t,
            });
        }
        if with_thousand && i + 1 == algorithms.len() {
            let o = run(&ours, &work, 1000, duration).await;
            let t = run(&theirs, &work, 1000, duration).await;
            println!(
                "{:<9} {:>5}  {:>8.0}  {:>8.0}  (the 1,000-connection point)",
                a.name,
                1000,
                o.rate(),
                t.rate()
            );
            thousand = Some((a.name, o, t));
        }
    }
    let peak_rss_mib = (
        report::peak_rss_mib(ours.pid()),
        report::peak_rss_mib(theirs.pid()),
    );
    println!(
        "peak RSS: ours {:.1} MiB, OpenDKIM {:.1} MiB",
        peak_rss_mib.0, peak_rss_mib.1
    );
    ours.stop().await;
    theirs.stop().await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let info = report::RunInfo {
        command: std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench/compare.sh".into()),
        seconds,
        messages: count,
        opendkim: milters::opendkim_version(),
        load_before,
        load_after: report::load_average(),
        thousand,
        peak_rss_mib,
    };
    report::write(
        &root.join("BENCHMARKS.md"),
        &root.join("bench/compare.png"),
        &dir,
        &info,
        &rows,
    );
    println!("wrote BENCHMARKS.md and bench/compare.png");
}

async fn run(m: &Milter, work: &Workload, connections: usize, d: Duration) -> LoadResult {
    load::run(&m.socket, m.pid(), work, connections, d, m.pass_marker).await
}
