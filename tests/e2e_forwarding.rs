//! End to end, forwarding (#15): two private Postfix instances on loopback.
//!
//! - **A** (`fwd.test`) forwards: `carol@fwd.test` is an alias of
//!   `bob@b.test`. It runs the shipped `postfix-examples/main.cf` plus
//!   `main.cf.forwarding` and `master.cf.forwarding`: every message passes
//!   the milter a second time through a loopback smtpd, where the client is
//!   trusted and the sender foreign, so the milter gives it an SRS sender
//!   and signs it with A's mailkey. The first pass seals it (ARC).
//! - **B** (`b.test`) runs the milter in enforce mode with every check, TLS
//!   included (A's SMTP client presents a certificate from the test CA).
//!
//! A bounce from B to the SRS address goes back through A to the original
//! sender. A list-like forwarder (subject tag, footer) is accepted by B when
//! its ARC seal is by a trusted sealer and refused otherwise.
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh): skipped with a note
//! without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    arc::{list_rewrite, SealKey},
    dns::{TestDns, Zone},
    message,
    postfix::{self, free_port, Postfix, PostfixOptions},
    smtp_sink::{SmtpSink, DELIVERY},
    swaks,
    tls::Pki,
    Daemon, TestKey,
};
use openssl::pkey::PKey;
use std::{net::Ipv4Addr, path::Path};

const FROM: &str = "alice@origin.test";
/// The origin's SPF authorises only this address (swaks sends from it).
const ORIGIN_IP: &str = "127.0.0.10";
/// A's outgoing address: in fwd.test's SPF, trusted by A's own milter.
const A_IP: &str = "127.0.0.30";
/// B's outgoing address (its bounces to A come from here).
const B_IP: &str = "127.0.0.40";
/// The list's address: in nobody's SPF.
const LIST_IP: &str = "127.0.0.50";
/// What the list's checks recorded when the origin's message reached it.
const LIST_RESULTS: &str = "mailkey=pass header.d=origin.test header.s=mailkey; \
                            spf=pass smtp.mailfrom=alice@origin.test";

/// Keys, certificates and the DNS every party shares.
struct World {
    dns: TestDns,
    origin: TestKey,
    list_key: SealKey,
    pki: Pki,
    /// fwd.test's signing key and ARC sealing key (PEM) and the SRS
    /// secrets, for A's milter.
    fwd_key_file: std::path::PathBuf,
    fwd_arc_key_file: std::path::PathBuf,
    srs_secret_file: std::path::PathBuf,
    dir: common::process::TempDir,
}

impl World {
    async fn new(tag: &str) -> World {
        let dir = common::process::temp_dir(&format!("e2e-fwd-{tag}"));
        let origin = TestKey::ed25519();
        let list_key = SealKey::new();
        let fwd = PKey::generate_ed25519().expect("ed25519");
        let fwd_record = format!(
            "v=DKIM1; k=ed25519; p={}",
            openssl::base64::encode_block(&fwd.raw_public_key().expect("public"))
        );
        let fwd_key_file = dir.join("fwd.test.pem");
        let pem = fwd.private_key_to_pem_pkcs8().expect("pem");
        common::process::write(&fwd_key_file, &String::from_utf8_lossy(&pem));
        let fwd_arc_key = SealKey::new();
        let fwd_arc_key_file = dir.join("fwd.test.arc.pem");
        common::process::write(&fwd_arc_key_file, &fwd_arc_key.pem());
        let srs_secret_file = dir.join("srs.secrets");
        common::process::write(&srs_secret_file, "forwarding-secret\n");
        let zone = Zone::default()
            .txt("origin.test", &format!("v=spf1 ip4:{ORIGIN_IP} -all"))
            .mx("origin.test", 10, "mx.origin.test")
            .a("mx.origin.test", Ipv4Addr::new(127, 0, 0, 10))
            .txt("mailkey.origin.test", &origin.record)
            .txt("fwd.test", &format!("v=spf1 ip4:{A_IP} -all"))
            .mx("fwd.test", 10, "mx.fwd.test")
            .a("mx.fwd.test", Ipv4Addr::new(127, 0, 0, 30))
            .txt("mailkey.fwd.test", &fwd_record)
            // The ARC seal's key ([arc] key_file, selector arc).
            .txt("arc._domainkey.fwd.test", &fwd_arc_key.record)
            .txt("arc._domainkey.lists.test", &list_key.record)
            .txt("arc._domainkey.rogue.test", &list_key.record);
        World {
            dns: TestDns::start(zone).await,
            origin,
            list_key,
            pki: Pki::new(&format!("fwd-{tag}")),
            fwd_key_file,
            fwd_arc_key_file,
            srs_secret_file,
            dir,
        }
    }

