//! The sender challenge (docs/decisions.md, "Letting wanted senders
//! through"; threat model in SECURITY.md): a refusal to a sender that
//! proved its address carries a one-time, signed, expiring URL; whoever
//! reads the bounce opens it, answers one question, and mail from that
//! sender to that recipient is let through (checked and marked) for
//! `allow_days`.
//!
//! The URL holds everything (sender, recipient, expiry, a nonce) under an
//! HMAC: an offered challenge costs no state, however many are offered.
//! The store keeps only answers tried and solved nonces ([`crate::state`]).
//! [`page`] renders the page, [`http`] serves it.

pub mod http;
pub mod page;

use crate::{
    checks::{self, CheckResult, Status},
    config::{ChallengeConfig, ChallengeWhen},
    reply::{sanitize, Outcome, Reply, MAX_REPLY_LINES},
    secrets,
    state::MAX_ADDRESS,
    verdict::Verdict,
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use std::sync::LazyLock;

/// The longest URL put into a reply (a reply line holds 400 characters).
pub(crate) const MAX_URL: usize = 390;
/// Wrong answers a challenge takes before it is burnt.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// Recipients of one message that get a URL in an end-of-message refusal.
pub(crate) const MAX_URLS_PER_REPLY: usize = 5;
const MAC_LEN: usize = 16;
const VERSION: u8 = 1;

/// `challenges_total` events: a refusal carried a URL, a page was solved,
/// a message was let through by a solved challenge.
pub(crate) const EVENTS: [&str; 3] = ["offered", "passed", "let_through"];

/// Challenge events by `event` (one of [`EVENTS`]), counted here;
/// src/metrics.rs registers this same family and so reads it at scrape
/// time (ARCHITECTURE.md, "Module graph").
pub(crate) static EVENT_COUNTERS: LazyLock<Family<[(&'static str, &'static str); 1], Counter>> =
    LazyLock::new(|| {
        let family = Family::default();
        for event in EVENTS {
            let _ = family.get_or_create(&[("event", event)]);
        }
        family
    });

/// Counts a challenge event, one of [`EVENTS`].
pub fn count(event: &'static str) {
    EVENT_COUNTERS.get_or_create(&[("event", event)]).inc();
}

/// `[challenge]` put to work.
#[derive(Clone, Debug)]
pub struct Challenges {
    secrets: Vec<Vec<u8>>,
    base: String,
    pub when: ChallengeWhen,
    pub valid_secs: u64,
    pub allow_secs: u64,
}

/// One challenge: what its URL carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The MAIL FROM address, lower-cased.
    pub sender: String,
    /// The RCPT TO address, lower-cased, as the sender typed it.
    pub recipient: String,
    /// Seconds since the epoch.
    pub expires: u64,
    pub nonce: [u8; 8],
}

/// The question on the page and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub text: String,
    pub answer: u32,
}

const NUMBERS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

