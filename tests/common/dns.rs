//! A real DNS server on 127.0.0.1 (UDP and TCP on one port) serving a zone
//! built per test, so that the daemon's resolver meets real wire behaviour:
//! time-outs, SERVFAIL, truncation and TCP fallback, NXDOMAIN vs NODATA
//! (with an SOA, so negative answers are cacheable), CNAME chains.
//!
//! It runs on its own thread and Tokio runtime: it keeps answering while a
//! test blocks its own runtime, and dropping [`TestDns`] stops everything.
//! Note: hickory-resolver answers `localhost`, `*.invalid` and loopback
//! reverse names itself (RFC 6761); such queries never reach this server.

#![allow(dead_code)]

use hickory_resolver::proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        rdata::{
            tlsa::{CertUsage, Matching, Selector},
            A, AAAA, CNAME, MX, PTR, SOA, TLSA, TXT,
        },
        Name, RData, Record, RecordType,
    },
};
use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::oneshot,
};

/// TTL and SOA MINIMUM of negative answers (RFC 2308), in seconds.
const NEGATIVE_TTL: u32 = 60;
/// The EDNS UDP payload size this server advertises.
const SERVER_PAYLOAD: u16 = 1232;
/// CNAME hops followed inside the zone before giving up (loops).
const MAX_CHAIN: usize = 8;

/// The records and behaviours of the test zone. Names are absolute, given
/// without the trailing dot, and compared case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// (lower-case name without trailing dot, record).
    records: Vec<(String, Record)>,
    timeouts: HashSet<String>,
    /// (name, type): only queries of this type are dropped.
    type_timeouts: HashSet<(String, RecordType)>,
    servfails: HashSet<String>,
    delay: Duration,
    /// `None`: the default, 300 s.
    ttl: Option<u32>,
}

/// The form names are compared and logged in: lower case, no trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Labels hickory's parser refuses (`foo:bar`, spaces: the SPF suite has
/// them) are taken as raw octets, as the wire allows.
fn dns_name(name: &str) -> Name {
    Name::from_ascii(format!("{}.", key(name)))
        .or_else(|_| Name::from_labels(key(name).split('.').map(str::as_bytes)))
        .expect("valid test name")
}

/// The key of `name` as queries arrive: in hickory's presentation form
/// (raw labels come back escaped).
fn wire_key(name: &str) -> String {
    key(&dns_name(name).to_ascii())
}

impl Zone {
    fn add(mut self, name: &str, rdata: RData) -> Self {
        let record = Record::from_rdata(dns_name(name), self.ttl.unwrap_or(300), rdata);
        self.records.push((wire_key(name), record));
        self
    }

    /// One TXT record; a value over 255 octets is split into several
    /// character-strings, as publishers of long DKIM keys do. Calling this
    /// again for the same name adds another record to the RRset.
    pub fn txt(self, name: &str, value: &str) -> Self {
        let mut strings: Vec<&[u8]> = value.as_bytes().chunks(255).collect();
        if strings.is_empty() {
            strings.push(b""); // TXT RDATA holds at least one string
        }
        self.add(name, RData::TXT(TXT::from_bytes(strings)))
    }

    /// One TXT record made of exactly these character-strings (≤ 255 octets).
    pub fn txt_strings(self, name: &str, strings: &[&str]) -> Self {
        assert!(strings.iter().all(|s| s.len() <= 255), "string too long");
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.add(name, RData::TXT(TXT::new(strings)))
    }

