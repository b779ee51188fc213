//! `/metrics` of the real binary, scraped over HTTP after traffic whose
//! effect is known, parsed with a Prometheus text parser: exact counts per
//! verdict, check result, reply code, exemption, probe; and the Grafana
//! dashboard (contrib/grafana) names only metrics the daemon exports.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{free_addr, temp_dir, write, Process},
    send,
    tls::{probe_port, Behaviour, Responder},
    TestKey, Transaction,
};
use prometheus_parse::{Sample, Scrape, Value};
use std::{collections::BTreeSet, net::Ipv4Addr, net::SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn zone(key: &TestKey) -> Zone {
    let mut z = Zone::default().a("mx.good.test", Ipv4Addr::new(127, 0, 0, 25));
    for d in ["good.test", "partner.test"] {
        z = z
            .txt(d, "v=spf1 ip4:127.0.0.0/8 -all")
            .mx(d, 10, "mx.good.test")
            .txt(&format!("mailkey.{d}"), &key.record);
    }
    z
}

/// `GET /metrics`, the body parsed.
async fn scrape(addr: SocketAddr) -> (String, Scrape) {
    let response = get(addr).await;
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(head.contains("Content-Type: application/openmetrics-text"));
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("parse");
    (body.to_string(), parsed)
}

fn number(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{}: not a number: {other:?}", s.metric),
    }
}

/// The value of the one series `name{labels}`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    number(found[0])
}

/// Every series name in the scrape as PromQL sees it.
fn series_names(scrape: &Scrape) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for s in &scrape.samples {
        if matches!(s.value, Value::Histogram(_)) {
            names.insert(format!("{}_bucket", s.metric));
        } else {
            names.insert(s.metric.clone());
        }
    }
    names
}

