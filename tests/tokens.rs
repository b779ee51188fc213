//! Pre-approved tokens through the real milter socket, in enforce mode,
//! with tokens issued by the real `token` command into the embedded state
//! file the daemon has open: a shop whose SPF fails reaches alice through
//! her token exactly as often as it allows, then is refused with the
//! reason; the token is alice's alone, also within one transaction; a
//! revoked, altered or out-of-scope token is refused saying so (expiry:
//! the unit tests of src/tokens). The restart and
//! kill -9 case runs the real binary (tests/tokens_crash.rs).

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    controls::{self, code, issue, State},
    dns::{TestDns, Zone},
    message,
    process::{temp_dir, write},
    send, Daemon, LogCapture, TestKey, Transaction,
};
use indymilter_test::Status;
use std::net::Ipv4Addr;

/// shop.test's SPF authorises only 192.0.2.1: mail from the test clients
/// fails it (550 5.7.23). good.test passes SPF but publishes a mailkey
/// and sends unsigned: refused only at end of message (550 5.7.20).
fn zone(key: &TestKey) -> Zone {
    Zone::default()
        .txt("shop.test", "v=spf1 ip4:192.0.2.1 -all")
        .mx("shop.test", 10, "mx.shop.test")
        .txt("other.test", "v=spf1 ip4:192.0.2.1 -all")
        .mx("other.test", 10, "mx.shop.test")
        .txt("good.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("good.test", 10, "mx.shop.test")
        .txt("mailkey.good.test", &key.record)
        .a("mx.shop.test", Ipv4Addr::new(127, 0, 0, 25))
}

struct Setup {
    _dir: common::process::TempDir,
    config: std::path::PathBuf,
    daemon: Daemon,
    _dns: TestDns,
}

async fn setup(name: &str) -> Setup {
    LogCapture::global();
    let dir = temp_dir(name);
    let dns = TestDns::start(zone(&TestKey::ed25519())).await;
    let toml = common::config(&dns, &controls::toml(&dir, State::File, None));
    let config = dir.join("mk.toml");
    write(&config, &toml);
    let daemon = Daemon::start(&toml).await;
    Setup {
        _dir: dir,
        config,
        daemon,
        _dns: dns,
    }
}

fn reply(status: &Status) -> String {
    match status {
        Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
            m.to_string_lossy().into_owned()
        }
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_shop_failing_spf_reaches_alice_exactly_n_times_then_is_refused() {
    let s = setup("tokens-n-times").await;
    let (address, tag) = issue(
        &s.config,
        &[
            "--for",
            "alice@receiver.test",
            "--uses",
            "2",
            "--sender",
            "shop.test",
        ],
    );
    assert!(address.starts_with("alice+mk-") && address.ends_with("@receiver.test"));
    let from = "orders@shop.test";
    // Message n of the shop (each with its own Message-ID).
    let order =
        |n: u32| message(from).replace("<1@sender.test>", &format!("<order-{n}@shop.test>"));
    let to = |rcpt: &str, n| Transaction::new("127.0.0.51", from, order(n)).to(&[rcpt]);

    // Without the token: the ordinary refusal.
    let plain = send(s.daemon.addr, &to("alice@receiver.test", 0)).await;
    assert_eq!(
        code(&plain.rcpts[0]),
        "550 5.7.23",
        "{}",
        reply(&plain.rcpts[0])
    );

    // Order 1 is sent twice, as an MTA re-sends a message whose answer it
    // did not hear: one message, one use.
    for n in [1, 1, 2] {
        let o = send(s.daemon.addr, &to(&address, n)).await;
        assert_eq!(o.rcpts, [Status::Continue], "message {n}");
        assert!(o.is_accept(), "message {n}: {:?}", o.status);
        let ar = o.ar();
        assert!(
            ar.starts_with(&format!("mx.receiver.test (exempt: token {tag});")),
            "{ar}"
        );
        assert!(
            ar.contains("spf=fail (") && ar.contains("exempt, would reject: 550 5.7.23"),
            "{ar}"
        );
    }
    let line = LogCapture::global().line_with(&["client=127.0.0.51", &format!("token={tag}")]);
    assert!(
        line.contains("verdict=accept") && line.contains("would_reject=\"550 5.7.23\""),
        "{line}"
    );
    assert!(
        line.contains(&format!("exempt_by=\"token {tag}\"")),
        "{line}"
    );

    // The third: refused, saying why.
    let third = send(s.daemon.addr, &to(&address, 3)).await;
    assert!(third.at_rcpt);
    assert_eq!(code(&third.rcpts[0]), "550 5.7.1");
    let text = reply(&third.rcpts[0]);
    println!("the third message:\n{text}");
    assert!(
        text.contains(
            "The token address for alice@receiver.test has been used for all 2 messages it allowed"
        ),
        "{text}"
    );
    let list = controls::token(&s.config, &["list"]);
    assert!(list.contains(&format!("{tag}  used up   2/2")), "{list}");
}

#[tokio::test]
async fn a_token_for_alice_lets_nothing_through_to_bob_in_the_same_transaction() {
    let s = setup("tokens-two-rcpts").await;
    let (alice, tag) = issue(&s.config, &["--for", "alice@receiver.test"]);
    let t = |from: &'static str, rcpts: &[&str]| {
        Transaction::new("127.0.0.52", from, message(from)).to(rcpts)
    };

    // SPF fails: bob is refused at RCPT whether he comes first or second;
    // alice's copy goes through on her token.
    for rcpts in [
        [alice.as_str(), "bob@receiver.test"],
        ["bob@receiver.test", alice.as_str()],
    ] {
        let o = send(s.daemon.addr, &t("orders@shop.test", &rcpts)).await;
        let (a, b) = if rcpts[0] == alice { (0, 1) } else { (1, 0) };
        assert_eq!(o.rcpts[a], Status::Continue, "{rcpts:?}");
        assert_eq!(
            code(&o.rcpts[b]),
            "550 5.7.23",
            "{rcpts:?}: {}",
            reply(&o.rcpts[b])
        );
        assert!(o.is_accept(), "{:?}", o.status);
    }

    // Refused only at end of message (mailkey): bob cannot share alice's
    // transaction. He is asked to come in another (452 4.5.3), where the
    // checks alone decide.
    let o = send(
        s.daemon.addr,
        &t("news@good.test", &[alice.as_str(), "bob@receiver.test"]),
    )
    .await;
    assert_eq!(o.rcpts[0], Status::Continue);
    assert_eq!(code(&o.rcpts[1]), "452 4.5.3", "{}", reply(&o.rcpts[1]));
    assert!(o.is_accept(), "{:?}", o.status);
    assert!(o
        .auth_results()
        .unwrap()
        .contains(&format!("(exempt: token {tag})")));
    let bob = send(s.daemon.addr, &t("news@good.test", &["bob@receiver.test"])).await;
    assert_eq!(code(&bob.status), "550 5.7.20", "{}", bob.reply());
    // And the other way round: the checked recipient came first.
    let o = send(
        s.daemon.addr,
        &t("news@good.test", &["bob@receiver.test", alice.as_str()]),
    )
    .await;
    assert_eq!(code(&o.rcpts[1]), "452 4.5.3");
    assert_eq!(code(&o.status), "550 5.7.20");

    // Alice's tag on bob's address is no token at all.
    let forged = alice.replace("alice+", "bob+");
    let o = send(s.daemon.addr, &t("orders@shop.test", &[forged.as_str()])).await;
    assert_eq!(code(&o.rcpts[0]), "550 5.7.1");
    assert!(
        reply(&o.rcpts[0]).contains("is not a valid address"),
        "{}",
        reply(&o.rcpts[0])
    );
}

#[tokio::test]
async fn revoked_altered_and_out_of_scope_tokens_are_refused_saying_so() {
    let s = setup("tokens-refusals").await;
    let (scoped, _) = issue(
        &s.config,
        &["--for", "alice@receiver.test", "--sender", "shop.test"],
    );
    let (revoked, tag) = issue(
        &s.config,
        &["--for", "alice@receiver.test", "--expires", "30d"],
    );
    let t = |from: &'static str, rcpt: &str| {
        Transaction::new("127.0.0.53", from, message(from)).to(&[rcpt])
    };
    let refusal = |o: &common::Outcome| {
        assert_eq!(code(&o.rcpts[0]), "550 5.7.1", "{}", reply(&o.rcpts[0]));
        reply(&o.rcpts[0])
    };

    let o = send(s.daemon.addr, &t("x@other.test", &scoped)).await;
    assert!(refusal(&o).contains("was not given for mail from this sender"));
    let o = send(s.daemon.addr, &t("x@other.test", &revoked)).await;
    assert!(o.is_accept(), "{:?}", o.status);

    assert_eq!(
        controls::token(&s.config, &["revoke", &revoked]).trim(),
        format!("revoked {tag}")
    );
    let o = send(s.daemon.addr, &t("x@other.test", &revoked)).await;
    assert!(refusal(&o).contains("was withdrawn by its owner"));
    let line = LogCapture::global().line_with(&["recipient refused", &format!("token={tag}")]);
    assert!(line.contains("token_refused=revoked"), "{line}");

    // An altered tag (one character changed) is no token either.
    let altered = {
        let (local, domain) = scoped.split_once('@').unwrap();
        let last = local.chars().last().unwrap();
        let other = if last == 'a' { 'b' } else { 'a' };
        format!("{}{other}@{domain}", &local[..local.len() - 1])
    };
    let o = send(s.daemon.addr, &t("x@shop.test", &altered)).await;
    assert!(refusal(&o).contains("is not a valid address"));
}

