//! The inbound step: the checks' verdict for a message from an untrusted
//! client, our `Authentication-Results` header, the log line and the
//! metrics.

use super::{message::Message, recipients::Recipients, Outcome};
use crate::spool::Bytes;
use crate::{
    arc_seal::{SealError, Sealer},
    auth_results,
    checks::{self, CheckResult},
    config::Mode,
    logging::{self, DecidedAt},
    metrics, Shared,
};
use indymilter::{ContextActions, EomActions};
use std::sync::Arc;
use tracing::{debug, error, warn};

pub async fn check(
    actions: &EomActions,
    shared: &Shared,
    mut message: Message,
    recipients: &Recipients,
    leading_space: bool,
    queue_id: &str,
) -> Outcome {
    let config = &shared.config;
    let Some(pending) = message.pending.take() else {
        error!("{queue_id}: failed to check message: no checks were started for it");
        return super::internal_error(config);
    };
    pending.recipients(message.rcpt_to.clone());
    // The checks run in a task of their own: a panic there (a bug) is
    // caught, and the message gets `on_error`.
    let token_key = recipients.message_key(&mut message);
    // The whole message is kept (shared, not copied: the same buffer or
    // the same map of the spool file) for the ARC seal; a message too big
    // to keep is not sealed.
    let mut whole: Option<Arc<Bytes>> = None;
    let checks = match message.too_big() {
        Some(size) => {
            warn!(
                "{queue_id}: message of {size} bytes is larger than limits.max_message_size \
                 ({} bytes): not buffered further, its signature is not verified",
                config.limits.max_message_size
            );
            tokio::spawn(pending.finish_too_big(size))
        }
        None => {
            let raw = match message.take_complete() {
                Ok(raw) => Arc::new(raw),
                Err(e) => {
                    // Not checked, so never accepted as checked: `on_error`
                    // (451 4.3.0 by default; monitor mode accepts).
                    error!("{queue_id}: failed to check message: {e}");
                    return super::internal_error(config);
                }
            };
            whole = Some(Arc::clone(&raw));
            tokio::spawn(async move { pending.finish(&raw).await })
        }
    };
    let mut evaluation = match checks.await {
        Ok(e) => e,
        Err(e) => {
            error!("{queue_id}: failed to check message: check task failed: {e}");
            return super::internal_error(config);
        }
    };
    // An exempt sender is checked as usual and never rejected or deferred.
    if let Some(reason) = shared.exempt.reason(&message.envelope) {
        evaluation.verdict = evaluation.verdict.exempt(reason);
    }
    // A recipient's token or solved challenge; a challenge in a refusal.
    recipients
        .decide(
            shared,
            &message,
            &mut evaluation,
            token_key.as_deref(),
            queue_id,
        )
        .await;
    let mut value = auth_results::header_value(config, &evaluation.results, &evaluation.verdict);
    if leading_space {
        value.insert(0, ' ');
    }
    if let Err(e) = actions
        .insert_header(0, auth_results::HEADER, value.clone())
        .await
    {
        error!("{queue_id}: failed to add the Authentication-Results header: {e}");
        // Without our header downstream filters know nothing of the checks;
        // a verdict to reject or defer still stands, in monitor mode the
        // message goes on (monitor never stops mail).
        if config.mode == Mode::Monitor {
            return Outcome::Accept;
        }
        if evaluation.verdict.applied().is_accept() {
            return super::internal_error(config);
        }
    }
    if evaluation.verdict.applied().is_accept() {
        if let (Some(sealer), Some(complete)) = (&shared.sealer, &whole) {
            let arc = evaluation
                .results
                .iter()
                .find(|r| r.check == checks::arc::NAME);
            add_seal(
                actions,
                sealer,
                complete,
                &value,
                arc,
                leading_space,
                queue_id,
            )
            .await;
        }
    }
    if let Some(complete) = &whole {
        super::dkim2_step::remember(shared, &evaluation, complete);
        super::dkim2_step::propagate(
            actions,
            shared,
            &evaluation,
            &message,
            complete,
            leading_space,
            queue_id,
        )
        .await;
    }
    logging::checked_message(queue_id, &message.envelope, &evaluation, DecidedAt::Eom);
    metrics::record(&evaluation);
    super::from_verdict(&evaluation.verdict)
}

/// `[arc] seal`: our ARC set on top of the message (src/arc_seal.rs). A
/// failure to seal is logged and the message goes on unsealed: a seal is a
/// courtesy to the next hop, never a reason to hold mail. A chain that the
/// `arc` check did not validate, or that failed, is not sealed over (no
/// error: the log line's `arc=` says why).
async fn add_seal(
    actions: &EomActions,
    sealer: &Sealer,
    message: &[u8],
    results: &str,
    arc: Option<&CheckResult>,
    leading_space: bool,
    queue_id: &str,
) {
    let domain = sealer.domain();
    // Parsing, a body hash and two signatures: off the async workers.
    let sealed = crate::cpu::off_the_workers(async { sealer.seal(message, results, arc) }).await;
    let fields = match sealed {
        Ok(fields) => fields,
        Err(e @ SealError::Chain(_)) => {
            debug!("{queue_id}: not sealed for {domain}: {e}");
            return;
        }
        Err(e) => {
            error!("{queue_id}: not sealed for {domain}: {e}");
            return;
        }
    };
    // Inserted at the top one after the other: the last one ends first.
    for (name, value) in fields.into_iter().rev() {
        let value = if leading_space {
            format!(" {value}")
        } else {
            value
        };
        if let Err(e) = actions.insert_header(0, name, value).await {
            error!("{queue_id}: failed to add the ARC set: {e}");
            return;
        }
    }
}
