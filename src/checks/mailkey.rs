//! The mailkey check (docs/protocol.md §4, §5.1): the message carries
//! a `DKIM-Signature` with `s=mailkey` and `d=D` that verifies with a key
//! published at TXT `mailkey.D`.
//!
//! mail-auth verifies the signatures. It fetches a signature's key through
//! the TXT cache before it would query DNS, so each verification pass gets a
//! one-entry cache that answers `mailkey._domainkey.D.` with one of the keys
//! found at `mailkey.D` — one pass per published key (rotation) — and "not
//! found" for every other name, so verification itself sends no query.

use super::{
    keyrecord::{dkim_name, owner_name, KeyLookup, MailkeyRecord, RecordError, SELECTOR},
    BoxFuture, Check, CheckName, CheckResult, Code, Effect, Failure as Fix, Inputs, MessageStep,
    Stage, Status,
};
use crate::{
    config::{Alignment, MailkeyConfig, NoKey},
    dns::{fqdn, Dns},
    envelope::SenderDomain,
};
use mail_auth::{
    crypto::Algorithm,
    dkim::{DkimError, Signature},
    dns::{DnsCache, NoCache, Parameters, ResolverCache, TxtRecord},
    hickory_resolver::proto::op::ResponseCode,
    AuthenticatedMessage, DkimResult, DnsError, Error,
};
use std::{borrow::Borrow, hash::Hash, time::Instant};

pub const NAME: CheckName = CheckName::new("mailkey");

pub const CHECK: Check = Check {
    name: NAME,
    ar_method: "mailkey",
    enforced: |config| config.mailkey.enforce,
    start: |inputs| {
        Box::pin(async move {
            let keys = match inputs.envelope.sender_domain().name() {
                Some(domain) => lookup(&inputs.shared.dns, domain).await,
                None => KeyLookup::NoKey,
            };
            Stage::NeedsMessage(Box::new(Verify { keys }))
        })
    },
};

/// The key lookup done; the signatures are verified at end of message.
struct Verify {
    keys: KeyLookup,
}

impl MessageStep for Verify {
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        now: u64,
    ) -> BoxFuture<'a, CheckResult> {
        Box::pin(async move {
            let (dns, config) = (&inputs.shared.dns, &inputs.shared.config.mailkey);
            let sender = inputs.envelope.sender_domain();
            check(dns, config, &sender, self.keys, message, now).await
        })
    }
}

/// Looks up the keys of `domain` (started as soon as MAIL FROM is known;
/// `check-domain` reports on the same lookup).
pub async fn lookup(dns: &Dns, domain: &str) -> KeyLookup {
    KeyLookup::from_answer(dns.txt(&owner_name(domain)).await)
}

/// Runs the check. `keys` is the lookup for `D` (from [`lookup`]); keys of
/// other signing domains (relaxed alignment) are looked up here. `now` is
/// seconds since the epoch, for `x=`.
pub async fn check(
    dns: &Dns,
    config: &MailkeyConfig,
    sender: &SenderDomain,
    keys: KeyLookup,
    message: &[u8],
    now: u64,
) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let Some(domain) = sender.name() else {
        // Without a domain there can be no key; treat it like a domain
        // without one (the MX check is the one that refuses IP literals).
        return result(Status::PermError, no_key_effect(config))
            .failure(Fix::IpLiteral)
            .reason("sender has no domain");
    };
    if let Some(decided) = key_result(config, domain, &keys) {
        return decided;
    }
    let testing = matches!(keys, KeyLookup::Published { testing: true, .. });

    let outcome = verify(dns, config.alignment, domain, &keys, message, now).await;
    match outcome {
        Ok(pass) => result(Status::Pass, Effect::Accept)
            .prop("header.d", pass.d)
            .prop("header.s", SELECTOR)
            .prop("header.a", pass.a)
            .prop("header.b", pass.b),
        Err(Failure::Temp(why)) => {
            result(Status::TempError, Effect::Tempfail(Code::DNS_TEMPFAIL)).reason(why)
        }
        Err(Failure::Fail(why, fix)) => {
            let why = if testing {
                format!("{why}; domain is testing: t=y")
            } else {
                why
            };
            result(Status::Fail, fail_effect(testing))
                .failure(fix)
                .reason(why)
                .prop("header.d", domain)
        }
    }
}

