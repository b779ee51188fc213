//! The mailkey check (docs/protocol.md §4, §5.1): the message carries
//! a `DKIM-Signature` with `s=mailkey` and `d=D` that verifies with a key
//! published at TXT `mailkey.D`.
//!
//! mail-auth verifies the signatures. It fetches a signature's key through
//! the TXT cache before it would query DNS, so each verification pass gets a
//! one-entry cache that answers `mailkey._domainkey.D.` with one of the keys
//! found at `mailkey.D` — one pass per published key (rotation) — and "not
//! found" for every other name, so verification itself sends no query.
//!
//! Before that, the signatures are sorted out on the header block alone
//! (`select`): at most five mailkey signatures reach the verifier, and none
//! with `l=`, so no message can make verification expensive.

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
    dns::{Parameters, TxtRecord},
    AuthenticatedMessage, DkimResult, MessageAuthenticator,
};
pub(crate) use overlay::KeyOverlay;
use reasons::{describe, Reasons};

mod overlay;
mod reasons;
mod select;

pub const NAME: CheckName = CheckName::new("mailkey");

pub const CHECK: Check = Check {
    name: NAME,
    ar_method: "mailkey",
    enforced: |config| config.mailkey.enforce,
    start: |inputs| {
        Box::pin(async move {
            let config = &inputs.shared.config.mailkey;
            let sender = inputs.envelope.sender_domain();
            let Some(domain) = sender.name() else {
                return Stage::Done(no_domain(config));
            };
            let keys = lookup(&inputs.shared.dns, domain).await;
            // Decided without the message (no key, DNS failure): nothing of
            // the message is needed, whatever its size.
            match key_result(config, domain, &keys) {
                Some(decided) => Stage::Done(decided),
                None => Stage::NeedsMessage(Box::new(Verify { keys })),
            }
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
        _deadline: std::time::Instant,
    ) -> BoxFuture<'a, CheckResult> {
        Box::pin(async move {
            let (dns, config) = (&inputs.shared.dns, &inputs.shared.config.mailkey);
            let sender = inputs.envelope.sender_domain();
            check(dns, config, &sender, self.keys, message, now).await
        })
    }

    /// Too big to verify: a domain that is testing is still never rejected.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        let testing = matches!(self.keys, KeyLookup::Published { testing: true, .. });
        let result = super::too_big(check, size, limit);
        if testing {
            CheckResult {
                effect: Effect::Accept,
                ..result
            }
        } else {
            result
        }
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
        return no_domain(config);
    };
    if let Some(decided) = key_result(config, domain, &keys) {
        return decided;
    }
    let testing = matches!(keys, KeyLookup::Published { testing: true, .. });

    let outcome = verify(dns, config.alignment, domain, keys, message, now).await;
    match outcome {
        Ok(pass) => result(Status::Pass, Effect::Accept)
            .prop("header.d", pass.d)
            .prop("header.s", SELECTOR)
            .prop("header.a", pass.a)
            .prop("header.b", pass.b),
        Err(Failure::Temp(why)) => {
            result(Status::TempError, Effect::Tempfail(Code::DNS_TEMPFAIL)).reason(why)
        }
        Err(Failure::Internal(why)) => {
            result(Status::TempError, Effect::Tempfail(Code::INTERNAL)).reason(why)
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

/// Without a domain there can be no key; treated like a domain without one
/// (the MX check is the one that refuses IP literals).
fn no_domain(config: &MailkeyConfig) -> CheckResult {
    CheckResult::new(NAME, Status::PermError, no_key_effect(config))
        .failure(Fix::IpLiteral)
        .reason("sender has no domain")
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
    /// A bug (a panic in the verifier): tempfail like any internal error.
    Internal(String),
}

async fn verify(
    dns: &Dns,
    alignment: Alignment,
    domain: &str,
    keys: KeyLookup,
    message: &[u8],
    now: u64,
) -> Result<Pass, Failure> {
    let Some(selection) = select::select(message, domain, alignment, now) else {
        return Err(Failure::Fail(
            "message has no header".into(),
            Fix::NoSignature,
        ));
    };
    let note = selection.note();
    let with_note = |why: String| match &note {
        Some(note) => format!("{why}; {note}"),
        None => why,
    };
    let mut reasons = selection.reasons;
    if selection.domains.is_empty() {
        let (why, fix) = reasons.fail();
        return Err(Failure::Fail(with_note(why), fix));
    }
    // The keys of every signing domain, looked up first: what follows is
    // pure computation.
    let mut keyring = Vec::with_capacity(selection.domains.len());
    let mut own = Some(keys);
    for d in selection.domains {
        let keys = match own.take() {
            Some(keys) if d == domain => keys,
            other => {
                own = other;
                lookup(dns, &d).await
            }
        };
        match keys {
            KeyLookup::Published { keys, .. } => keyring.push((d, keys)),
            KeyLookup::TempError(e) => {
                return Err(Failure::Temp(format!(
                    "DNS lookup of {} failed: {e}",
                    owner_name(&d)
                )));
            }
            KeyLookup::NoKey => reasons.add(7, format!("{d} publishes no mailkey")),
        }
    }
    // Hashing and signature checks are CPU work: off the async workers.
    let authenticator = dns.authenticator.clone();
    let copy = selection.message;
    let handle = tokio::runtime::Handle::current();
    let verified = tokio::task::spawn_blocking(move || {
        handle.block_on(verify_copy(&authenticator, &keyring, &copy, reasons))
    })
    .await;
    match verified {
        Ok(Ok(pass)) => Ok(pass),
        Ok(Err(reasons)) => {
            let (why, fix) = reasons.fail();
            Err(Failure::Fail(with_note(why), fix))
        }
        Err(e) => Err(Failure::Internal(format!(
            "internal error: verification failed: {e}"
        ))),
    }
}

/// Verifies the selected signatures of `copy` with each published key of
/// their domain. Every key comes from `keyring`: no DNS query is made.
async fn verify_copy(
    authenticator: &MessageAuthenticator,
    keyring: &[(String, Vec<MailkeyRecord>)],
    copy: &[u8],
    mut reasons: Reasons,
) -> Result<Pass, Reasons> {
    // Strict: the selection kept no `l=` signature, and none may sneak in.
    let Some(mut msg) = AuthenticatedMessage::parse_with_opts(copy, None, true) else {
        reasons.add(6, "message has no header".into());
        return Err(reasons);
    };
    // Other signatures stayed for the sake of `h=`; they are not verified.
    msg.retain_dkim_signatures(|sig| {
        let selected = keyring.iter().any(|(d, _)| sig.d.eq_ignore_ascii_case(d));
        if sig.s.eq_ignore_ascii_case(SELECTOR) && selected {
            Ok(())
        } else {
            Err(DkimError::UnsupportedAlgorithm)
        }
    });
    for (d, records) in keyring {
        for record in records {
            let overlay = KeyOverlay::one(
                fqdn(&dkim_name(d)).into_boxed_str(),
                TxtRecord::DomainKey(record.key.clone()),
            );
            let params = Parameters::new(&msg).with_cache(&overlay);
            for output in authenticator.verify_dkim(params).await {
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
    Err(reasons)
}

/// The protocol's rules on top of DKIM's.
fn allowed(sig: &Signature, now: u64) -> Result<(), String> {
    if sig.a == Algorithm::RsaSha1 {
        return Err("rsa-sha1 signatures are not accepted".into());
    }
    if sig.l != 0 {
        return Err("signature has an l= body length tag: l= is not accepted".into());
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
