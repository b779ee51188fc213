//! The binary as an operator meets it: defaults, config errors, `evaluate`,
//! the per-message log line, reload, shutdown, and garbage on the socket.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    dns::{TestDns, Zone},
    message,
    process::{self, free_addr, mailkey, mailkey_blocking, temp_dir, write, Process, BIN},
    require, send, Need, TestKey, Transaction,
};
use indymilter_test::{Status, TestConnection};
use tokio::io::AsyncWriteExt;

const FROM: &str = "alice@sender.test";

#[tokio::test]
async fn starts_without_config_on_safe_defaults() {
    // No arguments at all: monitor mode on inet:127.0.0.1:8895.
    let daemon = Process::start(&[]);
    let line = daemon.wait_for(&["started"]).await;
    assert!(line.contains("listen=inet:127.0.0.1:8895"), "{line}");
    assert!(line.contains("mode=monitor"), "{line}");
    daemon
        .wait_for(&["monitor mode: nothing is rejected"])
        .await;
    // It speaks the milter protocol there (no message: that would query
    // the system resolver, which is not a loopback address).
    let conn = TestConnection::open("127.0.0.1:8895")
        .await
        .expect("milter negotiates");
    conn.close().await.expect("close");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = temp_dir("check-ok");
    let file = dir.join("ok.toml");
    write(
        &file,
        "mode = \"enforce\"\n[mailkey]\nno_key = \"reject\"\n",
    );
    let out = mailkey_blocking(&["check-config", file.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mode = \"enforce\""), "{text}");
    assert!(text.contains("no_key = \"reject\""), "{text}");
    assert!(text.contains("listen = \"inet:127.0.0.1:8895\""), "{text}");
}

