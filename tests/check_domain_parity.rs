//! check-domain and the milter agree: for each zone below, served by the
//! real DNS server on 127.0.0.1, `check-domain sender.test` says "ready"
//! (exit 0) exactly when the milter accepts a message from sender.test,
//! exit 2 exactly when it defers (tempfail), and exit 1 exactly when it
//! rejects.
//!
//! The message is signed with src/sign.rs by the key the domain signs with
//! (check-domain is given the same key file with `--key`), sent from
//! 127.0.0.10, which the SPF record of every zone authorises, over the
//! milter socket. The receiver enforces the mailkey check with a mailkey
//! required (`no_key = "reject"`, the strictest receiver, which check-domain
//! checks against), the MX check and SPF.
//!
//! Scope: the mailkey and MX rules, and the SPF record's syntax (present,
//! only one). Whether SPF authorises a given client IP, and the peer
//! certificate (TLS probe), are not part of check-domain yet: the client IP
//! is always authorised and the TLS check is not enforced here. SPF policy
//! (`~all` where the client IP passes anyway) is a ✗ in check-domain but
//! does not change this client's verdict, so it is outside the parity.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{temp_dir, TempDir},
    send, Daemon, Outcome, Transaction,
};
use indymilter_test::Status;
use mailkey_milter::{
    check_domain,
    config::{DnsConfig, NameServer},
    dns::Dns,
    sign::{DomainKey, HEADER},
};
use openssl::{
    pkey::{PKey, Private},
    rsa::Rsa,
};
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

const DOMAIN: &str = "sender.test";
const FROM: &str = "alice@sender.test";
/// Authorised by `v=spf1 ip4:127.0.0.0/8 -all`.
const CLIENT: &str = "127.0.0.10";
/// The receiver: a mailkey required; TLS out of scope (see above).
const RECEIVER: &str = "[mailkey]\nno_key = \"reject\"\n[tls]\nenforce = false\nprobe = false\n";

/// A valid Ed25519 key record that no key of these tests matches (the old
/// key of a rotation).
const OLD_KEY: &str = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    Tempfail,
}

impl Verdict {
    fn of(outcome: &Outcome) -> Self {
        match outcome.status {
            Status::Reject { .. } => Self::Reject,
            Status::Tempfail { .. } => Self::Tempfail,
            _ if outcome.is_accept() => Self::Accept,
            ref other => panic!("unexpected milter status {other:?}"),
        }
    }

    /// The check-domain exit code that goes with the milter's verdict.
    fn exit_code(self) -> u8 {
        match self {
            Self::Accept => 0,
            Self::Reject => 1,
            Self::Tempfail => 2,
        }
    }
}

/// A key of sender.test in a key file, loaded the way the milter's signer
/// and check-domain load it.
struct Key {
    file: PathBuf,
    key: DomainKey,
}

impl Key {
    fn new(dir: &Path, name: &str, pkey: PKey<Private>) -> Self {
        let file = dir.join(format!("{name}.pem"));
        let pem = pkey.private_key_to_pem_pkcs8().expect("pem");
        std::fs::write(&file, pem).expect("write key file");
        let key = DomainKey::load(DOMAIN, &file).expect("key loads");
        Self { file, key }
    }

    fn ed25519(dir: &Path, name: &str) -> Self {
        Self::new(dir, name, PKey::generate_ed25519().expect("ed25519"))
    }

    fn rsa(dir: &Path, name: &str) -> Self {
        let rsa = Rsa::generate(2048).expect("rsa");
        Self::new(dir, name, PKey::from_rsa(rsa).expect("pkey"))
    }

    /// The TXT record that publishes this key, with `tags` (e.g. `t=y; `).
    fn record(&self, tags: &str) -> String {
        let k = match self.key.key_type {
            mailkey_milter::protocol::KeyType::Ed25519 => "ed25519",
            _ => "rsa",
        };
        let p = openssl::base64::encode_block(&self.key.public);
        format!("v=DKIM1; k={k}; {tags}p={p}")
    }

    fn signed_message(&self) -> String {
        let message = message(FROM);
        let value = self.key.sign(message.as_bytes()).expect("sign");
        format!("{HEADER}:{value}\r\n{message}")
    }
}

