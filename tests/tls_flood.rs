//! The certificate probe under a flood (issue #13): a client IP whose port
//! 25 drips its banner one byte a second, sending many messages at once,
//! each with another HELO name, must not keep a good sender on another IP
//! from being probed. Real sockets, real responders on loopback addresses
//! of their own (127.0.0.41–.42), a test CA made in code.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let good = good_sender(&pki, GOOD_IP, 120);
    let drip = Responder::start(DRIP_IP, Behaviour::Drip);
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&flood_config(&dns, &pki, 3000)).await;

    // The flood: every message's probe is started (MAIL FROM) before the
    // good sender comes, each under another HELO name.
    let drip_ip: IpAddr = DRIP_IP.parse().unwrap();
    let flood = flood_from(daemon.addr, std::iter::repeat_n(drip_ip, FLOOD)).await;
    while drip.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The good sender, meanwhile: probed, verified, accepted.
    assert_passes(daemon.addr, GOOD_IP).await;
    assert_eq!(good.connections(), 1);

    // The flood: every message is deferred, none passes.
    assert_all_deferred(flood).await;
    assert_eq!(
        drip.connections(),
        1,
        "one probe of the dripping IP, not one per HELO name"
    );
}

/// A good sender on `ip`: STARTTLS with a certificate of `pki` for its
/// HELO name.
fn good_sender(pki: &Pki, ip: &str, serial: u32) -> Responder {
    let leaf = pki.leaf(Leaf::valid(&["mail.sender.test"], serial));
    Responder::start(
        ip,
        Behaviour::StartTls {
            identity: leaf,
            ocsp: None,
        },
    )
}

/// A message from the good sender on `ip`: probed, verified, accepted.
async fn assert_passes(addr: std::net::SocketAddr, ip: &str) {
    let mut t = Transaction::new(ip, FROM, message(FROM));
    t.tls_macros = vec![UNVERIFIED_TLS];
    let outcome = send(addr, &t).await;
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
}

/// Dripping responders on `127.0.NET.HOST` for each host.
fn drips(net: u8, hosts: std::ops::RangeInclusive<u8>) -> Vec<(IpAddr, Responder)> {
    hosts
        .map(|h| {
            let ip = format!("127.0.{net}.{h}");
            (ip.parse().unwrap(), Responder::start(&ip, Behaviour::Drip))
        })
        .collect()
}

fn probes_of(drips: &[(IpAddr, Responder)]) -> usize {
    drips.iter().map(|(_, r)| r.connections()).sum()
}

/// A daemon trusting `pki` that probes with `timeout_ms`.
fn flood_config(dns: &TestDns, pki: &Pki, timeout_ms: u64) -> String {
    common::config(
        dns,
        &format!(
            "[tls]\nprobe_port = {}\nprobe_timeout_ms = {timeout_ms}\nca_file = \"{}\"\n",
            probe_port(),
            pki.ca_file().display()
        ),
    )
}

/// One message from each of `ips`, all at MAIL FROM (their probes asked
/// for) when this returns.
async fn flood_from(
    addr: std::net::SocketAddr,
    ips: impl Iterator<Item = IpAddr>,
) -> Vec<tokio::task::JoinHandle<Outcome>> {
    let (at_mail, mut arrived) = mpsc::channel(256);
    let tasks: Vec<_> = ips
        .enumerate()
        .map(|(i, ip)| {
            let helo = format!("host{i}.flood.test");
            tokio::spawn(flood_message(addr, ip, helo, at_mail.clone()))
        })
        .collect();
    for _ in 0..tasks.len() {
        arrived.recv().await.expect("a flood message at MAIL FROM");
    }
    tasks
}

async fn assert_all_deferred(tasks: Vec<tokio::task::JoinHandle<Outcome>>) {
    for task in tasks {
        let outcome = task.await.expect("flood message");
        outcome.assert_tempfailed("451-4.7.5", &["certificate probe failed"]);
    }
}

/// Many hosts of one network (here a /24; a /64 for IPv6, see the unit
/// tests of `tls::slots`), each a single flight of its own, must not hold
/// every probe slot: a good sender of another network is probed while
/// they wait, and the network gets its share of probes, not one per host.
/// Two waves of 32 hosts, the second queued before the good sender: with
/// slots per IP only, all 64 hosts are probed, each wave holding all 32
/// slots, and the good sender waits behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_cannot_hold_every_probe_slot() {
    tokio::time::timeout(GUARD, network_flood_and_good_sender())
        .await
        .expect("the network flood test finished");
}

async fn network_flood_and_good_sender() {
    let pki = Pki::new("net-flood");
    let good_ip = "127.0.4.41";
    let good = good_sender(&pki, good_ip, 121);
    let flood = drips(3, 1..=64);
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&flood_config(&dns, &pki, 2000)).await;

    let ips: Vec<IpAddr> = flood.iter().map(|(ip, _)| *ip).collect();
    let mut waves = flood_from(daemon.addr, ips[..32].iter().copied()).await;
    while probes_of(&flood) < mailkey_milter::tls::MAX_PROBES_PER_NETWORK {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    waves.extend(flood_from(daemon.addr, ips[32..].iter().copied()).await);

    assert_passes(daemon.addr, good_ip).await;
    assert_eq!(good.connections(), 1);

    assert_all_deferred(waves).await;
    // The network's share at a time; its waiters give up after one probe
    // time, so at most two rounds of it ever started.
    let started = probes_of(&flood);
    assert!(
        started <= 2 * mailkey_milter::tls::MAX_PROBES_PER_NETWORK,
        "{started} probes of one /24"
    );
}

/// A reload that changes `[tls]` builds a new prober while the old one
/// still probes for the connections opened before: the slots are one
/// budget, not one per configuration. 32 probes fill every slot (8
/// networks × 4); after the reload, 32 more messages from the same hosts
/// must wait (and give up), not start 32 more probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_add_probe_slots() {
    tokio::time::timeout(GUARD, reload_during_flood())
        .await
        .expect("the reload flood test finished");
}

async fn reload_during_flood() {
    let pki = Pki::new("reload-flood");
    let flood: Vec<_> = (5..13).flat_map(|net| drips(net, 1..=4)).collect();
    let ips: Vec<IpAddr> = flood.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(ips.len(), mailkey_milter::tls::MAX_CONCURRENT_PROBES);
    let dns = TestDns::start(common::sender_zone()).await;
    let daemon = Daemon::start(&flood_config(&dns, &pki, 4000)).await;

    let first = flood_from(daemon.addr, ips.iter().copied()).await;
    while probes_of(&flood) < ips.len() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A changed probe_timeout_ms: a new prober for new connections.
    daemon.reload(&flood_config(&dns, &pki, 1000));
    let second = flood_from(daemon.addr, ips.iter().copied()).await;
    assert_all_deferred(second).await;
    assert_eq!(
        probes_of(&flood),
        ips.len(),
        "no probe beyond the 32 slots while they are all held"
    );
    assert_all_deferred(first).await;
}
