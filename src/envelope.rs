//! The SMTP envelope of one transaction and the identity `D` it names.

use std::net::IpAddr;

/// What the checks know about the SMTP side of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The client's address; `None` when the MTA did not say (local pickup).
    pub client_ip: Option<IpAddr>,
    /// The HELO/EHLO argument as given.
    pub helo: String,
    /// The MAIL FROM address without angle brackets; empty for `<>`.
    pub mail_from: String,
    /// What the MTA's TLS macros said about the session.
    pub tls: TlsEvidence,
}

/// The MTA's TLS macros, as given (empty values are dropped). Postfix sends
/// `{cert_subject}`/`{cert_issuer}` only for a client certificate it
/// verified; Sendmail sends them for any certificate and says in `{verify}`
/// whether it verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsEvidence {
    /// `{tls_version}`, e.g. `TLSv1.3`; `None` = the session is plaintext.
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub cipher_bits: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    /// Sendmail's `{verify}`: `OK`, `NO`, `NOT`, `FAIL`, `NONE`, `TEMP`, …
    pub verify: Option<String>,
    /// The client's TCP port: with its address, the session's key in the
    /// Postfix policy companion's records ([`crate::policy`]).
    pub client_port: Option<u16>,
}

impl TlsEvidence {
    /// Builds the evidence from a macro lookup (`name` → value), e.g. the
    /// milter's macros or `evaluate`'s flags.
    pub fn from_macros(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            version: get("{tls_version}"),
            cipher: get("{cipher}"),
            cipher_bits: get("{cipher_bits}"),
            cert_subject: get("{cert_subject}"),
            cert_issuer: get("{cert_issuer}"),
            verify: get("{verify}"),
            client_port: None,
        }
    }
}

/// The domain part of the envelope sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderDomain {
    /// A domain name, lower-cased, without a trailing dot.
    Domain(String),
    /// `user@[192.0.2.1]` or `user@[IPv6:2001:db8::1]`.
    IpLiteral(String),
    /// No domain at all (`user`, or `<>` with an unusable HELO name).
    Missing,
}

impl SenderDomain {
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Domain(d) => Some(d),
            _ => None,
        }
    }
}

impl Envelope {
    /// `D`: the MAIL FROM domain, or for the null sender the HELO name (as
    /// SPF does, RFC 7208 §2.4).
    pub fn sender_domain(&self) -> SenderDomain {
        if self.mail_from.is_empty() {
            return classify(&self.helo);
        }
        match self.mail_from.rsplit_once('@') {
            Some((_, domain)) => classify(domain),
            None => SenderDomain::Missing,
        }
    }
}

fn classify(domain: &str) -> SenderDomain {
    let domain = domain.trim().trim_end_matches('.');
    if domain.starts_with('[') && domain.ends_with(']') {
        return SenderDomain::IpLiteral(domain.into());
    }
    // A bare address as HELO name is an IP literal too, just not bracketed.
    if domain.parse::<IpAddr>().is_ok() {
        return SenderDomain::IpLiteral(domain.into());
    }
    domain_name(domain).map_or(SenderDomain::Missing, SenderDomain::Domain)
}

/// A domain as the checks know `D`: `Example.ORG.` → `example.org`; `None`
/// for an IP address or anything that is not a DNS name of at least two
/// labels. keygen, sign, the signing keys and check-domain take domains
/// through this too, so that they accept exactly the domains whose mail
/// the checks can accept.
pub(crate) fn domain_name(s: &str) -> Option<String> {
    let d = s.trim().trim_end_matches('.');
    (d.parse::<IpAddr>().is_err() && is_domain_name(d)).then(|| d.to_ascii_lowercase())
}

/// A syntactically plausible DNS name with at least two labels.
fn is_domain_name(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Extracts the address from a MAIL FROM argument as the MTA passes it:
/// `<user@example.com>`, `<>`, a source route `<@a,@b:user@example.com>`,
/// or an address without brackets.
pub fn parse_mail_from(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(arg);
    // Drop an obsolete source route (RFC 5321 §4.1.2 "A-d-l").
    let inner = match inner.strip_prefix('@') {
        Some(_) => inner.split_once(':').map_or("", |(_, rest)| rest),
        None => inner,
    };
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(mail_from: &str, helo: &str) -> SenderDomain {
        Envelope {
            client_ip: None,
            helo: helo.into(),
            mail_from: parse_mail_from(mail_from),
            tls: TlsEvidence::default(),
        }
        .sender_domain()
    }

    #[test]
    fn sender_domain() {
        let d = |s: &str| SenderDomain::Domain(s.into());
        assert_eq!(domain("<a@Example.COM>", "h.test"), d("example.com"));
        assert_eq!(domain("<\"a@b\"@example.com>", "h"), d("example.com"));
        assert_eq!(domain("<@relay.test:a@example.com>", "h"), d("example.com"));
        assert_eq!(domain("<>", "mail.example.net"), d("mail.example.net"));
        assert_eq!(
            domain("<>", "[192.0.2.1]"),
            SenderDomain::IpLiteral("[192.0.2.1]".into())
        );
        assert_eq!(
            domain("<a@[192.0.2.1]>", "h"),
            SenderDomain::IpLiteral("[192.0.2.1]".into())
        );
        assert_eq!(
            domain("<a@[IPv6:2001:db8::1]>", "h"),
            SenderDomain::IpLiteral("[IPv6:2001:db8::1]".into())
        );
        assert_eq!(domain("<postmaster>", "h"), SenderDomain::Missing);
        assert_eq!(domain("<a@localhost>", "h"), SenderDomain::Missing);
        assert_eq!(domain("<a@exa mple.com>", "h"), SenderDomain::Missing);
    }

    #[test]
    fn domain_names() {
        assert_eq!(
            domain_name(" Example.ORG. ").as_deref(),
            Some("example.org")
        );
        for bad in [
            "",
            "localhost",
            "exa mple.org",
            "-a.test",
            "a..test",
            "192.0.2.1",
        ] {
            assert_eq!(domain_name(bad), None, "{bad:?}");
        }
    }
}
