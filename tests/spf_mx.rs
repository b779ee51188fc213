//! Strict SPF, the MX check and IP-literal senders through the real milter
//! socket, with records on a real DNS server on 127.0.0.1.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message, send, Daemon, Outcome, Transaction,
};
use indymilter_test::Status;
use std::{net::Ipv4Addr, time::Duration};

const CLIENT: &str = "127.0.0.10";

/// `x.test` with an MX and the given SPF record(s).
fn zone(spf: &[&str]) -> Zone {
    let mut z = Zone::default()
        .mx("x.test", 10, "mx.x.test")
        .a("mx.x.test", Ipv4Addr::new(127, 0, 0, 25));
    for r in spf {
        z = z.txt("x.test", r);
    }
    z
}

async fn run(zone: Zone, extra: &str, t: Transaction<'_>) -> Outcome {
    let dns = TestDns::start(zone).await;
    let daemon = Daemon::start(&common::config(&dns, extra)).await;
    send(daemon.addr, &t).await
}

/// The same transaction in monitor mode: in enforce mode these rejects
/// come at RCPT TO (tests/early_reject.rs), before there is a message to
/// add the `Authentication-Results` header to, so the result words are
/// read here.
async fn monitored(zone: Zone, extra: &str, t: Transaction<'_>) -> Outcome {
    let dns = TestDns::start(zone).await;
    let config = common::config(&dns, extra).replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
    send(daemon.addr, &t).await
}

fn from_x(client: &str) -> Transaction<'static> {
    Transaction::new(client, "a@x.test", message("a@x.test"))
}

fn assert_ar(o: &Outcome, part: &str) {
    let ar = o.ar();
    assert!(ar.contains(part), "{part:?} not in {ar}");
}

#[tokio::test]
async fn spf_pass() {
    let o = run(zone(&["v=spf1 ip4:127.0.0.10 -all"]), "", from_x(CLIENT)).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    assert_ar(&o, "spf=pass smtp.mailfrom=a@x.test");
    assert_ar(&o, "x-mx=pass smtp.mailfrom=x.test");
}

#[tokio::test]
async fn spf_fail_softfail_neutral_all_reject() {
    for (record, word) in [
        ("v=spf1 -all", "fail"),
        ("v=spf1 ~all", "softfail"),
        ("v=spf1 ?all", "neutral"),
    ] {
        let o = run(zone(&[record]), "", from_x(CLIENT)).await;
        o.assert_reply(
            "550-5.7.23",
            &[&format!(
                "127.0.0.10 is not authorised by the SPF record of x.test: {word}"
            )],
        );
        assert!(o.at_rcpt);
        let m = monitored(zone(&[record]), "", from_x(CLIENT)).await;
        assert_ar(&m, &format!("spf={word} "));
    }
}

#[tokio::test]
async fn spf_explanation_is_quoted_sanitised() {
    let z = zone(&["v=spf1 -all exp=why.x.test"]).txt("why.x.test", "Not from %{i}, 100%% sure");
    let o = run(z, "", from_x(CLIENT)).await;
    o.assert_reply(
        "550-5.7.23",
        &["x.test says: Not from 127.0.0.10, 100%% sure"],
    );
}

#[tokio::test]
async fn no_spf_record_fails() {
    let o = run(zone(&[]), "", from_x(CLIENT)).await;
    o.assert_reply("550-5.7.23", &["x.test publishes no SPF record"]);
    assert_ar(&monitored(zone(&[]), "", from_x(CLIENT)).await, "spf=none");
}

#[tokio::test]
async fn spf_permerrors() {
    let two = zone(&["v=spf1 -all", "v=spf1 +all"]);
    let syntax = zone(&["v=spf1 ip4:not-an-address -all"]);
    let chain = |n: usize| {
        // 11 includes: over RFC 7208's limit of 10 lookups.
        let mut z = zone(&["v=spf1 include:i0.x.test -all"]);
        for i in 0..n {
            z = z.txt(
                &format!("i{i}.x.test"),
                &format!("v=spf1 include:i{}.x.test -all", i + 1),
            );
        }
        z.txt(&format!("i{n}.x.test"), "v=spf1 ip4:127.0.0.10 -all")
    };
    for z in [two, syntax, chain(11)] {
        let o = run(z.clone(), "", from_x(CLIENT)).await;
        o.assert_reply("550-5.7.23", &["the SPF record of"]);
        assert_ar(&monitored(z, "", from_x(CLIENT)).await, "spf=permerror");
    }
    // Within the limit the same chain passes.
    let o = run(chain(5), "", from_x(CLIENT)).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
}

#[tokio::test]
async fn spf_temperror_is_451_never_accept() {
    // Every query for x.test is lost: SPF (and MX) cannot be decided.
    let z = Zone::default().timeout("x.test");
    let o = run(z, "", from_x(CLIENT)).await;
    o.assert_tempfailed("451-4.7.24", &["SPF lookup for x.test failed temporarily"]);
}