#[test]
fn config_errors_name_file_line_key_and_allowed_values() {
    let dir = temp_dir("check-bad");
    let file = dir.join("bad.toml");
    write(&file, "# comment\n[tls]\nrequire = \"always\"\n");
    let out = mailkey_blocking(&["--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("require"), "{err}");
    assert!(
        err.contains("\"none\", \"encryption\", \"certificate\""),
        "{err}"
    );

    write(&file, "[mailkey]\nenforcee = true\n");
    let out = mailkey_blocking(&["check-config", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("unknown field `enforcee`"), "{err}");

    let out = mailkey_blocking(&["--config", "/nonexistent/mk.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/mk.toml: cannot read"));
}

/// `check-config` runs what the daemon's start runs before it binds its
/// socket (files read, keys loaded, names looked up): whatever the start
/// refuses, check-config refuses too, with the same message naming the
/// file, the line, the key and what is allowed.
#[tokio::test]
async fn check_config_refuses_what_start_up_refuses() {
    let dir = temp_dir("check-start");
    let key_file = dir.join("fwd.example.pem");
    TestKey::ed25519().write_pem(&key_file);
    let secrets = dir.join("srs.secrets");
    write(&secrets, "a-secret\n");
    let empty = dir.join("empty.secrets");
    write(&empty, "# only a comment\n\n");
    let signing = format!(
        "[[signing.domains]]\ndomain = \"fwd.example\"\nkey_file = \"{}\"\n",
        key_file.display()
    );
    let srs = |domain: &str, file: &std::path::Path| {
        format!(
            "{signing}[srs]\ndomain = \"{domain}\"\nsecret_file = \"{}\"\n",
            file.display()
        )
    };
    // (config, line, key, what is allowed)
    let cases = [
        (
            srs(
                "fwd.example",
                std::path::Path::new("/nonexistent/srs.secrets"),
            ),
            6,
            "srs.secret_file",
            "allowed is a readable file with at least one secret line",
        ),
        (
            srs("fwd.example", &empty),
            6,
            "srs.secret_file",
            "allowed is a readable file with at least one secret line",
        ),
        (
            srs("other.example", &secrets),
            5,
            "srs.domain",
            "allowed is a domain of [[signing.domains]]",
        ),
        (
            "[forwarding]\ntrusted_arc_sealers = [\"lists.example.org\", \"not a domain\"]\n"
                .into(),
            2,
            "forwarding.trusted_arc_sealers",
            "allowed is a DNS name",
        ),
        (
            "socket_owner = \"no-such-user-mailkey\"\n".into(),
            1,
            "socket_owner",
            "allowed is a user or group name",
        ),
    ];
    for (n, (text, line, key, allowed)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{n}.toml"));
        write(&file, text);
        let file = file.to_str().unwrap();
        let check = mailkey(&["check-config", file]).await;
        let err = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{text}: {err}");
        for part in [
            format!("{file}, line {line}: key `{key}`"),
            allowed.to_string(),
        ] {
            assert!(err.contains(&part), "{part:?} not in {err}");
        }
        // The start refuses it with the same words (a start that went on
        // would be stopped by the guard and fail the test).
        let listen = format!("inet:{}", free_addr());
        let start = mailkey(&["--config", file, "--listen", &listen]).await;
        assert_eq!(start.status.code(), Some(1), "{text}");
        let start_err = String::from_utf8_lossy(&start.stderr);
        let first = |e: &str| {
            e.lines()
                .find(|l| l.contains("mailkey-milter:"))
                .map(str::to_string)
        };
        assert_eq!(first(&start_err), first(&err), "{start_err}");
    }
}

/// `--listen` and `--mode` are the daemon's: other commands neither list
/// nor take them, and the daemon still does, with or without `run`.
#[tokio::test]
async fn daemon_flags_belong_to_the_daemon() {
    let help = |args: &[&str]| {
        let out = mailkey_blocking(args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in [
        "report",
        "check-config",
        "evaluate",
        "keygen",
        "check-domain",
        "sign",
    ] {
        let text = help(&[command, "--help"]);
        assert!(
            !text.contains("--listen") && !text.contains("--mode"),
            "{command}: {text}"
        );
        assert!(text.contains("--config"), "{command}: {text}");
    }
    for args in [&["--help"][..], &["run", "--help"]] {
        let text = help(args);
        assert!(
            text.contains("--listen") && text.contains("--mode"),
            "{args:?}: {text}"
        );
    }
    let out = mailkey(&["--mode", "enforce", "report", "/dev/null"]).await;
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen and --mode are the daemon's"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon takes them, before `run` and after it.
    for run in [&[][..], &["run"]] {
        let addr = free_addr();
        let listen = format!("inet:{addr}");
        let mut args = run.to_vec();
        args.extend(["--listen", listen.as_str(), "--mode", "enforce"]);
        let daemon = Process::start(&args);
        let line = daemon.wait_for(&["started"]).await;
        assert!(line.contains(&format!("listen={listen}")), "{line}");
        assert!(line.contains("mode=enforce"), "{line}");
    }
}

/// Runs `evaluate` against the test DNS server.
async fn evaluate(dns: &TestDns, mode: &str, message: &str) -> (i32, String) {
    let dir = temp_dir(&format!("eval-{mode}-{}", message.len()));
    let file = dir.join("mk.toml");
    write(
        &file,
        &format!(
            "mode = \"{mode}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout_ms = 500\n",
            dns.addr()
        ),
    );
    let out = process::run(
        BIN,
        &[
            "--config",
            file.to_str().unwrap(),
            "evaluate",
            "--mail-from",
            FROM,
            "--client-ip",
            "127.0.0.10",
            "--helo",
            "mail.sender.test",
            // A session whose client certificate the MTA verified.
            "--tls-version",
            "TLSv1.3",
            "--cert-subject",
            "mail.sender.test",
            "--cert-issuer",
            "Test CA",
        ],
        message.as_bytes(),
    )
    .await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn evaluate_prints_results_and_exits_by_verdict() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    // A file with LF line ends, as messages on disk usually are.
    let signed = key
        .sign(&message(FROM), "sender.test", "mailkey")
        .replace("\r\n", "\n");
    let (code, out) = evaluate(&dns, "enforce", &signed).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mailkey: pass"), "{out}");
    assert!(out.contains("verdict: accept"), "{out}");

    let (code, out) = evaluate(&dns, "enforce", &message(FROM)).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("mailkey: fail (no mailkey signature)"),
        "{out}"
    );
    assert!(
        out.contains("550-5.7.20 mailkey check fail for sender.test"),
        "{out}"
    );

    let (code, out) = evaluate(&dns, "monitor", &message(FROM)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("monitor mode; enforce mode would answer:"),
        "{out}"
    );

    let dns = TestDns::start(common::sender_zone().timeout("mailkey.sender.test")).await;
    let (code, out) = evaluate(&dns, "enforce", &signed).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("451-4.4.3"), "{out}");
}

fn daemon_config(dns: &TestDns, listen: &str, mode: &str, log_format: &str) -> String {
    format!(
        "listen = \"{listen}\"\nmode = \"{mode}\"\nlog_format = \"{log_format}\"\n\
         authserv_id = \"mx.receiver.test\"\ntrusted_networks = [\"127.0.0.1/32\"]\n\
         [dns]\nnameservers = [\"{}\"]\ntimeout_ms = 500\n",
        dns.addr()
    )
}

#[tokio::test]
async fn one_log_line_per_message_text_and_json() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let dir = temp_dir("log");
    let file = dir.join("mk.toml");
    let addr = free_addr();
    write(
        &file,
        &daemon_config(&dns, &format!("inet:{addr}"), "monitor", "text"),
    );
    let daemon = Process::start(&["--config", file.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    let outcome = send(addr, &Transaction::new("127.0.0.10", FROM, message(FROM))).await;
    assert_eq!(outcome.status, Status::Accept);
    let line = daemon.wait_for(&["queue_id=QUEUEID1"]).await;
    println!("{line}");
    for part in [
        "client=127.0.0.10",
        "helo=\"mail.sender.test\"",
        "mail_from=\"<alice@sender.test>\"",
        "domain=\"sender.test\"",
        "mailkey=fail",
        "verdict=accept",
        "would_reject=\"550 5.7.20\"",
        "reasons=\"mailkey: no mailkey signature\"",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    assert_eq!(
        daemon
            .log()
            .iter()
            .filter(|l| l.contains("QUEUEID1"))
            .count(),
        1
    );
    drop(daemon);

    let addr = free_addr();
    write(
        &file,
        &daemon_config(&dns, &format!("inet:{addr}"), "enforce", "json"),
    );
    let daemon = Process::start(&["--config", file.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    let outcome = send(addr, &Transaction::new("127.0.0.10", FROM, message(FROM))).await;
    assert!(matches!(outcome.status, Status::Reject { .. }));
    let line = daemon.wait_for(&["QUEUEID1"]).await;
    println!("{line}");
    assert!(line.starts_with('{'), "{line}");
    assert!(line.contains("\"queue_id\":\"QUEUEID1\""), "{line}");
    assert!(line.contains("\"verdict\":\"reject\""), "{line}");
    assert!(line.contains("\"reply\":\"550 5.7.20\""), "{line}");
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_config_is_refused() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let dir = temp_dir("reload");
    let file = dir.join("mk.toml");
    let addr = free_addr();
    let listen = format!("inet:{addr}");
    write(&file, &daemon_config(&dns, &listen, "monitor", "text"));
    let daemon = Process::start(&["--config", file.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    let unsigned = Transaction::new("127.0.0.10", FROM, message(FROM));
    assert_eq!(send(addr, &unsigned).await.status, Status::Accept);

    write(&file, &daemon_config(&dns, &listen, "enforce", "text"));
    daemon.signal("HUP");
    daemon.wait_for(&["configuration reloaded"]).await;
    assert!(matches!(
        send(addr, &unsigned).await.status,
        Status::Reject { .. }
    ));

    write(&file, "mode = \"sometimes\"\n");
    daemon.signal("HUP");
    let line = daemon.wait_for(&["reload refused"]).await;
    assert!(
        line.contains("mk.toml") && line.contains("\"monitor\", \"enforce\""),
        "{line}"
    );
    assert!(
        matches!(send(addr, &unsigned).await.status, Status::Reject { .. }),
        "old config kept"
    );
}

/// The reload path itself, in-process (`run` takes the reloads as input):
/// a good configuration switches the mode for the next transaction, one
/// that cannot be set up (a missing CA file) keeps the running one.
#[tokio::test]
async fn reload_in_process_applies_good_and_keeps_old_on_setup_error() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let monitor = common::config(&dns, "").replace("mode = \"enforce\"", "mode = \"monitor\"");
    let daemon = common::Daemon::start(&monitor).await;
    let unsigned = Transaction::new("127.0.0.10", FROM, message(FROM));
    assert_eq!(send(daemon.addr, &unsigned).await.status, Status::Accept);

    daemon.reload(&common::config(&dns, ""));
    let rejected = send(daemon.addr, &unsigned).await;
    rejected.assert_rejected("550-5.7.20 ", &[]);

    let bad_ca = format!("{}\n[tls]\nca_file = \"/nonexistent/ca.pem\"\n", monitor);
    daemon.reload(&bad_ca);
    assert!(
        matches!(
            send(daemon.addr, &unsigned).await.status,
            Status::Reject { .. }
        ),
        "the enforcing configuration stays"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_unix_socket() {
    let dns = TestDns::start(Zone::default()).await;
    let dir = temp_dir("term");
    let socket = dir.join("milter.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let file = dir.join("mk.toml");
    write(
        &file,
        &daemon_config(
            &dns,
            &format!("unix:{}", socket.display()),
            "monitor",
            "text",
        ),
    );
    let mut daemon = Process::start(&["--config", file.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let conn = indymilter_test::TestConnection::configure()
        .open_unix(&socket)
        .await
        .expect("unix socket serves");
    conn.close().await.unwrap();
    daemon.signal("TERM");
    let status = daemon.child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_daemon() {
    let key = TestKey::ed25519();
    let dns = TestDns::start(common::sender_zone().txt("mailkey.sender.test", &key.record)).await;
    let dir = temp_dir("garbage");
    let file = dir.join("mk.toml");
    let addr = free_addr();
    write(
        &file,
        &daemon_config(&dns, &format!("inet:{addr}"), "enforce", "text"),
    );
    let mut daemon = Process::start(&["--config", file.to_str().unwrap()]);
    daemon.wait_for(&["started"]).await;
    for junk in [
        &b"\x00\x00\x00\x05Ojunk"[..],
        b"\xff\xff\xff\xffX",
        b"GET / HTTP/1.0\r\n\r\n",
        b"\x00\x00\x00\x01",
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(junk).await;
        drop(s);
    }
    let signed = key.sign(&message(FROM), "sender.test", "mailkey");
    let outcome = send(addr, &Transaction::new("127.0.0.10", FROM, signed)).await;
    assert_eq!(outcome.status, Status::Accept, "still serving");
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn man_pages_render_without_warnings() {
    if !require(&[Need::Man]) {
        return;
    }
    for page in ["contrib/mailkey-milter.8", "contrib/mailkey-milter.toml.5"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(page);
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (package man-db; tests/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{page} renders with warnings"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("mailkey"),
            "{page} rendered empty"
        );
    }
}
