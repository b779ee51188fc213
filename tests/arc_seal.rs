//! The forwarding side of ARC (#15, #21) through the real milter socket: a
//! forwarder running mailkey-milter with `[arc] seal = true` and an RSA
//! `key_file` seals what it checked and passes on; a second daemon, the
//! final receiver, trusts the forwarder. The receiver reads the recorded
//! results with the RFC 8601 grammar (a forged MAIL FROM recorded there
//! vouches for nothing); the seal reuses the `arc` check's validation of
//! the chain it covers. Keys and records on a real DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    arc::SealKey,
    dns::{TestDns, Zone},
    message, process, send, Daemon, TestKey, Transaction,
};
use indymilter_test::Status;
use std::{net::Ipv4Addr, path::Path};

const FROM: &str = "alice@sender.test";
/// sender.test's SPF authorises only this address…
const ORIGIN_IP: &str = "127.0.0.10";
/// …and the forwarder relays from this one.
const FORWARDER_IP: &str = "127.0.0.20";
const LIST: &str = "lists.example.org";
const LIST_RESULTS: &str = "mailkey=pass header.d=sender.test; \
                            spf=pass smtp.mailfrom=alice@sender.test";

struct World {
    dns: TestDns,
    origin: TestKey,
    list_key: SealKey,
    _dir: process::TempDir,
    key_file: std::path::PathBuf,
}

/// sender.test (and victim.test) publish a mailkey and strict SPF for
/// ORIGIN_IP; forwarder.test publishes its ARC key at `arc._domainkey`;
/// the list's key has a TTL of 0, so every validation looks it up again.
async fn world(tag: &str) -> World {
    let origin = TestKey::ed25519();
    let (seal_key, list_key) = (SealKey::new(), SealKey::new());
    let dir = process::temp_dir(&format!("arc-seal-{tag}"));
    let key_file = dir.join("forwarder.arc.pem");
    process::write(&key_file, &seal_key.pem());
    let mut zone = Zone::default();
    for d in ["sender.test", "victim.test"] {
        zone = zone
            .txt(d, &format!("v=spf1 ip4:{ORIGIN_IP} -all"))
            .mx(d, 10, &format!("mx.{d}"))
            .a(&format!("mx.{d}"), Ipv4Addr::new(127, 0, 0, 25))
            .txt(&format!("mailkey.{d}"), &origin.record);
    }
    let zone = zone
        .txt("arc._domainkey.forwarder.test", &seal_key.record)
        .ttl(0)
        .txt(&format!("arc._domainkey.{LIST}"), &list_key.record);
    World {
        dns: TestDns::start(zone).await,
        origin,
        list_key,
        _dir: dir,
        key_file,
    }
}

impl World {
    /// The forwarder's milter (`mode`), sealing for forwarder.test.
    async fn forwarder(&self, mode: &str) -> Daemon {
        Daemon::start(&forwarder_config(&self.dns, mode, &self.key_file)).await
    }

    /// The final receiver: enforcing, trusting forwarder.test's seals.
    async fn receiver(&self) -> Daemon {
        let extra = "reject_at_rcpt = false\n\
                     [forwarding]\ntrusted_arc_sealers = [\"forwarder.test\"]";
        Daemon::start(&common::config(&self.dns, extra)).await
    }
}

