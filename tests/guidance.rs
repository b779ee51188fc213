//! The guidance at the end of every reject reply, through the real milter
//! socket with records on a real DNS server on 127.0.0.1 and, for the
//! certificate, a STARTTLS responder with a test-CA certificate: for each
//! failure kind, exactly the lines the sender reads — the reason, the fix
//! for that failure, the `[guidance]` links — within RFC 5321's limits;
//! `[guidance.text_for]` overrides with their placeholders.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message, send,
    tls::{probe_port, Behaviour, Leaf, Pki, Responder},
    Daemon, TestKey, Transaction,
};
use indymilter_test::Status;
use std::net::Ipv4Addr;

const CLIENT: &str = "127.0.0.10";
const HELO: &str = "mail.sender.test";
const FROM: &str = "a@x.test";
const URL: &str = "https://mailkey.example/setup";
const CONTACT: &str = "postmaster@receiver.test";
const NO_KEY_REJECTED: &str = "[mailkey]\nno_key = \"reject\"";

/// What the daemon runs with besides the DNS server.
#[derive(Default)]
struct Setup<'a> {
    /// Top-level tables (`[mailkey]`, `[tls]`, …).
    extra: &'a str,
    /// More `[guidance]` keys.
    guidance: &'a str,
}

/// Sends `t` and returns the reply lines, each checked for the code and
/// the RFC 5321 limits, without the code.
async fn rejected(zone: Zone, setup: Setup<'_>, t: &Transaction<'_>, code: &str) -> Vec<String> {
    let dns = TestDns::start(zone).await;
    let config = common::config(
        &dns,
        &format!(
            "{}\n[guidance]\nurl = \"{URL}\"\ncontact = \"{CONTACT}\"\n{}",
            setup.extra, setup.guidance
        ),
    );
    let daemon = Daemon::start(&config).await;
    let outcome = send(daemon.addr, t).await;
    assert!(
        matches!(outcome.status, Status::Reject { .. }),
        "{:?}",
        outcome.status
    );
    let reply = outcome.reply();
    let lines: Vec<&str> = reply.split("\r\n").collect();
    assert!(lines.len() <= 32, "{} lines: {reply}", lines.len());
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            // "550-5.7.20 text" on every line but the last, "550 5.7.20 text".
            let sep = if i == last { ' ' } else { '-' };
            let prefix = format!("{}{sep}{} ", &code[..3], &code[4..]);
            assert!(line.starts_with(&prefix), "{line:?} lacks {prefix:?}");
            assert!(line.len() + 2 <= 512, "{} octets: {line}", line.len() + 2);
            line[prefix.len()..].to_string()
        })
        .collect()
}

/// `lines` are exactly `want`, then the links.
fn assert_lines(lines: &[String], want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|l| l.to_string()).collect();
    want.push(format!("Details: {URL}"));
    want.push(format!("Contact: {CONTACT}"));
    assert_eq!(lines, want.as_slice());
}

/// `x.test` with an MX and the given SPF record.
fn zone(spf: &str) -> Zone {
    Zone::default()
        .txt("x.test", spf)
        .mx("x.test", 10, "mx.x.test")
        .a("mx.x.test", Ipv4Addr::new(127, 0, 0, 25))
}

const SPF_PASS: &str = "v=spf1 ip4:127.0.0.10 -all";

fn from_x(message: String) -> Transaction<'static> {
    Transaction::new(CLIENT, FROM, message)
}

#[tokio::test]
async fn no_key() {
    let setup = Setup {
        extra: NO_KEY_REJECTED,
        ..Setup::default()
    };
    let lines = rejected(zone(SPF_PASS), setup, &from_x(message(FROM)), "550 5.7.20").await;
    assert_lines(
        &lines,
        &[
            "mailkey check none for x.test: x.test publishes no mailkey",
            "x.test publishes no mailkey. To publish one and sign with it:",
            "1. run: mailkey-milter keygen --domain x.test --out /etc/mailkey",
            "2. publish the printed TXT record at mailkey.x.test",
            "3. sign outgoing mail with selector \"mailkey\" ([signing] of mailkey-milter, \
             or any DKIM signer).",
        ],
    );
}

