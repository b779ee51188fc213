//! The real SMTP client, swaks, and what it saw: its transcript and the
//! replies the server gave to each command. Tests that send through Postfix
//! assert on these replies (for example the milter's `550 5.7.20`).
#![allow(dead_code)]

use std::process::{Command, ExitStatus, Stdio};

/// The address swaks should send from (`--local-interface`): a loopback
/// address outside Postfix's `mynetworks` (127.0.0.1/32) and outside the
/// milter's default trusted networks' "this is us" case of 127.0.0.1.
pub const CLIENT_IP: &str = "127.0.0.20";

/// One finished swaks run.
#[derive(Debug)]
pub struct Swaks {
    pub status: ExitStatus,
    /// stdout and stderr interleaved as swaks wrote them.
    pub output: String,
}

/// One server reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The command it answers as swaks printed it (`MAIL FROM:<a@b>`,
    /// `DATA`, `.` for end of data, `<banner>` for the greeting).
    pub command: String,
    /// Every line of the reply without swaks' prefix (`550 5.7.20 ...`).
    pub lines: Vec<String>,
}

impl Reply {
    /// The basic and, when present, enhanced status code: `"550 5.7.20"`,
    /// or `"250"` from a server that sends no enhanced codes.
    pub fn code(&self) -> String {
        let last = self.lines.last().map(String::as_str).unwrap_or("");
        let basic = last.get(..3).unwrap_or(last);
        let enhanced = last
            .get(4..)
            .and_then(|rest| rest.split(' ').next())
            .filter(|e| {
                e.split('.').count() == 3
                    && e.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
        match enhanced {
            Some(enhanced) => format!("{basic} {enhanced}"),
            None => basic.to_string(),
        }
    }

    /// The whole reply as the server sent it, one line per line.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl Swaks {
    /// Every server reply in order, each with the command it answers.
    pub fn replies(&self) -> Vec<Reply> {
        let mut replies: Vec<Reply> = Vec::new();
        let mut command = "<banner>".to_string();
        // Inside a multi-line reply: its last line so far ended "NNN-".
        let mut open = false;
        for line in self.output.lines() {
            let (prefix, rest) = (line.get(..3).unwrap_or(""), line.get(4..).unwrap_or(""));
            match prefix {
                // Client lines: plain, TLS, and their error variants.
                " ->" | " ~>" | "**>" | "*~>" => {
                    command = rest.to_string();
                    open = false;
                }
                // Server lines: plain, TLS, and their error variants.
                "<- " | "<~ " | "<**" | "<~*" => {
                    let line = rest.trim_start_matches(' ').to_string();
                    let continues = line.as_bytes().get(3) == Some(&b'-');
                    match replies.last_mut() {
                        Some(reply) if open => reply.lines.push(line),
                        _ => replies.push(Reply {
                            command: command.clone(),
                            lines: vec![line],
                        }),
                    }
                    open = continues;
                }
                _ => {}
            }
        }
        replies
    }

    /// The last reply to a command starting with `command` (ignoring
    /// case): `reply_to("RCPT")`, `reply_to("DATA")`, `reply_to(".")`.
    pub fn reply_to(&self, command: &str) -> Option<Reply> {
        let wanted = command.to_ascii_uppercase();
        self.replies()
            .into_iter()
            .rev()
            .find(|r| r.command.to_ascii_uppercase().starts_with(&wanted))
    }

    /// The reply that decided the transaction: to end of data when swaks got
    /// that far, else to whatever command failed (DATA, RCPT, MAIL,
    /// STARTTLS, ...); never the reply to QUIT. `None` if the server never
    /// answered.
    pub fn final_reply(&self) -> Option<Reply> {
        self.replies()
            .into_iter()
            .rev()
            .find(|r| !r.command.eq_ignore_ascii_case("QUIT"))
    }

    /// `final_reply().code()`, or a panic showing the transcript.
    pub fn final_code(&self) -> String {
        match self.final_reply() {
            Some(reply) => reply.code(),
            None => panic!("swaks got no SMTP reply:\n{}", self.output),
        }
    }
}

/// Runs swaks with `args` and waits for it. A rejected message is a normal
/// outcome here (check `final_code`), not a panic. Panics, saying to run
/// tests/setup.sh, when swaks is not installed: a test that needs it must
/// fail rather than skip.
///
/// Config files and `SWAKS_OPT_*` variables of whoever runs the tests are
/// ignored, so the run depends on `args` alone. Blocks the calling thread.
pub fn run(args: &[&str]) -> Swaks {
    let output = command(args).output().expect("run swaks");
    finish(output)
}

/// [`run`] for async tests: does not block the runtime, so an in-process
/// milter on the same runtime can answer Postfix meanwhile.
pub async fn run_async(args: &[&str]) -> Swaks {
    let output = tokio::process::Command::from(command(args))
        .output()
        .await
        .expect("run swaks");
    finish(output)
}

fn command(args: &[&str]) -> Command {
    let installed = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("swaks").is_file()));
    assert!(
        installed,
        "swaks is not installed: run `bash tests/setup.sh` (as root) first"
    );
    // Through sh only to get stdout and stderr into one pipe in order.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec swaks \"$@\" 2>&1", "swaks"])
        .args(args)
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWAKS_OPT_") {
            cmd.env_remove(name);
        }
    }
    // Empty means "--config" without argument: no ~/.swaksrc.
    cmd.env("SWAKS_OPT_config", "");
    cmd
}

fn finish(output: std::process::Output) -> Swaks {
    Swaks {
        status: output.status,
        output: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Sends one message as an outside client would: from [`CLIENT_IP`] with
/// `EHLO mail.sender.test`, `data` written to `dir/message.eml` first;
/// `extra` adds swaks arguments (e.g. `--tls`).
pub async fn submit(
    dir: &std::path::Path,
    server: std::net::SocketAddr,
    from: &str,
    to: &str,
    data: &str,
    extra: &[&str],
) -> Swaks {
    let client = (CLIENT_IP, "mail.sender.test");
    submit_from(dir, server, client, (from, to), data, extra).await
}

/// Like [`submit`] from another client: `(address, EHLO name)`.
pub async fn submit_from(
    dir: &std::path::Path,
    server: std::net::SocketAddr,
    (ip, helo): (&str, &str),
    (from, to): (&str, &str),
    data: &str,
    extra: &[&str],
) -> Swaks {
    let file = dir.join("message.eml");
    std::fs::write(&file, data).expect("write message");
    let server = server.to_string();
    let data_arg = format!("@{}", file.display());
    let mut args = vec![
        "--server",
        &server,
        "--local-interface",
        ip,
        "--ehlo",
        helo,
        "--from",
        from,
        "--to",
        to,
        "--data",
        &data_arg,
    ];
    args.extend_from_slice(extra);
    run_async(&args).await
}