#[tokio::test]
async fn monitor_mode_refuses_no_token_but_counts_and_logs() {
    LogCapture::global();
    let dir = temp_dir("tokens-monitor");
    let dns = TestDns::start(zone(&TestKey::ed25519())).await;
    let toml = common::config(&dns, &controls::toml(&dir, State::File, None))
        .replace("mode = \"enforce\"", "mode = \"monitor\"");
    let config = dir.join("mk.toml");
    write(&config, &toml);
    let daemon = Daemon::start(&toml).await;
    let (address, tag) = issue(&config, &["--for", "alice@receiver.test", "--uses", "1"]);
    let from = "orders@shop.test";
    let t = |n: u32| {
        let m = message(from).replace("<1@", &format!("<m{n}@"));
        Transaction::new("127.0.0.55", from, m).to(&[&address])
    };
    assert!(send(daemon.addr, &t(1)).await.is_accept());
    // Used up: monitor mode still accepts, and says what enforce would do.
    let second = send(daemon.addr, &t(2)).await;
    assert_eq!(second.rcpts, [Status::Continue]);
    assert!(second.is_accept());
    let line = LogCapture::global().line_with(&["recipient refused", &format!("token={tag}")]);
    assert!(
        line.contains("token_refused=used_up") && line.contains("verdict=accept"),
        "{line}"
    );
}
