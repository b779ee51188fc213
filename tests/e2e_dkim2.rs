//! End to end, DKIM2 (#24): three private Postfix instances on loopback.
//!
//! - **S** (`origin.test`) signs Alice's mail with DKIM2 only, for its real
//!   envelope (`rt=carol@fwd.test`).
//! - **F** (`fwd.test`) forwards: `carol@fwd.test` is an alias of
//!   `bob@b.test`; a second milter appends a footer (as a list manager
//!   would); the shipped forwarding examples pass each message through the
//!   milter a second time, where `[dkim2] forward` adds fwd.test's hop with
//!   the recipe of the footer (and the SRS sender). fwd.test signs DKIM2
//!   only, and publishes its DKIM1 mailkey too: without the hop, its
//!   forwards fail mailkey at R.
//! - **R** (`b.test`) enforces every check (the certificate as Postfix
//!   verified it) with no trusted ARC sealer; origin.test's SPF does not
//!   authorise F. It DKIM2-signs its own bounces.
//!
//! A bounce from R returns through F (verified there, passed back with the
//! message as F received it) to S, which verifies it. A forwarder that
//! keeps Alice's sender and adds the footer without a hop is refused by R
//! with the DKIM2 guidance.
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh): skipped with a note
//! without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    footer_milter::FooterMilter,
    message,
    postfix::{
        example_main_cf_at, example_master_cf_at, free_port, verifying_receiver, Postfix,
        PostfixOptions,
    },
    smtp_sink::{SmtpSink, DELIVERY},
    swaks,
    tls::Pki,
    Daemon, LogCapture, TestKey,
};
use std::{net::Ipv4Addr, path::PathBuf};

const FROM: &str = "alice@origin.test";
/// S's outgoing address: the only one in origin.test's SPF.
const S_IP: &str = "127.0.0.10";
/// F's outgoing address: in fwd.test's SPF, trusted by F's own milter.
const F_IP: &str = "127.0.0.30";
/// R's outgoing address (its bounces to F come from here).
const R_IP: &str = "127.0.0.40";
const FOOTER: &str = "-- \r\nYou get this through carol@fwd.test.\r\n";

/// Keys, certificates and the DNS all three share.
struct World {
    dns: TestDns,
    pki: Pki,
    /// Key files of S (origin.test), F (fwd.test) and R (b.test).
    keys: [PathBuf; 3],
    srs_secret_file: PathBuf,
    dir: common::process::TempDir,
}

impl World {
    async fn new(tag: &str) -> World {
        let dir = common::process::temp_dir(&format!("e2e-dkim2-{tag}"));
        let (origin, fwd, b) = (TestKey::ed25519(), TestKey::ed25519(), TestKey::ed25519());
        let keys = ["origin.test", "fwd.test", "b.test"].map(|d| dir.join(format!("{d}.pem")));
        for (key, path) in [&origin, &fwd, &b].iter().zip(&keys) {
            key.write_pem(path);
        }
        let srs_secret_file = dir.join("srs.secrets");
        common::process::write(&srs_secret_file, "forwarding-secret\n");
        let spf = |ip: &str| format!("v=spf1 ip4:{ip} -all");
        let zone = Zone::default()
            .txt("origin.test", &spf(S_IP))
            .mx("origin.test", 10, "mx.origin.test")
            .a("mx.origin.test", Ipv4Addr::new(127, 0, 0, 10))
            .txt("mailkey._domainkey.origin.test", &origin.record)
            .txt("fwd.test", &spf(F_IP))
            .txt("mx.fwd.test", &spf(F_IP))
            .mx("fwd.test", 10, "mx.fwd.test")
            .a("mx.fwd.test", Ipv4Addr::new(127, 0, 0, 30))
            // Its DKIM1 mailkey and, through the same name, its DKIM2 key.
            .txt("mailkey.fwd.test", &fwd.record)
            .txt("mailkey._domainkey.fwd.test", &fwd.record)
            .txt("mx.b.test", &spf(R_IP))
            .txt("mailkey._domainkey.b.test", &b.record);
        World {
            dns: TestDns::start(zone).await,
            pki: Pki::new(&format!("dkim2-{tag}")),
            keys,
            srs_secret_file,
            dir,
        }
    }