#[tokio::test]
async fn key_published_but_no_signature() {
    let key = TestKey::ed25519();
    let z = zone(SPF_PASS).txt("mailkey.x.test", &key.record);
    let lines = rejected(z, Setup::default(), &from_x(message(FROM)), "550 5.7.20").await;
    assert_lines(
        &lines,
        &[
            "mailkey check fail for x.test: no mailkey signature",
            "x.test publishes a mailkey, but this message has no mailkey signature.",
            "Sign outgoing mail with selector \"mailkey\" and d=x.test, with the key \
             published at mailkey.x.test:",
            "mailkey-milter: [signing] domains = [{ domain = \"x.test\", key_file = \
             \"/etc/mailkey/x.test.ed25519.pem\" }] (or any DKIM signer).",
        ],
    );
}

#[tokio::test]
async fn body_changed_after_signing() {
    let key = TestKey::ed25519();
    let z = zone(SPF_PASS).txt("mailkey.x.test", &key.record);
    let signed = key
        .sign(&message(FROM), "x.test", "mailkey")
        .replace("numbers", "NUMBERS");
    let lines = rejected(z, Setup::default(), &from_x(signed), "550 5.7.20").await;
    assert_lines(
        &lines,
        &[
            "mailkey check fail for x.test: body hash mismatch: the body was changed after \
             signing",
            "The body was changed after signing (a footer or a filter), so the signature of \
             x.test no longer matches.",
            "Sign last, with the key at mailkey.x.test: add footers and run filters before it.",
        ],
    );
}

#[tokio::test]
async fn signed_header_changed() {
    let key = TestKey::ed25519();
    let z = zone(SPF_PASS).txt("mailkey.x.test", &key.record);
    let signed = key
        .sign(&message(FROM), "x.test", "mailkey")
        .replace("Quarterly", "Urgent");
    let lines = rejected(z, Setup::default(), &from_x(signed), "550 5.7.20").await;
    assert_lines(
        &lines,
        &[
            "mailkey check fail for x.test: bad signature: signed headers were changed or the \
             key does not match",
            "The signature of x.test does not verify: signed headers were changed after \
             signing, or the key is not the one at mailkey.x.test.",
            "Sign last, with the private key of the record published at mailkey.x.test.",
        ],
    );
}

#[tokio::test]
async fn spf_not_pass() {
    let lines = rejected(
        zone("v=spf1 ip4:192.0.2.1 -all"),
        Setup::default(),
        &from_x(message(FROM)),
        "550 5.7.23",
    )
    .await;
    assert_lines(
        &lines,
        &[
            "spf check fail for x.test: 127.0.0.10 is not authorised by the SPF record of x.test: fail",
            "Your SPF record does not authorise 127.0.0.10 (only an SPF pass is accepted).",
            "Add ip4:127.0.0.10 to the SPF record of x.test: \"v=spf1 ip4:127.0.0.10 ... -all\"",
        ],
    );
}

#[tokio::test]
async fn plaintext_session() {
    let mut t = from_x(message(FROM));
    t.tls_macros = Vec::new();
    let lines = rejected(zone(SPF_PASS), Setup::default(), &t, "550 5.7.10").await;
    assert_lines(
        &lines,
        &[
            "tls check fail for x.test: session not encrypted: STARTTLS was not used",
            "Your server mail.sender.test (127.0.0.10) sent this message without encryption.",
            "Use STARTTLS when sending (Postfix: smtp_tls_security_level = may), and",
            "offer STARTTLS on 127.0.0.10 with a certificate from a trusted CA for \
             mail.sender.test.",
        ],
    );
}

