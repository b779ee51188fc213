//! Forwarded and list mail (#15) through the real milter socket: a message
//! signed by its origin, changed by a mailing list (subject tag, footer),
//! ARC-sealed by the list, and relayed from an IP the origin's SPF does not
//! authorise. Keys and records on a real DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    arc::{chain, list_rewrite, SealKey},
    dns::TestDns,
    message, send, Daemon, Outcome, TestKey, Transaction,
};
use indymilter_test::Status;
use mailkey_milter::checks::arc::MAX_SETS;

const FROM: &str = "alice@sender.test";
/// The origin's SPF authorises only this address…
const ORIGIN_IP: &str = "127.0.0.10";
/// …and the list relays from this one.
const LIST_IP: &str = "127.0.0.20";
const LIST: &str = "lists.example.org";
/// What the list's own checks recorded when the message reached it.
const LIST_RESULTS: &str = "mailkey=pass header.d=sender.test header.s=mailkey; \
                            spf=pass smtp.mailfrom=alice@sender.test";

struct World {
    dns: TestDns,
    daemon: Daemon,
    origin: TestKey,
    list_key: SealKey,
}

/// The origin publishes a mailkey and strict SPF for ORIGIN_IP only; the
/// list and an untrusted sealer publish ARC keys.
async fn world(trusted: &[&str]) -> World {
    world_with(trusted, "").await
}

/// `top`: top-level keys of the configuration (before any table).
async fn world_with(trusted: &[&str], top: &str) -> World {
    logs();
    let origin = TestKey::ed25519();
    let list_key = SealKey::new();
    let zone = common::dns::Zone::default()
        .txt("sender.test", &format!("v=spf1 ip4:{ORIGIN_IP} -all"))
        .mx("sender.test", 10, "mx.sender.test")
        .a("mx.sender.test", std::net::Ipv4Addr::new(127, 0, 0, 25))
        .txt("mailkey.sender.test", &origin.record)
        .txt(&format!("arc._domainkey.{LIST}"), &list_key.record)
        .txt("arc._domainkey.untrusted.test", &list_key.record);
    // Earlier hops of longer chains (common::arc::chain).
    let zone = (1..=MAX_SETS).fold(zone, |z, i| {
        z.txt(&format!("arc._domainkey.a{i}.test"), &list_key.record)
    });
    let dns = TestDns::start(zone).await;
    let list: Vec<String> = trusted.iter().map(|d| format!("\"{d}\"")).collect();
    let extra = format!(
        "{top}\n[forwarding]\ntrusted_arc_sealers = [{}]",
        list.join(", ")
    );
    let daemon = Daemon::start(&common::config(&dns, &extra)).await;
    World {
        dns,
        daemon,
        origin,
        list_key,
    }
}

impl World {
    /// The origin's signed message as the list sends it on, sealed by `sealer`.
    fn list_message(&self, sealer: &str, results: &str) -> String {
        let signed = self.origin.sign(&message(FROM), "sender.test", "mailkey");
        self.list_key.seal(&list_rewrite(&signed), sealer, results)
    }

    /// Key lookups of the sealers' keys so far.
    fn key_queries(&self) -> usize {
        let sealers = ["lists.example.org", "untrusted.test"].map(String::from);
        let earlier = (1..=MAX_SETS).map(|i| format!("a{i}.test"));
        sealers
            .into_iter()
            .chain(earlier)
            .map(|d| self.dns.queries(&format!("arc._domainkey.{d}")))
            .sum()
    }

    async fn relay(&self, message: String) -> Outcome {
        send(self.daemon.addr, &Transaction::new(LIST_IP, FROM, message)).await
    }
}

fn logs() -> common::LogCapture {
    common::LogCapture::global().clone()
}

fn assert_rejected_5726(o: &Outcome) {
    o.assert_rejected("550-5.7.26", &[]);
}

#[tokio::test]
async fn trusted_list_with_valid_chain_is_accepted_via_arc() {
    let logs = logs();
    let w = world(&[LIST]).await;
    let o = w.relay(w.list_message(LIST, LIST_RESULTS)).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    let ar = o.ar();
    assert!(ar.contains("mailkey=pass (arc: lists.example.org)"), "{ar}");
    assert!(ar.contains("spf=pass (arc: lists.example.org)"), "{ar}");
    assert!(ar.contains("arc=pass header.d=lists.example.org"), "{ar}");
    let log = logs.text();
    assert!(log.contains("mailkey=pass spf=pass"), "{log}");
    assert!(
        log.contains("reasons=\"mailkey: arc: lists.example.org; spf: arc: lists.example.org\""),
        "{log}"
    );
    assert!(log.contains("verdict=accept"), "{log}");
}

#[tokio::test]
async fn without_the_list_the_same_message_is_rejected() {
    // The feature's baseline: with no trusted sealer, the list's changes
    // and its IP fail mailkey and SPF. Decided at end of message (not at
    // RCPT, where SPF alone would refuse it) to see every result.
    let w = world_with(&[], "reject_at_rcpt = false").await;
    let o = w.relay(w.list_message(LIST, LIST_RESULTS)).await;
    assert_rejected_5726(&o);
    let ar = o.ar();
    assert!(ar.contains("mailkey=fail"), "{ar}");
    assert!(ar.contains("spf=fail"), "{ar}");
    // #21: with nobody to vouch and nothing to seal, the chain is not
    // validated, and the sealer's key is never looked up.
    assert!(
        ar.contains("arc=none (not validated: no trusted sealer)"),
        "{ar}"
    );
    assert_eq!(w.key_queries(), 0);
}

