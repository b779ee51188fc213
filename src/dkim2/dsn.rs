//! Bounces in the DKIM2 ecosystem (draft §16; docs/decisions.md, "DKIM2:
//! bounces"):
//!
//! - [`about`]: is an arriving DSN about a message whose newest DKIM2
//!   signature is ours (we sent or forwarded it)?
//! - [`verify`]: mail-auth's `verify_dkim2_dsn` — the DSN is DKIM2-signed
//!   by a domain the message was sent to, for this transaction, and the
//!   returned message is ours, unaltered. A DSN that fails is backscatter
//!   from forged mail: logged, and refused with `[dkim2]
//!   refuse_unverified_dsn`.
//! - [`propagate`]: a forwarder passes a verified DSN back to the hop before
//!   it (§16.3), with the returned message as it arrived here (our hop's
//!   signature and changes undone), so that the previous hop can verify it
//!   in turn. Its recipient is the SRS sender we forwarded with, which the
//!   SRS step turns back into the previous hop's address.

use super::{
    keys::KeyRing,
    outcome::{Hop, Kind, Outcome},
    MAX_KEYS,
};
use crate::{ar_syntax::Status, dns::Dns};
use mail_auth::{
    dkim2::{BodyRecipe, ChainBinding, Dkim2Dsn, Dkim2DsnFailure, Envelope},
    dns::Parameters,
    AuthenticatedMessage,
};
use mail_parser::MessageParser;
use std::ops::Range;

/// The returned message of a DSN: its bytes, and whether it has its body.
struct Returned {
    range: Range<usize>,
    full: bool,
}

/// Finds the returned message (`message/rfc822`, or `text/rfc822-headers`)
/// of a `multipart/report` DSN; the last such part, as mail-auth reads it.
fn returned(message: &[u8]) -> Option<Returned> {
    let parsed = MessageParser::new().parse(message)?;
    let root = parsed.root_part();
    if !root.is_multipart() || !root.is_content_type("multipart", "report") {
        return None;
    }
    let mut found = None;
    for part in root.children() {
        let range = part.offset_body() as usize..part.offset_end() as usize;
        if part.is_content_type("message", "rfc822") {
            found = Some(Returned { range, full: true });
        } else if part.is_content_type("text", "rfc822-headers") {
            found = Some(Returned { range, full: false });
        }
    }
    found.filter(|r| r.range.start < r.range.end && r.range.end <= message.len())
}

/// The newest signature of the message a DSN returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About {
    pub i: u32,
    pub d: String,
    /// `mf=` of the hop before it (angle brackets included): where a DSN
    /// about our hop goes back to.
    pub previous_mf: Option<String>,
}

/// For a message from the null sender: the newest DKIM2 signature of the
/// message it returns, when one of its signatures is by one of our domains
/// (`ours`): we sent or forwarded it, so the DSN must verify (and be made
/// by a recipient of our newest hop). Only a `multipart/report` is parsed
/// further than its header.
pub fn about(message: &[u8], ours: impl Fn(&str) -> bool) -> Option<About> {
    let head_end = super::header_fields(message)
        .last()
        .map_or(0, |(_, r)| r.end);
    let head = message.get(..head_end)?;
    let report = super::header_fields(head).any(|(name, range)| {
        name.trim_ascii().eq_ignore_ascii_case(b"content-type")
            && head[range]
                .to_ascii_lowercase()
                .windows(16)
                .any(|w| w == b"multipart/report")
    });
    if !report {
        return None;
    }
    let part = returned(message)?;
    let inner = &message[part.range];
    let inner_end = super::header_fields(inner).last().map_or(0, |(_, r)| r.end);
    let parsed = AuthenticatedMessage::parse(&inner[..inner_end])?;
    let signatures = parsed.dkim2_signatures();
    if !signatures.iter().any(|h| ours(&h.header.d)) {
        return None;
    }
    let newest = signatures.iter().max_by_key(|h| h.header.i)?;
    let previous_mf = signatures
        .iter()
        .find(|h| h.header.i + 1 == newest.header.i)
        .and_then(|h| match &h.header.chain {
            ChainBinding::Envelope { mail_from, .. } => Some(mail_from.clone()),
            ChainBinding::NextDomain(_) => None,
        });
    Some(About {
        i: newest.header.i,
        d: newest.header.d.to_ascii_lowercase(),
        previous_mf,
    })
}

