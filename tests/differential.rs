//! Our mailkey verdict beside two independent DKIM verifiers, dkimpy and
//! OpenDKIM's libopendkim, over a few hundred generated messages (issue #21,
//! "signature verification that agrees with the world"). Each message is
//! signed by dkimpy (tests/tools/dkimpy_tool.py sign-batch, which also makes
//! the signatures no signer makes: `l=0`, `t=` of 13 digits, `d=` with a
//! trailing dot), changed as a mail path changes mail (tests/differential/
//! cases.rs), and verified by our daemon through its milter socket (keys
//! from the test DNS server), by dkimpy (keys from the same server, through
//! the `_domainkey` CNAME) and by libopendkim (tests/tools/opendkim_verify.c,
//! keys from a file with the same records). The question put to each: does
//! a signature with `s=mailkey` and `d=` the sender's domain verify?
//!
//! A disagreement is either one of [`DOCUMENTED`] (docs/decisions.md, "Where
//! we differ from other DKIM verifiers"), recognised by the label of what
//! the case did, or a test failure. Needs python3 with dkimpy and a C
//! compiler with libopendkim-dev (tests/setup.sh): skipped with a note
//! when one is missing, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "differential/cases.rs"]
mod cases;
mod common;

use cases::Case;
use common::{dns::TestDns, open_unix, process, require, send_on, Daemon, Need, Transaction};
use openssl::{pkey::PKey, rsa::Rsa};
use serde_json::Value;
use std::{collections::HashMap, path::Path, time::SystemTime};

const SEED: u64 = 0x6d61_696c_6b65_7921;
/// Sixteen scenarios, twenty of each.
const CASES: usize = 320;
const DKIMPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/dkimpy_tool.py");
const OPENDKIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/opendkim_verify.c");

/// How a documented class shows: who says pass where the others do not.
#[derive(Clone, Copy)]
enum Shape {
    /// We refuse what a verifier of the world passes (our protocol's rule).
    OursStricter,
    /// We pass what a verifier of the world refuses.
    OursLaxer,
    /// OpenDKIM alone differs; dkimpy and we agree.
    OpendkimAlone,
    /// dkimpy alone differs; OpenDKIM and we agree.
    DkimpyAlone,
}

/// The documented disagreements: (case label, class as docs/decisions.md
/// names it, shape).
const DOCUMENTED: &[(&str, &str, Shape)] = &[
    ("l=", "l= is refused", Shape::OursStricter),
    ("rsa-sha1", "rsa-sha1 is refused", Shape::OursStricter),
    ("from-unsigned", "From must be signed", Shape::OursStricter),
    ("h-over-cap", "at most 128 h= entries", Shape::OursStricter),
    (
        "sixth",
        "at most five mailkey signatures",
        Shape::OursStricter,
    ),
    ("t-future", "a future t= is accepted", Shape::OursLaxer),
    (
        "bare-cr-relaxed",
        "OpenDKIM drops bare CRs under relaxed",
        Shape::OpendkimAlone,
    ),
    (
        "second-from",
        "dkimpy counts one From more",
        Shape::DkimpyAlone,
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Verdicts {
    ours: bool,
    dkimpy: bool,
    opendkim: bool,
}

impl Verdicts {
    fn agree(self) -> bool {
        self.ours == self.dkimpy && self.ours == self.opendkim
    }

    fn shaped(self, shape: Shape) -> bool {
        match shape {
            Shape::OursStricter => !self.ours && (self.dkimpy || self.opendkim),
            Shape::OursLaxer => self.ours && !(self.dkimpy && self.opendkim),
            Shape::OpendkimAlone => self.ours == self.dkimpy && self.opendkim != self.ours,
            Shape::DkimpyAlone => self.ours == self.opendkim && self.dkimpy != self.ours,
        }
    }
}

/// The keys dkimpy signs with, and the records publishing them.
struct Keys {
    json: String,
    ed: String,
    rsa: String,
    esp: String,
}

fn ed25519() -> (String, String) {
    let key = PKey::generate_ed25519().expect("ed25519");
    let b64 = openssl::base64::encode_block;
    (
        b64(&key.raw_private_key().expect("seed")),
        format!(
            "v=DKIM1; k=ed25519; p={}",
            b64(&key.raw_public_key().expect("public"))
        ),
    )
}

fn keys() -> Keys {
    let (ed, ed_record) = ed25519();
    let (esp, esp_record) = ed25519();
    let (wrong, _) = ed25519();
    let rsa = Rsa::generate(2048).expect("rsa");
    let pem = String::from_utf8(rsa.private_key_to_pem().expect("pem")).expect("ascii");
    let spki = PKey::from_rsa(rsa)
        .and_then(|k| k.public_key_to_der())
        .expect("spki");
    let json = serde_json::json!({
        "ed": {"algorithm": "ed25519-sha256", "private": ed},
        "esp": {"algorithm": "ed25519-sha256", "private": esp},
        "wrong": {"algorithm": "ed25519-sha256", "private": wrong},
        "rsa": {"algorithm": "rsa-sha256", "private": pem},
        "rsa1": {"algorithm": "rsa-sha1", "private": pem},
    });
    Keys {
        json: json.to_string(),
        ed: ed_record,
        rsa: format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&spki)),
        esp: esp_record,
    }
}