    /// An MX record; exchange "." is a null MX (RFC 7505).
    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Self {
        let exchange = match exchange {
            "." => Name::root(),
            _ => dns_name(exchange),
        };
        self.add(name, RData::MX(MX::new(preference, exchange)))
    }

    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.add(name, RData::A(A(ip)))
    }

    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.add(name, RData::AAAA(AAAA(ip)))
    }

    /// A PTR record at the in-addr.arpa / ip6.arpa name of `ip`.
    pub fn ptr(self, ip: IpAddr, name: &str) -> Self {
        let reverse = Name::from(ip).to_ascii();
        self.add(&reverse, RData::PTR(PTR(dns_name(name))))
    }

    /// A TLSA record (RFC 6698) `usage selector matching data`, e.g. DANE-EE
    /// SPKI SHA-256 is `3 1 1`.
    pub fn tlsa(self, name: &str, usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Self {
        let tlsa = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data,
        );
        self.add(name, RData::TLSA(tlsa))
    }

    pub fn cname(self, name: &str, target: &str) -> Self {
        self.add(name, RData::CNAME(CNAME(dns_name(target))))
    }

    /// Queries for `name` (any type) are silently dropped: the client times
    /// out, as with an unreachable or overloaded authoritative server.
    pub fn timeout(mut self, name: &str) -> Self {
        self.timeouts.insert(key(name));
        self
    }

    /// Queries for `name` of type `rtype` only are silently dropped.
    pub fn timeout_type(mut self, name: &str, rtype: RecordType) -> Self {
        self.type_timeouts.insert((wire_key(name), rtype));
        self
    }

    /// Any record, for zones built from data (the SPF suite).
    pub fn record(self, name: &str, rdata: RData) -> Self {
        self.add(name, rdata)
    }

    /// Queries for `name` (any type) are answered SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfails.insert(key(name));
        self
    }

    /// Every answer is sent `d` after its query arrived. Queries are served
    /// concurrently, so lookups made in parallel finish after about `d`.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// TTL of the records added after this call (default 300 s).
    pub fn ttl(mut self, secs: u32) -> Self {
        self.ttl = Some(secs);
        self
    }

    /// Whether `name` owns records or is an ancestor of a name that does
    /// (an empty non-terminal: NODATA, not NXDOMAIN, per RFC 8020).
    fn exists(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        let mut names = self.records.iter().map(|(n, _)| n);
        name.is_empty() || names.any(|n| *n == name || n.ends_with(&suffix))
    }

    /// The response to `query`, or `None` to stay silent.
    fn answer(&self, query: &Message) -> Option<Message> {
        let q = query.queries.first()?;
        let (mut name, mut owner) = (key(&q.name().to_ascii()), q.name().clone());
        if self.timeouts.contains(&name)
            || self.type_timeouts.contains(&(name.clone(), q.query_type()))
        {
            return None;
        }
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.add_query(q.clone());
        if query.edns.is_some() {
            response.set_edns(Edns::new().set_max_payload(SERVER_PAYLOAD).clone());
        }
        if self.servfails.contains(&name) {
            response.metadata.response_code = ResponseCode::ServFail;
            return Some(response);
        }
        // Answers carry the owner name exactly as asked (0x20-safe). CNAMEs
        // are followed inside the zone.
        let wanted = q.query_type();
        for _ in 0..MAX_CHAIN {
            let here = || self.records.iter().filter(|(n, _)| *n == name);
            let found: Vec<Record> = here()
                .filter(|(_, r)| wanted == RecordType::ANY || r.record_type() == wanted)
                .map(|(_, r)| renamed(r, &owner))
                .collect();
            if !found.is_empty() {
                response.add_answers(found);
                return Some(response);
            }
            let Some((_, cname)) = here().find(|(_, r)| r.record_type() == RecordType::CNAME)
            else {
                break;
            };
            let RData::CNAME(CNAME(target)) = &cname.data else {
                break;
            };
            response.add_answer(renamed(cname, &owner));
            (name, owner) = (key(&target.to_ascii()), target.clone());
            if self.timeouts.contains(&name) || self.servfails.contains(&name) {
                // The resolver asks for the target itself and meets the
                // time-out or SERVFAIL there.
                return Some(response);
            }
        }
        // Negative answer; the rcode is that of the last name (RFC 6604).
        if !self.exists(&name) {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        let ns = dns_name("ns.test");
        // A zone with a short TTL has short negative answers too.
        let negative = self.ttl.map_or(NEGATIVE_TTL, |t| t.min(NEGATIVE_TTL));
        let soa = SOA::new(ns.clone(), ns, 1, 3600, 600, 86400, negative);
        let soa = Record::from_rdata(Name::root(), negative, RData::SOA(soa));
        response.add_authority(soa);
        Some(response)
    }
}

/// `record` under the owner name `name`.
fn renamed(record: &Record, name: &Name) -> Record {
    let mut record = record.clone();
    record.name = name.clone();
    record
}

/// The zone and what the server saw; shared by its tasks and [`TestDns`].
struct Server {
    /// Behind a lock: a test may publish records while serving.
    zone: Mutex<Zone>,
    /// (name, type, arrival) of every query.
    queries: Mutex<Vec<(String, String, Instant)>>,
    /// When each answer was sent.
    answers: Mutex<Vec<Instant>>,
}

