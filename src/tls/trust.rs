//! The trust decision: does a certificate chain lead to a trusted CA, is it
//! within its dates, not revoked by a configured CRL or by a stapled OCSP
//! response? Functions of their inputs with the clock passed in, so tests
//! can move time.

use super::outcome::{ProbeKind, Problem};
use crate::config::TlsConfig;
use openssl::{
    asn1::Asn1Time,
    error::ErrorStack,
    hash::MessageDigest,
    ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus},
    ssl::SslFiletype,
    stack::Stack,
    x509::{
        store::{X509Lookup, X509Store, X509StoreBuilder},
        verify::{X509VerifyFlags, X509VerifyParam},
        X509Crl, X509PurposeId, X509StoreContext, X509VerifyResult, X509,
    },
};
use std::path::PathBuf;
use tracing::{debug, warn};

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
    /// Not acceptable: expired, unknown CA, revoked, … (named).
    Bad(Problem),
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
            return Err(CertProblem::Bad(Problem::new(
                ProbeKind::BadCertificate,
                "no certificate presented",
            )));
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
        let verified = outcome.map_err(|e| CertProblem::Bad(describe_for(e, leaf, now)))?;
        if let Some(der) = ocsp {
            let store = self.store(now, false, false).map_err(internal)?;
            match stapled_status(der, &verified, &store) {
                Ok(true) => {
                    return Err(CertProblem::Bad(Problem::new(
                        ProbeKind::Revoked,
                        "certificate revoked by stapled OCSP response",
                    )))
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

/// [`describe`], with the date when the sender's own certificate expired
/// (what the sender needs to see to renew it).
fn describe_for(e: X509VerifyResult, leaf: &X509, now: i64) -> Problem {
    let leaf_expired = e.as_raw() == ERR_CERT_HAS_EXPIRED
        && Asn1Time::from_unix(now).is_ok_and(|now| leaf.not_after() < now);
    if leaf_expired {
        Problem::new(
            ProbeKind::Expired,
            format!("certificate expired on {}", leaf.not_after()),
        )
    } else {
        describe(e)
    }
}

/// The kind and reason words for a verification error.
fn describe(e: X509VerifyResult) -> Problem {
    let (kind, text) = match e.as_raw() {
        ERR_CERT_HAS_EXPIRED => (ProbeKind::Expired, "certificate expired".into()),
        ERR_CERT_NOT_YET_VALID => (
            ProbeKind::BadCertificate,
            "certificate not yet valid".into(),
        ),
        ERR_DEPTH_ZERO_SELF_SIGNED_CERT | ERR_SELF_SIGNED_CERT_IN_CHAIN => {
            (ProbeKind::SelfSigned, "self-signed certificate".into())
        }
        ERR_UNABLE_TO_GET_ISSUER_CERT
        | ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE => (
            ProbeKind::UntrustedCa,
            "certificate not signed by a trusted CA".into(),
        ),
        ERR_CERT_REVOKED => (ProbeKind::Revoked, "certificate revoked by CRL".into()),
        _ => (
            ProbeKind::BadCertificate,
            format!("certificate not accepted: {}", e.error_string()),
        ),
    };
    Problem::new(kind, text)
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
