//! The generated cases of tests/differential.rs: a message, the signatures
//! dkimpy makes over it (tests/tools/dkimpy_tool.py sign-batch), and what a
//! mail path then does to it. Deterministic from a seed; every case
//! carries labels naming what was done, which the comparison uses to
//! recognise a documented disagreement.

use serde_json::{json, Value};

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Words for subjects and bodies.
const WORDS: &str = "quarterly report figures attached meeting tuesday budget review invoice \
                     shipment delivery schedule please confirm regards thanks";

/// One signature for dkimpy to make.
pub struct Sign {
    pub key: &'static str,
    pub domain: String,
    pub selector: &'static str,
    pub canon: &'static str,
    pub headers: Vec<String>,
    pub length: bool,
    pub tags: Vec<(&'static str, String)>,
    pub drop: Vec<&'static str>,
}

impl Sign {
    fn json(&self) -> Value {
        let tags: serde_json::Map<String, Value> = self
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "key": self.key, "domain": self.domain, "selector": self.selector,
            "canon": self.canon, "headers": self.headers, "length": self.length,
            "tags": tags, "drop": self.drop,
        })
    }
}

/// What happens to the signed message on its way.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// Subject folded at a space.
    Refold,
    /// A header field name in upper case.
    NameCase,
    /// Trace fields added on top.
    Received,
    /// Trailing white space on a body line.
    TrailingSpace,
    /// Body line ends made LF (the receiving MTA makes them CRLF again).
    BareLf,
    /// A CR put into a body line.
    BareCr,
    /// Empty lines added at the end of the body.
    BlankLines,
    /// A word of the body changed.
    TamperBody,
    /// The Subject changed.
    TamperSubject,
    /// A second From on top.
    SecondFrom,
    /// A second Subject on top.
    SecondSubject,
    /// A footer appended (a list).
    Footer,
    /// Five forged copies of the first signature on top.
    Forgeries,
}

pub struct Case {
    pub id: usize,
    /// The sender domain D (MAIL FROM).
    pub sender: &'static str,
    pub labels: Vec<&'static str>,
    pub unsigned: Vec<u8>,
    pub signatures: Vec<Sign>,
    pub changes: Vec<Change>,
}

impl Case {
    /// The input line of `dkimpy_tool.py sign-batch`.
    pub fn sign_request(&self) -> String {
        let sigs: Vec<Value> = self.signatures.iter().map(Sign::json).collect();
        json!({
            "id": self.id.to_string(),
            "message": openssl::base64::encode_block(&self.unsigned),
            "signatures": sigs,
        })
        .to_string()
    }

    /// The message as the receiving MTA hands it on: the changes applied,
    /// then every bare LF made CRLF (what Postfix does to line ends; a CR
    /// inside a line stays).
    pub fn delivered(&self, signed: &[u8]) -> Vec<u8> {
        let mut m = signed.to_vec();
        for change in &self.changes {
            m = apply(*change, &m);
        }
        crlf(&m)
    }
}

