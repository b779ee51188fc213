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

use crate::{config::TlsConfig, dns::Dns};
use mail_auth::{dns::DnsCache, DnsError, Error as AuthError};
use moka::{future::Cache, Expiry};
use openssl::{
    error::ErrorStack,
    hash::MessageDigest,
    nid::Nid,
    ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus},
    ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, StatusType},
    stack::Stack,
    x509::{
        store::{X509Lookup, X509Store, X509StoreBuilder},
        verify::{X509VerifyFlags, X509VerifyParam},
        X509Crl, X509PurposeId, X509Ref, X509StoreContext, X509VerifyResult, X509,
    },
};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Probes running at once; more wait (inside their time limit).
pub const MAX_CONCURRENT_PROBES: usize = 32;
/// How long a result is remembered: a verified host for an hour, a bad
/// certificate for ten minutes (the sender may be fixing it), a probe that
/// could not finish for one minute (enough to spare a host that is down
/// from a probe per queued message).
const PASS_TTL: Duration = Duration::from_secs(3600);
const FAIL_TTL: Duration = Duration::from_secs(600);
const TEMP_TTL: Duration = Duration::from_secs(60);
/// Cached (IP, HELO) pairs.
const CACHE_SIZE: u64 = 10_000;
/// SMTP reply limits: a hostile peer cannot make us read forever.
const MAX_LINE: u64 = 1024;
const MAX_LINES: usize = 64;

/// OpenSSL verification errors we name (stable `X509_V_ERR_*` values).
const ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const ERR_UNABLE_TO_GET_CRL: i32 = 3;
const ERR_CERT_NOT_YET_VALID: i32 = 9;
const ERR_CERT_HAS_EXPIRED: i32 = 10;
const ERR_CRL_NOT_YET_VALID: i32 = 11;
const ERR_CRL_HAS_EXPIRED: i32 = 12;
const ERR_DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const ERR_CERT_REVOKED: i32 = 23;

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

/// A trust store that cannot be loaded (a configuration error).
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    #[error("tls.ca_file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tls.ca_file {path}: no PEM certificate in it")]
    NoCertificates { path: PathBuf },
    #[error("tls.crl_files {path}: cannot read: {source}")]
    ReadCrl {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tls.crl_files {path}: not a PEM CRL: {source}")]
    BadCrl { path: PathBuf, source: ErrorStack },
    #[error("cannot set up TLS for probing: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// The CAs and CRLs certificates are verified against.
#[derive(Debug)]
pub struct TrustStore {
    /// `None`: OpenSSL's default paths (the system store).
    ca: Option<Vec<X509>>,
    /// Read again for every verification, so a refreshed CRL file counts
    /// without a reload.
    crl_files: Vec<PathBuf>,
}

/// Why a certificate was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// Not acceptable: expired, unknown CA, revoked, …
    Bad(String),
    /// We could not judge (OpenSSL failed, a CRL file vanished).
    Internal(String),
}

