//! The embedded state store and the real binary: a token's uses survive a
//! restart and a kill -9 in the middle of a message, with no use lost and
//! none counted twice.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    controls::{self, code, issue, State},
    dns::{TestDns, Zone},
    message, open,
    process::{free_addr, temp_dir, write, Process},
    send, Transaction,
};
use indymilter_test::{MacroStage, Status};
use std::net::Ipv4Addr;

const CLIENT: &str = "127.0.0.54";
const FROM: &str = "orders@shop.test";

fn order(n: u32) -> String {
    message(FROM).replace("<1@sender.test>", &format!("<order-{n}@shop.test>"))
}

#[tokio::test]
async fn token_uses_survive_restart_and_kill_9_mid_message_exactly() {
    let dir = temp_dir("tokens-crash");
    let dns = TestDns::start(
        Zone::default()
            .txt("shop.test", "v=spf1 ip4:192.0.2.1 -all")
            .mx("shop.test", 10, "mx.shop.test")
            .a("mx.shop.test", Ipv4Addr::new(127, 0, 0, 25)),
    )
    .await;
    let addr = free_addr();
    let toml = format!(
        "listen = \"inet:{addr}\"\n{}",
        common::config(&dns, &controls::toml(&dir, State::File, None))
    );
    let config = dir.join("mk.toml");
    write(&config, &toml);
    let config_arg = config.to_str().unwrap();
    let (address, tag) = issue(&config, &["--for", "alice@receiver.test", "--uses", "3"]);
    let uses = || {
        let list = controls::token(&config, &["list"]);
        let line = list
            .lines()
            .find(|l| l.starts_with(&tag))
            .unwrap()
            .to_string();
        line.split_whitespace()
            .find(|w| w.ends_with("/3"))
            .unwrap()
            .to_string()
    };
    let to_alice = |n| Transaction::new(CLIENT, FROM, order(n)).to(&[&address]);

    let mut daemon = Process::start(&["--config", config_arg]);
    daemon.wait_for(&["started"]).await;
    assert!(send(addr, &to_alice(1)).await.is_accept());
    assert_eq!(uses(), "1/3");

    // Order 2 gets as far as its body (its token accepted at RCPT), then
    // the daemon is killed: the MTA defers it, and no use is counted.
    let mut conn = open(addr, CLIENT.parse().unwrap(), "mail.sender.test").await;
    conn.macros(MacroStage::Mail, [("i", "QUEUEID2")])
        .await
        .unwrap();
    conn.mail([format!("<{FROM}>")]).await.unwrap();
    assert_eq!(
        conn.rcpt([format!("<{address}>")]).await.unwrap(),
        Status::Continue
    );
    conn.header("Subject", " order 2").await.unwrap();
    conn.body(b"half a body".to_vec()).await.unwrap();
    daemon.child.kill().await.expect("kill -9");
    assert!(conn.eom().await.is_err(), "the killed daemon answered");
    assert_eq!(
        uses(),
        "1/3",
        "a use was counted for a message never accepted"
    );

    // Restarted on the same file: the use before the kill is still there.
    let daemon = Process::start(&["--config", config_arg]);
    daemon.wait_for(&["started"]).await;
    assert!(send(addr, &to_alice(2)).await.is_accept(), "order 2 again");
    assert!(send(addr, &to_alice(3)).await.is_accept(), "order 3");
    assert_eq!(uses(), "3/3");
    let fourth = send(addr, &to_alice(4)).await;
    assert_eq!(code(&fourth.rcpts[0]), "550 5.7.1");
    assert!(
        fourth.reply().contains("has been used for all 3 messages"),
        "{}",
        fourth.reply()
    );
    daemon.wait_for(&["token=", &tag, "verdict=accept"]).await;
}
