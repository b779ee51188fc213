//! Per-connection state and the message lifecycle. Every milter callback is
//! one call into [`Session`]; the end of message runs the named steps in
//! order: remove forged headers, bounce guidance, then either sign (trusted
//! clients) or check (everyone else). The first RCPT may already reject
//! ([`early`]). The configuration is snapshotted
//! when the MTA connects, so a reload never changes a transaction
//! mid-flight.

use super::{
    dsn_guidance, early, inbound,
    message::{Message, Trust},
    outbound,
    recipients::{Class, Recipients},
    srs_step, Outcome,
};
use crate::{
    auth_results,
    envelope::{parse_mail_from, Envelope, TlsEvidence},
    reply::Reply,
    transaction::{Evaluation, Pending},
    Shared,
};
use indymilter::{ContextActions, EomActions, Macros, ProtoOpts, SocketInfo};
use std::{
    ffi::{CStr, CString},
    net::IpAddr,
    sync::Arc,
};
use tracing::{debug, error};

pub struct Session {
    shared: Arc<Shared>,
    /// Header values pass with their leading space (SMFIP_HDR_LEADSPC), both
    /// ways: values we add must then bring their own.
    leading_space: bool,
    /// The stages whose reply the MTA does not wait for (negotiated).
    noreply: ProtoOpts,
    client_ip: Option<IpAddr>,
    client_port: Option<u16>,
    helo: String,
    message: Option<Message>,
    /// Counts the transaction in `transactions_in_flight` until it ends
    /// (dropped with the message, or with the session).
    in_flight: Option<crate::metrics::InFlight>,
    /// What the first checked RCPT decided for the message: `Some(None)`
    /// go on, `Some(Some(evaluation))` rejected before the body.
    at_rcpt: Option<Option<Evaluation>>,
    /// Tokens and challenges, per recipient (src/milter/recipients.rs).
    recipients: Recipients,
}

impl Session {
    pub fn new(shared: Arc<Shared>, leading_space: bool, noreply: ProtoOpts) -> Self {
        Self {
            shared,
            leading_space,
            noreply,
            client_ip: None,
            client_port: None,
            helo: String::new(),
            message: None,
            in_flight: None,
            at_rcpt: None,
            recipients: Recipients::default(),
        }
    }

    pub fn connect(&mut self, socket: SocketInfo) {
        (self.client_ip, self.client_port) = match socket {
            SocketInfo::Inet(addr) => (Some(addr.ip()), Some(addr.port())),
            _ => (None, None),
        };
    }

    pub fn helo(&mut self, helo: &CStr) {
        self.helo = helo.to_string_lossy().into_owned();
    }

    /// MAIL FROM: a new message starts (a previous one, if any, was reset),
    /// and with it the checks.
    pub fn mail(&mut self, args: &[CString], macros: &Macros) {
        let sender = args.first().map(|a| a.to_string_lossy());
        let envelope = Envelope {
            client_ip: self.client_ip,
            helo: self.helo.clone(),
            mail_from: parse_mail_from(sender.as_deref().unwrap_or_default()),
            tls: TlsEvidence {
                client_port: self.client_port,
                ..TlsEvidence::from_macros(|name| {
                    let name = CString::new(name).ok()?;
                    macro_str(macros, &name)
                })
            },
        };
        let authenticated = macro_str(macros, c"{auth_authen}").is_some_and(|a| !a.is_empty());
        let trust = self.trust(authenticated);
        let pending = trust
            .is_none()
            .then(|| Pending::start(&self.shared, envelope.clone()));
        let limits = &self.shared.config.limits;
        let mut message = Message::new(
            envelope,
            trust,
            pending,
            limits.max_message_size,
            &limits.spool_dir,
        );
        if let Some(size) = size_param(args.get(1..).unwrap_or_default()) {
            message.expect_size(size);
        }
        self.message = Some(message);
        self.in_flight = Some(crate::metrics::InFlight::start());
        self.at_rcpt = None;
        self.recipients = Recipients::default();
    }