impl TrustStore {
    /// Loads `ca_file` (or selects the system store) and checks that every
    /// CRL file parses, so that mistakes show at start-up and on reload.
    pub fn load(config: &TlsConfig) -> Result<Self, TrustStoreError> {
        let ca = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| TrustStoreError::Read {
                    path: path.clone(),
                    source,
                })?;
                let certs = X509::stack_from_pem(&pem).unwrap_or_default();
                if certs.is_empty() {
                    return Err(TrustStoreError::NoCertificates { path: path.clone() });
                }
                Some(certs)
            }
            None => None,
        };
        for path in &config.crl_files {
            let pem = std::fs::read(path).map_err(|source| TrustStoreError::ReadCrl {
                path: path.clone(),
                source,
            })?;
            X509Crl::from_pem(&pem).map_err(|source| TrustStoreError::BadCrl {
                path: path.clone(),
                source,
            })?;
        }
        Ok(Self {
            ca,
            crl_files: config.crl_files.clone(),
        })
    }

    /// The store for one verification at `now`. `for_peer`: the leaf must
    /// be fit for a TLS server (not set for the OCSP signer, a CA).
    fn store(&self, now: i64, crl_check: bool, for_peer: bool) -> Result<X509Store, ErrorStack> {
        let mut b = X509StoreBuilder::new()?;
        match &self.ca {
            Some(certs) => {
                for c in certs {
                    b.add_cert(c.clone())?;
                }
            }
            None => b.set_default_paths()?,
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(now);
        b.set_param(&param)?;
        if for_peer {
            b.set_purpose(X509PurposeId::SSL_SERVER)?;
        }
        if crl_check {
            let lookup = b.add_lookup(X509Lookup::file())?;
            for f in &self.crl_files {
                lookup.load_crl_file(f, SslFiletype::PEM)?;
            }
            b.set_flags(X509VerifyFlags::CRL_CHECK)?;
        }
        Ok(b.build())
    }

    /// Verifies `chain` (leaf first) at time `now` (seconds since the
    /// epoch): trusted CA, dates, CRLs, and a stapled OCSP response when
    /// given. Returns the verified chain (leaf … root).
    pub fn verify(
        &self,
        chain: &[X509],
        ocsp: Option<&[u8]>,
        now: i64,
    ) -> Result<Vec<X509>, CertProblem> {
        let internal = |e: ErrorStack| CertProblem::Internal(format!("OpenSSL: {e}"));
        let Some(leaf) = chain.first() else {
            return Err(CertProblem::Bad("no certificate presented".into()));
        };
        let mut untrusted = Stack::new().map_err(internal)?;
        for c in &chain[1..] {
            untrusted.push(c.clone()).map_err(internal)?;
        }
        let with_crls = !self.crl_files.is_empty();
        let mut outcome = self
            .run(leaf, &untrusted, now, with_crls)
            .map_err(internal)?;
        if let Err(e) = &outcome {
            // CRLs are "when configured": no (current) CRL for this CA is
            // no revocation information, not a reason to refuse.
            if with_crls
                && matches!(
                    e.as_raw(),
                    ERR_UNABLE_TO_GET_CRL | ERR_CRL_NOT_YET_VALID | ERR_CRL_HAS_EXPIRED
                )
            {
                if e.as_raw() != ERR_UNABLE_TO_GET_CRL {
                    warn!(
                        "tls.crl_files: {}; verifying without CRLs",
                        e.error_string()
                    );
                }
                outcome = self.run(leaf, &untrusted, now, false).map_err(internal)?;
            }
        }
        let verified = outcome.map_err(|e| CertProblem::Bad(describe(e)))?;
        if let Some(der) = ocsp {
            let store = self.store(now, false, false).map_err(internal)?;
            match stapled_status(der, &verified, &store) {
                Ok(true) => {
                    return Err(CertProblem::Bad(
                        "certificate revoked by stapled OCSP response".into(),
                    ))
                }
                Ok(false) => {}
                Err(why) => debug!("stapled OCSP response ignored: {why}"),
            }
        }
        Ok(verified)
    }

    fn run(
        &self,
        leaf: &X509,
        untrusted: &Stack<X509>,
        now: i64,
        crl_check: bool,
    ) -> Result<Result<Vec<X509>, X509VerifyResult>, ErrorStack> {
        let store = self.store(now, crl_check, true)?;
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, leaf, untrusted, |c| {
            if c.verify_cert()? {
                let chain = c
                    .chain()
                    .map(|s| s.iter().map(|x| x.to_owned()).collect())
                    .unwrap_or_default();
                Ok(Ok(chain))
            } else {
                Ok(Err(c.error()))
            }
        })
    }
}

/// The reason words for a verification error.
fn describe(e: X509VerifyResult) -> String {
    match e.as_raw() {
        ERR_CERT_HAS_EXPIRED => "certificate expired".into(),
        ERR_CERT_NOT_YET_VALID => "certificate not yet valid".into(),
        ERR_DEPTH_ZERO_SELF_SIGNED_CERT | ERR_SELF_SIGNED_CERT_IN_CHAIN => {
            "self-signed certificate".into()
        }
        ERR_UNABLE_TO_GET_ISSUER_CERT
        | ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE => "certificate not signed by a trusted CA".into(),
        ERR_CERT_REVOKED => "certificate revoked by CRL".into(),
        _ => format!("certificate not accepted: {}", e.error_string()),
    }
}

