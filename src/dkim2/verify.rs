//! Verifying a DKIM2 chain on arrival (draft §13, §14): a pure function of
//! the message, this transaction's envelope (MAIL FROM and every RCPT TO),
//! the DNS and the clock.
//!
//! 1. A scan of the header field names: mail without DKIM2 fields is
//!    `none` at no further cost. The chain's bounds are checked here, on
//!    the header block alone ([`super::MAX_SIGNATURES`],
//!    [`super::MAX_HEADER_BYTES`], [`super::MAX_KEYS`]).
//! 2. The message is parsed with `DKIM-Signature` and `ARC-*` fields left
//!    unparsed (mail-auth's `parse_dkim2`, vendor/mail-auth/PATCHED.md item
//!    7): DKIM2 ignores them (draft §4.2), and parsing them would hash the
//!    body once more for each DKIM1 canonicalisation a sender chooses.
//! 3. Every key the chain names is fetched through our DNS cache
//!    ([`super::keys`]); then mail-auth verifies the whole chain off the
//!    async workers, against our clock, on the message as the milter holds
//!    it: a small one is copied into a task of the blocking pool, a larger
//!    one (a spool file's map) verified in place, never copied (#21 item 8;
//!    docs/decisions.md, "Resource bounds").

use super::{
    header_fields, is_dkim2_name,
    keys::KeyRing,
    outcome::{Hop, Kind, Outcome},
    MAX_HEADER_BYTES, MAX_KEYS, MAX_SIGNATURES,
};
use crate::{
    ar_syntax::Status,
    cpu::{self, Stopped},
    dns::Dns,
};
use mail_auth::{dkim2::Envelope, dns::Parameters, AuthenticatedMessage, MessageAuthenticator};
use std::time::Instant;

/// The envelope the message arrived with: MAIL FROM as given (without
/// angle brackets; empty for the null sender) and every RCPT TO.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
}

/// Verifies the DKIM2 chain of `message` as it arrived with `arrival`.
/// `now`: seconds since the epoch (signatures older than 14 days fail).
pub async fn verify(dns: &Dns, arrival: Arrival<'_>, message: &[u8], now: u64) -> Outcome {
    verify_within(dns, arrival, message, now, None)
        .await
        .unwrap_or_else(|Stopped| Outcome::stopped())
}

/// [`verify`] within the end-of-message `deadline`: past it no
/// verification starts (the key lookups are given up, and the CPU work,
/// bounded by the chain's caps, is not begun).
pub async fn verify_until(
    dns: &Dns,
    arrival: Arrival<'_>,
    message: &[u8],
    now: u64,
    deadline: Instant,
) -> Result<Outcome, Stopped> {
    verify_within(dns, arrival, message, now, Some(deadline)).await
}

async fn verify_within(
    dns: &Dns,
    arrival: Arrival<'_>,
    message: &[u8],
    now: u64,
    deadline: Option<Instant>,
) -> Result<Outcome, Stopped> {
    let Some(prepared) = prepare(message) else {
        return Ok(Outcome::none());
    };
    let Prepared { chain, keys } = match prepared {
        Ok(p) => p,
        Err(refused) => return Ok(refused),
    };
    let fetch = KeyRing::fetch(dns, &keys);
    let ring = match deadline {
        Some(at) => tokio::time::timeout_at(at.into(), fetch)
            .await
            .map_err(|_| Stopped)?,
        None => fetch.await,
    };
    if deadline.is_some_and(|at| Instant::now() >= at) {
        return Err(Stopped);
    }
    let authenticator = dns.verifier().clone();
    let mail_from = path(arrival.mail_from);
    let rcpt_to: Vec<String> = arrival.rcpt_to.iter().map(|r| path(r)).collect();
    // Hashing, recipes and signatures are CPU work: off the async workers.
    let work = cpu::on_message(message, move |m| {
        Box::pin(async move {
            let (mail_from, rcpt_to) = (mail_from.as_str(), rcpt_to.as_slice());
            run(&authenticator, &ring, m, chain, mail_from, rcpt_to, now).await
        })
    });
    Ok(work.await.unwrap_or_else(|e| {
        Outcome::refused(
            Status::TempError,
            Kind::Broken,
            format!("internal error: DKIM2 verification failed: {e}"),
            Vec::new(),
        )
    }))
}

/// The chain's hops and the keys they name.
struct Prepared {
    chain: Vec<Hop>,
    keys: Vec<(String, String)>,
}