    /// Only what is proven is trusted: an authenticated session, or a client
    /// address in `trusted_networks`. A connection whose address the MTA
    /// did not give (a unix socket, an unknown family) is checked.
    fn trust(&self, authenticated: bool) -> Option<Trust> {
        let networks = &self.shared.config.trusted_networks;
        if authenticated {
            Some(Trust::SmtpAuth)
        } else if self
            .client_ip
            .is_some_and(|ip| networks.iter().any(|n| n.contains(ip)))
        {
            Some(Trust::TrustedNetwork)
        } else {
            None
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// RCPT TO: `Some(reply)` refuses the recipient: an invalid SRS address
    /// of ours, or an invalid token, for this recipient only. Checked
    /// recipients all get the same answer (an early reject refuses the
    /// message before DATA); a recipient with a token or a solved
    /// challenge is classed on its own (src/milter/recipients.rs).
    pub async fn rcpt(&mut self, args: &[CString], macros: &Macros) -> Option<Reply> {
        let m = self.message.as_mut()?;
        // Postfix has no queue ID before the first accepted recipient and
        // logs `NOQUEUE` for these rejects; so do we.
        let queue_id = || macro_str(macros, c"i").unwrap_or_else(|| "NOQUEUE".into());
        let address = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(reply) = srs_step::refuse_rcpt(&self.shared, m, &address, &queue_id()) {
            return Some(reply);
        }
        if m.trust.is_none() {
            let queue_id = queue_id();
            let class = match self
                .recipients
                .classify(&self.shared, m, &address, &queue_id)
                .await
            {
                Ok(class) => class,
                Err(reply) => return Some(reply),
            };
            if class == Class::Checked {
                if self.at_rcpt.is_none() {
                    self.at_rcpt = Some(early::reject(&self.shared, m).await);
                }
                if let Some(Some(evaluation)) = &mut self.at_rcpt {
                    let reply =
                        self.recipients
                            .refusal(&self.shared, m, evaluation, &address, &queue_id);
                    return Some(reply);
                }
            }
            if let Some(reply) = self.recipients.take(class, &address) {
                return Some(reply);
            }
        }
        m.rcpt(&address);
        None
    }

    pub fn header(&mut self, name: &CStr, value: &CStr) {
        let id = &self.shared.config.authserv_id;
        if let Some(m) = self.message.as_mut() {
            m.header(name.to_bytes(), value.to_bytes(), id);
        }
    }

    pub fn body(&mut self, chunk: &[u8]) {
        if let Some(m) = self.message.as_mut() {
            m.body(chunk);
        }
    }

    /// RSET, abort or close: the message is gone, and its checks with it.
    pub fn abort(&mut self) {
        self.message = None;
        self.in_flight = None;
        self.at_rcpt = None;
        self.recipients = Recipients::default();
    }

    /// The status for a stage that always goes on: `Noreply` when the MTA
    /// agreed not to wait for it (`stage` is the `NOREPLY_*` option; none
    /// for abort and close, which get no reply anyway).
    pub(crate) fn go_on(&self, stage: ProtoOpts) -> indymilter::Status {
        if self.noreply.intersects(stage) {
            indymilter::Status::Noreply
        } else {
            indymilter::Status::Continue
        }
    }

    /// End of message: the lifecycle's steps, in order.
    pub(crate) async fn end_of_message(
        &mut self,
        actions: &EomActions,
        macros: &Macros,
    ) -> Outcome {
        let queue_id = macro_str(macros, c"i").unwrap_or_else(|| "NOQUEUE".into());
        let _in_flight = self.in_flight.take();
        let Some(mut message) = self.message.take() else {
            return Outcome::Accept;
        };
        // Rejected at RCPT (logged there) and no recipient let through by
        // a token or a challenge: an MTA that went on anyway gets the same
        // answer.
        let recipients = std::mem::take(&mut self.recipients);
        if let Some(Some(evaluation)) = self.at_rcpt.take() {
            if recipients.accepted.is_none() {
                return super::from_verdict(&evaluation.verdict);
            }
        }
        let shared = self.shared.clone();
        if let Err(e) = remove_forged_headers(actions, &message).await {
            error!("{queue_id}: failed to delete a forged Authentication-Results header: {e}");
            return super::internal_error(&shared.config);
        }
        // Before anything that reads the body: the MTA's own bounces come
        // from trusted clients and get the guidance, then a signature over
        // the new body.
        if message.trust.is_some() {
            if let Some(body) = dsn_guidance::add(
                actions,
                &mut message,
                &shared,
                self.leading_space,
                &queue_id,
            )
            .await
            {
                if let Err(e) = message.replace_body(&body) {
                    // Signing below fails the same way and says what follows.
                    error!("{queue_id}: failed to keep the DSN's new body: {e}");
                }
            }
        }
        if let Some(sender) = srs_step::rewrite(actions, &shared, &message, &queue_id).await {
            message.envelope.mail_from = sender;
        }
        match message.trust {
            Some(trust) => {
                outbound::sign(
                    actions,
                    &shared,
                    &mut message,
                    trust,
                    self.leading_space,
                    &queue_id,
                )
                .await
            }
            None => {
                inbound::check(
                    actions,
                    &shared,
                    message,
                    &recipients,
                    self.leading_space,
                    &queue_id,
                )
                .await
            }
        }
    }
}

/// Headers that claim our authserv-id are forgeries, whoever sent them;
/// the last is deleted first so that the occurrence numbers stay valid.
async fn remove_forged_headers(
    actions: &EomActions,
    message: &Message,
) -> Result<(), indymilter::ActionError> {
    for &index in message.forged_ar.iter().rev() {
        let Ok(index) = i32::try_from(index) else {
            continue;
        };
        actions
            .change_header(auth_results::HEADER, index, None::<CString>)
            .await?;
    }
    Ok(())
}

/// The `SIZE=` ESMTP parameter of MAIL FROM (RFC 1870), if any.
fn size_param(params: &[CString]) -> Option<usize> {
    params.iter().find_map(|p| {
        let p = p.to_str().ok()?;
        let (key, value) = p.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())
            .flatten()
    })
}

fn macro_str(macros: &Macros, name: &CStr) -> Option<String> {
    let value = macros.get(name)?;
    debug!("macro {name:?} = {value:?}");
    Some(value.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_param_is_read_case_blind_and_never_trusted_blindly() {
        let args =
            |a: &[&str]| -> Vec<CString> { a.iter().map(|s| CString::new(*s).unwrap()).collect() };
        assert_eq!(
            size_param(&args(&["BODY=8BITMIME", "size=4096"])),
            Some(4096)
        );
        assert_eq!(size_param(&args(&["SIZE=lots"])), None);
        assert_eq!(size_param(&args(&[])), None);
    }
}