/// Does the stapled response say the leaf is revoked? `Err` when the
/// response cannot be used (unsigned by the CA, stale, not about this
/// certificate): then it tells nothing, as if none had been stapled.
fn stapled_status(der: &[u8], verified: &[X509], store: &X509Store) -> Result<bool, String> {
    let (Some(leaf), Some(issuer)) = (verified.first(), verified.get(1)) else {
        return Err("no issuer in the chain".into());
    };
    let resp = OcspResponse::from_der(der).map_err(|e| e.to_string())?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(format!("response status {}", resp.status().as_raw()));
    }
    let basic = resp.basic().map_err(|e| e.to_string())?;
    let mut certs = Stack::new().map_err(|e| e.to_string())?;
    for c in &verified[1..] {
        certs.push(c.clone()).map_err(|e| e.to_string())?;
    }
    basic
        .verify(&certs, store, OcspFlag::empty())
        .map_err(|e| format!("signature: {e}"))?;
    let id =
        OcspCertId::from_cert(MessageDigest::sha1(), leaf, issuer).map_err(|e| e.to_string())?;
    let status = basic.find_status(&id).ok_or("not about this certificate")?;
    status
        .check_validity(300, None)
        .map_err(|e| format!("stale: {e}"))?;
    Ok(status.status == OcspCertStatus::REVOKED)
}

/// The DNS names a certificate is for: its subjectAltName dNSNames, or its
/// subject CN when it has none (RFC 6125 §6.4.4).
pub fn cert_names(cert: &X509Ref) -> Vec<String> {
    let sans: Vec<String> = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if !sans.is_empty() {
        return sans;
    }
    subject_cn(cert)
        .map(|cn| cn.to_ascii_lowercase())
        .into_iter()
        .collect()
}

fn subject_cn(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// Does certificate name `pattern` cover `host`? Case-insensitive; a `*`
/// may stand for exactly one whole left-most label (RFC 6125 §6.4.3).
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(parent) => {
            parent.contains('.')
                && host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        }
        None => pattern == host,
    }
}

/// What the conversation with the client's SMTP port produced.
enum Conversation {
    Presented {
        chain: Vec<X509>,
        ocsp: Option<Vec<u8>>,
        version: String,
    },
    NoStartTls(String),
    Refused(String),
    Failed(String),
}

/// Probes clients; shared by all transactions (one cache, one semaphore).
pub struct Prober {
    trust: Arc<TrustStore>,
    connector: SslConnector,
    cache: Cache<(IpAddr, String), ProbeOutcome>,
    permits: Arc<Semaphore>,
    port: u16,
    timeout: Duration,
    /// Our name in `EHLO`.
    ehlo_name: String,
}

struct OutcomeExpiry;

impl Expiry<(IpAddr, String), ProbeOutcome> for OutcomeExpiry {
    fn expire_after_create(
        &self,
        _: &(IpAddr, String),
        v: &ProbeOutcome,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(match v {
            ProbeOutcome::Verified { .. } => PASS_TTL,
            ProbeOutcome::NoStartTls(_) | ProbeOutcome::BadCertificate(_) => FAIL_TTL,
            ProbeOutcome::TempError(_) => TEMP_TTL,
        })
    }
}

