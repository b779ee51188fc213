//! A tiny SMTP server on 127.0.0.1 that accepts every message and keeps it,
//! standing in for "the rest of the Internet" behind a test Postfix: mail
//! Postfix relays (and the bounces it generates) end up here for the test
//! to inspect.
//!
//! It runs on its own thread with its own tokio runtime, so it keeps
//! serving while a test blocks (in `Postfix::start`, a swaks run, or
//! `wait_for`), whatever runtime the test itself uses.
#![allow(dead_code)]

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

/// Longest command or data line the sink reads; longer input ends the
/// session (a test sink has no business buffering unbounded garbage).
const MAX_LINE: u64 = 1 << 20;
/// RCPT TO addresses starting with this are refused (550 5.1.1).
pub const REFUSED_LOCAL_PART: &str = "no-such-user@";
/// Largest message the sink keeps.
const MAX_MESSAGE: usize = 64 << 20;
/// How long a test waits for mail an MTA passes on: it goes through the
/// MTA's queue asynchronously. A generous bound for a behaviour (the mail
/// arrives at all), not a speed requirement.
pub const DELIVERY: Duration = Duration::from_secs(60);

/// One message as the sink received it.
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    /// The MAIL FROM address without angle brackets; empty for a bounce.
    pub mail_from: String,
    /// The RCPT TO addresses without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message after dot-unstuffing, CRLF line ends as sent, without
    /// the terminating `.` line.
    pub data: Vec<u8>,
}

impl Received {
    /// The message as text (lossy), for assertions with `contains`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The `Authentication-Results` field of `authserv_id`, unfolded
    /// (continuation lines joined with a space); panics when there is none.
    pub fn auth_results(&self, authserv_id: &str) -> String {
        let text = self.text();
        let start = text
            .find(&format!("Authentication-Results: {authserv_id};"))
            .unwrap_or_else(|| panic!("no Authentication-Results of {authserv_id} in {text}"));
        let mut field = String::new();
        for (i, line) in text[start..].split("\r\n").enumerate() {
            if i > 0 && !line.starts_with([' ', '\t']) {
                break;
            }
            field.push_str(line.trim_start());
            field.push(' ');
        }
        field
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MAIL FROM:<{}> RCPT TO:{:?}\n{}",
            self.mail_from,
            self.rcpt_to,
            self.text()
        )
    }
}

/// Messages so far, with a condition variable to wake `wait_for`.
type Store = Arc<(Mutex<Vec<Received>>, Condvar)>;

/// The running sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts listening on 127.0.0.1 on a free port.
    pub fn start() -> SmtpSink {
        let store: Store = Arc::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let server_store = store.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sink runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("sink bind");
                ready
                    .send(listener.local_addr().expect("sink addr"))
                    .expect("sink ready");
                tokio::select! {
                    _ = stopped => {}
                    _ = accept_loop(listener, server_store) => {}
                }
            });
        });
        let addr = bound.recv().expect("sink thread started");
        SmtpSink {
            addr,
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.store.0.lock().expect("sink lock").clone()
    }

    /// Waits until at least `n` messages have arrived and returns them all.
    /// Panics after `timeout` listing what did arrive: a wait for a
    /// behaviour (mail passes through Postfix's queue asynchronously), not a
    /// speed assertion, so pick a generous timeout.
    ///
    /// This blocks the calling thread: from a current-thread tokio test
    /// whose runtime also serves the milter, use [`SmtpSink::wait_for_async`].
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        wait(&self.store, n, timeout)
    }

    /// [`SmtpSink::wait_for`] for async tests: waits on a blocking-pool
    /// thread, so the runtime (which may serve the milter Postfix calls)
    /// goes on meanwhile; woken by the arrival itself, no polling.
    pub async fn wait_for_async(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || wait(&store, n, timeout))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

