//! What a hostile sender can make one message cost (issue #21's bar: each
//! attack at most 5× the CPU of an ordinary message of the same size).
//! The real release daemon runs on a unix socket (benches/compare's
//! `start_ours`), keys, SPF and MX come from the test DNS server on
//! 127.0.0.1, and for each attack class N attack messages and N ordinary
//! signed messages of the same size are sent over one milter connection;
//! the daemon's CPU time (utime + stime, /proc/PID/stat) per message and
//! the ratio are printed, one row per class, in one run.
//!
//! `cargo bench --ignore-rust-version --bench attack_cost` (knobs:
//! ATTACK_MESSAGES, default 10; ORDINARY_MESSAGES, default 100: the least
//! sent of each, more until 200 ms of CPU were counted; ATTACK_CLASS: only
//! the classes whose name contains it). Under `cargo
//! test` it sends two of each and only checks that every message got an
//! answer and the daemon lived (timing is never a test).
//!
//! Adding a class is one more entry in [`attacks`].

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "compare/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "compare/milters.rs"]
mod milters;

use common::{dns::TestDns, message, open_unix, send_on, sender_zone, TestKey, Transaction};
use std::time::Duration;

const FROM: &str = "alice@sender.test";
const ATTACKER: &str = "mallory@attacker.test";
const CLIENT: &str = "127.0.0.10";

/// One attack class: what the attacker sends, and an ordinary signed
/// message of the same size from a well-behaved sender.
struct Attack {
    name: &'static str,
    mail_from: &'static str,
    message: String,
    ordinary: String,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (attack_n, ordinary_n) = match full {
        true => (
            number("ATTACK_MESSAGES", 10),
            number("ORDINARY_MESSAGES", 100),
        ),
        false => (2, 2),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(attack_n, ordinary_n));
}

async fn run(attack_n: usize, ordinary_n: usize) {
    let key = TestKey::ed25519();
    let zone = sender_zone()
        .txt("mailkey.sender.test", &key.record)
        .txt("attacker.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("attacker.test", 10, "mx.sender.test")
        .txt("mailkey.attacker.test", &tag_flood(&key.record, 60_000));
    let dns = TestDns::start(zone).await;
    let dir = common::process::temp_dir("attack-cost");
    let daemon = milters::start_ours(&dir, dns.addr()).await;
    let pid = daemon.pid();
    println!(
        "attack_cost: at least {attack_n} attack and {ordinary_n} ordinary messages per \
         class, more until {} ms of CPU; daemon pid {pid}",
        MIN_CPU.as_millis()
    );
    println!("| attack | size | attack CPU/msg | ordinary CPU/msg | ratio | reply to the attack |");
    println!("|---|---|---|---|---|---|");
    // ATTACK_CLASS: only the classes whose name contains it (profiling).
    let only = std::env::var("ATTACK_CLASS").unwrap_or_default();
    for attack in attacks(&key).into_iter().filter(|a| a.name.contains(&only)) {
        let (attack_cpu, reply) =
            cpu_per_message(&daemon, attack.mail_from, &attack.message, attack_n).await;
        let (ordinary_cpu, ordinary_reply) =
            cpu_per_message(&daemon, FROM, &attack.ordinary, ordinary_n).await;
        assert!(
            ordinary_reply.starts_with("accept"),
            "{}: the ordinary message was not accepted: {ordinary_reply}",
            attack.name
        );
        let ratio = match ordinary_cpu.as_secs_f64() {
            0.0 => "–".to_string(),
            ordinary => format!("{:.1}×", attack_cpu.as_secs_f64() / ordinary),
        };
        println!(
            "| {} | {:.0} KiB | {} | {} | {ratio} | {reply} |",
            attack.name,
            attack.message.len() as f64 / 1024.0,
            micros(attack_cpu),
            micros(ordinary_cpu),
        );
    }
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the daemon died"
    );
    daemon.stop().await;
}

fn micros(d: Duration) -> String {
    match d.as_micros() {
        us if us >= 10_000 => format!("{:.1} ms", us as f64 / 1000.0),
        us => format!("{us} µs"),
    }
}

/// CPU time is counted in clock ticks (10 ms): a class is measured over at
/// least this much of it, so that one tick is at most 5%.
const MIN_CPU: Duration = Duration::from_millis(200);
/// ...but never over more messages than this.
const MAX_MESSAGES: usize = 5000;

/// Sends `message` at least `n` times (after two unmeasured ones: caches
/// warm), and on until [`MIN_CPU`] was spent (in a benchmark run); returns
/// the daemon's CPU time per message and the last reply.
async fn cpu_per_message(
    daemon: &milters::Milter,
    from: &str,
    message: &str,
    n: usize,
) -> (Duration, String) {
    let mut conn = open_unix(
        &daemon.socket,
        CLIENT.parse().expect("ip"),
        "mail.sender.test",
    )
    .await;
    let t = Transaction::new(CLIENT, from, message.to_string());
    let mut reply = String::new();
    for _ in 0..2 {
        reply = describe(&send_on(&mut conn, &t).await);
    }
    let before = load::cpu_time(daemon.pid());
    let (mut sent, mut cpu) = (0, Duration::ZERO);
    while sent < n || (n > 2 && cpu < MIN_CPU && sent < MAX_MESSAGES) {
        reply = describe(&send_on(&mut conn, &t).await);
        sent += 1;
        cpu = load::cpu_time(daemon.pid()).saturating_sub(before);
    }
    (cpu / sent.max(1) as u32, reply)
}

