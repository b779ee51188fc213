//! The outbound step: signing the mail of trusted clients (trusted
//! networks, SMTP-AUTH) whose sender domain `D` is one of `[signing]
//! domains`, and their log line.

use super::{
    dkim2_step,
    message::{Message, Trust},
    Outcome,
};
use crate::{
    config::OnError,
    logging, metrics,
    reply::{Code, Reply},
    sign::HEADER,
    Shared,
};
use indymilter::{ContextActions, EomActions};
use std::sync::Arc;
use tracing::error;

/// Adds the mailkey signature when `D` has a signing key, and the DKIM2
/// signature when one is due (src/milter/dkim2_step.rs), and logs.
pub async fn sign(
    actions: &EomActions,
    shared: &Arc<Shared>,
    message: &mut Message,
    trust: Trust,
    leading_space: bool,
    queue_id: &str,
) -> Outcome {
    let signed = match add_signature(actions, shared, message, leading_space, queue_id).await {
        Ok(signed) => signed,
        Err(outcome) => return outcome,
    };
    let dkim2 = match dkim2_step::sign(actions, shared, message, leading_space, queue_id).await {
        Ok(dkim2) => dkim2,
        Err(outcome) => return outcome,
    };
    logging::trusted_message(
        queue_id,
        &message.envelope,
        trust.as_str(),
        signed.as_deref(),
        dkim2.as_deref(),
    );
    metrics::record_trusted();
    Outcome::Accept
}

/// `Ok(Some(d))`: signed for `d`; `Ok(None)`: nothing to sign for;
/// `Err(outcome)`: the message must not go on (signing failed and
/// `on_error` says tempfail).
async fn add_signature(
    actions: &EomActions,
    shared: &Shared,
    message: &mut Message,
    leading_space: bool,
    queue_id: &str,
) -> Result<Option<String>, Outcome> {
    // The same `D` the receiving side checks: the MAIL FROM domain, or the
    // HELO name for the null sender.
    let sender = message.envelope.sender_domain();
    let Some(key) = sender.name().and_then(|d| shared.signers.for_domain(d)) else {
        return Ok(None);
    };
    // A domain may sign with DKIM2 only (`signatures = ["dkim2"]`).
    if !crate::dkim2::sign::Plan::of(&shared.config, &key.domain).mailkey {
        return Ok(None);
    }
    let complete = match message.complete() {
        Ok(complete) => complete,
        Err(e) => return Err(failed(shared, queue_id, &key.domain, &e)),
    };
    let value = match key.sign(complete) {
        Ok(v) => v,
        Err(e) => return Err(failed(shared, queue_id, &key.domain, &e)),
    };
    // Milters pass folded values with LF; the MTA writes `Name:` + value.
    let value = value.replace("\r\n", "\n");
    let value = if leading_space {
        value
    } else {
        value.trim_start().to_string()
    };
    match actions.insert_header(0, HEADER, value).await {
        Ok(()) => Ok(Some(key.domain.clone())),
        Err(e) => {
            error!("{queue_id}: failed to add the DKIM-Signature header: {e}");
            Err(Outcome::Tempfail(None))
        }
    }
}

/// A message that cannot be signed (`e`: a [`SignError`](crate::sign::SignError), or the message
/// could not be kept): deferred with `451 4.3.0` (the default), since
/// unsigned mail from a domain that publishes a mailkey is rejected by
/// receivers; or sent unsigned with `on_error = "accept"`.
fn failed(shared: &Shared, queue_id: &str, domain: &str, e: &dyn std::error::Error) -> Outcome {
    error!("{queue_id}: failed to sign for {domain}: {e}");
    match shared.config.on_error {
        OnError::Accept => Outcome::Accept,
        OnError::Tempfail => Outcome::Tempfail(Some(Reply::new(
            Code::INTERNAL,
            ["Temporary local problem signing the message; please try again later".to_string()],
        ))),
    }
}
