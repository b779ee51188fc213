//! Throughput and latency of the whole milter path: many MTA connections at
//! once over real loopback sockets, each sending signed messages through
//! the in-process daemon, with keys, SPF and MX served by the test DNS
//! server on 127.0.0.1.
//!
//! `cargo bench --ignore-rust-version` prints messages/s and latency
//! percentiles per scenario, and how much message data the milter never
//! had to receive (rejected at RCPT TO, before DATA). Under `cargo test` it
//! only runs a few messages to prove that it works.
//!
//! The spam-shaped scenarios send unsigned 32 KiB messages from a domain
//! whose SPF record fails every client, once decided at end of message
//! (`reject_at_rcpt = false`, as before #14) and once at RCPT TO.

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{dns::Zone, message, send_on, sender_zone, Daemon, TestKey, Transaction};
use std::time::{Duration, Instant};

struct Scenario {
    name: &'static str,
    key: TestKey,
    sign: bool,
    /// The sender's SPF record fails every client.
    spf_fails: bool,
    /// Extra configuration (top-level keys).
    extra: &'static str,
    /// Body padding, octets.
    padding: usize,
}

impl Scenario {
    fn new(name: &'static str, key: TestKey, sign: bool) -> Self {
        Self {
            name,
            key,
            sign,
            spf_fails: false,
            extra: "",
            padding: 0,
        }
    }

    fn spam(name: &'static str, extra: &'static str) -> Self {
        Self {
            spf_fails: true,
            extra,
            padding: 32 * 1024,
            ..Self::new(name, TestKey::ed25519(), false)
        }
    }

    fn zone(&self) -> Zone {
        let zone = if self.spf_fails {
            Zone::default()
                .txt("sender.test", "v=spf1 -all")
                .mx("sender.test", 10, "mx.sender.test")
                .a("mx.sender.test", std::net::Ipv4Addr::new(127, 0, 0, 25))
        } else {
            sender_zone()
        };
        zone.txt("mailkey.sender.test", &self.key.record)
    }

    fn message(&self, from: &str) -> String {
        let mut body = message(from);
        let line = "Buy now! Limited offer, click the link below to claim your prize.\r\n";
        while body.len() < self.padding {
            body.push_str(line);
        }
        if self.sign {
            self.key.sign(&body, "sender.test", "mailkey")
        } else {
            body
        }
    }
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (connections, per_connection) = if full { (16, 250) } else { (2, 3) };
    println!("mailkey-milter benchmark: {connections} concurrent MTA connections (unix socket) x {per_connection} messages");
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "scenario", "msg/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "MB sent", "MB spared"
    );
    let scenarios = [
        Scenario::new("ed25519 signed (pass)", TestKey::ed25519(), true),
        Scenario::new("rsa-2048 signed (pass)", TestKey::rsa(2048), true),
        Scenario::new("unsigned (reject 5.7.20)", TestKey::ed25519(), false),
        Scenario::spam("spam, SPF fail, reject at EOM", "reject_at_rcpt = false"),
        Scenario::spam("spam, SPF fail, reject at RCPT", ""),
    ];
    for s in scenarios {
        let dns = common::dns::TestDns::start(s.zone()).await;
        // A unix socket, as many installations use: over loopback TCP the
        // test client's separate small writes (macros, then the command)
        // meet Nagle's algorithm and delayed ACKs, which measures the
        // client, not the milter (a real MTA writes both at once).
        let path = std::env::temp_dir().join(format!("mailkey-bench-{}.sock", std::process::id()));
        let daemon = Daemon::start_unix(&common::config(&dns, s.extra), &path).await;
        let from = "alice@sender.test";
        let msg = s.message(from);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (path, msg) = (path.clone(), msg.clone());
            tasks.push(tokio::spawn(async move {
                let ip = format!("127.0.0.{}", 10 + c);
                let mut conn =
                    common::open_unix(&path, ip.parse().expect("ip"), "mail.sender.test").await;
                let mut latencies = Vec::with_capacity(per_connection);
                // Message octets the milter received, and those it never
                // had to (the MTA stops at a rejected RCPT).
                let (mut sent, mut spared) = (0, 0);
                for _ in 0..per_connection {
                    let t = Instant::now();
                    let outcome =
                        send_on(&mut conn, &Transaction::new(&ip, from, msg.clone())).await;
                    latencies.push(t.elapsed());
                    assert!(outcome.is_accept() || !outcome.reply().is_empty());
                    if outcome.at_rcpt {
                        spared += msg.len();
                    } else {
                        sent += msg.len();
                    }
                }
                (latencies, sent, spared)
            }));
        }
        let mut all: Vec<Duration> = Vec::new();
        let (mut sent, mut spared) = (0, 0);
        for t in tasks {
            let (latencies, s, n) = t.await.expect("client task");
            all.extend(latencies);
            sent += s;
            spared += n;
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| {
            all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0
        };
        let mb = |n: usize| n as f64 / 1e6;
        println!(
            "{:<34} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.1} {:>10.1}",
            s.name,
            all.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            mb(sent),
            mb(spared)
        );
        daemon.shutdown().await;
        let _ = std::fs::remove_file(&path);
    }
}