/// `None` without DKIM2 fields; `Some(Err(outcome))` when a bound refuses
/// the chain before any key is fetched.
fn prepare(message: &[u8]) -> Option<Result<Prepared, Outcome>> {
    if !header_fields(message).any(|(name, _)| is_dkim2_name(name)) {
        return None;
    }
    if let Err(why) = within_bounds(message) {
        return Some(Err(Outcome::refused(
            Status::PermError,
            Kind::Broken,
            why,
            Vec::new(),
        )));
    }
    // The hops and keys from the header block alone.
    let head_end = header_fields(message).last().map_or(0, |(_, r)| r.end);
    let (chain, keys) = match AuthenticatedMessage::parse_dkim2(&message[..head_end]) {
        Some(head) => hops_and_keys(&head),
        None => (Vec::new(), Vec::new()),
    };
    if keys.len() > MAX_KEYS {
        let n = keys.len();
        return Some(Err(Outcome::refused(
            Status::PermError,
            Kind::Broken,
            format!("the DKIM2 chain names {n} keys: at most {MAX_KEYS} are looked up"),
            chain,
        )));
    }
    Some(Ok(Prepared { chain, keys }))
}

/// The chain bounds, on the header block of `message`: at most
/// [`MAX_SIGNATURES`] signatures and as many instances, at most
/// [`MAX_HEADER_BYTES`] of DKIM2 fields.
pub(super) fn within_bounds(message: &[u8]) -> Result<(), String> {
    let (mut signatures, mut instances, mut bytes) = (0, 0, 0);
    for (name, range) in header_fields(message).filter(|(n, _)| is_dkim2_name(n)) {
        bytes += range.len();
        if name.trim_ascii().eq_ignore_ascii_case(b"dkim2-signature") {
            signatures += 1;
        } else {
            instances += 1;
        }
    }
    if signatures > MAX_SIGNATURES {
        Err(format!(
            "{signatures} DKIM2-Signature fields: at most {MAX_SIGNATURES} are verified"
        ))
    } else if instances > MAX_SIGNATURES {
        Err(format!(
            "{instances} Message-Instance fields: at most {MAX_SIGNATURES} are verified"
        ))
    } else if bytes > MAX_HEADER_BYTES {
        Err(format!(
            "DKIM2 header fields of {bytes} bytes: at most {MAX_HEADER_BYTES} are verified"
        ))
    } else {
        Ok(())
    }
}

