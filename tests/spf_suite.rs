//! The openspf RFC 7208 test suite (tests/fixtures/spf/) through our SPF
//! check — the function the daemon calls — with each scenario's zone on a
//! real DNS server on 127.0.0.1. Every case must give one of its allowed
//! results; a case that names an explanation must get exactly that one
//! quoted (`DEFAULT`: none of the domain's own).
//!
//! The suite's DNS semantics, as its reference driver implements them:
//! an `SPF` entry is served as TXT when the name has no `TXT` entry (type
//! SPF itself is no longer queried); `TXT: NONE` means no TXT; a bare
//! `TIMEOUT` makes queries of every type not answered above it time out;
//! `TYPE: TIMEOUT` only that type; names not in the zone do not exist.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::dns::{TestDns, Zone};
use hickory_resolver::proto::rr::{
    rdata::{MX, PTR, TXT},
    Name, RData, RecordType,
};
use mailkey_milter::{
    checks::spf,
    config::{DnsConfig, NameServer, SpfConfig},
    dns::Dns,
    envelope::Envelope,
};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::{BTreeMap, HashSet};

const SUITE: &str = include_str!("fixtures/spf/rfc7208-tests.yml");
/// Cases in the suite; a parse that finds fewer has lost some.
const CASES: usize = 203;
/// Our name for the `%{r}` macro.
const RECEIVER: &str = "receiver.test";

#[derive(Deserialize)]
struct Scenario {
    description: String,
    tests: BTreeMap<String, Case>,
    #[serde(default)]
    zonedata: BTreeMap<String, Vec<Value>>,
}

#[derive(Deserialize)]
struct Case {
    helo: String,
    host: String,
    mailfrom: String,
    result: Expected,
    explanation: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Expected {
    One(String),
    Any(Vec<String>),
}

impl Expected {
    fn allows(&self, got: &str) -> bool {
        match self {
            Self::One(r) => r == got,
            Self::Any(rs) => rs.iter().any(|r| r == got),
        }
    }

