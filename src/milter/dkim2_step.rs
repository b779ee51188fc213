//! DKIM2 in the milter's end of message (src/dkim2/):
//!
//! - inbound, a forwarding host (`[dkim2] forward`) keeps each accepted
//!   message whose chain verified at its door ([`remember`]);
//! - outbound, mail of trusted clients gets our DKIM2 signature
//!   ([`sign`]): an originator's for a domain that signs DKIM2, a hop for
//!   a chain our door verified, a DSN's for a bounce about a DKIM2-signed
//!   message our domain received.
//!
//! A signature that cannot be made is logged; the message goes on with
//! its DKIM1 signature, unless DKIM2 is all its domain signs with: then
//! `on_error` decides, as for any signing failure.

use super::{message::Message, Outcome};
use crate::spool::Bytes;
use crate::{
    checks::{dkim2 as check, Status},
    config::OnError,
    dkim2::{
        has_dkim2_fields,
        sign::{sign as sign_fields, Plan, Role},
    },
    sign::SignError,
    transaction::Evaluation,
    Shared,
};
use indymilter::{ContextActions, EomActions};
use std::sync::Arc;
use tracing::{error, warn};

/// Keeps an accepted message whose chain verified here, for its hop.
pub(crate) fn remember(shared: &Shared, evaluation: &Evaluation, complete: &Arc<Bytes>) {
    let passed = evaluation
        .results
        .iter()
        .any(|r| r.check == check::NAME && r.status == Status::Pass);
    if passed && evaluation.verdict.applied().is_accept() {
        shared.dkim2.custody.remember(Arc::clone(complete));
    }
}

/// Adds our DKIM2 signature to a trusted client's message when one is
/// due. `Ok(Some(what))` says what was signed, for the log line.
pub async fn sign(
    actions: &EomActions,
    shared: &Arc<Shared>,
    message: &mut Message,
    leading_space: bool,
    queue_id: &str,
) -> Result<Option<String>, Outcome> {
    if shared.dkim2.signers.is_empty() {
        return Ok(None);
    }
    let (mail_from, rcpt_to) = (message.envelope.mail_from.clone(), message.rcpt_to.clone());
    let sender = message.envelope.sender_domain();
    let complete = match message.complete() {
        Ok(complete) => complete,
        // Nothing to sign over: for a domain that signs DKIM2, as any
        // signing failure; a bounce goes on without (as when its
        // signature fails).
        Err(e) => {
            let signs = sender
                .name()
                .is_some_and(|d| shared.dkim2.signers.for_domain(d).is_some());
            if !signs {
                warn!("{queue_id}: no DKIM2 signature considered: {e}");
                return Ok(None);
            }
            error!("{queue_id}: failed to DKIM2-sign: {e}");
            return match shared.config.on_error {
                OnError::Accept => Ok(None),
                OnError::Tempfail => Err(Outcome::Tempfail(None)),
            };
        }
    };
    let chain = has_dkim2_fields(complete);
    // A bounce of ours about a DKIM2-signed message (draft §16.2).
    if mail_from.is_empty() && !chain {
        if let Some((domain, signer)) = shared.dkim2.signers.for_dsn(complete) {
            return match sign_fields(signer, complete, "", &rcpt_to, Role::Originator) {
                Ok(fields) => insert(actions, fields, leading_space, queue_id)
                    .await
                    .map(|()| Some(format!("dsn by {domain}"))),
                Err(e) => {
                    warn!("{queue_id}: DSN not DKIM2-signed for {domain}: {e}");
                    Ok(None)
                }
            };
        }
    }
    let Some(domain) = sender.name() else {
        return Ok(None);
    };
    if shared.dkim2.signers.for_domain(domain).is_none() {
        return Ok(None);
    }
    let original = if chain {
        match door_verified(shared, complete, domain, queue_id) {
            Some(original) => Some(original),
            None => return Ok(None),
        }
    } else {
        None
    };
    match sign_blocking(shared, complete, domain, (mail_from, rcpt_to), original).await {
        Ok(fields) => {
            let what = describe(&fields, domain);
            insert(actions, fields, leading_space, queue_id)
                .await
                .map(|()| Some(what))
        }
        Err(e) if Plan::of(&shared.config, domain).mailkey => {
            warn!("{queue_id}: not DKIM2-signed for {domain} (its DKIM1 signature goes on): {e}");
            Ok(None)
        }
        Err(e) => {
            error!("{queue_id}: failed to sign for {domain}: {e}");
            match shared.config.on_error {
                OnError::Accept => Ok(None),
                OnError::Tempfail => Err(Outcome::Tempfail(None)),
            }
        }
    }
}

/// The message as our door verified it, for a hop over `message`'s chain;
/// `None` (logged) when there is none to sign a hop for.
fn door_verified(
    shared: &Shared,
    message: &[u8],
    domain: &str,
    queue_id: &str,
) -> Option<Arc<Bytes>> {
    if !shared.config.dkim2.forward {
        warn!(
            "{queue_id}: no DKIM2 hop for {domain}: the message carries a chain and \
             [dkim2] forward is off"
        );
        return None;
    }
    let original = shared.dkim2.custody.recall(message);
    if original.is_none() {
        warn!(
            "{queue_id}: no DKIM2 hop for {domain}: its chain was not verified at our door \
             (or that was more than an hour ago)"
        );
    }
    original
}

