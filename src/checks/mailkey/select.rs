//! Which signatures the verifier gets. mail-auth computes a body hash for
//! every distinct (canonicalisation, algorithm, `l=`) among the
//! `DKIM-Signature` headers while it parses a message, before anything can
//! be filtered, and verifies every signature it parsed: a message with a
//! thousand `l=` signatures costs a thousand body hashes. So the signatures
//! are sorted out first, on the header block alone, and the verifier parses
//! a copy of the message that keeps only:
//!
//! - the first [`MAX_CONSIDERED`] mailkey signatures (`s=mailkey`, `d=`
//!   aligned) that the protocol allows (docs/protocol.md §4.3): no `l=`, no
//!   `rsa-sha1`, `From` signed, not expired;
//! - other `DKIM-Signature` headers without `l=` and without `rsa-sha1` (a
//!   mailkey signature may cover them in `h=`); they are not verified.
//!
//! The copy is parsed strictly, which refuses any `l=` signature before its
//! body hash. The body is therefore hashed at most twice (`simple` and
//! `relaxed` body canonicalisation, SHA-256), whatever the message carries.

use super::{aligned, allowed, Reasons, SELECTOR};
use crate::config::Alignment;
use mail_auth::{crypto::Algorithm, dkim::Signature, AuthenticatedMessage};
use std::ops::Range;

/// The most mailkey signatures looked at per message. A signer makes one
/// (two during a key rotation at most); every further one is only work for
/// the verifier.
pub const MAX_CONSIDERED: usize = 5;

/// The signatures sorted out of one message.
pub struct Selection {
    /// The message as the verifier gets it.
    pub message: Vec<u8>,
    /// The distinct `d=` of the verified signatures, in order of appearance.
    pub domains: Vec<String>,
    /// Why the mailkey signatures that were looked at do not count.
    pub reasons: Reasons,
    /// Mailkey signatures in the message.
    pub seen: usize,
    /// Mailkey signatures handed to the verifier (≤ [`MAX_CONSIDERED`]).
    pub verified: usize,
}

impl Selection {
    /// Says how many were ignored, when the cap cut some off.
    pub fn note(&self) -> Option<String> {
        (self.seen > MAX_CONSIDERED).then(|| {
            format!(
                "{} mailkey signatures, only the first {MAX_CONSIDERED} were considered",
                self.seen
            )
        })
    }
}

/// Sorts out the signatures of `message` for sender domain `domain`;
/// `None` when the message has no header.
pub fn select(message: &[u8], domain: &str, alignment: Alignment, now: u64) -> Option<Selection> {
    let head = &message[..header_end(message)];
    // Strict: an `l=` signature is an error here, without a body hash; the
    // "body" of the header block is empty anyway.
    let parsed = AuthenticatedMessage::parse_with_opts(head, None, true)?;
    let mut selection = Selection {
        message: Vec::new(),
        domains: Vec::new(),
        reasons: Reasons::default(),
        seen: 0,
        verified: 0,
    };
    let mut drop: Vec<Range<usize>> = Vec::new();
    let dkim = parsed
        .dkim_signatures()
        .iter()
        .map(|h| (h.name, h.value, Some(h.header.clone())));
    // The `l=` signatures strict parsing refused, parsed again to say why.
    let refused = parsed
        .errors()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(b"dkim-signature"))
        .map(|h| (h.name, h.value, Signature::parse(h.value).ok()));
    let mut all: Vec<_> = dkim.chain(refused).collect();
    all.sort_by_key(|(name, _, _)| name.as_ptr() as usize);
    for (name, value, sig) in all {
        let Some(sig) = sig else {
            continue; // does not parse: ignored, and costs nothing
        };
        let range = field_range(head, name, value);
        let keep = sort_out(&sig, domain, alignment, now, &mut selection);
        if !keep {
            drop.extend(range);
        }
    }
    selection.message = without(message, &drop);
    Some(selection)
}

/// Looks at one signature; `true` keeps it in the verifier's copy.
fn sort_out(
    sig: &Signature,
    domain: &str,
    alignment: Alignment,
    now: u64,
    selection: &mut Selection,
) -> bool {
    if !sig.s.eq_ignore_ascii_case(SELECTOR) {
        if sig.d.eq_ignore_ascii_case(domain) {
            selection.reasons.add(
                9,
                format!(
                    "DKIM signature for {domain} uses selector {:?}, not \"mailkey\"",
                    sig.s
                ),
            );
        }
        return harmless(sig);
    }
    if !aligned(&sig.d, domain, alignment) {
        selection.reasons.add(
            8,
            format!("mailkey signature is for d={}, not {domain}", sig.d),
        );
        return harmless(sig);
    }
    selection.seen += 1;
    if selection.seen > MAX_CONSIDERED {
        return false;
    }
    if let Err(why) = allowed(sig, now) {
        selection.reasons.add(5, why);
        return false;
    }
    selection.verified += 1;
    let d = sig.d.to_ascii_lowercase();
    if !selection.domains.contains(&d) {
        selection.domains.push(d);
    }
    true
}