impl Prober {
    pub fn new(config: &TlsConfig, ehlo_name: &str) -> Result<Self, TrustStoreError> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // We verify the chain ourselves, after the handshake, to say why.
        b.set_verify(SslVerifyMode::NONE);
        Ok(Self {
            trust: Arc::new(TrustStore::load(config)?),
            connector: b.build(),
            cache: Cache::builder()
                .max_capacity(CACHE_SIZE)
                .expire_after(OutcomeExpiry)
                .build(),
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
            let conversation = converse(&connector, addr, &ehlo, sni.as_deref(), deadline);
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

fn is_dns_name(s: &str) -> bool {
    s.contains('.') && s.parse::<IpAddr>().is_err() && !s.starts_with('[')
}

/// PTR names of `ip` that resolve back to it (the first two, as iprev
/// does). `Err` when DNS failed temporarily and nothing was confirmed.
async fn confirmed_ptr_names(dns: &Dns, ip: IpAddr) -> Result<Vec<String>, String> {
    let auth = &dns.authenticator;
    let ptrs = match auth.ptr_lookup(ip, dns.caches.ptr()).await {
        Ok(set) => set.records.clone(),
        Err(AuthError::Dns(DnsError::RecordNotFound(_))) => return Ok(Vec::new()),
        Err(e) => return Err(format!("PTR lookup for {ip} failed: {e}")),
    };
    let mut confirmed = Vec::new();
    let mut failed = None;
    for host in ptrs.iter().take(2) {
        let found = match ip {
            IpAddr::V4(v4) => auth
                .ipv4_lookup(host.as_ref(), dns.caches.ipv4())
                .await
                .map(|s| s.records.contains(&v4)),
            IpAddr::V6(v6) => auth
                .ipv6_lookup(host.as_ref(), dns.caches.ipv6())
                .await
                .map(|s| s.records.contains(&v6)),
        };
        match found {
            Ok(true) => confirmed.push(host.trim_end_matches('.').to_ascii_lowercase()),
            Ok(false) | Err(AuthError::Dns(DnsError::RecordNotFound(_))) => {}
            Err(e) => failed = Some(format!("lookup of {host} failed: {e}")),
        }
    }
    match failed {
        Some(why) if confirmed.is_empty() => Err(why),
        _ => Ok(confirmed),
    }
}

/// Banner, `EHLO`, `STARTTLS`, handshake, `QUIT` — blocking, every read
/// and write bounded by `deadline`.
fn converse(
    connector: &SslConnector,
    addr: SocketAddr,
    ehlo: &str,
    sni: Option<&str>,
    deadline: Instant,
) -> Conversation {
    let at = format!("{} port {}", addr.ip(), addr.port());
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let stream = match TcpStream::connect_timeout(&addr, left()) {
        Ok(s) => s,
        Err(e) => return Conversation::Failed(format!("cannot connect to {at}: {e}")),
    };
    let timeouts = |s: &TcpStream| {
        s.set_read_timeout(Some(left()))
            .and_then(|()| s.set_write_timeout(Some(left())))
    };
    if let Err(e) = timeouts(&stream) {
        return Conversation::Failed(format!("{at}: {e}"));
    }
    let mut reader = BufReader::new(stream);
    let io = |what: &str, e: std::io::Error| Conversation::Failed(format!("{at}: {what}: {e}"));

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
        return Conversation::NoStartTls(format!("{at} does not offer STARTTLS"));
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
            Conversation::NoStartTls(format!("{at} refused STARTTLS with {code}"))
        } else {
            Conversation::Failed(format!("{at} answered STARTTLS with {code}"))
        };
    }
    // Anything sent before the handshake is an injection attempt.
    if !reader.buffer().is_empty() {
        return Conversation::Failed(format!("{at} sent data before the TLS handshake"));
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
        Err(e) => return Conversation::Failed(format!("OpenSSL: {e}")),
    };
    let mut tls = match ssl.connect(stream) {
        Ok(s) => s,
        Err(e) => return Conversation::Failed(format!("TLS handshake with {at} failed: {e}")),
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

fn refused(at: &str, stage: &str, code: u16) -> Conversation {
    let why = format!("{at} answered our probe's {stage} with {code}");
    if code / 100 == 5 {
        Conversation::Refused(why)
    } else {
        Conversation::Failed(why)
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
    fn wildcards_cover_one_label() {
        assert!(name_matches("mail.example.com", "MAIL.example.com."));
        assert!(name_matches("*.example.com", "mail.example.com"));
        assert!(!name_matches("*.example.com", "a.mail.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("mail.example.com", "mail.example.org"));
    }

    #[test]
    fn reads_multiline_replies() {
        let mut r = BufReader::new(&b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"[..]);
        let (code, lines) = read_reply(&mut r).unwrap();
        assert_eq!(code, 250);
        assert_eq!(lines, ["mx.test", "PIPELINING", "STARTTLS"]);
        let mut r = BufReader::new(&b"hello\r\n"[..]);
        assert!(read_reply(&mut r).is_err());
    }
}
