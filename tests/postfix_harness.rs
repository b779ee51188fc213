//! The end-to-end harness itself, without any milter: a real private
//! Postfix relays a real swaks client's STARTTLS message to the SMTP sink,
//! bounces mail for an unknown local user to the sink as a DSN, and
//! tempfails when its milter is unreachable. If these fail, the end-to-end
//! milter tests cannot be trusted either.
//!
//! Needs root, `postfix` and `swaks` (tests/setup.sh): skipped with a note
//! without them, failed under `CI=true`.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    postfix::{Postfix, PostfixOptions, PostfixTls},
    process::free_port,
    require,
    require::WITH_POSTFIX,
    smtp_sink::{SmtpSink, DELIVERY},
    swaks,
    tls::{Leaf, Pki},
};
use indymilter::{Callbacks, Status};
use std::{
    collections::HashMap,
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

/// swaks arguments to send one message through `pf` from [`swaks::CLIENT_IP`].
fn swaks_args(pf: &Postfix, from: &str, to: &str) -> Vec<String> {
    let server = pf.smtp_addr().to_string();
    [
        "--server",
        &server,
        "--local-interface",
        swaks::CLIENT_IP,
        "--from",
        from,
        "--to",
        to,
    ]
    .map(String::from)
    .to_vec()
}

fn run_swaks(args: &[String]) -> swaks::Swaks {
    swaks::run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Postfix's STARTTLS with a certificate of `pki` (swaks does not verify
/// it).
fn server_tls(pki: &Pki) -> PostfixTls {
    let (cert_file, key_file) = pki.write("server", &pki.leaf(Leaf::valid(&["mta.test"], 2)));
    PostfixTls {
        cert_file,
        key_file,
        ca_file: None,
        ask_ccert: false,
    }
}

#[test]
fn starttls_message_is_relayed_to_the_sink() {
    if !require(WITH_POSTFIX) {
        return;
    }
    let pki = Pki::new("harness-tls");
    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        relay_domains: vec!["receiver.test".into()],
        tls: Some(server_tls(&pki)),
        ..Default::default()
    };
    let pf = Postfix::start(opts, &sink);

    let mut args = swaks_args(&pf, "alice@sender.test", "user@receiver.test");
    args.extend(["--tls", "--header", "Subject: harness"].map(String::from));
    let sent = run_swaks(&args);
    assert!(sent.status.success(), "{}", sent.output);
    let end = sent.final_reply().expect("a reply");
    assert_eq!(end.command, ".", "{}", sent.output);
    assert_eq!(end.code(), "250 2.0.0", "{}", sent.output);
    // swaks marks lines sent inside TLS with "~>".
    assert!(
        sent.output.contains(" ~> MAIL FROM:<alice@sender.test>"),
        "{}",
        sent.output
    );

    let got = sink.wait_for(1, DELIVERY);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "alice@sender.test");
    assert_eq!(got[0].rcpt_to, ["user@receiver.test"]);
    let text = got[0].text();
    // Postfix's Received header: the client as Postfix saw it, and TLS.
    assert!(text.contains("Received: from "), "{text}");
    assert!(text.contains("(unknown [127.0.0.20])"), "{text}");
    assert!(text.contains("(using TLSv1."), "{text}");
    assert!(
        text.contains("by mta.test (Postfix) with ESMTPS id "),
        "{text}"
    );
    assert!(text.contains("Subject: harness"), "{text}");
    assert!(
        pf.log()
            .contains("TLS connection established from unknown[127.0.0.20]"),
        "{}",
        pf.log()
    );
}

