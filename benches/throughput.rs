//! Throughput and latency of the whole milter path: many MTA connections at
//! once over real loopback sockets, each sending signed messages through
//! the in-process daemon, with keys, SPF and MX served by the test DNS
//! server on 127.0.0.1.
//!
//! `cargo bench --ignore-rust-version` prints messages/s and latency
//! percentiles per scenario. Under `cargo test` it only runs a few messages
//! to prove that it works.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{message, send_on, sender_zone, Daemon, TestKey, Transaction};
use std::time::{Duration, Instant};

struct Scenario {
    name: &'static str,
    key: TestKey,
    sign: bool,
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (connections, per_connection) = if full { (16, 250) } else { (2, 3) };
    println!("mailkey-milter benchmark: {connections} concurrent MTA connections (unix socket) x {per_connection} messages");
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "msg/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let scenarios = [
        Scenario {
            name: "ed25519 signed (pass)",
            key: TestKey::ed25519(),
            sign: true,
        },
        Scenario {
            name: "rsa-2048 signed (pass)",
            key: TestKey::rsa(2048),
            sign: true,
        },
        Scenario {
            name: "unsigned (reject 5.7.20)",
            key: TestKey::ed25519(),
            sign: false,
        },
    ];
    for s in scenarios {
        let dns =
            common::dns::TestDns::start(sender_zone().txt("mailkey.sender.test", &s.key.record))
                .await;
        // A unix socket, as many installations use: over loopback TCP the
        // test client's separate small writes (macros, then the command)
        // meet Nagle's algorithm and delayed ACKs, which measures the
        // client, not the milter (a real MTA writes both at once).
        let path = std::env::temp_dir().join(format!("mailkey-bench-{}.sock", std::process::id()));
        let daemon = Daemon::start_unix(&common::config(&dns, ""), &path).await;
        let from = "alice@sender.test";
        let body = message(from);
        let msg = if s.sign {
            s.key.sign(&body, "sender.test", "mailkey")
        } else {
            body
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (path, msg) = (path.clone(), msg.clone());
            tasks.push(tokio::spawn(async move {
                let ip = format!("127.0.0.{}", 10 + c);
                let mut conn =
                    common::open_unix(&path, ip.parse().expect("ip"), "mail.sender.test").await;
                let mut latencies = Vec::with_capacity(per_connection);
                for _ in 0..per_connection {
                    let t = Instant::now();
                    let outcome =
                        send_on(&mut conn, &Transaction::new(&ip, from, msg.clone())).await;
                    latencies.push(t.elapsed());
                    assert!(outcome.is_accept() || !outcome.reply().is_empty());
                }
                latencies
            }));
        }
        let mut all: Vec<Duration> = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| {
            all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "{:<28} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.name,
            all.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        );
        daemon.shutdown().await;
        let _ = std::fs::remove_file(&path);
    }
}
