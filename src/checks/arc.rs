//! The ARC check (RFC 8617): does the message carry an ARC chain that
//! validates? `arc=pass` says that every intermediary that sealed the
//! message is the one it claims to be and that the newest one's signature
//! still covers the message; it says nothing about whether to trust what
//! those intermediaries recorded.
//!
//! ARC never rejects or defers a message: its effect is always `Accept`.
//! Its uses are [`crate::forwarding`], which lets the recorded results of a
//! *trusted* sealer (`[forwarding] trusted_arc_sealers`) stand in for the
//! SPF and mailkey results that forwarding and mailing lists break, and
//! [`crate::arc_seal`], whose `cv=pass` needs a validated chain. So a chain
//! is validated only when one of them can use the result (issue #21): a
//! trusted sealer sealed it last, or we seal. Otherwise the result is
//! `none (not validated: why)`. What a chain may cost is capped from its
//! header fields before anything else ([`fields`]), its keys are looked up
//! at once ([`keys`]), and the validation itself runs off the async
//! workers and stops at the end-of-message deadline (docs/decisions.md,
//! "ARC: validated only when it can matter").

mod fields;
mod keys;

pub(crate) use fields::Fields;
pub use fields::MAX_SETS;

use super::{BoxFuture, Check, CheckName, CheckResult, Effect, Inputs, MessageStep, Stage, Status};
use crate::{ar_syntax::ResInfo, cpu::off_the_workers, dns::Dns};
use mail_auth::{
    arc::ArcError, dns::Parameters, AuthenticatedMessage, DkimResult, Error, MessageAuthenticator,
};
use std::time::Instant;

pub const NAME: CheckName = CheckName::new("arc");

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "arc",
    // Never enforced: the result only vouches for other checks' results.
    refuses_with: &[],
    logged_since: 1,
    final_at_rcpt: |_| true,
    arc_vouch: None,
    guidance: None,
    enforced: |_| false,
    start: |_| Box::pin(async { Stage::NeedsMessage(Box::new(Verify)) }),
};

/// Nothing to look up before the message: the keys are named in it.
struct Verify;

impl MessageStep for Verify {
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        _now: u64,
        deadline: Instant,
    ) -> BoxFuture<'a, CheckResult> {
        let config = &inputs.shared.config;
        let uses = Uses {
            trusted_sealers: &config.forwarding.trusted_arc_sealers,
            seal: config.arc.seal,
        };
        Box::pin(check(&inputs.shared.dns, uses, message, deadline))
    }

    /// A message too big to keep cannot be validated; ARC still never
    /// rejects (the registry's default would), so it is `none`.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        CheckResult::new(check, Status::None, Effect::Accept).reason(format!(
            "message too big for the checks: {size} bytes, limits.max_message_size is {limit}"
        ))
    }
}

/// What a validated chain would be used for.
#[derive(Clone, Copy, Debug)]
pub struct Uses<'a> {
    /// `[forwarding] trusted_arc_sealers`.
    pub trusted_sealers: &'a [String],
    /// `[arc] seal`: our seal's `cv=` needs the chain validated.
    pub seal: bool,
}

impl Uses<'_> {
    fn trusts(&self, sealer: &str) -> bool {
        self.trusted_sealers
            .iter()
            .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(sealer))
    }
}

/// Validates the ARC chain of `message` when `uses` can use the result,
/// within the caps of [`fields`] and until `deadline`.
pub async fn check(dns: &Dns, uses: Uses<'_>, message: &[u8], deadline: Instant) -> CheckResult {
    let result = |status| CheckResult::new(NAME, status, Effect::Accept);
    let not_validated = |why: String| result(Status::None).reason(format!("not validated: {why}"));
    let scanned = Fields::scan(message);
    if scanned.as_ref().is_ok_and(Fields::is_empty) {
        return result(Status::None);
    }
    if !uses.seal && uses.trusted_sealers.is_empty() {
        return not_validated("no trusted sealer".into());
    }
    let chain = match scanned.and_then(|f| f.chain()) {
        Ok(chain) => chain,
        Err(why) => return not_validated(why),
    };
    // Seals that do not parse name no sealer: validation fails on them at
    // once, without a key.
    if let Some(c) = chain
        .as_ref()
        .filter(|c| !uses.seal && !uses.trusts(&c.sealer))
    {
        return not_validated(format!("sealed by {}, not a trusted sealer", c.sealer));
    }
    let keys = chain.map(|c| c.keys).unwrap_or_default();
    let keyring = keys::fetch(dns, &keys).await;
    let (validated, sealer) =
        off_the_workers(validate(dns.verifier(), &keyring, message, deadline)).await;
    let r = match validated {
        DkimResult::None => return result(Status::None),
        DkimResult::Pass => result(Status::Pass),
        DkimResult::TempError(Error::Arc(ArcError::Deadline)) => {
            return result(Status::TempError)
                .reason("validation stopped at the end-of-message deadline");
        }
        DkimResult::TempError(e) => result(Status::TempError).reason(describe(&e)),
        DkimResult::PermError(e) => result(Status::PermError).reason(describe(&e)),
        DkimResult::Fail(e) | DkimResult::Neutral(e) => result(Status::Fail).reason(describe(&e)),
    };
    match sealer {
        Some(d) => r.prop("header.d", d),
        None => r,
    }
}

/// Parses and validates with the keys of `keyring` only: the result and
/// `d=` of the newest seal.
async fn validate(
    authenticator: &MessageAuthenticator,
    keyring: &crate::key_overlay::KeyOverlay,
    message: &[u8],
    deadline: Instant,
) -> (DkimResult, Option<String>) {
    if Instant::now() >= deadline {
        return (DkimResult::TempError(Error::Arc(ArcError::Deadline)), None);
    }
    let Some(msg) = AuthenticatedMessage::parse_arc(message) else {
        return (DkimResult::None, None);
    };
    let params = Parameters::new(&msg).with_cache(keyring);
    let output = authenticator.verify_arc_until(params, Some(deadline)).await;
    let sealer = output
        .chain()
        .last()
        .map(|link| link.seal.header.d.to_ascii_lowercase());
    (output.result().clone(), sealer)
}

fn describe(e: &Error) -> String {
    format!("ARC chain does not validate: {e}")
}

/// `d=` of the newest seal of `message`'s chain and the results its
/// `ARC-Authentication-Results` records; `None` without a chain, or one
/// above the caps. Read from the header fields only: call it for a chain
/// the check validated.
pub(crate) fn newest_results(message: &[u8]) -> Option<(String, Vec<ResInfo>)> {
    Fields::scan(message).ok()?.newest_results()
}
