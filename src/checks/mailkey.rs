//! The mailkey check (docs/protocol.md §4, §5.1): the message carries
//! a `DKIM-Signature` with `s=mailkey` and `d=D` that verifies with a key
//! published at TXT `mailkey.D`.
//!
//! The keys are looked up at MAIL FROM (parsed once per TTL, `Dns::
//! key_records`). At end of message the message as received is parsed once
//! without body hashes, the signatures are sorted out on their header
//! fields alone (`select`, `rules`: at most five mailkey signatures, none
//! with `l=` or an oversized `h=`), and each selected signature is
//! verified once with the published keys of its type (`verify`), off the
//! async workers and within the end-of-message deadline. mail-auth does the
//! DKIM work (vendor/mail-auth/PATCHED.md); no DNS query is made while
//! verifying.

use super::{
    BoxFuture, Check, CheckName, CheckResult, Effect, Failure as Fix, Inputs, MessageStep, Stage,
    Status,
};
use crate::cpu;
use crate::reply::Code;
use crate::{
    config::{Alignment, MailkeyConfig, NoKey},
    dns::Dns,
    envelope::SenderDomain,
    protocol::{owner_name, KeyLookup, MailkeyRecord, RecordError, SELECTOR},
};
use mail_auth::AuthenticatedMessage;
use reasons::Reasons;
use std::{sync::Arc, time::Instant};
use verify::{Pass, Verified};

mod guidance;
mod reasons;
mod rules;
mod select;
mod verify;

pub(crate) use rules::MAX_SIGNED_FIELDS;

pub const NAME: CheckName = CheckName::new("mailkey");

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "mailkey",
    enforced: |config| config.mailkey.enforce,
    refuses_with: &[Code::MAILKEY_FAIL, Code::DNS_TEMPFAIL],
    logged_since: 1,
    final_at_rcpt: |config| !config.dkim2.verify,
    arc_vouch: Some(arc_vouch),
    guidance: Some(&guidance::GUIDANCE),
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

/// A trusted ARC sealer vouches for mailkey with `mailkey=pass`, or
/// `dkim=pass` with `header.s=mailkey` (a verifier that is not
/// mailkey-milter), whose `header.d` is the sender domain (docs/decisions.md,
/// "Forwarding: trusted ARC sealers").
fn arc_vouch(recorded: &crate::ar_syntax::ResInfo, in_domain: &dyn Fn(&str) -> bool) -> bool {
    let d_matches = recorded.prop("header.d").is_some_and(in_domain);
    match recorded.method.as_str() {
        "mailkey" => d_matches,
        "dkim" => d_matches && recorded.prop("header.s") == Some(crate::protocol::SELECTOR),
        _ => false,
    }
}

/// The key lookup done; the signatures are verified at end of message.
struct Verify {
    keys: Arc<KeyLookup>,
}

impl MessageStep for Verify {
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        now: u64,
        deadline: Instant,
    ) -> BoxFuture<'a, CheckResult> {
        Box::pin(async move {
            let config = &inputs.shared.config;
            let sender = inputs.envelope.sender_domain();
            let dns = &inputs.shared.dns;
            check(
                dns,
                &config.mailkey,
                &sender,
                self.keys,
                message,
                now,
                deadline,
            )
            .await
            .unwrap_or_else(|Stopped| CheckResult::stopped(NAME, &config.limits, config.on_error))
        })
    }

    /// Too big to verify: a domain that is testing is still never rejected.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        let testing = matches!(*self.keys, KeyLookup::Published { testing: true, .. });
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
/// `check-domain` reports on the same lookup), parsed once per TTL.
pub async fn lookup(dns: &Dns, domain: &str) -> Arc<KeyLookup> {
    dns.key_records(&owner_name(domain)).await
}

pub use crate::cpu::Stopped;

impl Stopped {
    /// The result for a caller without an end-of-message deadline of its
    /// own to report (`check-domain`, tools): an internal `temperror`.
    pub fn into_result(self) -> CheckResult {
        CheckResult::new(NAME, Status::TempError, Effect::Tempfail(Code::INTERNAL))
            .reason("verification stopped at its deadline")
    }
}