#[tokio::test]
async fn include_and_redirect() {
    let include = zone(&["v=spf1 include:_spf.other.test -all"])
        .txt("_spf.other.test", "v=spf1 ip4:127.0.0.0/24 -all");
    assert_eq!(
        run(include, "", from_x(CLIENT)).await.status,
        Status::Accept
    );
    let redirect = zone(&["v=spf1 redirect=_spf.other.test"])
        .txt("_spf.other.test", "v=spf1 ip4:127.0.0.10 -all");
    assert_eq!(
        run(redirect, "", from_x(CLIENT)).await.status,
        Status::Accept
    );
    let redirect_miss = zone(&["v=spf1 redirect=_spf.other.test"])
        .txt("_spf.other.test", "v=spf1 ip4:127.0.0.99 -all");
    run(redirect_miss, "", from_x(CLIENT))
        .await
        .assert_reply("550-5.7.23", &["SPF record of x.test: fail"]);
}

#[tokio::test]
async fn null_sender_uses_the_helo_identity() {
    let z = Zone::default().txt("mail.x.test", "v=spf1 ip4:127.0.0.10 -all");
    let mut t = Transaction::new(CLIENT, "", message("mailer-daemon@mail.x.test"));
    t.helo = "mail.x.test";
    let o = run(z, "", t).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    assert_ar(&o, "spf=pass smtp.helo=mail.x.test");
    // The MX check does not apply to bounces.
    assert_ar(&o, "x-mx=none (null sender)");
}

#[tokio::test]
async fn helo_identity_checked_first_when_configured() {
    let z = zone(&["v=spf1 ip4:127.0.0.10 -all"]).txt("mail.sender.test", "v=spf1 -all");
    let o = run(z.clone(), "[spf]\nhelo = true", from_x(CLIENT)).await;
    o.assert_reply("550-5.7.23", &["SPF record of mail.sender.test"]);
    let m = monitored(z, "[spf]\nhelo = true", from_x(CLIENT)).await;
    assert_ar(&m, "spf=fail");
}

#[tokio::test]
async fn ipv6_client() {
    let o = run(zone(&["v=spf1 ip6:::1 -all"]), "", from_x("::1")).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    let o = run(zone(&["v=spf1 ip4:127.0.0.10 -all"]), "", from_x("::1")).await;
    o.assert_reply("550-5.7.23", &["::1 is not authorised"]);
}

#[tokio::test]
async fn mx_cases() {
    let spf = "v=spf1 ip4:127.0.0.10 -all";
    let null = Zone::default().txt("x.test", spf).mx("x.test", 0, ".");
    let o = run(null.clone(), "", from_x(CLIENT)).await;
    o.assert_reply("550-5.7.27", &["x.test publishes a null MX"]);
    assert_ar(&monitored(null, "", from_x(CLIENT)).await, "x-mx=fail");

    let a_only = Zone::default()
        .txt("x.test", spf)
        .a("x.test", Ipv4Addr::new(127, 0, 0, 30));
    run(a_only, "", from_x(CLIENT))
        .await
        .assert_reply("550-5.1.8", &["x.test has no MX record"]);

    let o = run(Zone::default(), "[spf]\nenforce = false", from_x(CLIENT)).await;
    o.assert_reply("550-5.1.8", &["x.test does not exist"]);

    let z = zone(&[spf]).timeout("y.test");
    let t = Transaction::new(CLIENT, "a@y.test", message("a@y.test"));
    let o = run(z, "[spf]\nenforce = false", t).await;
    o.assert_reply("451-4.4.3", &["MX lookup for y.test failed"]);
}

#[tokio::test]
async fn ip_literal_senders_are_refused() {
    for sender in ["a@[127.0.0.1]", "a@[IPv6:::1]"] {
        let t = Transaction::new(CLIENT, sender, message(sender));
        let o = run(Zone::default(), "[spf]\nenforce = false", t).await;
        o.assert_reply("550-5.1.7", &["sender address uses the IP literal"]);
    }
    let t = Transaction::new(CLIENT, "postmaster", message("postmaster@x.test"));
    let o = run(Zone::default(), "[spf]\nenforce = false", t).await;
    o.assert_reply("550-5.1.7", &["sender address has no valid domain"]);
}

#[tokio::test]
async fn several_failures_give_5_7_26_with_a_line_each() {
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let o = run(z, "", from_x(CLIENT)).await;
    let reply = o.reply();
    assert!(
        reply.starts_with("550-5.7.26 2 checks failed for x.test:"),
        "{reply}"
    );
    assert!(
        reply.contains("550-5.7.26 spf check fail for x.test"),
        "{reply}"
    );
    assert!(
        reply.contains("550-5.7.26 mx check fail for x.test: x.test publishes a null MX"),
        "{reply}"
    );
    assert!(
        reply.contains(&format!(
            "550-5.7.26 Add ip4:{CLIENT} to the SPF record of x.test"
        )),
        "guidance for SPF: {reply}"
    );
    assert!(
        reply.contains("550 5.7.26 Replace it with a real one: x.test. IN MX 10 mail.x.test."),
        "guidance for the null MX last: {reply}"
    );
}

