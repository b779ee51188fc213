//! The probe's outcome taxonomy (docs/decisions.md, "Evidence ladder"):
//! every way a STARTTLS probe can end has a name, the word the log and the
//! report use, and one rule for whether it may change by itself. Only what
//! can change — a time-out, a `4xx` answer, DNS trouble, our own failure —
//! is temporary (`451 4.7.5`); a port nobody listens on, a server without
//! STARTTLS or with a bad certificate stays so until its operator acts,
//! and the sender is told so at once (`550 5.7.5`) instead of being
//! deferred for days.

use std::fmt;

/// How a probe (of a client, or of a domain's MX host) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// A trusted, valid certificate for the name.
    Verified,
    /// Nothing listens (connection refused, host or network unreachable),
    /// or the server refuses to talk to us (`5xx` banner or `EHLO`).
    NoListener,
    /// The server does not offer STARTTLS (or refuses it with `5xx`).
    NoStartTls,
    /// The TLS handshake failed (no common protocol or cipher).
    HandshakeFailed,
    Expired,
    SelfSigned,
    /// Not signed by a CA we trust.
    UntrustedCa,
    /// Revoked by a CRL or a stapled OCSP response.
    Revoked,
    /// Valid, but for other names.
    NameMismatch,
    /// Not acceptable for another reason (not yet valid, no certificate).
    BadCertificate,
    /// The probe did not finish in time (or found no slot in time).
    Timeout,
    /// Something that may pass: a `4xx` answer, a reset, DNS trouble while
    /// confirming a name, an internal error.
    Temporary,
}

impl ProbeKind {
    /// Every kind, in the report's order.
    pub(crate) const ALL: [ProbeKind; 12] = [
        Self::Verified,
        Self::NoListener,
        Self::NoStartTls,
        Self::HandshakeFailed,
        Self::Expired,
        Self::SelfSigned,
        Self::UntrustedCa,
        Self::Revoked,
        Self::NameMismatch,
        Self::BadCertificate,
        Self::Timeout,
        Self::Temporary,
    ];

    /// The word in the log line (`tls.probe`) and the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::NoListener => "no-listener",
            Self::NoStartTls => "no-starttls",
            Self::HandshakeFailed => "handshake-failed",
            Self::Expired => "expired",
            Self::SelfSigned => "self-signed",
            Self::UntrustedCa => "untrusted-ca",
            Self::Revoked => "revoked",
            Self::NameMismatch => "name-mismatch",
            Self::BadCertificate => "bad-certificate",
            Self::Timeout => "timeout",
            Self::Temporary => "temporary",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// May this outcome change by itself (defer, do not refuse)?
    pub(crate) const fn is_temporary(self) -> bool {
        matches!(self, Self::Timeout | Self::Temporary)
    }

    /// A certificate was shown and found wanting (what the sender fixes by
    /// installing a better one).
    pub(crate) fn is_bad_certificate(self) -> bool {
        matches!(
            self,
            Self::Expired
                | Self::SelfSigned
                | Self::UntrustedCa
                | Self::Revoked
                | Self::NameMismatch
                | Self::BadCertificate
        )
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe did not verify: its kind, and the words for the reply
/// (`certificate expired on …`, `cannot connect to …: Connection refused`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProbeKind,
    pub text: String,
}

impl Problem {
    pub fn new(kind: ProbeKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_only_time_outs_are_temporary() {
        for k in ProbeKind::ALL {
            assert_eq!(ProbeKind::parse(k.as_str()), Some(k));
        }
        let temporary: Vec<_> = ProbeKind::ALL
            .into_iter()
            .filter(|k| k.is_temporary())
            .collect();
        assert_eq!(temporary, [ProbeKind::Timeout, ProbeKind::Temporary]);
        assert!(!ProbeKind::NoListener.is_temporary());
    }
}
