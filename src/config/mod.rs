//! The TOML configuration: every key, its default, and its validation.
//!
//! Validation happens while deserialising: each value with rules of its own
//! is a type whose `TryFrom<String>` says what is allowed, so a bad value is
//! reported by the TOML parser together with the file, line and column, e.g.
//! `/etc/mailkey-milter.toml: TOML parse error at line 3, column 8 … invalid
//! mode "maybe": allowed values are "monitor" and "enforce"`. Unknown keys are
//! errors (`deny_unknown_fields`): a typo must never silently disable a check.

#[macro_use]
mod values;
mod controls;
#[cfg(test)]
mod documented;
mod sections;
#[cfg(test)]
mod tests;

pub use controls::*;
pub use sections::*;
pub use values::*;

use crate::netmask::Netmask;
use serde::{Deserialize, Serialize};
use std::{
    fs,
    path::{Path, PathBuf},
};

/// Errors reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read configuration file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}, column {column}: {message} (the line reads: {text})")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        text: String,
    },
    #[error("{path}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The line of the offending key, when it is in the file.
        line: Option<usize>,
        message: String,
    },
}

/// The complete, validated configuration of the daemon.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Milter socket: `inet:HOST:PORT` or `unix:PATH`.
    pub listen: Listen,
    /// `monitor` never rejects (it logs what it would do); `enforce` applies
    /// the per-check `enforce` settings.
    pub mode: Mode,
    /// The authserv-id of our `Authentication-Results` header.
    pub authserv_id: String,
    /// Clients that are not checked (their mail is signed instead).
    pub trusted_networks: Vec<Netmask>,
    pub log_format: LogFormat,
    /// What happens to a message when the milter itself fails.
    pub on_error: OnError,
    /// Enforce mode: refuse at RCPT TO, before the body, when an enforced
    /// check that needs no message has already failed.
    pub reject_at_rcpt: bool,
    /// Permissions of a unix socket, octal.
    pub socket_mode: SocketMode,
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    pub dns: DnsConfig,
    pub mailkey: MailkeyConfig,
    pub spf: SpfConfig,
    pub tls: TlsConfig,
    pub policy: PolicyConfig,
    pub mx: MxConfig,
    pub guidance: GuidanceConfig,
    pub signing: SigningConfig,
    pub metrics: MetricsConfig,
    pub forwarding: ForwardingConfig,
    pub arc: ArcConfig,
    pub srs: SrsConfig,
    pub exempt: ExemptConfig,
    pub limits: LimitsConfig,
    /// Recipients' controls (src/config/controls.rs).
    pub state: StateConfig,
    pub tokens: TokensConfig,
    pub challenge: ChallengeConfig,
    pub dkim2: Dkim2Config,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::Inet("127.0.0.1:8895".into()),
            mode: Mode::Monitor,
            authserv_id: default_authserv_id(),
            trusted_networks: vec![Netmask::LOOPBACK_V4, Netmask::LOOPBACK_V6],
            log_format: LogFormat::Text,
            on_error: OnError::Tempfail,
            reject_at_rcpt: true,
            socket_mode: SocketMode(0o660),
            socket_owner: None,
            socket_group: None,
            dns: DnsConfig::default(),
            mailkey: MailkeyConfig::default(),
            spf: SpfConfig::default(),
            tls: TlsConfig::default(),
            policy: PolicyConfig::default(),
            mx: MxConfig::default(),
            guidance: GuidanceConfig::default(),
            signing: SigningConfig::default(),
            metrics: MetricsConfig::default(),
            forwarding: ForwardingConfig::default(),
            arc: ArcConfig::default(),
            srs: SrsConfig::default(),
            exempt: ExemptConfig::default(),
            limits: LimitsConfig::default(),
            state: StateConfig::default(),
            tokens: TokensConfig::default(),
            challenge: ChallengeConfig::default(),
            dkim2: Dkim2Config::default(),
        }
    }
}

