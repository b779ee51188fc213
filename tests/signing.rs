//! The sending side: `keygen`, `check-domain`, `sign`, and the milter
//! signing trusted clients' mail — each checked by our own verifier and by
//! an independent one (dkimpy, installed by tests/setup.sh).

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{self, free_addr, stderr, stdout, temp_dir, write, TempDir, BIN},
    require, require_for, send, Daemon, Need, Outcome, Transaction,
};
use indymilter_test::{EomAction, Status};
use mailkey_milter::{
    config::Config,
    dns::TxtAnswer,
    protocol::{KeyLookup, KeyType},
};
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Output,
};

const FROM: &str = "alice@sender.test";
/// Not trusted by the test configuration (only 127.0.0.1 is).
const OUTSIDE: &str = "127.0.0.10";
const DKIMPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/dkimpy_tool.py");

/// Runs the binary; `stdin` is fed to it.
async fn run(args: &[&str], stdin: &[u8]) -> Output {
    process::run(BIN, args, stdin).await
}

/// dkimpy through tests/tools/dkimpy_tool.py; callers check
/// `require(&[Need::Dkimpy])` first.
async fn dkimpy(args: &[&str], stdin: &[u8]) -> Output {
    let mut full = vec![DKIMPY];
    full.extend_from_slice(args);
    process::run("python3", &full, stdin).await
}

/// A key made by `keygen`, and the records it printed.
struct Generated {
    key_file: PathBuf,
    stdout: String,
    /// The TXT record's character-strings, exactly as printed.
    strings: Vec<String>,
}

impl Generated {
    fn record(&self) -> String {
        self.strings.concat()
    }
}

async fn keygen(dir: &Path, domain: &str, extra: &[&str]) -> Generated {
    let mut args = vec!["keygen", "--domain", domain, "--out", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args, b"").await;
    assert!(out.status.success(), "keygen failed: {}", stderr(&out));
    let stdout = stdout(&out);
    // The TXT record in zone-file syntax: one line, or a ( … ) group; an
    // ARC key's at arc._domainkey.
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    let owner = if extra.contains(&"--arc") {
        "arc._domainkey"
    } else {
        "mailkey"
    };
    let start = stdout
        .find(&format!("{owner}.{name}. 3600 IN TXT "))
        .unwrap_or_else(|| panic!("no TXT line in:\n{stdout}"));
    let rest = &stdout[start..];
    let end = rest.find("\n\n").unwrap();
    let strings: Vec<String> = rest[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let key_line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key_file = \""))
        .unwrap_or_else(|| panic!("no key_file in:\n{stdout}"));
    Generated {
        key_file: PathBuf::from(key_line.trim_end_matches('"')),
        stdout,
        strings,
    }
}

/// A zone where sender.test passes SPF and MX and publishes `g`'s record
/// (split as keygen printed it), with the `_domainkey` CNAME.
fn zone_with(g: &Generated) -> Zone {
    let strings: Vec<&str> = g.strings.iter().map(String::as_str).collect();
    common::sender_zone()
        .txt_strings("mailkey.sender.test", &strings)
        .cname("mailkey._domainkey.sender.test", "mailkey.sender.test")
}

fn signing_config(dns: &TestDns, keys: &[(&str, &Path)]) -> String {
    let mut extra = String::new();
    for (domain, file) in keys {
        extra.push_str(&format!(
            "[[signing.domains]]\ndomain = \"{domain}\"\nkey_file = \"{}\"\n",
            file.display()
        ));
    }
    // [signing] tables go after the top-level keys common::config writes
    // first, and before its [dns] table.
    common::config(dns, &extra)
}

/// The DKIM-Signature the milter inserted, as (index, value).
fn inserted_signature(outcome: &Outcome) -> Option<(i32, String)> {
    outcome.actions.actions.iter().find_map(|a| match a {
        EomAction::InsertHeader { index, name, value } if name.to_bytes() == b"DKIM-Signature" => {
            Some((*index, value.to_string_lossy().into_owned()))
        }
        _ => None,
    })
}

/// `message` with the inserted header applied, as the MTA would write it.
fn apply(value: &str, message: &str) -> String {
    format!(
        "DKIM-Signature:{}\r\n{message}",
        value.replace('\n', "\r\n")
    )
}

