//! Signatures made by independent implementations (dkimpy and OpenDKIM, see
//! tests/fixtures/independent/README.md) verified through the milter.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dns::TestDns, send, Daemon, Transaction};
use indymilter_test::Status;
use std::{fs, net::Ipv4Addr, path::Path};

#[derive(serde::Deserialize)]
struct Index {
    fixture: Vec<Fixture>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    name: String,
    domain: String,
    expected: String,
}

#[tokio::test]
async fn independent_signatures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/independent");
    let index: Index =
        toml::from_str(&fs::read_to_string(dir.join("fixtures.toml")).unwrap()).unwrap();
    assert!(index.fixture.len() >= 7);
    assert!(index.fixture.iter().any(|f| f.name.starts_with("opendkim")));
    for f in index.fixture {
        let record = fs::read_to_string(dir.join(format!("{}.txt", f.name))).unwrap();
        let message =
            String::from_utf8(fs::read(dir.join(format!("{}.eml", f.name))).unwrap()).unwrap();
        assert!(
            message.contains("\r\n") && !message.replace("\r\n", "").contains('\n'),
            "{}: CRLF fixture",
            f.name
        );
        let zone = common::dns::Zone::default()
            .txt(&format!("mailkey.{}", f.domain), record.trim())
            .txt(&f.domain, "v=spf1 ip4:127.0.0.10 -all")
            .mx(&f.domain, 10, &format!("mx.{}", f.domain))
            .a(&format!("mx.{}", f.domain), Ipv4Addr::new(127, 0, 0, 25));
        let dns = TestDns::start(zone).await;
        let daemon = Daemon::start(&common::config(&dns, "")).await;
        let from = format!("alice@{}", f.domain);
        let outcome = send(daemon.addr, &Transaction::new("127.0.0.10", &from, message)).await;
        let ar = outcome.auth_results().unwrap_or_default();
        match (f.expected.as_str(), f.name.as_str()) {
            ("pass", _) => {
                assert_eq!(
                    outcome.status,
                    Status::Accept,
                    "{}: {}",
                    f.name,
                    outcome.reply()
                );
                assert!(
                    ar.contains(&format!(
                        "mailkey=pass header.d={} header.s=mailkey",
                        f.domain
                    )),
                    "{}: {ar}",
                    f.name
                );
            }
            (_, name) => {
                let why = match name {
                    "dkimpy-length" => "l= body length tag",
                    "dkimpy-sha1" => "rsa-sha1 signatures are not accepted",
                    "dkimpy-other-selector" => "uses selector \"default\"",
                    other => panic!("no expectation for fixture {other}"),
                };
                let reply = outcome.reply();
                assert!(reply.starts_with("550-5.7.20"), "{name}: {reply}");
                assert!(reply.contains(why), "{name}: {why:?} not in {reply}");
                assert!(ar.contains("mailkey=fail"), "{name}: {ar}");
            }
        }
    }
}
