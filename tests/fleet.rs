//! Two MX hosts sharing one real redis-server (`[state] url`): the real
//! binary twice, with the same secrets. A one-use token consumed at host A
//! is refused at host B; a challenge solved through A's page lets the
//! re-send through B. With Redis down, what needs the store is deferred
//! (451 4.3.0), never refused or let through by guess, and mail that does
//! not need it flows as usual.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    controls::{self, code, issue, State},
    dns::{TestDns, Zone},
    message,
    process::{free_addr, temp_dir, write, Process},
    redis::Redis,
    require, require_for, send, Need, Transaction,
};
use indymilter_test::Status;
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
};

const CLIENT: &str = "127.0.0.60";

struct Host {
    milter: SocketAddr,
    metrics: SocketAddr,
    daemon: Process,
}

impl Host {
    /// The value of one series in a scrape of the host's metrics.
    async fn metric(&self, series: &str) -> f64 {
        let text = controls::http("GET", &format!("http://{}/metrics", self.metrics), "").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }
}

async fn host(dir: &Path, name: &str, dns: &TestDns, redis: &Redis) -> Host {
    let (milter, page, metrics) = (free_addr(), free_addr(), free_addr());
    let controls = controls::toml(dir, State::Redis(&redis.url()), Some((page, "refused")));
    let controls = format!("{controls}[metrics]\nlisten = \"{metrics}\"\n");
    let toml = format!(
        "listen = \"inet:{milter}\"\n{}",
        common::config(dns, &controls)
    );
    let config = dir.join(format!("{name}.toml"));
    write(&config, &toml);
    let daemon = Process::start(&["--config", config.to_str().unwrap()]);
    daemon.wait_for(&["challenge page on"]).await;
    Host {
        milter,
        metrics,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sharing_redis_agree_on_tokens_and_challenges() {
    if !require(&[Need::Redis]) {
        return;
    }
    let mut redis = Redis::start();
    let dir = temp_dir("fleet");
    let dns = TestDns::start(
        Zone::default()
            .txt("shop.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("person.test", &format!("v=spf1 ip4:{CLIENT} -all"))
            .txt("good.test", &format!("v=spf1 ip4:{CLIENT} -all"))
            .mx("shop.test", 10, "mx.shop.test")
            .mx("person.test", 10, "mx.shop.test")
            .mx("good.test", 10, "mx.shop.test")
            .a("mx.shop.test", Ipv4Addr::new(127, 0, 0, 25)),
    )
    .await;
    let a = host(&dir, "a", &dns, &redis).await;
    let b = host(&dir, "b", &dns, &redis).await;

    // A one-use token: used at A, used up at B.
    let (address, tag) = issue(
        &dir.join("a.toml"),
        &["--for", "alice@receiver.test", "--uses", "1"],
    );
    let order = |n: u32| {
        let m = message("orders@shop.test").replace("<1@", &format!("<order-{n}@"));
        Transaction::new(CLIENT, "orders@shop.test", m).to(&[&address])
    };
    assert!(send(a.milter, &order(1)).await.is_accept(), "used at A");
    let at_b = send(b.milter, &order(2)).await;
    assert_eq!(code(&at_b.rcpts[0]), "550 5.7.1", "{}", at_b.reply());
    assert!(
        at_b.reply().contains("has been used for all 1 messages"),
        "{}",
        at_b.reply()
    );
    b.daemon
        .wait_for(&["recipient refused", &tag, "token_refused=used_up"])
        .await;

    // Plaintext from an authenticated sender: refused at A with A's URL.
    let plain = || {
        let mut t = Transaction::new(CLIENT, "alice@person.test", message("alice@person.test"));
        t.tls_macros = Vec::new();
        t
    };
    let refused = send(a.milter, &plain()).await;
    assert_eq!(code(&refused.status), "550 5.7.10", "{}", refused.reply());
    let reply = refused.reply();
    let url = reply[reply.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let form = controls::http("GET", &url, "").await;
    assert!(
        form.starts_with("HTTP/1.1 200"),
        "{form}\n{}",
        a.daemon.log().join("\n")
    );
    let solved = controls::http(
        "POST",
        &url,
        &format!("answer={}&consent=yes", controls::answer(&form)),
    )
    .await;
    assert!(
        solved.contains("will be let through until"),
        "{solved}\n{}",
        a.daemon.log().join("\n")
    );
    // …and the re-send goes through B.
    let again = send(b.milter, &plain()).await;
    assert!(again.is_accept(), "{:?} {}", again.status, again.reply());
    assert!(again
        .auth_results()
        .unwrap()
        .contains("(exempt: challenge passed)"));
    b.daemon
        .wait_for(&["mail_from=\"<alice@person.test>\"", "challenge=passed"])
        .await;

    // Each host counts what it did.
    let m = "mailkey_milter_";
    assert_eq!(a.metric(&format!("{m}tokens_used_total")).await, 1.0);
    assert_eq!(
        a.metric(&format!("{m}challenges_total{{event=\"offered\"}}"))
            .await,
        1.0
    );
    assert_eq!(
        a.metric(&format!("{m}challenges_total{{event=\"passed\"}}"))
            .await,
        1.0
    );
    let used_up = format!("{m}tokens_refused_total{{reason=\"used_up\"}}");
    assert_eq!(b.metric(&used_up).await, 1.0);
    assert_eq!(
        b.metric(&format!("{m}challenges_total{{event=\"let_through\"}}"))
            .await,
        1.0
    );

    // Redis down: the token needs the store (451 at RCPT), and so does
    // a refusal of a sender that may be allowlisted (451, not 550); a
    // sender the checks accept is accepted.
    redis.stop();
    let token = send(b.milter, &order(3)).await;
    assert_eq!(code(&token.rcpts[0]), "451 4.3.0", "{:?}", token.rcpts);
    let maybe_allowed = send(b.milter, &plain()).await;
    assert_eq!(
        code(&maybe_allowed.status),
        "451 4.3.0",
        "{}",
        maybe_allowed.reply()
    );
    let good = Transaction::new(CLIENT, "news@good.test", message("news@good.test"));
    let good = send(b.milter, &good).await;
    assert_eq!(good.status, Status::Accept, "{}", good.reply());
    b.daemon.wait_for(&["failed to look up token"]).await;
    assert!(b.metric(&format!("{m}state_errors_total")).await >= 2.0);
}

/// The same operations give the same answers on both stores.
async fn exercise(store: &dyn mailkey_milter::state::Store) {
    use mailkey_milter::state::{Allow, ChallengeState, Token, Use};
    let token = Token {
        tag: "t1".into(),
        recipient: "alice@example.org".into(),
        scope: Some("shop.test".into()),
        expires: Some(4_000_000_000),
        max_uses: Some(2),
        nonce: "00".into(),
        created: 1,
    };
    store.put_token(&token).await.unwrap();
    assert_eq!(store.token("t1").await.unwrap().unwrap().token, token);
    assert_eq!(store.use_token("t1", "m1").await.unwrap(), Use::Counted(1));
    assert_eq!(store.use_token("t1", "m1").await.unwrap(), Use::Again(1));
    assert_eq!(store.use_token("t1", "m2").await.unwrap(), Use::Counted(2));
    assert_eq!(store.use_token("t1", "m3").await.unwrap(), Use::UsedUp(2));
    assert_eq!(store.use_token("t2", "m3").await.unwrap(), Use::Unknown);
    assert!(store.revoke("t1", 7).await.unwrap());
    assert!(!store.revoke("t2", 7).await.unwrap());
    assert_eq!(store.use_token("t1", "m4").await.unwrap(), Use::Revoked);
    let listed = store.tokens().await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].used, listed[0].revoked),
        (1, 2, Some(7))
    );
    let now = 1_000_000;
    let allow = Allow {
        sender: "bob@shop.test",
        recipient: "alice@example.org",
        until: now + 100,
    };
    assert!(!store
        .allowed("bob@shop.test", "alice@example.org", now)
        .await
        .unwrap());
    assert_eq!(
        store.wrong_answer("n1", 4_000_000_000, now).await.unwrap(),
        1
    );
    assert!(store.solve("n1", 4_000_000_000, &allow, now).await.unwrap());
    assert!(!store.solve("n1", 4_000_000_000, &allow, now).await.unwrap());
    assert_eq!(
        store.challenge("n1", now).await.unwrap(),
        ChallengeState {
            attempts: 1,
            solved: true
        }
    );
    assert!(store
        .allowed("bob@shop.test", "alice@example.org", now)
        .await
        .unwrap());
    assert!(!store
        .allowed("eve@shop.test", "alice@example.org", now)
        .await
        .unwrap());
}

#[tokio::test]
async fn the_file_and_redis_stores_agree() {
    let dir = temp_dir("stores-agree");
    let file = mailkey_milter::state::embedded::FileStore::open(&dir.join("s.sqlite")).unwrap();
    exercise(&file).await;
    if !require_for("the Redis store", &[Need::Redis]) {
        return;
    }
    let server = Redis::start();
    let store = mailkey_milter::state::redis::RedisStore::connect(&server.url(), 2000).unwrap();
    exercise(&store).await;
}