impl Challenge {
    pub(crate) fn nonce_hex(&self) -> String {
        self.nonce.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Challenges {
    /// `None` when `[challenge] when = "off"`.
    pub fn load(config: &ChallengeConfig) -> Result<Option<Self>, secrets::SecretError> {
        let (Some(path), Some(base)) = (&config.secret_file, &config.url) else {
            return Ok(None);
        };
        if config.when == ChallengeWhen::Off {
            return Ok(None);
        }
        Ok(Some(Self {
            secrets: secrets::read(path, "challenge", secrets::MIN_LEN)?,
            base: base.trim_end_matches('/').to_string(),
            when: config.when,
            valid_secs: config.valid_hours * 3600,
            allow_secs: config.allow_days * 86_400,
        }))
    }

    /// A new challenge for (sender, recipient), valid from `now`.
    pub fn new_challenge(&self, sender: &str, recipient: &str, now: u64) -> Option<Challenge> {
        let mut nonce = [0u8; 8];
        openssl::rand::rand_bytes(&mut nonce).ok()?;
        let bare = |a: &str| {
            a.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_ascii_lowercase()
        };
        Some(Challenge {
            sender: bare(sender),
            recipient: bare(recipient),
            expires: now + self.valid_secs,
            nonce,
        })
    }

    fn payload(c: &Challenge) -> Option<Vec<u8>> {
        let (s, r) = (c.sender.as_bytes(), c.recipient.as_bytes());
        let mut out = Vec::with_capacity(16 + s.len() + r.len());
        out.push(VERSION);
        out.extend_from_slice(&u32::try_from(c.expires).ok()?.to_be_bytes());
        out.extend_from_slice(&c.nonce);
        out.push(u8::try_from(s.len()).ok()?);
        out.extend_from_slice(s);
        out.push(u8::try_from(r.len()).ok()?);
        out.extend_from_slice(r);
        Some(out)
    }

    fn mac(key: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
        let mut mac = secrets::hmac(key, &[b"mailkey-milter challenge v1", payload])?;
        mac.truncate(MAC_LEN);
        Some(mac)
    }

    /// The signed part of the URL (base64url, no padding).
    pub fn sign(&self, c: &Challenge) -> Option<String> {
        let mut bytes = Self::payload(c)?;
        let mac = Self::mac(self.secrets.first()?, &bytes)?;
        bytes.extend_from_slice(&mac);
        Some(base64url(&bytes))
    }

    /// The URL to put into a refusal, `None` if it would be too long.
    pub fn url(&self, c: &Challenge) -> Option<String> {
        let url = format!("{}/{}", self.base, self.sign(c)?);
        (url.len() <= MAX_URL).then_some(url)
    }

    /// The challenge a signed part stands for, if one of our secrets made
    /// it; expiry is the caller's to judge.
    pub fn verify(&self, signed: &str) -> Option<Challenge> {
        if signed.len() > MAX_URL {
            return None;
        }
        let bytes = unbase64url(signed)?;
        let split = bytes.len().checked_sub(MAC_LEN)?;
        let (payload, mac) = bytes.split_at(split);
        let genuine = self
            .secrets
            .iter()
            .any(|k| Self::mac(k, payload).is_some_and(|m| secrets::same(&m, mac)));
        if !genuine || payload.first() != Some(&VERSION) {
            return None;
        }
        let expires = u64::from(u32::from_be_bytes(payload.get(1..5)?.try_into().ok()?));
        let nonce: [u8; 8] = payload.get(5..13)?.try_into().ok()?;
        let rest = payload.get(13..)?;
        let (sender, rest) = field(rest)?;
        let (recipient, rest) = field(rest)?;
        rest.is_empty().then_some(Challenge {
            sender,
            recipient,
            expires,
            nonce,
        })
    }

    /// The question for `c`: the same each time its page is shown (it
    /// follows from the nonce and our secret), so nothing is stored.
    pub fn question(&self, c: &Challenge) -> Question {
        let key = self.secrets.first().map_or(&[][..], Vec::as_slice);
        let h = secrets::hmac(key, &[b"mailkey-milter question", &c.nonce]).unwrap_or_default();
        let a = 2 + u32::from(h.first().copied().unwrap_or(0) % 9);
        let b = 2 + u32::from(h.get(1).copied().unwrap_or(0) % 9);
        let word = |n: u32| NUMBERS.get(n as usize).copied().unwrap_or("two");
        Question {
            text: format!("What is {} plus {}?", word(a), word(b)),
            answer: a + b,
        }
    }

    /// The refusal in `verdict` with a challenge URL for each of
    /// `recipients` (at most [`MAX_URLS_PER_REPLY`]), and how many, when a
    /// challenge is offered: a refusal (5xx, not in monitor mode) to a
    /// sender that proved its address ([`proven`]). Never to anyone else:
    /// the refusal goes back to the envelope sender, and a forged one must
    /// not get mail from us (backscatter).
    pub fn offer(
        &self,
        sender: &str,
        verdict: &Verdict,
        results: &[CheckResult],
        recipients: &[String],
        now: u64,
    ) -> Option<(Reply, usize)> {
        let Outcome::Reject(reply) = verdict.applied() else {
            return None;
        };
        if reply.code.is_temporary() || sender.len() > MAX_ADDRESS {
            return None;
        }
        proven(sender, results)?;
        let mut lines = Vec::new();
        for recipient in recipients.iter().take(MAX_URLS_PER_REPLY) {
            let c = self.new_challenge(sender, recipient, now)?;
            let Some(url) = self.url(&c) else {
                continue;
            };
            lines.push(sanitize(&format!(
                "To have {recipient} accept your mail anyway, prove once that a person sends it:"
            )));
            lines.push(sanitize(&url));
        }
        if lines.is_empty() {
            return None;
        }
        let offered = lines.len() / 2;
        // The challenge after the first line (what is wrong); reason lines
        // give way when the reply would pass its 32 lines.
        let mut out = reply.lines.clone();
        let at = out.len().min(1);
        let room = MAX_REPLY_LINES.saturating_sub(lines.len());
        while out.len() > room && out.len() > at + 1 {
            out.remove(at);
        }
        out.splice(at..at, lines);
        // Lines already sanitised (Reply::new would double `%` again).
        let reply = Reply {
            code: reply.code,
            lines: out,
        };
        Some((reply, offered))
    }
}

/// Is `given` the answer: digits or the English word, spaces and case
/// ignored?
pub(crate) fn is_answer(q: &Question, given: &str) -> bool {
    let given = given.trim().to_ascii_lowercase();
    given.parse::<u32>().ok() == Some(q.answer)
        || NUMBERS.get(q.answer as usize).is_some_and(|w| *w == given)
}

/// A length-prefixed field of the payload.
fn field(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = usize::from(*bytes.first()?);
    let value = bytes.get(1..1 + len)?;
    Some((
        String::from_utf8(value.to_vec()).ok()?,
        bytes.get(1 + len..)?,
    ))
}

fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Only the canonical form: the unused low bits of the last character
/// must be zero, so each challenge has exactly one URL.
fn unbase64url(s: &str) -> Option<Vec<u8>> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut std = s.replace('-', "+").replace('_', "/");
    while std.len() % 4 != 0 {
        std.push('=');
    }
    let bytes = openssl::base64::decode_block(&std).ok()?;
    (base64url(&bytes) == s).then_some(bytes)
}

/// Did the sender prove the address is its own, by our own checks: SPF
/// `pass` for its domain, or a valid mailkey signature aligned with it?
/// A pass that only a trusted ARC sealer vouched for does not count (the
/// bounce would go through the forwarder). The null sender never does
/// (a bounce cannot be bounced). Returns the check that proved it.
pub(crate) fn proven(mail_from: &str, results: &[CheckResult]) -> Option<&'static str> {
    if mail_from.is_empty() {
        return None;
    }
    [checks::spf::NAME, checks::mailkey::NAME]
        .into_iter()
        .find(|name| {
            results.iter().any(|r| {
                r.check == *name && r.status == Status::Pass && !crate::forwarding::vouched_for(r)
            })
        })
        .map(|name| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges() -> Challenges {
        Challenges {
            secrets: vec![
                b"new challenge secret".to_vec(),
                b"old challenge secret".to_vec(),
            ],
            base: "https://mx.example.org/challenge".into(),
            when: ChallengeWhen::Refused,
            valid_secs: 3600,
            allow_secs: 86_400,
        }
    }

    #[test]
    fn urls_verify_and_cannot_be_altered() {
        let ch = challenges();
        let c = ch
            .new_challenge("<Bob@Shop.test>", "alice@example.org", 1000)
            .unwrap();
        assert_eq!(c.sender, "bob@shop.test");
        let url = ch.url(&c).unwrap();
        let signed = url.rsplit('/').next().unwrap();
        assert_eq!(ch.verify(signed), Some(c.clone()));
        assert!(url.len() < 150, "{url}");
        // Any changed character breaks it.
        for i in 0..signed.len() {
            let mut bytes = signed.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert_eq!(ch.verify(&altered), None, "{altered}");
        }
        // Made with the second (old) secret: still verifies.
        let old = Challenges {
            secrets: vec![b"old challenge secret".to_vec()],
            ..challenges()
        };
        assert_eq!(ch.verify(&old.sign(&c).unwrap()), Some(c));
    }

    #[test]
    fn the_question_is_stable_and_takes_digits_or_words() {
        let ch = challenges();
        let c = ch.new_challenge("b@s.test", "a@e.test", 1).unwrap();
        let q = ch.question(&c);
        assert_eq!(q, ch.question(&c));
        assert!((4..=20).contains(&q.answer));
        assert!(is_answer(&q, &format!(" {} ", q.answer)));
        assert!(is_answer(&q, &NUMBERS[q.answer as usize].to_uppercase()));
        assert!(!is_answer(&q, &(q.answer + 1).to_string()));
        assert!(!is_answer(&q, ""));
    }

    #[test]
    fn only_our_own_passes_prove_the_sender() {
        use checks::{CheckResult, Effect};
        let spf = |s| CheckResult::new(checks::spf::NAME, s, Effect::Accept);
        assert_eq!(proven("b@s.test", &[spf(Status::Pass)]), Some("spf"));
        assert_eq!(proven("b@s.test", &[spf(Status::Fail)]), None);
        assert_eq!(proven("", &[spf(Status::Pass)]), None);
        let vouched = spf(Status::Pass).reason("arc: lists.test");
        assert_eq!(proven("b@s.test", &[vouched]), None);
    }
}
