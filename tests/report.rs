//! `mailkey-milter report` on logs the real daemon wrote: two daemons ("two
//! hosts") in monitor mode, driven over their milter sockets with traffic
//! whose effect per check is known, log JSON lines to stderr; the report
//! must give exactly the counts the traffic implies, in text, JSON and HTML
//! (the page read back from a real browser's DOM).

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "report/expect.rs"]
mod expect;
#[path = "report/outputs.rs"]
mod outputs;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{free_addr, temp_dir, write, Process},
    send, TestKey, Transaction,
};
use expect::{check_json, expect, json, pairs, report, text_output, top};
use indymilter_test::Status;
use outputs::{html, lookups, refusals};
use serde_json::Value;
use std::{net::Ipv4Addr, path::Path, time::Duration};

/// One message and what each check (mailkey, spf, tls, mx) must make of it:
/// `a` accept, `r` reject, `t` tempfail; `None`: a trusted client.
pub struct Msg {
    pub client: &'static str,
    pub from: &'static str,
    pub signed: bool,
    pub tls: bool,
    pub expect: Option<[char; 4]>,
}

const fn m(client: &'static str, from: &'static str, signed: bool, tls: bool, e: &str) -> Msg {
    let b = e.as_bytes();
    Msg {
        client,
        from,
        signed,
        tls,
        expect: Some([b[0] as char, b[1] as char, b[2] as char, b[3] as char]),
    }
}

/// Host A's traffic. `nokey.test` publishes no key: its unsigned mail gets
/// mailkey=none, which `no_key = "accept"` (the default) does not reject.
const HOST_A: [Msg; 12] = [
    m("127.0.1.10", "a@good.test", true, true, "aaaa"),
    m("127.0.1.10", "b@good.test", true, true, "aaaa"),
    m("127.0.1.10", "c@good.test", true, true, "aaaa"),
    m("127.0.1.11", "d@good.test", false, true, "raaa"),
    m("127.0.1.11", "e@good.test", false, true, "raaa"),
    m("127.0.2.10", "a@softspf.test", true, true, "araa"),
    m("127.0.2.10", "b@softspf.test", true, true, "araa"),
    m("127.0.2.20", "a@nomx.test", true, false, "aarr"),
    m("127.0.1.12", "a@nokey.test", false, true, "aaaa"),
    m("127.0.1.13", "a@tempfail.test", true, true, "atat"),
    Msg {
        client: "127.0.0.1",
        from: "a@good.test",
        signed: false,
        tls: false,
        expect: None,
    },
    m("::1", "f@good.test", false, false, "rara"),
];

/// Host B's traffic (its log is gzip'd, as after rotation), plus one
/// message from the exempt `partner.test` (`[exempt]`), which the daemon
/// logs with `"exempt": true` and the report must count apart.
const HOST_B: [Msg; 4] = [
    m("127.0.3.5", "g@good.test", false, true, "raaa"),
    m("127.0.3.5", "h@good.test", false, true, "raaa"),
    m("127.0.2.11", "c@softspf.test", true, true, "araa"),
    m("127.0.3.6", "i@good.test", true, true, "aaaa"),
];

/// The dates the two logs are moved to (times of day kept), so days and
/// `--since`/`--until` do not depend on when the test runs.
const DAY_A: &str = "2026-11-21";
const DAY_B: &str = "2026-11-20";
pub const SCOPES: [&str; 5] = ["mailkey", "spf", "tls", "mx", "all"];

fn zone(key: &TestKey) -> Zone {
    let strict = "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all";
    let mut z = Zone::default()
        .txt("good.test", strict)
        .mx("good.test", 10, "mx.good.test")
        .txt("softspf.test", "v=spf1 ~all")
        .mx("softspf.test", 10, "mx.good.test")
        .txt("nomx.test", strict)
        .txt("nokey.test", strict)
        .mx("nokey.test", 10, "mx.good.test")
        .servfail("tempfail.test")
        .txt("partner.test", strict)
        .mx("partner.test", 10, "mx.good.test")
        .a("mx.good.test", Ipv4Addr::new(127, 0, 0, 25));
    for d in ["good", "softspf", "nomx", "tempfail", "partner"] {
        z = z.txt(&format!("mailkey.{d}.test"), &key.record);
    }
    z
}

fn daemon_config(dns: &TestDns, addr: std::net::SocketAddr) -> String {
    format!(
        "listen = \"inet:{addr}\"\nmode = \"monitor\"\nlog_format = \"json\"\n\
         authserv_id = \"mx.receiver.test\"\ntrusted_networks = [\"127.0.0.1/32\"]\n\
         [exempt]\ndomains = [\"partner.test\"]\n\
         [dns]\nnameservers = [\"{}\"]\ntimeout_ms = 500\n",
        dns.addr()
    )
}