/// Runs `program` with `args`, feeding `stdin`; its stdout, or a panic
/// with its output when it fails.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = process::run_blocking(program, args, stdin);
    process::succeeded(&format!("{program} {args:?}"), out).into_bytes()
}

/// libopendkim's verifier, compiled for this run.
fn opendkim_tool(dir: &Path) -> String {
    let bin = dir.join("opendkim_verify");
    let bin = bin.to_str().expect("path").to_string();
    run("cc", &["-O1", "-o", &bin, OPENDKIM, "-lopendkim"], b"");
    bin
}

/// Whether a mailkey signature for `domain` passed, from per-signature
/// results of the world's verifiers.
fn mailkey_passed<'a>(
    mut sigs: impl Iterator<Item = (&'a str, &'a str, bool)>,
    domain: &str,
) -> bool {
    sigs.any(|(d, s, pass)| {
        pass && s.eq_ignore_ascii_case("mailkey")
            && d.trim_end_matches('.').eq_ignore_ascii_case(domain)
    })
}

fn dkimpy_verdicts(
    dns: &TestDns,
    messages: &[(usize, Vec<u8>)],
    cases: &[Case],
) -> HashMap<usize, bool> {
    let input: String = messages
        .iter()
        .map(|(id, m)| {
            let line = serde_json::json!({"id": id.to_string(), "message": openssl::base64::encode_block(m)});
            format!("{line}\n")
        })
        .collect();
    let ns = dns.addr().to_string();
    let out = run(
        "python3",
        &[DKIMPY, "verify-batch", "--nameserver", &ns],
        input.as_bytes(),
    );
    let mut verdicts = HashMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let v: Value = serde_json::from_str(line).expect("dkimpy output");
        let id: usize = v["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
        let results = v["results"].as_array().cloned().unwrap_or_default();
        let sigs = results.iter().map(|r| {
            (
                r["d"].as_str().unwrap_or(""),
                r["s"].as_str().unwrap_or(""),
                r["pass"].as_bool().unwrap_or(false),
            )
        });
        verdicts.insert(id, mailkey_passed(sigs, cases[id].sender));
    }
    verdicts
}