impl SmtpSink {
    /// [`SmtpSink::wait_for_async`] `n` messages within [`DELIVERY`].
    pub async fn delivered(&self, n: usize) -> Vec<Received> {
        self.wait_for_async(n, DELIVERY).await
    }
}

/// See [`SmtpSink::wait_for`].
fn wait(store: &Store, n: usize, timeout: Duration) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    let (lock, arrived) = &**store;
    let mut messages = lock.lock().expect("sink lock");
    while messages.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "SMTP sink: expected {n} message(s) within {timeout:?}, got {}:\n{:#?}",
                messages.len(),
                *messages
            );
        }
        messages = arrived.wait_timeout(messages, left).expect("sink lock").0;
    }
    messages.clone()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, store: Store) {
    loop {
        // Accept errors (fd exhaustion and the like) are transient: go on.
        if let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                // A broken session only loses that session's message.
                let _ = session(stream, store).await;
            });
        }
    }
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// One SMTP session. Commands are answered strictly in order, which also
/// serves a pipelining client correctly.
async fn session(stream: TcpStream, store: Store) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut envelope = Envelope::default();
    write
        .write_all(b"220 sink.test ESMTP test sink\r\n")
        .await?;
    loop {
        let Some(line) = read_line(&mut reader).await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n",
            "HELO" => b"250 sink.test\r\n",
            "MAIL" => match address(line, "FROM:") {
                Some(from) => {
                    envelope = Envelope { mail_from: Some(from), rcpt_to: Vec::new() };
                    b"250 2.1.0 Ok\r\n"
                }
                None => b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
            },
            "RCPT" => match (&envelope.mail_from, address(line, "TO:")) {
                (None, _) => b"503 5.5.1 Error: need MAIL command\r\n",
                // A recipient that does not exist "out there", for tests
                // that need a bounce generated by the MTA in front.
                (Some(_), Some(to)) if to.starts_with(REFUSED_LOCAL_PART) => {
                    b"550 5.1.1 No such user here\r\n"
                }
                (Some(_), Some(to)) => {
                    envelope.rcpt_to.push(to);
                    b"250 2.1.5 Ok\r\n"
                }
                (Some(_), None) => b"501 5.5.4 Syntax: RCPT TO:<address>\r\n",
            },
            "DATA" if envelope.rcpt_to.is_empty() => b"503 5.5.1 Error: need RCPT command\r\n",
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let envelope = std::mem::take(&mut envelope);
                let (lock, arrived) = &*store;
                if let Ok(mut messages) = lock.lock() {
                    messages.push(Received {
                        mail_from: envelope.mail_from.unwrap_or_default(),
                        rcpt_to: envelope.rcpt_to,
                        data,
                    });
                    arrived.notify_all();
                }
                b"250 2.0.0 Ok: queued\r\n"
            }
            "RSET" => {
                envelope = Envelope::default();
                b"250 2.0.0 Ok\r\n"
            }
            "NOOP" => b"250 2.0.0 Ok\r\n",
            "VRFY" => b"252 2.0.0 Cannot VRFY\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `MAIL FROM:<a> PARAMS` / `RCPT TO:<a>`, without brackets
/// (`""` for the null sender); `None` when the command is malformed.
fn address(line: &str, keyword: &str) -> Option<String> {
    let rest = line.get(5..)?.trim_start();
    if !rest.get(..keyword.len())?.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let arg = rest[keyword.len()..].trim_start();
    let arg = arg.split(' ').next().unwrap_or("");
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(arg);
    Some(inner.to_string())
}

/// One line including its line end; `None` at end of input. Errors on a
/// line longer than [`MAX_LINE`].
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && n as u64 == MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(Some(line))
}

/// The message after DATA up to the lone `.` line, dot-unstuffed; `None`
/// if the client went away first.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(data));
        }
        // RFC 5321 4.5.2: a leading dot was doubled by the client.
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "message too large",
            ));
        }
        data.extend_from_slice(line);
    }
}
