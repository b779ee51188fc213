//! The TLS check's guidance: how the sending server shows who runs it.

use super::evidence::EvidenceSet;
use crate::checks::{Failure, Guidance, Sender};
use crate::config::Evidence;

pub(super) const GUIDANCE: Guidance = Guidance {
    keys: &["tls"],
    key: |failure| match failure {
        Failure::NoTls | Failure::NoStartTls | Failure::BadCertificate | Failure::NoEvidence(_) => {
            Some("tls")
        }
        _ => None,
    },
    text: lines,
};

/// The built-in guidance for a TLS failure.
fn lines(failure: Failure, s: &Sender<'_>) -> Vec<String> {
    let ip = s.ip_text();
    let helo = s.helo_text();
    match failure {
        Failure::NoTls => vec![
            format!("Your server {helo} ({ip}) sent this message without encryption."),
            "Use STARTTLS when sending (Postfix: smtp_tls_security_level = may), and".into(),
            format!("offer STARTTLS on {ip} with a certificate from a trusted CA for {helo}."),
        ],
        Failure::NoStartTls => vec![
            format!("We check your server's certificate by connecting to {ip}: no STARTTLS."),
            format!("Offer STARTTLS there with a certificate from a trusted CA for {helo}"),
            "(Postfix: smtpd_tls_cert_file, smtpd_tls_key_file, \
             smtpd_tls_security_level = may)."
                .into(),
        ],
        Failure::BadCertificate => vec![
            format!("We checked the certificate your server {ip} shows (the finding is above)."),
            format!(
                "Install an unexpired certificate from a trusted CA, with its full chain, \
                 for {helo}"
            ),
            format!("(your HELO name) or for the name that {ip} resolves to."),
        ],
        Failure::NoEvidence(accepted) => no_evidence(accepted, s),
        _ => Vec::new(),
    }
}

/// Nothing proved who runs the sending server: one line per accepted kind
/// of evidence, each a way to meet it (at most four lines).
fn no_evidence(accepted: EvidenceSet, s: &Sender<'_>) -> Vec<String> {
    let (d, ip, helo) = (s.domain_or_placeholder(), s.ip_text(), s.helo_text());
    let mut lines = vec![format!(
        "Nothing shows who runs your server {helo} ({ip}). Any one of these will:"
    )];
    if accepted.contains(Evidence::MtaVerified) {
        lines.push(
            "- present a client certificate from a trusted CA when sending \
             (Postfix: smtp_tls_cert_file, smtp_tls_key_file);"
                .into(),
        );
    }
    if accepted.contains(Evidence::SenderDomain) {
        lines.push(format!(
            "- let SPF of {d} authorise {ip}, and give the MX hosts of {d} certificates from \
             a trusted CA for their names (or publish an MTA-STS policy in enforce mode);"
        ));
    }
    if accepted.contains(Evidence::Probe) {
        lines.push(format!(
            "- offer STARTTLS on {ip} port 25 with a certificate from a trusted CA for {helo}."
        ));
    }
    lines
}