#[test]
fn unknown_local_user_bounces_to_the_sink() {
    if !require(WITH_POSTFIX) {
        return;
    }
    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        relay_domains: vec!["sender.test".into()],
        local_domain: Some("local.test".into()),
        ..Default::default()
    };
    let pf = Postfix::start(opts, &sink);

    // Accepted at SMTP time (no local recipient table); bounced afterwards.
    let sent = run_swaks(&swaks_args(
        &pf,
        "alice@sender.test",
        "no-such-user@local.test",
    ));
    assert_eq!(sent.final_code(), "250 2.0.0", "{}", sent.output);
    pf.flush();

    let got = sink.wait_for(1, DELIVERY);
    assert_eq!(got.len(), 1, "{got:#?}");
    let dsn = &got[0];
    assert_eq!(dsn.mail_from, "", "a bounce has the null sender");
    assert_eq!(dsn.rcpt_to, ["alice@sender.test"]);
    let text = dsn.text();
    for part in [
        "From: Mail Delivery System <MAILER-DAEMON@mta.test>",
        "Subject: Undelivered Mail Returned to Sender",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status",
        "Final-Recipient: rfc822; no-such-user@local.test",
        "Action: failed",
        "Status: 5.1.1",
        "Content-Type: message/rfc822",
    ] {
        assert!(text.contains(part), "DSN lacks {part:?}:\n{text}");
    }
    let log = pf.log();
    assert!(
        log.contains("status=bounced (unknown user: \"no-such-user\")"),
        "{log}"
    );
    assert!(log.contains("sender non-delivery notification"), "{log}");
}

#[test]
fn unreachable_milter_tempfails() {
    if !require(WITH_POSTFIX) {
        return;
    }
    let sink = SmtpSink::start();
    // A port nothing listens on.
    let port = free_port();
    let opts = PostfixOptions {
        smtpd_milters: Some(format!("inet:127.0.0.1:{port}")),
        relay_domains: vec!["receiver.test".into()],
        ..Default::default()
    };
    let pf = Postfix::start(opts, &sink);

    let sent = run_swaks(&swaks_args(&pf, "alice@sender.test", "user@receiver.test"));
    // Postfix answers EHLO, then refuses the transaction at MAIL FROM.
    let reply = sent.final_reply().expect("a reply");
    assert_eq!(
        reply.command, "MAIL FROM:<alice@sender.test>",
        "{}",
        sent.output
    );
    assert_eq!(reply.code(), "451 4.7.1", "{}", sent.output);
    assert_eq!(
        reply.text(),
        "451 4.7.1 Service unavailable - try again later"
    );
    assert_eq!(
        sent.status.code(),
        Some(23),
        "swaks: error in MAIL transaction\n{}",
        sent.output
    );
    let log = pf.log();
    assert!(
        log.contains(&format!(
            "connect to Milter service inet:127.0.0.1:{port}: Connection refused"
        )),
        "{log}"
    );
    assert!(
        log.contains("milter-reject: MAIL from unknown[127.0.0.20]: 451 4.7.1"),
        "{log}"
    );
    assert!(sink.messages().is_empty());
}

/// A milter that lets everything through and records, per message, every
/// macro Postfix sent up to end of data. It requests no macros itself, so
/// Postfix sends the lists in main.cf: this checks those lists.
struct MacroRecorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MacroRecorder {
    fn start() -> MacroRecorder {
        let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let record = seen.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                let callbacks = Callbacks::<()>::new().on_eom(move |cx| {
                    let macros = cx.macros.to_hash_map().into_iter();
                    let macros = macros
                        .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()));
                    record.lock().unwrap().push(macros.collect());
                    Box::pin(async { Status::Continue })
                });
                let _ = indymilter::run(listener, callbacks, Default::default(), stopped).await;
            });
        });
        MacroRecorder {
            addr: bound.recv().unwrap(),
            seen,
            _stop: stop,
        }
    }
}

