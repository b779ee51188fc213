//! The inbound step: the checks' verdict for a message from an untrusted
//! client, our `Authentication-Results` header, the log line and the
//! metrics.

use super::{message::Message, Outcome};
use crate::{
    auth_results,
    config::Mode,
    logging::{self, DecidedAt},
    metrics,
    verdict::Action,
    Shared,
};
use indymilter::{ContextActions, EomActions};
use tracing::{error, warn};

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
            let raw = message.take_complete();
            tokio::spawn(async move { pending.finish(&raw).await })
        }
    };
    let mut evaluation = match checks.await {
        Ok(e) => e,
        Err(e) => {
            error!("{queue_id}: failed to check message: check task failed: {e}");
            return Outcome::internal_error(config);
        }
    };
    // An exempt sender is checked as usual and never rejected or deferred.
    if let Some(reason) = shared.exempt.reason(&message.envelope) {
        evaluation.verdict = evaluation.verdict.exempt(reason);
    }
    let mut value = auth_results::header_value(config, &evaluation.results, &evaluation.verdict);
    if leading_space {
        value.insert(0, ' ');
    }
    if let Err(e) = actions.insert_header(0, auth_results::HEADER, value).await {
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
    logging::checked_message(queue_id, &message.envelope, &evaluation, DecidedAt::Eom);
    metrics::record(&evaluation);
    Outcome::from_verdict(&evaluation.verdict)
}
