//! The `sender-domain` rung: the session is encrypted (the caller's
//! condition), SPF passed for the sender domain `D`, and `D`'s own mail
//! servers are CA-certified — an MX host presents a valid certificate for
//! its name (or one its TLSA record names), or `D` publishes an MTA-STS
//! policy in `enforce` mode. The evidence that Gmail-hosted,
//! Microsoft-hosted and SES-using domains have (docs/decisions.md,
//! "Evidence ladder").

use crate::{
    checks::{spf, Inputs, Status},
    tls::{ServerFinding, MAX_MX_HOSTS},
};
use std::fmt;

/// What the rung found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An MX host of `D` has a CA certificate for its name.
    MxCertified,
    /// `D` publishes an MTA-STS policy in `enforce` mode.
    MtaSts,
    /// An MX host of `D` presents the certificate its TLSA record names.
    Dane,
    NoSpfPass,
    NotCertified,
    /// No sender domain (address literal, no domain).
    NoDomain,
    Temporary,
}

impl Outcome {
    /// Its word in the log (`tls.sender_domain`, see [`super::evidence`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MxCertified => "mx-certified",
            Self::MtaSts => "mta-sts",
            Self::Dane => "dane",
            Self::NoSpfPass => "no-spf-pass",
            Self::NotCertified => "not-certified",
            Self::NoDomain => "no-domain",
            Self::Temporary => "temporary",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rung's outcome and what it saw, in words for the reply and header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub outcome: Outcome,
    pub text: String,
}

fn found(outcome: Outcome, text: impl Into<String>) -> Finding {
    Finding {
        outcome,
        text: text.into(),
    }
}

/// Evaluates the rung for the transaction (SPF shared with the SPF check).
pub async fn evaluate(inputs: &Inputs) -> Finding {
    let Some(d) = inputs.envelope.sender_domain().name().map(str::to_string) else {
        return found(Outcome::NoDomain, "the sender has no domain");
    };
    let spf = spf::shared_result(inputs).await;
    match spf.status {
        Status::Pass => {}
        Status::TempError => {
            return found(
                Outcome::Temporary,
                format!("SPF of {d} could not be evaluated"),
            )
        }
        other => {
            return found(
                Outcome::NoSpfPass,
                format!("SPF of {d} does not pass for this client ({other})"),
            )
        }
    }
    certified(inputs, &d).await
}

/// Are `d`'s mail servers CA-certified? Its first MX hosts (by preference),
/// then its MTA-STS policy.
async fn certified(inputs: &Inputs, d: &str) -> Finding {
    let (dns, servers) = (&inputs.shared.dns, &inputs.shared.servers);
    let mut why: Vec<String> = Vec::new();
    let mut temporary = false;
    let hosts: Vec<String> = match dns.mx(d).await {
        Ok(set) => {
            let mut mx: Vec<_> = set.records.iter().collect();
            mx.sort_by_key(|m| m.preference);
            mx.iter()
                .flat_map(|m| m.exchanges.iter())
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .take(MAX_MX_HOSTS)
                .collect()
        }
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => {
            why.push(format!("{d} has no MX"));
            Vec::new()
        }
        Err(e) => {
            temporary = true;
            why.push(format!("MX lookup of {d} failed: {e}"));
            Vec::new()
        }
    };
    for host in &hosts {
        match servers.mx_host(dns, host).await {
            ServerFinding::Certified { subject } => {
                return found(
                    Outcome::MxCertified,
                    format!("its MX {host} has a CA certificate, CN={subject}"),
                )
            }
            ServerFinding::Dane => {
                return found(
                    Outcome::Dane,
                    format!("its MX {host} presents the certificate of its TLSA record"),
                )
            }
            ServerFinding::Not(p) => why.push(p.text),
            ServerFinding::Temporary(p) => {
                temporary = true;
                why.push(p.text);
            }
        }
    }
    match servers.mta_sts(dns, d).await {
        ServerFinding::Certified { subject } => {
            return found(
                Outcome::MtaSts,
                format!("it publishes an MTA-STS policy in enforce mode at {subject}"),
            )
        }
        ServerFinding::Temporary(p) => {
            temporary = true;
            why.push(p.text);
        }
        ServerFinding::Not(p) => why.push(p.text),
        ServerFinding::Dane => {}
    }
    let outcome = if temporary {
        Outcome::Temporary
    } else {
        Outcome::NotCertified
    };
    found(
        outcome,
        format!(
            "{d}'s mail servers are not CA-certified: {}",
            why.join(", ")
        ),
    )
}
