//! The blocking SMTP client of the probe: banner, `EHLO`, `STARTTLS`, the
//! TLS handshake (asking for a stapled OCSP response) and `QUIT`, against
//! the client's IP only. It collects what the peer presented; judging it is
//! [`super::trust`]'s job. How it ended is named ([`ProbeKind`]), so that
//! what cannot change by itself (nothing listens, no STARTTLS) is told
//! apart from what can (a time-out, a `4xx`).

use super::outcome::{ProbeKind, Problem};
use openssl::{
    ssl::{HandshakeError, SslConnector, StatusType},
    x509::X509,
};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// SMTP reply limits: a hostile peer cannot make us read forever.
const MAX_LINE: u64 = 1024;
const MAX_LINES: usize = 64;

/// What the conversation with the client's SMTP port produced: the
/// certificate chain it presented, or why it ended before one.
pub(crate) enum Conversation {
    Presented {
        chain: Vec<X509>,
        ocsp: Option<Vec<u8>>,
        version: String,
    },
    Ended(Problem),
}

fn ended(kind: ProbeKind, text: String) -> Conversation {
    Conversation::Ended(Problem::new(kind, text))
}

/// The kind of an I/O failure: a refused or unreachable port is nothing
/// listening (it will not change by itself), a time-out is a time-out,
/// anything else may pass.
pub(super) fn io_kind(e: &std::io::Error) -> ProbeKind {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | HostUnreachable | NetworkUnreachable => ProbeKind::NoListener,
        TimedOut | WouldBlock => ProbeKind::Timeout,
        _ => ProbeKind::Temporary,
    }
}

/// Banner, `EHLO`, `STARTTLS`, handshake, `QUIT` — blocking, the whole
/// conversation (TLS handshake included) bounded by `limit` from now: a
/// peer that sends a byte now and then cannot keep it alive, and the
/// thread is free again by then whatever the peer does.
pub(crate) fn converse(
    connector: &SslConnector,
    addr: SocketAddr,
    ehlo: &str,
    sni: Option<&str>,
    limit: Duration,
) -> Conversation {
    let deadline = Instant::now() + limit;
    let at = format!("{} port {}", addr.ip(), addr.port());
    let late = || {
        ended(
            ProbeKind::Timeout,
            format!(
                "probe of {at} did not finish within {} ms",
                limit.as_millis()
            ),
        )
    };
    let failed = |kind: ProbeKind, why: String| {
        if Instant::now() >= deadline {
            late()
        } else {
            ended(kind, why)
        }
    };
    let Some(left) = time_left(deadline) else {
        return late();
    };
    let stream = match TcpStream::connect_timeout(&addr, left) {
        Ok(s) => s,
        Err(e) => {
            let why = match io_kind(&e) {
                ProbeKind::NoListener => format!("nothing listens on {at}: {e}"),
                _ => format!("cannot connect to {at}: {e}"),
            };
            return failed(io_kind(&e), why);
        }
    };
    let mut reader = BufReader::new(Bounded { stream, deadline });
    let io = |what: &str, e: std::io::Error| failed(io_kind(&e), format!("{at}: {what}: {e}"));

    let (code, _) = match read_reply(&mut reader) {
        Ok(r) => r,
        Err(e) => return io("reading the banner", e),
    };
    if code != 220 {
        return refused(&at, "banner", code);
    }
    if let Err(e) = send(reader.get_mut(), &format!("EHLO {ehlo}\r\n")) {
        return io("sending EHLO", e);
    }
    let (code, lines) = match read_reply(&mut reader) {
        Ok(r) => r,
        Err(e) => return io("reading the EHLO reply", e),
    };
    if code != 250 {
        return refused(&at, "EHLO", code);
    }
    let offers_starttls = lines.iter().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    });
    if !offers_starttls {
        let _ = send(reader.get_mut(), "QUIT\r\n");
        return ended(
            ProbeKind::NoStartTls,
            format!("{at} does not offer STARTTLS"),
        );
    }
    if let Err(e) = send(reader.get_mut(), "STARTTLS\r\n") {
        return io("sending STARTTLS", e);
    }
    let code = match read_reply(&mut reader) {
        Ok((code, _)) => code,
        Err(e) => return io("reading the STARTTLS reply", e),
    };
    if code != 220 {
        return if code / 100 == 5 {
            ended(
                ProbeKind::NoStartTls,
                format!("{at} refused STARTTLS with {code}"),
            )
        } else {
            ended(
                ProbeKind::Temporary,
                format!("{at} answered STARTTLS with {code}"),
            )
        };
    }
    // Anything sent before the handshake is an injection attempt.
    if !reader.buffer().is_empty() {
        return ended(
            ProbeKind::Temporary,
            format!("{at} sent data before the TLS handshake"),
        );
    }
    let stream = reader.into_inner();
    let tls = connector.configure().and_then(|mut c| {
        c.set_verify_hostname(false);
        c.set_use_server_name_indication(sni.is_some());
        c.set_status_type(StatusType::OCSP)?;
        c.into_ssl(sni.unwrap_or("probe.invalid"))
    });
    let ssl = match tls {
        Ok(ssl) => ssl,
        Err(e) => return ended(ProbeKind::Temporary, format!("OpenSSL: {e}")),
    };
    let mut tls = match ssl.connect(stream) {
        Ok(s) => s,
        Err(e) => {
            // A protocol failure (no common version or cipher) stays; a
            // reset or a time-out on the way may not.
            let kind = match &e {
                HandshakeError::Failure(mid) => mid
                    .error()
                    .io_error()
                    .map_or(ProbeKind::HandshakeFailed, io_kind),
                _ => ProbeKind::Temporary,
            };
            return failed(kind, format!("TLS handshake with {at} failed: {e}"));
        }
    };
    let chain: Vec<X509> = tls
        .ssl()
        .peer_cert_chain()
        .map(|s| s.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    let ocsp = tls.ssl().ocsp_status().map(<[u8]>::to_vec);
    let version = tls.ssl().version_str().to_string();
    // Say goodbye properly; the result is already known.
    if send(&mut tls, "QUIT\r\n").is_ok() {
        let mut tls_reader = BufReader::new(&mut tls);
        let _ = read_reply(&mut tls_reader);
    }
    let _ = tls.shutdown();
    Conversation::Presented {
        chain,
        ocsp,
        version,
    }
}

