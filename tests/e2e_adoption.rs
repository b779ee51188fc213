//! End to end, the adoption loop (#17): a sending domain that is not set up
//! is refused by a receiving Postfix whose mailkey-milter enforces every
//! check; the test does what the bounces tell the sender's admin to do,
//! nothing else, until `check-domain --ip --mta --key` says ready and the
//! next message is accepted. README's "Set up your domain in five minutes"
//! follows these steps and quotes this test's output.
//!
//! - **S** (`newcomer.test`): a private Postfix sending from 127.0.0.1 with
//!   its own mailkey-milter (for signing, once there is a key), plaintext at
//!   first.
//! - **R** (`receiver.test`): a private Postfix offering STARTTLS, its
//!   milter enforcing every check; it probes the sender's SMTP port (S's
//!   port: `[tls] probe_port`) for the certificate, as it would port 25.
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh): skipped with a note
//! without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    postfix::{free_port, Postfix, PostfixOptions, PostfixTls},
    process,
    smtp_sink::{Received, SmtpSink},
    swaks,
    tls::{Leaf, Pki},
    Daemon,
};
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

const DOMAIN: &str = "newcomer.test";
const FROM: &str = "alice@newcomer.test";
const TO: &str = "bob@receiver.test";
/// S's name: its HELO and the name on its certificate.
const S_NAME: &str = "mail.newcomer.test";

/// The DNS the world sees. Short TTLs: R's cache of "no key" expires
/// soon after the key is published, as it would after the SOA minimum.
fn zone() -> Zone {
    Zone::default()
        .ttl(1)
        .txt(DOMAIN, "v=spf1 ip4:127.0.0.1 -all")
        .mx(DOMAIN, 10, S_NAME)
        .a(S_NAME, Ipv4Addr::LOCALHOST)
}