fn describe(outcome: &common::Outcome) -> String {
    if outcome.is_accept() {
        let ar = outcome.auth_results().unwrap_or_default();
        let mailkey = ar
            .split(';')
            .find(|r| r.trim_start().starts_with("mailkey="))
            .map_or("", |r| r.trim());
        return format!("accept ({mailkey})");
    }
    let reply = outcome.reply();
    let first = reply.lines().next().unwrap_or_default().to_string();
    let at = if outcome.at_rcpt { " at RCPT" } else { "" };
    format!("{first}{at}")
}

/// The attack classes; an ARC class (50 valid sets) is one more entry.
fn attacks(key: &TestKey) -> Vec<Attack> {
    let h_list = h_list_attack(key);
    let ordinary_h = ordinary(key, h_list.len());
    let signed = key.sign(&message(ATTACKER), "attacker.test", "mailkey");
    let ordinary_k = key.sign(&message(FROM), "sender.test", "mailkey");
    let many = many_signatures(key, 200);
    let ordinary_m = ordinary(key, many.len());
    let fields = many_fields(key, h_list.len());
    vec![
        Attack {
            name: "5,000 header fields, one good signature (milter work, no DKIM attack)",
            mail_from: FROM,
            message: fields,
            ordinary: ordinary_h.clone(),
        },
        Attack {
            name: "h= lists: 5 signatures × 12,000 names, 5,000 header fields",
            mail_from: FROM,
            message: h_list,
            ordinary: ordinary_h,
        },
        Attack {
            name: "key record: 60 KB TXT, thousands of tags before p=",
            mail_from: ATTACKER,
            message: signed,
            ordinary: ordinary_k,
        },
        Attack {
            name: "200 mailkey signatures (valid bh=, bad b=)",
            mail_from: FROM,
            message: many,
            ordinary: ordinary_m,
        },
    ]
}

/// A signed ordinary message from sender.test of about `size` octets.
fn ordinary(key: &TestKey, size: usize) -> String {
    let plain = message(FROM);
    key.sign(
        &pad(&plain, size.saturating_sub(plain.len() + 400)),
        "sender.test",
        "mailkey",
    )
}

/// The tags of `signature` (a `DKIM-Signature:` field) with `b=` replaced
/// by a well-formed but wrong value, and `h=` by `h`.
fn forge(signature: &str, h: &str) -> String {
    let value = signature
        .split_once(':')
        .map_or("", |(_, v)| v)
        .replace("\r\n", "");
    let tags: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some(("b", _)) => format!("b={}", "AAAA".repeat(22)),
            Some(("h", _)) => format!("h={h}"),
            _ => t.to_string(),
        })
        .collect();
    format!("DKIM-Signature: {}\r\n", tags.join("; "))
}

/// The first header field of `signed` (our signer puts its signature
/// there) and the rest.
fn split_signature(signed: &str) -> (&str, &str) {
    let mut end = 0;
    for line in signed.split_inclusive("\r\n") {
        if end > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        end += line.len();
    }
    signed.split_at(end)
}

/// Five signatures whose `h=` names 12,000 distinct absent fields, over
/// 5,000 header fields: the body hash is right, so a verifier gets as
/// far as selecting the signed header fields (issue #21 item 4).
fn h_list_attack(key: &TestKey) -> String {
    let fields: String = (0..5000).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    let plain = format!("{fields}{}", message(FROM));
    let signed = key.sign(&plain, "sender.test", "mailkey");
    let (signature, rest) = split_signature(&signed);
    let names: Vec<String> = (0..12_000).map(base36).collect();
    // Folded every 16 names, as a signer's header would be.
    let h = names
        .chunks(16)
        .map(|c| c.join(":"))
        .collect::<Vec<_>>()
        .join(":\r\n\t");
    let forged = forge(signature, &format!("from:{h}"));
    // The body padded to the 396 KiB in all (its hash stays right:
    // the padding goes in before signing).
    let size = forged.len() * 5 + rest.len();
    let padded = pad(&plain, (396 * 1024usize).saturating_sub(size));
    let signed = key.sign(&padded, "sender.test", "mailkey");
    let (signature, rest) = split_signature(&signed);
    format!("{}{rest}", forge(signature, &format!("from:{h}")).repeat(5))
}

/// `message` with about `octets` more of body.
fn pad(message: &str, octets: usize) -> String {
    let line = "the numbers are attached and the figures are in the second table\r\n";
    format!("{message}{}", line.repeat(octets / line.len()))
}

/// `n` as three base-36 digits: 12,000 distinct names of three octets.
fn base36(n: usize) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    [n / 1296 % 36, n / 36 % 36, n % 36]
        .iter()
        .map(|&d| char::from(digits[d]))
        .collect()
}

/// The 5,000 header fields of [`h_list_attack`] and one ordinary
/// signature, padded to `size`: what the fields alone cost.
fn many_fields(key: &TestKey, size: usize) -> String {
    let fields: String = (0..5000).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    let plain = format!("{fields}{}", message(FROM));
    let padded = pad(&plain, size.saturating_sub(plain.len() + 400));
    key.sign(&padded, "sender.test", "mailkey")
}

/// `n` mailkey signatures with the right body hash and a wrong `b=`.
fn many_signatures(key: &TestKey, n: usize) -> String {
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let (signature, rest) = split_signature(&signed);
    let forged = forge(signature, "from:to:subject:date:message-id");
    format!("{}{rest}", forged.repeat(n))
}

/// A key record with `tags` octets of distinct tags before its `p=`
/// (issue #21 item 5).
fn tag_flood(record: &str, octets: usize) -> String {
    let (head, p) = record.split_once("p=").unwrap_or((record, ""));
    let mut flood = String::with_capacity(octets + record.len());
    flood.push_str(head);
    let mut i = 0;
    while flood.len() < octets {
        flood.push_str(&format!("q{i}=x; "));
        i += 1;
    }
    format!("{flood}p={p}")
}
