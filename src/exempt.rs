//! Exemptions (`[exempt]`): senders whose mail is checked, logged and
//! marked as usual but never rejected or deferred — a partner whose setup is
//! in progress, a network being migrated. Unlike `trusted_networks` (not
//! checked, signed instead), an exempt message shows in the header, the log
//! and `report` what enforcing would do to it.
//!
//! A domain covers its subdomains (`partner.test` exempts
//! `mail.partner.test`, not `otherpartner.test`); the domain compared is the
//! checks' `D` (for the null sender, the HELO name). A network is compared
//! with the client address. The list is built from the configuration and
//! its `file` when the configuration is (re)loaded; matching is a pure
//! function of that list and the envelope.

use crate::{
    config::{self, ExemptConfig},
    envelope::Envelope,
    netmask::Netmask,
};
use std::{fmt, path::PathBuf};

/// An exemption list file larger than this is refused (it is read whole,
/// on every reload, and searched for every message).
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why the exemption list cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ExemptError {
    #[error("[exempt] file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[exempt] file {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("[exempt] file {path}, line {line}: {why}")]
    Entry {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// Why a message is exempt: the entry that matched, or the recipient's
/// control that let it through (src/milter/recipients.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Domain(String),
    Network(Netmask),
    /// A recipient's token, by its ID.
    Token(String),
    /// A challenge the sender solved for this recipient.
    Challenge,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => write!(f, "domain {d}"),
            Self::Network(n) => write!(f, "network {n}"),
            Self::Token(id) => write!(f, "token {id}"),
            Self::Challenge => f.write_str("challenge passed"),
        }
    }
}

/// The exempt domains and networks, from the configuration and its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    domains: Vec<String>,
    networks: Vec<Netmask>,
}

impl Exemptions {
    /// Builds the list; reads `file` (again) if one is configured.
    pub fn load(config: &ExemptConfig) -> Result<Self, ExemptError> {
        let mut list = Self {
            domains: config
                .domains
                .iter()
                .filter_map(|d| config::domain(d).ok())
                .collect(),
            networks: config.networks.clone(),
        };
        if let Some(path) = &config.file {
            let read = |source| ExemptError::Read {
                path: path.clone(),
                source,
            };
            let size = std::fs::metadata(path).map_err(read)?.len();
            if size > MAX_FILE_BYTES {
                return Err(ExemptError::TooLarge { path: path.clone() });
            }
            let text = std::fs::read_to_string(path).map_err(read)?;
            list.add_lines(&text)
                .map_err(|(line, why)| ExemptError::Entry {
                    path: path.clone(),
                    line,
                    why,
                })?;
        }
        Ok(list)
    }

    /// One entry per line, a domain or a network; `#` starts a comment.
    /// Errors carry the (1-based) line.
    fn add_lines(&mut self, text: &str) -> Result<(), (usize, String)> {
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            if let Ok(net) = entry.parse::<Netmask>() {
                self.networks.push(net);
            } else if entry.contains('/') || entry.contains(':') {
                return Err((n + 1, format!("invalid network {entry:?}")));
            } else {
                self.domains
                    .push(config::domain(entry).map_err(|why| (n + 1, why))?);
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.networks.is_empty()
    }

    /// Is this transaction exempt, and by which entry? Networks first (the
    /// client address is proven; the sender domain is only claimed).
    pub fn reason(&self, envelope: &Envelope) -> Option<Reason> {
        if let Some(ip) = envelope.client_ip {
            if let Some(net) = self.networks.iter().find(|n| n.contains(ip)) {
                return Some(Reason::Network(*net));
            }
        }
        let sender = envelope.sender_domain();
        let d = sender.name()?;
        self.domains
            .iter()
            .find(|e| {
                d == e.as_str() || d.strip_suffix(e.as_str()).is_some_and(|p| p.ends_with('.'))
            })
            .map(|e| Reason::Domain(e.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(ip: &str, from: &str) -> Envelope {
        Envelope {
            client_ip: Some(ip.parse().unwrap()),
            helo: "mail.example.test".into(),
            mail_from: from.into(),
            ..Envelope::default()
        }
    }

    fn list(text: &str) -> Exemptions {
        let mut l = Exemptions::default();
        l.add_lines(text).unwrap();
        l
    }

    #[test]
    fn domains_cover_subdomains_not_siblings() {
        let l = list("partner.test # a partner\n\n  # only a comment\n");
        let d = |from| l.reason(&env("192.0.2.1", from));
        assert_eq!(
            d("a@partner.test"),
            Some(Reason::Domain("partner.test".into()))
        );
        assert!(d("a@mail.PARTNER.test").is_some());
        assert_eq!(d("a@otherpartner.test"), None);
        assert_eq!(d("a@partner.test.evil"), None);
    }

    #[test]
    fn networks_match_the_client() {
        let l = list("192.0.2.0/24\n2001:db8::/32\n");
        assert_eq!(
            l.reason(&env("192.0.2.9", "a@x.test")).unwrap().to_string(),
            "network 192.0.2.0/24"
        );
        assert!(l.reason(&env("2001:db8::1", "a@x.test")).is_some());
        assert_eq!(l.reason(&env("198.51.100.1", "a@x.test")), None);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let mut l = Exemptions::default();
        assert_eq!(l.add_lines("ok.test\n10.0.0.0/33\n").unwrap_err().0, 2);
        assert_eq!(l.add_lines("nodots\n").unwrap_err().0, 1);
    }
}
