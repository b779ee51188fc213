//! The active STARTTLS probe: when the MTA did not see a verified client
//! certificate, we ask the client itself. Sending servers are SMTP servers
//! too, so we connect to the client's IP on the SMTP port, `EHLO`,
//! `STARTTLS`, and verify the certificate it serves with OpenSSL: chain to
//! a trusted CA, validity dates, revocation (CRL files, stapled OCSP) and a
//! name that is the HELO name or the client's forward-confirmed PTR name.
//!
//! Safety rails: the only target is the transaction's client IP (no DNS
//! names, no redirects); anything that stops the probe from finishing is
//! [`ProbeOutcome::TempError`], never a pass. Bounds, so that no client can
//! starve the probing of others:
//! - one deadline per probe (`probe_timeout_ms`) for the whole conversation,
//!   TLS handshake included, however the peer paces its bytes;
//! - only a unicast host address is probed ([`probe_target`]): never an
//!   unspecified (`0.0.0.0`, `::`, which reach our own host), broadcast,
//!   multicast or reserved one; an IPv4-mapped IPv6 address is its IPv4
//!   address (one cache entry, one flight);
//! - at most one probe per client IP in flight; concurrent transactions
//!   from that IP wait for its result (single flight);
//! - results cached per IP, in a cache bounded in bytes; only a certificate
//!   depends on the HELO name, and at most [`cache::MAX_HELO_VARIANTS`] per IP are
//!   fetched;
//! - at most [`MAX_CONCURRENT_PROBES`] probes at once and
//!   [`MAX_PROBES_PER_NETWORK`] per client /24 or /64 (`slots`), handed out
//!   in order and shared across reloads; waiting for one (or for the probe
//!   of the same IP) is limited to `probe_timeout_ms` too, defers the
//!   transaction when it runs out and is never cached as a probe failure.
//!
//! The conversation is blocking OpenSSL on Tokio's blocking pool, ended by
//! its deadline, so no thread (and no shutdown) waits longer on a peer; the
//! trust decisions are functions of their inputs with the clock passed in.
//!
//! Parts: `trust` (CAs, CRLs, stapled OCSP), `names` (RFC 6125 name
//! matching, confirmed PTR names), `client` (the SMTP STARTTLS
//! conversation), `cache` (what was found out, per IP, for how long),
//! `slots` (how many probes run at once); this file is the [`Prober`] that
//! puts them together for the check (`checks::tls`).

mod cache;
mod client;
mod mta_sts;
mod names;
mod outcome;
mod servers;
mod slots;
mod trust;

pub(crate) use names::{cert_names, confirmed_ptr_names, name_matches};
pub use outcome::{ProbeKind, Problem};
pub use servers::ServerFinding;
pub use servers::Servers;
pub use servers::MAX_MX_HOSTS;
pub use slots::Slots;
pub use slots::{MAX_CONCURRENT_PROBES, MAX_PROBES_PER_NETWORK};
pub use trust::TrustStoreError;
pub use trust::{CertProblem, TrustStore};

use crate::{config::TlsConfig, dns::Dns};
use cache::{Finding, ProbeCache};
use client::Conversation;
use names::{is_dns_name, subject_cn};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use slots::NoSlot;
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, LazyLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// What a probe found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// A trusted, valid, unrevoked certificate for `name`.
    Verified {
        /// The HELO or confirmed PTR name the certificate matched.
        name: String,
        /// The certificate's subject CN (or first name), for the header.
        subject: String,
        /// The TLS version the probe negotiated.
        version: String,
    },
    /// Decided before the TLS handshake, for every name: nothing listens
    /// on the client's SMTP port, or it does not offer STARTTLS.
    NoStartTls(Problem),
    /// A certificate was shown and is not acceptable (why).
    BadCertificate(Problem),
    /// The probe could not finish (why): it may pass later.
    TempError(Problem),
}

impl ProbeOutcome {
    /// Its name in the taxonomy (the log's `tls.probe`).
    pub fn kind(&self) -> ProbeKind {
        match self {
            Self::Verified { .. } => ProbeKind::Verified,
            Self::NoStartTls(p) | Self::BadCertificate(p) | Self::TempError(p) => p.kind,
        }
    }
}