    /// Certificate and key files for `name`, from the test CA.
    fn cert(&self, name: &str, serial: u32) -> (String, String) {
        self.pki.files_for(name, serial)
    }

    /// A's milter: monitor mode (A judges nothing), SRS, signing and ARC
    /// sealing for fwd.test; A's own outgoing address is trusted.
    fn forwarder_config(&self, forwarding: bool) -> String {
        let mut extra = String::from("[tls]\nenforce = false\n");
        if forwarding {
            extra.push_str(&format!(
                "[[signing.domains]]\ndomain = \"fwd.test\"\nkey_file = \"{}\"\n\
                 [arc]\nseal = true\nseal_domain = \"fwd.test\"\nkey_file = \"{}\"\n\
                 [srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n",
                self.fwd_key_file.display(),
                self.fwd_arc_key_file.display(),
                self.srs_secret_file.display()
            ));
        }
        common::config(&self.dns, &extra)
            .replace("mode = \"enforce\"", "mode = \"monitor\"")
            .replace("mx.receiver.test", "mx.fwd.test")
            .replace(
                "trusted_networks = [\"127.0.0.1/32\"]",
                &format!("trusted_networks = [\"127.0.0.1/32\", \"{A_IP}/32\"]"),
            )
    }

    /// B's milter: enforce mode, every check (the certificate as Postfix
    /// verified it), the ARC seals of lists.test trusted.
    async fn receiver(&self) -> Daemon {
        let extra = "[tls]\nprobe = false\n[forwarding]\ntrusted_arc_sealers = [\"lists.test\"]\n";
        Daemon::start(&common::config(&self.dns, extra)).await
    }

    /// B's Postfix: relays b.test to `sink`, offers STARTTLS and verifies
    /// client certificates against the test CA; mail for fwd.test (bounces
    /// to SRS addresses) goes to A at `a_port`.
    fn start_b(&self, milter: &Daemon, sink: &SmtpSink, a_port: Option<u16>) -> Postfix {
        let mut extra_main_cf = example_main_cf(&["main.cf"], milter, None);
        extra_main_cf.push(("smtp_bind_address".into(), B_IP.into()));
        if let Some(port) = a_port {
            extra_main_cf.push((
                "transport_maps".into(),
                format!("inline:{{fwd.test=smtp:[127.0.0.1]:{port}}}"),
            ));
        }
        let cert = self.cert("mx.b.test", 2);
        let opts = postfix::verifying_receiver("b.test", cert, self.pki.ca_file(), extra_main_cf);
        tokio::task::block_in_place(|| Postfix::start(opts, sink))
    }
}

/// The settings of the shipped example files, the documented milter and
/// re-injection addresses replaced by the test's.
fn example_main_cf(
    files: &[&str],
    milter: &Daemon,
    reinject: Option<u16>,
) -> Vec<(String, String)> {
    postfix::example_main_cf_at(files, milter.addr, reinject)
}

/// The master.cf lines of `postfix-examples/FILE`, addresses replaced.
fn example_master_cf(file: &str, milter: &Daemon, reinject: u16) -> Vec<String> {
    postfix::example_master_cf_at(file, milter.addr, reinject)
}

