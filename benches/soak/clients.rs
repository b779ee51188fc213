//! The MTA side: milter connections that push the mix of messages, count
//! the answers, and (in a burst) hold every transaction after its body.

use crate::common::{self, VERIFIED_TLS};
use indymilter_test::{MacroStage, ProtoOpts, SocketInfo, Status, TestConnection};
use std::{
    ffi::CString,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

/// One transaction as the MTA passes it: header fields and body.
pub struct Msg {
    pub fields: Vec<(CString, CString)>,
    pub body: Vec<u8>,
    /// Send no TLS macros, so that the daemon probes the client.
    pub probe: bool,
    /// Stop after the headers and abort (client gone, RSET).
    pub abort: bool,
}

pub const MIX: usize = 12;

#[derive(Default)]
pub struct Counts {
    pub accept: AtomicU64,
    pub reject: AtomicU64,
    pub tempfail: AtomicU64,
    pub aborted: AtomicU64,
    /// Protocol errors: a dropped connection or a broken reply.
    pub errors: AtomicU64,
    /// The slowest transaction of each kind in the mix, in ms.
    pub slowest: [AtomicU64; MIX],
}

/// What the client connections share.
pub struct Clients {
    /// Message `n` is `mix[n % mix.len()]`.
    pub mix: Arc<Vec<Msg>>,
    pub counts: Arc<Counts>,
    /// The next message number; the clients stop at `messages`.
    pub next: Arc<AtomicUsize>,
    pub messages: usize,
    pub hold: Option<Arc<Hold>>,
}

impl Clients {
    /// `connections` clients on `socket`, each from an address of its own.
    pub fn spawn(self, socket: &Path, connections: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let shared = Arc::new(self);
        (0..connections)
            .map(|c| {
                let (socket, s) = (socket.to_path_buf(), shared.clone());
                tokio::spawn(async move { client(&socket, client_ip(c), &s).await })
            })
            .collect()
    }
}

/// One MTA connection: transactions until `messages` are sent; a broken
/// connection is counted and replaced.
/// `hold`: wait there after each body (the burst).
pub async fn client(socket: &Path, ip: IpAddr, shared: &Clients) {
    let Clients {
        mix,
        counts,
        next,
        messages,
        ..
    } = shared;
    let hold = shared.hold.as_deref();
    let mut conn: Option<TestConnection> = None;
    loop {
        let n = next.fetch_add(1, Relaxed);
        if n >= *messages {
            break;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match open(socket, ip, hold.is_some()).await {
                Ok(c) => c,
                Err(_) => {
                    counts.errors.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let msg = &mix[n % mix.len()];
        let t = Instant::now();
        let result = transaction(&mut c, msg, hold).await;
        counts.slowest[n % mix.len()].fetch_max(t.elapsed().as_millis() as u64, Relaxed);
        match result {
            Ok(status) => {
                let counter = match status {
                    None => &counts.aborted,
                    Some(Status::Accept | Status::Continue) => &counts.accept,
                    Some(Status::Tempfail { .. }) => &counts.tempfail,
                    Some(_) => &counts.reject,
                };
                counter.fetch_add(1, Relaxed);
                conn = Some(c);
            }
            Err(e) => {
                if counts.errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("soak: first protocol error: {e}");
                }
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// 127.0.(c / 250).(c % 250 + 2): never 127.0.0.1, the trusted one.
pub fn client_ip(c: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (c / 250) as u8, (c % 250 + 2) as u8))
}

pub type Result<T> = std::result::Result<T, indymilter_test::TestError>;

/// `answer_body`: do not offer the option to leave body chunks unanswered,
/// so that a client knows when the daemon has taken its body in.
pub async fn open(socket: &Path, ip: IpAddr, answer_body: bool) -> Result<TestConnection> {
    let mut opts = ProtoOpts::all();
    if answer_body {
        opts.remove(ProtoOpts::NOREPLY_BODY);
    }
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_opts(opts)
        // A burst of large messages on 2 cores takes minutes to verify.
        .read_timeout(Duration::from_secs(600))
        .open_unix(socket)
        .await?;
    conn.macros(MacroStage::Connect, [("j", "mx.receiver.test")])
        .await?;
    conn.connect(
        "client.sender.test",
        SocketInfo::Inet(SocketAddr::new(ip, 40000)),
    )
    .await?;
    conn.helo("mail.sender.test").await?;
    Ok(conn)
}

/// Burst transactions wait after their body until every one has sent its
/// own: the daemon then holds all the messages at once.
pub struct Hold {
    pub arrived: AtomicUsize,
    /// Closed to let them all go on to the end of message.
    pub go: tokio::sync::Semaphore,
}

/// One transaction; `None` when it was aborted, else the final status (a
/// reject before end of message ends it as the MTA would, with an abort).
pub async fn transaction(
    conn: &mut TestConnection,
    msg: &Msg,
    hold: Option<&Hold>,
) -> Result<Option<Status>> {
    let mut macros = vec![("i", "SOAK1")];
    if !msg.probe {
        macros.extend(VERIFIED_TLS);
    }
    conn.macros(MacroStage::Mail, macros).await?;
    let status = conn.mail(["<alice@sender.test>"]).await?;
    if !common::goes_on(&status) {
        conn.abort().await?;
        return Ok(Some(status));
    }
    let opts = conn.negotiated_opts();
    if !opts.contains(ProtoOpts::NO_RCPT) {
        conn.rcpt(["<bob@receiver.test>"]).await?;
    }
    for (name, value) in &msg.fields {
        let status = conn.header(name.clone(), value.clone()).await?;
        if !common::goes_on(&status) {
            conn.abort().await?;
            return Ok(Some(status));
        }
    }
    if msg.abort {
        conn.abort().await?;
        return Ok(None);
    }
    if !opts.contains(ProtoOpts::NO_EOH) {
        conn.eoh().await?;
    }
    for chunk in msg.body.chunks(65535) {
        conn.body(chunk.to_vec()).await?;
    }
    if let Some(hold) = hold {
        hold.arrived.fetch_add(1, Relaxed);
        let _ = hold.go.acquire().await; // an error: closed, go on
    }
    let (_, status) = conn.eom().await?;
    Ok(Some(status))
}
