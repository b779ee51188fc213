//! check-domain with the sending side (`--ip`, `--mta`, `--key`) against
//! the daemon with every check enforced: DNS from the real test server on
//! 127.0.0.1, STARTTLS responders with test-CA certificates on their own
//! loopback addresses. Each finding is checked on its own (SPF pass/fail
//! for an address, a good/expired/missing STARTTLS certificate, a message
//! signed with the key), then parity: check-domain says "ready" exactly
//! when the daemon — given the same client address, HELO name and
//! certificate — accepts a message signed with the same key.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::temp_dir,
    send,
    tls::{probe_port, Behaviour, Leaf, Pki, Responder},
    Daemon, Transaction,
};
use indymilter_test::Status;
use mailkey_milter::{
    check_domain::{self, Mark, Report, Sending},
    config::{DnsConfig, NameServer, TlsConfig},
    dns::Dns,
    sign::{DomainKey, HEADER},
};
use openssl::pkey::PKey;
use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

const DOMAIN: &str = "sender.test";
const FROM: &str = "alice@sender.test";
/// The three sending servers: a good certificate, an expired one, none.
const GOOD: (&str, &str) = ("good.sender.test", "127.0.0.81");
const EXPIRED: (&str, &str) = ("expired.sender.test", "127.0.0.82");
const PLAIN: (&str, &str) = ("plain.sender.test", "127.0.0.83");
const SPF_ALL_THREE: &str = "v=spf1 ip4:127.0.0.81 ip4:127.0.0.82 ip4:127.0.0.83 -all";

struct World {
    pki: Pki,
    _responders: Vec<Responder>,
    key_file: PathBuf,
    key: DomainKey,
    /// When the expired certificate expired, as the probe reports it.
    expired_on: String,
}

fn world(tag: &str) -> World {
    let pki = Pki::new(tag);
    let starttls = |leaf| Behaviour::StartTls {
        identity: leaf,
        ocsp: None,
    };
    let good = pki.leaf(Leaf::valid(&[GOOD.0], 11));
    let expired = pki.leaf(Leaf {
        names: &[EXPIRED.0],
        not_before: -400 * 86_400,
        not_after: -86_400,
        serial: 12,
    });
    let expired_on = expired.cert.not_after().to_string();
    let responders = vec![
        Responder::start(GOOD.1, starttls(good)),
        Responder::start(EXPIRED.1, starttls(expired)),
        Responder::start(PLAIN.1, Behaviour::NoStartTls),
    ];
    let dir = temp_dir(tag);
    let key_file = dir.join("sender.pem");
    let pkey = PKey::generate_ed25519().expect("ed25519");
    std::fs::write(&key_file, pkey.private_key_to_pem_pkcs8().expect("pem")).expect("write");
    let key = DomainKey::load(DOMAIN, &key_file).expect("key loads");
    std::mem::forget(dir);
    World {
        pki,
        _responders: responders,
        key_file,
        key,
        expired_on,
    }
}

impl World {
    fn record(&self) -> String {
        let p = openssl::base64::encode_block(&self.key.public);
        format!("v=DKIM1; k=ed25519; p={p}")
    }

    /// sender.test: the given SPF record, a real MX, the servers' names and,
    /// with `publish`, the key.
    fn zone(&self, spf: &str, publish: bool) -> Zone {
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        let mut z = Zone::default()
            .txt(DOMAIN, spf)
            .mx(DOMAIN, 10, "mx.sender.test")
            .a("mx.sender.test", Ipv4Addr::new(127, 0, 0, 25))
            .a(GOOD.0, ip(GOOD.1))
            .a(EXPIRED.0, ip(EXPIRED.1))
            .a(PLAIN.0, ip(PLAIN.1));
        if publish {
            z = z.txt("mailkey.sender.test", &self.record());
        }
        z
    }

    fn tls(&self) -> TlsConfig {
        TlsConfig {
            probe_timeout_ms: 1500,
            ca_file: Some(self.pki.ca_file()),
            ..TlsConfig::default()
        }
    }

    async fn check(&self, dns: &TestDns, server: (&str, &str), key: Option<&Path>) -> Report {
        let config = DnsConfig {
            nameservers: vec![NameServer(dns.addr())],
            timeout_ms: 500,
            ..DnsConfig::default()
        };
        let resolver = Dns::new(&config).expect("resolver");
        let sending = Sending {
            key_file: key,
            ip: Some(server.1.parse::<IpAddr>().expect("ip")),
            mta: Some((server.0, probe_port())),
            tls: self.tls(),
            dkim2_selector: None,
        };
        check_domain::check_sending(&resolver, DOMAIN, &sending).await
    }
}

/// The findings of `check`, as "mark text".
fn findings(report: &Report, check: &str) -> Vec<(Mark, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.check == check)
        .map(|f| (f.mark, f.text.clone()))
        .collect()
}

