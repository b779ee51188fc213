//! A sender domain's own mail servers, for the `sender-domain` evidence
//! (docs/decisions.md, "Evidence ladder"): does an MX host of `D` present a
//! CA-signed certificate for its name (or one its TLSA record names, DANE,
//! RFC 7672), and does `D` publish an MTA-STS policy in `enforce` mode
//! ([`super::mta_sts`])? Bounded like the client probe: one deadline per
//! conversation (`probe_timeout_ms`), at most [`MAX_CONCURRENT`] at once
//! (waiting for a slot limited by the same deadline), results cached per
//! host and per domain, and concurrent askers share one conversation
//! (moka's `get_with`).
//!
//! Only addresses that a mail server can have are contacted: never an
//! unspecified, multicast or broadcast address from a hostile zone.

use super::{
    cert_names,
    client::{self, Conversation},
    name_matches,
    outcome::{ProbeKind, Problem},
    trust::{CertProblem, TrustStore, TrustStoreError},
};
use crate::{config::TlsConfig, dns::Dns};
use mail_auth::{DnsError, Error as AuthError};
use moka::{future::Cache, Expiry};
use openssl::{
    hash::{hash, MessageDigest},
    ssl::{SslConnector, SslMethod, SslVerifyMode},
    x509::X509,
};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Conversations with domains' servers (MX hosts, MTA-STS policy hosts)
/// at once.
pub(crate) const MAX_CONCURRENT: usize = 16;
/// MX hosts looked at per domain (lowest preference first).
pub const MAX_MX_HOSTS: usize = 2;
/// Hosts and domains remembered.
const CACHE_ENTRIES: u64 = 10_000;
/// How long a finding holds: as the client probe's (tls/cache.rs).
const PASS_TTL: Duration = Duration::from_secs(3600);
const FAIL_TTL: Duration = Duration::from_secs(600);
const TEMP_TTL: Duration = Duration::from_secs(60);

/// What a domain's server showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFinding {
    /// A trusted, valid certificate for the host's name (its CN).
    Certified { subject: String },
    /// A certificate its TLSA record names (DANE).
    Dane,
    /// Not certified, and that will not change by itself.
    Not(Problem),
    /// Could not tell now.
    Temporary(Problem),
}

impl ServerFinding {
    fn ttl(&self) -> Duration {
        match self {
            Self::Certified { .. } | Self::Dane => PASS_TTL,
            Self::Not(_) => FAIL_TTL,
            Self::Temporary(_) => TEMP_TTL,
        }
    }

    pub(super) fn from_problem(p: Problem) -> Self {
        if p.kind.is_temporary() {
            Self::Temporary(p)
        } else {
            Self::Not(p)
        }
    }
}

struct ByFinding;

impl<K> Expiry<K, ServerFinding> for ByFinding {
    fn expire_after_create(&self, _: &K, v: &ServerFinding, _: Instant) -> Option<Duration> {
        Some(v.ttl())
    }
}

/// The checker of domains' servers; shared by all transactions.
pub struct Servers {
    pub(super) trust: Arc<TrustStore>,
    pub(super) connector: SslConnector,
    hosts: Cache<String, ServerFinding>,
    pub(super) policies: Cache<String, ServerFinding>,
    permits: Arc<Semaphore>,
    port: u16,
    pub(super) https_port: u16,
    pub(super) timeout: Duration,
    ehlo_name: String,
}

impl Servers {
    pub fn new(config: &TlsConfig, ehlo_name: &str) -> Result<Self, TrustStoreError> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // Verified after the handshake, to say why.
        b.set_verify(SslVerifyMode::NONE);
        let cache = || {
            Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(ByFinding)
                .build()
        };
        Ok(Self {
            trust: Arc::new(TrustStore::load(config)?),
            connector: b.build(),
            hosts: cache(),
            policies: cache(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            port: config.probe_port,
            https_port: config.mta_sts_port,
            timeout: Duration::from_millis(config.probe_timeout_ms),
            ehlo_name: ehlo_name.to_string(),
        })
    }

    /// Does MX host `host` present a certificate for its name (cached)?
    pub async fn mx_host(&self, dns: &Dns, host: &str) -> ServerFinding {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts
            .get_with(host.clone(), self.examine_host(dns, host))
            .await
    }