fn forwarder_config(dns: &TestDns, mode: &str, key_file: &Path) -> String {
    common::config(
        dns,
        &format!(
            "[arc]\nseal = true\nseal_domain = \"forwarder.test\"\nkey_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .replace("mode = \"enforce\"", &format!("mode = \"{mode}\""))
    .replace("mx.receiver.test", "mx.forwarder.test")
}

/// A forwarder seals the message it checked (RSA, selector `arc`); the
/// final receiver trusts the forwarder and accepts the message relayed
/// from the forwarder's IP, which the origin's SPF does not authorise.
#[tokio::test]
async fn our_seal_lets_a_trusting_receiver_accept_the_forward() {
    let w = world("forward").await;
    let (forwarder, receiver) = (w.forwarder("enforce").await, w.receiver().await);
    // 200 KB: sealed and validated from the spool file, not from memory.
    let signed = common::large_signed_message(&w.origin, FROM, 200_000);
    let first = send(
        forwarder.addr,
        &Transaction::new(ORIGIN_IP, FROM, signed.clone()),
    )
    .await;
    assert_eq!(first.status, Status::Accept, "{}", first.reply());
    let forwarded = first.with_inserted_headers(&signed);
    assert!(
        forwarded.starts_with("ARC-Seal: i=1; a=rsa-sha256; s=arc; d=forwarder.test; cv=none;"),
        "{forwarded}"
    );
    assert!(
        forwarded.contains("ARC-Authentication-Results: i=1; mx.forwarder.test; mailkey=pass"),
        "{forwarded}"
    );

    // Relayed from the forwarder's IP: SPF fails there, the seal vouches.
    let second = send(
        receiver.addr,
        &Transaction::new(FORWARDER_IP, FROM, forwarded.clone()),
    )
    .await;
    assert_eq!(second.status, Status::Accept, "{}", second.reply());
    let ar = second.ar();
    assert!(ar.contains("arc=pass header.d=forwarder.test"), "{ar}");
    assert!(ar.contains("spf=pass (arc: forwarder.test)"), "{ar}");

    // Without trusting the forwarder, the same relay is refused for SPF.
    let sceptic = Daemon::start(&common::config(&w.dns, "")).await;
    let third = send(
        sceptic.addr,
        &Transaction::new(FORWARDER_IP, FROM, forwarded),
    )
    .await;
    assert!(third.reply().starts_with("550-5.7.23"), "{}", third.reply());
}

/// Issue #21, item 1: a forged MAIL FROM whose quoted local part reads like
/// results (`"x;mailkey=pass header.d=victim.test;spf=pass …"@victim.test`)
/// is recorded by a monitor-mode sealer as one quoted `smtp.mailfrom`
/// value. A receiver that trusts the sealer reads it as that one value: no
/// `mailkey=pass` or `spf=pass` for victim.test comes out of it, and the
/// forged message (SPF fails, no signature) is refused.
#[tokio::test]
async fn a_quoted_local_part_recorded_by_a_trusted_sealer_vouches_for_nothing() {
    let w = world("forged-from").await;
    // The sealer judges nothing (monitor mode) and seals what it passes on.
    let (sealer, receiver) = (w.forwarder("monitor").await, w.receiver().await);
    let forged_from = "\"x;mailkey=pass header.d=victim.test;\
                       spf=pass smtp.mailfrom=a@victim.test;\"@victim.test";
    let unsigned = message("ceo@victim.test");
    // From a host victim.test's SPF refuses: no pass is recorded, only the
    // forged address as one quoted value.
    let first = send(
        sealer.addr,
        &Transaction::new(FORWARDER_IP, forged_from, unsigned.clone()),
    )
    .await;
    assert_eq!(first.status, Status::Accept, "monitor mode never refuses");
    let sealed = first.with_inserted_headers(&unsigned);
    assert!(sealed.starts_with("ARC-Seal: i=1; "), "{sealed}");
    assert!(
        sealed.contains(r#"smtp.mailfrom="\"x;mailkey=pass"#),
        "{sealed}"
    );

    let second = send(
        receiver.addr,
        &Transaction::new(FORWARDER_IP, forged_from, sealed),
    )
    .await;
    let ar = second.ar();
    assert!(ar.contains("arc=pass header.d=forwarder.test"), "{ar}");
    assert!(!ar.contains("(arc: forwarder.test)"), "vouched for: {ar}");
    second.assert_rejected("550-5.7.26", &[]);
}

/// #21: the seal covers the chain the message carries with `cv=pass` from
/// the `arc` check's validation: the list's key (TTL 0) is looked up once
/// for the message, not once for the check and again for the seal. A chain
/// that does not validate is not sealed over. On a multi-thread runtime, as
/// the daemon runs (validation and sealing leave the async workers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seal_reuses_the_checks_validation() {
    let w = world("reuse").await;
    let forwarder = w.forwarder("monitor").await;
    let signed = w.origin.sign(&message(FROM), "sender.test", "mailkey");
    let listed = w.list_key.seal(&signed, LIST, LIST_RESULTS);
    let first = send(
        forwarder.addr,
        &Transaction::new(ORIGIN_IP, FROM, listed.clone()),
    )
    .await;
    assert!(
        first.ar().contains("arc=pass header.d=lists.example.org"),
        "{}",
        first.ar()
    );
    let forwarded = first.with_inserted_headers(&listed);
    assert!(
        forwarded.starts_with("ARC-Seal: i=2; a=rsa-sha256; s=arc; d=forwarder.test; cv=pass;"),
        "{forwarded}"
    );
    assert_eq!(w.dns.queries(&format!("arc._domainkey.{LIST}")), 1);

    // Changed after the list sealed it: arc=fail, and no seal of ours.
    let broken = listed + "P.S. added in transit\r\n";
    let second = send(forwarder.addr, &Transaction::new(ORIGIN_IP, FROM, broken)).await;
    assert!(second.ar().contains("arc=fail"), "{}", second.ar());
    let sealed = second.with_inserted_headers("");
    assert!(!sealed.contains("ARC-Seal"), "{sealed}");
}

/// #21, item 17: an Ed25519 key cannot seal (ARC verifiers accept
/// rsa-sha256 only): refused when the configuration is put to work — at
/// start, on reload and by `check-config` (`mailkey_milter::setup`) —
/// naming the configuration file, the line, the key, the key file and what
/// is allowed.
#[tokio::test]
async fn an_ed25519_seal_key_is_refused_at_start() {
    let dns = TestDns::start(Zone::default()).await;
    let dir = process::temp_dir("arc-seal-ed25519");
    let key_file = dir.join("forwarder.pem");
    let pkey = openssl::pkey::PKey::generate_ed25519().expect("ed25519");
    let pem = pkey.private_key_to_pem_pkcs8().expect("pem");
    process::write(&key_file, &String::from_utf8_lossy(&pem));
    let config_file = dir.join("mk.toml");
    process::write(&config_file, &forwarder_config(&dns, "monitor", &key_file));
    let config = mailkey_milter::config::Config::load(&config_file).expect("parses");
    let Err(e) = mailkey_milter::setup(config, Some(&config_file)) else {
        panic!("an Ed25519 seal key was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("mk.toml"), "{e}");
    assert!(e.contains("line "), "{e}");
    assert!(e.contains("key `arc.key_file`"), "{e}");
    assert!(e.contains(&key_file.display().to_string()), "{e}");
    assert!(e.contains("is an Ed25519 key, which cannot seal"), "{e}");
    assert!(
        e.contains("allowed is a readable PEM private key, RSA of 2048 to 4096 bits"),
        "{e}"
    );
}