/// A bounce's text with Postfix's line wrapping undone and spaces
/// collapsed, so guidance lines read as the receiver wrote them.
fn unwrapped(bounce: &Received) -> String {
    bounce
        .text()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command after `run: ` in the guidance (up to the next reply code).
fn command_in(text: &str) -> Vec<String> {
    let start = text.find("run: mailkey-milter ").expect("a command to run") + 5;
    text[start..]
        .split_whitespace()
        .take_while(|w| !w.starts_with("550"))
        .map(str::to_string)
        .collect()
}

struct Sender {
    postfix: Postfix,
    milter: Daemon,
    milter_config: String,
    sink: SmtpSink,
}

async fn send(dir: &Path, s: &Sender) -> swaks::Swaks {
    let client = ("127.0.0.1", "laptop.newcomer.test");
    let addr = s.postfix.smtp_addr();
    swaks::submit_from(dir, addr, client, (FROM, TO), &message(FROM), &[]).await
}

/// Sends one message through S and returns the `n`th bounce S delivered
/// back to Alice.
async fn refused(dir: &Path, s: &Sender, n: usize) -> Received {
    let out = send(dir, s).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let got = s.sink.delivered(n).await;
    let bounce = got[n - 1].clone();
    assert_eq!(bounce.mail_from, "", "{bounce:?}");
    assert_eq!(bounce.rcpt_to, [FROM], "{bounce:?}");
    bounce
}

/// `mailkey-milter check-domain` as the admin runs it.
fn check_domain(args: &[&str], config: &Path, dns: &TestDns) -> (i32, String) {
    let (config, ns) = (config.display().to_string(), dns.addr().to_string());
    let fixed = [
        "check-domain",
        DOMAIN,
        "--config",
        &config,
        "--nameserver",
        &ns,
    ];
    let out = process::mailkey_blocking(&[&fixed[..], args].concat());
    let text = process::stdout(&out);
    println!(
        "$ mailkey-milter check-domain {DOMAIN} {}\n{text}",
        args.join(" ")
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sender_follows_the_bounces_until_accepted() {
    if !common::require(common::require::WITH_POSTFIX) {
        return;
    }
    let dns = TestDns::start(zone()).await;
    let dir = common::process::temp_dir("e2e-adoption");
    let pki = Pki::new("adoption");
    let s_port = free_port();
    let mta = format!("{S_NAME}:{s_port}");

    // R: every check enforced, domains without a mailkey refused (the
    // last rollout stage); the probe goes to S's port.
    let r_config = common::config(
        &dns,
        &format!(
            "[mailkey]\nno_key = \"reject\"\n\
             [tls]\nprobe_port = {s_port}\nca_file = \"{}\"\n",
            pki.ca_file().display()
        ),
    )
    .replace("[\"127.0.0.1/32\"]", "[\"127.0.0.2/32\"]");
    let r_milter = Daemon::start(&r_config).await;
    let r_sink = SmtpSink::start();
    let (cert, key) = pki.write(
        "mx.receiver.test",
        &pki.leaf(Leaf::valid(&["mx.receiver.test"], 2)),
    );
    let r_opts = PostfixOptions {
        extra_main_cf: vec![
            ("smtpd_milters".into(), format!("inet:{}", r_milter.addr)),
            ("milter_default_action".into(), "tempfail".into()),
        ],
        relay_domains: vec!["receiver.test".into()],
        tls: Some(PostfixTls {
            cert_file: cert,
            key_file: key,
            ca_file: None,
            ask_ccert: false,
        }),
        ..Default::default()
    };
    let r = tokio::task::block_in_place(|| Postfix::start(r_opts, &r_sink));

    // S: its milter signs nothing yet; mail for receiver.test goes to R.
    let milter_config = common::config(&dns, "")
        .replace("mode = \"enforce\"", "mode = \"monitor\"")
        .replace("mx.receiver.test", S_NAME);
    let s_milter = Daemon::start(&milter_config).await;
    let s_sink = SmtpSink::start();
    let s_opts = PostfixOptions {
        extra_main_cf: vec![
            ("smtpd_milters".into(), format!("inet:{}", s_milter.addr)),
            ("myhostname".into(), S_NAME.into()),
            (
                "transport_maps".into(),
                format!(
                    "inline:{{receiver.test=smtp:[127.0.0.1]:{}}}",
                    r.smtp_addr().port()
                ),
            ),
        ],
        listen_port: Some(s_port),
        ..Default::default()
    };
    let postfix = tokio::task::block_in_place(|| Postfix::start(s_opts, &s_sink));
    let mut s = Sender {
        postfix,
        milter: s_milter,
        milter_config,
        sink: s_sink,
    };
    let cd_config = dir.join("check-domain.toml");
    common::process::write(
        &cd_config,
        &format!("[tls]\nca_file = \"{}\"\n", pki.ca_file().display()),
    );

    // 0. The admin's own check agrees with what receivers will do.
    let (code, report) = check_domain(&["--ip", "127.0.0.1", "--mta", &mta], &cd_config, &dns);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("result: not ready"), "{report}");

    // 1. Plaintext, unsigned, no key: refused at RCPT, one bounce with
    // what to do about each finding.
    let bounce = unwrapped(&refused(&dir, &s, 1).await);
    println!("bounce: {bounce}");
    assert!(
        bounce.contains("550-5.7.26 2 checks failed for newcomer.test"),
        "{bounce}"
    );
    assert!(
        bounce.contains(&format!("{DOMAIN} publishes no mailkey")),
        "{bounce}"
    );
    let when_sending = "Use STARTTLS when sending (Postfix: smtp_tls_security_level = may)";
    let offer =
        format!("offer STARTTLS on 127.0.0.1 with a certificate from a trusted CA for {S_NAME}");
    assert!(bounce.contains(when_sending), "{bounce}");
    assert!(bounce.contains(&offer), "{bounce}");

    // 2. Done as told. STARTTLS when sending, and a CA certificate for
    // S_NAME offered on the SMTP port:
    let (cert, key) = pki.write(S_NAME, &pki.leaf(Leaf::valid(&[S_NAME], 3)));
    s.postfix.reconfigure(&[
        ("smtp_tls_security_level", "may".into()),
        ("smtpd_tls_security_level", "may".into()),
        ("smtpd_tls_cert_file", cert.display().to_string()),
        ("smtpd_tls_key_file", key.display().to_string()),
    ]);
    // and the command the bounce gives:
    let command = command_in(&bounce);
    assert_eq!(
        command,
        [
            "mailkey-milter",
            "keygen",
            "--domain",
            DOMAIN,
            "--out",
            "/etc/mailkey"
        ]
    );
    // The test's /etc/mailkey is a directory of its own.
    let keys = dir.join("mailkey");
    std::fs::create_dir_all(&keys).expect("key dir");
    let keys_arg = keys.display().to_string();
    let args: Vec<&str> = command[1..command.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    let out = process::mailkey_blocking(&[&args[..], &[keys_arg.as_str()]].concat());
    assert!(out.status.success(), "{out:?}");
    let printed = process::stdout(&out);
    println!("$ {}\n{printed}", command.join(" "));
    // "publish the printed TXT record at mailkey.newcomer.test"
    let record = printed
        .lines()
        .find(|l| l.starts_with(&format!("mailkey.{DOMAIN}. ")) && l.contains(" TXT "))
        .expect("the printed record");
    let value = &record[record.find('"').expect("quoted") + 1..record.rfind('"').expect("quoted")];
    dns.publish_txt(&format!("mailkey.{DOMAIN}"), value);
    // "sign outgoing mail with selector mailkey ([signing] of mailkey-milter)"
    let snippet: String = printed
        .lines()
        .skip_while(|l| *l != "[[signing.domains]]")
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(snippet.contains("key_file"), "{printed}");
    s.milter_config = s.milter_config.replace("[dns]", &format!("{snippet}[dns]"));
    s.milter.reload(&s.milter_config);
    let key_file: PathBuf = keys.join(format!("{DOMAIN}.ed25519.pem"));

    // 3. The admin's check now says ready...
    let key_arg = key_file.display().to_string();
    let (code, report) = check_domain(
        &["--ip", "127.0.0.1", "--mta", &mta, "--key", &key_arg],
        &cd_config,
        &dns,
    );
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("result: ready for mailkey-milter receivers"),
        "{report}"
    );

    // ...and R agrees, once its cached "no key" (TTL 1 s) has expired.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = send(&dir, &s).await;
    assert_eq!(out.final_code(), "250 2.0.0", "{}", out.output);
    let got = r_sink.delivered(1).await;
    let results = got[0].auth_results("mx.receiver.test");
    println!("R delivered: {results}");
    for part in [
        "mailkey=pass header.d=newcomer.test header.s=mailkey",
        "spf=pass smtp.mailfrom=alice@newcomer.test",
        "x-tls=pass (TLSv1.3",
        "x-mx=pass",
    ] {
        assert!(results.contains(part), "{part:?} missing: {results}");
    }
    assert_eq!(s.sink.messages().len(), 1, "no second bounce");
}