/// Probes clients; shared by all transactions (one cache, one set of
/// slots; the slots also with the probers of earlier configurations).
pub struct Prober {
    trust: Arc<TrustStore>,
    connector: SslConnector,
    cache: ProbeCache,
    slots: Slots,
    port: u16,
    timeout: Duration,
    /// Our name in `EHLO`.
    ehlo_name: String,
}

impl Prober {
    pub fn new(config: &TlsConfig, ehlo_name: &str) -> Result<Self, TrustStoreError> {
        Self::with_slots(config, ehlo_name, Slots::new())
    }

    /// A prober that shares `slots` with others (a reload's new prober
    /// with the one connections opened before it still use).
    pub(crate) fn with_slots(
        config: &TlsConfig,
        ehlo_name: &str,
        slots: Slots,
    ) -> Result<Self, TrustStoreError> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // We verify the chain ourselves, after the handshake, to say why.
        b.set_verify(SslVerifyMode::NONE);
        Ok(Self {
            trust: Arc::new(TrustStore::load(config)?),
            connector: b.build(),
            cache: ProbeCache::new(),
            slots,
            port: config.probe_port,
            timeout: Duration::from_millis(config.probe_timeout_ms),
            ehlo_name: ehlo_name.to_string(),
        })
    }

    /// The probe slots, to share with a prober that replaces this one.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The (cached) outcome of probing `ip`, which said `HELO helo`.
    /// Concurrent calls for the same IP share one probe.
    pub async fn probe(&self, dns: &Dns, ip: IpAddr, helo: &str) -> ProbeOutcome {
        let ip = ip.to_canonical();
        if let Err(why) = probe_target(ip) {
            return ProbeOutcome::BadCertificate(Problem::new(
                ProbeKind::BadCertificate,
                format!(
                    "no certificate to verify: the client address {ip} is {why}, which is never probed"
                ),
            ));
        }
        let helo = helo.trim_end_matches('.').to_ascii_lowercase();
        let (names, subject, version) = match self.finding(ip, &helo).await {
            Finding::Certificate {
                names,
                subject,
                version,
            } => (names, subject, version),
            Finding::Outcome(outcome) => return outcome,
        };
        let verified = |name: &str| ProbeOutcome::Verified {
            name: name.to_string(),
            subject: subject.clone(),
            version: version.clone(),
        };
        if is_dns_name(&helo) && names.iter().any(|p| name_matches(p, &helo)) {
            return verified(&helo);
        }
        let ptrs = tokio::time::timeout(self.timeout, confirmed_ptr_names(dns, ip)).await;
        match ptrs {
            Ok(Ok(ptrs)) => {
                if let Some(name) = ptrs
                    .iter()
                    .find(|ptr| names.iter().any(|p| name_matches(p, ptr)))
                {
                    return verified(name);
                }
                let ptrs = if ptrs.is_empty() {
                    "none".to_string()
                } else {
                    ptrs.join(", ")
                };
                ProbeOutcome::BadCertificate(Problem::new(
                    ProbeKind::NameMismatch,
                    format!(
                        "certificate name mismatch: it is for {} but the client is {helo} \
                         (confirmed reverse DNS: {ptrs})",
                        names.join(", ")
                    ),
                ))
            }
            Ok(Err(why)) => ProbeOutcome::TempError(Problem::new(ProbeKind::Temporary, why)),
            Err(_) => ProbeOutcome::TempError(Problem::new(
                ProbeKind::Timeout,
                format!(
                    "confirming the PTR names of {ip} took longer than {} ms",
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    /// What `ip`'s port shows for `helo`: from the cache, from the probe of
    /// `ip` in flight (single flight: wait for it), or from a new probe.
    ///
    /// Waiting — for the probe of the same IP, then for a free slot — has
    /// its own limit (`probe_timeout_ms`) and is not a probe: when it runs
    /// out the transaction is deferred and nothing is cached. The probe's
    /// own limit starts once it has a slot.
    async fn finding(&self, ip: IpAddr, helo: &str) -> Finding {
        let sni = is_dns_name(helo).then(|| helo.to_string());
        let turn = tokio::time::Instant::now() + self.timeout;
        let waited = || {
            Finding::Outcome(ProbeOutcome::TempError(Problem::new(
                ProbeKind::Timeout,
                format!(
                    "no probe slot for {ip} within {} ms (probes in flight)",
                    self.timeout.as_millis()
                ),
            )))
        };
        let entry = self.cache.record(ip).await;
        let Ok(mut record) = tokio::time::timeout_at(turn, entry.record.clone().lock_owned()).await
        else {
            return waited();
        };
        if let Some(found) = record.lookup(sni.as_deref(), helo, Instant::now()) {
            return found;
        }
        // Fair: the slots are handed out in order, and each IP has at most
        // one waiter (the holder of its record).
        let permit = match self.slots.acquire(ip, turn).await {
            Ok(slot) => slot,
            Err(NoSlot::Closed) => {
                return Finding::Outcome(ProbeOutcome::TempError(Problem::new(
                    ProbeKind::Temporary,
                    "probing is shutting down",
                )))
            }
            Err(NoSlot::Late) => return waited(),
        };
        // The probe runs to its end and is remembered even if this
        // transaction goes away meanwhile; the slot is held exactly as long
        // as the conversation (which ends by its deadline).
        let (connector, trust, limit) = (self.connector.clone(), self.trust.clone(), self.timeout);
        let (addr, ehlo) = (SocketAddr::new(ip, self.port), self.ehlo_name.clone());
        let cache = self.cache.clone();
        let probe = tokio::spawn(async move {
            let sni_sent = sni.clone();
            let started = Instant::now();
            let examined = tokio::task::spawn_blocking(move || {
                let conversation =
                    client::converse(&connector, addr, &ehlo, sni_sent.as_deref(), limit);
                drop(permit);
                examine(conversation, &trust)
            });
            let found = match examined.await {
                Ok(found) => found,
                Err(e) => Finding::Outcome(ProbeOutcome::TempError(Problem::new(
                    ProbeKind::Temporary,
                    format!("probe task failed: {e}"),
                ))),
            };
            let outcome = match &found {
                Finding::Outcome(o) => Some(o),
                Finding::Certificate { .. } => None,
            };
            PROBE_COUNTERS.finished(outcome, started.elapsed());
            record.store(sni, found.clone(), Instant::now());
            let bytes = record.bytes();
            drop(record);
            cache.reweigh(ip, &entry, bytes).await;
            found
        });
        probe.await.unwrap_or_else(|e| {
            Finding::Outcome(ProbeOutcome::TempError(Problem::new(
                ProbeKind::Temporary,
                format!("probe task failed: {e}"),
            )))
        })
    }
}

/// Is `ip` (canonical: IPv4-mapped addresses are IPv4) an address a probe
/// may connect to? Only a unicast host address: an unspecified address
/// connects to our own host (so our own certificate would answer for the
/// client), and a broadcast or multicast one to many hosts or none. The
/// error says what the address is (no parentheses: it ends up in an
/// `Authentication-Results` comment). Loopback, private and documentation
/// addresses are unicast and probed (docs/decisions.md, "Probe slots").
pub(crate) fn probe_target(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            // 0.0.0.0/8, 224.0.0.0/4 and 240.0.0.0/4 (RFC 6890).
            if v4.is_unspecified() || first == 0 {
                Err("an unspecified address")
            } else if v4.is_broadcast() {
                Err("the broadcast address")
            } else if v4.is_multicast() {
                Err("a multicast address")
            } else if first >= 240 {
                Err("a reserved address")
            } else {
                Ok(())
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Err("the unspecified address")
            } else if v6.is_multicast() {
                Err("a multicast address")
            } else {
                Ok(())
            }
        }
    }
}

/// What the client's port showed, judged: a certificate that verified (its
/// names still to be matched), or the outcome.
fn examine(conversation: Conversation, trust: &TrustStore) -> Finding {
    let outcome = |o| Finding::Outcome(o);
    let (chain, ocsp, version) = match conversation {
        Conversation::Presented {
            chain,
            ocsp,
            version,
        } => (chain, ocsp, version),
        Conversation::Ended(why) => return outcome(ended(why)),
    };
    match trust.verify(&chain, ocsp.as_deref(), unix_now()) {
        Ok(verified) => match verified.first() {
            Some(leaf) => {
                let names = cert_names(leaf);
                let subject = subject_cn(leaf).unwrap_or_else(|| names.join(","));
                Finding::Certificate {
                    names,
                    subject,
                    version,
                }
            }
            None => outcome(ProbeOutcome::BadCertificate(Problem::new(
                ProbeKind::BadCertificate,
                "no certificate presented",
            ))),
        },
        Err(CertProblem::Bad(why)) => outcome(ProbeOutcome::BadCertificate(why)),
        Err(CertProblem::Internal(why)) => outcome(ProbeOutcome::TempError(Problem::new(
            ProbeKind::Temporary,
            why,
        ))),
    }
}

/// A conversation that ended before a certificate: decided before the
/// handshake (for every HELO name), temporary, or a failed handshake.
fn ended(why: Problem) -> ProbeOutcome {
    match why.kind {
        ProbeKind::NoListener | ProbeKind::NoStartTls => ProbeOutcome::NoStartTls(why),
        k if k.is_temporary() => ProbeOutcome::TempError(why),
        _ => ProbeOutcome::BadCertificate(why),
    }
}

/// Seconds since the epoch, the verification time of real probes.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::probe_target;

    #[test]
    fn only_unicast_host_addresses_are_probed() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "::",
            "ff02::1",
            "ff05::1:3",
        ];
        for ip in refused {
            assert!(probe_target(ip.parse().unwrap()).is_err(), "{ip}");
        }
        let probed = [
            "127.0.0.1",
            "192.0.2.1",
            "10.1.2.3",
            "198.51.100.7",
            "::1",
            "2001:db8::25",
            "fe80::1",
        ];
        for ip in probed {
            assert_eq!(probe_target(ip.parse().unwrap()), Ok(()), "{ip}");
        }
    }
}