#[tokio::test]
async fn monitor_mode_records_every_result_and_rejects_nothing() {
    let z = Zone::default()
        .txt("x.test", "v=spf1 -all")
        .mx("x.test", 0, ".");
    let dns = TestDns::start(z).await;
    let config = common::config(&dns, "").replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = Daemon::start(&config).await;
    let o = send(daemon.addr, &from_x(CLIENT)).await;
    assert_eq!(o.status, Status::Accept);
    assert_ar(&o, "mailkey=none");
    assert_ar(&o, "spf=fail");
    assert_ar(&o, "monitor mode, would reject: 550 5.7.23");
    assert_ar(&o, "x-mx=fail");
    assert_ar(&o, "monitor mode, would reject: 550 5.7.27");
}

#[tokio::test]
async fn lookups_start_at_mail_from_and_run_concurrently() {
    let delay = Duration::from_millis(300);
    let z = zone(&["v=spf1 ip4:127.0.0.10 -all"]).delay(delay);
    let dns = TestDns::start(z).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let o = send(daemon.addr, &from_x(CLIENT)).await;
    assert_eq!(o.status, Status::Accept, "{}", o.reply());
    // Every lookup that does not depend on another was asked before the
    // first answer came back: they ran side by side, not one after another.
    let first_answer = *dns.answer_log().first().expect("answers");
    let log = dns.query_log();
    for (name, rtype) in [
        ("mailkey.x.test", "TXT"),
        ("x.test", "TXT"),
        ("x.test", "MX"),
    ] {
        let asked = log
            .iter()
            .find(|(n, t, _)| n == name && t == rtype)
            .unwrap_or_else(|| panic!("no {rtype} query for {name}: {log:?}"));
        assert!(
            asked.2 < first_answer,
            "{rtype} {name} was asked only after an answer arrived"
        );
    }
}

#[tokio::test]
async fn lookups_are_under_way_before_the_message_arrives() {
    let dns = TestDns::start(zone(&["v=spf1 ip4:127.0.0.10 -all"])).await;
    let daemon = Daemon::start(&common::config(&dns, "")).await;
    let t = from_x(CLIENT);
    let mut conn = common::open(daemon.addr, t.client_ip, t.helo).await;
    conn.macros(indymilter_test::MacroStage::Mail, [("i", "Q1")])
        .await
        .unwrap();
    assert!(common::goes_on(&conn.mail(["<a@x.test>"]).await.unwrap()));
    // No header or body sent yet: the queries come from MAIL FROM alone.
    for _ in 0..200 {
        if dns.queries("mailkey.x.test") > 0 && dns.queries("x.test") >= 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("lookups did not start at MAIL FROM: {:?}", dns.query_log());
}

#[tokio::test]
async fn ip_literal_sender_is_refused_for_the_literal_not_for_spf() {
    // SPF enforced too: a sender without a domain has SPF `none` (RFC 7208
    // §4.3), which is not a second failure hiding the real reason.
    let sender = "alice@[127.0.0.1]";
    let t = Transaction::new(CLIENT, sender, message(sender));
    let o = run(Zone::default(), "", t).await;
    o.assert_reply(
        "550-5.1.7",
        &["sender address uses the IP literal [127.0.0.1] instead of a domain"],
    );
    let reply = o.reply();
    assert!(!reply.contains("5.7.26"), "{reply}");
    assert!(!reply.contains("SPF record"), "{reply}");
}

#[tokio::test]
async fn spf_explanation_is_bounded() {
    let long = format!("Go away {} TAIL", "x".repeat(300));
    let z = zone(&["v=spf1 -all exp=why.x.test"]).txt("why.x.test", &long);
    let o = run(z, "", from_x(CLIENT)).await;
    let quoted = format!("x.test says: Go away {}", "x".repeat(192));
    o.assert_reply("550-5.7.23", &[&quoted]);
    assert!(!o.reply().contains("TAIL"), "{}", o.reply());
}

#[tokio::test]
async fn helo_pass_does_not_excuse_mail_from() {
    // RFC 7208 §2.3: only a HELO `fail` is conclusive; MAIL FROM decides.
    let z = zone(&["v=spf1 -all"]).txt("mail.sender.test", "v=spf1 ip4:127.0.0.10 -all");
    let o = run(z, "[spf]\nhelo = true", from_x(CLIENT)).await;
    o.assert_reply("550-5.7.23", &["SPF record of x.test: fail"]);
}
