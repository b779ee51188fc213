//! Prometheus metrics (`[metrics] listen`), kept in a `prometheus-client`
//! registry and served as OpenMetrics text on `GET /metrics`. The names are
//! listed in the README ("Metrics"); per-check labels come from the check
//! registry, so a new check shows up without a change here. Every label
//! combination that can occur is created up front, so a scrape names all
//! series (at 0) before the first message, and dashboards have no gaps.

use crate::{
    challenge,
    checks::{CheckResult, Status, CHECKS},
    dns::CACHE_COUNTERS,
    reply::Code,
    tls::PROBE_COUNTERS,
    transaction::{Evaluation, CHECK_LATENCY},
    SharedHandle,
};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};
use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tracing::warn;

const STATUSES: [Status; 7] = [
    Status::Pass,
    Status::Fail,
    Status::SoftFail,
    Status::Neutral,
    Status::None,
    Status::TempError,
    Status::PermError,
];
const VERDICTS: [&str; 4] = ["accept", "reject", "tempfail", "would_reject"];

type Label = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

struct Metrics {
    registry: Registry,
    messages: Family<Label, Counter>,
    trusted: Counter,
    exempt: Counter,
    results: Family<Labels2, Counter>,
    cache_entries: Gauge,
    replies: Family<[(&'static str, String); 1], Counter>,
    in_flight: Gauge,
    /// Recipients' controls (src/milter/recipients.rs, src/challenge/).
    tokens_used: Counter,
    tokens_refused: Family<Label, Counter>,
    state_errors: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            messages: Family::default(),
            trusted: Counter::default(),
            exempt: Counter::default(),
            results: Family::default(),
            cache_entries: Gauge::default(),
            replies: Family::default(),
            in_flight: Gauge::default(),
            tokens_used: Counter::default(),
            tokens_refused: Family::default(),
            state_errors: Counter::default(),
        };
        for r in crate::tokens::Refusal::WORDS {
            let _ = m.tokens_refused.get_or_create(&[("reason", r)]);
        }
        for v in VERDICTS {
            let _ = m.messages.get_or_create(&[("verdict", v)]);
        }
        for c in CHECKS {
            let check = c.name.as_str();
            for s in STATUSES {
                let _ = m
                    .results
                    .get_or_create(&[("check", check), ("result", s.as_str())]);
            }
        }
        m.register()
    }

    /// Counters are registered without `_total`: the encoder appends it.
    /// The DNS caches, the prober, the transaction and the challenge page
    /// keep their own counters; they are registered here as they are, so
    /// a scrape reads them (ARCHITECTURE.md, "Module graph").
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        let p = "mailkey_milter_";
        r.register(format!("{p}messages"), "Checked messages by verdict (would_reject: accepted by monitor mode or an exemption, rejected or deferred otherwise)", self.messages.clone());
        r.register(
            format!("{p}trusted_messages"),
            "Messages from trusted clients (not checked)",
            self.trusted.clone(),
        );
        r.register(
            format!("{p}exempt_messages"),
            "Checked messages from exempt senders ([exempt]), accepted whatever the checks said",
            self.exempt.clone(),
        );
        r.register(
            format!("{p}check_results"),
            "Check results by check and result",
            self.results.clone(),
        );
        r.register(
            format!("{p}check_seconds"),
            "Time from MAIL FROM until a check's lookups were done",
            CHECK_LATENCY.clone(),
        );
        r.register(
            format!("{p}replies"),
            "Reject and tempfail replies sent, by SMTP code and enhanced status",
            self.replies.clone(),
        );
        r.register(
            format!("{p}tls_probes"),
            "STARTTLS probes run (cached results not counted), by outcome",
            PROBE_COUNTERS.probes.clone(),
        );
        r.register(
            format!("{p}tls_probe_seconds"),
            "Duration of a STARTTLS probe conversation",
            PROBE_COUNTERS.seconds.clone(),
        );
        r.register(
            format!("{p}transactions_in_flight"),
            "SMTP transactions between MAIL FROM and their end",
            self.in_flight.clone(),
        );
        r.register(
            format!("{p}dns_cache_lookups"),
            "DNS cache lookups by outcome",
            CACHE_COUNTERS.lookups.clone(),
        );
        r.register(
            format!("{p}dns_cache_entries"),
            "Entries in the DNS caches (all record types)",
            self.cache_entries.clone(),
        );
        r.register(
            format!("{p}dns_cache_evictions"),
            "DNS cache entries evicted because a cache was full",
            CACHE_COUNTERS.evictions.clone(),
        );
        r.register(
            format!("{p}tokens_used"),
            "Messages let through by a recipient's token (uses counted)",
            self.tokens_used.clone(),
        );
        r.register(
            format!("{p}tokens_refused"),
            "Recipients refused for their token, by reason",
            self.tokens_refused.clone(),
        );
        r.register(
            format!("{p}challenges"),
            "Sender challenges: offered in a refusal, passed on the page, messages let through",
            challenge::EVENT_COUNTERS.clone(),
        );
        r.register(
            format!("{p}state_errors"),
            "Operations on the state store that failed (the mail concerned was deferred)",
            self.state_errors.clone(),
        );
        r.register(
            format!("{p}build"),
            "The running version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        self
    }
}

