//! The verifier proper (docs/protocol.md §4.4), CPU work only: every key
//! was looked up before. Each selected signature is verified once, over
//! the message as received, only with the published keys of its
//! algorithm's type; the body is hashed at most once per distinct (body
//! canonicalisation, hash algorithm) among them, and the header hash input
//! of a signature is built once for all its keys. The deadline is checked
//! before each body hash, each signature and each key: past it, the work
//! stops (docs/decisions.md, item 7 of #21).

use super::{reasons::describe, select::Candidate, Reasons};
use crate::protocol::{owner_name, KeyType, MailkeyRecord};
use mail_auth::{
    crypto::{Algorithm, HashAlgorithm},
    dkim::{Canonicalization, Signature},
    AuthenticatedMessage,
};
use std::time::Instant;

/// The signature that verified.
pub struct Pass {
    pub d: String,
    pub a: &'static str,
    pub b: String,
}

pub enum Verified {
    Pass(Pass),
    /// None verified; the reasons say why.
    Fail(Reasons),
    /// The deadline passed before an answer.
    Stopped,
}

/// Verifies `candidates` (in order; the first that verifies wins) with
/// the usable keys of their domain in `keyring`. `reasons` holds what the
/// selection found so far.
pub fn verify(
    parsed: &AuthenticatedMessage<'_>,
    candidates: &[Candidate<'_>],
    keyring: &[(&str, &[MailkeyRecord])],
    mut reasons: Reasons,
    deadline: Instant,
) -> Verified {
    let past = || Instant::now() >= deadline;
    let mut body_hashes: Vec<(Canonicalization, HashAlgorithm, Vec<u8>)> = Vec::new();
    for candidate in candidates {
        let Some((_, records)) = keyring.iter().find(|(d, _)| *d == candidate.d) else {
            continue; // a domain without keys: said when it was looked up
        };
        let sig = &candidate.header.header;
        let keys: Vec<&MailkeyRecord> = records.iter().filter(|k| fits(k, sig.a)).collect();
        if keys.is_empty() {
            reasons.add(
                2,
                format!(
                    "no {} key is published at {} for the {} signature",
                    key_kind(sig.a),
                    owner_name(&candidate.d),
                    algorithm_name(sig.a)
                ),
            );
            continue;
        }
        if past() {
            return Verified::Stopped;
        }
        let (cb, ha) = (sig.cb, HashAlgorithm::from(sig.a));
        let index = match body_hashes
            .iter()
            .position(|(c, h, _)| *c == cb && *h == ha)
        {
            Some(i) => i,
            None => {
                let bh = parsed.body_hash(cb, ha, 0).into_owned();
                body_hashes.push((cb, ha, bh));
                body_hashes.len() - 1
            }
        };
        if body_hashes[index].2 != sig.bh {
            reasons.add(
                1,
                "body hash mismatch: the body was changed after signing".into(),
            );
            continue;
        }
        let data = parsed.dkim_header_data(candidate.header);
        for key in keys {
            if past() {
                return Verified::Stopped;
            }
            match key.key.verify_header_data(&data, sig) {
                Ok(()) => {
                    return Verified::Pass(Pass {
                        d: candidate.d.clone(),
                        a: algorithm_name(sig.a),
                        b: b_prefix(sig),
                    })
                }
                Err(e) => {
                    let (rank, why) = describe(&e);
                    reasons.add(rank, why);
                }
            }
        }
    }
    Verified::Fail(reasons)
}

/// The key type a signature algorithm needs (an Ed25519 key never
/// verifies an `rsa-sha256` signature, docs/protocol.md §4.3).
fn fits(key: &MailkeyRecord, a: Algorithm) -> bool {
    matches!(
        (key.key_type, a),
        (KeyType::Ed25519, Algorithm::Ed25519Sha256) | (KeyType::Rsa { .. }, Algorithm::RsaSha256)
    )
}

fn key_kind(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Ed25519Sha256 => "ed25519",
        _ => "rsa",
    }
}

pub(crate) fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
        Algorithm::RsaSha256 => "rsa-sha256",
        _ => "other",
    }
}

/// The first 12 base64 characters of `b=` identify the signature (RFC 6008).
fn b_prefix(sig: &Signature) -> String {
    let b64 = openssl::base64::encode_block(&sig.b);
    b64.chars().take(12).collect()
}
