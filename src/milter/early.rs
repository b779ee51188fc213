//! Rejecting at RCPT TO, before the body is sent: when an enforced check
//! that needs no message (SPF, MX, an address-literal sender, TLS) has
//! already failed, the first RCPT gets the reject that the end of message
//! would give, and every further RCPT the same; the MTA then never reaches
//! DATA and the body of such mail is never received. This is Postfix's
//! `smtpd_delay_reject` convention: the answer to a bad sender comes at
//! RCPT, not at MAIL FROM, so the client sees it as a recipient rejection
//! that names the sender's problem.

use super::message::Message;
use crate::{
    checks::{self, CHECKS},
    config::{Config, Mode},
    envelope::Envelope,
    logging::{self, DecidedAt},
    metrics,
    transaction::Evaluation,
    verdict, Shared,
};
use std::time::Duration;

/// How long the first RCPT waits for the enforced checks: below the read
/// timeouts MTAs give a milter per command (Sendmail's `T=R:10s`, Postfix's
/// `milter_command_timeout` of 30 s). A check not done by then is decided
/// at the end of message, as before.
pub(crate) const RCPT_WAIT: Duration = Duration::from_secs(5);

/// Is the RCPT stage worth negotiating (`reject_at_rcpt`)? Only enforce
/// mode rejects, and only an enforced check can cause it.
pub fn wanted(config: &Config) -> bool {
    config.mode == Mode::Enforce
        && config.reject_at_rcpt
        && CHECKS.iter().any(|c| c.is_enforced(config))
}

/// The verdict over the results that need no message, when it is a
/// reject (the caller logs and counts it once, with [`record`], as the
/// end of message would). A tempfail is left for the end of message: a
/// check that reads the message (mailkey) may still reject, and a reject
/// beats a tempfail.
pub async fn reject(shared: &Shared, message: &mut Message) -> Option<Evaluation> {
    let config = &shared.config;
    // An exempt sender is never rejected: its verdict waits for the end of
    // message, like everyone's in monitor mode.
    if !wanted(config) || shared.exempt.reason(&message.envelope).is_some() {
        return None;
    }
    let mut results = message
        .pending
        .as_mut()?
        .envelope_results(RCPT_WAIT)
        .await?;
    // A trusted ARC sealer can still vouch for SPF and mailkey (the checks
    // with an `arc_vouch`), but only the message's ARC headers say so: with
    // `[forwarding] trusted_arc_sealers` set, their failures are left to
    // the end of message (`crate::forwarding` runs there).
    if !config.forwarding.trusted_arc_sealers.is_empty() {
        results.retain(|r| crate::forwarding::arc_vouch(r).is_none());
    }
    let sender = message.envelope.sender_domain();
    let who = crate::guidance::Sender::of(&message.envelope, sender.name());
    // A result that is not final at RCPT (mailkey's, while a DKIM2 chain
    // in the message may still pass it: its keys are named in the message)
    // alone waits for the end of message; it is part of a reject that the
    // final ones make anyway.
    let is_final = |r: &&crate::checks::CheckResult| {
        checks::find(r.check).is_none_or(|c| (c.final_at_rcpt)(config))
    };
    if !results.iter().all(|r| is_final(&r)) {
        let finals: Vec<_> = results.iter().filter(is_final).cloned().collect();
        if !verdict::decide(&finals, config, &who).applied().is_reject() {
            return None;
        }
    }
    let verdict = verdict::decide(&results, config, &who);
    if !verdict.applied().is_reject() {
        return None;
    }
    Some(Evaluation {
        sender,
        results,
        verdict,
        controls: Default::default(),
    })
}

/// Logs and counts a refusal at RCPT, once per transaction.
pub fn record(queue_id: &str, envelope: &Envelope, evaluation: &Evaluation) {
    logging::checked_message(queue_id, envelope, evaluation, DecidedAt::Rcpt);
    metrics::record(evaluation);
}
