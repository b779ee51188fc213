//! `[exempt]` through the real milter socket, in enforce mode: an exempt
//! sender (domain, subdomain, network, file entry) is checked as usual,
//! gets our Authentication-Results header saying what would have happened,
//! a log line marked exempt, and is accepted; a sibling domain that is not
//! exempt is rejected. A reload that changed the file takes effect.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{temp_dir, write},
    send, Daemon, LogCapture, Outcome, TestKey, Transaction,
};
use std::net::Ipv4Addr;

/// Unsigned mail from every one of these domains fails mailkey (a key is
/// published) and passes everything else: enforce mode rejects it with
/// `550 5.7.20` unless the sender is exempt.
const DOMAINS: [&str; 4] = [
    "partner.test",
    "mail.partner.test",
    "otherpartner.test",
    "filed.test",
];

fn zone(key: &TestKey) -> Zone {
    let mut z = Zone::default().a("mx.partner.test", Ipv4Addr::new(127, 0, 0, 25));
    for d in DOMAINS {
        z = z
            .txt(d, "v=spf1 ip4:127.0.0.0/8 -all")
            .mx(d, 10, "mx.partner.test")
            .txt(&format!("mailkey.{d}"), &key.record);
    }
    z
}

async fn from(daemon: &Daemon, client: &str, sender: &'static str) -> Outcome {
    send(
        daemon.addr,
        &Transaction::new(client, sender, message(sender)),
    )
    .await
}

/// Accepted, with the exemption and the would-be reply in our header.
fn assert_exempt(o: &Outcome, by: &str) {
    assert!(o.is_accept(), "not accepted: {:?} {}", o.status, o.reply());
    let ar = o.ar();
    assert!(
        ar.starts_with(&format!("mx.receiver.test (exempt: {by});")),
        "{ar}"
    );
    assert!(ar.contains(";\n\tmailkey="), "{ar}");
    assert!(ar.contains("exempt, would reject: 550 5.7.20"), "{ar}");
}

fn assert_rejected(o: &Outcome) {
    o.assert_rejected("550", &["5.7.20"]);
    let ar = o.ar();
    assert!(!ar.contains("exempt"), "{ar}");
}

/// The one per-message log line about `sender`.
fn log_line(logs: &LogCapture, sender: &str) -> String {
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("mail_from=\"<{sender}>\"")))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    lines[0].to_string()
}

#[tokio::test]
async fn exempt_domains_and_networks_are_accepted_siblings_rejected() {
    let (logs, _guard) = LogCapture::for_thread();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let extra = "[exempt]\ndomains = [\"Partner.TEST.\"]\nnetworks = [\"127.0.9.0/24\"]";
    let daemon = Daemon::start(&common::config(&dns, extra)).await;

    assert_exempt(
        &from(&daemon, "127.0.0.2", "a@partner.test").await,
        "domain partner.test",
    );
    assert_exempt(
        &from(&daemon, "127.0.0.2", "b@mail.partner.test").await,
        "domain partner.test",
    );
    assert_rejected(&from(&daemon, "127.0.0.2", "c@otherpartner.test").await);
    assert_exempt(
        &from(&daemon, "127.0.9.9", "d@otherpartner.test").await,
        "network 127.0.9.0/24",
    );

    let line = log_line(&logs, "a@partner.test");
    for part in [
        "verdict=accept",
        "would_reject=\"550 5.7.20\"",
        "exempt=true",
        "exempt_by=\"domain partner.test\"",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    assert!(log_line(&logs, "d@otherpartner.test").contains("exempt_by=\"network 127.0.9.0/24\""));
    let rejected = log_line(&logs, "c@otherpartner.test");
    assert!(rejected.contains("verdict=reject"), "{rejected}");
    assert!(!rejected.contains("exempt"), "{rejected}");
}

#[tokio::test]
async fn the_exempt_file_is_read_again_on_reload() {
    let (logs, _guard) = LogCapture::for_thread();
    let key = TestKey::ed25519();
    let dns = TestDns::start(zone(&key)).await;
    let dir = temp_dir("exempt-file");
    let file = dir.join("exempt.list");
    write(
        &file,
        "# partners in setup\nfiled.test   # until March\n\n127.0.8.0/24\n",
    );
    let config = common::config(&dns, &format!("[exempt]\nfile = \"{}\"", file.display()));
    let daemon = Daemon::start(&config).await;

    assert_exempt(
        &from(&daemon, "127.0.0.2", "a@filed.test").await,
        "domain filed.test",
    );
    assert_exempt(
        &from(&daemon, "127.0.8.1", "b@otherpartner.test").await,
        "network 127.0.8.0/24",
    );
    assert_rejected(&from(&daemon, "127.0.0.2", "c@otherpartner.test").await);

    // The file changes; SIGHUP's reload reads it again.
    write(&file, "otherpartner.test\n");
    daemon.reload(&config);
    assert_rejected(&from(&daemon, "127.0.0.2", "d@filed.test").await);
    assert_exempt(
        &from(&daemon, "127.0.0.2", "e@otherpartner.test").await,
        "domain otherpartner.test",
    );

    // A broken file is refused: the running list stays, the log says why.
    write(&file, "otherpartner.test\n10.0.0.0/33\n");
    daemon.reload(&config);
    assert_exempt(
        &from(&daemon, "127.0.0.2", "f@otherpartner.test").await,
        "domain otherpartner.test",
    );
    let log = logs.text();
    assert!(
        log.contains("reload refused") && log.contains("line 2: invalid network \"10.0.0.0/33\""),
        "{log}"
    );
    assert!(log_line(&logs, "a@filed.test").contains("exempt=true"));
    assert!(!log_line(&logs, "d@filed.test").contains("exempt"));
}

#[tokio::test]
async fn a_missing_file_or_bad_domain_is_a_configuration_error() {
    let path = std::path::Path::new("test.toml");
    let bad = mailkey_milter::config::Config::parse("[exempt]\ndomains = [\"nodot\"]\n", path)
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("line 2") && bad.contains("invalid domain \"nodot\""),
        "{bad}"
    );
    let config = mailkey_milter::config::Config::parse(
        "[exempt]\nfile = \"/nonexistent/exempt.list\"\n",
        path,
    )
    .unwrap();
    let err = mailkey_milter::Shared::new(config).err().expect("refused");
    assert!(
        err.to_string()
            .starts_with("[exempt] file /nonexistent/exempt.list: cannot read it"),
        "{err}"
    );
}
