//! Forwarded and list mail (#15) through the real milter socket: a message
//! signed by its origin, changed by a mailing list (subject tag, footer),
//! ARC-sealed by the list, and relayed from an IP the origin's SPF does not
//! authorise. Keys and records on a real DNS server on 127.0.0.1.

mod common;

use common::{
    arc::{list_rewrite, SealKey},
    dns::TestDns,
    message, send, Daemon, Outcome, TestKey, Transaction,
};
use indymilter_test::Status;
use openssl::pkey::PKey;

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
    _dns: TestDns,
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
    let dns = TestDns::start(zone).await;
    let list: Vec<String> = trusted.iter().map(|d| format!("\"{d}\"")).collect();
    let extra = format!(
        "{top}\n[forwarding]\ntrusted_arc_sealers = [{}]",
        list.join(", ")
    );
    let daemon = Daemon::start(&common::config(&dns, &extra)).await;
    World {
        _dns: dns,
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

    async fn relay(&self, message: String) -> Outcome {
        send(self.daemon.addr, &Transaction::new(LIST_IP, FROM, message)).await
    }
}

fn logs() -> common::LogCapture {
    common::LogCapture::global().clone()
}

fn ar(o: &Outcome) -> String {
    o.auth_results().expect("Authentication-Results")
}

fn assert_rejected_5726(o: &Outcome) {
    assert!(matches!(o.status, Status::Reject { .. }), "{:?}", o.status);
    assert!(o.reply().starts_with("550-5.7.26"), "{}", o.reply());
}

#[tokio::test]
async fn trusted_list_with_valid_chain_is_accepted_via_arc() {
    let logs = logs();
    let w = world(&[LIST]).await;
    let o = w.relay(w.list_message(LIST, LIST_RESULTS)).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    let ar = ar(&o);
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
    let ar = ar(&o);
    assert!(ar.contains("arc=pass"), "{ar}");
    assert!(ar.contains("mailkey=fail"), "{ar}");
    assert!(ar.contains("spf=fail"), "{ar}");
}

#[tokio::test]
async fn untrusted_sealer_changes_nothing() {
    let w = world(&[LIST]).await;
    let o = w
        .relay(w.list_message("untrusted.test", LIST_RESULTS))
        .await;
    assert_rejected_5726(&o);
    assert!(
        ar(&o).contains("arc=pass header.d=untrusted.test"),
        "{}",
        ar(&o)
    );
}

#[tokio::test]
async fn broken_chain_changes_nothing() {
    let w = world(&[LIST]).await;
    // Changed after the list sealed it: the seal no longer covers the body.
    let broken = w.list_message(LIST, LIST_RESULTS) + "P.S. added in transit\r\n";
    let o = w.relay(broken).await;
    assert_rejected_5726(&o);
    let ar = ar(&o);
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
        ar(&o).contains("spf=pass (arc: lists.example.org)"),
        "{}",
        ar(&o)
    );
}

/// The forwarding side: a forwarder running mailkey-milter with `[arc]
/// seal = true` seals the message it checked; the final receiver trusts
/// the forwarder and accepts the message relayed from the forwarder's IP,
/// which the origin's SPF does not authorise.
#[tokio::test]
async fn our_seal_lets_a_trusting_receiver_accept_the_forward() {
    let origin = TestKey::ed25519();
    let fwd_key = PKey::generate_ed25519().expect("ed25519");
    let fwd_record = format!(
        "v=DKIM1; k=ed25519; p={}",
        openssl::base64::encode_block(&fwd_key.raw_public_key().expect("public"))
    );
    let zone = common::dns::Zone::default()
        .txt("sender.test", &format!("v=spf1 ip4:{ORIGIN_IP} -all"))
        .mx("sender.test", 10, "mx.sender.test")
        .a("mx.sender.test", std::net::Ipv4Addr::new(127, 0, 0, 25))
        .txt("mailkey.sender.test", &origin.record)
        .txt("mailkey._domainkey.forwarder.test", &fwd_record);
    let dns = TestDns::start(zone).await;
    let dir = common::process::temp_dir("arc-seal");
    let key_file = dir.join("forwarder.pem");
    let pem = fwd_key.private_key_to_pem_pkcs8().expect("pem");
    common::process::write(&key_file, &String::from_utf8_lossy(&pem));
    let forwarder_config = common::config(
        &dns,
        &format!(
            "[arc]\nseal = true\nseal_domain = \"forwarder.test\"\n\
             [[signing.domains]]\ndomain = \"forwarder.test\"\nkey_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .replace("mx.receiver.test", "mx.forwarder.test");
    let forwarder = Daemon::start(&forwarder_config).await;
    let receiver = Daemon::start(&common::config(
        &dns,
        "[forwarding]\ntrusted_arc_sealers = [\"forwarder.test\"]",
    ))
    .await;

    // The origin sends to the forwarder: everything passes, and it seals.
    let signed = origin.sign(&message(FROM), "sender.test", "mailkey");
    let first = send(
        forwarder.addr,
        &Transaction::new(ORIGIN_IP, FROM, signed.clone()),
    )
    .await;
    assert_eq!(first.status, Status::Accept, "{}", first.reply());
    let forwarded = with_inserted_headers(&first, &signed);
    assert!(forwarded.starts_with("ARC-Seal: i=1; "), "{forwarded}");
    assert!(forwarded.contains("d=forwarder.test"), "{forwarded}");
    assert!(
        forwarded.contains("ARC-Authentication-Results: i=1; mx.forwarder.test; mailkey=pass"),
        "{forwarded}"
    );

    // The forwarder relays it from its own IP: SPF fails there, the seal
    // vouches for it.
    let second = send(
        receiver.addr,
        &Transaction::new(LIST_IP, FROM, forwarded.clone()),
    )
    .await;
    assert_eq!(second.status, Status::Accept, "{}", second.reply());
    let ar = ar(&second);
    assert!(ar.contains("arc=pass header.d=forwarder.test"), "{ar}");
    assert!(ar.contains("spf=pass (arc: forwarder.test)"), "{ar}");

    // Without trusting the forwarder, the same relay is refused for SPF.
    let sceptic = Daemon::start(&common::config(&dns, "")).await;
    let third = send(sceptic.addr, &Transaction::new(LIST_IP, FROM, forwarded)).await;
    assert!(third.reply().starts_with("550-5.7.23"), "{}", third.reply());
}

/// The message as the MTA passes it on: the header fields the milter
/// inserted (each at the top, in the order it asked) in front of `message`.
fn with_inserted_headers(o: &Outcome, message: &str) -> String {
    let mut head = String::new();
    for a in &o.actions.actions {
        if let indymilter_test::EomAction::InsertHeader { index, name, value } = a {
            assert_eq!(*index, 0);
            let field = format!(
                "{}:{}\r\n",
                name.to_string_lossy(),
                value.to_string_lossy().replace('\n', "\r\n")
            );
            head.insert_str(0, &field);
        }
    }
    head + message
}
