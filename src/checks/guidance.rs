//! What a check declares about the guidance of its failures (issue #22):
//! which [`Failure`] kinds are its own, the `[guidance.text_for]` key of
//! each and its built-in text. [`crate::guidance`] iterates over the
//! registry for them; the texts live with their checks.

use super::Failure;
use crate::envelope::Envelope;
use std::net::IpAddr;

/// Used when the sender has no domain (an IP literal, `<postmaster>`).
const NO_DOMAIN: &str = "your-domain.example";

/// One check's guidance.
pub struct Guidance {
    /// Its `[guidance.text_for]` keys: each names a text the operator may
    /// set in place of the built-in one (`config::GuidanceTexts`).
    pub keys: &'static [&'static str],
    /// The key of a failure kind, `None` for a kind not its own.
    pub key: fn(Failure) -> Option<&'static str>,
    /// The built-in text of a failure kind of its own, at most three reply
    /// lines (four for the TLS check's evidence list), so that every check
    /// failing still fits 32 reply lines.
    pub text: fn(Failure, &Sender<'_>) -> Vec<String>,
}

/// Who the guidance is for: what fills `{domain}`, `{ip}` and `{helo}`.
/// The HELO name comes from the client: the reply sanitises it.
#[derive(Clone, Debug, Default)]
pub struct Sender<'a> {
    pub domain: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub helo: &'a str,
}

impl<'a> Sender<'a> {
    pub fn of(envelope: &'a Envelope, domain: Option<&'a str>) -> Self {
        Self {
            domain,
            ip: envelope.client_ip,
            helo: envelope.helo.trim_end_matches('.'),
        }
    }

    pub(crate) fn domain_or_placeholder(&self) -> &str {
        self.domain.unwrap_or(NO_DOMAIN)
    }

    pub(crate) fn ip_text(&self) -> String {
        self.ip
            .map_or_else(|| "your server's address".into(), |ip| ip.to_string())
    }

    pub(crate) fn helo_text(&self) -> &str {
        if self.helo.is_empty() {
            "your server's name"
        } else {
            self.helo
        }
    }

    /// The SPF mechanism that authorises the client (`ip4:` or `ip6:`).
    pub(crate) fn spf_term(&self) -> String {
        match self.ip {
            Some(IpAddr::V4(ip)) => format!("ip4:{ip}"),
            Some(IpAddr::V6(ip)) => format!("ip6:{ip}"),
            None => "ip4:ADDRESS".into(),
        }
    }

    /// `text` with the placeholders filled in.
    pub(crate) fn fill(&self, text: &str) -> String {
        text.replace("{domain}", self.domain_or_placeholder())
            .replace("{ip}", &self.ip_text())
            .replace("{helo}", self.helo_text())
    }
}