/// The time until `deadline`, `None` when it has passed.
pub(super) fn time_left(deadline: Instant) -> Option<Duration> {
    Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
}

/// A socket whose every read and write (OpenSSL's during the handshake
/// too) may only take the time left until one deadline; once it has
/// passed, they fail with `TimedOut`. Socket time-outs alone apply per
/// read, so a peer dripping one byte a second would never trip them.
#[derive(Debug)]
pub(super) struct Bounded {
    pub(super) stream: TcpStream,
    pub(super) deadline: Instant,
}

impl Bounded {
    fn arm(
        &self,
        set: fn(&TcpStream, Option<Duration>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let left = time_left(self.deadline).ok_or_else(timed_out)?;
        set(&self.stream, Some(left))
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the probe's time ran out")
}

/// A socket time-out shows as `WouldBlock`, which OpenSSL would take for
/// "try again": it is the end.
fn final_error(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        timed_out()
    } else {
        e
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm(TcpStream::set_read_timeout)?;
        self.stream.read(buf).map_err(final_error)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm(TcpStream::set_write_timeout)?;
        self.stream.write(buf).map_err(final_error)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A `5xx` banner or `EHLO` reply: the server will not be probed, which is
/// as good as nothing listening; a `4xx` is temporary.
fn refused(at: &str, stage: &str, code: u16) -> Conversation {
    let why = format!("{at} answered our probe's {stage} with {code}");
    if code / 100 == 5 {
        ended(ProbeKind::NoListener, why)
    } else {
        ended(ProbeKind::Temporary, why)
    }
}

fn send(w: &mut impl Write, line: &str) -> std::io::Result<()> {
    w.write_all(line.as_bytes())?;
    w.flush()
}

/// One SMTP reply: its code and lines (text after the code).
fn read_reply(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<String>)> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(bad("connection closed"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let code = text
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| bad("not an SMTP reply"))?;
        let more = text.as_bytes().get(3) == Some(&b'-');
        lines.push(text.get(4..).unwrap_or("").to_string());
        if !more {
            return Ok((code, lines));
        }
        if lines.len() >= MAX_LINES {
            return Err(bad("reply too long"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multiline_replies() {
        let mut r = BufReader::new(&b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"[..]);
        let (code, lines) = read_reply(&mut r).unwrap();
        assert_eq!(code, 250);
        assert_eq!(lines, ["mx.test", "PIPELINING", "STARTTLS"]);
        let mut r = BufReader::new(&b"hello\r\n"[..]);
        assert!(read_reply(&mut r).is_err());
    }

    /// A peer dripping its banner ends the conversation at the deadline,
    /// not after the banner (socket time-outs alone never would).
    #[test]
    fn a_dripping_peer_cannot_outlast_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.43:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for b in b"220-drip\r\n".iter().cycle() {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let connector = SslConnector::builder(openssl::ssl::SslMethod::tls_client())
                .unwrap()
                .build();
            let limit = Duration::from_millis(300);
            let _ = done.send(converse(&connector, addr, "me.test", None, limit));
        });
        // A generous guard: without the deadline this would run for minutes.
        let outcome = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the conversation ended");
        match outcome {
            Conversation::Ended(why) => assert_eq!(
                why,
                Problem::new(
                    ProbeKind::Timeout,
                    format!(
                        "probe of {} port {} did not finish within 300 ms",
                        addr.ip(),
                        addr.port()
                    )
                )
            ),
            _ => panic!("expected a failure"),
        }
    }
}
