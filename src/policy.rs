//! The Postfix policy companion (optional, off without `[policy] listen`):
//! a `check_policy_service` endpoint in the same daemon. Postfix hands a
//! milter `{cert_subject}`/`{cert_issuer}` only for a client certificate it
//! verified, so on the milter side "no certificate" and "an untrusted
//! certificate" look alike; its policy delegation protocol
//! (SMTPD_POLICY_README) sends `ccert_fingerprint` and
//! `ccert_pubkey_fingerprint` for any certificate the client presented.
//! The companion records, per client session (address and port), whether
//! one was presented — the fingerprint only — and always answers
//! `action=DUNNO`: it never decides anything. The TLS check reads the
//! record as its `mta-presented` rung ([`crate::checks::tls`]).
//!
//! Bounds (docs/decisions.md, SECURITY.md): [`MAX_CONNECTIONS`] at once
//! (more wait in the listen backlog), lines of at most [`MAX_LINE`]
//! octets, at most [`MAX_ATTRIBUTES`] per request, a request complete
//! within [`REQUEST_TIMEOUT`] and a connection idle at most
//! [`IDLE_TIMEOUT`]; at most [`MAX_ENTRIES`] sessions remembered, each for
//! [`ENTRY_LIFETIME`].

use crate::{
    config::{Config, Listen},
    socket,
};
use moka::sync::Cache;
use std::{net::IpAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    sync::Semaphore,
};
use tracing::{debug, error, warn};

/// Policy connections served at once (Postfix opens one per smtpd
/// process; its `default_process_limit` is 100).
pub const MAX_CONNECTIONS: usize = 256;
/// One `name=value` line (Postfix's own `line_length_limit` is 2048).
pub const MAX_LINE: usize = 2048;
/// Attributes in one request (Postfix 3.7 sends about 40).
pub(crate) const MAX_ATTRIBUTES: usize = 100;
/// From the first line of a request to its blank line.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Between requests (Postfix closes idle ones after 300 s itself).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(330);
/// Sessions remembered, and for how long.
pub(crate) const MAX_ENTRIES: u64 = 10_000;
pub(crate) const ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

/// What Postfix said about one client session's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCert {
    /// The certificate's fingerprint, when the client presented one
    /// (verified or not).
    pub fingerprint: Option<String>,
    /// Postfix verified it (it sends `ccert_subject` only then).
    pub verified: bool,
}

/// The sessions recorded, by client address and port.
pub struct Store(Cache<(IpAddr, u16), SessionCert>);

impl Default for Store {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ENTRY_LIFETIME)
                .build(),
        )
    }
}

impl Store {
    pub fn record(&self, ip: IpAddr, port: u16, cert: SessionCert) {
        self.0.insert((ip, port), cert);
    }

    pub fn get(&self, ip: IpAddr, port: u16) -> Option<SessionCert> {
        self.0.get(&(ip, port))
    }
}

/// Binds `[policy] listen` (when set) and serves it until the task is
/// aborted. Errors binding are returned: the daemon does not start half.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
) -> Result<Option<tokio::task::JoinHandle<()>>, socket::SocketError> {
    let Some(listen) = &config.policy.listen else {
        return Ok(None);
    };
    let listener = socket::bind_to(listen, config).await?;
    tracing::info!("policy companion listening on {listen}");
    Ok(Some(tokio::spawn(serve(listener, store, listen.clone()))))
}

async fn serve(listener: socket::Listener, store: Arc<Store>, listen: Listen) {
    use indymilter::Listener as _;
    let mut listener = socket::Resilient::new(listener);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match std::future::poll_fn(|cx| listener.poll_accept(cx)).await {
            Ok(io) => {
                let store = store.clone();
                tokio::spawn(async move {
                    connection(io, &store).await;
                    drop(slot);
                });
            }
            Err(e) => {
                error!("policy companion on {listen}: accept failed: {e}; stopped");
                return;
            }
        }
    }
}

/// One Postfix connection: requests until it closes, is idle too long, or
/// breaks a bound.
async fn connection(io: impl AsyncRead + AsyncWrite + Unpin, store: &Store) {
    let (read, mut write) = tokio::io::split(io);
    let mut reader = BufReader::new(read);
    loop {
        let request = match read_request(&mut reader).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(why) => {
                warn!("policy companion: {why}; connection closed");
                return;
            }
        };
        remember(store, &request);
        if write.write_all(b"action=DUNNO\n\n").await.is_err() || write.flush().await.is_err() {
            return;
        }
    }
}

/// Records the session of one request, if it names one.
fn remember(store: &Store, request: &[(String, String)]) {
    let get = |name: &str| {
        request
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(ip), Some(port)) = (
        get("client_address").and_then(|a| a.parse::<IpAddr>().ok()),
        get("client_port").and_then(|p| p.parse::<u16>().ok()),
    ) else {
        debug!("policy companion: a request without client_address or client_port");
        return;
    };
    let fingerprint = get("ccert_pubkey_fingerprint")
        .or_else(|| get("ccert_fingerprint"))
        .map(str::to_string);
    let verified = get("ccert_subject").is_some();
    store.record(
        ip,
        port,
        SessionCert {
            fingerprint,
            verified,
        },
    );
}

