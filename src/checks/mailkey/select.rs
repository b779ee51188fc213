//! Which signatures the verifier gets (docs/protocol.md §4.4): from the
//! message as received — parsed once, without body hashes, with every
//! other `DKIM-Signature` left where it is (a mailkey signature may cover
//! it in `h=`: what a signature covers is never changed) — the first
//! [`MAX_CONSIDERED`] mailkey signatures (`s=mailkey`, `d=` aligned), of
//! which those the protocol allows (§4.3, [`rules::allowed`]) are
//! verified. Nothing here hashes: the rules look at the header field only.

use super::{aligned, rules, Reasons, SELECTOR};
use crate::config::Alignment;
use mail_auth::{dkim::Signature, headers::Header, AuthenticatedMessage};

/// The most mailkey signatures looked at per message. A signer makes one
/// (two during a key rotation at most); every further one is only work for
/// the verifier.
pub(crate) const MAX_CONSIDERED: usize = 5;

/// One signature to verify, with the domain whose keys verify it.
pub(crate) struct Candidate<'m> {
    pub header: &'m Header<'m, Signature>,
    /// `d=`, lower case, a trailing dot dropped (as alignment reads it).
    pub d: String,
}

/// The signatures sorted out of one message.
pub(crate) struct Selection<'m> {
    /// The allowed mailkey signatures, in order of appearance.
    pub candidates: Vec<Candidate<'m>>,
    /// Why the mailkey signatures that were looked at do not count.
    pub reasons: Reasons,
    /// Mailkey signatures in the message.
    pub seen: usize,
}

impl Selection<'_> {
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

/// The distinct `d=` of `candidates`, in order of appearance.
pub fn domains<'c>(candidates: &'c [Candidate<'_>]) -> Vec<&'c str> {
    let mut domains: Vec<&str> = Vec::new();
    for c in candidates {
        if !domains.contains(&c.d.as_str()) {
            domains.push(&c.d);
        }
    }
    domains
}

/// Sorts out the signatures of `parsed` for sender domain `domain`; `now`
/// is seconds since the epoch, for `x=`.
pub fn select<'m>(
    parsed: &'m AuthenticatedMessage<'m>,
    domain: &str,
    alignment: Alignment,
    now: u64,
) -> Selection<'m> {
    let mut selection = Selection {
        candidates: Vec::new(),
        reasons: Reasons::default(),
        seen: 0,
    };
    // Signatures that do not parse are not in this list: ignored, and
    // they cost nothing.
    for header in parsed.dkim_signatures() {
        let sig = &header.header;
        if !sig.s.eq_ignore_ascii_case(SELECTOR) {
            if aligned(&sig.d, domain, Alignment::Strict) {
                selection.reasons.add(
                    9,
                    format!(
                        "DKIM signature for {domain} uses selector {:?}, not \"mailkey\"",
                        sig.s
                    ),
                );
            }
            continue;
        }
        if !aligned(&sig.d, domain, alignment) {
            selection.reasons.add(
                8,
                format!("mailkey signature is for d={}, not {domain}", sig.d),
            );
            continue;
        }
        selection.seen += 1;
        if selection.seen > MAX_CONSIDERED {
            continue;
        }
        match rules::allowed(sig, header.value, now) {
            Ok(()) => selection.candidates.push(Candidate {
                header,
                d: sig.d.trim_end_matches('.').to_ascii_lowercase(),
            }),
            Err(why) => selection.reasons.add(5, why),
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(tags: &str) -> String {
        format!("DKIM-Signature: v=1; a=ed25519-sha256; h=from; bh=AAAA; b=AAAA; {tags}\r\n")
    }

    fn message(sigs: &[String]) -> Vec<u8> {
        format!("{}From: a@sender.test\r\n\r\nHello\r\n", sigs.concat()).into_bytes()
    }

    fn select_in(msg: &[u8], run: impl FnOnce(Selection<'_>)) {
        let parsed = AuthenticatedMessage::parse_without_body_hashes(msg, false).unwrap();
        run(select(&parsed, "sender.test", Alignment::Strict, 0));
    }

    #[test]
    fn a_thousand_l_signatures_reach_no_verifier() {
        let sigs: Vec<String> = (1..=1000)
            .map(|l| sig(&format!("d=sender.test; s=mailkey; l={l}")))
            .collect();
        select_in(&message(&sigs), |s| {
            assert_eq!((s.seen, s.candidates.len()), (1000, 0));
            assert_eq!(
                s.reasons.best().as_deref(),
                Some("signature has an l= body length tag: l= is not accepted")
            );
        });
    }

    #[test]
    fn at_most_five_are_considered() {
        let sigs: Vec<String> = (0..1000)
            .map(|i| {
                let s = ["mailkey", "other"][i % 2];
                sig(&format!("d=sender.test; s={s}; t={i}"))
            })
            .collect();
        select_in(&message(&sigs), |s| {
            assert_eq!(s.seen, 500);
            assert_eq!(s.candidates.len(), MAX_CONSIDERED);
            assert_eq!(
                s.note().as_deref(),
                Some("500 mailkey signatures, only the first 5 were considered")
            );
        });
    }

    #[test]
    fn a_trailing_dot_in_d_is_the_domain_itself() {
        let msg = message(&[sig("d=Sender.Test.; s=mailkey")]);
        select_in(&msg, |s| {
            assert_eq!(domains(&s.candidates), vec!["sender.test"]);
            assert_eq!(s.note(), None);
        });
    }
}
