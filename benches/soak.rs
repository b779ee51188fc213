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

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "soak/clients.rs"]
mod clients;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "soak/daemon.rs"]
mod daemon;

use clients::{Clients, Counts, Hold, Msg, MIX};
use common::{header_fields, message, TestKey};
use daemon::{memory_kib, Daemon, Ended, Sampler};
use std::{
    ffi::CString,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

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
        fields: header_fields(head),
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
            fields: header_fields(head),
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
