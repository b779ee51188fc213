//! The sender challenge end to end: a real Postfix with the real binary in
//! `smtpd_milters`, swaks as the sending MTA, and a real headless Chromium
//! solving the page as a person with a keyboard would (what it reads is
//! the accessibility tree a screen reader announces).
//!
//! alice@person.test is authenticated (SPF pass) but sends without a
//! certificate while TLS is enforced: refused at RCPT with a challenge URL.
//! She solves it (after one wrong answer), sends again, and the message is
//! accepted and delivered, checked and marked. ceo@victim.test is forged
//! (SPF fail): refused, and never offered a challenge. Screenshots of the
//! page are kept under target/tmp/challenge/.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    browser,
    cdp::Page,
    controls::{self, State},
    dns::{TestDns, Zone},
    message,
    postfix::{self, Postfix, PostfixOptions},
    process::{self, free_addr, temp_dir, write, Process},
    smtp_sink::SmtpSink,
    swaks::{self, CLIENT_IP},
};
use std::{net::Ipv4Addr, path::PathBuf};

const TO: &str = "bob@receiver.test";

/// Drives the page in Chromium: a wrong answer first (the error must be
/// announced), then the right one. Returns the final page's HTML.
fn solve_in_browser(chromium: &str, url: &str, dir: &std::path::Path) -> String {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("challenge");
    std::fs::create_dir_all(&shots).unwrap();
    let mut page = Page::open(chromium, &browser::profile(dir, "chromium"));
    page.navigate(url);
    page.screenshot(&shots.join("challenge-page.png"));
    let nodes = page.ax_nodes();
    let named = |role: &str, part: &str| {
        nodes
            .iter()
            .find(|n| n.role == role && n.name.contains(part))
            .unwrap_or_else(|| panic!("no {role} named …{part}… in {nodes:#?}"))
            .name
            .clone()
    };
    // Every control has a real label: the screen reader names them.
    let question = named("textbox", "What is ");
    named(
        "checkbox",
        &format!("I wrote to {TO} and want my mail delivered"),
    );
    named("button", "Let my mail through");
    named("heading", &format!("Let your mail through to {TO}"));
    let answer = controls::answer(&question);

    let submit = |page: &mut Page, text: &str| {
        page.focus("#answer");
        page.type_text(text);
        page.focus("#consent");
        page.press(" ");
        page.focus("button");
        page.events_clear();
        page.press("Enter");
        page.wait_event("Page.loadEventFired");
    };
    submit(&mut page, &(answer + 1).to_string());
    let html = page.html();
    assert!(html.contains("That is not the answer"), "{html}");
    assert!(html.contains("aria-invalid=\"true\"") && html.contains("role=\"alert\""));
    assert!(page.ax_nodes().iter().any(|n| n.role == "alert"));
    page.screenshot(&shots.join("challenge-wrong-answer.png"));

    submit(&mut page, &answer.to_string());
    page.screenshot(&shots.join("challenge-solved.png"));
    page.html()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_sender_passes_the_challenge_and_its_resend_is_accepted() {
    // Postfix in front, and the browser that solves the challenge.
    let needs = [common::require::WITH_POSTFIX, &[common::Need::Chromium]].concat();
    if !common::require(&needs) {
        return;
    }
    let dir = temp_dir("challenge-e2e");
    let dns = TestDns::start(
        Zone::default()
            .txt("person.test", &format!("v=spf1 ip4:{CLIENT_IP} -all"))
            .mx("person.test", 10, "mx.person.test")
            .txt("victim.test", "v=spf1 ip4:192.0.2.1 -all")
            .mx("victim.test", 10, "mx.person.test")
            .a("mx.person.test", Ipv4Addr::new(127, 0, 0, 25)),
    )
    .await;
    let (milter, page) = (free_addr(), free_addr());
    let toml = format!(
        "listen = \"inet:{milter}\"\nlog_format = \"json\"\n{}",
        common::config(
            &dns,
            &controls::toml(&dir, State::File, Some((page, "refused")))
        )
    );
    let config = dir.join("mk.toml");
    write(&config, &toml);
    let daemon = Process::start(&["--config", config.to_str().unwrap()]);
    daemon.wait_for(&["challenge page on"]).await;

    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        extra_main_cf: postfix::example_settings("main.cf", |v| {
            v.replace("inet:127.0.0.1:8895", &format!("inet:{milter}"))
        }),
        relay_domains: vec!["receiver.test".into()],
        ..Default::default()
    };
    let postfix = tokio::task::block_in_place(|| Postfix::start(opts, &sink));
    let send = |from: &'static str| {
        let (dir, server) = (&dir, postfix.smtp_addr());
        async move { swaks::submit(dir, server, from, TO, &message(from), &[]).await }
    };

    // The forged sender: the ordinary refusal, no challenge.
    let forged = send("ceo@victim.test").await;
    let reply = forged.reply_to("RCPT").expect("a reply to RCPT");
    assert!(reply.code().starts_with("550 5.7."), "{}", forged.output);
    assert!(
        controls::url_in(&reply.text()).is_none(),
        "{}",
        reply.text()
    );
    assert!(!reply.text().contains("prove once"), "{}", reply.text());

    // The authenticated one, without a certificate: refused with a URL.
    let refused = send("alice@person.test").await;
    let reply = refused.reply_to("RCPT").expect("a reply to RCPT");
    assert_eq!(reply.code(), "550 5.7.10", "{}", refused.output);
    let text = reply.text();
    assert!(
        text.contains(&format!(
            "To have {TO} accept your mail anyway, prove once that a person sends it:"
        )),
        "{text}"
    );
    println!("refusal with a challenge:\n{text}");
    let url = controls::url_in(&text).expect("a challenge URL");
    assert!(
        url.starts_with(&format!("http://{page}/challenge/")),
        "{url}"
    );
    daemon
        .wait_for(&[
            r#""mail_from":"<alice@person.test>""#,
            r#""challenge":"offered""#,
            r#""stage":"rcpt""#,
        ])
        .await;

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let (chromium, u, d) = (chromium.to_string(), url.clone(), dir.to_path_buf());
    let html = tokio::task::spawn_blocking(move || solve_in_browser(&chromium, &u, &d))
        .await
        .unwrap();
    assert!(
        html.contains("Mail from <strong>alice@person.test</strong> to <strong>bob@receiver.test</strong> will be let through until"),
        "{html}"
    );
    daemon
        .wait_for(&["challenge solved", "alice@person.test"])
        .await;

    // The re-send through Postfix: accepted, delivered, checked and marked.
    let again = send("alice@person.test").await;
    println!("the re-send:\n{}", again.output);
    assert_eq!(again.final_code(), "250 2.0.0", "{}", again.output);
    let got = sink.delivered(1).await;
    let text = got[0].text();
    assert!(
        text.contains("Authentication-Results: mx.receiver.test (exempt: challenge passed);"),
        "{text}"
    );
    assert!(text.contains("x-tls=fail ("), "{text}");
    let line = daemon
        .wait_for(&[
            r#""mail_from":"<alice@person.test>""#,
            r#""challenge":"passed""#,
        ])
        .await;
    assert!(
        line.contains(r#""verdict":"accept""#) && line.contains(r#""would_reject":"550 5.7.10""#),
        "{line}"
    );

    // The link works once.
    let used = controls::http("GET", &url, "").await;
    assert!(
        used.starts_with("HTTP/1.1 410") && used.contains("This link was used already"),
        "{used}"
    );
    // A forger of alice's address (from an address her SPF does not
    // authorise) is still refused, without a challenge: the allowlist
    // needs the sender to prove the address again.
    let server = postfix.smtp_addr();
    let from_elsewhere = ("127.0.0.21", "mail.elsewhere.test");
    let forged = swaks::submit_from(
        &dir,
        server,
        from_elsewhere,
        ("alice@person.test", TO),
        &message("alice@person.test"),
        &[],
    )
    .await;
    let reply = forged.final_reply().expect("a reply");
    assert_eq!(reply.code(), "550 5.7.26", "{}", forged.output);
    assert!(
        controls::url_in(&reply.text()).is_none(),
        "{}",
        reply.text()
    );
    assert_eq!(sink.messages().len(), 1);

    // The report over the daemon's log: one refusal carried a challenge,
    // and the message it let through would have been refused.
    let log = dir.join("mailkey.log");
    write(&log, &(daemon.log().join("\n") + "\n"));
    let report = process::stdout(&process::mailkey(&["report", log.to_str().unwrap()]).await);
    assert!(
        report.contains("challenges offered in refusals       1"),
        "{report}"
    );
    assert!(
        report.contains("let through by a challenge           1  (1 would have been refused)"),
        "{report}"
    );
}
