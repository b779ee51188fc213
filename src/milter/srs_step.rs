//! SRS in the milter (`[srs]`, src/srs/):
//!
//! - at RCPT, a recipient in our SRS domain that does not reverse (forged
//!   hash, expired, malformed) is refused with `550 5.1.1` in enforce mode
//!   (accepted in monitor mode, which never refuses), and logged either way
//!   (`logging::refused_recipient`); other addresses of the domain
//!   (postmaster@) are left to the MTA;
//! - at end of message, each recipient that reverses is replaced by the
//!   address it stands for (a bounce finds its way back);
//! - a message from a trusted client whose sender is foreign (neither a
//!   `[signing]` domain nor the SRS domain) is forwarded mail re-injected by
//!   the MTA (a `.forward`, an alias expanded by a second pass): its sender
//!   is rewritten to our SRS address, so SPF is checked against us
//!   (docs/decisions.md, "SRS: which mail is rewritten").

use super::message::Message;
use crate::{
    config::Mode,
    logging,
    reply::{Code, Reply},
    Shared,
};
use indymilter::{ContextActions, EomActions};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{error, info};

/// The reply refusing RCPT `arg`, if it is an invalid SRS address of ours;
/// logged here, and `None` in monitor mode (which never refuses: the log
/// line says what enforce mode would have answered).
pub(crate) fn refuse_rcpt(
    shared: &Shared,
    message: &Message,
    arg: &str,
    queue_id: &str,
) -> Option<Reply> {
    let srs = shared.srs.as_ref()?;
    let address = bare(arg);
    if !srs.is_ours(address) {
        return None;
    }
    let reply = match srs.reverse(address, now()) {
        Ok(_) | Err(crate::srs::SrsError::NotSrs) => return None,
        Err(e) => Reply::new(Code::INVALID_SRS, [format!("invalid SRS address: {e}")]),
    };
    let enforced = shared.config.mode == Mode::Enforce;
    logging::refused_recipient(queue_id, &message.envelope, address, &reply, enforced);
    enforced.then_some(reply)
}

/// The end-of-message rewrites. An action the MTA refuses is logged and
/// the message goes on as it is (never lose mail). Returns the new sender
/// when it was rewritten: the message is then signed for the SRS domain,
/// the sender the next receiver checks.
pub async fn rewrite(
    actions: &EomActions,
    shared: &Shared,
    message: &Message,
    queue_id: &str,
) -> Option<String> {
    let srs = shared.srs.as_ref()?;
    let now = now();
    for rcpt in &message.rcpt_to {
        let Ok(decoded) = srs.reverse(rcpt, now) else {
            continue;
        };
        let done = async {
            actions.delete_recipient(format!("<{rcpt}>")).await?;
            actions.add_recipient(format!("<{}>", decoded.0)).await
        };
        match done.await {
            Ok(()) => info!("{queue_id}: SRS recipient <{rcpt}> is <{}>", decoded.0),
            Err(e) => error!("{queue_id}: failed to rewrite the SRS recipient <{rcpt}>: {e}"),
        }
    }
    let sender = message.envelope.mail_from.as_str();
    // The null sender (a bounce) has nothing to rewrite.
    let foreign = message.trust.is_some()
        && !sender.is_empty()
        && message
            .envelope
            .sender_domain()
            .name()
            .is_some_and(|d| shared.signers.for_domain(d).is_none())
        && !srs.is_ours(sender);
    if !foreign {
        return None;
    }
    match srs.forward(sender, now) {
        Ok(rewritten) => {
            match actions
                .change_sender(format!("<{rewritten}>"), None::<&str>)
                .await
            {
                Ok(()) => {
                    info!("{queue_id}: SRS sender <{sender}> is <{rewritten}>");
                    return Some(rewritten);
                }
                Err(e) => error!("{queue_id}: failed to change the sender to SRS: {e}"),
            }
        }
        Err(e) => error!("{queue_id}: no SRS address for <{sender}>: {e}"),
    }
    None
}

fn bare(arg: &str) -> &str {
    arg.trim().trim_start_matches('<').trim_end_matches('>')
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
