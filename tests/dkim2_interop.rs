//! The DKIM2 interoperability vectors (mail-auth's
//! `resources/dkim2/cases.json`: messages signed by the reference
//! implementations for the dkim2.eu and dkim2.com test domains, each with
//! the envelope it was sent with, the time it is verified at and the
//! expected result) through our DKIM2 check: the keys of `dns.json` are
//! served by a real DNS server on 127.0.0.1 and fetched through our
//! resolver and caches, the clock is the vector's.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::dns::{TestDns, Zone};
use mailkey_milter::{
    checks::{dkim2, Status},
    config::{Alignment, DnsConfig, NameServer},
    dkim2::verify::{verify, Arrival},
    dns::Dns,
};
use std::path::PathBuf;

fn resource(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("vendor/mail-auth/resources/dkim2")
        .join(name)
}

fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read(resource(name)).expect("vector file");
    serde_json::from_slice(&text).expect("JSON")
}

/// Every key of `dns.json` as a TXT record.
fn zone() -> Zone {
    let mut zone = Zone::default();
    let dns = json("dns.json");
    for (domain, selectors) in dns.as_object().expect("domains") {
        for (selector, records) in selectors.as_object().expect("selectors") {
            for record in records.as_array().expect("records") {
                let value = record[1].as_str().expect("TXT value");
                zone = zone.txt(&format!("{selector}.{domain}"), value);
            }
        }
    }
    zone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interop_vector_gives_its_expected_result() {
    let server = TestDns::start(zone()).await;
    let dns = Dns::new(&DnsConfig {
        nameservers: vec![NameServer(server.addr())],
        timeout_ms: 2000,
        ..DnsConfig::default()
    })
    .expect("resolver");
    let cases = json("cases.json");
    let cases = cases.as_array().expect("cases");
    assert!(cases.len() >= 60, "{} vectors", cases.len());
    let (mut failures, mut counts) = (Vec::new(), std::collections::BTreeMap::new());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let expected = case["expected"].as_str().expect("expected");
        let message = std::fs::read(resource(&format!(
            "expected/{}",
            case["file"].as_str().expect("file")
        )))
        .expect("message");
        let mail_from = case["mail_from"].as_str().expect("mail_from");
        let rcpt_to: Vec<String> = case["rcpt_to"]
            .as_array()
            .expect("rcpt_to")
            .iter()
            .map(|r| r.as_str().expect("rcpt").to_string())
            .collect();
        let now = case["now"].as_u64().expect("now");
        // MAIL FROM as the milter has it: without the angle brackets.
        let bare = mail_from.trim_start_matches('<').trim_end_matches('>');
        let arrival = Arrival {
            mail_from: bare,
            rcpt_to: &rcpt_to,
        };
        let outcome = verify(&dns, arrival, &message, now).await;
        let domain = bare.rsplit_once('@').map(|(_, d)| d);
        let result = dkim2::result(&outcome, domain, Alignment::Relaxed);
        *counts.entry(expected).or_insert(0) += 1;
        if result.status.as_str() != expected {
            failures.push(format!(
                "{name}: expected {expected}, got {} ({:?})",
                result.status, result.reason
            ));
        }
        // A pass names the originator; a failure says why.
        match result.status {
            Status::Pass => assert!(
                result.props.iter().any(|(n, _)| *n == "header.d"),
                "{name}: {result:?}"
            ),
            _ => assert!(result.reason.is_some(), "{name}: {result:?}"),
        }
    }
    println!("{} vectors: {counts:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} vectors diverged:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
