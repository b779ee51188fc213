//! Recipients' controls for tests: the secret files, the `[state]`,
//! `[tokens]` and `[challenge]` tables, and the real `token` command.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path};

/// Where the state lives: a file in the test's directory, or a Redis URL.
pub enum State<'a> {
    File,
    Redis(&'a str),
}

/// The tables, with secrets written into `dir` (the same for every
/// daemon of a test, as every MX host of a fleet shares them).
/// `challenge`: the page's listen address and `when`.
pub fn toml(dir: &Path, state: State<'_>, challenge: Option<(SocketAddr, &str)>) -> String {
    let secret = dir.join("controls.secret");
    if !secret.exists() {
        std::fs::write(&secret, "# test\nthe-test-secret-for-tags-and-urls\n").expect("secret");
    }
    let mut out = match state {
        State::File => format!(
            "[state]\npath = \"{}\"\n",
            dir.join("state.sqlite").display()
        ),
        State::Redis(url) => format!("[state]\nurl = \"{url}\"\ntimeout_ms = 500\n"),
    };
    out.push_str(&format!(
        "[tokens]\nsecret_file = \"{}\"\n",
        secret.display()
    ));
    if let Some((listen, when)) = challenge {
        out.push_str(&format!(
            "[challenge]\nwhen = \"{when}\"\nlisten = \"{listen}\"\n\
             url = \"http://{listen}/challenge\"\nsecret_file = \"{}\"\n",
            secret.display()
        ));
    }
    out
}

/// Runs `mailkey-milter --config CONFIG token ARGS`; its stdout, or a
/// panic with its stderr.
pub fn token(config: &Path, args: &[&str]) -> String {
    let config = config.to_str().expect("a UTF-8 path");
    let all = [&["--config", config, "token"][..], args].concat();
    let out = super::process::mailkey_blocking(&all);
    super::process::succeeded(&format!("token {args:?}"), out)
}

/// `token issue ARGS`: the tagged address, and its tag.
pub fn issue(config: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["issue"];
    all.extend_from_slice(args);
    let address = token(config, &all).trim().to_string();
    let tag = address
        .split("+mk-")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .expect("a tagged address")
        .to_string();
    (address, tag)
}

/// The SMTP code and enhanced code a milter status carries
/// (`550 5.7.1`), or its kind.
pub fn code(status: &indymilter_test::Status) -> String {
    use indymilter_test::Status;
    match status {
        Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
            let m = m.to_string_lossy();
            let basic = m.get(..3).unwrap_or("");
            let enhanced = m.get(4..).and_then(|r| r.split(' ').next()).unwrap_or("");
            format!("{basic} {enhanced}")
        }
        other => format!("{other:?}"),
    }
}

/// One HTTP/1.1 request to the challenge page (`body` form-encoded for a
/// POST); the whole response.
pub async fn http(method: &str, url: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// The challenge URL in a refusal, if there is one.
pub fn url_in(reply: &str) -> Option<String> {
    let at = reply.find("http://")?;
    Some(reply[at..].split_whitespace().next()?.to_string())
}

/// The answer to a question `What is four plus seven?`, as a person
/// reads it (the operands are two to ten).
pub fn answer(question: &str) -> u32 {
    let words = "zero one two three four five six seven eight nine ten";
    let n = |w: &str| {
        words
            .split(' ')
            .position(|x| x == w)
            .expect("a number word") as u32
    };
    let q = question.split("What is ").nth(1).expect("a question");
    let (a, b) = q
        .split('?')
        .next()
        .unwrap_or_default()
        .split_once(" plus ")
        .expect("plus");
    n(a) + n(b)
}