/// Locks ignoring poisoning: a panicking test must not break the server.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    server: Arc<Server>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Binds UDP and TCP on one free port of 127.0.0.1 and starts serving
    /// `zone`. The sockets are bound before this returns, so queries sent
    /// right away are not lost.
    pub async fn start(zone: Zone) -> TestDns {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("addr");
        let server = Arc::new(Server {
            zone: Mutex::new(zone),
            queries: Mutex::default(),
            answers: Mutex::default(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = server.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                tokio::select! {
                    _ = serve(udp, tcp, shared) => {}
                    _ = stopped => {}
                }
            });
            // Dropping `rt` here cancels every query and connection task.
        });
        let (stop, thread) = (Some(stop), Some(thread));
        TestDns {
            addr,
            server,
            stop,
            thread,
        }
    }

    /// Adds a TXT record while serving, as a domain's admin publishes one.
    /// Caches that hold the negative answer keep it for the zone's TTL.
    pub fn publish_txt(&self, name: &str, value: &str) {
        let mut zone = lock(&self.server.zone);
        *zone = std::mem::take(&mut *zone).txt(name, value);
    }

    /// Where the server listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries (any type, UDP or TCP) arrived for `name`. Every
    /// message counts, UDP retransmissions and the TCP retry after a
    /// truncated answer included.
    pub fn queries(&self, name: &str) -> usize {
        let name = key(name);
        let log = lock(&self.server.queries);
        log.iter().filter(|(n, _, _)| *n == name).count()
    }

    /// (name, type, arrival) of every query in arrival order; names are
    /// lower case without trailing dot, types as in "TXT", "MX".
    pub fn query_log(&self) -> Vec<(String, String, Instant)> {
        lock(&self.server.queries).clone()
    }

    /// When each answer was sent, in order (dropped queries send none).
    pub fn answer_log(&self) -> Vec<Instant> {
        lock(&self.server.answers).clone()
    }

    /// The `[dns]` section of the daemon's config pointing at this server.
    pub fn resolver_config_toml(&self) -> String {
        let addr = self.addr;
        format!("[dns]\nnameservers = [\"{addr}\"]\ntimeout_ms = 500\n")
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Joining makes the port refuse traffic once the drop returns.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// UDP and TCP sockets on the same 127.0.0.1 port: the OS picks a free UDP
/// port, which may be taken for TCP, so try again a few times.
fn bind_pair() -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).expect("nonblocking");
            tcp.set_nonblocking(true).expect("nonblocking");
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// Accepts datagrams and connections until cancelled; each query runs in
/// its own task so that a delayed or dropped one holds up no other.
async fn serve(udp: std::net::UdpSocket, tcp: std::net::TcpListener, server: Arc<Server>) {
    let (Ok(udp), Ok(tcp)) = (UdpSocket::from_std(udp), TcpListener::from_std(tcp)) else {
        return;
    };
    let udp = Arc::new(udp);
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            received = udp.recv_from(&mut buf) => {
                let Ok((n, peer)) = received else { continue };
                let (packet, udp, server) = (buf[..n].to_vec(), udp.clone(), server.clone());
                tokio::spawn(async move {
                    if let Some(reply) = server.respond(&packet, true).await {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                });
            }
            accepted = tcp.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve_tcp(stream, server.clone()));
                }
            }
        }
    }
}

/// One TCP connection: 2-byte length-prefixed messages (RFC 1035 4.2.2).
/// Queries may be pipelined; answers go out as they are ready.
async fn serve_tcp(stream: TcpStream, server: Arc<Server>) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let mut len = [0u8; 2];
    while reader.read_exact(&mut len).await.is_ok() {
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if reader.read_exact(&mut packet).await.is_err() {
            return;
        }
        let (server, writer) = (server.clone(), writer.clone());
        tokio::spawn(async move {
            let Some(reply) = server.respond(&packet, false).await else {
                return;
            };
            // `respond` keeps TCP answers within 65535 octets.
            let Ok(len) = u16::try_from(reply.len()) else {
                return;
            };
            let framed = [&len.to_be_bytes()[..], &reply].concat();
            let _ = writer.lock().await.write_all(&framed).await;
        });
    }
}

impl Server {
    /// Decodes and logs a query and encodes its answer; anything but a
    /// decodable standard query is ignored. An answer larger than the
    /// client takes over UDP (512 octets, or its EDNS payload size) is sent
    /// truncated with TC set, so that the client retries over TCP.
    async fn respond(&self, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        let meta = &query.metadata;
        if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
            return None;
        }
        let q = query.queries.first()?;
        let name = key(&q.name().to_ascii());
        lock(&self.queries).push((name, q.query_type().to_string(), Instant::now()));
        let (response, delay) = {
            let zone = lock(&self.zone);
            (zone.answer(&query)?, zone.delay)
        };
        tokio::time::sleep(delay).await;
        let limit = if udp { query.max_payload() } else { u16::MAX };
        let mut bytes = response.to_vec().ok()?;
        if bytes.len() > usize::from(limit) {
            bytes = response.truncate().to_vec().ok()?;
        }
        lock(&self.answers).push(Instant::now());
        Some(bytes)
    }
}