    /// Certificate and key files for `name`, from the test CA.
    fn cert(&self, name: &str, serial: u32) -> (String, String) {
        self.pki.files_for(name, serial)
    }

    /// A milter in monitor mode that signs `domain` with DKIM2 only; its
    /// authserv-id is `mx.DOMAIN`.
    fn signing_config(&self, domain: &str, key: usize, extra: &str) -> String {
        let extra = format!(
            "[tls]\nenforce = false\n[guidance]\nbounces = false\n{extra}\n\
             [[signing.domains]]\ndomain = \"{domain}\"\nkey_file = \"{}\"\n\
             signatures = [\"dkim2\"]\n",
            self.keys[key].display()
        );
        common::config(&self.dns, &extra)
            .replace("mode = \"enforce\"", "mode = \"monitor\"")
            .replace("mx.receiver.test", &format!("mx.{domain}"))
    }

    /// F's milter: SRS and the DKIM2 hop.
    fn forwarder_config(&self) -> String {
        let extra = format!(
            "[srs]\ndomain = \"fwd.test\"\nsecret_file = \"{}\"\n[dkim2]\nforward = true\n",
            self.srs_secret_file.display()
        );
        self.signing_config("fwd.test", 1, &extra).replace(
            "trusted_networks = [\"127.0.0.1/32\"]",
            &format!("trusted_networks = [\"127.0.0.1/32\", \"{F_IP}/32\"]"),
        )
    }

    /// R's milter: enforce mode, every check, no trusted sealer; it signs
    /// its bounces for b.test.
    fn receiver_config(&self) -> String {
        let extra = format!(
            "[tls]\nprobe = false\n\
             [[signing.domains]]\ndomain = \"b.test\"\nkey_file = \"{}\"\n\
             signatures = [\"dkim2\"]\n",
            self.keys[2].display()
        );
        common::config(&self.dns, &extra)
    }

    /// R's Postfix: relays b.test to `sink` (which refuses no-such-user@),
    /// verifies client certificates, passes its bounces through its
    /// milter, sends mail for fwd.test to F at `f_port`.
    fn start_r(&self, milter: &Daemon, sink: &SmtpSink, f_port: u16) -> Postfix {
        let mut extra_main_cf =
            example_main_cf_at(&["main.cf", "main.cf.bounces"], milter.addr, None);
        extra_main_cf.extend([
            ("myhostname".into(), "mx.b.test".into()),
            ("smtp_bind_address".into(), R_IP.into()),
            (
                "transport_maps".into(),
                format!("inline:{{fwd.test=smtp:[127.0.0.1]:{f_port}}}"),
            ),
        ]);
        let cert = self.cert("mx.b.test", 2);
        let opts = verifying_receiver("b.test", cert, self.pki.ca_file(), extra_main_cf);
        tokio::task::block_in_place(|| Postfix::start(opts, sink))
    }

    /// F's Postfix: the shipped forwarding examples, its aliases, the
    /// footer milter after ours, routes to R and S, its client certificate.
    fn start_f(
        &self,
        milter: &Daemon,
        footer: &FooterMilter,
        sink: &SmtpSink,
        ports: (u16, u16, u16),
    ) -> Postfix {
        let (f_port, r_port, s_port) = ports;
        let reinject = free_port();
        let (cert_file, key_file) = self.cert("mx.fwd.test", 3);
        let mut extra_main_cf = example_main_cf_at(
            &["main.cf", "main.cf.forwarding"],
            milter.addr,
            Some(reinject),
        );
        extra_main_cf.extend([
            (
                "smtpd_milters".into(),
                format!("inet:{}, inet:{}", milter.addr, footer.addr),
            ),
            ("myhostname".into(), "mx.fwd.test".into()),
            ("smtp_bind_address".into(), F_IP.into()),
            (
                "virtual_alias_maps".into(),
                "inline:{carol@fwd.test=bob@b.test, gone@fwd.test=no-such-user@b.test}".into(),
            ),
            (
                "transport_maps".into(),
                format!(
                    "inline:{{b.test=smtp:[127.0.0.1]:{r_port}, origin.test=smtp:[127.0.0.1]:{s_port}}}"
                ),
            ),
            ("smtp_tls_security_level".into(), "may".into()),
            ("smtp_tls_cert_file".into(), cert_file),
            ("smtp_tls_key_file".into(), key_file),
        ]);
        let opts = PostfixOptions {
            extra_main_cf,
            extra_master_cf: example_master_cf_at("master.cf.forwarding", milter.addr, reinject),
            local_domain: Some("fwd.test".into()),
            listen_port: Some(f_port),
            ..Default::default()
        };
        tokio::task::block_in_place(|| Postfix::start(opts, sink))
    }

