//! The milter protocol side: indymilter callbacks that collect the envelope,
//! macros, headers and body, and apply the verdict. Thin on purpose; the
//! state lives in [`session`], the decisions in [`crate::transaction`].

mod bounce;
mod outbound;
mod session;

use crate::{
    auth_results,
    checks::Code,
    config::{Mode, OnError},
    envelope::TlsEvidence,
    logging, metrics,
    verdict::{Action, Reply},
    SharedHandle,
};
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, Macros, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use session::Session;
use std::ffi::{CStr, CString};
use tracing::{debug, error, warn};

pub fn callbacks(shared: SharedHandle) -> Callbacks<Session> {
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            let snapshot = shared.current();
            Box::pin(async move { negotiate(cx, snapshot, actions, opts) })
        })
        .on_connect(|cx, _, socket| Box::pin(async move { connect(cx, socket) }))
        .on_helo(|cx, helo| Box::pin(async move { helo_(cx, helo) }))
        .on_mail(|cx, args| Box::pin(async move { mail(cx, args) }))
        .on_rcpt(|cx, args| Box::pin(async move { rcpt(cx, args) }))
        .on_header(|cx, name, value| Box::pin(async move { header(cx, name, value) }))
        .on_body(|cx, chunk| Box::pin(async move { body(cx, &chunk) }))
        .on_eom(|cx| Box::pin(eom(cx)))
        .on_abort(|cx| Box::pin(async move { reset(&mut cx.data) }))
        .on_close(|cx| Box::pin(async move { reset(&mut cx.data) }))
}

