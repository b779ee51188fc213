//! The evidence ladder (#23) through the real milter socket: the modelled
//! senders of tests/common/traffic.rs, with the macros Postfix sends for
//! each (a verified client certificate's subject and issuer, or only the
//! TLS version), under every candidate `[tls] evidence` setting, by
//! reloading one daemon. Each verdict must be the table's; under the
//! setting #23 must meet, every refusal carries its specific guidance.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::TestDns,
    message,
    process::free_addr,
    send,
    traffic::{ClientTls, Sender, World, DONE_WHEN, SENDERS, SETTINGS},
    Daemon, LogCapture, Outcome, Transaction,
};
use indymilter_test::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `250`, or the reply's code and enhanced code (`550 5.7.5`).
fn code(o: &Outcome) -> String {
    match o.status {
        Status::Accept | Status::Continue => "250".into(),
        _ => o
            .reply()
            .replacen('-', " ", 1)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The transaction as Postfix presents it to the milter: it passes the
/// subject and issuer of a client certificate it verified, nothing for
/// one it did not (the self-signed one), and no TLS macros at all for a
/// plaintext session.
fn transaction(s: &Sender, world_tag: &str) -> Transaction<'static> {
    let mut t = Transaction::new(s.ip, s.from, message(s.from));
    t.helo = s.helo;
    t.tls_macros = match s.tls {
        ClientTls::Plaintext => vec![],
        ClientTls::NoCertificate | ClientTls::SelfSigned(_) => vec![("{tls_version}", "TLSv1.3")],
        ClientTls::CaCertificate(cn) => vec![
            ("{tls_version}", "TLSv1.3"),
            ("{cert_subject}", cn),
            (
                "{cert_issuer}",
                Box::leak(format!("Test CA {world_tag}").into_boxed_str()),
            ),
        ],
    };
    t
}

/// What Postfix's `check_policy_service` sends for a session whose client
/// presented a certificate it could not verify: fingerprints, no subject.
async fn policy_request(addr: std::net::SocketAddr, ip: &str, port: u16) {
    // The daemon binds the companion in its own task: wait for it.
    let mut conn = None;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let mut conn = conn.expect("the policy companion listens");
    let request = format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
         client_address={ip}\nclient_port={port}\nhelo_name=mail.proton.test\n\
         encryption_protocol=TLSv1.3\nccert_subject=\nccert_issuer=\n\
         ccert_fingerprint=6B:36:0A:1F\nccert_pubkey_fingerprint=0C:2F:77:E1\n\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut reply = [0u8; 14];
    conn.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"action=DUNNO\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_gives_each_modelled_sender_its_verdict() {
    let logs = LogCapture::global();
    let tag = "evidence-matrix";
    let world = World::start(tag);
    let dns = TestDns::start(world.zone.clone()).await;
    let policy = free_addr();
    let config = |setting: &str| {
        common::config(
            &dns,
            &format!(
                "reject_at_rcpt = false\n[policy]\nlisten = \"inet:{policy}\"\n{}",
                world.tls_config(setting)
            ),
        )
    };
    let daemon = Daemon::start(&config(SETTINGS[0])).await;
    // The milter connection of common::open comes from port 40000.
    policy_request(policy, "127.0.50.7", 40000).await;

    let mut table = Vec::new();
    let mut done_when = Vec::new();
    for (i, setting) in SETTINGS.iter().enumerate() {
        if i > 0 {
            daemon.reload(&config(setting));
        }
        let mut row = Vec::new();
        for s in &SENDERS {
            let outcome = send(daemon.addr, &transaction(s, tag)).await;
            row.push(code(&outcome));
            if i == DONE_WHEN {
                done_when.push((s, outcome));
            }
        }
        table.push(row);
    }
    // The closing note's table: senders × settings.
    println!("{:<74} {}", "sender", SETTINGS.join(" | "));
    for (j, s) in SENDERS.iter().enumerate() {
        let row: Vec<&str> = table.iter().map(|r| r[j].as_str()).collect();
        println!("{:<74} {}", s.model, row.join(" | "));
    }
    for (j, s) in SENDERS.iter().enumerate() {
        let got: Vec<&str> = table.iter().map(|r| r[j].as_str()).collect();
        assert_eq!(got, s.verdicts, "{}", s.model);
    }

    // #23's setting: every legitimate sender accepted, every unaccountable
    // one refused with the guidance for its case, and only the time-out
    // deferred.
    for (s, o) in &done_when {
        let reply = o.reply();
        println!(
            "{}:\n{reply}\n{}\n",
            s.model,
            o.auth_results().unwrap_or_default()
        );
        if s.legitimate {
            assert!(o.is_accept(), "{}: {reply}", s.model);
            continue;
        }
        let expect: &[&str] = match s.ip {
            "127.0.50.6" => &[
                "Nothing shows who runs your server mail.kernel.test (127.0.50.6)",
                "present a client certificate from a trusted CA",
                "give the MX hosts of kernel.test certificates from a trusted CA",
                "offer STARTTLS on 127.0.50.6 port 25",
            ],
            "127.0.50.7" => &[
                "tls check fail for proton.test: self-signed certificate",
                "Install an unexpired certificate from a trusted CA",
            ],
            "127.0.50.8" => &["session not encrypted", "Use STARTTLS when sending"],
            "127.0.50.9" => &["certificate probe failed", "did not finish within 800 ms"],
            other => panic!("no expectation for {other}"),
        };
        for part in expect {
            assert!(reply.contains(part), "{}: {part:?} not in {reply}", s.model);
        }
    }
    // The companion told the milter side what Postfix cannot: the
    // self-signed client showed a certificate; everyone else is "unknown"
    // to a Postfix milter (or verified).
    let line = logs.line_with(&["client=127.0.50.7", "tls.probe=self-signed"]);
    assert!(line.contains("tls.mta_presented=untrusted"), "{line}");
    let line = logs.line_with(&[
        "client=127.0.50.3",
        "tls.evidence=sender-domain",
        "tls.probe=",
    ]);
    for part in [
        "tls.mta_verified=none",
        "tls.mta_presented=unknown",
        "tls.sender_domain=mx-certified",
        "org=\"amazonses.test\"",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    logs.line_with(&[
        "client=127.0.50.3",
        "tls.evidence=sender-domain",
        "tls.probe=no-listener",
    ]);
}

/// A domain's MX set may be huge: only its first two hosts by preference
/// are ever contacted (`tls::MAX_MX_HOSTS`), so the third's certificate
/// does not count — and is never asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_two_mx_hosts_are_contacted() {
    use common::tls::{Behaviour, Leaf, Pki, Responder};
    let pki = Pki::new("mx-bound");
    let certified = Responder::start(
        "127.0.53.3",
        Behaviour::StartTls {
            identity: pki.leaf(Leaf::valid(&["mx3.many.test"], 5)),
            ocsp: None,
        },
    );
    let first = Responder::start("127.0.53.1", Behaviour::NoStartTls);
    let zone = common::dns::Zone::default()
        .txt("many.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("many.test", 30, "mx3.many.test")
        .mx("many.test", 10, "mx1.many.test")
        .mx("many.test", 20, "mx2.many.test")
        .a("mx1.many.test", "127.0.53.1".parse().unwrap())
        .a("mx2.many.test", "127.0.53.2".parse().unwrap())
        .a("mx3.many.test", "127.0.53.3".parse().unwrap());
    let dns = TestDns::start(zone).await;
    let config = format!(
        "reject_at_rcpt = false\n[tls]\nevidence = [\"sender-domain\"]\nprobe_port = {}\n\
         mta_sts_port = {}\nprobe_timeout_ms = 800\nca_file = \"{}\"\n",
        common::tls::probe_port(),
        common::tls::https_port(),
        pki.ca_file().display()
    );
    let daemon = Daemon::start(&common::config(&dns, &config)).await;
    let from = "a@many.test";
    let mut t = Transaction::new("127.0.53.9", from, message(from));
    t.tls_macros = vec![("{tls_version}", "TLSv1.3")];
    let outcome = send(daemon.addr, &t).await;
    assert_eq!(code(&outcome), "550 5.7.5", "{}", outcome.reply());
    let reply = outcome.reply();
    assert!(reply.contains("MX mx1.many.test"), "{reply}");
    assert!(reply.contains("nothing listens on 127.0.53.2"), "{reply}");
    assert!(!reply.contains("mx3"), "{reply}");
    assert_eq!(first.connections(), 1);
    assert_eq!(
        certified.connections(),
        0,
        "the third MX host was contacted"
    );
}