    /// S's Postfix: Alice's mail for fwd.test goes to F; origin.test's mail
    /// (bounces) to `sink`.
    fn start_s(&self, milter: &Daemon, sink: &SmtpSink, ports: (u16, u16)) -> Postfix {
        let (s_port, f_port) = ports;
        let mut extra_main_cf = example_main_cf_at(&["main.cf"], milter.addr, None);
        extra_main_cf.extend([
            ("myhostname".into(), "mx.origin.test".into()),
            ("smtp_bind_address".into(), S_IP.into()),
            (
                "transport_maps".into(),
                format!("inline:{{fwd.test=smtp:[127.0.0.1]:{f_port}}}"),
            ),
        ]);
        let opts = PostfixOptions {
            extra_main_cf,
            relay_domains: vec!["origin.test".into()],
            listen_port: Some(s_port),
            ..Default::default()
        };
        tokio::task::block_in_place(|| Postfix::start(opts, sink))
    }
}

/// Alice submits to S (a trusted client of S: signed there).
async fn alice_sends(w: &World, s: &Postfix, to: &str) {
    let out = swaks::submit_from(
        &w.dir,
        s.smtp_addr(),
        ("127.0.0.1", "alice.origin.test"),
        (FROM, to),
        &message(FROM).replace("bob@receiver.test", to),
        &[],
    )
    .await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
}

/// S, F and R with their milters and sinks; F's footer milter skips
/// `footer_skips` (F's own second pass, or nothing).
struct Hosts {
    w: World,
    s: Postfix,
    f: Postfix,
    s_sink: SmtpSink,
    r_sink: SmtpSink,
    _r: Postfix,
    _f_sink: SmtpSink,
    _milters: [Daemon; 3],
    _footer: FooterMilter,
}