fn opendkim_verdicts(
    dir: &Path,
    keys: &Keys,
    messages: &[(usize, Vec<u8>)],
    cases: &[Case],
) -> HashMap<usize, bool> {
    let key_file = dir.join("keys");
    let mut lines = String::new();
    for (name, record) in [
        ("mailkey._domainkey.ed.test", &keys.ed),
        ("mailkey._domainkey.rsa.test", &keys.rsa),
        ("s1._domainkey.esp.test", &keys.esp),
    ] {
        // The trailing-dot form is the same DNS name.
        lines.push_str(&format!("{name} {record}\n{name}. {record}\n"));
    }
    std::fs::write(&key_file, lines).expect("key file");
    let mut args = vec![key_file.to_str().expect("path").to_string()];
    for (id, m) in messages {
        let path = dir.join(format!("{id}.eml"));
        std::fs::write(&path, m).expect("message file");
        args.push(path.to_str().expect("path").to_string());
    }
    let tool = opendkim_tool(dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&tool, &args, b"");
    let mut verdicts = HashMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let mut fields = line.split('\t');
        let path = fields.next().unwrap_or_default();
        let id: usize = Path::new(path)
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .expect("case file");
        let sigs: Vec<(String, String, bool)> = fields
            .map(|f| {
                let mut parts = f.splitn(3, ' ');
                let d = parts
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("d=")
                    .to_string();
                let s = parts
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("s=")
                    .to_string();
                (d, s, parts.next() == Some("pass"))
            })
            .collect();
        let sigs = sigs.iter().map(|(d, s, p)| (d.as_str(), s.as_str(), *p));
        verdicts.insert(id, mailkey_passed(sigs, cases[id].sender));
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_verdicts_agree_with_dkimpy_and_opendkim() {
    if !require(&[Need::Dkimpy, Need::CCompiler, Need::Libopendkim]) {
        return;
    }
    let dir = common::process::temp_dir("differential");
    let keys = keys();
    let zone = common::sender_zone()
        .txt("mailkey.ed.test", &keys.ed)
        .cname("mailkey._domainkey.ed.test", "mailkey.ed.test")
        .txt("mailkey.rsa.test", &keys.rsa)
        .cname("mailkey._domainkey.rsa.test", "mailkey.rsa.test")
        .txt("s1._domainkey.esp.test", &keys.esp);
    let dns = TestDns::start(zone).await;
    let config = common::config(&dns, "").replace("mode = \"enforce\"", "mode = \"monitor\"");
    // A unix socket, as in production: no TCP acknowledgement delays.
    let _daemon = Daemon::start_unix(&config, &dir.join("milter.sock")).await;

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cases = cases::generate(SEED, CASES, now);
    let keys_file = dir.join("keys.json");
    std::fs::write(&keys_file, &keys.json).expect("keys.json");
    let requests: String = cases.iter().map(|c| c.sign_request() + "\n").collect();
    let signed = run(
        "python3",
        &[
            DKIMPY,
            "sign-batch",
            "--keys",
            keys_file.to_str().expect("path"),
        ],
        requests.as_bytes(),
    );
    let messages: Vec<(usize, Vec<u8>)> = String::from_utf8_lossy(&signed)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("dkimpy output");
            let id: usize = v["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
            let raw = openssl::base64::decode_block(v["message"].as_str().unwrap_or_default())
                .expect("base64");
            (id, cases[id].delivered(&raw))
        })
        .collect();
    assert_eq!(messages.len(), CASES, "dkimpy signed every case");

    let dkimpy = dkimpy_verdicts(&dns, &messages, &cases);
    let opendkim = opendkim_verdicts(&dir, &keys, &messages, &cases);

    let client = "127.0.0.10".parse().expect("ip");
    let mut conn = open_unix(&dir.join("milter.sock"), client, "mail.sender.test").await;
    let mut classes: HashMap<&str, usize> = HashMap::new();
    let mut agreements = 0;
    let mut undocumented = Vec::new();
    for (id, message) in &messages {
        let case = &cases[*id];
        let from = format!("alice@{}", case.sender);
        let text = String::from_utf8(message.clone()).expect("ASCII message");
        let outcome = send_on(&mut conn, &Transaction::new("127.0.0.10", &from, text)).await;
        let ar = outcome.auth_results().unwrap_or_default();
        let v = Verdicts {
            ours: ar.contains("mailkey=pass"),
            dkimpy: dkimpy[id],
            opendkim: opendkim[id],
        };
        if v.agree() {
            agreements += 1;
            continue;
        }
        let documented = DOCUMENTED
            .iter()
            .find(|(label, _, shape)| case.labels.contains(label) && v.shaped(*shape));
        match documented {
            Some((_, class, _)) => *classes.entry(class).or_default() += 1,
            None => undocumented.push(format!(
                "case {id} {:?} changes {:?}: {v:?}; ours: {ar}\n{}",
                case.labels,
                case.changes,
                String::from_utf8_lossy(message)
            )),
        }
    }
    let mut summary: Vec<String> = classes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    summary.sort();
    println!(
        "differential: {CASES} cases, {agreements} agreements, {} documented disagreements ({}), {} undocumented",
        classes.values().sum::<usize>(),
        summary.join("; "),
        undocumented.len()
    );
    assert!(
        undocumented.is_empty(),
        "{} undocumented disagreements:\n{}",
        undocumented.len(),
        undocumented.join("\n\n")
    );
    // Every class occurs with this seed, and is written down where users
    // read it.
    for (_, class, _) in DOCUMENTED {
        assert!(classes.contains_key(class), "no case of {class:?} any more");
    }
    let decisions =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/decisions.md"))
            .expect("docs/decisions.md");
    for (_, class, _) in DOCUMENTED {
        assert!(
            decisions.contains(class),
            "docs/decisions.md does not name {class:?}"
        );
    }
}