/// A message from `ip` over TLS without a certificate the MTA verified:
/// the daemon probes `ip`.
fn probed(ip: &'static str) -> Transaction<'static> {
    let mut t = Transaction::new(ip, FROM, message(FROM));
    t.tls_macros = vec![("{tls_version}", "TLSv1.3")];
    t
}

/// The probe's evidence alone: its own guidance (the other kinds' is
/// tests/tls_evidence.rs's).
fn probing(pki: &Pki) -> String {
    format!(
        "[spf]\nenforce = false\n[tls]\nevidence = [\"probe\"]\nprobe_port = {}\n\
         probe_timeout_ms = 1500\nca_file = \"{}\"",
        probe_port(),
        pki.ca_file().display()
    )
}

#[tokio::test]
async fn expired_certificate() {
    let pki = Pki::new("guidance-expired");
    let leaf = pki.leaf(Leaf {
        names: &[HELO],
        not_before: -400 * 86_400,
        not_after: -86_400,
        serial: 7,
    });
    let until = leaf.cert.not_after().to_string();
    let _responder = Responder::start(
        "127.0.0.71",
        Behaviour::StartTls {
            identity: leaf,
            ocsp: None,
        },
    );
    let extra = probing(&pki);
    let setup = Setup {
        extra: &extra,
        ..Setup::default()
    };
    let lines = rejected(zone(SPF_PASS), setup, &probed("127.0.0.71"), "550 5.7.5").await;
    assert_lines(
        &lines,
        &[
            &format!("tls check fail for x.test: certificate expired on {until}"),
            "We checked the certificate your server 127.0.0.71 shows (the finding is above).",
            "Install an unexpired certificate from a trusted CA, with its full chain, for \
             mail.sender.test",
            "(your HELO name) or for the name that 127.0.0.71 resolves to.",
        ],
    );
}

#[tokio::test]
async fn no_starttls_on_the_client() {
    let pki = Pki::new("guidance-nostarttls");
    let _responder = Responder::start("127.0.0.72", Behaviour::NoStartTls);
    let extra = probing(&pki);
    let setup = Setup {
        extra: &extra,
        ..Setup::default()
    };
    let lines = rejected(zone(SPF_PASS), setup, &probed("127.0.0.72"), "550 5.7.5").await;
    assert_lines(
        &lines,
        &[
            &format!(
                "tls check fail for x.test: no certificate to verify: 127.0.0.72 port {} does \
                 not offer STARTTLS",
                probe_port()
            ),
            "We check your server's certificate by connecting to 127.0.0.72: no STARTTLS.",
            "Offer STARTTLS there with a certificate from a trusted CA for mail.sender.test",
            "(Postfix: smtpd_tls_cert_file, smtpd_tls_key_file, smtpd_tls_security_level = may).",
        ],
    );
}

#[tokio::test]
async fn no_mx_and_null_mx() {
    let a_only = Zone::default()
        .txt("x.test", SPF_PASS)
        .a("x.test", Ipv4Addr::new(127, 0, 0, 30));
    let t = from_x(message(FROM));
    let lines = rejected(a_only, Setup::default(), &t, "550 5.1.8").await;
    assert_lines(
        &lines,
        &[
            "mx check fail for x.test: x.test has no MX record",
            "x.test has no MX record, so no one can answer its mail.",
            "Publish one: x.test. IN MX 10 mail.x.test. (a host that takes mail for x.test)",
        ],
    );

    let null = Zone::default().txt("x.test", SPF_PASS).mx("x.test", 0, ".");
    let lines = rejected(null, Setup::default(), &t, "550 5.7.27").await;
    assert_lines(
        &lines,
        &[
            "mx check fail for x.test: x.test publishes a null MX: it does not accept mail",
            "x.test publishes a null MX (MX 0 .): it says it takes no mail.",
            "Replace it with a real one: x.test. IN MX 10 mail.x.test.",
        ],
    );
}

#[tokio::test]
async fn ip_literal_sender() {
    let from = "a@[127.0.0.1]";
    let setup = Setup {
        extra: "[spf]\nenforce = false",
        ..Setup::default()
    };
    let t = Transaction::new(CLIENT, from, message(from));
    let lines = rejected(Zone::default(), setup, &t, "550 5.1.7").await;
    assert_lines(
        &lines,
        &[
            "mx check fail for this sender: sender address uses the IP literal [127.0.0.1] \
             instead of a domain",
            "An address without a domain (user@[IP]) cannot be checked or answered.",
            "Send from an address at your domain, with an MX: your-domain.example. IN MX 10 \
             mail.your-domain.example.",
        ],
    );
}

#[tokio::test]
async fn several_failures_each_get_their_fix() {
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let lines = rejected(z, Setup::default(), &from_x(message(FROM)), "550 5.7.26").await;
    assert_lines(
        &lines,
        &[
            "2 checks failed for x.test:",
            "spf check fail for x.test: 127.0.0.10 is not authorised by the SPF record of x.test: fail",
            "mx check fail for x.test: x.test publishes a null MX: it does not accept mail",
            "Your SPF record does not authorise 127.0.0.10 (only an SPF pass is accepted).",
            "Add ip4:127.0.0.10 to the SPF record of x.test: \"v=spf1 ip4:127.0.0.10 ... -all\"",
            "x.test publishes a null MX (MX 0 .): it says it takes no mail.",
            "Replace it with a real one: x.test. IN MX 10 mail.x.test.",
        ],
    );
}

#[tokio::test]
async fn text_for_overrides_one_kind_with_placeholders() {
    let setup = Setup {
        guidance:
            "[guidance.text_for]\n\
                   spf = \"Allow {ip} (HELO {helo}) for {domain}:\\n\\n  ip4:{ip} in TXT {domain}\"",
        ..Setup::default()
    };
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let lines = rejected(z, setup, &from_x(message(FROM)), "550 5.7.26").await;
    assert_eq!(
        &lines[3..],
        [
            "Allow 127.0.0.10 (HELO mail.sender.test) for x.test:",
            "  ip4:127.0.0.10 in TXT x.test",
            // The null MX keeps its built-in text.
            "x.test publishes a null MX (MX 0 .): it says it takes no mail.",
            "Replace it with a real one: x.test. IN MX 10 mail.x.test.",
            &format!("Details: {URL}"),
            &format!("Contact: {CONTACT}"),
        ]
    );
}

#[tokio::test]
async fn custom_text_file_replaces_every_kind_without_its_own_text() {
    let dir = common::process::temp_dir("guidance-text");
    let file = dir.join("guidance.txt");
    std::fs::write(
        &file,
        "We only take signed mail.\n\nAsk {domain}'s admin to sign it.\n",
    )
    .unwrap();
    let lines = rejected(
        zone("v=spf1 -all"),
        Setup {
            guidance: &format!("text_file = {file:?}"),
            ..Setup::default()
        },
        &from_x(message(FROM)),
        "550 5.7.23",
    )
    .await;
    assert_eq!(
        &lines[1..],
        [
            "We only take signed mail.",
            "Ask x.test's admin to sign it.",
            &format!("Details: {URL}"),
            &format!("Contact: {CONTACT}"),
        ]
    );
}

/// All four checks fail and every kind has the longest text allowed: the
/// reply still fits 32 lines, each text whole, the links last.
#[tokio::test]
async fn four_failures_with_six_line_texts_fit_32_lines() {
    let six = |kind: &str| format!("\"{}\"", vec![format!("{kind} {{domain}}"); 6].join("\\n"));
    let guidance = format!(
        "[guidance.text_for]\nno_key = {}\nspf = {}\ntls = {}\nmx = {}\n",
        six("k"),
        six("s"),
        six("t"),
        six("m")
    );
    let setup = Setup {
        extra: NO_KEY_REJECTED,
        guidance: &guidance,
    };
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let mut t = from_x(message(FROM));
    t.tls_macros = Vec::new();
    let lines = rejected(z, setup, &t, "550 5.7.26").await;
    assert_eq!(lines.len(), 31, "{lines:#?}");
    assert_eq!(lines[0], "4 checks failed for x.test:");
    for (i, kind) in ["k", "s", "t", "m"].iter().enumerate() {
        let block = &lines[5 + 6 * i..5 + 6 * (i + 1)];
        assert!(
            block.iter().all(|l| l == &format!("{kind} x.test")),
            "{block:?}"
        );
    }
    assert_eq!(lines[30], format!("Contact: {CONTACT}"));
}