/// Counts one checked message.
pub fn record(e: &Evaluation) {
    let m = &*METRICS;
    m.messages
        .get_or_create(&[("verdict", e.verdict.applied().word())])
        .inc();
    if e.verdict.would().is_some() {
        m.messages
            .get_or_create(&[("verdict", "would_reject")])
            .inc();
    }
    if e.verdict.exempt.is_some() {
        m.exempt.inc();
    }
    for r in &e.results {
        record_result(r);
    }
}

fn record_result(r: &CheckResult) {
    METRICS
        .results
        .get_or_create(&[("check", r.check.as_str()), ("result", r.status.as_str())])
        .inc();
}

pub(crate) fn record_trusted() {
    METRICS.trusted.inc();
}

/// A reject or tempfail reply the MTA was given.
pub(crate) fn reply_sent(code: Code) {
    METRICS
        .replies
        .get_or_create(&[("code", code.to_string())])
        .inc();
}

/// A message let through by a token (a use counted).
pub(crate) fn token_used() {
    METRICS.tokens_used.inc();
}

/// A recipient refused for its token; `reason` is a
/// [`crate::tokens::Refusal`] word.
pub fn token_refused(reason: &'static str) {
    METRICS
        .tokens_refused
        .get_or_create(&[("reason", reason)])
        .inc();
}

/// A challenge event: `offered`, `let_through` (the page counts
/// `passed`).
pub fn challenge(event: &'static str) {
    challenge::count(event);
}

/// The state store failed to answer.
pub(crate) fn state_error() {
    METRICS.state_errors.inc();
}

/// One SMTP transaction between MAIL FROM and its end (delivered, aborted,
/// connection gone): counted in `transactions_in_flight` while it lives.
#[derive(Debug)]
pub(crate) struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        METRICS.in_flight.inc();
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.in_flight.dec();
    }
}

/// The OpenMetrics text exposition, with the gauges that are read at
/// scrape time brought up to date from `shared`.
pub fn render(shared: Option<&SharedHandle>) -> String {
    if let Some(shared) = shared {
        let entries = shared.current().dns.cache_entries();
        METRICS
            .cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }
    let mut out = String::with_capacity(8192);
    if let Err(e) = encode(&mut out, &METRICS.registry) {
        warn!("cannot encode the metrics: {e}");
    }
    out
}

/// After a failed `accept` (EMFILE, ENFILE, ENOBUFS…) the same error comes
/// back at once: wait this long before the next try instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Scrapes served at once: a scraper or two, and a person with curl. A
/// connection beyond them is answered `503` at once and closed (a client
/// whose request arrived first may see a reset instead), so that nobody
/// who can reach the port can pile up connections (and file descriptors,
/// which the milter socket needs too).
pub const MAX_CONNECTIONS: usize = 16;
/// One deadline for a whole scrape, reading the request and writing the
/// answer: a client that sends (or reads) a byte now and then holds its
/// connection no longer than this.
pub(crate) const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);

const BUSY: &[u8] = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: SharedHandle) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // A fresh socket's send buffer takes these few bytes at once.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(SCRAPE_DEADLINE, answer(stream, &shared)).await;
            drop(slot);
        });
    }
}

/// Reads one request and writes its answer.
async fn answer(mut stream: TcpStream, shared: &SharedHandle) {
    let mut buf = [0u8; 1024];
    let Ok(n) = stream.read(&mut buf).await else {
        return;
    };
    let request = String::from_utf8_lossy(&buf[..n]);
    let response = if request.starts_with("GET /metrics ") || request.starts_with("GET / ") {
        let body = render(Some(shared));
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
    };
    let _ = stream.write_all(response.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_check_has_series() {
        let text = super::render(None);
        for c in super::CHECKS {
            let series = format!(
                "mailkey_milter_check_results_total{{check=\"{}\",result=\"fail\"}} ",
                c.name.as_str()
            );
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert!(text.contains("mailkey_milter_build_info{version=\""));
    }
}