#[tokio::test]
async fn untrusted_sealer_changes_nothing() {
    let w = world(&[LIST]).await;
    let o = w
        .relay(w.list_message("untrusted.test", LIST_RESULTS))
        .await;
    assert_rejected_5726(&o);
    // #21: an untrusted sealer's chain is not validated (its record could
    // not count anyway): no key lookup.
    let ar = o.ar();
    let why = "arc=none (not validated: sealed by untrusted.test, not a trusted sealer)";
    assert!(ar.contains(why), "{ar}");
    assert_eq!(w.key_queries(), 0);
}

/// #21: a chain within the caps is validated with one lookup per key. On
/// a multi-thread runtime, as the daemon runs: validation leaves the async
/// workers (`block_in_place`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_several_sets_is_validated_with_one_lookup_per_key() {
    let w = world(&[LIST]).await;
    let signed = w.origin.sign(&message(FROM), "sender.test", "mailkey");
    let sealed = chain(&w.list_key, &list_rewrite(&signed), 3, LIST, LIST_RESULTS);
    let o = w.relay(sealed).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    assert!(
        o.ar().contains("spf=pass (arc: lists.example.org)"),
        "{}",
        o.ar()
    );
    for d in ["a1.test", "a2.test", LIST] {
        assert_eq!(w.dns.queries(&format!("arc._domainkey.{d}")), 1, "{d}");
    }
}

/// #21: a chain of more sets than the cap is not validated, however valid
/// and whoever sealed it last; nothing is looked up.
#[tokio::test]
async fn a_chain_longer_than_the_cap_is_not_validated() {
    let w = world(&[LIST]).await;
    let signed = w.origin.sign(&message(FROM), "sender.test", "mailkey");
    let sealed = chain(
        &w.list_key,
        &list_rewrite(&signed),
        MAX_SETS + 1,
        LIST,
        LIST_RESULTS,
    );
    let o = w.relay(sealed).await;
    assert_rejected_5726(&o);
    let ar = o.ar();
    assert!(
        ar.contains("arc=none (not validated: more than 8 ARC sets)"),
        "{ar}"
    );
    assert_eq!(w.key_queries(), 0);
}

#[tokio::test]
async fn broken_chain_changes_nothing() {
    let w = world(&[LIST]).await;
    // Changed after the list sealed it: the seal no longer covers the body.
    let broken = w.list_message(LIST, LIST_RESULTS) + "P.S. added in transit\r\n";
    let o = w.relay(broken).await;
    assert_rejected_5726(&o);
    let ar = o.ar();
    assert!(ar.contains("arc=fail"), "{ar}");
    assert!(ar.contains("mailkey=fail"), "{ar}");
}

#[tokio::test]
async fn recorded_results_must_be_for_the_sender_domain() {
    let w = world(&[LIST]).await;
    let other = "mailkey=pass header.d=other.test; spf=pass smtp.mailfrom=x@other.test";
    let o = w.relay(w.list_message(LIST, other)).await;
    assert_rejected_5726(&o);
}

#[tokio::test]
async fn only_what_the_list_vouched_for_is_satisfied() {
    // The list saw SPF pass but no mailkey: SPF is satisfied, mailkey still
    // rejects with its own code.
    let w = world(&[LIST]).await;
    let spf_only = "mailkey=fail header.d=sender.test; spf=pass smtp.mailfrom=alice@sender.test";
    let o = w.relay(w.list_message(LIST, spf_only)).await;
    assert!(o.reply().starts_with("550-5.7.20"), "{}", o.reply());
    assert!(
        o.ar().contains("spf=pass (arc: lists.example.org)"),
        "{}",
        o.ar()
    );
}

/// #21, item 7: validation stops at the end-of-message deadline instead of
/// running on after the reply: mail-auth's validation checks it before
/// each signature, and the check says so.
#[tokio::test]
async fn validation_stops_at_the_deadline() {
    use mail_auth::{arc::ArcError, dns::Parameters, AuthenticatedMessage, DkimResult, Error};
    use mailkey_milter::{checks::arc, config::Config, dns::Dns};
    use std::time::{Duration, Instant};
    let w = world(&[LIST]).await;
    let signed = w.origin.sign(&message(FROM), "sender.test", "mailkey");
    let sealed = chain(&w.list_key, &list_rewrite(&signed), 3, LIST, LIST_RESULTS);
    let config = Config::parse(&common::config(&w.dns, ""), std::path::Path::new("t.toml"));
    let dns = Dns::new(&config.expect("config").dns).expect("resolver");

    let parsed = AuthenticatedMessage::parse_arc(sealed.as_bytes()).expect("parses");
    let output = dns
        .verifier()
        .verify_arc_until(Parameters::new(&parsed), Some(Instant::now()))
        .await;
    assert_eq!(
        output.result(),
        &DkimResult::TempError(Error::Arc(ArcError::Deadline))
    );
    assert_eq!(output.chain().len(), 3);

    let trusted = [LIST.to_string()];
    let uses = arc::Uses {
        trusted_sealers: &trusted,
        seal: false,
    };
    let late = arc::check(&dns, uses, sealed.as_bytes(), Instant::now()).await;
    assert_eq!(late.status.as_str(), "temperror");
    assert_eq!(
        late.reason.as_deref(),
        Some("validation stopped at the end-of-message deadline")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let on_time = arc::check(&dns, uses, sealed.as_bytes(), deadline).await;
    assert_eq!(on_time.status.as_str(), "pass", "{:?}", on_time.reason);
}