impl ConfigError {
    /// An error in the value of `key` (`table.key`) of the file at `path`,
    /// found after the file was read (a file the value names, a key that
    /// does not load): with the line of the key when it is in the file.
    pub(crate) fn at_key(path: &Path, key: &str, message: String) -> Self {
        let text = fs::read_to_string(path).unwrap_or_default();
        Self::Invalid {
            path: path.into(),
            line: line_of(&text, key),
            message: format!("key `{key}`: {message}"),
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // One line, with the position and the offending line, so that the
            // same text reads well on a terminal and in a log.
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            ConfigError::Parse {
                path: path.into(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
                text: text.lines().nth(line - 1).unwrap_or("").trim().to_string(),
            }
        })?;
        let mut config = config;
        config
            .validate()
            .and_then(|()| config.guidance.load_text())
            .map_err(|message| ConfigError::Invalid {
                path: path.into(),
                line: key_in(&message).and_then(|key| line_of(text, key)),
                message,
            })?;
        Ok(config)
    }

    /// Rules that span several keys (single values are checked by their
    /// types). Messages start with "key `table.key`", which [`Self::parse`]
    /// turns into the line of that key.
    fn validate(&self) -> Result<(), String> {
        if !is_token(&self.authserv_id) {
            return Err(format!(
                "key `authserv_id`: invalid value {:?}: allowed is a host name \
                 (letters, digits, '.', '-', '_')",
                self.authserv_id
            ));
        }
        if self.dns.timeout_ms == 0 || self.dns.timeout_ms > 60_000 {
            return Err(format!(
                "key `dns.timeout_ms`: invalid value {}: allowed is 1 to 60000",
                self.dns.timeout_ms
            ));
        }
        if self.dns.cache_size == 0 {
            return Err("key `dns.cache_size`: invalid value 0: allowed is 1 or more".into());
        }
        if self.tls.probe_timeout_ms == 0 || self.tls.probe_timeout_ms > 120_000 {
            return Err(format!(
                "key `tls.probe_timeout_ms`: invalid value {}: allowed is 1 to 120000",
                self.tls.probe_timeout_ms
            ));
        }
        if self.tls.require == TlsRequire::Certificate && self.tls.evidence.is_empty() {
            return Err(
                "key `tls.evidence`: the list is empty: allowed are one or more of \
                 \"mta-verified\", \"sender-domain\", \"probe\" (with require = \"certificate\"; \
                 use require = \"encryption\" to need no certificate)"
                    .into(),
            );
        }
        if self.tls.mta_sts_port == 0 {
            return Err("key `tls.mta_sts_port`: invalid value 0: allowed is 1 to 65535".into());
        }
        if self.arc.seal {
            if self.arc.seal_domain.is_none() {
                return Err("key `arc.seal`: seal = true needs `seal_domain`".into());
            }
            if self.arc.key_file.is_none() {
                return Err("key `arc.seal`: seal = true needs `key_file` (an RSA key: \
                            mailkey-milter keygen --arc --domain DOMAIN --out DIR)"
                    .into());
            }
        }
        if let Some(domain) = &self.arc.seal_domain {
            if crate::envelope::domain_name(domain).is_none() {
                return Err(format!(
                    "key `arc.seal_domain`: invalid value {domain:?}: allowed is a domain name"
                ));
            }
        }
        let selector = &self.arc.selector;
        if !crate::ar_syntax::is_domain_name(selector) {
            return Err(format!(
                "key `arc.selector`: invalid value {selector:?}: allowed is a DNS label \
                 (letters, digits, inner hyphens; dots between labels)"
            ));
        }
        if self.srs.domain.is_some() && self.srs.secret_file.is_none() {
            return Err("key `srs.domain`: SRS needs `secret_file`".into());
        }
        self.validate_forwarding()?;
        if self.srs.max_age_days == 0 || self.srs.max_age_days > 1000 {
            return Err(format!(
                "key `srs.max_age_days`: invalid value {}: allowed is 1 to 1000 \
                 (timestamps wrap after 1024 days)",
                self.srs.max_age_days
            ));
        }
        self.limits.validate()?;
        controls::validate(&self.state, &self.tokens, &self.challenge)?;
        self.validate_dkim2()?;
        for (key, value) in [
            ("url", &self.guidance.url),
            ("contact", &self.guidance.contact),
        ] {
            if let Some(value) = value {
                let ascii = value.bytes().all(|b| (b' '..=b'~').contains(&b));
                if !ascii || value.trim().is_empty() || value.len() > GUIDANCE_MAX_LINE {
                    return Err(format!(
                        "key `guidance.{key}`: invalid value {value:?}: allowed is one line of \
                         printable ASCII, at most {GUIDANCE_MAX_LINE} characters"
                    ));
                }
            }
        }
        for domain in &self.exempt.domains {
            self::domain(domain).map_err(|why| format!("key `exempt.domains`: {why}"))?;
        }
        self.guidance.text_for.validate()
    }

