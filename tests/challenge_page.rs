//! The challenge page's bounds, and `when = "first-contact"`, with the
//! daemon in-process and its page served on a loopback port: an altered
//! or expired link is refused, three wrong answers burn a link, a missing
//! consent is asked for again without costing a try, a sender over its
//! answer rate and a client over its
//! request rate is turned away (429); in first-contact mode a new sender
//! that proved its address is refused with a challenge at end of message
//! and let through once it is solved, and one that did not prove it is
//! never challenged.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    controls::{self, code, State},
    dns::{TestDns, Zone},
    message,
    process::{free_addr, temp_dir},
    send, Daemon, LogCapture, Transaction,
};
use mailkey_milter::challenge::Challenges;
use std::net::Ipv4Addr;

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or_default()
}

fn zone() -> Zone {
    Zone::default()
        .txt("person.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("person.test", 10, "mx.person.test")
        .mx("nospf.test", 10, "mx.person.test")
        .a("mx.person.test", Ipv4Addr::new(127, 0, 0, 25))
}

/// The daemon with `[challenge] when` (and `challenge_keys` more in that
/// table), its page served, and `extra` config.
async fn start(
    dir: &std::path::Path,
    when: &str,
    challenge_keys: &str,
    extra: &str,
) -> (Daemon, TestDns, String) {
    LogCapture::global();
    let dns = TestDns::start(zone()).await;
    let page = free_addr();
    let tables = controls::toml(dir, State::File, Some((page, when)))
        .replace("[challenge]\n", &format!("[challenge]\n{challenge_keys}"));
    let toml = common::config(&dns, &format!("{extra}\n{tables}"));
    let daemon = Daemon::start(&toml).await;
    let listener = tokio::net::TcpListener::bind(page).await.unwrap();
    tokio::spawn(mailkey_milter::challenge::http::serve(
        listener,
        daemon.shared.clone(),
    ));
    (daemon, dns, format!("http://{page}/challenge"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_signed_expire_burn_and_are_rate_limited() {
    let dir = temp_dir("challenge-page-bounds");
    let (daemon, _dns, base) = start(&dir, "refused", "", "").await;
    // Links made with the daemon's own secret, as its refusals carry them.
    let config = daemon.shared.current().config.challenge.clone();
    let ch = Challenges::load(&config).unwrap().unwrap();
    let link = |c: &mailkey_milter::challenge::Challenge| format!("{base}/{}", ch.sign(c).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let fresh = ch
        .new_challenge("a@person.test", "bob@receiver.test", now)
        .unwrap();
    let url = link(&fresh);
    let form = controls::http("GET", &url, "").await;
    assert_eq!(status(&form), "200", "{form}");
    assert!(form.contains("Content-Security-Policy: default-src 'none'"));
    assert!(form.contains("Referrer-Policy: no-referrer") && !form.contains("<script"));

    // One character changed: not ours.
    let last = url.chars().last().unwrap();
    let altered = format!(
        "{}{}",
        &url[..url.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    assert_eq!(status(&controls::http("GET", &altered, "").await), "404");
    let mut old = fresh.clone();
    old.expires = now - 1;
    assert!(controls::http("GET", &link(&old), "")
        .await
        .contains("This link has expired"));

    // No consent: asked again, no try spent. Three wrong answers burn it.
    let right = controls::answer(&form);
    let no_consent = controls::http("POST", &url, &format!("answer={right}")).await;
    assert_eq!(status(&no_consent), "422");
    assert!(no_consent.contains("Please tick the box") && no_consent.contains("3 tries left"));
    for left in ["2 tries left", "1 try left"] {
        let wrong =
            controls::http("POST", &url, &format!("answer={}&consent=yes", right + 1)).await;
        assert!(
            wrong.contains("That is not the answer") && wrong.contains(left),
            "{wrong}"
        );
    }
    let burnt = controls::http("POST", &url, &format!("answer={}&consent=yes", right + 1)).await;
    assert!(burnt.contains("Too many wrong answers"), "{burnt}");
    let too_late = controls::http("POST", &url, &format!("answer={right}&consent=yes")).await;
    assert!(too_late.contains("Too many wrong answers"), "{too_late}");

    // rate_per_sender (10 answers an hour by default), whatever the link.
    for n in 0..10 {
        let c = ch
            .new_challenge("c@person.test", "bob@receiver.test", now)
            .unwrap();
        let asked = controls::http("POST", &link(&c), "answer=1").await;
        assert_eq!(status(&asked), "422", "answer {n}");
    }
    let c = ch
        .new_challenge("c@person.test", "carol@receiver.test", now)
        .unwrap();
    assert_eq!(
        status(&controls::http("POST", &link(&c), "answer=1").await),
        "429"
    );

    // rate_per_client (60 an hour by default): a daemon with 9 turns the
    // 10th request of a client away.
    let dir2 = temp_dir("challenge-page-rate");
    let (_d2, _dns2, base2) = start(&dir2, "refused", "rate_per_client = 9\n", "").await;
    let c = ch
        .new_challenge("b@person.test", "bob@receiver.test", now)
        .unwrap();
    let url2 = format!("{base2}/{}", ch.sign(&c).unwrap());
    for _ in 0..9 {
        assert_eq!(status(&controls::http("GET", &url2, "").await), "200");
    }
    let over = controls::http("GET", &url2, "").await;
    assert_eq!(status(&over), "429", "{over}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_challenges_new_proven_senders_only() {
    let dir = temp_dir("challenge-first-contact");
    // SPF not enforced: nospf.test (no record) is accepted by the checks,
    // but has proved nothing, so it is never challenged.
    let (daemon, _dns, _) = start(&dir, "first-contact", "", "[spf]\nenforce = false\n").await;
    let t = |from: &'static str| Transaction::new("127.0.0.61", from, message(from));

    let unproven = send(daemon.addr, &t("x@nospf.test")).await;
    assert!(
        unproven.is_accept(),
        "{:?} {}",
        unproven.status,
        unproven.reply()
    );

    let first = send(daemon.addr, &t("carol@person.test")).await;
    assert!(!first.at_rcpt, "decided at end of message");
    assert_eq!(code(&first.status), "550 5.7.1", "{}", first.reply());
    let reply = first.reply();
    assert!(
        reply.contains("bob@receiver.test accepts mail from new senders after a one-time check"),
        "{reply}"
    );
    let url = controls::url_in(&reply).expect("a URL in the reply");
    LogCapture::global().line_with(&[
        "mail_from=\"<carol@person.test>\"",
        "challenge=offered",
        "verdict=reject",
    ]);

    let form = controls::http("GET", &url, "").await;
    let solved = controls::http(
        "POST",
        &url,
        &format!("answer={}&consent=yes", controls::answer(&form)),
    )
    .await;
    assert!(solved.contains("will be let through until"), "{solved}");
    let again = send(daemon.addr, &t("carol@person.test")).await;
    assert!(again.is_accept(), "{:?} {}", again.status, again.reply());
    assert!(again
        .auth_results()
        .unwrap()
        .contains("(exempt: challenge passed)"));
}