/// One test, so that the responders' loopback addresses are bound once.
#[tokio::test]
async fn sending_side_findings_and_parity_with_the_daemon() {
    let w = world("cd-receiver");
    findings_for_ip_mta_and_key(&w).await;
    ready_exactly_when_the_daemon_with_every_check_enforced_accepts(&w).await;
}

async fn findings_for_ip_mta_and_key(w: &World) {
    let dns = TestDns::start(w.zone(SPF_ALL_THREE, true)).await;
    let port = probe_port();

    let good = w.check(&dns, GOOD, Some(&w.key_file)).await;
    assert!(good.ok, "{}", good.text());
    assert_eq!(
        findings(&good, "spf").last().cloned().expect("spf finding"),
        (
            Mark::Ok,
            "127.0.0.81 is authorised by the SPF record of sender.test (pass)".into()
        )
    );
    assert_eq!(
        findings(&good, "tls"),
        [(
            Mark::Ok,
            format!(
                "good.sender.test (127.0.0.81) port {port}: TLSv1.3, cert verified by probe \
                 for good.sender.test, CN=good.sender.test"
            )
        )]
    );
    assert_eq!(
        findings(&good, "signature"),
        [(
            Mark::Ok,
            "a test message signed with the key verifies as a receiver checks it".into()
        )]
    );

    let expired = w.check(&dns, EXPIRED, None).await;
    assert!(!expired.ok);
    assert_eq!(
        findings(&expired, "tls"),
        [(
            Mark::Fail,
            format!(
                "expired.sender.test (127.0.0.82) port {port}: certificate expired on {}; offer \
                 STARTTLS with an unexpired certificate from a trusted CA, with its full chain, \
                 for expired.sender.test",
                w.expired_on
            )
        )]
    );

    let plain = w.check(&dns, PLAIN, None).await;
    assert!(!plain.ok);
    let tls = findings(&plain, "tls");
    assert_eq!(tls[0].0, Mark::Fail);
    assert!(
        tls[0]
            .1
            .contains(&format!("127.0.0.83 port {port} does not offer STARTTLS")),
        "{tls:?}"
    );

    let dns = TestDns::start(w.zone("v=spf1 ip4:127.0.0.99 -all", true)).await;
    let denied = w.check(&dns, GOOD, None).await;
    assert!(!denied.ok);
    assert_eq!(
        findings(&denied, "spf")
            .last()
            .cloned()
            .expect("spf finding"),
        (
            Mark::Fail,
            "127.0.0.81 is not authorised by the SPF record of sender.test: fail (fail); add \
             ip4:127.0.0.81 to the SPF record of sender.test: \"v=spf1 ip4:127.0.0.81 ... -all\""
                .into()
        )
    );
}

async fn ready_exactly_when_the_daemon_with_every_check_enforced_accepts(w: &World) {
    let cases = [
        ("all good", SPF_ALL_THREE, true, GOOD, true),
        (
            "spf does not list the ip",
            "v=spf1 ip4:127.0.0.82 -all",
            true,
            GOOD,
            false,
        ),
        ("expired certificate", SPF_ALL_THREE, true, EXPIRED, false),
        ("no STARTTLS", SPF_ALL_THREE, true, PLAIN, false),
        ("key not published", SPF_ALL_THREE, false, GOOD, false),
    ];
    let mut mismatches = Vec::new();
    for (name, spf, publish, server, accepted) in cases {
        let dns = TestDns::start(w.zone(spf, publish)).await;
        let report = w.check(&dns, server, Some(&w.key_file)).await;
        let receiver = format!(
            "[mailkey]\nno_key = \"reject\"\n[tls]\nprobe_port = {}\nprobe_timeout_ms = 1500\n\
             ca_file = \"{}\"\n",
            probe_port(),
            w.pki.ca_file().display()
        );
        let daemon = Daemon::start(&common::config(&dns, &receiver)).await;
        let body = message(FROM);
        let signed = format!(
            "{HEADER}:{}\r\n{body}",
            w.key.sign(body.as_bytes()).expect("sign")
        );
        let mut t = Transaction::new(server.1, FROM, signed);
        t.helo = server.0;
        t.tls_macros = vec![("{tls_version}", "TLSv1.3")];
        let outcome = send(daemon.addr, &t).await;
        let daemon_accepts = outcome.is_accept();
        let rejected = matches!(outcome.status, Status::Reject { .. });
        daemon.shutdown().await;
        if daemon_accepts != accepted || (!accepted && !rejected) || report.ok != daemon_accepts {
            mismatches.push(format!(
                "{name}: expected accept={accepted}; daemon {:?} ({}); check-domain ok={}:\n{}",
                outcome.status,
                outcome.reply(),
                report.ok,
                report.text()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
