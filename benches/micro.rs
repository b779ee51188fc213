//! Micro-benchmarks of the per-message work that is not I/O: the mailkey
//! verification per algorithm (through the daemon's own check, keys given
//! as the lookup would return them, so no DNS query), the DKIM2
//! verification of the same message signed with the same keys (keys in the
//! DNS cache, as after the first message of a sender), parsing with body
//! canonicalisation, rendering the Authentication-Results value, and what
//! keeping a message costs in memory and in the spool file
//! (`SPOOL_DIR`, default /var/tmp).
//!
//! `cargo bench --ignore-rust-version --bench micro`

// A bench panics on a broken setup (no mail is at stake): it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mail_auth::{
    crypto::{Ed25519Key, RsaKey, Sha256, SigningKey},
    dkim::{Canonicalization, DkimSigner},
    AuthenticatedMessage,
};
use mailkey_milter::{
    auth_results,
    checks::{mailkey, CheckResult, Effect, Status},
    config::Config,
    dkim2,
    dns::{Dns, TxtAnswer},
    envelope::SenderDomain,
    protocol::KeyLookup,
    spool::{Spool, MEMORY_MAX},
    verdict::Verdict,
};
use openssl::{pkey::PKey, rsa::Rsa};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::{
    hint::black_box,
    path::{Path, PathBuf},
};

const DOMAIN: &str = "sender.test";

/// A ~5 KB message like the ones the throughput benchmarks send.
fn message() -> String {
    let mut body = String::new();
    while body.len() < 5000 {
        body.push_str("The quarterly figures are attached; please review them by Tuesday.\r\n");
    }
    format!(
        "From: Alice <alice@{DOMAIN}>\r\nTo: bob@receiver.test\r\nSubject: Report\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@{DOMAIN}>\r\n\r\n{body}"
    )
}

fn sign<K: SigningKey>(key: K, msg: &str, c: Canonicalization) -> String {
    let sig = DkimSigner::from_key(key)
        .domain(DOMAIN)
        .selector("mailkey")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(c)
        .body_canonicalization(c)
        .sign(msg.as_bytes())
        .expect("sign");
    format!("{}{msg}", mail_auth::headers::HeaderWriter::to_header(&sig))
}

/// The same message with a DKIM2 signature (`i=1`) for the benchmark's
/// envelope, alice@sender.test → bob@receiver.test.
fn sign_dkim2(key: impl Into<mail_auth::crypto::DkimKey>, msg: &str) -> String {
    let signed = mail_auth::dkim2::Dkim2Signer::from_key(key)
        .domain(DOMAIN)
        .selector("mailkey")
        .sign(
            msg.as_bytes(),
            mail_auth::dkim2::Hop::real(format!("<alice@{DOMAIN}>"), ["<bob@receiver.test>"]),
            None,
        )
        .expect("DKIM2 sign");
    format!("{}{msg}", signed.to_header())
}

/// (name, DKIM1-signed message, DKIM2-signed message, key record) per
/// algorithm; DKIM1 relaxed/relaxed.
fn signed() -> Vec<(&'static str, String, String, String)> {
    let msg = message();
    let b64 = openssl::base64::encode_block;
    let ed = PKey::generate_ed25519().expect("ed25519");
    let ed_key = Ed25519Key::from_pkcs8_der(&ed.private_key_to_pkcs8().expect("pkcs8"))
        .expect("ed25519 key");
    let ed_record = format!(
        "v=DKIM1; k=ed25519; p={}",
        b64(&ed.raw_public_key().expect("raw"))
    );
    let rsa = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        rsa.private_key_to_pkcs8().expect("pkcs8"),
    ));
    let rsa_key = RsaKey::<Sha256>::from_key_der(der).expect("rsa key");
    let rsa_record = format!(
        "v=DKIM1; k=rsa; p={}",
        b64(&rsa.public_key_to_der().expect("spki"))
    );
    let ed2 = Ed25519Key::from_pkcs8_der(&ed.private_key_to_pkcs8().expect("pkcs8"))
        .expect("ed25519 key");
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        rsa.private_key_to_pkcs8().expect("pkcs8"),
    ));
    let rsa2 = RsaKey::<Sha256>::from_key_der(der).expect("rsa key");
    vec![
        (
            "rsa-2048",
            sign(rsa_key, &msg, Canonicalization::Relaxed),
            sign_dkim2(rsa2, &msg),
            rsa_record,
        ),
        (
            "ed25519",
            sign(ed_key, &msg, Canonicalization::Relaxed),
            sign_dkim2(ed2, &msg),
            ed_record,
        ),
    ]
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The resolver is never asked: the keys are handed to the check.
    let config = Config::parse(
        "[dns]\nnameservers = [\"127.0.0.1:9\"]\n",
        Path::new("micro.toml"),
    )
    .expect("config");
    let dns = rt.block_on(async { Dns::new(&config.dns) }).expect("dns");
    let sender = SenderDomain::Domain(DOMAIN.into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut group = c.benchmark_group("verify");
    let rcpt = vec!["bob@receiver.test".to_string()];
    for (name, msg, dkim2_msg, record) in signed() {
        // DKIM2: the key in the cache, as after the sender's first message.
        dns.preload_txt(
            &format!("mailkey._domainkey.{DOMAIN}"),
            TxtAnswer::Records(vec![record.clone().into_bytes()]),
        );
        let arrival = dkim2::verify::Arrival {
            mail_from: "alice@sender.test",
            rcpt_to: &rcpt,
        };
        let check2 = || dkim2::verify::verify(&dns, arrival, dkim2_msg.as_bytes(), now);
        let first = rt.block_on(check2());
        assert_eq!(
            first.status,
            Status::Pass,
            "dkim2 {name}: {:?}",
            first.failure
        );
        group.bench_function(format!("dkim2 {name}"), |b| {
            b.iter(|| rt.block_on(check2()))
        });
        let keys = std::sync::Arc::new(KeyLookup::from_answer(TxtAnswer::Records(vec![
            record.into_bytes()
        ])));
        let check = || {
            mailkey::check(
                &dns,
                &config.mailkey,
                &sender,
                keys.clone(),
                msg.as_bytes(),
                now,
                std::time::Instant::now() + std::time::Duration::from_secs(60),
            )
        };
        // A benchmark of a failing verification would measure nothing.
        let first = rt.block_on(check()).expect("not stopped");
        assert_eq!(first.status, Status::Pass, "{name}: {:?}", first.reason);
        group.bench_function(name, |b| b.iter(|| rt.block_on(check())));
    }
    group.finish();
}