    fn show(&self) -> String {
        match self {
            Self::One(r) => r.clone(),
            Self::Any(rs) => rs.join("|"),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("unexpected value {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().map(text).collect(),
        single => vec![text(single)],
    }
}

fn name(s: &str) -> Name {
    let s = s.trim_end_matches('.');
    Name::from_ascii(format!("{s}."))
        .or_else(|_| Name::from_labels(s.split('.').map(str::as_bytes)))
        .expect("zone name")
}

/// A TXT record of these strings, each split at 255 octets. No strings at
/// all (`SPF: [ ]`) cannot be put on the wire: one empty string stands in.
fn txt(strings: &[String]) -> RData {
    let mut parts: Vec<&[u8]> = strings
        .iter()
        .flat_map(|s| s.as_bytes().chunks(255))
        .collect();
    if parts.is_empty() {
        parts.push(b"");
    }
    RData::TXT(TXT::from_bytes(parts))
}

/// The records of one name, with the suite's rules for SPF, NONE and
/// TIMEOUT.
fn add_name(mut zone: Zone, owner: &str, entries: &[Value]) -> Zone {
    let has_txt = entries
        .iter()
        .any(|e| e.as_mapping().is_some_and(|m| m.contains_key("TXT")));
    let mut answered: HashSet<RecordType> = HashSet::new();
    let mut spf_as_txt = Vec::new();
    for entry in entries {
        let Some(map) = entry.as_mapping() else {
            // A bare TIMEOUT: what is not answered above it times out, and
            // nothing below it is served.
            assert_eq!(entry.as_str(), Some("TIMEOUT"), "{owner}: {entry:?}");
            for t in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::MX,
                RecordType::TXT,
                RecordType::PTR,
                RecordType::CNAME,
            ] {
                if !answered.contains(&t) {
                    zone = zone.timeout_type(owner, t);
                }
            }
            return zone;
        };
        for (t, v) in map {
            let t = t.as_str().expect("record type");
            if v.as_str() == Some("NONE") {
                continue;
            }
            let rtype: RecordType = if t == "SPF" {
                RecordType::TXT
            } else {
                t.parse().expect("record type")
            };
            if v.as_str() == Some("TIMEOUT") {
                zone = zone.timeout_type(owner, rtype);
                continue;
            }
            let rdata = match t {
                "SPF" => {
                    if !has_txt {
                        spf_as_txt.push(txt(&strings(v)));
                    }
                    continue;
                }
                "TXT" => txt(&strings(v)),
                "A" => RData::A(text(v).parse::<std::net::Ipv4Addr>().expect("A").into()),
                "AAAA" => RData::AAAA(text(v).parse::<std::net::Ipv6Addr>().expect("AAAA").into()),
                "MX" => {
                    let mx = strings(v);
                    let pref = mx[0].parse().expect("MX preference");
                    RData::MX(MX::new(pref, name(&mx[1])))
                }
                "PTR" => RData::PTR(PTR(name(&text(v)))),
                "CNAME" => RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(name(&text(v)))),
                other => panic!("record type {other}"),
            };
            answered.insert(rtype);
            zone = zone.record(owner, rdata);
        }
    }
    for rdata in spf_as_txt {
        zone = zone.record(owner, rdata);
    }
    zone
}

async fn resolver(dns: &TestDns) -> Dns {
    let config = DnsConfig {
        nameservers: vec![NameServer(dns.addr())],
        // Short: the suite's TIMEOUT entries are waited out (twice: the
        // resolver tries again).
        timeout_ms: 300,
        cache_size: 1000,
    };
    Dns::new(&config).expect("resolver")
}

/// One case through `spf::check`; `Err` says what was wrong.
async fn run_case(dns: Dns, id: String, case: Case) -> Result<(), String> {
    let envelope = Envelope {
        client_ip: Some(case.host.parse().expect("host")),
        helo: case.helo.clone(),
        mail_from: case.mailfrom.clone(),
        tls: Default::default(),
    };
    let r = spf::check(&dns, &SpfConfig::default(), &envelope, RECEIVER).await;
    let got = r.status.as_str();
    let reason = r.reason.clone().unwrap_or_default();
    let show = || {
        format!(
            "{id}: helo={:?} host={} mailfrom={:?}: expected {}, got {got} ({reason})",
            case.helo,
            case.host,
            case.mailfrom,
            case.result.show()
        )
    };
    if !case.result.allows(got) {
        return Err(show());
    }
    match case.explanation.as_deref() {
        Some("DEFAULT") if reason.contains(" says: ") => {
            Err(format!("{}; expected no explanation", show()))
        }
        // Compared ignoring case: the suite's driver writes the hex digits
        // of `%{i}` for IPv6 in upper case, RFC 7208 §7.4 in lower case.
        Some(exp)
            if exp != "DEFAULT"
                && got == "fail"
                && !reason
                    .to_ascii_lowercase()
                    .ends_with(&format!(" says: {}", exp.to_ascii_lowercase())) =>
        {
            Err(format!("{}; expected explanation {exp:?}", show()))
        }
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_suite_conforms() {
    let mut total = 0;
    let mut failures = Vec::new();
    for document in serde_norway::Deserializer::from_str(SUITE) {
        let scenario = Scenario::deserialize(document).expect("scenario");
        let mut zone = Zone::default();
        for (owner, entries) in &scenario.zonedata {
            zone = add_name(zone, owner, entries);
        }
        let server = TestDns::start(zone).await;
        // One resolver and cache per scenario: the zones share names.
        let dns = resolver(&server).await;
        let mut tasks = Vec::new();
        for (id, case) in scenario.tests {
            total += 1;
            let id = format!("{} / {id}", scenario.description);
            tasks.push(tokio::spawn(run_case(dns.clone(), id, case)));
        }
        for task in tasks {
            if let Err(e) = task.await.expect("case task") {
                failures.push(e);
            }
        }
    }
    assert_eq!(total, CASES, "cases found in the suite");
    let right = total - failures.len();
    println!("RFC 7208 suite: {right}/{total} right");
    assert!(
        failures.is_empty(),
        "RFC 7208 suite: {right}/{total} right; wrong:\n{}",
        failures.join("\n")
    );
}
