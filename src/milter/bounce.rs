//! Bounce guidance at end of message: a DSN our MTA generated (null sender,
//! `multipart/report; report-type=delivery-status`) for a recipient whose
//! domain publishes no mailkey gets the guidance paragraph appended to its
//! text part ([`crate::bounce`]) and an `X-Mailkey-Guidance` header.
//!
//! Whatever goes wrong here, the bounce is delivered unchanged: guidance is
//! a courtesy, losing or delaying a bounce is not. So nothing here returns
//! a status; problems are logged.

use super::session::Message;
use crate::{
    checks::{keyrecord::KeyLookup, mailkey},
    dsn::{self as bounce, Kind},
    envelope::Envelope,
    guidance, Shared,
};
use indymilter::{ContextActions, EomActions};
use tracing::{debug, info, warn};

/// Appends the guidance when `message` is a DSN that should get it.
pub async fn add_guidance(
    actions: &EomActions,
    message: &Message,
    shared: &Shared,
    leading_space: bool,
    queue_id: &str,
) {
    let config = &shared.config;
    if !config.guidance.bounces || !message.envelope.mail_from.is_empty() {
        return;
    }
    let (head, body) = message.parts();
    let boundary = match bounce::classify(head) {
        Kind::NotDsn => {
            debug!("{queue_id}: null sender, but not a DSN: unchanged");
            return;
        }
        Kind::AlreadyGuided => {
            info!("{queue_id}: DSN has guidance already ({})", bounce::MARKER);
            return;
        }
        Kind::Signed => {
            warn!(
                "{queue_id}: DSN is DKIM-signed already, left unchanged: list mailkey-milter \
                 before the signing milter"
            );
            return;
        }
        Kind::Dsn { boundary } => boundary,
    };
    let Some(domain) = recipient_domain(&message.rcpt_to) else {
        info!(
            "{queue_id}: DSN without a recipient domain ({:?}): unchanged",
            message.rcpt_to
        );
        return;
    };
    match mailkey::lookup(&shared.dns, &domain).await {
        KeyLookup::NoKey => {}
        KeyLookup::Published { .. } => {
            debug!("{queue_id}: DSN to {domain}, which has a mailkey: unchanged");
            return;
        }
        KeyLookup::TempError(e) => {
            warn!("{queue_id}: DSN to {domain} unchanged: mailkey lookup failed: {e}");
            return;
        }
    }
    let paragraph = guidance::bounce_paragraph(&config.guidance, &domain);
    let new_body = match bounce::append_guidance(body, boundary.as_deref(), &paragraph) {
        Ok(b) => b,
        Err(e) => {
            warn!("{queue_id}: DSN to {domain} left unchanged: {e}");
            return;
        }
    };
    if let Err(e) = actions.replace_body(&new_body).await {
        warn!("{queue_id}: failed to replace the DSN body: {e}");
        return;
    }
    let value = format!(
        "{}appended for {domain}",
        if leading_space { " " } else { "" }
    );
    if let Err(e) = actions.add_header(bounce::MARKER, value).await {
        warn!(
            "{queue_id}: failed to add the {} header: {e}",
            bounce::MARKER
        );
    }
    info!("{queue_id}: bounce guidance appended to the DSN to {domain}");
}

/// The domain the guidance is about: that of the first recipient (a DSN
/// goes to the one sender of the bounced message).
fn recipient_domain(rcpt_to: &[String]) -> Option<String> {
    let first = rcpt_to.first()?;
    let envelope = Envelope {
        mail_from: first.clone(),
        ..Envelope::default()
    };
    envelope.sender_domain().name().map(str::to_string)
}