/// Bare LF → CRLF.
fn crlf(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + 64);
    for (i, &b) in m.iter().enumerate() {
        if b == b'\n' && (i == 0 || m[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn split(m: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(m).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((h, b)) => (format!("{h}\r\n"), b.to_string()),
        None => (text, String::new()),
    }
}

fn apply(change: Change, m: &[u8]) -> Vec<u8> {
    let (head, body) = split(m);
    let (head, body) = match change {
        Change::Refold => (head.replacen("Subject: ", "Subject:\r\n\t", 1), body),
        Change::NameCase => (head.replacen("\r\nSubject:", "\r\nSUBJECT:", 1), body),
        Change::Received => (
            format!(
                "Received: from relay.example (relay.example [127.0.0.9])\r\n\tby \
                 mx.receiver.test with ESMTPS id 4F2A; Mon, 23 Nov 2026 10:00:09 +0000\r\n{head}"
            ),
            body,
        ),
        Change::TrailingSpace => (head, body.replacen("\r\n", " \t \r\n", 1)),
        Change::BareLf => (head, body.replace("\r\n", "\n")),
        Change::BareCr => (head, body.replacen("e", "e\r", 1)),
        Change::BlankLines => (head, format!("{body}\r\n\r\n\r\n")),
        Change::TamperBody => (head, body.replacen("e", "E", 1)),
        Change::TamperSubject => (head.replacen("Subject: ", "Subject: Re: ", 1), body),
        Change::SecondFrom => (format!("From: Mallory <mallory@evil.test>\r\n{head}"), body),
        Change::SecondSubject => (format!("Subject: urgent\r\n{head}"), body),
        Change::Footer => (head, format!("{body}-- \r\nlist footer\r\n")),
        Change::Forgeries => (format!("{}{head}", forged_copies(&head, 5)), body),
    };
    format!("{head}\r\n{body}").into_bytes()
}

/// `n` copies of the first DKIM-Signature of `head` with a wrong `b=`.
fn forged_copies(head: &str, n: usize) -> String {
    let Some(start) = head.find("DKIM-Signature:") else {
        return String::new();
    };
    let rest = &head[start..];
    let mut end = 0;
    for line in rest.split_inclusive("\r\n") {
        if end > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        end += line.len();
    }
    let field = &rest[..end];
    // The first base64 character of the b= value (after `;` and FWS).
    let tag = field
        .match_indices("b=")
        .map(|(i, _)| i)
        .find(|&i| field[..i].trim_end().ends_with(';'))
        .unwrap_or(0);
    let Some(at) = field[tag + 2..]
        .find(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        .map(|i| tag + 2 + i)
    else {
        return String::new();
    };
    let flipped = if field[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    format!("{}{flipped}{}", &field[..at], &field[at + 1..]).repeat(n)
}

/// Generates `n` cases from `seed`; `now` is seconds since the epoch.
pub fn generate(seed: u64, n: usize, now: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..n).map(|id| case(&mut rng, id, now)).collect()
}

fn words(rng: &mut Rng, n: usize) -> String {
    let all: Vec<&str> = WORDS.split_whitespace().collect();
    (0..n)
        .map(|_| *rng.pick(&all))
        .collect::<Vec<_>>()
        .join(" ")
}

fn case(rng: &mut Rng, id: usize, now: u64) -> Case {
    // Every 16th case of a kind: each documented class is met often.
    let scenario = id % 16;
    let sender = if scenario == 2 || rng.chance(40) {
        "rsa.test"
    } else {
        "ed.test"
    };
    let mut head = String::new();
    let mut present = vec!["from", "to", "subject", "date", "message-id"];
    if rng.chance(30) {
        head.push_str("Received: from mail.example (mail.example [127.0.0.8]) by mx.example\r\n");
    }
    head.push_str(&format!(
        "From: Alice <alice@{sender}>\r\nTo: bob@receiver.test\r\n"
    ));
    if rng.chance(30) {
        head.push_str("Cc: carol@receiver.test\r\n");
        present.push("cc");
    }
    let subject_words = 2 + rng.below(12);
    head.push_str(&format!(
        "Subject: {}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}@{sender}>\r\n",
        words(rng, subject_words)
    ));
    if rng.chance(50) {
        head.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
        present.extend(["mime-version", "content-type"]);
    }
    let mut body = String::new();
    for _ in 0..1 + rng.below(20) {
        let count = rng.below(10);
        let mut line = words(rng, count);
        if rng.chance(10) {
            line.push_str("  \t");
        }
        if rng.chance(10) {
            line = line.replacen(' ', " \t  ", 1);
        }
        body.push_str(&line);
        body.push_str("\r\n");
    }
    if rng.chance(10) {
        body.push_str("\r\n\r\n");
    }
    let mut labels = Vec::new();
    let canon = *rng.pick(&[
        "relaxed/relaxed",
        "relaxed/simple",
        "simple/simple",
        "simple/relaxed",
    ]);
    let mut headers: Vec<String> = present
        .iter()
        .filter(|h| **h == "from" || rng.chance(70))
        .map(|h| h.to_string())
        .collect();
    let oversigned = rng.chance(40);
    if oversigned {
        headers.push("from".into());
    }
    let mut ours = Sign {
        key: if sender == "rsa.test" { "rsa" } else { "ed" },
        domain: sender.into(),
        selector: "mailkey",
        canon,
        headers,
        length: false,
        tags: Vec::new(),
        drop: Vec::new(),
    };
    let esp = |headers: Vec<String>, length: bool| Sign {
        key: "esp",
        domain: "esp.test".into(),
        selector: "s1",
        canon: "relaxed/relaxed",
        headers,
        length,
        tags: Vec::new(),
        drop: Vec::new(),
    };
    let mut signatures = Vec::new();
    let mut changes = Vec::new();
    let mut unsigned = format!("{head}\r\n{body}").into_bytes();
    match scenario {
        0 => {
            ours.length = true;
            changes.push(Change::Footer);
            labels.push("l=");
        }
        1 => {
            ours.tags.push(("l", "0".into()));
            labels.push("l=");
        }
        2 => {
            ours.key = "rsa1";
            labels.push("rsa-sha1");
        }
        3 => {
            ours.headers.retain(|h| h != "from");
            ours.headers.push("to".into());
            labels.push("from-unsigned");
        }
        4 => {
            ours.headers
                .extend((0..130).map(|i| format!("x-absent-{i}")));
            labels.push("h-over-cap");
        }
        5 => {
            changes.push(Change::Forgeries);
            labels.push("sixth");
        }
        6 => {
            ours.tags.push(("t", (now + 2 * 86_400).to_string()));
            labels.push("t-future");
        }
        7 => {
            ours.tags.push(("t", "1000000000000".into()));
            labels.push("t-13-digits");
        }
        8 => {
            ours.tags.push(("t", (now - 2 * 86_400).to_string()));
            ours.tags.push(("x", (now - 86_400).to_string()));
            labels.push("x-past");
        }
        9 => {
            ours.tags.push(("x", (now + 86_400).to_string()));
            labels.push("x-future");
        }
        10 => {
            ours.domain = format!("{sender}.");
            labels.push("d-trailing-dot");
        }
        11 => {
            // An ESP signed first (with l= half of the time); ours covers it.
            signatures.push(esp(vec!["from".into(), "to".into()], rng.chance(50)));
            ours.headers.push("dkim-signature".into());
            labels.push("covers-other-signature");
        }
        12 => {
            ours.key = "wrong";
            labels.push("unpublished-key");
        }
        13 => {
            // Signed as a sender with bare CRs in the body would be.
            unsigned = format!("{head}\r\n{}", body.replacen("e", "e\r", 2)).into_bytes();
            labels.push(bare_cr_label(canon));
        }
        14 => {
            unsigned = unsigned.split(|&b| b == b'\r').collect::<Vec<_>>().concat();
            labels.push("signed-with-lf");
        }
        _ => {}
    }
    signatures.push(ours);
    if scenario == 15 || (scenario != 5 && rng.chance(10)) {
        // An ESP signs after us, covering our signature.
        signatures.push(esp(
            vec!["from".into(), "dkim-signature".into()],
            rng.chance(30),
        ));
        labels.push("other-signature-above");
    }
    for (change, percent) in [
        (Change::Refold, 10),
        (Change::NameCase, 8),
        (Change::Received, 15),
        (Change::TrailingSpace, 10),
        (Change::BareLf, 8),
        (Change::BareCr, 6),
        (Change::BlankLines, 10),
        (Change::TamperBody, 5),
        (Change::TamperSubject, 4),
        (Change::SecondFrom, 6),
        (Change::SecondSubject, 6),
    ] {
        if rng.chance(percent) {
            changes.push(change);
            match change {
                Change::BareCr => labels.push(bare_cr_label(canon)),
                Change::SecondFrom if !oversigned => labels.push("second-from"),
                _ => {}
            }
        }
    }
    Case {
        id,
        sender,
        labels,
        unsigned,
        signatures,
        changes,
    }
}

fn bare_cr_label(canon: &str) -> &'static str {
    if canon.ends_with("relaxed") {
        "bare-cr-relaxed"
    } else {
        "bare-cr-simple"
    }
}
