//! The active STARTTLS probe: when the MTA did not see a verified client
//! certificate, we ask the client itself. Sending servers are SMTP servers
//! too, so we connect to the client's IP on the SMTP port, `EHLO`,
//! `STARTTLS`, and verify the certificate it serves with OpenSSL: chain to
//! a trusted CA, validity dates, revocation (CRL files, stapled OCSP) and a
//! name that is the HELO name or the client's forward-confirmed PTR name.
//!
//! Safety rails: the only target is the transaction's client IP (no DNS
//! names, no redirects); results are cached per (IP, HELO) so a sending host
//! is probed once, not per message; concurrency is bounded by a semaphore
//! and time by `probe_timeout_ms`; anything that stops the probe from
//! finishing is [`ProbeOutcome::TempError`], never a pass.
//!
//! The conversation is blocking OpenSSL on Tokio's blocking pool (socket
//! time-outs end it); the trust decisions are functions of their inputs
//! with the clock passed in.
//!
//! Parts: [`trust`] (CAs, CRLs, stapled OCSP), [`names`] (RFC 6125 name
//! matching, confirmed PTR names), [`client`] (the SMTP STARTTLS
//! conversation), [`cache`] (what was found out, for how long); this file
//! is the [`Prober`] that puts them together for the check
//! (`checks::tls`).

mod cache;
mod client;
mod names;
mod trust;

pub use names::{cert_names, name_matches};
pub use trust::{CertProblem, TrustStore, TrustStoreError};

use crate::{config::TlsConfig, dns::Dns};
use client::Conversation;
use names::{confirmed_ptr_names, is_dns_name, subject_cn};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::Semaphore;

/// Probes running at once; more wait (inside their time limit).
pub const MAX_CONCURRENT_PROBES: usize = 32;

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
    /// The client's SMTP port does not offer STARTTLS.
    NoStartTls(String),
    /// A certificate was shown and is not acceptable (why).
    BadCertificate(String),
    /// The probe could not finish (why).
    TempError(String),
}

/// Probes clients; shared by all transactions (one cache, one semaphore).
pub struct Prober {
    trust: Arc<TrustStore>,
    connector: SslConnector,
    cache: cache::ProbeCache,
    permits: Arc<Semaphore>,
    port: u16,
    timeout: Duration,
    /// Our name in `EHLO`.
    ehlo_name: String,
}

impl Prober {
    pub fn new(config: &TlsConfig, ehlo_name: &str) -> Result<Self, TrustStoreError> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // We verify the chain ourselves, after the handshake, to say why.
        b.set_verify(SslVerifyMode::NONE);
        Ok(Self {
            trust: Arc::new(TrustStore::load(config)?),
            connector: b.build(),
            cache: cache::new(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            port: config.probe_port,
            timeout: Duration::from_millis(config.probe_timeout_ms),
            ehlo_name: ehlo_name.to_string(),
        })
    }

    /// The (cached) outcome of probing `ip`, which said `HELO helo`.
    /// Concurrent calls for the same pair share one probe.
    pub async fn probe(&self, dns: &Dns, ip: IpAddr, helo: &str) -> ProbeOutcome {
        let helo = helo.trim_end_matches('.').to_ascii_lowercase();
        let key = (ip, helo.clone());
        self.cache
            .get_with(key, async {
                let work = self.run(dns, ip, &helo);
                match tokio::time::timeout(self.timeout, work).await {
                    Ok(outcome) => outcome,
                    Err(_) => ProbeOutcome::TempError(format!(
                        "probe of {ip} port {} did not finish within {} ms",
                        self.port,
                        self.timeout.as_millis()
                    )),
                }
            })
            .await
    }

    async fn run(&self, dns: &Dns, ip: IpAddr, helo: &str) -> ProbeOutcome {
        // The permit travels with the blocking work: a probe whose time ran
        // out still holds it until its sockets time out too.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return ProbeOutcome::TempError("probing is shutting down".into());
        };
        let addr = SocketAddr::new(ip, self.port);
        let deadline = Instant::now() + self.timeout;
        let (connector, ehlo, sni) = (
            self.connector.clone(),
            self.ehlo_name.clone(),
            is_dns_name(helo).then(|| helo.to_string()),
        );
        let trust = self.trust.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let conversation = client::converse(&connector, addr, &ehlo, sni.as_deref(), deadline);
            drop(permit);
            let (chain, ocsp, version) = match conversation {
                Conversation::Presented {
                    chain,
                    ocsp,
                    version,
                } => (chain, ocsp, version),
                Conversation::NoStartTls(why) => return Err(ProbeOutcome::NoStartTls(why)),
                Conversation::Refused(why) => return Err(ProbeOutcome::BadCertificate(why)),
                Conversation::Failed(why) => return Err(ProbeOutcome::TempError(why)),
            };
            match trust.verify(&chain, ocsp.as_deref(), unix_now()) {
                Ok(verified) => {
                    let leaf = &verified[0];
                    let names = cert_names(leaf);
                    let subject = subject_cn(leaf).unwrap_or_else(|| names.join(","));
                    Ok((names, subject, version))
                }
                Err(CertProblem::Bad(why)) => Err(ProbeOutcome::BadCertificate(why)),
                Err(CertProblem::Internal(why)) => Err(ProbeOutcome::TempError(why)),
            }
        })
        .await;
        let (names, subject, version) = match checked {
            Ok(Ok(ok)) => ok,
            Ok(Err(outcome)) => return outcome,
            Err(e) => return ProbeOutcome::TempError(format!("probe task failed: {e}")),
        };
        let verified = |name: &str| ProbeOutcome::Verified {
            name: name.to_string(),
            subject: subject.clone(),
            version: version.clone(),
        };
        if is_dns_name(helo) && names.iter().any(|p| name_matches(p, helo)) {
            return verified(helo);
        }
        match confirmed_ptr_names(dns, ip).await {
            Ok(ptrs) => {
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
                ProbeOutcome::BadCertificate(format!(
                    "certificate name mismatch: it is for {} but the client is {helo} \
                     (confirmed reverse DNS: {ptrs})",
                    names.join(", ")
                ))
            }
            Err(why) => ProbeOutcome::TempError(why),
        }
    }
}

/// Seconds since the epoch, the verification time of real probes.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