/// Sends `data` from `client` (address, EHLO name) to `server` with swaks.
async fn send(
    dir: &Path,
    server: &Postfix,
    client: (&str, &str),
    to: &str,
    data: &str,
    extra: &[&str],
) -> swaks::Swaks {
    swaks::submit_from(dir, server.smtp_addr(), client, (FROM, to), data, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_through_a_is_accepted_at_b_and_bounces_come_back() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let logs = common::LogCapture::global();
    let w = World::new("forward").await;
    let a_milter = Daemon::start(&w.forwarder_config(true)).await;
    let b_milter = w.receiver().await;
    let (a_sink, b_sink) = (SmtpSink::start(), SmtpSink::start());
    let reinject = free_port();
    let a_port = free_port();
    let b = w.start_b(&b_milter, &b_sink, Some(a_port));

    // A: the shipped examples, its aliases, routes to B and its client
    // certificate. A's port is fixed before start: B routes bounces to it.
    let (cert_file, key_file) = w.cert("mx.fwd.test", 3);
    let mut extra_main_cf = example_main_cf(
        &["main.cf", "main.cf.forwarding"],
        &a_milter,
        Some(reinject),
    );
    let b_port = b.smtp_addr().port();
    extra_main_cf.extend([
        ("myhostname".into(), "mx.fwd.test".into()),
        ("smtp_bind_address".into(), A_IP.into()),
        (
            "virtual_alias_maps".into(),
            "inline:{carol@fwd.test=bob@b.test, gone@fwd.test=no-such-user@b.test}".into(),
        ),
        (
            "transport_maps".into(),
            format!("inline:{{b.test=smtp:[127.0.0.1]:{b_port}}}"),
        ),
        ("smtp_tls_security_level".into(), "may".into()),
        ("smtp_tls_cert_file".into(), cert_file),
        ("smtp_tls_key_file".into(), key_file),
    ]);
    let opts = PostfixOptions {
        extra_main_cf,
        extra_master_cf: example_master_cf("master.cf.forwarding", &a_milter, reinject),
        local_domain: Some("fwd.test".into()),
        listen_port: Some(a_port),
        ..Default::default()
    };
    let a = tokio::task::block_in_place(|| Postfix::start(opts, &a_sink));
    let origin = (ORIGIN_IP, "mx.origin.test");
    let signed = w.origin.sign(&message(FROM), "origin.test", "mailkey");

    // 1. Forwarded with SRS and A's signature: B accepts.
    let out = send(&w.dir, &a, origin, "carol@fwd.test", &signed, &[]).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let got = b_sink.delivered(1).await;
    let forwarded = &got[0];
    println!(
        "B delivered: MAIL FROM:<{}>\n{}",
        forwarded.mail_from,
        forwarded.text()
    );
    assert!(
        forwarded.mail_from.starts_with("SRS0=")
            && forwarded.mail_from.ends_with("=origin.test=alice@fwd.test"),
        "{forwarded:?}"
    );
    assert_eq!(forwarded.rcpt_to, ["bob@b.test"]);
    let text = forwarded.text();
    let results = forwarded.auth_results("mx.receiver.test");
    for part in [
        "mailkey=pass header.d=fwd.test header.s=mailkey",
        "spf=pass smtp.mailfrom=SRS0=",
        "x-tls=pass (TLSv1.3, cert verified by MTA, CN=mx.fwd.test)",
        "x-mx=pass",
        // B trusts lists.test only: A's chain is not validated (#21).
        "arc=none (not validated: sealed by fwd.test, not a trusted sealer)",
    ] {
        assert!(results.contains(part), "{part:?} missing: {results}");
    }
    assert!(
        text.contains(
            "ARC-Authentication-Results: i=1; mx.fwd.test; mailkey=pass header.d=origin.test"
        ),
        "{text}"
    );
    // B's milter logs the sender it checked and the original one.
    let line = logs.line_with(&["domain=\"fwd.test\"", "verdict=accept"]);
    println!("B's milter: {line}");
    assert!(
        line.contains("srs_original=\"alice@origin.test\""),
        "{line}"
    );

    // 2. A bounce from B to the SRS address returns through A to Alice.
    let out = send(&w.dir, &a, origin, "gone@fwd.test", &signed, &[]).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let got = a_sink.delivered(1).await;
    let bounce = &got[0];
    println!(
        "A delivered the bounce: MAIL FROM:<{}> RCPT TO:{:?}",
        bounce.mail_from, bounce.rcpt_to
    );
    assert_eq!(bounce.mail_from, "", "{bounce:?}");
    assert_eq!(bounce.rcpt_to, [FROM], "{bounce:?}");
    assert!(bounce.text().contains("no-such-user@b.test"), "{bounce:?}");
    tokio::task::block_in_place(|| {
        a.wait_for_log(&["to=<alice@origin.test>", "status=sent"], DELIVERY)
    });

    // 3. The same forward with SRS and signing off: B refuses it, A tells
    // Alice why.
    a_milter.reload(&w.forwarder_config(false));
    let out = send(&w.dir, &a, origin, "carol@fwd.test", &signed, &[]).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let refused = tokio::task::block_in_place(|| {
        a.wait_for_log(&["to=<bob@b.test>", "status=bounced"], DELIVERY)
    });
    println!("A: {refused}");
    assert!(refused.contains("said: 550-5.7.23"), "{refused}");
    assert!(
        refused.contains("is not authorised by the SPF record of origin.test"),
        "{refused}"
    );
    // B's log counts what `satisfied_by_mailkey` would have let through.
    let line = logs.line_with(&["client=127.0.0.30", "domain=\"origin.test\""]);
    println!("B's milter: {line}");
    assert!(
        line.contains("spf=fail") && line.contains("mailkey=pass"),
        "{line}"
    );
    assert!(line.contains("spf_failed_mailkey_passed=true"), "{line}");
    let got = a_sink.delivered(2).await;
    assert!(got[1].text().contains("5.7.23"), "{:?}", got[1]);
    assert_eq!(b_sink.messages().len(), 1, "B took only the first forward");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mail_is_accepted_only_under_a_trusted_seal() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let w = World::new("list").await;
    let b_milter = w.receiver().await;
    let b_sink = SmtpSink::start();
    let b = w.start_b(&b_milter, &b_sink, None);
    let (cert, key) = w.cert("mail.lists.test", 4);
    let tls = [
        "--tls",
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
    ];
    let list = (LIST_IP, "mail.lists.test");
    let signed = w.origin.sign(&message(FROM), "origin.test", "mailkey");
    let changed = list_rewrite(&signed);

    // Sealed by lists.test, which B trusts: accepted via ARC.
    let sealed = w.list_key.seal(&changed, "lists.test", LIST_RESULTS);
    let out = send(&w.dir, &b, list, "bob@b.test", &sealed, &tls).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let results = b_sink.delivered(1).await[0].auth_results("mx.receiver.test");
    println!("{results}");
    for part in [
        "mailkey=pass (arc: lists.test)",
        "spf=pass (arc: lists.test)",
        "arc=pass header.d=lists.test",
        "x-tls=pass",
    ] {
        assert!(results.contains(part), "{part:?} missing: {results}");
    }

    // The same message sealed by rogue.test (a valid seal B does not trust).
    let sealed = w.list_key.seal(&changed, "rogue.test", LIST_RESULTS);
    let out = send(&w.dir, &b, list, "bob@b.test", &sealed, &tls).await;
    let reply = out.final_reply().expect("a reply");
    println!("{}", out.output);
    // Both the changed body and the list's IP count against origin.test.
    assert_eq!(reply.code(), "550 5.7.26", "{}", out.output);
    assert!(
        reply.text().contains("2 checks failed for origin.test"),
        "{}",
        out.output
    );
    assert_eq!(b_sink.messages().len(), 1);
}