#[tokio::test]
async fn metrics_count_the_traffic_and_the_dashboard_uses_only_them() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = temp_dir("metrics");
    let (milter, metrics) = (free_addr(), free_addr());
    // 127.0.0.3's port answers 421: the one probe fails at once, and
    // temporarily (temperror; a port nobody listens on would be a 550).
    let _busy = Responder::start("127.0.0.3", Behaviour::Busy);
    let closed = probe_port();
    let config = dir.join("mk.toml");
    write(
        &config,
        &format!(
            "listen = \"inet:{milter}\"\nmode = \"enforce\"\nlog_format = \"json\"\n\
             authserv_id = \"mx.receiver.test\"\ntrusted_networks = [\"127.0.0.1/32\"]\n\
             [dns]\nnameservers = [\"{}\"]\ntimeout_ms = 500\n\
             [tls]\nprobe_port = {closed}\nprobe_timeout_ms = 3000\n\
             [exempt]\ndomains = [\"partner.test\"]\n\
             [metrics]\nlisten = \"{metrics}\"\n",
            dns.addr()
        ),
    );
    let daemon = Process::start(&["--config", config.to_str().unwrap()]);
    daemon.wait_for(&["metrics on"]).await;

    // Before any traffic every series is there, at 0.
    let (_, before) = scrape(metrics).await;
    assert_eq!(
        value(
            &before,
            "mailkey_milter_messages_total",
            &[("verdict", "reject")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &before,
            "mailkey_milter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let signed = |from: &'static str| {
        let domain = from.split_once('@').unwrap().1;
        Transaction::new(
            "127.0.0.2",
            from,
            key.sign(&message(from), domain, "mailkey"),
        )
    };
    let unsigned = |from: &'static str| Transaction::new("127.0.0.2", from, message(from));
    // 1: passes everything.
    assert!(send(milter, &signed("a@good.test")).await.is_accept());
    // 2, 3: no signature: 550 5.7.20.
    for from in ["b@good.test", "c@good.test"] {
        let o = send(milter, &unsigned(from)).await;
        assert!(o.reply().starts_with("550-5.7.20"), "{}", o.reply());
    }
    // 4: the same from an exempt domain: accepted, would reject.
    assert!(send(milter, &unsigned("a@partner.test")).await.is_accept());
    // 5: a trusted client.
    let mut trusted = unsigned("t@good.test");
    trusted.client_ip = "127.0.0.1".parse().unwrap();
    assert!(send(milter, &trusted).await.is_accept());
    // 6: TLS without a client certificate, from 127.0.0.3: a probe, which
    // is told 421: 451.
    let mut plain = signed("d@good.test");
    plain.client_ip = "127.0.0.3".parse().unwrap();
    plain.tls_macros.truncate(3);
    let o = send(milter, &plain).await;
    // `451-4.7.5 …` → `451 4.7.5`
    let first = o.reply().replacen('-', " ", 1);
    let tempfail = first
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(tempfail.starts_with("451 4."), "{}", o.reply());
    daemon
        .wait_for(&["\"exempt\":true", "\"exempt_by\":\"domain partner.test\""])
        .await;

    let (body, m) = scrape(metrics).await;
    println!("{body}");
    let messages = |verdict| value(&m, "mailkey_milter_messages_total", &[("verdict", verdict)]);
    assert_eq!(
        [
            messages("accept"),
            messages("reject"),
            messages("tempfail"),
            messages("would_reject")
        ],
        [2.0, 2.0, 1.0, 1.0]
    );
    assert_eq!(value(&m, "mailkey_milter_trusted_messages_total", &[]), 1.0);
    assert_eq!(value(&m, "mailkey_milter_exempt_messages_total", &[]), 1.0);
    let replies = |code| value(&m, "mailkey_milter_replies_total", &[("code", code)]);
    assert_eq!(replies("550 5.7.20"), 2.0);
    assert_eq!(replies(&tempfail), 1.0);
    let result = |check, result| {
        value(
            &m,
            "mailkey_milter_check_results_total",
            &[("check", check), ("result", result)],
        )
    };
    // Five checked messages (the trusted one is not checked).
    assert_eq!(
        [result("mailkey", "pass"), result("mailkey", "fail")],
        [2.0, 3.0]
    );
    assert_eq!([result("spf", "pass"), result("mx", "pass")], [5.0, 5.0]);
    assert_eq!(
        [result("tls", "pass"), result("tls", "temperror")],
        [4.0, 1.0]
    );
    for check in ["mailkey", "spf", "tls", "mx"] {
        let count = value(
            &m,
            "mailkey_milter_check_seconds_count",
            &[("check", check)],
        );
        assert_eq!(count, 5.0, "{check}");
    }
    let probes = |outcome| {
        value(
            &m,
            "mailkey_milter_tls_probes_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        [
            probes("certificate"),
            probes("no_starttls"),
            probes("bad_certificate"),
            probes("temperror")
        ],
        [0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        value(&m, "mailkey_milter_tls_probe_seconds_count", &[]),
        1.0
    );
    assert_eq!(value(&m, "mailkey_milter_transactions_in_flight", &[]), 0.0);
    let lookups = |o| {
        value(
            &m,
            "mailkey_milter_dns_cache_lookups_total",
            &[("outcome", o)],
        )
    };
    assert!(lookups("miss") > 0.0 && lookups("hit") > 0.0, "{body}");
    assert!(value(&m, "mailkey_milter_dns_cache_entries", &[]) > 0.0);
    assert_eq!(
        value(&m, "mailkey_milter_dns_cache_evictions_total", &[]),
        0.0
    );

    dashboard_names_only_exported_metrics(&series_names(&m));

    // Transactions in flight: two MAIL FROMs without an end, then RSET
    // (abort) on one and the other connection gone.
    let mut first = common::open(milter, "127.0.0.4".parse().unwrap(), "mail.good.test").await;
    let mut second = common::open(milter, "127.0.0.4".parse().unwrap(), "mail.good.test").await;
    for conn in [&mut first, &mut second] {
        let status = conn.mail(["<x@good.test>"]).await.expect("mail");
        assert!(common::goes_on(&status), "{status:?}");
    }
    // MAIL needs no reply (negotiated): the daemon counts it when it has
    // read it.
    let in_flight = "mailkey_milter_transactions_in_flight";
    wait_for_value(metrics, in_flight, 2.0).await;
    first.abort().await.expect("abort");
    wait_for_value(metrics, in_flight, 1.0).await;
    drop(second);
    wait_for_value(metrics, in_flight, 0.0).await;
}

/// A raw `GET /metrics`: the whole response.
async fn get(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

/// Whoever reaches the metrics port cannot pile up connections there: the
/// ones beyond `MAX_CONNECTIONS` are answered 503 at once, and the slots
/// come back when connections end.
#[tokio::test]
async fn the_metrics_port_serves_a_bounded_number_of_connections() {
    let dir = temp_dir("metrics-cap");
    let (milter, metrics) = (free_addr(), free_addr());
    let config = dir.join("mk.toml");
    write(
        &config,
        &format!("listen = \"inet:{milter}\"\n[metrics]\nlisten = \"{metrics}\"\n"),
    );
    let daemon = Process::start(&["--config", config.to_str().unwrap()]);
    daemon.wait_for(&["metrics on"]).await;
    // Connections that send nothing hold every slot (for up to the scrape
    // deadline); the listener takes them in order.
    let mut idle = Vec::new();
    for _ in 0..mailkey_milter::metrics::MAX_CONNECTIONS {
        idle.push(
            tokio::net::TcpStream::connect(metrics)
                .await
                .expect("connect"),
        );
    }
    // One more is answered at once, before it says anything (so that no
    // request of ours is left unread when the daemon closes: that would
    // make the kernel reset the connection instead).
    let mut extra = tokio::net::TcpStream::connect(metrics)
        .await
        .expect("connect");
    let mut busy = String::new();
    let _ = extra.read_to_string(&mut busy).await;
    assert!(busy.starts_with("HTTP/1.0 503 "), "{busy:?}");
    drop(idle);
    let mut last = String::new();
    for _ in 0..400 {
        last = get(metrics).await;
        if last.starts_with("HTTP/1.0 200 OK") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no scrape after the idle connections closed: {last}");
}

/// Scrapes until `name` has `expected` (the milter handles an abort or a
/// closed connection without answering); panics after 20 s.
async fn wait_for_value(addr: SocketAddr, name: &str, expected: f64) {
    let mut last = f64::NAN;
    for _ in 0..400 {
        last = value(&scrape(addr).await.1, name, &[]);
        if last == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name} is {last}, not {expected}");
}

/// Every `expr` in the dashboard; each names at least one metric, and
/// every `mailkey_milter_*` name in it is a series of the real scrape.
fn dashboard_names_only_exported_metrics(exported: &BTreeSet<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/mailkey-milter.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported: {exported:?}"
            );
        }
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

/// The identifiers in a PromQL expression that are our metric names (the
/// `mailkey_milter_` prefix; label values are quoted and skipped).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_quote = false;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c == '"' {
            in_quote = !in_quote;
        }
        if !in_quote && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("mailkey_milter_") {
            names.push(word.clone());
        }
        word.clear();
    }
    names
}
