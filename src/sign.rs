//! Outbound signing for the operator's own domains: private keys loaded
//! from `[signing] domains`, and the mailkey `DKIM-Signature` they make.
//!
//! A mailkey signature is an ordinary DKIM signature with `s=mailkey` and
//! `d=D`, relaxed/relaxed. Keys are read once (at start and on reload), so
//! a broken key file is reported then and never in the middle of a message.

use crate::{
    config::SigningConfig,
    dns::fqdn,
    protocol::{KeyType, SELECTOR},
};
use mail_auth::{
    crypto::{Algorithm, DkimKey, Ed25519Key, HashOutput, RsaKey, Sha256},
    dkim::DkimSigner,
    headers::{HeaderWriter, Writable},
};
use openssl::pkey::{Id, PKey, Private};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// The header field name.
pub const HEADER: &str = "DKIM-Signature";
/// The shortest RSA key we sign with. Verifiers accept 1024 bits, but
/// RFC 8301 asks signers for 2048, and the crypto backend (aws-lc) refuses
/// to sign with shorter keys: say so at start, not as a backend error.
pub(crate) const MIN_SIGNING_RSA_BITS: u32 = 2048;

/// Header fields signed when present, in this order (RFC 6376 §5.4.1).
/// Absent ones are not signed as empty: an MTA after us may legitimately add
/// a missing `Date` or `Message-ID`, and that must not break the signature.
pub(crate) const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
];

/// Why a key file cannot be used, or a message cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: cannot read the key file for {domain}: {source}")]
    Read {
        domain: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the key file for {domain} is not usable: {reason}")]
    Key {
        domain: String,
        path: PathBuf,
        reason: String,
    },
    #[error("signing domain {0:?} is not a domain name")]
    BadDomain(String),
    #[error("the message has no From header field, which a signature must cover")]
    NoFrom,
    #[error("signing failed: {0}")]
    Crypto(String),
}

/// A private key loaded from a file, ready to sign for one domain.
pub struct DomainKey {
    pub domain: String,
    pub path: PathBuf,
    pub key_type: KeyType,
    /// The public half as published in `p=`: the raw 32 bytes for Ed25519,
    /// SubjectPublicKeyInfo DER for RSA.
    pub public: Vec<u8>,
    key: Arc<DkimKey>,
}

impl fmt::Debug for DomainKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DomainKey({}, {}, {})",
            self.domain,
            self.key_type,
            self.path.display()
        )
    }
}

impl DomainKey {
    /// Reads a PEM private key (PKCS#8, or traditional RSA) for `domain`.
    pub fn load(domain: &str, path: &Path) -> Result<Self, SignError> {
        let domain = normalise_domain(domain)?;
        let pem = std::fs::read(path).map_err(|source| SignError::Read {
            domain: domain.clone(),
            path: path.into(),
            source,
        })?;
        let bad = |reason: String| SignError::Key {
            domain: domain.clone(),
            path: path.into(),
            reason,
        };
        let pkey = PKey::private_key_from_pem(&pem)
            .map_err(|_| bad("not a PEM private key (PKCS#8 or RSA)".into()))?;
        Self::from_pkey(&domain, path, &pkey).map_err(bad)
    }

    /// Wraps an OpenSSL private key (also used by `keygen` to check what it
    /// wrote).
    pub(crate) fn from_pkey(
        domain: &str,
        path: &Path,
        pkey: &PKey<Private>,
    ) -> Result<Self, String> {
        let pkcs8 = pkey
            .private_key_to_pkcs8()
            .map_err(|e| format!("cannot encode the key: {e}"))?;
        let (key_type, public, key) = match pkey.id() {
            Id::ED25519 => {
                let public = pkey
                    .raw_public_key()
                    .map_err(|e| format!("cannot read the Ed25519 public key: {e}"))?;
                let key = Ed25519Key::from_pkcs8_der(&pkcs8)
                    .map_err(|e| format!("Ed25519 key rejected: {e}"))?;
                (KeyType::Ed25519, public, DkimKey::Ed25519(key))
            }
            Id::RSA => {
                let bits = pkey.bits();
                if bits < MIN_SIGNING_RSA_BITS {
                    return Err(format!(
                        "RSA key of {bits} bits; signing keys need at least {MIN_SIGNING_RSA_BITS} bits (RFC 8301)"
                    ));
                }
                let public = pkey
                    .public_key_to_der()
                    .map_err(|e| format!("cannot encode the RSA public key: {e}"))?;
                let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
                let key = RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| format!("RSA key rejected: {e}"))?;
                (KeyType::Rsa { bits }, public, DkimKey::Rsa(key))
            }
            other => {
                return Err(format!(
                    "unsupported key type {other:?}: allowed are Ed25519 and RSA"
                ))
            }
        };
        Ok(Self {
            domain: domain.into(),
            path: path.into(),
            key_type,
            public,
            key: Arc::new(key),
        })
    }

    /// The private key itself, for a signer that must own it (mail-auth's
    /// DKIM2 signer); `None` while another signer shares it.
    pub(crate) fn into_dkim_key(self) -> Option<DkimKey> {
        Arc::try_unwrap(self.key).ok()
    }

    /// The key as mail-auth signs with it (ARC sealing reuses it).
    pub(crate) fn signing_key(&self) -> SharedKey {
        SharedKey(self.key.clone())
    }

    /// The DKIM-Signature for `message` (CRLF line ends), as a header field
    /// value without the name: it starts with a space, continuation lines
    /// are folded with CRLF + TAB, and there is no final CRLF.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignError> {
        let headers = headers_to_sign(message);
        if !headers.iter().any(|h| h.eq_ignore_ascii_case("From")) {
            return Err(SignError::NoFrom);
        }
        let signature = DkimSigner::from_key(SharedKey(self.key.clone()))
            .domain(self.domain.as_str())
            .selector(SELECTOR)
            .headers(headers)
            .sign(message)
            .map_err(|e| SignError::Crypto(e.to_string()))?;
        let header = signature.to_header();
        let value = header
            .strip_prefix("DKIM-Signature:")
            .unwrap_or(&header)
            .trim_end_matches("\r\n");
        Ok(value.to_string())
    }
}

