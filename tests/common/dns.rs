//! A real DNS server on 127.0.0.1 (UDP and TCP on one port) serving a test
//! zone built per test. The daemon's resolver talks to it exactly as it
//! would to a production server: time-outs, truncation and TCP fallback,
//! NXDOMAIN vs NODATA with an SOA for negative caching.

use hickory_resolver::proto::{
    op::{Edns, Message, MessageType, ResponseCode},
    rr::{
        rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT},
        Name, RData, Record, RecordType,
    },
};
use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    task::JoinHandle,
};

/// The records and behaviours of the test zone.
#[derive(Clone)]
pub struct Zone {
    records: Vec<(String, Record)>,
    timeouts: HashSet<String>,
    servfails: HashSet<String>,
    delay: Option<Duration>,
    ttl: u32,
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            timeouts: HashSet::new(),
            servfails: HashSet::new(),
            delay: None,
            ttl: 300,
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn dns_name(name: &str) -> Name {
    Name::from_ascii(format!("{}.", key(name))).expect("valid test name")
}

impl Zone {
    fn add(mut self, name: &str, rdata: RData) -> Self {
        let record = Record::from_rdata(dns_name(name), self.ttl, rdata);
        self.records.push((key(name), record));
        self
    }

    /// One TXT record; values over 255 octets are split into strings.
    pub fn txt(self, name: &str, value: &str) -> Self {
        let chunks: Vec<&[u8]> = value.as_bytes().chunks(255).collect();
        self.add(name, RData::TXT(TXT::from_bytes(chunks)))
    }

    /// One TXT record made of exactly these character-strings.
    pub fn txt_strings(self, name: &str, strings: &[&str]) -> Self {
        self.add(
            name,
            RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect())),
        )
    }

    /// An MX record; exchange "." is a null MX (RFC 7505).
    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Self {
        let exchange = if exchange == "." {
            Name::root()
        } else {
            dns_name(exchange)
        };
        self.add(name, RData::MX(MX::new(preference, exchange)))
    }

    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.add(name, RData::A(A(ip)))
    }

    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.add(name, RData::AAAA(AAAA(ip)))
    }

    pub fn ptr(self, ip: IpAddr, name: &str) -> Self {
        let reverse = Name::from(ip).to_ascii();
        self.add(&reverse, RData::PTR(PTR(dns_name(name))))
    }

    pub fn cname(self, name: &str, target: &str) -> Self {
        self.add(name, RData::CNAME(CNAME(dns_name(target))))
    }

    /// Queries for `name` are dropped: the client times out.
    pub fn timeout(mut self, name: &str) -> Self {
        self.timeouts.insert(key(name));
        self
    }

    /// Queries for `name` get SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfails.insert(key(name));
        self
    }

    /// Every answer is delayed (answers are still served concurrently).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// TTL of the records added after this call.
    pub fn ttl(mut self, secs: u32) -> Self {
        self.ttl = secs;
        self
    }

    fn soa() -> Record {
        let soa = SOA::new(
            dns_name("ns.test"),
            dns_name("hostmaster.test"),
            1,
            3600,
            600,
            86400,
            60,
        );
        Record::from_rdata(Name::root(), 60, RData::SOA(soa))
    }

    /// The response to `query`, or `None` to stay silent.
    fn answer(&self, query: &Message) -> Option<Message> {
        let q = query.queries.first()?;
        let name = key(&q.name().to_ascii());
        if self.timeouts.contains(&name) {
            return None;
        }
        let mut response = Message::new(
            query.metadata.id,
            MessageType::Response,
            query.metadata.op_code,
        );
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.add_query(q.clone());
        if query.edns.is_some() {
            response.set_edns(Edns::new());
        }
        if self.servfails.contains(&name) {
            response.metadata.response_code = ResponseCode::ServFail;
            return Some(response);
        }
        let at_name: Vec<&Record> = self
            .records
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, r)| r)
            .collect();
        let wanted = q.query_type();
        let mut answers: Vec<Record> = at_name
            .iter()
            .filter(|r| r.record_type() == wanted || r.record_type() == RecordType::CNAME)
            .map(|r| (*r).clone())
            .collect();
        // Follow one CNAME inside the zone.
        if let Some(RData::CNAME(target)) = answers.first().map(|r| r.data.clone()) {
            if wanted != RecordType::CNAME {
                let target = key(&target.0.to_ascii());
                answers.extend(
                    self.records
                        .iter()
                        .filter(|(n, r)| *n == target && r.record_type() == wanted)
                        .map(|(_, r)| r.clone()),
                );
            }
        }
        if answers.is_empty() {
            if at_name.is_empty() {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_authority(Self::soa());
        } else {
            response.add_answers(answers);
        }
        Some(response)
    }
}