/// A signature that is not verified may stay in the copy when it adds no
/// body hash of its own.
fn harmless(sig: &Signature) -> bool {
    sig.l == 0 && sig.a != Algorithm::RsaSha1
}

/// Where the header block ends: after the first empty line (or the end).
/// mail-auth never reads a header past it.
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    while let Some(nl) = message[at..].iter().position(|&b| b == b'\n') {
        let line_start = at + nl + 1;
        match message.get(line_start..) {
            Some([b'\n', ..]) => return line_start + 1,
            Some([b'\r', b'\n', ..]) => return line_start + 2,
            _ => at = line_start,
        }
    }
    message.len()
}

/// The bytes of a header field (`name` to the end of `value`, its line
/// end included) within `head`, from the slices mail-auth parsed out of it.
fn field_range(head: &[u8], name: &[u8], value: &[u8]) -> Option<Range<usize>> {
    let base = head.as_ptr() as usize;
    let start = (name.as_ptr() as usize).checked_sub(base)?;
    let end = (value.as_ptr() as usize).checked_sub(base)? + value.len();
    (start < end && end <= head.len()).then_some(start..end)
}

/// `message` without the byte ranges `drop` (sorted, disjoint).
fn without(message: &[u8], drop: &[Range<usize>]) -> Vec<u8> {
    let removed: usize = drop.iter().map(ExactSizeIterator::len).sum();
    let mut out = Vec::with_capacity(message.len().saturating_sub(removed));
    let mut at = 0;
    for range in drop {
        out.extend_from_slice(&message[at..range.start]);
        at = range.end;
    }
    out.extend_from_slice(&message[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "\r\nHello\r\n";

    fn sig(tags: &str) -> String {
        format!("DKIM-Signature: v=1; a=ed25519-sha256; h=from; bh=AAAA; b=AAAA; {tags}\r\n")
    }

    fn message(sigs: &[String]) -> Vec<u8> {
        format!("{}From: a@sender.test\r\n{BODY}", sigs.concat()).into_bytes()
    }

    /// What mail-auth hashes when it parses the copy: one body hash per
    /// distinct (body canonicalisation, hash, l=) of the parsed signatures.
    fn body_hashes(copy: &[u8]) -> usize {
        let parsed = AuthenticatedMessage::parse_with_opts(copy, None, true).unwrap();
        let mut seen = Vec::new();
        for h in parsed.dkim_signatures() {
            let s = &h.header;
            let key = (format!("{:?}", s.cb), format!("{:?}", s.a), s.l);
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
        seen.len()
    }

    #[test]
    fn a_thousand_l_signatures_reach_no_verifier() {
        let sigs: Vec<String> = (1..=1000)
            .map(|l| sig(&format!("d=sender.test; s=mailkey; l={l}")))
            .collect();
        let s = select(&message(&sigs), "sender.test", Alignment::Strict, 0).unwrap();
        assert_eq!((s.seen, s.verified), (1000, 0));
        assert_eq!(
            s.reasons.best().as_deref(),
            Some("signature has an l= body length tag: l= is not accepted")
        );
        assert_eq!(s.message, message(&[]), "every l= signature is dropped");
    }

    #[test]
    fn at_most_five_are_verified_and_the_body_is_hashed_at_most_twice() {
        let mut sigs: Vec<String> = Vec::new();
        for i in 0..1000 {
            let c = ["relaxed/relaxed", "simple/simple", "relaxed/simple"][i % 3];
            let a = ["ed25519-sha256", "rsa-sha256", "rsa-sha1"][i % 3];
            let s = ["mailkey", "other", "mailkey"][i % 3];
            sigs.push(format!(
                "DKIM-Signature: v=1; a={a}; c={c}; d=sender.test; s={s}; h=from; \
                 bh=AAAA; b=AAAA\r\n"
            ));
        }
        let s = select(&message(&sigs), "sender.test", Alignment::Strict, 0).unwrap();
        assert_eq!(s.seen, 667);
        assert!(s.verified <= MAX_CONSIDERED, "{}", s.verified);
        assert!(body_hashes(&s.message) <= 2, "{}", body_hashes(&s.message));
        let mailkey = AuthenticatedMessage::parse(&s.message)
            .unwrap()
            .dkim_signatures()
            .iter()
            .filter(|h| h.header.s == "mailkey")
            .count();
        assert!(mailkey <= MAX_CONSIDERED, "{mailkey}");
        assert_eq!(
            s.note().as_deref(),
            Some("667 mailkey signatures, only the first 5 were considered")
        );
    }

    #[test]
    fn other_signatures_stay_for_h_coverage() {
        let other = sig("d=esp.test; s=s1");
        let mine = sig("d=sender.test; s=mailkey");
        let msg = message(&[mine.clone(), other.clone()]);
        let s = select(&msg, "sender.test", Alignment::Strict, 0).unwrap();
        assert_eq!(s.message, msg);
        assert_eq!(s.domains, vec!["sender.test".to_string()]);
        assert_eq!(s.note(), None);
    }

    #[test]
    fn header_end_finds_the_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"A: b\r\n"), 6);
    }
}