/// Verifies a DSN that arrived for `rcpt_to` (the null sender is implied).
pub async fn verify(dns: &Dns, rcpt_to: &[String], message: &[u8], now: u64) -> Outcome {
    let refuse = |why: String| Outcome::refused(Status::Fail, Kind::Dsn, why, Vec::new());
    let Some(part) = returned(message) else {
        return refuse("DSN not verified: no returned message".into());
    };
    // Both chains within the bounds of any chain.
    for chain in [message, &message[part.range.clone()]] {
        if let Err(why) = super::verify::within_bounds(chain) {
            return refuse(format!("DSN not verified: {why}"));
        }
    }
    // The keys of both chains, from their header blocks.
    let (own, mut keys) = chain_of(message);
    let (_, returned_keys) = chain_of(&message[part.range.clone()]);
    for key in returned_keys {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.len() > MAX_KEYS {
        return refuse(format!(
            "DSN not verified: its chains name {} keys: at most {MAX_KEYS} are looked up",
            keys.len()
        ));
    }
    let ring = KeyRing::fetch(dns, &keys).await;
    let authenticator = dns.verifier().clone();
    let (copy, rcpt_to) = (message.to_vec(), rcpt_to.to_vec());
    let handle = tokio::runtime::Handle::current();
    let verified = tokio::task::spawn_blocking(move || {
        let Ok(dsn) = Dkim2Dsn::parse(&copy) else {
            return Err(Dkim2DsnFailure::DsnUnparseable);
        };
        let rcpt: Vec<String> = rcpt_to
            .iter()
            .map(|r| format!("<{}>", super::bare(r)))
            .collect();
        let params = Parameters::new(&dsn).with_cache(ring.cache());
        handle
            .block_on(authenticator.verify_dkim2_dsn_at(params, Envelope::new("<>", &rcpt), now))
            .map(|_| ())
    })
    .await;
    match verified {
        Ok(Ok(())) => Outcome::from_result(&mail_auth::Dkim2Result::Pass, own, 0, &[]),
        Ok(Err(Dkim2DsnFailure::TempError)) => Outcome::refused(
            Status::TempError,
            Kind::Dsn,
            format!("DSN not verified: {}", Dkim2DsnFailure::TempError),
            own,
        ),
        Ok(Err(failure)) => Outcome::refused(
            Status::Fail,
            Kind::Dsn,
            format!("DSN not verified: {failure}"),
            own,
        ),
        Err(e) => Outcome::refused(
            Status::TempError,
            Kind::Broken,
            format!("internal error: DSN verification failed: {e}"),
            own,
        ),
    }
}

/// The hops and keys of the DKIM2 signatures in the header of `message`.
fn chain_of(message: &[u8]) -> (Vec<Hop>, Vec<(String, String)>) {
    let end = super::header_fields(message)
        .last()
        .map_or(0, |(_, r)| r.end);
    match AuthenticatedMessage::parse(&message[..end]) {
        Some(head) => super::verify::hops_and_keys(&head),
        None => (Vec::new(), Vec::new()),
    }
}

/// Why a DSN cannot be passed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PropagateError {
    #[error("the DSN has no returned message")]
    NoReturned,
    #[error("the returned message does not parse")]
    Unparseable,
    #[error("the returned message was signed first by us: nothing to pass back")]
    Originated,
    #[error("our change to the body cannot be undone (null recipe)")]
    Unreconstructable,
}

/// The DSN `message` rebuilt for the hop before ours: the returned part is
/// the message as it arrived here — the chain without our signature and
/// the instances it added, the header and body recipes undone; the other
/// parts, the boundaries and the header stay as they are (the caller
/// replaces `From` and removes the DSN's own DKIM2 fields: the rebuilt DSN
/// is signed anew, as a new message, by our second pass).
pub(crate) fn propagate(message: &[u8]) -> Result<Vec<u8>, PropagateError> {
    let part = returned(message).ok_or(PropagateError::NoReturned)?;
    let inner = &message[part.range.clone()];
    let parsed = AuthenticatedMessage::parse(inner).ok_or(PropagateError::Unparseable)?;
    let signatures = parsed.dkim2_signatures();
    let Some(ours) = signatures.iter().max_by_key(|h| h.header.i) else {
        return Err(PropagateError::Unparseable);
    };
    if ours.header.i < 2 {
        return Err(PropagateError::Originated);
    }
    let mut arrived = parsed.dkim2_arrival_headers(1);
    if part.full {
        // The instances our hop added, newest first, undo our changes.
        let before = signatures
            .iter()
            .filter(|h| h.header.i < ours.header.i)
            .map(|h| h.header.m)
            .max()
            .unwrap_or(0);
        let mut body = parsed.raw_body().to_vec();
        for instance in parsed.dkim2_instances().iter().rev() {
            if instance.header.m <= before {
                break;
            }
            let Some(recipe) = &instance.header.recipe else {
                continue;
            };
            if recipe.body == BodyRecipe::Unreconstructable {
                return Err(PropagateError::Unreconstructable);
            }
            // apply() writes the (empty) header block's blank line first.
            let previous = recipe
                .apply(&[], &body)
                .map_err(|_| PropagateError::Unreconstructable)?;
            body = previous.get(2..).unwrap_or_default().to_vec();
        }
        arrived.extend_from_slice(&body);
    }
    let mut out = Vec::with_capacity(message.len());
    out.extend_from_slice(&message[..part.range.start]);
    out.extend_from_slice(&arrived);
    out.extend_from_slice(&message[part.range.end..]);
    Ok(out)
}