/// Runs the check. `keys` is the lookup for `D` (from [`lookup`]); keys of
/// other signing domains (relaxed alignment) are looked up here. `now` is
/// seconds since the epoch, for `x=`; past `deadline` the verification
/// stops between two pieces of work (a body hash, a signature, a key).
pub async fn check(
    dns: &Dns,
    config: &MailkeyConfig,
    sender: &SenderDomain,
    keys: Arc<KeyLookup>,
    message: &[u8],
    now: u64,
    deadline: Instant,
) -> Result<CheckResult, Stopped> {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let Some(domain) = sender.name() else {
        return Ok(no_domain(config));
    };
    if let Some(decided) = key_result(config, domain, &keys) {
        return Ok(decided);
    }
    let testing = matches!(*keys, KeyLookup::Published { testing: true, .. });

    let outcome = verify(dns, config.alignment, domain, keys, message, now, deadline).await;
    Ok(match outcome {
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
        Err(Failure::Stopped) => return Err(Stopped),
    })
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
pub(crate) fn key_result(
    config: &MailkeyConfig,
    domain: &str,
    keys: &KeyLookup,
) -> Option<CheckResult> {
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
pub(crate) fn fail_effect(testing: bool) -> Effect {
    if testing {
        Effect::Accept
    } else {
        Effect::Reject(Code::MAILKEY_FAIL)
    }
}

enum Failure {
    Fail(String, Fix),
    Temp(String),
    /// A bug (a panic in the verifier): tempfail like any internal error.
    Internal(String),
    /// The end-of-message deadline passed while verifying.
    Stopped,
}

async fn verify(
    dns: &Dns,
    alignment: Alignment,
    domain: &str,
    keys: Arc<KeyLookup>,
    message: &[u8],
    now: u64,
    deadline: Instant,
) -> Result<Pass, Failure> {
    // Usually every counted signature is `D`'s, whose keys are at hand:
    // one piece of CPU work, off the async workers.
    let mut known = vec![(domain.trim_end_matches('.').to_ascii_lowercase(), keys)];
    let work = |known: Vec<(String, Arc<KeyLookup>)>| async move {
        let d = domain.to_string();
        let task = cpu::on_message(message, move |m| {
            Box::pin(async move { verify_with(m, &d, alignment, now, deadline, &known) })
        });
        task.await.unwrap_or_else(|e| {
            let why = format!("internal error: verification failed: {e}");
            Attempt::Done(Err(Failure::Internal(why)))
        })
    };
    let missing = match work(known.clone()).await {
        Attempt::Done(result) => return result,
        Attempt::NeedKeys(missing) => missing,
    };
    // Relaxed alignment with other domains: their keys first, then the
    // same work again (parsing the header block a second time).
    for d in missing {
        let keys = lookup(dns, &d).await;
        if let KeyLookup::TempError(e) = &*keys {
            return Err(Failure::Temp(format!(
                "DNS lookup of {} failed: {e}",
                owner_name(&d)
            )));
        }
        known.push((d, keys));
    }
    match work(known).await {
        Attempt::Done(result) => result,
        Attempt::NeedKeys(_) => Err(Failure::Temp("keys changed while verifying".into())),
    }
}

/// What one pass over the message came to.
enum Attempt {
    Done(Result<Pass, Failure>),
    /// The keys of these signing domains are needed first.
    NeedKeys(Vec<String>),
}

/// Parses `message` once (no body hashes), sorts its signatures out and
/// verifies the counted ones with the keys in `known`, unless a signing
/// domain's keys are not there yet. CPU work only.
fn verify_with(
    message: &[u8],
    domain: &str,
    alignment: Alignment,
    now: u64,
    deadline: Instant,
    known: &[(String, Arc<KeyLookup>)],
) -> Attempt {
    let fail = |why: String, fix| Attempt::Done(Err(Failure::Fail(why, fix)));
    let Some(parsed) = AuthenticatedMessage::parse_without_body_hashes(message, false) else {
        return fail("message has no header".into(), Fix::NoSignature);
    };
    let selection = select::select(&parsed, domain, alignment, now);
    let note = selection.note();
    let with_note = |why: String| match &note {
        Some(note) => format!("{why}; {note}"),
        None => why,
    };
    let domains = select::domains(&selection.candidates);
    let missing: Vec<String> = domains
        .iter()
        .filter(|d| !known.iter().any(|(k, _)| k == *d))
        .map(|d| d.to_string())
        .collect();
    if !missing.is_empty() {
        return Attempt::NeedKeys(missing);
    }
    let mut reasons = selection.reasons;
    if domains.is_empty() {
        let (why, fix) = reasons.fail();
        return fail(with_note(why), fix);
    }
    let mut keyring: Vec<(&str, &[MailkeyRecord])> = Vec::with_capacity(domains.len());
    for d in domains {
        let keys = known.iter().find(|(k, _)| k == d).map(|(_, keys)| &**keys);
        match keys {
            Some(keys @ KeyLookup::Published { .. }) => keyring.push((d, usable(keys))),
            _ => reasons.add(7, format!("{d} publishes no mailkey")),
        }
    }
    match verify::verify(&parsed, &selection.candidates, &keyring, reasons, deadline) {
        Verified::Pass(pass) => Attempt::Done(Ok(pass)),
        Verified::Fail(reasons) => {
            let (why, fix) = reasons.fail();
            fail(with_note(why), fix)
        }
        Verified::Stopped => Attempt::Done(Err(Failure::Stopped)),
    }
}

/// The usable keys of a lookup.
fn usable(keys: &KeyLookup) -> &[MailkeyRecord] {
    match keys {
        KeyLookup::Published { keys, .. } => keys,
        _ => &[],
    }
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