#[test]
fn milter_gets_the_macros_including_a_verified_client_certificate() {
    if !require(WITH_POSTFIX) {
        return;
    }
    let pki = Pki::new("harness-macros");
    let client = pki.leaf(Leaf::valid(&["client.sender.test"], 3));
    let (client_cert, client_key) = pki.write("client", &client);
    let milter = MacroRecorder::start();
    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        smtpd_milters: Some(format!("inet:{}", milter.addr)),
        relay_domains: vec!["receiver.test".into()],
        tls: Some(PostfixTls {
            ca_file: Some(pki.ca_file()),
            ask_ccert: true,
            ..server_tls(&pki)
        }),
        ..Default::default()
    };
    let pf = Postfix::start(opts, &sink);

    let mut args = swaks_args(&pf, "alice@sender.test", "user@receiver.test");
    args.extend(
        [
            "--tls",
            "--tls-cert",
            client_cert.to_str().unwrap(),
            "--tls-key",
            client_key.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let sent = run_swaks(&args);
    assert_eq!(sent.final_code(), "250 2.0.0", "{}", sent.output);
    sink.wait_for(1, DELIVERY);

    let seen = milter.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let m = &seen[0];
    let get = |name: &str| {
        m.get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no macro {name} in {m:#?}"))
    };
    assert!(
        pf.log()
            .contains(&format!("{}: client=unknown[127.0.0.20]", get("i"))),
        "{m:#?}"
    );
    assert_eq!(get("j"), "mta.test");
    assert_eq!(get("{daemon_name}"), "mta.test");
    assert_eq!(get("{client_addr}"), swaks::CLIENT_IP);
    assert!(get("{tls_version}").starts_with("TLSv1."), "{m:#?}");
    assert!(!get("{cipher}").is_empty(), "{m:#?}");
    assert!(get("{cipher_bits}").parse::<u32>().is_ok(), "{m:#?}");
    assert_eq!(get("{cert_subject}"), "client.sender.test");
    assert_eq!(get("{cert_issuer}"), "Test CA harness-macros");
    // Without SASL there is no {auth_authen} (Postfix sends only defined macros).
    eprintln!("macros at end of data: {m:#?}");
}

#[test]
fn bounce_goes_through_the_non_smtpd_milter() {
    if !require(WITH_POSTFIX) {
        return;
    }
    let milter = MacroRecorder::start();
    let sink = SmtpSink::start();
    let opts = PostfixOptions {
        non_smtpd_milters: Some(format!("inet:{}", milter.addr)),
        bounce_through_milter: true,
        relay_domains: vec!["sender.test".into()],
        local_domain: Some("local.test".into()),
        ..Default::default()
    };
    let pf = Postfix::start(opts, &sink);

    let sent = run_swaks(&swaks_args(
        &pf,
        "alice@sender.test",
        "no-such-user@local.test",
    ));
    assert_eq!(sent.final_code(), "250 2.0.0", "{}", sent.output);
    let got = sink.wait_for(1, DELIVERY);
    assert!(
        got[0].text().contains("report-type=delivery-status"),
        "{got:#?}"
    );

    // The incoming message came through smtpd (no smtpd_milters): the one
    // message the milter saw is the bounce, with the null sender.
    let seen = milter.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(
        seen[0].get("{mail_addr}").map(String::as_str),
        Some(""),
        "{seen:#?}"
    );
    eprintln!("macros of the bounce at end of data: {seen:#?}");
}

/// The sink on its own: dot-unstuffing, pipelined commands, RSET, and input
/// that is not SMTP at all must not break it.
#[test]
fn sink_takes_pipelined_mail_and_survives_garbage() {
    let sink = SmtpSink::start();
    let mut garbage = TcpStream::connect(sink.addr()).unwrap();
    garbage
        .write_all(b"\xff\xfe\x00\r\nMAIL\r\nRCPT TO:\r\nDATA\r\nMAIL FROM:<x\r\n")
        .unwrap();
    drop(garbage);

    let mut client = TcpStream::connect(sink.addr()).unwrap();
    client
        .write_all(
            b"EHLO c\r\nMAIL FROM:<dropped@x>\r\nRSET\r\nMAIL FROM:<a@x> SIZE=10\r\n\
              RCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\nSubject: s\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
        )
        .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].mail_from, "a@x");
    assert_eq!(got[0].rcpt_to, ["b@y", "c@y"]);
    assert_eq!(got[0].data, b"Subject: s\r\n\r\n.dot\r\n");
}