async fn hosts(tag: &str, footer_skips: &str) -> Hosts {
    let w = World::new(tag).await;
    let s_milter = Daemon::start(&w.signing_config("origin.test", 0, "")).await;
    let f_milter = Daemon::start(&w.forwarder_config()).await;
    let r_milter = Daemon::start(&w.receiver_config()).await;
    let footer = FooterMilter::start(FOOTER, footer_skips.parse().expect("ip")).await;
    let (s_sink, f_sink, r_sink) = (SmtpSink::start(), SmtpSink::start(), SmtpSink::start());
    let (s_port, f_port) = (free_port(), free_port());
    let r = w.start_r(&r_milter, &r_sink, f_port);
    let ports = (f_port, r.smtp_addr().port(), s_port);
    let f = w.start_f(&f_milter, &footer, &f_sink, ports);
    let s = w.start_s(&s_milter, &s_sink, (s_port, f_port));
    Hosts {
        w,
        s,
        f,
        s_sink,
        r_sink,
        _r: r,
        _f_sink: f_sink,
        _milters: [s_milter, f_milter, r_milter],
        _footer: footer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dkim2_forward_is_accepted_without_trusted_sealers_and_its_bounce_comes_back_verified() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let logs = LogCapture::global();
    // Every host lives as long as `h` (a pattern with `..` would drop the
    // rest at once).
    let h = hosts("forward", F_IP).await;
    let (w, s, s_sink, r_sink) = (&h.w, &h.s, &h.s_sink, &h.r_sink);

    // 1. S signs, F adds the footer and its hop, R accepts.
    alice_sends(w, s, "carol@fwd.test").await;
    let got = r_sink.delivered(1).await;
    let delivered = &got[0];
    println!(
        "R delivered: MAIL FROM:<{}>\n{}",
        delivered.mail_from,
        delivered.text()
    );
    assert!(delivered.mail_from.starts_with("SRS0="), "{delivered:?}");
    assert!(delivered.text().contains(FOOTER), "{}", delivered.text());
    let results = delivered.auth_results("mx.receiver.test");
    for part in [
        "mailkey=pass (dkim2 i=2 by fwd.test, originator origin.test) header.d=fwd.test",
        "spf=pass",
        "x-tls=pass",
        "x-mx=pass",
        "dkim2=pass (i=1 origin.test pass, i=2 fwd.test pass) header.d=origin.test",
    ] {
        assert!(results.contains(part), "{part:?} missing: {results}");
    }
    let line = logs.line_with(&["domain=\"fwd.test\"", "dkim2_chain="]);
    println!("R's milter: {line}");
    assert!(line.contains("verdict=accept"), "{line}");
    let line = logs.line_with(&["dkim2_signed=\"i=2 fwd.test\""]);
    println!("F's milter (second pass): {line}");

    // 2. R bounces a forward to a user it does not have; the DSN goes back
    // through F (verified, passed back) to S, which verifies it.
    alice_sends(w, s, "gone@fwd.test").await;
    let got = s_sink.delivered(1).await;
    let bounce = &got[0];
    println!(
        "S delivered the bounce: MAIL FROM:<{}> RCPT TO:{:?}\n{}",
        bounce.mail_from,
        bounce.rcpt_to,
        bounce.text()
    );
    assert_eq!(
        (bounce.mail_from.as_str(), bounce.rcpt_to.as_slice()),
        ("", &[FROM.to_string()][..])
    );
    let results = bounce.auth_results("mx.origin.test");
    assert!(
        results.contains("dkim2=pass (i=1 fwd.test pass) header.d=fwd.test"),
        "{results}"
    );
    let text = bounce.text();
    assert!(text.contains("From: MAILER-DAEMON@fwd.test"), "{text}");
    assert!(
        !text.contains(FOOTER),
        "F's footer is undone in the returned message: {text}"
    );
    for parts in [
        &["DKIM2 DSN about our message (newest hop i=2 by fwd.test): i=1 b.test pass"][..],
        &["passed back with the message as it arrived"],
        &["DKIM2 DSN about our message (newest hop i=1 by origin.test): i=1 fwd.test pass"],
    ] {
        println!("{}", logs.line_with(parts));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_that_changes_the_message_after_its_hop_is_refused_with_its_guidance() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let logs = LogCapture::global();
    // The list manager also runs on F's second pass: its footer comes
    // after fwd.test's hop, which no recipe describes.
    let h = hosts("broken", "127.0.0.99").await;
    let (w, s, f, r_sink) = (&h.w, &h.s, &h.f, &h.r_sink);

    alice_sends(w, s, "carol@fwd.test").await;
    let refused = tokio::task::block_in_place(|| {
        f.wait_for_log(&["to=<bob@b.test>", "status=bounced"], DELIVERY)
    });
    println!("F: {refused}");
    for part in [
        "said: 550-5.7.20 mailkey check fail for fwd.test: DKIM2 chain of fwd.test fails: \
         Message-Instance m=2 body hash sha256 mismatch",
        "The message was changed after its newest DKIM2 signature",
        "must add a Message-Instance with a recipe and its own DKIM2 signature",
    ] {
        assert!(refused.contains(part), "{part:?} missing: {refused}");
    }
    let line = logs.line_with(&["client=127.0.0.30", "domain=\"fwd.test\"", "verdict=reject"]);
    println!("R's milter: {line}");
    assert!(
        line.contains("dkim2=fail") && line.contains("spf=pass"),
        "{line}"
    );
    assert!(r_sink.messages().is_empty());
}
