//! A second milter that does what a mailing list manager does to a
//! message: it appends a footer to the body. It acts on mail from outside
//! only (a forwarding host's first pass), not on the host's own second
//! pass (its address is given), and not on bounces (null sender). Runs in
//! the test process on a loopback port, served by indymilter like the
//! daemon itself.
#![allow(dead_code)]

use indymilter::{Actions, Callbacks, ContextActions, SocketInfo, Status};
use std::net::{IpAddr, SocketAddr};
use tokio::{net::TcpListener, sync::oneshot};

/// What one connection's message has so far.
#[derive(Default)]
struct Message {
    outside: bool,
    bounce: bool,
    body: Vec<u8>,
}

/// The footer milter, serving until dropped.
pub struct FooterMilter {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FooterMilter {
    /// Appends `footer` (CRLF line ends) to the body of every message with
    /// a sender from a client other than `host` (the second pass).
    pub async fn start(footer: &'static str, host: IpAddr) -> FooterMilter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let callbacks = Callbacks::<Message>::new()
            .on_negotiate(|cx, _, _| {
                Box::pin(async move {
                    cx.requested_actions |= Actions::REPLACE_BODY;
                    cx.data = Some(Message::default());
                    Status::Continue
                })
            })
            .on_connect(move |cx, _, socket| {
                Box::pin(async move {
                    let outside = match socket {
                        SocketInfo::Inet(a) => a.ip() != host,
                        _ => false,
                    };
                    if let Some(m) = cx.data.as_mut() {
                        m.outside = outside;
                    }
                    Status::Continue
                })
            })
            .on_mail(|cx, args| {
                Box::pin(async move {
                    if let Some(m) = cx.data.as_mut() {
                        m.body.clear();
                        m.bounce = args.first().is_some_and(|a| a.to_bytes() == b"<>");
                    }
                    Status::Continue
                })
            })
            .on_body(|cx, chunk| {
                Box::pin(async move {
                    if let Some(m) = cx.data.as_mut() {
                        m.body.extend_from_slice(&chunk);
                    }
                    Status::Continue
                })
            })
            .on_eom(move |cx| {
                Box::pin(async move {
                    if let Some(m) = cx.data.as_mut().filter(|m| m.outside && !m.bounce) {
                        let mut body = std::mem::take(&mut m.body);
                        body.extend_from_slice(footer.as_bytes());
                        if cx.actions.replace_body(&body).await.is_err() {
                            return Status::Tempfail;
                        }
                    }
                    Status::Continue
                })
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(indymilter::run(
            listener,
            callbacks,
            indymilter::Config::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        FooterMilter { addr, _stop: stop }
    }
}
