//! Bounce guidance at end of message: a DSN our MTA generated (null sender,
//! `multipart/report; report-type=delivery-status`) for a recipient whose
//! domain publishes no mailkey gets the guidance paragraph appended to its
//! text part ([`crate::dsn`]) and an `X-Mailkey-Guidance` header.
//!
//! Only the MTA's own bounces are rewritten: the session calls this for
//! trusted clients only, never for a null-sender message from the outside.
//!
//! Whatever goes wrong here, the bounce is delivered unchanged: guidance is
//! a courtesy, losing or delaying a bounce is not. So nothing here returns
//! a status; problems are logged.

use super::message::Message;
use crate::{
    checks::mailkey,
    dsn::{self, Kind},
    envelope::Envelope,
    guidance,
    protocol::KeyLookup,
    Shared,
};
use indymilter::{ContextActions, EomActions};
use tracing::{debug, info, warn};

/// Appends the guidance when `message` is a DSN that should get it, and
/// returns the new body.
pub async fn add(
    actions: &EomActions,
    message: &mut Message,
    shared: &Shared,
    leading_space: bool,
    queue_id: &str,
) -> Option<Vec<u8>> {
    let config = &shared.config;
    if !config.guidance.bounces || !message.envelope.mail_from.is_empty() {
        return None;
    }
    // Before the bytes are borrowed: `Err` is the recipients, for the log.
    let rcpt_domain =
        recipient_domain(&message.rcpt_to).ok_or_else(|| format!("{:?}", message.rcpt_to));
    let (head, body) = match message.parts() {
        Ok(parts) => parts,
        Err(e) => {
            warn!("{queue_id}: null-sender message left unchanged: {e}");
            return None;
        }
    };
    let boundary = match dsn::classify(head) {
        Kind::NotDsn => {
            debug!("{queue_id}: null sender, but not a DSN: unchanged");
            return None;
        }
        Kind::AlreadyGuided => {
            info!("{queue_id}: DSN has guidance already ({})", dsn::MARKER);
            return None;
        }
        Kind::Signed => {
            warn!(
                "{queue_id}: DSN is DKIM-signed already, left unchanged: list mailkey-milter \
                 before the signing milter"
            );
            return None;
        }
        Kind::Dsn { boundary } => boundary,
    };
    let domain = match rcpt_domain {
        Ok(domain) => domain,
        Err(rcpt_to) => {
            info!("{queue_id}: DSN without a recipient domain ({rcpt_to}): unchanged");
            return None;
        }
    };
    match mailkey::lookup(&shared.dns, &domain).await.as_ref() {
        KeyLookup::NoKey => {}
        KeyLookup::Published { .. } => {
            debug!("{queue_id}: DSN to {domain}, which has a mailkey: unchanged");
            return None;
        }
        KeyLookup::TempError(e) => {
            warn!("{queue_id}: DSN to {domain} unchanged: mailkey lookup failed: {e}");
            return None;
        }
    }
    let paragraph = guidance::bounce_paragraph(&config.guidance, &domain);
    let new_body = match dsn::append_guidance(body, boundary.as_deref(), &paragraph) {
        Ok(b) => b,
        Err(e) => {
            warn!("{queue_id}: DSN to {domain} left unchanged: {e}");
            return None;
        }
    };
    if let Err(e) = actions.replace_body(&new_body).await {
        warn!("{queue_id}: failed to replace the DSN body: {e}");
        return None;
    }
    let value = format!(
        "{}appended for {domain}",
        if leading_space { " " } else { "" }
    );
    if let Err(e) = actions.add_header(dsn::MARKER, value).await {
        warn!("{queue_id}: failed to add the {} header: {e}", dsn::MARKER);
    }
    info!("{queue_id}: bounce guidance appended to the DSN to {domain}");
    Some(new_body)
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
