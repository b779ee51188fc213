//! The certificate probe under a flood (issue #13): a client IP whose port
//! 25 drips its banner one byte a second, sending many messages at once,
//! each with another HELO name, must not keep a good sender on another IP
//! from being probed. Real sockets, real responders on loopback addresses
//! of their own (127.0.0.41–.42), a test CA made in code.

mod common;

use common::{
    dns::TestDns,
    message, open, send,
    tls::{probe_port, Behaviour, Leaf, Pki, Responder},
    Daemon, Outcome, Transaction,
};
use indymilter_test::{EomActions, MacroStage, ProtoOpts, Status, TestConnection};
use std::{ffi::CString, net::IpAddr, time::Duration};
use tokio::sync::mpsc;

const FROM: &str = "alice@sender.test";
const GOOD_IP: &str = "127.0.0.41";
const DRIP_IP: &str = "127.0.0.42";
/// Messages from the dripping IP, all pending at once.
const FLOOD: usize = 40;
/// However the probe behaves, the test ends (the drip never does).
const GUARD: Duration = Duration::from_secs(120);

/// An encrypted session without a verified client certificate: the check
/// probes the client.
const UNVERIFIED_TLS: (&str, &str) = ("{tls_version}", "TLSv1.3");

/// A message from `ip` with HELO `helo`, sent up to MAIL FROM (which starts
/// the probe); `at_mail` hears when it got there; the rest follows at once.
async fn flood_message(
    addr: std::net::SocketAddr,
    ip: IpAddr,
    helo: String,
    at_mail: mpsc::Sender<()>,
) -> Outcome {
    let mut conn = open(addr, ip, &helo).await;
    conn.macros(MacroStage::Mail, [("i", "FLOOD"), UNVERIFIED_TLS])
        .await
        .expect("macros");
    let status = conn.mail([format!("<{FROM}>")]).await.expect("mail");
    assert!(common::goes_on(&status), "{status:?}");
    let _ = at_mail.send(()).await;
    let outcome = finish(&mut conn).await;
    let _ = conn.close().await;
    outcome
}

/// RCPT, the message and end of message.
async fn finish(conn: &mut TestConnection) -> Outcome {
    let opts = conn.negotiated_opts();
    if !opts.contains(ProtoOpts::NO_RCPT) {
        let status = conn.rcpt(["<bob@receiver.test>"]).await.expect("rcpt");
        if status != Status::Continue {
            conn.abort().await.expect("abort");
            let actions = EomActions { actions: vec![] };
            return Outcome {
                rcpts: vec![status.clone()],
                status,
                actions,
                at_rcpt: true,
            };
        }
    }
    let text = message(FROM);
    let (head, body) = text.split_once("\r\n\r\n").expect("header and body");
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').expect("header field");
        let (name, value) = (CString::new(name).unwrap(), CString::new(value).unwrap());
        conn.header(name, value).await.expect("header");
    }
    if !opts.contains(ProtoOpts::NO_EOH) {
        conn.eoh().await.expect("eoh");
    }
    conn.body(body.as_bytes().to_vec()).await.expect("body");
    let (actions, status) = conn.eom().await.expect("eom");
    Outcome {
        status,
        actions,
        at_rcpt: false,
        rcpts: vec![Status::Continue],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dripping_client_with_many_helo_names_does_not_starve_a_good_sender() {
    tokio::time::timeout(GUARD, flood_and_good_sender())
        .await
        .expect("the flood test finished");
}

async fn flood_and_good_sender() {
    let pki = Pki::new("flood");
    let leaf = pki.leaf(Leaf::valid(&["mail.sender.test"], 120));
    let good = Responder::start(
        GOOD_IP,
        Behaviour::StartTls {
            identity: leaf,
            ocsp: None,
        },
    );
    let drip = Responder::start(DRIP_IP, Behaviour::Drip);
    let dns = TestDns::start(common::sender_zone()).await;
    let config = common::config(
        &dns,
        &format!(
            "[tls]\nprobe_port = {}\nprobe_timeout_ms = 3000\nca_file = \"{}\"\n",
            probe_port(),
            pki.ca_file().display()
        ),
    );
    let daemon = Daemon::start(&config).await;

    // The flood: every message's probe is started (MAIL FROM) before the
    // good sender comes.
    let (at_mail, mut arrived) = mpsc::channel(FLOOD);
    let drip_ip: IpAddr = DRIP_IP.parse().unwrap();
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let helo = format!("host{i}.flood.test");
            tokio::spawn(flood_message(daemon.addr, drip_ip, helo, at_mail.clone()))
        })
        .collect();
    for _ in 0..FLOOD {
        arrived
            .recv()
            .await
            .expect("a flood message reached MAIL FROM");
    }
    while drip.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The good sender, meanwhile: probed, verified, accepted.
    let mut t = Transaction::new(GOOD_IP, FROM, message(FROM));
    t.tls_macros = vec![UNVERIFIED_TLS];
    let outcome = send(daemon.addr, &t).await;
    assert_eq!(outcome.status, Status::Accept, "{}", outcome.reply());
    let ar = outcome
        .auth_results()
        .expect("Authentication-Results added");
    assert!(
        ar.contains(
            "x-tls=pass (TLSv1.3, cert verified by probe for mail.sender.test, \
             CN=mail.sender.test)"
        ),
        "{ar}"
    );
    assert_eq!(good.connections(), 1);

    // The flood: every message is deferred, none passes.
    for task in flood {
        let outcome = task.await.expect("flood message");
        let reply = outcome.reply();
        assert!(
            matches!(outcome.status, Status::Tempfail { .. }),
            "expected a tempfail, got {:?}: {reply}",
            outcome.status
        );
        assert!(reply.starts_with("451-4.7.5"), "{reply:?}");
        assert!(reply.contains("certificate probe failed"), "{reply:?}");
    }
    assert_eq!(
        drip.connections(),
        1,
        "one probe of the dripping IP, not one per HELO name"
    );
}
