//! What an ARC chain costs the milter (issue #21, item 6), against an
//! ordinary message of the same size: CPU time of the daemon's threads
//! (its async workers and its blocking pool, read from
//! /proc/self/task/*/schedstat in nanoseconds), per message, through the
//! real milter socket, with keys on the test DNS server. The client, the
//! DNS server and the message building run on other threads and are not
//! counted. The bar: at most 5× the ordinary message.
//!
//! `cargo bench --ignore-rust-version --bench arc_cost` prints one row per
//! scenario; under `cargo test` it sends small versions once to prove that
//! it works. It runs against any version of the daemon that accepts its
//! configuration (for a before/after comparison: the `[arc]` key file of
//! #21, or the `[signing]` key that sealed before it).

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{
    arc::{padded_chain, SealKey},
    dns::TestDns,
    message, process, send_on, Daemon, TestKey, Transaction,
};
use std::{fs, path::Path, time::Duration};

const FROM: &str = "alice@sender.test";
const CLIENT: &str = "127.0.0.10";
const LIST: &str = "lists.example.org";
const RESULTS: &str = "mailkey=pass header.d=sender.test; spf=pass smtp.mailfrom=alice@sender.test";

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// ARC sets, and the octets each set's `ARC-Authentication-Results`
    /// is padded with.
    sets: usize,
    pad: usize,
    /// Body padding of both messages, octets.
    body: usize,
    key_bits: u32,
    /// `[arc] seal = true` (validation needed for cv=) instead of trusting
    /// the newest sealer.
    seal: bool,
    /// Extra header fields in both messages, and header names in the
    /// newest `ARC-Message-Signature`'s `h=` (0: five present ones).
    fields: usize,
    signed: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "50 sets x 90 KB, trusted sealer",
        sets: 50,
        pad: 90 * 1024,
        body: 0,
        key_bits: 2048,
        seal: false,
        fields: 0,
        signed: 0,
    },
    Scenario {
        name: "8 sets, ~31 KiB, RSA-4096, trusted",
        sets: 8,
        pad: 1800,
        body: 0,
        key_bits: 4096,
        seal: false,
        fields: 0,
        signed: 0,
    },
    Scenario {
        name: "8 sets, ~31 KiB, RSA-4096, sealing",
        sets: 8,
        pad: 1800,
        body: 0,
        key_bits: 4096,
        seal: true,
        fields: 0,
        signed: 0,
    },
    Scenario {
        name: "1 set, 1 MiB body, trusted sealer",
        sets: 1,
        pad: 0,
        body: 1024 * 1024,
        key_bits: 2048,
        seal: false,
        fields: 0,
        signed: 0,
    },
    Scenario {
        name: "1 set, h= 64 names, 980 fields, sealing",
        sets: 1,
        pad: 0,
        body: 0,
        key_bits: 2048,
        seal: true,
        fields: 980,
        signed: 64,
    },
];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 5 } else { 1 };
    // The daemon's own runtime, threads named for the CPU accounting.
    let daemon_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mk-daemon")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("daemon runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    println!("ARC chains vs ordinary messages of the same size: daemon CPU per message");
    println!(
        "{:<38} {:>9} {:>12} {:>12} {:>7}  ARC result",
        "scenario", "size KB", "ordinary us", "ARC us", "ratio"
    );
    for s in SCENARIOS {
        let s = if full { *s } else { s.small() };
        let row = client_rt.block_on(run(&s, &daemon_rt, rounds, if full { 20 } else { 1 }));
        println!(
            "{:<38} {:>9.0} {:>12.0} {:>12.0} {:>7.2}  {}",
            s.name,
            row.size as f64 / 1024.0,
            row.ordinary_ns / 1e3,
            row.arc_ns / 1e3,
            row.arc_ns / row.ordinary_ns,
            row.arc
        );
    }
}

impl Scenario {
    /// A version that builds and sends in a moment (under `cargo test`).
    fn small(&self) -> Scenario {
        Scenario {
            sets: self.sets.min(10),
            pad: self.pad.min(1024),
            body: self.body.min(16 * 1024),
            key_bits: 2048,
            ..*self
        }
    }
}

struct Row {
    /// The `arc=` of our header for the chained message.
    arc: String,
    size: usize,
    ordinary_ns: f64,
    arc_ns: f64,
}

