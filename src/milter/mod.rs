//! The milter protocol side: indymilter callbacks, each one call into the
//! connection's [`Session`], which owns the message lifecycle; this module
//! only negotiates the protocol and turns an [`Outcome`] into the reply.

mod dkim2_step;
mod dsn_guidance;
mod early;
mod inbound;
pub(crate) mod message;
mod negotiate;
mod outbound;
mod recipients;
mod session;
mod srs_step;

use crate::{
    config::{Config, Mode, OnError},
    reply::{Code, Reply},
    verdict::Verdict,
    SharedHandle,
};
use indymilter::{Callbacks, ProtoOpts, SetErrorReply, SmtpReply, Status};
use session::Session;
use tracing::error;

pub fn callbacks(shared: SharedHandle) -> Callbacks<Session> {
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            let snapshot = shared.current();
            Box::pin(async move { negotiate::negotiate(cx, snapshot, actions, opts) })
        })
        .on_connect(|cx, _, socket| {
            Box::pin(async move {
                with(&mut cx.data, ProtoOpts::NOREPLY_CONNECT, |s| {
                    s.connect(socket)
                })
            })
        })
        .on_helo(|cx, helo| {
            Box::pin(async move { with(&mut cx.data, ProtoOpts::NOREPLY_HELO, |s| s.helo(&helo)) })
        })
        .on_mail(|cx, args| {
            Box::pin(async move {
                with(&mut cx.data, ProtoOpts::NOREPLY_MAIL, |s| {
                    s.mail(&args, &cx.macros)
                })
            })
        })
        .on_rcpt(|cx, args| {
            Box::pin(async move {
                let Some(session) = cx.data.as_mut() else {
                    return Status::Tempfail;
                };
                match session.rcpt(&args, &cx.macros).await {
                    // 4xx: a recipient for another transaction, or the
                    // state store did not answer (src/milter/recipients.rs).
                    Some(reply) if reply.code.is_temporary() => {
                        answer(Outcome::Tempfail(Some(reply)), &mut cx.reply)
                    }
                    Some(reply) => answer(Outcome::Reject(Some(reply)), &mut cx.reply),
                    None => Status::Continue,
                }
            })
        })
        .on_header(|cx, name, value| {
            Box::pin(async move {
                with(&mut cx.data, ProtoOpts::NOREPLY_HEADER, |s| {
                    s.header(&name, &value)
                })
            })
        })
        .on_body(|cx, chunk| {
            Box::pin(async move { with(&mut cx.data, ProtoOpts::NOREPLY_BODY, |s| s.body(&chunk)) })
        })
        .on_eom(|cx| {
            Box::pin(async move {
                let Some(session) = cx.data.as_mut() else {
                    return Status::Tempfail;
                };
                let outcome = session.end_of_message(&cx.actions, &cx.macros).await;
                answer(outcome, &mut cx.reply)
            })
        })
        // Abort and close get no reply whatever we return.
        .on_abort(|cx| {
            Box::pin(async move { with(&mut cx.data, ProtoOpts::empty(), Session::abort) })
        })
        .on_close(|cx| {
            Box::pin(async move { with(&mut cx.data, ProtoOpts::empty(), Session::abort) })
        })
}

/// Runs `f` on the session of a stage that always goes on (`Noreply` when
/// the MTA agreed to `noreply` for it); without a session (negotiation
/// failed) the MTA is told to try later.
fn with(data: &mut Option<Session>, noreply: ProtoOpts, f: impl FnOnce(&mut Session)) -> Status {
    match data.as_mut() {
        Some(session) => {
            f(session);
            session.go_on(noreply)
        }
        None => Status::Tempfail,
    }
}

/// What the MTA is told: our reply to a reject or tempfail, or none (a
/// tempfail with the MTA's own text, when the message could not be
/// modified as required: docs/protocol.md §7.1).
pub(crate) type Outcome = crate::reply::Outcome<Option<Reply>>;

/// The answer for `verdict`.
fn from_verdict(verdict: &Verdict) -> Outcome {
    verdict.applied().map(|reply| Some(reply.clone()))
}

/// The milter failed: `on_error` decides, except in monitor mode, which
/// must never stop mail.
fn internal_error(config: &Config) -> Outcome {
    if config.mode == Mode::Monitor || config.on_error == OnError::Accept {
        return Outcome::Accept;
    }
    Outcome::Tempfail(Some(Reply::new(
        Code::INTERNAL,
        ["Temporary local problem checking the sender; please try again later".to_string()],
    )))
}

/// Sets our reply text, if any, and gives the status for the MTA.
fn answer(outcome: Outcome, smtp: &mut SmtpReply) -> Status {
    let (reply, status) = match outcome {
        Outcome::Accept => return Status::Accept,
        Outcome::Tempfail(None) => return Status::Tempfail,
        Outcome::Reject(None) => return Status::Reject,
        Outcome::Reject(Some(reply)) => (reply, Status::Reject),
        Outcome::Tempfail(Some(reply)) => (reply, Status::Tempfail),
    };
    crate::metrics::reply_sent(reply.code);
    let code = reply.code.reply.to_string();
    let lines = reply.lines.iter().map(String::as_str);
    if let Err(e) = smtp.set_error_reply(&code, Some(reply.code.enhanced), lines) {
        // Our own sanitising makes this unreachable; the plain status
        // still rejects or defers, only without our text.
        error!("failed to set the SMTP reply: {e}");
    }
    status
}