/// Runs a daemon, sends `traffic` (and with `exempt`, one unsigned message
/// from the exempt partner.test, which mailkey alone would reject), and
/// returns everything it logged.
async fn host(
    config: &Path,
    dns: &TestDns,
    key: &TestKey,
    traffic: &[Msg],
    exempt: bool,
) -> Vec<String> {
    let addr = free_addr();
    write(config, &daemon_config(dns, addr));
    let daemon = Process::start(&["--config", config.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    for (i, msg) in traffic.iter().enumerate() {
        let domain = msg.from.split_once('@').unwrap().1;
        let text = message(msg.from);
        let text = if msg.signed {
            key.sign(&text, domain, "mailkey")
        } else {
            text
        };
        let mut t = Transaction::new(msg.client, msg.from, text);
        if !msg.tls {
            t.tls_macros.clear();
        }
        let outcome = send(addr, &t).await;
        // Monitor mode: everything is accepted, whatever it would do.
        assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
        wait_lines(&daemon, i + 1).await;
    }
    if exempt {
        let from = "p@partner.test";
        let outcome = send(addr, &Transaction::new("127.0.3.7", from, message(from))).await;
        assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
        wait_lines(&daemon, traffic.len() + 1).await;
    }
    let log = daemon.log();
    check_lines(&log, traffic, exempt);
    log
}

async fn wait_lines(daemon: &Process, n: usize) {
    for _ in 0..400 {
        if message_lines(&daemon.log()).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not {n} message lines:\n{}", daemon.log().join("\n"));
}

fn message_lines(log: &[String]) -> Vec<Value> {
    log.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "message")
        .collect()
}

/// Every per-message line has `log_version` 2 and the effects the traffic
/// implies; the daemon's own `would_reject` agrees with "all four". The
/// exempt line (if any) says so, and what enforcing would have done.
fn check_lines(log: &[String], traffic: &[Msg], exempt: bool) {
    let (exempt_lines, lines): (Vec<Value>, Vec<Value>) = message_lines(log)
        .into_iter()
        .partition(|l| l["exempt"] == true);
    assert_eq!(
        exempt_lines.len(),
        usize::from(exempt),
        "{}",
        log.join("\n")
    );
    for line in &exempt_lines {
        assert_eq!(line["exempt_by"], "domain partner.test", "{line}");
        assert_eq!(line["mailkey.effect"], "reject", "{line}");
        assert_eq!(line["would_reject"], "550 5.7.20", "{line}");
    }
    assert_eq!(lines.len(), traffic.len(), "{}", log.join("\n"));
    println!("a real line: {}", serde_json::to_string(&lines[3]).unwrap());
    for (line, msg) in lines.iter().zip(traffic) {
        assert_eq!(line["log_version"], 2, "{line}");
        let Some(expect) = msg.expect else {
            assert_eq!(line["trusted"], "trusted-network", "{line}");
            continue;
        };
        for (check, e) in SCOPES.iter().zip(expect) {
            let word = match e {
                'a' => "accept",
                'r' => "reject",
                _ => "tempfail",
            };
            assert_eq!(line[format!("{check}.effect")], word, "{check}: {line}");
        }
        let would = line["would_reject"].as_str().unwrap();
        match all_four(expect) {
            'r' => assert!(would.starts_with('5'), "{line}"),
            't' => assert!(would.starts_with('4'), "{line}"),
            _ => assert_eq!(would, "-", "{line}"),
        }
    }
}

/// The daemon's rule for several enforced checks: a reject wins, then a
/// tempfail.
pub fn all_four(e: [char; 4]) -> char {
    if e.contains(&'r') {
        'r'
    } else if e.contains(&'t') {
        't'
    } else {
        'a'
    }
}

/// The log moved to `day`.
fn to_day(log: &[String], day: &str) -> String {
    let out: Vec<String> = log
        .iter()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(mut v) => {
                let ts = v["timestamp"].as_str().expect("timestamp").to_string();
                v["timestamp"] = Value::from(format!("{day}{}", &ts[10..]));
                v.to_string()
            }
            Err(_) => l.clone(),
        })
        .collect();
    out.join("\n") + "\n"
}