/// The names to put into `h=`: each field of [`SIGNED_HEADERS`] the message
/// has, and `From` once more, so that a second `From` added later breaks
/// the signature (oversigning).
pub(crate) fn headers_to_sign(message: &[u8]) -> Vec<String> {
    let present = header_names(message);
    let mut names: Vec<String> = SIGNED_HEADERS
        .iter()
        .filter(|h| present.iter().any(|p| p.eq_ignore_ascii_case(h)))
        .map(|h| h.to_string())
        .collect();
    if names.first().is_some_and(|h| h == "From") {
        names.push("From".into());
    }
    names
}

/// The names of the header fields of `message`, up to the empty line.
fn header_names(message: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            names.push(String::from_utf8_lossy(&line[..colon]).trim().to_string());
        }
    }
    names
}

/// `Example.ORG.` → `example.org`; anything the checks would not take as a
/// sender domain is an error.
pub(crate) fn normalise_domain(domain: &str) -> Result<String, SignError> {
    crate::envelope::domain_name(domain).ok_or_else(|| SignError::BadDomain(domain.into()))
}

/// One key shared by every signer that uses it (mail-auth's signers own
/// their key, and its keys cannot be cloned).
pub(crate) struct SharedKey(Arc<DkimKey>);

impl mail_auth::crypto::SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn hash(&self, data: impl Writable) -> HashOutput {
        self.0.hash(data)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

/// The signing keys of `[signing] domains`, by domain; the first entry for
/// a domain signs, the others are loaded only to be checked (rotation: the
/// next key is configured, and published, before it signs).
#[derive(Debug, Default)]
pub struct Signers {
    by_domain: HashMap<String, Vec<DomainKey>>,
}

impl Signers {
    /// Loads every configured key; the first broken one is the error.
    pub fn load(config: &SigningConfig) -> Result<Self, SignError> {
        let mut by_domain: HashMap<String, Vec<DomainKey>> = HashMap::new();
        for entry in &config.domains {
            let key = DomainKey::load(&entry.domain, &entry.key_file)?;
            by_domain.entry(key.domain.clone()).or_default().push(key);
        }
        Ok(Self { by_domain })
    }

    /// The key that signs for `domain`, if the domain is configured.
    pub(crate) fn for_domain(&self, domain: &str) -> Option<&DomainKey> {
        let name = fqdn(domain);
        let name = name.trim_end_matches('.');
        self.by_domain.get(name).and_then(|keys| keys.first())
    }

    /// Every loaded key, for the start-up log.
    pub fn keys(&self) -> impl Iterator<Item = &DomainKey> {
        self.by_domain.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_present_headers_and_oversigns_from() {
        let msg =
            b"From: a@x.test\r\nSubject: hi\r\n folded\r\nX-Other: 1\r\n\r\nTo: not a header\r\n";
        assert_eq!(headers_to_sign(msg), ["From", "Subject", "From"]);
    }

    #[test]
    fn domain_names_are_checked() {
        assert_eq!(normalise_domain("Example.ORG.").unwrap(), "example.org");
        assert!(normalise_domain("exa mple.org").is_err());
        assert!(normalise_domain("").is_err());
    }

    #[test]
    fn signs_with_ed25519() {
        let pkey = PKey::generate_ed25519().unwrap();
        let key = DomainKey::from_pkey("x.test", Path::new("k.pem"), &pkey).unwrap();
        let value = key.sign(b"From: a@x.test\r\n\r\nhi\r\n").unwrap();
        assert!(
            value.starts_with(" v=1; a=ed25519-sha256; s=mailkey; d=x.test; c=relaxed/relaxed;")
        );
        assert!(value.contains("h=From:From;"), "{value}");
        assert!(!value.ends_with('\n'));
        assert!(matches!(
            key.sign(b"Subject: x\r\n\r\n"),
            Err(SignError::NoFrom)
        ));
    }
}