/// Sends `message` from an untrusted client and asserts our receiving side
/// accepts it with a mailkey pass.
async fn assert_verifies(daemon: &Daemon, message: String, algorithm: &str) {
    let outcome = send(daemon.addr, &Transaction::new(OUTSIDE, FROM, message)).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    let ar = outcome.auth_results().unwrap();
    assert!(
        ar.contains(&format!(
            "mailkey=pass header.d=sender.test header.s=mailkey header.a={algorithm}-sha256"
        )),
        "{ar}"
    );
}

#[tokio::test]
async fn keygen_both_algorithms_round_trip() {
    let with_dkimpy = require_for("the dkimpy verification", &[Need::Dkimpy]);
    for (algorithm, key_type) in [
        ("ed25519", KeyType::Ed25519),
        ("rsa", KeyType::Rsa { bits: 2048 }),
    ] {
        let dir = temp_dir(&format!("keygen-{algorithm}"));
        let g = keygen(&dir, "sender.test", &["--algorithm", algorithm]).await;

        // The private key: PKCS#8 PEM, readable by its owner only.
        assert_eq!(
            g.key_file,
            dir.canonicalize()
                .unwrap()
                .join(format!("sender.test.{algorithm}.pem"))
        );
        let pem = std::fs::read_to_string(&g.key_file).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let mode = std::fs::metadata(&g.key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // The printed record: ≤255-octet strings that parse as a mailkey.
        assert!(g.strings.iter().all(|s| s.len() <= 255));
        if algorithm == "rsa" {
            assert!(g.strings.len() >= 2, "a 2048-bit key needs two strings");
        }
        assert!(g
            .record()
            .starts_with(&format!("v=DKIM1; k={algorithm}; p=")));
        let KeyLookup::Published {
            keys,
            errors,
            testing,
            ..
        } = KeyLookup::from_answer(TxtAnswer::Records(vec![g.record().into_bytes()]))
        else {
            panic!("{algorithm}: record does not parse: {}", g.record());
        };
        assert!(errors.is_empty() && !testing);
        assert_eq!(keys[0].key_type, key_type);
        // The CNAME for ordinary DKIM verifiers and the config snippet.
        assert!(g
            .stdout
            .contains("mailkey._domainkey.sender.test. 3600 IN CNAME mailkey.sender.test."));
        let snippet = format!(
            "[[signing.domains]]\ndomain = \"sender.test\"\nkey_file = \"{}\"\n",
            g.key_file.display()
        );
        assert!(g.stdout.contains(&snippet), "{}", g.stdout);
        let config = Config::parse(&snippet, Path::new("snippet.toml")).unwrap();
        assert_eq!(config.signing.domains.len(), 1);

        // The key signs (`sign`), and the signature verifies with our own
        // milter and with dkimpy (through the _domainkey CNAME).
        let dns = TestDns::start(zone_with(&g)).await;
        let plain = message(FROM).replace("\r\n", "\n");
        let key = g.key_file.to_str().unwrap();
        let signed = run(
            &["sign", "--domain", "sender.test", "--key", key],
            plain.as_bytes(),
        )
        .await;
        assert!(signed.status.success(), "{}", stderr(&signed));
        let signed = stdout(&signed);
        assert!(signed.starts_with(&format!(
            "DKIM-Signature: v=1; a={algorithm}-sha256; s=mailkey; d=sender.test; c=relaxed/relaxed;\r\n\t"
        )));
        assert!(
            signed.contains("h=Content-Type:MIME-Version:Message-ID:Date:Subject:To:From:From;"),
            "{signed}"
        );
        assert!(!signed.replace("\r\n", "").contains('\n'), "CRLF output");
        let daemon = Daemon::start(&common::config(&dns, "")).await;
        assert_verifies(&daemon, signed.clone(), algorithm).await;
        if !with_dkimpy {
            continue;
        }
        let ns = dns.addr().to_string();
        let verified = dkimpy(&["verify", "--nameserver", &ns], signed.as_bytes()).await;
        assert!(
            verified.status.success(),
            "{algorithm}: dkimpy: {}{}",
            stdout(&verified),
            stderr(&verified)
        );
    }
}

#[tokio::test]
async fn keygen_testing_flag_and_bad_arguments() {
    let dir = temp_dir("keygen-args");
    let g = keygen(&dir, "Sender.Test.", &["--testing"]).await;
    assert!(g.record().starts_with("v=DKIM1; k=ed25519; t=y; p="));
    assert!(g.key_file.ends_with("sender.test.ed25519.pem"));
    let out_dir = dir.to_str().unwrap();
    for (args, why) in [
        (
            vec!["--domain", "a.test", "--bits", "2048"],
            "--bits applies to RSA keys only",
        ),
        (
            vec!["--domain", "a.test", "--algorithm", "rsa", "--bits", "1024"],
            "allowed are 2048 to 4096",
        ),
        (vec!["--domain", "not a domain"], "is not a domain name"),
    ] {
        let mut full = vec!["keygen", "--out", out_dir];
        full.extend(args);
        let out = run(&full, b"").await;
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        assert!(stderr(&out).contains(why), "{full:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn keygen_refuses_to_overwrite_without_force() {
    let dir = temp_dir("keygen-force");
    let first = keygen(&dir, "sender.test", &[]).await;
    let before = std::fs::read(&first.key_file).unwrap();
    let out = run(
        &[
            "keygen",
            "--domain",
            "sender.test",
            "--out",
            dir.to_str().unwrap(),
        ],
        b"",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the key file exists"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"));
    assert!(
        stdout(&out).is_empty(),
        "no records printed for a key not written"
    );
    assert_eq!(std::fs::read(&first.key_file).unwrap(), before, "key kept");

    let second = keygen(&dir, "sender.test", &["--force"]).await;
    assert_eq!(second.key_file, first.key_file);
    assert_ne!(
        std::fs::read(&second.key_file).unwrap(),
        before,
        "key replaced"
    );
    assert_ne!(second.record(), first.record());
    let mode = std::fs::metadata(&second.key_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Runs check-domain against `zone`; returns (exit code, stdout).
async fn check_domain(zone: Zone, extra: &[&str]) -> (i32, String) {
    let dns = TestDns::start(zone).await;
    let ns = dns.addr().to_string();
    let mut args = vec!["check-domain", "sender.test", "--nameserver", &ns];
    args.extend_from_slice(extra);
    let out = run(&args, b"").await;
    (out.status.code().unwrap_or(-1), stdout(&out))
}

fn assert_line(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l.starts_with(line)),
        "no line starting {line:?} in:\n{out}"
    );
}

#[tokio::test]
async fn check_domain_reports_each_part_of_the_setup() {
    let dir = temp_dir("check-domain");
    let g = keygen(&dir, "sender.test", &["--algorithm", "rsa"]).await;
    let key = g.key_file.to_str().unwrap();

    // Fully set up: every line ✓ (the key file matches), exit 0.
    let (code, out) = check_domain(zone_with(&g), &["--key", key]).await;
    assert_eq!(code, 0, "{out}");
    assert_line(
        &out,
        "✓ mailkey: record 1 at mailkey.sender.test: rsa key, 2048 bits",
    );
    assert_line(&out, "✓ key: ");
    assert!(out.contains("(rsa-2048) matches record 1"), "{out}");
    assert_line(
        &out,
        "✓ dkim: mailkey._domainkey.sender.test publishes the same keys",
    );
    assert_line(&out, "✓ spf: record: v=spf1 ip4:127.0.0.0/8 -all");
    assert_line(&out, "✓ spf: strict: ends in -all");
    assert_line(&out, "✓ spf: about 0 DNS lookups (limit 10)");
    assert_line(&out, "✓ mx: 10 mx.sender.test");
    assert!(!out.contains('✗'), "{out}");
    assert!(
        out.ends_with("result: ready for mailkey-milter receivers\n"),
        "{out}"
    );

    // The same as JSON, for scripts.
    let (code, json) = check_domain(zone_with(&g), &["--key", key, "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["domain"], "sender.test");
    assert_eq!(v["ok"], true);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["mark"] != "fail"));

    // ~all, and an include that costs lookups: not strict, exit 1.
    let softfail = Zone::default()
        .txt("mailkey.sender.test", &g.record())
        .txt("sender.test", "v=spf1 mx include:spf.provider.test ~all")
        .txt("spf.provider.test", "v=spf1 a ip4:127.0.0.0/8 -all")
        .mx("sender.test", 10, "mx.sender.test")
        .a("mx.sender.test", std::net::Ipv4Addr::new(127, 0, 0, 25));
    let (code, out) = check_domain(softfail, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert_line(&out, "✗ spf: not strict: ends in ~all");
    assert_line(&out, "✓ spf: about 3 DNS lookups (limit 10)");
    assert_line(
        &out,
        "! dkim: optional: mailkey._domainkey.sender.test. IN CNAME",
    );
    assert!(out.ends_with("result: not ready, see ✗ above\n"), "{out}");

    // No MX (and a key file that matches no record): exit 1.
    let other = temp_dir("check-domain-other");
    let stranger = keygen(&other, "sender.test", &[]).await;
    let no_mx = Zone::default()
        .txt("mailkey.sender.test", &g.record())
        .txt("sender.test", "v=spf1 ip4:127.0.0.0/8 -all");
    let (code, out) = check_domain(no_mx, &["--key", stranger.key_file.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}");
    assert_line(&out, "✗ mx: no MX record at sender.test");
    assert_line(&out, "✗ key: ");
    assert!(
        out.contains("(ed25519) matches no record at mailkey.sender.test"),
        "{out}"
    );

    // A null MX.
    let zone = Zone::default()
        .txt("mailkey.sender.test", &g.record())
        .txt("sender.test", "v=spf1 -all")
        .mx("sender.test", 0, ".");
    let (code, out) = check_domain(zone, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert_line(&out, "✗ mx: null MX");

    // A broken record beside a usable (testing) one, and no SPF at all: the
    // milter skips the broken record, so it is worth knowing, not a ✗.
    let broken = Zone::default()
        .txt("mailkey.sender.test", "v=DKIM1; k=ed25519; p=AAAA")
        .txt(
            "mailkey.sender.test",
            &g.record().replacen("v=DKIM1;", "v=DKIM1; t=y;", 1),
        )
        .mx("sender.test", 10, "mx.sender.test");
    let (code, out) = check_domain(broken, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("! mailkey: record 1 ")
            && l.contains("is broken: key does not parse: ed25519 key is not 32 bytes")
            && l.ends_with("receivers skip it and try the usable keys")),
        "{out}"
    );
    assert!(out.contains("says t=y (testing)"), "{out}");
    assert_line(&out, "✗ spf: no SPF record at sender.test");

    // No mailkey at all.
    let (code, out) = check_domain(common::sender_zone(), &[]).await;
    assert_eq!(code, 1, "{out}");
    assert_line(
        &out,
        "✗ mailkey: no record at mailkey.sender.test; make one with: mailkey-milter keygen --domain sender.test",
    );

    // A DNS failure is not a verdict: exit 2.
    let failing = common::sender_zone().servfail("mailkey.sender.test");
    let (code, out) = check_domain(failing, &[]).await;
    assert_eq!(code, 2, "{out}");
    assert_line(&out, "✗ mailkey: lookup of mailkey.sender.test failed");
}

/// A daemon that signs for sender.test with a fresh key (published, with the
/// `_domainkey` CNAME, on its DNS server).
async fn signing_daemon(dir: &TempDir, algorithm: &str) -> (TestDns, Daemon, Generated) {
    let g = keygen(dir, "sender.test", &["--algorithm", algorithm]).await;
    let dns = TestDns::start(zone_with(&g)).await;
    let daemon = Daemon::start(&signing_config(&dns, &[("sender.test", &g.key_file)])).await;
    (dns, daemon, g)
}

#[tokio::test]
async fn milter_signs_for_authenticated_and_trusted_network_clients() {
    let with_dkimpy = require_for("the dkimpy verification", &[Need::Dkimpy]);
    for algorithm in ["ed25519", "rsa"] {
        let dir = temp_dir(&format!("milter-sign-{algorithm}"));
        let (dns, daemon, _) = signing_daemon(&dir, algorithm).await;

        // An SMTP-AUTH client (from an untrusted address) and a client in
        // trusted_networks (127.0.0.1) both get their mail signed…
        let mut auth = Transaction::new(OUTSIDE, FROM, message(FROM));
        auth.mail_macros = vec![("{auth_authen}", "alice"), ("{auth_type}", "PLAIN")];
        let local = Transaction::new("127.0.0.1", FROM, message(FROM));
        for t in [auth, local] {
            let outcome = send(daemon.addr, &t).await;
            assert!(outcome.is_accept(), "{:?}", outcome.status);
            assert!(
                outcome.auth_results().is_none(),
                "trusted mail is not checked"
            );
            let (index, value) = inserted_signature(&outcome).expect("DKIM-Signature inserted");
            assert_eq!(index, 0, "inserted on top");
            assert!(
                value.starts_with(&format!(
                    " v=1; a={algorithm}-sha256; s=mailkey; d=sender.test; c=relaxed/relaxed;\n\t"
                )),
                "{value:?}"
            );
            assert!(!value.contains('\r') && !value.ends_with('\n'), "{value:?}");
            // …and the signed message passes our own receiving side and
            // an independent verifier.
            let signed = apply(&value, &message(FROM));
            assert_verifies(&daemon, signed.clone(), algorithm).await;
            if with_dkimpy {
                let ns = dns.addr().to_string();
                let out = dkimpy(&["verify", "--nameserver", &ns], signed.as_bytes()).await;
                assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
            }
        }
    }
}

#[tokio::test]
async fn milter_does_not_sign_for_others() {
    let dir = temp_dir("milter-no-sign");
    let (_dns, daemon, _) = signing_daemon(&dir, "ed25519").await;

    // An untrusted client: checked, not signed (unsigned mail from a domain
    // with a mailkey is rejected).
    let outside = send(daemon.addr, &Transaction::new(OUTSIDE, FROM, message(FROM))).await;
    assert!(inserted_signature(&outside).is_none());
    assert!(matches!(outside.status, Status::Reject { .. }));

    // A trusted client sending for a domain that is not configured.
    let other = "carol@other.test";
    let mut auth = Transaction::new(OUTSIDE, other, message(other));
    auth.mail_macros = vec![("{auth_authen}", "carol")];
    let outcome = send(daemon.addr, &auth).await;
    assert!(outcome.is_accept());
    assert!(inserted_signature(&outcome).is_none());
    let local = send(
        daemon.addr,
        &Transaction::new("127.0.0.1", other, message(other)),
    )
    .await;
    assert!(local.is_accept());
    assert!(inserted_signature(&local).is_none());
}

#[tokio::test]
async fn first_key_of_a_domain_signs_and_keys_reload() {
    let dir = temp_dir("milter-rotation");
    let old = keygen(&dir.join("old"), "sender.test", &[]).await;
    let new = keygen(&dir.join("new"), "sender.test", &[]).await;
    // Only the old key is published: the new one is configured second,
    // waiting for its record.
    let dns = TestDns::start(zone_with(&old)).await;
    let daemon = Daemon::start(&signing_config(
        &dns,
        &[
            ("sender.test", &old.key_file),
            ("sender.test", &new.key_file),
        ],
    ))
    .await;
    let local = Transaction::new("127.0.0.1", FROM, message(FROM));
    let (_, value) = inserted_signature(&send(daemon.addr, &local).await).unwrap();
    assert_verifies(&daemon, apply(&value, &message(FROM)), "ed25519").await;

    // A reload with an unreadable key is refused, naming file and domain,
    // and the running keys keep signing.
    let missing = dir.join("gone.pem");
    let bad = Config::parse(
        &signing_config(&dns, &[("sender.test", &missing)]),
        Path::new("t.toml"),
    )
    .unwrap();
    let e = daemon.shared.replace(bad).unwrap_err().to_string();
    assert!(e.contains("gone.pem") && e.contains("sender.test"), "{e}");
    assert!(e.contains("cannot read the key file"), "{e}");
    let garbage = dir.join("garbage.pem");
    write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let bad = Config::parse(
        &signing_config(&dns, &[("sender.test", &garbage)]),
        Path::new("t.toml"),
    )
    .unwrap();
    let e = daemon.shared.replace(bad).unwrap_err().to_string();
    assert!(
        e.contains("garbage.pem") && e.contains("not a PEM private key"),
        "{e}"
    );
    let (_, value) = inserted_signature(&send(daemon.addr, &local).await).unwrap();
    assert_verifies(&daemon, apply(&value, &message(FROM)), "ed25519").await;
}

#[tokio::test]
async fn bad_key_file_stops_the_daemon_from_starting() {
    let dir = temp_dir("bad-key-start");
    let garbage = dir.join("garbage.pem");
    write(&garbage, "not a key\n");
    let file = dir.join("mk.toml");
    write(
        &file,
        &format!(
            "listen = \"inet:{}\"\n[[signing.domains]]\ndomain = \"sender.test\"\nkey_file = \"{}\"\n",
            free_addr(),
            garbage.display()
        ),
    );
    for args in [
        vec!["--config", file.to_str().unwrap()],
        vec!["check-config", file.to_str().unwrap()],
    ] {
        let out = run(&args, b"").await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(
                "garbage.pem: the key file for sender.test is not usable: not a PEM private key"
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn independent_signer_passes_our_verifier() {
    if !require(&[Need::Dkimpy]) {
        return;
    }
    for algorithm in ["ed25519", "rsa"] {
        let dir = temp_dir(&format!("dkimpy-sign-{algorithm}"));
        let g = keygen(&dir, "sender.test", &["--algorithm", algorithm]).await;
        let dns = TestDns::start(zone_with(&g)).await;
        let daemon = Daemon::start(&common::config(&dns, "")).await;
        let key = g.key_file.to_str().unwrap();
        let out = dkimpy(
            &["sign", "--domain", "sender.test", "--key", key],
            message(FROM).as_bytes(),
        )
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let signed = stdout(&out);
        assert!(signed.contains("s=mailkey"), "{signed}");
        assert_verifies(&daemon, signed, algorithm).await;
    }
}

/// #21, item 17: `keygen --arc` makes an RSA key, its record at
/// `arc._domainkey` and the `[arc]` snippet; the seals the milter makes
/// with it verify with dkimpy's ARC verifier (`cv=pass`), as ARC verifiers
/// in the field need. An Ed25519 ARC key is refused.
#[tokio::test]
async fn arc_seals_verify_with_dkimpy() {
    let dir = temp_dir("keygen-arc");
    let g = keygen(&dir, "forwarder.test", &["--arc"]).await;
    assert!(
        g.key_file.ends_with("forwarder.test.arc.pem"),
        "{}",
        g.stdout
    );
    assert!(
        g.record().starts_with("v=DKIM1; k=rsa; p="),
        "{}",
        g.record()
    );
    let snippet = &g.stdout[g.stdout.find("[arc]\nseal = true\n").expect("snippet")..];
    let strings: Vec<&str> = g.strings.iter().map(String::as_str).collect();
    let zone = common::sender_zone().txt_strings("arc._domainkey.forwarder.test", &strings);
    let dns = TestDns::start(zone).await;
    let config = common::config(&dns, snippet).replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
    let plain = message(FROM);
    let out = send(daemon.addr, &Transaction::new(OUTSIDE, FROM, plain.clone())).await;
    let sealed = out.with_inserted_headers(&plain);
    assert!(
        sealed.starts_with("ARC-Seal: i=1; a=rsa-sha256; s=arc; d=forwarder.test; cv=none;"),
        "{sealed}"
    );
    if require_for("the dkimpy ARC verification", &[Need::Dkimpy]) {
        let ns = dns.addr().to_string();
        let verified = dkimpy(&["arc-verify", "--nameserver", &ns], sealed.as_bytes()).await;
        assert!(
            verified.status.success(),
            "dkimpy: {}{}\n{sealed}",
            stdout(&verified),
            stderr(&verified)
        );
        assert!(
            stdout(&verified).contains("cv=pass"),
            "{}",
            stdout(&verified)
        );
    }

    let key_dir = dir.to_str().unwrap();
    let args = ["keygen", "--arc", "--algorithm", "ed25519"];
    let out = run(
        &[&args[..], &["--domain", "x.test", "--out", key_dir]].concat(),
        b"",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--arc makes RSA keys only"),
        "{}",
        stderr(&out)
    );
}
