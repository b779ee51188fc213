//! Protocol negotiation: the actions and options we need from the MTA,
//! the stages we skip, and the macros we ask for.

use super::session::Session;
use crate::Shared;
use indymilter::{Actions, MacroStage, NegotiateContext, ProtoOpts, Status};
use std::{ffi::CString, sync::Arc};
use tracing::{error, warn};

pub(crate) fn negotiate(
    cx: &mut NegotiateContext<Session>,
    shared: Arc<Shared>,
    actions: Actions,
    opts: ProtoOpts,
) -> Status {
    let wanted = Actions::ADD_HEADER | Actions::CHANGE_HEADER;
    if !actions.contains(wanted) {
        error!("the MTA cannot add and change headers; refusing the connection");
        return Status::Reject;
    }
    cx.requested_actions |= wanted;
    // Bounce guidance rewrites DSN bodies and needs their recipients; so
    // does a DKIM2 forwarder passing DSNs back (src/dkim2/dsn.rs).
    let bounces = shared.config.guidance.bounces && actions.contains(Actions::REPLACE_BODY);
    if shared.config.dkim2.forward && actions.contains(Actions::REPLACE_BODY) {
        cx.requested_actions |= Actions::REPLACE_BODY;
    }
    if bounces {
        cx.requested_actions |= Actions::REPLACE_BODY;
    } else if shared.config.guidance.bounces {
        warn!("the MTA cannot replace message bodies; bounces get no guidance");
    }
    // SRS changes the sender and rewrites recipients (src/milter/srs_step.rs).
    let srs = Actions::CHANGE_SENDER | Actions::ADD_RCPT | Actions::DELETE_RCPT;
    if shared.srs.is_some() {
        if actions.contains(srs) {
            cx.requested_actions |= srs;
        } else {
            warn!("the MTA cannot change senders and recipients; SRS is not applied");
        }
    }
    // Exact header whitespace keeps `c=simple` signatures verifiable.
    let leading_space = opts.contains(ProtoOpts::LEADING_SPACE);
    if leading_space {
        cx.requested_opts |= ProtoOpts::LEADING_SPACE;
    } else {
        warn!(
            "the MTA cannot pass exact header whitespace; simple-canonicalised signatures may fail"
        );
    }
    // Stages we have no use for. RCPT: bounce guidance reads the
    // recipients, and enforce mode rejects there when a check that needs
    // no message failed (the configuration is this connection's snapshot).
    // Tokens and challenges are per recipient; DKIM2 binds every RCPT:
    // verifying and signing it needs them.
    let rcpt_wanted = bounces
        || super::early::wanted(&shared.config)
        || shared.controls.is_some()
        || crate::dkim2::needs_recipients(&shared);
    let rcpt_stage = (!rcpt_wanted).then_some(ProtoOpts::NO_RCPT);
    for unneeded in
        rcpt_stage
            .into_iter()
            .chain([ProtoOpts::NO_DATA, ProtoOpts::NO_UNKNOWN, ProtoOpts::NO_EOH])
    {
        if opts.contains(unneeded) {
            cx.requested_opts |= unneeded;
        }
    }
    // Stages at which we never refuse or defer (verdicts wait for RCPT or
    // the end of message): the MTA need not wait for our reply, which saves
    // a round trip per header field — most of the protocol's traffic.
    let noreply = opts
        & (ProtoOpts::NOREPLY_CONNECT
            | ProtoOpts::NOREPLY_HELO
            | ProtoOpts::NOREPLY_MAIL
            | ProtoOpts::NOREPLY_HEADER
            | ProtoOpts::NOREPLY_BODY);
    cx.requested_opts |= noreply;
    let macros = [
        (MacroStage::Connect, "j {daemon_name}"),
        (
            MacroStage::Helo,
            "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer} {verify}",
        ),
        // Postfix may send the TLS macros at MAIL instead of HELO.
        (
            MacroStage::Mail,
            "i {auth_authen} {auth_type} {tls_version} {cipher} {cipher_bits} \
             {cert_subject} {cert_issuer} {verify}",
        ),
        (MacroStage::Eom, "i"),
    ];
    for (stage, names) in macros {
        if let Ok(names) = CString::new(names) {
            cx.requested_macros.insert(stage, names);
        }
    }
    cx.data = Some(Session::new(shared, leading_space, noreply));
    Status::Continue
}
