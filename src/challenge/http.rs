//! Serves the challenge page on `[challenge] listen`: plain HTTP/1.1, one
//! request per connection, behind the operator's HTTPS proxy. `GET` shows
//! the form, `POST` takes the answer. The URL's last path segment is the
//! signed challenge, whatever path the proxy forwards it under.
//!
//! Bounds (SECURITY.md): the request head at most 8 KiB, a body at most
//! 2 KiB, 10 s for the whole request; [`RATE_WINDOW`]-long windows of
//! `rate_per_client` requests per client address and `rate_per_sender`
//! answers per sender address, each counted in a cache of at most
//! [`RATE_ENTRIES`] keys (a full cache forgets its oldest entries, so a
//! flood of fresh addresses costs bounded memory).

use super::{is_answer, page, page::View, Challenge, MAX_ATTEMPTS};
use crate::{
    state::{Allow, Store},
    SharedHandle,
};
use moka::sync::Cache;
use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tracing::{info, warn};

pub(crate) const MAX_HEAD: usize = 8 * 1024;
pub(crate) const MAX_BODY: usize = 2 * 1024;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(3600);
pub(crate) const RATE_ENTRIES: u64 = 100_000;

/// Fixed-window counters per key.
pub(crate) struct RateLimit(Cache<String, Arc<AtomicU32>>);

impl Default for RateLimit {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(RATE_ENTRIES)
                .time_to_live(RATE_WINDOW)
                .build(),
        )
    }
}

impl RateLimit {
    /// Counts one for `key`; `false` once more than `limit` in the window.
    pub fn allow(&self, key: &str, limit: u32) -> bool {
        let n = self.0.get_with(key.to_string(), Arc::default);
        n.fetch_add(1, Ordering::Relaxed) < limit
    }
}

struct Limits {
    clients: RateLimit,
    senders: RateLimit,
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, shared: SharedHandle) {
    let limits = Arc::new(Limits {
        clients: RateLimit::default(),
        senders: RateLimit::default(),
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("challenge page: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shared, limits) = (shared.clone(), limits.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection(stream, peer, shared, limits))
                .await;
        });
    }
}

/// A request as far as we need it.
struct Request {
    method: String,
    path: String,
    forwarded_for: Option<String>,
    body: Vec<u8>,
}

/// The request line and the headers we read, from the bytes before the
/// blank line.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub content_length: usize,
    pub forwarded_for: Option<String>,
}

