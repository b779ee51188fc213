//! The DKIM2 check (docs/protocol.md, "mailkey v2 = DKIM2"): does the
//! message carry a DKIM2 chain that verifies for this transaction's
//! envelope? Reported as the `dkim2` method of `Authentication-Results`
//! (draft-gondwana-dkim2-authres): `header.d` is the originator (`i=1`),
//! the comment lists the hops.
//!
//! The check is never enforced on its own. Its effect says what the chain
//! means for the mailkey check of the sender domain `D`, which
//! [`apply`] carries out: a chain whose newest signature is
//! `D`'s (mailkey alignment) passes mailkey when it verifies, and fails it
//! (reject `5.7.20`) when it does not — unless that key says `t=y`.

mod apply;
mod guidance;

pub use apply::apply;

use super::{
    mailkey::{aligned, Stopped},
    BoxFuture, Check, CheckName, CheckResult, Effect, Failure, Inputs, MessageStep, Stage, Status,
};
use crate::dkim2::{
    dsn,
    verify::{verify_until, Arrival},
    Kind, Outcome,
};
use crate::reply::Code;

pub const NAME: CheckName = CheckName::new("dkim2");

/// The newest signature's `i=`, `d=` and first selector, and the draft's
/// text of a failure: what [`apply`] reads (not logged).
pub(crate) const FACT_NEWEST_I: &str = "dkim2.newest_i";
pub(crate) const FACT_NEWEST_D: &str = "dkim2.newest_d";
pub(crate) const FACT_NEWEST_S: &str = "dkim2.newest_s";
pub(crate) const FACT_FAILURE: &str = "dkim2.failure";

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "dkim2",
    // Applied through the mailkey check (apply).
    enforced: |_| false,
    refuses_with: &[],
    logged_since: 2,
    final_at_rcpt: |_| true,
    arc_vouch: None,
    guidance: Some(&guidance::GUIDANCE),
    start: |inputs| {
        Box::pin(async move {
            if inputs.shared.config.dkim2.verify {
                Stage::NeedsMessage(Box::new(Verify))
            } else {
                Stage::Done(
                    CheckResult::new(NAME, Status::None, Effect::Accept)
                        .reason("not verified: [dkim2] verify = false"),
                )
            }
        })
    },
};

/// The keys are named in the message: nothing to do before it.
struct Verify;

impl MessageStep for Verify {
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        now: u64,
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, CheckResult> {
        Box::pin(async move {
            let envelope = &inputs.envelope;
            let sender = envelope.sender_domain();
            let rcpt_to = inputs.recipients();
            if rcpt_to.is_empty() && crate::dkim2::has_dkim2_fields(message) {
                // Without the recipients the envelope cannot be checked,
                // and a chain must never pass unchecked.
                return CheckResult::new(NAME, Status::None, Effect::Accept)
                    .reason("not verified: the MTA passed no RCPT TO");
            }
            let shared = &inputs.shared;
            // A bounce about a message of ours: the DSN is what is verified.
            let ours = |d: &str| shared.dkim2.signers.for_domain(d).is_some();
            if envelope.mail_from.is_empty()
                && !rcpt_to.is_empty()
                && !shared.dkim2.signers.is_empty()
            {
                if let Some(about) = dsn::about(message, ours) {
                    let outcome = dsn::verify(&shared.dns, rcpt_to, message, now).await;
                    tracing::info!(
                        "DKIM2 DSN about our message (newest hop i={} by {}): {}",
                        about.i,
                        about.d,
                        outcome
                            .comment()
                            .unwrap_or_else(|| outcome.status.to_string())
                    );
                    return dsn_result(&outcome, shared.config.dkim2.refuse_unverified_dsn);
                }
            }
            let arrival = Arrival {
                mail_from: &envelope.mail_from,
                rcpt_to,
            };
            match verify_until(&shared.dns, arrival, message, now, deadline).await {
                Ok(outcome) => result(&outcome, sender.name(), shared.config.mailkey.alignment),
                Err(Stopped) => {
                    CheckResult::stopped(NAME, &shared.config.limits, shared.config.on_error)
                }
            }
        })
    }