/// The running server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, String, Instant)>>>,
    answered: Arc<Mutex<Vec<Instant>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestDns {
    pub async fn start(zone: Zone) -> TestDns {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("addr");
        let zone = Arc::new(zone);
        let log = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let logs = Logs {
            queries: log.clone(),
            answers: answered.clone(),
        };
        let udp = Arc::new(udp);
        let udp_task = {
            let (zone, log) = (zone.clone(), logs.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                    let (packet, zone, log, udp) =
                        (buf[..n].to_vec(), zone.clone(), log.clone(), udp.clone());
                    tokio::spawn(async move {
                        if let Some(reply) = handle(&zone, &log, &packet, true).await {
                            let _ = udp.send_to(&reply, peer).await;
                        }
                    });
                }
            })
        };
        let tcp_task = {
            let zone = zone.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = tcp.accept().await {
                    tokio::spawn(serve_tcp(stream, zone.clone(), logs.clone()));
                }
            })
        };
        TestDns {
            addr,
            log,
            answered,
            tasks: vec![udp_task, tcp_task],
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries (any type, UDP or TCP) arrived for `name`.
    pub fn queries(&self, name: &str) -> usize {
        let name = key(name);
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|(n, _, _)| *n == name)
            .count()
    }

    /// (name, type, arrival) of every query, in arrival order.
    pub fn query_log(&self) -> Vec<(String, String, Instant)> {
        self.log.lock().expect("lock").clone()
    }

    /// When each answer was sent, in order.
    pub fn answer_log(&self) -> Vec<Instant> {
        self.answered.lock().expect("lock").clone()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// UDP and TCP sockets on the same 127.0.0.1 port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// What the server saw: queries on arrival, answers when sent.
#[derive(Clone)]
struct Logs {
    queries: Arc<Mutex<Vec<(String, String, Instant)>>>,
    answers: Arc<Mutex<Vec<Instant>>>,
}

async fn serve_tcp(mut stream: TcpStream, zone: Arc<Zone>, log: Logs) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut packet).await.is_err() {
            return;
        }
        if let Some(reply) = handle(&zone, &log, &packet, false).await {
            let Ok(len) = u16::try_from(reply.len()) else {
                return;
            };
            if stream.write_all(&len.to_be_bytes()).await.is_err()
                || stream.write_all(&reply).await.is_err()
            {
                return;
            }
        }
    }
}

/// Decodes a query, logs it, and encodes the answer (truncated over UDP
/// when it exceeds what the client can take, so that it retries over TCP).
async fn handle(zone: &Zone, log: &Logs, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let q = query.queries.first()?;
    log.queries.lock().ok()?.push((
        key(&q.name().to_ascii()),
        q.query_type().to_string(),
        Instant::now(),
    ));
    if let Some(d) = zone.delay {
        tokio::time::sleep(d).await;
    }
    let response = zone.answer(&query)?;
    log.answers.lock().ok()?.push(Instant::now());
    let bytes = response.to_vec().ok()?;
    let limit = query
        .edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload().max(512)));
    if udp && bytes.len() > limit {
        let mut truncated = response.truncate();
        truncated.metadata.truncation = true;
        return truncated.to_vec().ok();
    }
    Some(bytes)
}