/// Signs off the async workers: hashes and, for a hop, the recipe (a diff
/// of the two versions) are CPU work. The message is borrowed as it is
/// kept (its buffer or its spool file's map), not copied.
async fn sign_blocking(
    shared: &Arc<Shared>,
    message: &[u8],
    domain: &str,
    (mail_from, rcpt_to): (String, Vec<String>),
    original: Option<Arc<Bytes>>,
) -> Result<Vec<(&'static str, String)>, SignError> {
    crate::cpu::off_the_workers(async {
        let role = match &original {
            Some(o) => Role::Hop { original: o },
            None => Role::Originator,
        };
        let signer = shared
            .dkim2
            .signers
            .for_domain(domain)
            .ok_or_else(|| SignError::Crypto(format!("{domain} signs no DKIM2")))?;
        sign_fields(signer, message, &mail_from, &rcpt_to, role)
    })
    .await
}

/// `i=2 fwd.test` for the log line.
fn describe(fields: &[(&'static str, String)], domain: &str) -> String {
    let i = fields
        .first()
        .and_then(|(_, v)| v.split(';').find_map(|t| t.trim().strip_prefix("i=")))
        .unwrap_or("?");
    format!("i={i} {domain}")
}

/// Inserts the fields at the top, the signature above its instance.
async fn insert(
    actions: &EomActions,
    fields: Vec<(&'static str, String)>,
    leading_space: bool,
    queue_id: &str,
) -> Result<(), Outcome> {
    for (name, value) in fields.into_iter().rev() {
        // Milters pass folded values with LF; the MTA writes `Name:` + value.
        let value = value.replace("\r\n", "\n");
        let value = if leading_space {
            value
        } else {
            value.trim_start().to_string()
        };
        if let Err(e) = actions.insert_header(0, name, value).await {
            error!("{queue_id}: failed to add the {name} header: {e}");
            return Err(Outcome::Tempfail(None));
        }
    }
    Ok(())
}

/// A forwarding host passes a verified DSN about a message it forwarded
/// back to the hop before it (draft §16.3): the returned message as it
/// arrived here ([`crate::dkim2::dsn::propagate`]), `From` our
/// MAILER-DAEMON, `To` the previous hop's sender, the DSN's own DKIM2
/// fields removed (our second pass signs it anew). Whatever fails, the DSN goes on unchanged (logged).
pub(crate) async fn propagate(
    actions: &EomActions,
    shared: &Shared,
    evaluation: &Evaluation,
    message: &Message,
    complete: &[u8],
    leading_space: bool,
    queue_id: &str,
) {
    if !shared.config.dkim2.forward
        || !message.envelope.mail_from.is_empty()
        || shared.dkim2.signers.is_empty()
    {
        return;
    }
    let verified = evaluation
        .results
        .iter()
        .any(|r| r.check == check::NAME && r.status == Status::Pass);
    let ours = |d: &str| shared.dkim2.signers.for_domain(d).is_some();
    let Some(about) = crate::dkim2::dsn::about(complete, ours) else {
        return;
    };
    // Only our own hop is passed back (we forwarded the message).
    if !verified || about.i < 2 || !ours(&about.d) || !evaluation.verdict.applied().is_accept() {
        return;
    }
    let rebuilt = match crate::dkim2::dsn::propagate(complete) {
        Ok(rebuilt) => rebuilt,
        Err(e) => {
            warn!("{queue_id}: DSN not passed back with our hop undone: {e}");
            return;
        }
    };
    let body_start = crate::dkim2::header_fields(&rebuilt)
        .last()
        .map_or(0, |(_, r)| r.end);
    let body = rebuilt.get(body_start..).unwrap_or_default();
    let body = body.strip_prefix(b"\r\n").unwrap_or(body);
    if let Err(e) = actions.replace_body(body).await {
        warn!("{queue_id}: failed to replace the DSN body: {e}");
        return;
    }
    let space = if leading_space { " " } else { "" };
    let from = format!("{space}MAILER-DAEMON@{}", about.d);
    if let Err(e) = actions.change_header("From", 1, Some(from)).await {
        warn!("{queue_id}: failed to change the DSN's From: {e}");
    }
    // Addressed to the hop before ours (the SRS step sends it there).
    if let Some(to) = &about.previous_mf {
        if let Err(e) = actions
            .change_header("To", 1, Some(format!("{space}{to}")))
            .await
        {
            warn!("{queue_id}: failed to change the DSN's To: {e}");
        }
    }
    for name in [
        crate::dkim2::SIGNATURE_HEADER,
        crate::dkim2::INSTANCE_HEADER,
    ] {
        let count = crate::dkim2::header_fields(complete)
            .filter(|(n, _)| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
            .count();
        for index in (1..=count).rev() {
            let Ok(index) = i32::try_from(index) else {
                continue;
            };
            if let Err(e) = actions.change_header(name, index, None::<String>).await {
                warn!("{queue_id}: failed to remove the DSN's {name}: {e}");
            }
        }
    }
    tracing::info!(
        "{queue_id}: DKIM2 DSN about our hop i={} by {} passed back with the message as it arrived",
        about.i,
        about.d
    );
}