    /// Too big to keep: not verified, and never a reason to reject.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        CheckResult::new(check, Status::None, Effect::Accept).reason(format!(
            "message too big for the checks: {size} bytes, limits.max_message_size is {limit}"
        ))
    }
}

/// The check's result for `outcome`, for sender domain `domain`.
pub fn result(
    outcome: &Outcome,
    domain: Option<&str>,
    alignment: crate::config::Alignment,
) -> CheckResult {
    let claims = outcome
        .newest()
        .zip(domain)
        .is_some_and(|(hop, d)| aligned(&hop.d, d, alignment));
    // What the chain means for the mailkey check of `domain`.
    let effect = match outcome.status {
        Status::Fail | Status::PermError if claims && !outcome.testing => {
            Effect::Reject(Code::MAILKEY_FAIL)
        }
        Status::TempError if claims => Effect::Tempfail(Code::DNS_TEMPFAIL),
        _ => Effect::Accept,
    };
    let mut r = with_facts(CheckResult::new(NAME, outcome.status, effect), outcome);
    if let Some((kind, _)) = outcome.failure {
        r = r.failure(failure(kind));
    }
    if let Some(d) = outcome.originator() {
        r = r.prop("header.d", d);
    }
    if let Some(i) = outcome.failed_i.filter(|_| outcome.status != Status::Pass) {
        r = r.prop("header.i", i.to_string());
    }
    r
}

/// The result for a DSN about a message of ours: refused when it does not
/// verify and `refuse` (`[dkim2] refuse_unverified_dsn`), through mailkey
/// as any failing chain; otherwise reported only.
pub(crate) fn dsn_result(outcome: &Outcome, refuse: bool) -> CheckResult {
    let effect = match outcome.status {
        Status::Pass | Status::None => Effect::Accept,
        Status::TempError if refuse => Effect::Tempfail(Code::DNS_TEMPFAIL),
        _ if refuse => Effect::Reject(Code::MAILKEY_FAIL),
        _ => Effect::Accept,
    };
    let mut r = with_facts(CheckResult::new(NAME, outcome.status, effect), outcome);
    if outcome.status != Status::Pass {
        r = r.failure(Failure::Dkim2Dsn);
    }
    if let Some(d) = outcome.originator() {
        r = r.prop("header.d", d);
    }
    r
}

/// The comment and the facts of `outcome` on `r`.
fn with_facts(mut r: CheckResult, outcome: &Outcome) -> CheckResult {
    if let Some(comment) = outcome.comment() {
        r = r.reason(comment);
    }
    if let Some(hop) = outcome.newest() {
        r = r
            .fact(FACT_NEWEST_I, hop.i.to_string())
            .fact(FACT_NEWEST_D, hop.d.clone())
            .fact(FACT_NEWEST_S, hop.selector.clone());
    }
    if let Some((_, why)) = &outcome.failure {
        r = r.fact(FACT_FAILURE, why.clone());
    }
    r
}

/// The guidance's kind for a failed chain.
pub fn failure(kind: Kind) -> Failure {
    match kind {
        Kind::Replay => Failure::Dkim2Replay,
        Kind::Changed => Failure::Dkim2Changed,
        Kind::Broken => Failure::Dkim2Broken,
        Kind::Dsn => Failure::Dkim2Dsn,
    }
}

/// The verified chain of custody, for the log line (`dkim2_chain=`): the
/// comment of a passing result.
pub fn chain(results: &[CheckResult]) -> Option<&str> {
    results
        .iter()
        .find(|r| r.check == NAME && r.status == Status::Pass)
        .and_then(|r| r.reason.as_deref())
}