/// What the keys published for `domain` decide before any signature is
/// looked at: the result when the lookup failed or no usable key is
/// published, `None` when a usable key is there and the signature decides.
/// `check-domain` judges the published keys with this very function.
pub fn key_result(config: &MailkeyConfig, domain: &str, keys: &KeyLookup) -> Option<CheckResult> {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    match keys {
        KeyLookup::TempError(e) => Some(
            result(Status::TempError, Effect::Tempfail(Code::DNS_TEMPFAIL))
                .reason(format!("DNS lookup of {} failed: {e}", owner_name(domain))),
        ),
        KeyLookup::NoKey => Some(
            result(Status::None, no_key_effect(config))
                .failure(Fix::NoKey)
                .reason(format!("{domain} publishes no mailkey")),
        ),
        KeyLookup::Published {
            keys,
            errors,
            testing,
            ..
        } if keys.is_empty() => {
            let why = errors.first().map_or(String::new(), ToString::to_string);
            let status = if errors.iter().all(|e| *e == RecordError::Revoked) {
                Status::Fail
            } else {
                Status::PermError
            };
            Some(
                result(status, fail_effect(*testing))
                    .failure(Fix::BadKey)
                    .reason(format!("no usable key at {}: {why}", owner_name(domain)))
                    .prop("header.d", domain),
            )
        }
        KeyLookup::Published { .. } => None,
    }
}

/// A domain without a mailkey: `no_key` decides.
fn no_key_effect(config: &MailkeyConfig) -> Effect {
    match config.no_key {
        NoKey::Accept => Effect::Accept,
        NoKey::Reject => Effect::Reject(Code::MAILKEY_FAIL),
    }
}

/// A failing signature or key: rejected, but with `t=y` reported, never
/// rejected (`check-domain` marks a key file that matches no record so).
pub fn fail_effect(testing: bool) -> Effect {
    if testing {
        Effect::Accept
    } else {
        Effect::Reject(Code::MAILKEY_FAIL)
    }
}

struct Pass {
    d: String,
    a: &'static str,
    b: String,
}

enum Failure {
    Fail(String, Fix),
    Temp(String),
}