fn canonicalise(c: &mut Criterion) {
    let msg = message();
    let pkcs8 = PKey::generate_ed25519()
        .and_then(|k| k.private_key_to_pkcs8())
        .expect("ed25519");
    let mut group = c.benchmark_group("parse+canonicalise");
    group.throughput(Throughput::Bytes(msg.len() as u64));
    for (name, canon) in [
        ("relaxed", Canonicalization::Relaxed),
        ("simple", Canonicalization::Simple),
    ] {
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).expect("key");
        let signed = sign(key, &msg, canon);
        // Parsing hashes the canonical body of every signature.
        group.bench_function(name, |b| {
            b.iter(|| {
                AuthenticatedMessage::parse(black_box(signed.as_bytes()))
                    .map(|m| m.raw_message().len())
            })
        });
    }
    group.finish();
}

fn render(c: &mut Criterion) {
    let config = Config::parse(
        "authserv_id = \"mx.receiver.test\"\n",
        Path::new("micro.toml"),
    )
    .expect("config");
    let results = [
        CheckResult::new(
            mailkey_milter::checks::mailkey::NAME,
            Status::Pass,
            Effect::Accept,
        )
        .prop("header.d", DOMAIN)
        .prop("header.s", "mailkey")
        .prop("header.a", "ed25519-sha256")
        .prop("header.b", "AbCdEfGh"),
        CheckResult::new(
            mailkey_milter::checks::spf::NAME,
            Status::Pass,
            Effect::Accept,
        )
        .prop("smtp.mailfrom", format!("alice@{DOMAIN}")),
        CheckResult::new(
            mailkey_milter::checks::tls::NAME,
            Status::Pass,
            Effect::Accept,
        )
        .prop("policy.peer-certificate", "verified"),
        CheckResult::new(
            mailkey_milter::checks::mx::NAME,
            Status::Pass,
            Effect::Accept,
        )
        .prop("policy.mx", format!("mx.{DOMAIN}")),
    ];
    let verdict = Verdict::accept();
    c.bench_function("auth_results::header_value", |b| {
        b.iter(|| auth_results::header_value(&config, black_box(&results), &verdict))
    });
}

/// One message through the spool as the milter keeps it (a header block,
/// then body chunks of at most 64 KiB), handed over and read once (every
/// page, as the verifier does): below the threshold it stays in memory,
/// above it the spool file is created, written, mapped and dropped.
fn spool(c: &mut Criterion) {
    let dir = std::env::var_os("SPOOL_DIR").map_or_else(|| "/var/tmp".into(), PathBuf::from);
    let head = vec![b'h'; 2000];
    let mut group = c.benchmark_group("spool");
    for (name, size) in [
        ("in memory (30 KB)", 30_000),
        ("spooled (64 KB)", 64_000),
        ("spooled (1 MB)", 1_000_000),
    ] {
        assert_eq!(size + head.len() > MEMORY_MAX, size > 30_000);
        let body = vec![b'b'; size];
        group.throughput(Throughput::Bytes((head.len() + size) as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut spool = Spool::new(&dir);
                spool.append(&head).expect("append");
                for chunk in body.chunks(65_535) {
                    spool.append(chunk).expect("append");
                }
                let bytes = spool.into_bytes().expect("bytes");
                bytes
                    .iter()
                    .step_by(4096)
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
            })
        });
    }
    // Before #21: the whole message in one heap buffer that grows by a
    // quarter (page faults and copies on growth are part of its cost).
    for (name, size) in [("heap (64 KB)", 64_000), ("heap (1 MB)", 1_000_000)] {
        let body = vec![b'b'; size];
        group.throughput(Throughput::Bytes((head.len() + size) as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
                for part in std::iter::once(&head[..]).chain(body.chunks(65_535)) {
                    if buf.capacity() - buf.len() < part.len() {
                        buf.reserve_exact(part.len().max(buf.len() / 4));
                    }
                    buf.extend_from_slice(part);
                }
                black_box(&buf)
                    .iter()
                    .step_by(4096)
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify, canonicalise, render, spool);
criterion_main!(benches);