/// One request: `name=value` lines up to a blank line. `Ok(None)` when
/// the connection ends (or idles out) between requests.
pub(crate) async fn read_request(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> Result<Option<Vec<(String, String)>>, String> {
    read_request_within(reader, IDLE_TIMEOUT, REQUEST_TIMEOUT).await
}

/// [`read_request`] with the idle and request limits given.
async fn read_request_within(
    reader: &mut (impl AsyncBufRead + Unpin),
    idle: Duration,
    limit: Duration,
) -> Result<Option<Vec<(String, String)>>, String> {
    let first = match tokio::time::timeout(idle, read_line(reader)).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Err(_) => return Ok(None),
        Ok(Err(why)) => return Err(why),
    };
    let rest = async {
        let mut attributes = Vec::new();
        let mut line = first;
        loop {
            if line.is_empty() {
                return Ok(Some(attributes));
            }
            if attributes.len() >= MAX_ATTRIBUTES {
                return Err(format!(
                    "more than {MAX_ATTRIBUTES} attributes in a request"
                ));
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not a name=value line: {line:?}"))?;
            attributes.push((name.to_string(), value.to_string()));
            line = read_line(reader)
                .await?
                .ok_or("the connection ended inside a request")?;
        }
    };
    tokio::time::timeout(limit, rest)
        .await
        .unwrap_or_else(|_| Err(format!("a request took longer than {limit:?}")))
}

/// One line without its LF; `None` at the end of the stream.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> Result<Option<String>, String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let n = reader
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() > MAX_LINE {
            format!("a line longer than {MAX_LINE} octets")
        } else {
            "the connection ended inside a line".into()
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn requests_are_read_within_their_bounds() {
        let mut ok =
            &b"request=smtpd_access_policy\nclient_address=192.0.2.1\nclient_port=4711\n\n"[..];
        let r = read_request(&mut ok).await.unwrap().unwrap();
        assert_eq!(r[2], ("client_port".into(), "4711".into()));
        assert_eq!(read_request(&mut ok).await.unwrap(), None);
        let long = format!("a={}\n\n", "x".repeat(MAX_LINE));
        assert!(read_request(&mut long.as_bytes())
            .await
            .unwrap_err()
            .contains("longer"));
        let many = "a=b\n".repeat(MAX_ATTRIBUTES + 1) + "\n";
        assert!(read_request(&mut many.as_bytes())
            .await
            .unwrap_err()
            .contains("attributes"));
        assert!(read_request(&mut &b"garbage\n\n"[..]).await.is_err());
    }

    /// A request that stops half-way ends at its deadline; an idle
    /// connection ends quietly (the limits shortened for the test).
    #[tokio::test]
    async fn slow_requests_and_idle_connections_end() {
        let short = Duration::from_millis(50);
        let (mut postfix, ours) = tokio::io::duplex(4096);
        let mut reader = BufReader::new(ours);
        postfix
            .write_all(b"request=smtpd_access_policy\n")
            .await
            .unwrap();
        let e = read_request_within(&mut reader, short, short)
            .await
            .unwrap_err();
        assert!(e.contains("took longer"), "{e}");
        let (_postfix, ours) = tokio::io::duplex(4096);
        let mut reader = BufReader::new(ours);
        let idle = read_request_within(&mut reader, short, short).await;
        assert_eq!(idle.unwrap(), None);
    }

    #[test]
    fn sessions_remembered_are_bounded() {
        let store = Store::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let cert = SessionCert {
            fingerprint: None,
            verified: false,
        };
        for port in 0..=MAX_ENTRIES as u16 + 100 {
            store.record(ip, port, cert.clone());
        }
        store.0.run_pending_tasks();
        assert!(
            store.0.entry_count() <= MAX_ENTRIES,
            "{}",
            store.0.entry_count()
        );
        assert_eq!(store.0.policy().time_to_live(), Some(ENTRY_LIFETIME));
    }

    /// One connection more than [`MAX_CONNECTIONS`] waits until one ends.
    #[tokio::test]
    async fn connections_beyond_the_limit_wait() {
        let config = Config {
            policy: crate::config::PolicyConfig {
                listen: Some(Listen::Inet("127.0.0.1:0".into())),
            },
            ..Config::default()
        };
        let listener = socket::bind_to(&Listen::Inet("127.0.0.1:0".into()), &config)
            .await
            .unwrap();
        let addr = match &listener {
            indymilter::EitherListener::Tcp(l) => l.0.local_addr().unwrap(),
            _ => unreachable!(),
        };
        let server = tokio::spawn(serve(
            listener,
            Arc::default(),
            Listen::Inet(addr.to_string()),
        ));
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(ask(addr).await);
        }
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        extra
            .write_all(b"client_address=192.0.2.9\n\n")
            .await
            .unwrap();
        let mut reply = [0u8; 14];
        let waited =
            tokio::time::timeout(Duration::from_millis(300), extra.read_exact(&mut reply)).await;
        assert!(waited.is_err(), "served beyond the limit");
        drop(held.pop());
        tokio::time::timeout(Duration::from_secs(20), extra.read_exact(&mut reply))
            .await
            .expect("served once a connection ended")
            .unwrap();
        assert_eq!(&reply, b"action=DUNNO\n\n");
        server.abort();
    }

    /// A connection that got its answer (and stays open, as Postfix's do).
    async fn ask(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"client_address=192.0.2.9\n\n").await.unwrap();
        let mut reply = [0u8; 14];
        c.read_exact(&mut reply).await.unwrap();
        c
    }

    #[test]
    fn a_presented_certificate_is_recorded_by_fingerprint() {
        let store = Store::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let request = |fp: &str, subject: &str| {
            [
                ("client_address", "192.0.2.1"),
                ("client_port", "4711"),
                ("ccert_subject", subject),
                ("ccert_fingerprint", fp),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        };
        remember(&store, &request("AB:CD", ""));
        assert_eq!(
            store.get(ip, 4711),
            Some(SessionCert {
                fingerprint: Some("AB:CD".into()),
                verified: false
            })
        );
        remember(&store, &request("", ""));
        assert_eq!(store.get(ip, 4711).unwrap().fingerprint, None);
        assert_eq!(store.get(ip, 4712), None);
    }
}