fn negotiate(
    cx: &mut NegotiateContext<Session>,
    shared: std::sync::Arc<crate::Shared>,
    actions: Actions,
    opts: ProtoOpts,
) -> Status {
    let wanted = Actions::ADD_HEADER | Actions::CHANGE_HEADER;
    if !actions.contains(wanted) {
        error!("the MTA cannot add and change headers; refusing the connection");
        return Status::Reject;
    }
    cx.requested_actions |= wanted;
    // Bounce guidance rewrites DSN bodies and needs their recipients.
    let bounces = shared.config.guidance.bounces && actions.contains(Actions::REPLACE_BODY);
    if bounces {
        cx.requested_actions |= Actions::REPLACE_BODY;
    } else if shared.config.guidance.bounces {
        warn!("the MTA cannot replace message bodies; bounces get no guidance");
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
    // Stages we have no use for.
    let rcpt_stage = (!bounces).then_some(ProtoOpts::NO_RCPT);
    for unneeded in
        rcpt_stage
            .into_iter()
            .chain([ProtoOpts::NO_DATA, ProtoOpts::NO_UNKNOWN, ProtoOpts::NO_EOH])
    {
        if opts.contains(unneeded) {
            cx.requested_opts |= unneeded;
        }
    }
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
    cx.data = Some(Session::new(shared, leading_space));
    Status::Continue
}

fn connect(cx: &mut Context<Session>, socket: SocketInfo) -> Status {
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    session.client_ip = match socket {
        SocketInfo::Inet(addr) => Some(addr.ip()),
        _ => None,
    };
    Status::Continue
}

fn helo_(cx: &mut Context<Session>, helo: CString) -> Status {
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    session.helo = helo.to_string_lossy().into_owned();
    Status::Continue
}

fn mail(cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let authenticated = macro_str(&cx.macros, c"{auth_authen}").is_some_and(|a| !a.is_empty());
    let tls = TlsEvidence::from_macros(|name| {
        let name = CString::new(name).ok()?;
        macro_str(&cx.macros, &name)
    });
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    let sender = args
        .first()
        .map(|a| a.to_string_lossy())
        .unwrap_or_default();
    session.mail(&sender, authenticated, tls);
    Status::Continue
}

fn rcpt(cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    if let (Some(m), Some(arg)) = (session.message.as_mut(), args.first()) {
        m.rcpt(&arg.to_string_lossy());
    }
    Status::Continue
}

fn header(cx: &mut Context<Session>, name: CString, value: CString) -> Status {
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    let id = session.shared.config.authserv_id.clone();
    if let Some(m) = session.message.as_mut() {
        m.header(name.as_bytes(), value.as_bytes(), &id);
    }
    Status::Continue
}

fn body(cx: &mut Context<Session>, chunk: &[u8]) -> Status {
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    if let Some(m) = session.message.as_mut() {
        m.body(chunk);
    }
    Status::Continue
}

fn reset(data: &mut Option<Session>) -> Status {
    if let Some(session) = data.as_mut() {
        session.message = None;
    }
    Status::Continue
}

async fn eom(cx: &mut EomContext<Session>) -> Status {
    let queue_id = macro_str(&cx.macros, c"i").unwrap_or_else(|| "NOQUEUE".into());
    let Some(session) = cx.data.as_mut() else {
        return Status::Tempfail;
    };
    let Some(mut message) = session.message.take() else {
        return Status::Accept;
    };
    let shared = session.shared.clone();
    let config = &shared.config;

    // Headers that claim our authserv-id are forgeries, whoever sent them;
    // delete the last first so that the occurrence numbers stay valid.
    for &index in message.forged_ar.iter().rev() {
        let Ok(index) = i32::try_from(index) else {
            continue;
        };
        if let Err(e) = cx
            .actions
            .change_header(auth_results::HEADER, index, None::<CString>)
            .await
        {
            error!("{queue_id}: failed to delete a forged Authentication-Results header: {e}");
            return Status::Tempfail;
        }
    }
    // Before anything that reads the body: local bounces come from trusted
    // clients (the MTA itself) and get the guidance too.
    bounce::add_guidance(
        &cx.actions,
        &message,
        &shared,
        session.leading_space,
        &queue_id,
    )
    .await;
    if let Some(how) = message.trusted {
        let leading_space = session.leading_space;
        let signed = match outbound::sign(cx, &shared, &mut message, leading_space, &queue_id).await
        {
            Ok(signed) => signed,
            Err(status) => return status,
        };
        logging::trusted_message(&queue_id, &message.envelope, how, signed.as_deref());
        metrics::record_trusted();
        return Status::Accept;
    }

    let evaluation = match message.evaluate(&shared).await {
        Ok(e) => e,
        Err(e) => {
            error!("{queue_id}: failed to check message: {e}");
            return internal_error(cx, config.mode, config.on_error);
        }
    };
    let mut value = auth_results::header_value(config, &evaluation.results, &evaluation.verdict);
    if session.leading_space {
        value.insert(0, ' ');
    }
    if let Err(e) = cx
        .actions
        .insert_header(0, auth_results::HEADER, value)
        .await
    {
        error!("{queue_id}: failed to add the Authentication-Results header: {e}");
        return Status::Tempfail;
    }
    logging::checked_message(&queue_id, &message.envelope, &evaluation);
    metrics::record(&evaluation);

    let verdict = &evaluation.verdict;
    match (verdict.action, &verdict.reply) {
        (Action::Reject, Some(reply)) => set_reply(cx, reply, Status::Reject),
        (Action::Tempfail, Some(reply)) => set_reply(cx, reply, Status::Tempfail),
        _ => Status::Accept,
    }
}

fn set_reply(cx: &mut EomContext<Session>, reply: &Reply, status: Status) -> Status {
    let code = reply.code.reply.to_string();
    match cx.reply.set_error_reply(
        &code,
        Some(reply.code.enhanced),
        reply.lines.iter().map(String::as_str),
    ) {
        Ok(()) => status,
        Err(e) => {
            // Our own sanitising makes this unreachable; the plain status
            // still rejects or defers, only without our text.
            error!("failed to set the SMTP reply: {e}");
            status
        }
    }
}

/// The milter failed: `on_error` decides, except in monitor mode, which
/// must never stop mail.
fn internal_error(cx: &mut EomContext<Session>, mode: Mode, on_error: OnError) -> Status {
    if mode == Mode::Monitor || on_error == OnError::Accept {
        return Status::Accept;
    }
    let reply = Reply::new(
        Code::INTERNAL,
        ["Temporary local problem checking the sender; please try again later".to_string()],
    );
    set_reply(cx, &reply, Status::Tempfail)
}

fn macro_str(macros: &Macros, name: &CStr) -> Option<String> {
    let value = macros.get(name)?;
    debug!("macro {name:?} = {value:?}");
    Some(value.to_string_lossy().into_owned())
}