#[tokio::test]
async fn report_counts_what_enforcing_would_reject() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = temp_dir("report");
    let config = dir.join("mk.toml");
    let log_a = host(&config, &dns, &key, &HOST_A, false).await;
    let log_b = host(&config, &dns, &key, &HOST_B, true).await;

    // Host A's log as written; host B's gzip'd under a name without .gz
    // (the report goes by the magic bytes).
    let file_a = dir.join("a.log");
    write(&file_a, &to_day(&log_a, DAY_A));
    let file_b = dir.join("b.log.1");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, to_day(&log_b, DAY_B).as_bytes()).unwrap();
    std::fs::write(&file_b, gz.finish().unwrap()).unwrap();
    let (a, b) = (file_a.to_str().unwrap(), file_b.to_str().unwrap());

    let all = expect(&[(DAY_A, &HOST_A, 0), (DAY_B, &HOST_B, 1)]);
    // The known numbers, spelled out.
    assert_eq!(
        (all.messages, all.checked, all.trusted, all.exempt),
        (17, 15, 1, 1)
    );
    assert_eq!(all.reject, [5, 3, 2, 1, 9]);
    assert_eq!(all.tempfail, [0, 1, 0, 1, 1]);

    let v = json(&[a, b]).await;
    check_json(&v, &all);
    assert_eq!(top(&v, 0, "top_domains"), pairs(&[("good.test", 5)]));
    assert_eq!(
        top(&v, 0, "top_networks"),
        pairs(&[("127.0.1.0/24", 2), ("127.0.3.0/24", 2), ("::/48", 1)])
    );
    assert_eq!(top(&v, 1, "top_domains"), pairs(&[("softspf.test", 3)]));
    assert_eq!(top(&v, 1, "top_networks"), pairs(&[("127.0.2.0/24", 3)]));
    assert_eq!(
        top(&v, 2, "top_domains"),
        pairs(&[("good.test", 1), ("nomx.test", 1)])
    );
    assert_eq!(top(&v, 3, "top_networks"), pairs(&[("127.0.2.0/24", 1)]));
    assert_eq!(
        top(&v, 4, "top_domains"),
        pairs(&[("good.test", 5), ("softspf.test", 3), ("nomx.test", 1)])
    );

    // The period: one host's day each.
    check_json(
        &json(&[a, b, "--since", DAY_A]).await,
        &expect(&[(DAY_A, &HOST_A, 0)]),
    );
    check_json(
        &json(&[a, b, "--until", DAY_B]).await,
        &expect(&[(DAY_B, &HOST_B, 1)]),
    );
    let since = format!("{DAY_B}T00:00:00+00:00");
    let until = format!("{DAY_A}T00:00:00Z");
    check_json(
        &json(&[b, a, "--since", &since, "--until", &until]).await,
        &expect(&[(DAY_B, &HOST_B, 1)]),
    );

    // Standard input, the log exactly as the daemon wrote it.
    let raw = log_a.join("\n") + "\n";
    let out = report(&["-", "--json"], raw.as_bytes()).await;
    // Its startup lines are JSON too: ignored without a word.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let v_raw: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v_raw["checked"], 11);
    assert_eq!(v_raw["impact"][4]["reject"], 6);

    text_output(a, b, &all).await;
    lookups(&config, a, b).await;
    refusals(&dir, &log_a).await;
    html(&dir, a, b, &v).await;
}

/// `--since`/`--until` keep fractions of a second (#21: `…46.863Z` was
/// read as `…46Z`): of three lines within one second, the period from
/// `.863` until `.9` holds exactly the one logged at `.8635`.
#[tokio::test]
async fn since_and_until_keep_fractions_of_a_second() {
    let line = |at: &str| {
        format!(
            "{{\"timestamp\":\"2026-11-23T10:00:46.{at}Z\",\"level\":\"INFO\",\"message\":\"message\",\
             \"log_version\":1,\"queue_id\":\"Q{at}\",\"client\":\"192.0.2.1\",\"domain\":\"a.test\",\
             \"mailkey.effect\":\"reject\",\"spf.effect\":\"accept\",\"tls.effect\":\"accept\",\
             \"mx.effect\":\"accept\"}}\n"
        )
    };
    let log = [line("100000"), line("863500"), line("950000")].concat();
    let out = report(
        &[
            "-",
            "--json",
            "--since",
            "2026-11-23T10:00:46.863Z",
            "--until",
            "2026-11-23T11:00:46.9+01:00",
        ],
        log.as_bytes(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checked"], 1, "{v:#}");
    assert_eq!(v["since"], "2026-11-23T10:00:46.863Z", "{v:#}");
    assert_eq!(v["until"], "2026-11-23T10:00:46.9Z", "{v:#}");
    assert_eq!(v["first"], "2026-11-23T10:00:46.8635Z", "{v:#}");
}