    /// A slot for one conversation, within the deadline.
    async fn slot(&self, what: &str) -> Result<OwnedSemaphorePermit, ServerFinding> {
        let late = || {
            ServerFinding::Temporary(Problem::new(
                ProbeKind::Timeout,
                format!(
                    "no slot to check {what} within {} ms",
                    self.timeout.as_millis()
                ),
            ))
        };
        match tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(late()),
            Err(_) => Err(late()),
        }
    }

    /// `host`'s address and a slot to talk to it.
    pub(super) async fn reach(
        &self,
        dns: &Dns,
        host: &str,
    ) -> Result<(IpAddr, OwnedSemaphorePermit), ServerFinding> {
        let ip = address(dns, host).await?;
        Ok((ip, self.slot(host).await?))
    }

    async fn examine_host(&self, dns: &Dns, host: String) -> ServerFinding {
        let (ip, permit) = match self.reach(dns, &host).await {
            Ok(reached) => reached,
            Err(finding) => return finding,
        };
        let (connector, limit) = (self.connector.clone(), self.timeout);
        let (addr, ehlo, sni) = (
            SocketAddr::new(ip, self.port),
            self.ehlo_name.clone(),
            host.clone(),
        );
        let talk = tokio::task::spawn_blocking(move || {
            let c = client::converse(&connector, addr, &ehlo, Some(&sni), limit);
            drop(permit);
            c
        });
        let (chain, ocsp) = match talk.await {
            Ok(Conversation::Presented { chain, ocsp, .. }) => (chain, ocsp),
            Ok(Conversation::Ended(p)) => {
                let p = Problem::new(p.kind, format!("MX {host}: {}", p.text));
                return ServerFinding::from_problem(p);
            }
            Err(e) => {
                return ServerFinding::Temporary(Problem::new(
                    ProbeKind::Temporary,
                    format!("MX {host}: probe task failed: {e}"),
                ))
            }
        };
        let problem = match self
            .trust
            .verify(&chain, ocsp.as_deref(), super::unix_now())
        {
            Ok(verified) => match verified.first() {
                Some(leaf) if cert_names(leaf).iter().any(|n| name_matches(n, &host)) => {
                    let subject = super::names::subject_cn(leaf).unwrap_or_else(|| host.clone());
                    return ServerFinding::Certified { subject };
                }
                _ => Problem::new(
                    ProbeKind::NameMismatch,
                    format!("MX {host}: its certificate is not for {host}"),
                ),
            },
            Err(CertProblem::Bad(p)) => Problem::new(p.kind, format!("MX {host}: {}", p.text)),
            Err(CertProblem::Internal(why)) => {
                return ServerFinding::Temporary(Problem::new(ProbeKind::Temporary, why))
            }
        };
        match dane(dns, &host, &chain).await {
            Ok(true) => ServerFinding::Dane,
            Ok(false) => ServerFinding::Not(problem),
            Err(why) => ServerFinding::Temporary(Problem::new(ProbeKind::Temporary, why)),
        }
    }
}

/// Can a mail server have this address? Never contact the unspecified
/// address (it means "this host"), multicast or broadcast.
pub(crate) fn contactable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// The first address of `host` (IPv4 first), if a mail server may have it.
async fn address(dns: &Dns, host: &str) -> Result<IpAddr, ServerFinding> {
    let temporary = |e: AuthError| {
        ServerFinding::Temporary(Problem::new(
            ProbeKind::Temporary,
            format!("lookup of {host} failed: {e}"),
        ))
    };
    let not_found = |e: &AuthError| matches!(e, AuthError::Dns(DnsError::RecordNotFound(_)));
    let ip = match dns.ipv4(host).await {
        Ok(set) => set.records.first().map(|v4| IpAddr::V4(*v4)),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(temporary(e)),
    };
    let ip = match ip {
        Some(ip) => Some(ip),
        None => match dns.ipv6(host).await {
            Ok(set) => set.records.first().map(|v6| IpAddr::V6(*v6)),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(temporary(e)),
        },
    };
    match ip {
        Some(ip) if contactable(ip) => Ok(ip),
        Some(ip) => Err(ServerFinding::Not(Problem::new(
            ProbeKind::NoListener,
            format!("{host} has the address {ip}, which is never contacted"),
        ))),
        None => Err(ServerFinding::Not(Problem::new(
            ProbeKind::NoListener,
            format!("{host} has no address"),
        ))),
    }
}

/// Does a TLSA record of `host` (`_25._tcp.HOST`) name the presented
/// chain? DANE-EE (3) matches the leaf, DANE-TA (2) any certificate of the
/// chain; selectors full and SPKI; matching exact, SHA-256, SHA-512.
/// `Err` on DNS trouble. Our resolver does not validate DNSSEC: a record
/// is trusted as the SPF record is (docs/decisions.md).
async fn dane(dns: &Dns, host: &str, chain: &[X509]) -> Result<bool, String> {
    use mail_auth::hickory_resolver::proto::rr::{
        rdata::tlsa::{CertUsage, Matching, Selector},
        RData, RecordType,
    };
    let name = format!("_25._tcp.{host}.");
    let records = match dns.resolver().lookup(name.as_str(), RecordType::TLSA).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(t.clone()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Err(e) if super::mta_sts::is_not_found(&e) => return Ok(false),
        Err(e) => return Err(format!("TLSA lookup of {name} failed: {e}")),
    };
    let matches = |cert: &X509, t: &mail_auth::hickory_resolver::proto::rr::rdata::TLSA| {
        let data = match t.selector {
            Selector::Full => cert.to_der().ok(),
            Selector::Spki => cert.public_key().and_then(|k| k.public_key_to_der()).ok(),
            _ => None,
        };
        let Some(data) = data else { return false };
        let digest = match t.matching {
            Matching::Raw => Some(data),
            Matching::Sha256 => hash(MessageDigest::sha256(), &data)
                .ok()
                .map(|d| d.to_vec()),
            Matching::Sha512 => hash(MessageDigest::sha512(), &data)
                .ok()
                .map(|d| d.to_vec()),
            _ => None,
        };
        digest.is_some_and(|d| d == t.cert_data)
    };
    Ok(records.iter().any(|t| match t.cert_usage {
        CertUsage::DaneEe => chain.first().is_some_and(|leaf| matches(leaf, t)),
        CertUsage::DaneTa => chain.iter().any(|c| matches(c, t)),
        _ => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_contacts_this_host_multicast_or_broadcast() {
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert!(!contactable(bad.parse().unwrap()), "{bad}");
        }
        for good in ["192.0.2.1", "127.0.0.25", "2001:db8::1"] {
            assert!(contactable(good.parse().unwrap()), "{good}");
        }
    }
}