    /// The configuration rules of DKIM2 signing (`[[signing.domains]]`
    /// `signatures` and `dkim2_selector`, `[dkim2] custody_cache_size`).
    fn validate_dkim2(&self) -> Result<(), String> {
        for entry in &self.signing.domains {
            if entry.signatures.is_empty() {
                return Err(format!(
                    "key `signing.domains.signatures`: domain {:?} signs nothing: allowed are \
                     \"mailkey\", \"dkim2\" or both",
                    entry.domain
                ));
            }
            let dkim2 = entry
                .signatures
                .iter()
                .filter(|s| **s == SignatureKind::Dkim2)
                .count();
            if dkim2 > 1 || entry.signatures.len() - dkim2 > 1 {
                return Err(format!(
                    "key `signing.domains.signatures`: domain {:?} names a signature twice",
                    entry.domain
                ));
            }
            if crate::envelope::domain_name(&format!("{}.x.test", entry.dkim2_selector)).is_none() {
                return Err(format!(
                    "key `signing.domains.dkim2_selector`: invalid value {:?}: allowed are DNS \
                     labels (letters, digits, '-', '_', separated by '.')",
                    entry.dkim2_selector
                ));
            }
        }
        if self.dkim2.custody_cache_size > 1 << 32 {
            return Err(format!(
                "key `dkim2.custody_cache_size`: invalid value {}: allowed is 0 to 4294967296",
                self.dkim2.custody_cache_size
            ));
        }
        Ok(())
    }

    /// `[srs] domain` and `[forwarding] trusted_arc_sealers`: domains, and
    /// the SRS domain one of ours (mail rewritten to it is signed with its
    /// `[signing]` key, docs/decisions.md "SRS then sign").
    fn validate_forwarding(&self) -> Result<(), String> {
        for sealer in &self.forwarding.trusted_arc_sealers {
            self::domain(sealer)
                .map_err(|why| format!("key `forwarding.trusted_arc_sealers`: {why}"))?;
        }
        let Some(domain) = &self.srs.domain else {
            return Ok(());
        };
        let srs = self::domain(domain).map_err(|why| format!("key `srs.domain`: {why}"))?;
        let signs =
            |s: &SigningDomain| crate::envelope::domain_name(&s.domain) == Some(srs.clone());
        if !self.signing.domains.iter().any(signs) {
            return Err(format!(
                "key `srs.domain`: invalid value {domain:?}: allowed is a domain of \
                 [[signing.domains]] (mail rewritten to SRS is signed for it)"
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The dotted key a validation message names ("key `dns.timeout_ms`: …").
fn key_in(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("key `")?;
    rest.split_once('`').map(|(key, _)| key)
}

/// The line (1-based) where `dotted` (`table.key` or `key`) is set in
/// `text`: the first `key =` line inside `[table]` (or before any table),
/// or the first `[dotted]`/`[[dotted]]` header when it names a table.
/// Good for the plain layout of our files; `None` when not found.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).trim().to_string();
            if current == dotted {
                return Some(n + 1);
            }
            continue;
        }
        let assigned = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"'));
        if current == table && assigned == Some(key) {
            return Some(n + 1);
        }
    }
    None
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// The host name, the natural authserv-id (RFC 8601 §2.5).
fn default_authserv_id() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .find(|s| is_token(s))
        .unwrap_or_else(|| "localhost".into())
}

/// A domain as written in the configuration (`Partner.TEST.`) made
/// comparable (`partner.test`), or why it is not a domain.
pub(crate) fn domain(s: &str) -> Result<String, String> {
    crate::envelope::domain_name(s).ok_or_else(|| {
        format!("invalid domain {s:?}: allowed is a DNS name of at least two labels")
    })
}
