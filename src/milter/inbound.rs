//! The inbound step: the checks' verdict for a message from an untrusted
//! client, our `Authentication-Results` header, the log line and the
//! metrics.

use super::{message::Message, Outcome};
use crate::{arc_seal, auth_results, config::Mode, logging, metrics, verdict::Action, Shared};
use indymilter::{ContextActions, EomActions};
use tracing::error;

pub async fn check(
    actions: &EomActions,
    shared: &Shared,
    mut message: Message,
    leading_space: bool,
    queue_id: &str,
) -> Outcome {
    let config = &shared.config;
    let Some(pending) = message.pending.take() else {
        error!("{queue_id}: failed to check message: no checks were started for it");
        return Outcome::internal_error(config);
    };
    // The checks run in a task of their own: a panic there (a bug) is
    // caught, and the message gets `on_error`.
    let raw = message.complete().to_vec();
    let evaluation = match tokio::spawn(async move { pending.finish(&raw).await }).await {
        Ok(e) => e,
        Err(e) => {
            error!("{queue_id}: failed to check message: check task failed: {e}");
            return Outcome::internal_error(config);
        }
    };
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
        if evaluation.verdict.action == Action::Accept {
            return Outcome::internal_error(config);
        }
    }
    if config.arc.seal && evaluation.verdict.action == Action::Accept {
        let complete = message.complete();
        add_seal(actions, shared, complete, &value, leading_space, queue_id).await;
    }
    logging::checked_message(queue_id, &message.envelope, &evaluation);
    metrics::record(&evaluation);
    Outcome::from_verdict(&evaluation.verdict)
}

/// `[arc] seal`: our ARC set on top of the message (src/arc_seal.rs). A
/// failure to seal is logged and the message goes on unsealed: a seal is a
/// courtesy to the next hop, never a reason to hold mail.
async fn add_seal(
    actions: &EomActions,
    shared: &Shared,
    message: &[u8],
    results: &str,
    leading_space: bool,
    queue_id: &str,
) {
    let Some(domain) = shared.config.arc.seal_domain.as_deref() else {
        return;
    };
    let Some(key) = shared.signers.for_domain(domain) else {
        error!("{queue_id}: not sealed: no [signing] key for seal_domain {domain}");
        return;
    };
    let fields = match arc_seal::seal(&shared.dns, key, message, results).await {
        Ok(fields) => fields,
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