async fn run(s: &Scenario, daemon_rt: &tokio::runtime::Runtime, rounds: usize, per: usize) -> Row {
    let origin = TestKey::ed25519();
    // The chain's sealers use `key`; we seal with an ordinary RSA-2048 key.
    let (key, ours) = (SealKey::rsa(s.key_bits), SealKey::new());
    let mut zone = common::sender_zone()
        .txt("mailkey.sender.test", &origin.record)
        .txt(&format!("arc._domainkey.{LIST}"), &key.record)
        .txt("arc._domainkey.forwarder.test", &ours.record)
        .txt("mailkey._domainkey.forwarder.test", &ours.record);
    for i in 1..s.sets {
        zone = zone.txt(&format!("arc._domainkey.a{i}.test"), &key.record);
    }
    let dns = TestDns::start(zone).await;
    let dir = process::temp_dir("arc-cost");
    let key_file = dir.join("seal.pem");
    process::write(&key_file, &ours.pem());
    let config = config(&dns, s.seal, &key_file);
    let daemon = daemon_rt
        .spawn(async move { Daemon::start(&config).await })
        .await
        .expect("daemon started");

    let filler: String = (0..s.fields)
        .map(|i| format!("X-Filler-{i}: v\r\n"))
        .collect();
    let body = "Some text of a message body.\r\n".repeat(s.body / 30);
    let plain = format!("{filler}{}{body}", message(FROM));
    let signed = origin.sign(&plain, "sender.test", "mailkey");
    let chained = if s.signed == 0 {
        padded_chain(&key, &signed, s.sets, LIST, RESULTS, s.pad)
    } else {
        let names: Vec<String> = (0..s.signed).map(|i| format!("X-Absent-{i}")).collect();
        key.seal_signing(&signed, LIST, RESULTS, &names)
    };
    // The ordinary message: as large, the difference in its body.
    let filler = "Some more text of a message body, to the same size.\r\n";
    let mut ordinary = plain.clone();
    while ordinary.len() + (signed.len() - plain.len()) < chained.len() {
        ordinary.push_str(filler);
    }
    let ordinary = origin.sign(&ordinary, "sender.test", "mailkey");

    let mut conn = common::open(daemon.addr, CLIENT.parse().expect("ip"), "mail.sender.test").await;
    // Warm the caches and the connection, then alternate.
    cost(&mut conn, &ordinary, per).await;
    let outcome = send_on(&mut conn, &Transaction::new(CLIENT, FROM, chained.clone())).await;
    let header = outcome.auth_results().unwrap_or_default();
    let arc = header.rsplit("arc=").next().unwrap_or_default();
    let arc = format!("arc={}", arc.split(';').next().unwrap_or_default().trim());
    let (mut o_ns, mut a_ns) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        o_ns.push(cost(&mut conn, &ordinary, per).await);
        a_ns.push(cost(&mut conn, &chained, per).await);
    }
    let _ = conn.close().await;
    let _ = daemon_rt.spawn(daemon.shutdown()).await;
    let _ = fs::remove_dir_all(&*dir);
    Row {
        arc,
        size: chained.len().max(ordinary.len()),
        ordinary_ns: median(o_ns),
        arc_ns: median(a_ns),
    }
}

/// The receiver's configuration: trusts the list's seals, or seals
/// itself. Sealing is configured as this version of the daemon takes it.
fn config(dns: &TestDns, seal: bool, key_file: &Path) -> String {
    let base = common::config(dns, "reject_at_rcpt = false\n[tls]\nprobe = false\n");
    if !seal {
        return format!("{base}[forwarding]\ntrusted_arc_sealers = [\"{LIST}\"]\n");
    }
    let file = key_file.display();
    let arc = format!(
        "{base}[arc]\nseal = true\nseal_domain = \"forwarder.test\"\nkey_file = \"{file}\"\n"
    );
    let parsed = mailkey_milter::config::Config::parse(&arc, Path::new("bench.toml"));
    match parsed {
        Ok(_) => arc,
        // Before #21: the [signing] key of seal_domain sealed.
        Err(_) => format!(
            "{base}[arc]\nseal = true\nseal_domain = \"forwarder.test\"\n\
             [[signing.domains]]\ndomain = \"forwarder.test\"\nkey_file = \"{file}\"\n"
        ),
    }
}

/// Daemon CPU per message for `per` sends of `m`, in nanoseconds.
async fn cost(conn: &mut indymilter_test::TestConnection, m: &str, per: usize) -> f64 {
    let before = daemon_cpu_ns();
    for _ in 0..per {
        let o = send_on(conn, &Transaction::new(CLIENT, FROM, m.to_string())).await;
        assert!(o.is_accept(), "{}", o.reply());
    }
    (daemon_cpu_ns() - before) as f64 / per as f64
}

/// CPU time of the daemon's threads so far, in nanoseconds.
fn daemon_cpu_ns() -> u64 {
    let mut total = 0;
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("mk-daemon") {
            continue;
        }
        let stat = fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
