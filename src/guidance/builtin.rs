//! The built-in guidance per failure kind: what went wrong in the sender's
//! terms and the one command or record that fixes it. Each text is at most
//! three reply lines, so that all four checks failing still fits 32 lines.

use super::Sender;
use crate::{
    checks::{mailkey::MAX_SIGNED_FIELDS, tls::evidence::EvidenceSet, Failure},
    config::Evidence,
    protocol::owner_name,
};

/// The guidance lines for `failure`.
pub fn lines(failure: Failure, s: &Sender<'_>) -> Vec<String> {
    let d = s.domain_or_placeholder();
    let key = owner_name(d);
    let ip = s.ip_text();
    let helo = s.helo_text();
    match failure {
        Failure::NoKey => vec![
            format!("{d} publishes no mailkey. To publish one and sign with it:"),
            format!("1. run: mailkey-milter keygen --domain {d} --out /etc/mailkey"),
            format!("2. publish the printed TXT record at {key}"),
            "3. sign outgoing mail with selector \"mailkey\" ([signing] of mailkey-milter, \
             or any DKIM signer)."
                .into(),
        ],
        Failure::BadKey => vec![
            format!("The TXT record at {key} holds no usable key. Replace it:"),
            format!(
                "run: mailkey-milter keygen --domain {d} --out /etc/mailkey and publish \
                 the printed record."
            ),
        ],
        Failure::NoSignature => vec![
            format!("{d} publishes a mailkey, but this message has no mailkey signature."),
            format!(
                "Sign outgoing mail with selector \"mailkey\" and d={d}, with the key \
                 published at {key}:"
            ),
            format!(
                "mailkey-milter: [signing] domains = [{{ domain = \"{d}\", key_file = \
                 \"/etc/mailkey/{d}.ed25519.pem\" }}] (or any DKIM signer)."
            ),
        ],
        Failure::RefusedSignature => vec![
            format!(
                "The mailkey signature of {d} is one this receiver refuses (the reason is above)."
            ),
            format!(
                "Sign with the key at {key}: a=ed25519-sha256 or rsa-sha256, without l=, \
                 covering From,"
            ),
            format!(
                "with at most {MAX_SIGNED_FIELDS} h= entries and no x= in the past \
                 (mailkey-milter [signing] signs so)."
            ),
        ],
        Failure::BodyChanged => vec![
            format!(
                "The body was changed after signing (a footer or a filter), so the \
                 signature of {d} no longer matches."
            ),
            format!("Sign last, with the key at {key}: add footers and run filters before it."),
        ],
        Failure::BadSignature => vec![
            format!(
                "The signature of {d} does not verify: signed headers were changed after \
                 signing, or the key is not the one at {key}."
            ),
            format!("Sign last, with the private key of the record published at {key}."),
        ],
        Failure::Spf => vec![
            format!("Your SPF record does not authorise {ip} (only an SPF pass is accepted)."),
            format!(
                "Add {} to the SPF record of {d}: \"v=spf1 {} ... -all\"",
                s.spf_term(),
                s.spf_term()
            ),
        ],
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
        Failure::NoMx => vec![
            format!("{d} has no MX record, so no one can answer its mail."),
            format!("Publish one: {d}. IN MX 10 mail.{d}. (a host that takes mail for {d})"),
        ],
        Failure::NullMx => vec![
            format!("{d} publishes a null MX (MX 0 .): it says it takes no mail."),
            format!("Replace it with a real one: {d}. IN MX 10 mail.{d}."),
        ],
        Failure::Dkim2Replay => vec![
            format!(
                "The DKIM2 signature of {d} on this message names another sender or other \
                 recipients, or is over 14 days old: it was resent without a DKIM2 hop."
            ),
            "A forwarder adds its own DKIM2 hop (mailkey-milter: [dkim2] forward = true); \
             a sender signs each message for the recipients it sends it to."
                .into(),
        ],
        Failure::Dkim2Changed => vec![
            "The message was changed after its newest DKIM2 signature (a footer, a subject \
             tag) and no hop recorded how."
                .into(),
            "The hop that changes it must add a Message-Instance with a recipe and its own \
             DKIM2 signature (mailkey-milter: [dkim2] forward = true), or sign after the change."
                .into(),
        ],
        Failure::Dkim2Broken => vec![
            format!("The DKIM2 chain of {d} does not verify (the finding is above)."),
            format!(
                "Publish each selector's key as one TXT record at SELECTOR._domainkey.{d}, \
                 and check: mailkey-milter check-domain {d} --key FILE"
            ),
        ],
        Failure::Dkim2Dsn => vec![
            "This bounce is about a message DKIM2-signed by us. We take such bounces only \
             DKIM2-signed by a domain the message was sent to,"
                .into(),
            "returning the message as it was sent (draft-ietf-dkim-dkim2-spec, DSNs): \
             sign your bounces with DKIM2, or do not send any for mail you did not get."
                .into(),
        ],
        Failure::IpLiteral => vec![
            "An address without a domain (user@[IP]) cannot be checked or answered.".into(),
            format!("Send from an address at your domain, with an MX: {d}. IN MX 10 mail.{d}."),
        ],
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