/// Probe conversations, counted here; src/metrics.rs registers these same
/// counters and so reads them at scrape time (the prober needs nothing of
/// the metrics: ARCHITECTURE.md, "Module graph").
#[derive(Debug)]
pub(crate) struct ProbeCounters {
    /// Probes run (cached results not counted), by `outcome`: one of
    /// [`PROBE_OUTCOMES`].
    pub probes: Family<[(&'static str, &'static str); 1], Counter>,
    /// Duration of a probe conversation.
    pub seconds: Histogram,
}

/// The `outcome` labels of [`ProbeCounters::probes`].
pub(crate) const PROBE_OUTCOMES: [&str; 4] =
    ["certificate", "no_starttls", "bad_certificate", "temperror"];
/// Upper bounds of the probe duration histogram, in seconds (a TCP and TLS
/// conversation, `probe_timeout_ms`).
const PROBE_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The probe counters of every [`Prober`] in the process.
pub(crate) static PROBE_COUNTERS: LazyLock<ProbeCounters> = LazyLock::new(|| {
    let counters = ProbeCounters {
        probes: Family::default(),
        seconds: Histogram::new(PROBE_BUCKETS),
    };
    for outcome in PROBE_OUTCOMES {
        let _ = counters.probes.get_or_create(&[("outcome", outcome)]);
    }
    counters
});

impl ProbeCounters {
    /// A probe conversation ended (`None`: a certificate that verified,
    /// its names still to be matched).
    fn finished(&self, outcome: Option<&ProbeOutcome>, took: Duration) {
        let label = match outcome {
            None | Some(ProbeOutcome::Verified { .. }) => "certificate",
            Some(ProbeOutcome::NoStartTls(_)) => "no_starttls",
            Some(ProbeOutcome::BadCertificate(_)) => "bad_certificate",
            Some(ProbeOutcome::TempError(_)) => "temperror",
        };
        self.probes.get_or_create(&[("outcome", label)]).inc();
        self.seconds.observe(took.as_secs_f64());
    }
}