/// sender.test with a strict SPF record for 127.0.0.0/8 and a real MX, but
/// no mailkey.
fn base() -> Zone {
    Zone::default()
        .txt(DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all")
        .mx(DOMAIN, 10, "mx.sender.test")
        .a("mx.sender.test", Ipv4Addr::new(127, 0, 0, 25))
}

/// The same without its MX (the domain still exists: it has its SPF record).
fn base_without_mx() -> Zone {
    Zone::default().txt(DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all")
}

/// A TXT record for an RSA key shorter than the milter accepts (512 bits).
fn short_rsa_record() -> String {
    let rsa = Rsa::generate(512).expect("rsa");
    let der = PKey::from_rsa(rsa)
        .expect("pkey")
        .public_key_to_der()
        .expect("der");
    format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&der))
}

struct Case {
    name: &'static str,
    zone: Zone,
    /// The key the domain signs with.
    signer: Key,
    expected: Verdict,
}

fn cases(dir: &TempDir) -> Vec<Case> {
    let key = |name| Key::ed25519(dir, name);
    let mut cases = Vec::new();
    let mut case = |name, zone: fn(&Key) -> Zone, signer: Key, expected| {
        cases.push(Case {
            name,
            zone: zone(&signer),
            signer,
            expected,
        })
    };
    // A published Ed25519 key that signs: ready, accepted.
    case(
        "good ed25519 key",
        |k| base().txt("mailkey.sender.test", &k.record("")),
        key("good"),
        Verdict::Accept,
    );
    // The same with an RSA-2048 key.
    case(
        "good rsa key",
        |k| base().txt("mailkey.sender.test", &k.record("")),
        Key::rsa(dir, "rsa"),
        Verdict::Accept,
    );
    // No record at mailkey.D: a receiver that requires a mailkey rejects.
    case("no key", |_| base(), key("unpublished"), Verdict::Reject);
    // Only TXT records that are not keys at mailkey.D: no mailkey either.
    case(
        "only non-key TXT records",
        |_| base().txt("mailkey.sender.test", "hello"),
        key("unpublished2"),
        Verdict::Reject,
    );
    // The signing key's record revoked (empty p=): fail, rejected.
    case(
        "revoked key",
        |_| base().txt("mailkey.sender.test", "v=DKIM1; k=ed25519; p="),
        key("revoked"),
        Verdict::Reject,
    );
    // A record whose key does not parse: permerror, rejected.
    case(
        "malformed key",
        |_| base().txt("mailkey.sender.test", "v=DKIM1; k=ed25519; p=AAAA"),
        key("malformed"),
        Verdict::Reject,
    );
    // t=y on a good key: the signature verifies, accepted (check-domain: !).
    case(
        "t=y testing key",
        |k| base().txt("mailkey.sender.test", &k.record("t=y; ")),
        key("testing"),
        Verdict::Accept,
    );
    // t=y and no usable key: receivers report but never reject.
    case(
        "t=y and only a broken key",
        |_| base().txt("mailkey.sender.test", "v=DKIM1; k=ed25519; t=y; p=AAAA"),
        key("testing-broken"),
        Verdict::Accept,
    );
    // Two records (rotation: the old key and the new one), signed by the
    // new key, published second.
    case(
        "two records, signed by the second",
        |k| {
            base()
                .txt("mailkey.sender.test", OLD_KEY)
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("rotated"),
        Verdict::Accept,
    );
    // A broken record beside the usable one: the milter skips it (check-domain: !).
    case(
        "broken record beside a usable key",
        |k| {
            base()
                .txt("mailkey.sender.test", "v=DKIM1; k=ed25519; p=AAAA")
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("beside-broken"),
        Verdict::Accept,
    );
    // An RSA key under 1024 bits: permerror, rejected. src/sign.rs cannot
    // sign with such a key; the milter refuses the record before it looks
    // at any signature, so the message is signed by an unpublished key.
    case(
        "rsa key too small",
        |_| base().txt("mailkey.sender.test", &short_rsa_record()),
        key("small-rsa-stand-in"),
        Verdict::Reject,
    );
    // The domain exists but has no MX: rejected (5.1.8).
    case(
        "no MX",
        |k| base_without_mx().txt("mailkey.sender.test", &k.record("")),
        key("no-mx"),
        Verdict::Reject,
    );
    // A null MX (RFC 7505): rejected (5.7.27).
    case(
        "null MX",
        |k| {
            base_without_mx()
                .mx(DOMAIN, 0, ".")
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("null-mx"),
        Verdict::Reject,
    );
    // An MX whose host has no address: the MX check asks only for an MX
    // that is not null, so accepted.
    case(
        "MX to a host without address",
        |k| {
            base_without_mx()
                .mx(DOMAIN, 10, "nowhere.sender.test")
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("mx-nowhere"),
        Verdict::Accept,
    );
    // An MX naming an IP address instead of a host: not null, accepted.
    case(
        "MX to an IP address",
        |k| {
            base_without_mx()
                .mx(DOMAIN, 10, "127.0.0.25")
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("mx-ip"),
        Verdict::Accept,
    );
    // The domain does not exist (NXDOMAIN for every name): rejected.
    case(
        "NXDOMAIN",
        |_| Zone::default().a("other.test", Ipv4Addr::new(127, 0, 0, 1)),
        key("nxdomain"),
        Verdict::Reject,
    );
    // SERVFAIL for mailkey.D (temperror): deferred, exit 2.
    case(
        "SERVFAIL at mailkey.D",
        |_| base().servfail("mailkey.sender.test"),
        key("servfail-key"),
        Verdict::Tempfail,
    );
    // SERVFAIL for D itself (MX and SPF lookups): deferred, exit 2.
    case(
        "SERVFAIL at D",
        |k| {
            Zone::default()
                .txt("mailkey.sender.test", &k.record(""))
                .servfail(DOMAIN)
        },
        key("servfail-domain"),
        Verdict::Tempfail,
    );
    // SERVFAIL for mailkey.D and no MX: a reject wins over a tempfail.
    case(
        "SERVFAIL at mailkey.D and no MX",
        |_| base_without_mx().servfail("mailkey.sender.test"),
        key("servfail-no-mx"),
        Verdict::Reject,
    );
    // SERVFAIL for the optional mailkey._domainkey.D alias: the milter never
    // looks it up, so accepted (check-domain: !).
    case(
        "SERVFAIL at mailkey._domainkey.D",
        |k| {
            base()
                .txt("mailkey.sender.test", &k.record(""))
                .servfail("mailkey._domainkey.sender.test")
        },
        key("servfail-alias"),
        Verdict::Accept,
    );
    // No SPF record: SPF none, rejected (strict SPF).
    case(
        "no SPF record",
        |k| {
            Zone::default()
                .mx(DOMAIN, 10, "mx.sender.test")
                .a("mx.sender.test", Ipv4Addr::new(127, 0, 0, 25))
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("no-spf"),
        Verdict::Reject,
    );
    // Two SPF records: permerror, rejected.
    case(
        "two SPF records",
        |k| {
            base()
                .txt(DOMAIN, "v=spf1 ip4:127.0.0.10 -all")
                .txt("mailkey.sender.test", &k.record(""))
        },
        key("two-spf"),
        Verdict::Reject,
    );
    cases
}

/// check-domain, through the same function the binary calls.
async fn check_domain(dns: &TestDns, key_file: &Path) -> check_domain::Report {
    let config = DnsConfig {
        nameservers: vec![NameServer(dns.addr())],
        timeout_ms: 500,
        ..DnsConfig::default()
    };
    let resolver = Dns::new(&config).expect("resolver");
    check_domain::check(&resolver, DOMAIN, Some(key_file)).await
}

#[tokio::test]
async fn check_domain_says_ready_exactly_when_the_milter_accepts() {
    let dir = temp_dir("check-domain-parity");
    let mut mismatches = Vec::new();
    for case in cases(&dir) {
        let dns = TestDns::start(case.zone.clone()).await;
        let report = check_domain(&dns, &case.signer.file).await;
        let daemon = Daemon::start(&common::config(&dns, RECEIVER)).await;
        let outcome = send(
            daemon.addr,
            &Transaction::new(CLIENT, FROM, case.signer.signed_message()),
        )
        .await;
        let verdict = Verdict::of(&outcome);
        daemon.shutdown().await;
        // The case is what the table says (so that both sides cannot agree
        // by both being wrong), and check-domain agrees with the milter.
        if verdict != case.expected
            || report.exit_code() != verdict.exit_code()
            || report.ok != (verdict == Verdict::Accept)
        {
            mismatches.push(format!(
                "{}: expected {:?}; milter {verdict:?} ({}); check-domain exit {}:\n{}",
                case.name,
                case.expected,
                outcome.reply(),
                report.exit_code(),
                report.text()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