async fn verify(
    dns: &Dns,
    alignment: Alignment,
    domain: &str,
    keys: &KeyLookup,
    message: &[u8],
    now: u64,
) -> Result<Pass, Failure> {
    // Non-strict parsing keeps `l=` signatures, so that we can say why they
    // do not count instead of silently dropping them.
    let Some(mut msg) = AuthenticatedMessage::parse_with_opts(message, None, false) else {
        return Err(Failure::Fail(
            "message has no header".into(),
            Fix::NoSignature,
        ));
    };
    let mut reasons = Reasons::default();
    let mut aligned_domains: Vec<String> = Vec::new();
    for header in msg.dkim_signatures() {
        let sig = &header.header;
        if !sig.s.eq_ignore_ascii_case(SELECTOR) {
            if sig.d.eq_ignore_ascii_case(domain) {
                reasons.add(
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
            reasons.add(
                8,
                format!("mailkey signature is for d={}, not {domain}", sig.d),
            );
            continue;
        }
        if let Err(why) = allowed(sig, now) {
            reasons.add(5, why);
            continue;
        }
        let d = sig.d.to_ascii_lowercase();
        if !aligned_domains.contains(&d) {
            aligned_domains.push(d);
        }
    }
    if aligned_domains.is_empty() {
        return Err(reasons.fail());
    }
    msg.retain_dkim_signatures(|sig| {
        let ok = sig.s.eq_ignore_ascii_case(SELECTOR)
            && aligned(&sig.d, domain, alignment)
            && allowed(sig, now).is_ok();
        if ok {
            Ok(())
        } else {
            Err(DkimError::UnsupportedAlgorithm)
        }
    });

    for d in &aligned_domains {
        let other;
        let keys = if d == domain {
            keys
        } else {
            other = lookup(dns, d).await;
            &other
        };
        let records: &[MailkeyRecord] = match keys {
            KeyLookup::Published { keys, .. } => keys,
            KeyLookup::TempError(e) => {
                return Err(Failure::Temp(format!(
                    "DNS lookup of {} failed: {e}",
                    owner_name(d)
                )));
            }
            KeyLookup::NoKey => {
                reasons.add(7, format!("{d} publishes no mailkey"));
                continue;
            }
        };
        for record in records {
            let overlay = KeyOverlay {
                name: fqdn(&dkim_name(d)).into_boxed_str(),
                record: TxtRecord::DomainKey(record.key.clone()),
            };
            let params = Parameters::new(&msg).with_cache(&overlay);
            for output in dns.authenticator.verify_dkim(params).await {
                let Some(sig) = output.signature() else {
                    continue;
                };
                if !sig.d.eq_ignore_ascii_case(d) {
                    continue;
                }
                match output.result() {
                    DkimResult::Pass => {
                        return Ok(Pass {
                            d: d.clone(),
                            a: algorithm_name(sig.a),
                            b: b_prefix(sig),
                        })
                    }
                    other => {
                        let (rank, why) = describe(other);
                        reasons.add(rank, why);
                    }
                }
            }
        }
    }
    Err(reasons.fail())
}

/// The protocol's rules on top of DKIM's.
fn allowed(sig: &Signature, now: u64) -> Result<(), String> {
    if sig.a == Algorithm::RsaSha1 {
        return Err("rsa-sha1 signatures are not accepted".into());
    }
    if sig.l != 0 {
        return Err("signature has an l= body length tag, which is not accepted".into());
    }
    if !sig.h.iter().any(|h| h.eq_ignore_ascii_case("from")) {
        return Err("signature does not cover the From header".into());
    }
    if sig.x != 0 && sig.x <= now {
        return Err("signature expired (x=)".into());
    }
    Ok(())
}

/// `strict`: `d=` is `D`. `relaxed`: one is the other or a parent of it, and
/// the parent has at least two labels (a public suffix like `com` never
/// aligns; the few two-label public suffixes cannot publish keys anyway).
pub fn aligned(d: &str, domain: &str, alignment: Alignment) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if d == domain {
        return true;
    }
    if alignment == Alignment::Strict {
        return false;
    }
    let (short, long) = if d.len() < domain.len() {
        (&d, &domain)
    } else {
        (&domain, &d)
    };
    short.contains('.') && long.ends_with(&format!(".{short}"))
}

fn algorithm_name(a: Algorithm) -> &'static str {
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

/// A reason and how telling it is (lower is more specific).
fn describe(result: &DkimResult) -> (u8, String) {
    match result {
        DkimResult::Neutral(Error::Dkim(DkimError::BodyHashMismatch)) => (
            1,
            "body hash mismatch: the body was changed after signing".into(),
        ),
        DkimResult::Fail(Error::Crypto(_)) => (
            2,
            "bad signature: signed headers were changed or the key does not match".into(),
        ),
        DkimResult::Neutral(Error::Dkim(DkimError::SignatureExpired)) => {
            (3, "signature expired (x=)".into())
        }
        DkimResult::PermError(Error::Dkim(DkimError::PublicKeyRevoked)) => {
            (4, "key revoked".into())
        }
        DkimResult::Fail(Error::Dkim(DkimError::AuidMismatch)) => {
            (4, "i= is not in the signing domain".into())
        }
        other => (
            6,
            format!("signature does not verify: {}", result_error(other)),
        ),
    }
}

fn result_error(r: &DkimResult) -> String {
    match r {
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => e.to_string(),
        DkimResult::Pass | DkimResult::None => "no result".into(),
    }
}

/// The most specific failure reason seen.
#[derive(Default)]
struct Reasons(Option<(u8, String)>);

impl Reasons {
    fn add(&mut self, rank: u8, why: String) {
        if self.0.as_ref().is_none_or(|(r, _)| rank < *r) {
            self.0 = Some((rank, why));
        }
    }

    /// The failure with the most specific reason; its rank (from
    /// [`describe`] and [`verify`]) says what the sender must fix.
    fn fail(self) -> Failure {
        match self.0 {
            None => Failure::Fail("no mailkey signature".into(), Fix::NoSignature),
            Some((1, why)) => Failure::Fail(why, Fix::BodyChanged),
            Some((2..=4 | 6, why)) => Failure::Fail(why, Fix::BadSignature),
            Some((_, why)) => Failure::Fail(why, Fix::NoSignature),
        }
    }
}

/// A one-entry TXT cache answering the key name with one mailkey.
struct KeyOverlay {
    name: Box<str>,
    record: TxtRecord,
}

impl ResolverCache<Box<str>, TxtRecord> for KeyOverlay {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if <Box<str> as Borrow<Q>>::borrow(&self.name) == name {
            Some(self.record.clone())
        } else {
            // Key lookups elsewhere, ATPS and r= report records: none.
            Some(TxtRecord::Error(Error::Dns(DnsError::RecordNotFound(
                ResponseCode::NXDomain,
            ))))
        }
    }

    fn remove<Q>(&self, _: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: TxtRecord, _: Instant) {}
}

impl DnsCache for KeyOverlay {
    type Txt = KeyOverlay;
    type Mx = NoCache;
    type Ipv4 = NoCache;
    type Ipv6 = NoCache;
    type Ptr = NoCache;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(self)
    }
    fn mx(&self) -> Option<&NoCache> {
        None
    }
    fn ipv4(&self) -> Option<&NoCache> {
        None
    }
    fn ipv6(&self) -> Option<&NoCache> {
        None
    }
    fn ptr(&self) -> Option<&NoCache> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        use Alignment::*;
        assert!(aligned("Example.com", "example.com", Strict));
        assert!(!aligned("mail.example.com", "example.com", Strict));
        assert!(aligned("mail.example.com", "example.com", Relaxed));
        assert!(aligned("example.com", "bounces.example.com", Relaxed));
        assert!(!aligned("com", "example.com", Relaxed));
        assert!(!aligned("badexample.com", "example.com", Relaxed));
        assert!(!aligned("a.example.com", "b.example.com", Relaxed));
    }
}