/// The hops of the parsed signatures (by `i=`) and the distinct keys
/// (selector, `d=`) they name.
pub(super) fn hops_and_keys(
    message: &AuthenticatedMessage<'_>,
) -> (Vec<Hop>, Vec<(String, String)>) {
    let mut chain = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for header in message.dkim2_signatures() {
        let sig = &header.header;
        chain.push(Hop {
            i: sig.i,
            d: sig.d.to_ascii_lowercase(),
            selector: sig
                .s
                .first()
                .map(|v| v.selector.clone())
                .unwrap_or_default(),
        });
        for value in &sig.s {
            let key = (
                value.selector.to_ascii_lowercase(),
                sig.d.to_ascii_lowercase(),
            );
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    (chain, keys)
}

/// mail-auth's verification of `message`, every key from `ring`.
async fn run(
    authenticator: &MessageAuthenticator,
    ring: &KeyRing,
    message: &[u8],
    chain: Vec<Hop>,
    mail_from: &str,
    rcpt_to: &[String],
    now: u64,
) -> Outcome {
    let Some(message) = AuthenticatedMessage::parse_dkim2(message) else {
        return Outcome::refused(
            Status::PermError,
            Kind::Broken,
            "message has no header".into(),
            chain,
        );
    };
    let highest_m = message
        .dkim2_instances()
        .iter()
        .map(|h| h.header.m)
        .max()
        .unwrap_or(0);
    let m_to_i: Vec<(u32, u32)> = message
        .dkim2_signatures()
        .iter()
        .map(|h| (h.header.m, h.header.i))
        .collect();
    let params = Parameters::new(&message).with_cache(ring.cache());
    let envelope = Envelope::new(mail_from, rcpt_to);
    let output = authenticator.verify_dkim2_at(params, envelope, now).await;
    let mut outcome = Outcome::from_result(output.result(), chain, highest_m, &m_to_i);
    outcome.testing = outcome
        .newest()
        .is_some_and(|hop| ring.testing(&hop.selector, &hop.d));
    outcome
}

/// An address as the draft records it: an RFC 5321 path in angle
/// brackets (`<>` for the null sender).
fn path(address: &str) -> String {
    format!("<{}>", super::bare(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(i: u32) -> String {
        format!(
            "DKIM2-Signature: i={i}; m=1; t=1; d=a.test; mf=PD4=; rt=PGJAYi50ZXN0Pg==; \
             s=s{i}:ed25519-sha256:AAAA\r\n"
        )
    }

    #[test]
    fn no_verification_starts_past_the_deadline() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dns = runtime
            .block_on(async { Dns::new(&crate::config::DnsConfig::default()) })
            .expect("dns");
        dns.preload_txt(
            "s1._domainkey.a.test",
            crate::dns::TxtAnswer::Records(vec![b"v=DKIM1; k=ed25519; p=AAAA".to_vec()]),
        );
        let m = format!("{}From: a@a.test\r\n\r\nhi\r\n", sig(1));
        let rcpt = ["<b@b.test>".to_string()];
        let arrival = Arrival {
            mail_from: "a@a.test",
            rcpt_to: &rcpt,
        };
        let past = Instant::now();
        let stopped = runtime.block_on(verify_until(&dns, arrival, m.as_bytes(), 1, past));
        assert!(matches!(stopped, Err(Stopped)));
        // Without the deadline the same chain is verified (and fails).
        let outcome = runtime.block_on(verify(&dns, arrival, m.as_bytes(), 1));
        assert_ne!(outcome.status, Status::TempError, "{:?}", outcome.failure);
    }

    #[test]
    fn mail_without_dkim2_is_none_at_no_cost() {
        assert!(prepare(b"From: a@a.test\r\n\r\nDKIM2-Signature: body\r\n").is_none());
    }

    #[test]
    fn long_chains_are_refused_before_any_key_is_fetched() {
        let sigs: String = (1..=9).map(sig).collect();
        let m = format!("{sigs}From: a@a.test\r\n\r\nhi\r\n");
        let Some(Err(refused)) = prepare(m.as_bytes()) else {
            panic!("not refused");
        };
        assert_eq!(refused.status, Status::PermError);
        assert_eq!(
            refused.failure.map(|(_, why)| why).as_deref(),
            Some("9 DKIM2-Signature fields: at most 8 are verified")
        );
    }

    #[test]
    fn many_instances_are_refused_too() {
        let instances: String = (1..=9)
            .map(|m| format!("Message-Instance: m={m}; h=sha256:AA==:AA==\r\n"))
            .collect();
        let m = format!("{}{instances}From: a@a.test\r\n\r\nhi\r\n", sig(1));
        let Some(Err(refused)) = prepare(m.as_bytes()) else {
            panic!("not refused");
        };
        assert_eq!(
            refused.failure.map(|(_, why)| why).as_deref(),
            Some("9 Message-Instance fields: at most 8 are verified")
        );
    }

    #[test]
    fn too_many_keys_or_bytes_are_refused_before_any_lookup() {
        // Three hops of six selectors each: 18 keys.
        let sigs: String = (1..=3)
            .map(|i| {
                let s: Vec<String> = (0..6)
                    .map(|k| format!("s{i}{k}:ed25519-sha256:AAAA"))
                    .collect();
                sig(i).replace(
                    &format!("s=s{i}:ed25519-sha256:AAAA"),
                    &format!("s={}", s.join("|")),
                )
            })
            .collect();
        let m = format!("{sigs}From: a@a.test\r\n\r\nhi\r\n");
        let Some(Err(refused)) = prepare(m.as_bytes()) else {
            panic!("not refused");
        };
        assert_eq!(
            refused.failure.map(|(_, why)| why).as_deref(),
            Some("the DKIM2 chain names 18 keys: at most 16 are looked up")
        );
        let recipe = "A".repeat(300 * 1024);
        let m = format!(
            "{}Message-Instance: m=1; h=sha256:AA==:AA==; r={recipe}\r\n\r\nhi\r\n",
            sig(1)
        );
        let Some(Err(refused)) = prepare(m.as_bytes()) else {
            panic!("not refused");
        };
        let why = refused.failure.map(|(_, why)| why).unwrap_or_default();
        assert!(why.ends_with("bytes: at most 262144 are verified"), "{why}");
    }

    #[test]
    fn dkim1_and_arc_fields_are_not_parsed() {
        let m = format!(
            "{}DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=x; c=simple/relaxed; bh=AA; \
             b=AA\r\nARC-Message-Signature: i=1; a=rsa-sha256; d=a.test; s=x; \
             c=relaxed/simple; h=from; bh=AA; b=AA\r\nFrom: a@a.test\r\n\r\nhi\r\n",
            sig(1)
        );
        let Some(Ok(p)) = prepare(m.as_bytes()) else {
            panic!("not prepared");
        };
        assert_eq!(p.keys, [("s1".to_string(), "a.test".to_string())]);
        // Neither is parsed (each would cost a pass over the body); both
        // stay header fields, which DKIM2's hashes leave out.
        let parsed = AuthenticatedMessage::parse_dkim2(m.as_bytes()).expect("parses");
        assert_eq!(parsed.dkim2_signatures().len(), 1);
        assert!(parsed.dkim_signatures().is_empty());
        assert!(!parsed.has_dkim_errors());
        assert_eq!(parsed.headers().len(), 4);
    }
}