/// Parses a request head (untrusted: fuzzed, fuzz/fuzz_targets/challenge.rs).
/// `None` for anything malformed or a body over [`MAX_BODY`].
pub fn parse_head(head: &[u8]) -> Option<Head> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let (mut content_length, mut forwarded_for) = (0usize, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().ok()?;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = Some(value.trim().to_string());
        }
    }
    (content_length <= MAX_BODY).then_some(Head {
        method,
        path,
        content_length,
        forwarded_for,
    })
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    };
    let head = parse_head(buf.get(..head_end)?)?;
    let mut body = buf.split_off(head_end + 4);
    while body.len() < head.content_length {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(head.content_length);
    Some(Request {
        method: head.method,
        path: head.path,
        forwarded_for: head.forwarded_for,
        body,
    })
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: SharedHandle,
    limits: Arc<Limits>,
) {
    let Some(request) = read_request(&mut stream).await else {
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    };
    let current = shared.current();
    let config = &current.config.challenge;
    // Behind the proxy, the client is the address the proxy appended.
    let trusted = config.trusted_proxies.iter().any(|n| n.contains(peer.ip()));
    let client: IpAddr = request
        .forwarded_for
        .as_deref()
        .filter(|_| trusted)
        .and_then(|f| f.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(peer.ip());
    let view_html = if !limits
        .clients
        .allow(&client.to_string(), config.rate_per_client)
    {
        (page::SLOW_DOWN.status(), page::SLOW_DOWN.render())
    } else {
        let controls = current.controls.as_deref();
        match controls.and_then(|c| Some((&*c.store, c.challenges.as_ref()?))) {
            Some((store, challenges)) => {
                let rate = config.rate_per_sender;
                handle(store, challenges, &request, client, &limits, rate).await
            }
            None => (page::NOT_FOUND.status(), page::NOT_FOUND.render()),
        }
    };
    let (status, html) = view_html;
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         form-action 'self'; frame-ancestors 'none'\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn done(view: View<'_>) -> (&'static str, String) {
    (view.status(), view.render())
}

/// One request for a challenge page.
async fn handle(
    store: &dyn Store,
    challenges: &super::Challenges,
    request: &Request,
    client: IpAddr,
    limits: &Limits,
    rate_per_sender: u32,
) -> (&'static str, String) {
    let signed = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let Some(c) = challenges.verify(signed) else {
        return done(page::NOT_FOUND);
    };
    let now = now();
    if c.expires <= now {
        return done(page::EXPIRED);
    }
    let nonce = c.nonce_hex();
    let state = match store.challenge(&nonce, now).await {
        Ok(state) => state,
        Err(e) => {
            warn!("challenge page: cannot read the state of a challenge: {e}");
            return done(page::UNAVAILABLE);
        }
    };
    if state.solved {
        return done(page::USED);
    }
    if state.attempts >= MAX_ATTEMPTS {
        return done(page::BURNT);
    }
    let question = challenges.question(&c);
    let form = |tries_left, error| {
        done(View::Form {
            sender: &c.sender,
            recipient: &c.recipient,
            question: &question.text,
            tries_left,
            error,
        })
    };
    let left = MAX_ATTEMPTS - state.attempts;
    if request.method != "POST" {
        return form(left, None);
    }
    if !limits.senders.allow(&c.sender, rate_per_sender) {
        return done(page::SLOW_DOWN);
    }
    let fields = form_fields(&request.body);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("consent") != Some("yes") {
        return form(
            left,
            Some("Please tick the box to confirm that you wrote this message."),
        );
    }
    if !is_answer(&question, field("answer").unwrap_or_default()) {
        return match store.wrong_answer(&nonce, c.expires, now).await {
            Ok(n) if n >= MAX_ATTEMPTS => done(page::BURNT),
            Ok(n) => form(
                MAX_ATTEMPTS - n,
                Some("That is not the answer. Please try again."),
            ),
            Err(e) => {
                warn!("challenge page: cannot count a wrong answer: {e}");
                done(page::UNAVAILABLE)
            }
        };
    }
    solve(store, &c, challenges.allow_secs, client, now).await
}

async fn solve(
    store: &dyn Store,
    c: &Challenge,
    allow_secs: u64,
    client: IpAddr,
    now: u64,
) -> (&'static str, String) {
    let until = now + allow_secs;
    let allow = Allow {
        sender: &c.sender,
        recipient: &c.recipient,
        until,
    };
    match store.solve(&c.nonce_hex(), c.expires, &allow, now).await {
        Ok(true) => {
            super::count("passed");
            info!(
                sender = c.sender.as_str(),
                recipient = c.recipient.as_str(),
                client = %client,
                until = %crate::tokens::datetime(until),
                "challenge solved"
            );
            done(View::Solved {
                sender: &c.sender,
                recipient: &c.recipient,
                until,
            })
        }
        Ok(false) => done(page::USED),
        Err(e) => {
            warn!("challenge page: cannot record a solved challenge: {e}");
            done(page::UNAVAILABLE)
        }
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded (untrusted: fuzzed).
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let fields = form_fields(b"answer=eleven+&consent=yes&x=%3Cb%3E%zz");
        assert_eq!(fields[0], ("answer".into(), "eleven ".into()));
        assert_eq!(fields[1], ("consent".into(), "yes".into()));
        assert_eq!(fields[2], ("x".into(), "<b>%zz".into()));
    }

    #[test]
    fn rate_limits_count_per_key() {
        let r = RateLimit::default();
        assert!(r.allow("a", 2) && r.allow("a", 2));
        assert!(!r.allow("a", 2));
        assert!(r.allow("b", 2));
    }
}
