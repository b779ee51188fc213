//! ARC sealing as a mailing list or forwarder does it (mail-auth's sealer
//! with a key made in code), and what a list does to a message.
#![allow(dead_code)]

use mail_auth::{
    arc::ArcSealer,
    crypto::{RsaKey, Sha256},
    headers::HeaderWriter,
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult,
};
use openssl::{pkey::PKey, rsa::Rsa};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// An RSA sealing key of a list and the DKIM record publishing it (at
/// `arc._domainkey.DOMAIN`: the sealer uses selector `arc`).
pub struct SealKey {
    pkcs8: Vec<u8>,
    pub record: String,
}

impl SealKey {
    pub fn new() -> Self {
        Self::rsa(2048)
    }

    pub fn rsa(bits: u32) -> Self {
        let pkey = PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey");
        let spki = pkey.public_key_to_der().expect("spki");
        Self {
            pkcs8: pkey.private_key_to_pkcs8().expect("pkcs8"),
            record: format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&spki)),
        }
    }

    /// The private key as PEM (PKCS#8), for an `[arc] key_file`.
    pub fn pem(&self) -> String {
        let pkey = PKey::private_key_from_pkcs8(&self.pkcs8).expect("pkcs8");
        let pem = pkey.private_key_to_pem_pkcs8().expect("pem");
        String::from_utf8_lossy(&pem).into_owned()
    }

    /// `message` with an ARC set by `domain` (selector `arc`) recording
    /// `results` in front: the first set (`cv=none`), or one on top of the
    /// chain `message` carries, which the caller vouches is valid
    /// (`cv=pass`).
    pub fn seal(&self, message: &str, domain: &str, results: &str) -> String {
        let signed = ["From", "To", "Subject", "Date", "Message-ID"].map(String::from);
        self.seal_signing(message, domain, results, &signed)
    }

    /// Like [`seal`](Self::seal), the `ARC-Message-Signature` over the
    /// header names `signed` (present or not).
    pub fn seal_signing(
        &self,
        message: &str,
        domain: &str,
        results: &str,
        signed: &[String],
    ) -> String {
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()));
        let key = RsaKey::<Sha256>::from_key_der(der).expect("rsa key");
        let parsed = AuthenticatedMessage::parse(message.as_bytes()).expect("parse");
        let chain = ArcOutput::validated(&parsed, DkimResult::Pass);
        // mail-auth writes the authserv-id verbatim: the recorded results
        // ride along after it (single spaces survive relaxed
        // canonicalisation unchanged).
        let authserv = format!("{domain}; {results}");
        let ar = AuthenticationResults::new(&authserv);
        let set = ArcSealer::from_key(key)
            .domain(domain)
            .selector("arc")
            .headers(signed.iter().map(String::as_str))
            .seal(&parsed, &ar, &chain)
            .expect("seal");
        format!("{}{message}", set.to_header())
    }
}

/// What a list does to a message: a subject tag and a footer.
pub fn list_rewrite(message: &str) -> String {
    message.replace(
        "Subject: Quarterly report",
        "Subject: [team] Quarterly report",
    ) + "\r\n-- \r\nteam mailing list\r\n"
}

/// `message` sealed `n` times: by `a1.test` … `a{n-1}.test`, then by
/// `last` recording `results` (every set with `key`, selector `arc`).
pub fn chain(key: &SealKey, message: &str, n: usize, last: &str, results: &str) -> String {
    padded_chain(key, message, n, last, results, 0)
}

/// Like [`chain`], each `ARC-Authentication-Results` padded with a comment
/// of `pad` octets.
pub fn padded_chain(
    key: &SealKey,
    message: &str,
    n: usize,
    last: &str,
    results: &str,
    pad: usize,
) -> String {
    let padding = if pad == 0 {
        String::new()
    } else {
        format!(" ({})", "p".repeat(pad))
    };
    let mut sealed = message.to_string();
    for i in 1..n {
        sealed = key.seal(&sealed, &format!("a{i}.test"), &format!("none{padding}"));
    }
    key.seal(&sealed, last, &format!("{results}{padding}"))
}
