//! The tables of the configuration file, one struct each, with defaults.

use super::values::{Alignment, NameServer, NoKey, TlsRequire};
use serde::{Deserialize, Serialize};
use std::{fs, net::SocketAddr, path::PathBuf};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Name servers as `IP:PORT` (or `IP`, port 53); empty = /etc/resolv.conf.
    pub nameservers: Vec<NameServer>,
    pub timeout_ms: u64,
    /// Entries per record-type cache.
    pub cache_size: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout_ms: 5000,
            cache_size: 10_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailkeyConfig {
    pub enforce: bool,
    /// What to do when the sender domain publishes no mailkey.
    pub no_key: NoKey,
    pub alignment: Alignment,
}

impl Default for MailkeyConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            no_key: NoKey::Accept,
            alignment: Alignment::Strict,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpfConfig {
    pub enforce: bool,
    /// Also check the HELO identity (RFC 7208 §2.3) before MAIL FROM.
    pub helo: bool,
}

impl Default for SpfConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            helo: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enforce: bool,
    pub require: TlsRequire,
    /// Actively probe the client's SMTP port for its certificate.
    pub probe: bool,
    pub probe_port: u16,
    pub probe_timeout_ms: u64,
    /// Trust store; the system store when absent.
    pub ca_file: Option<PathBuf>,
    pub crl_files: Vec<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            require: TlsRequire::Certificate,
            probe: true,
            probe_port: 25,
            probe_timeout_ms: 10_000,
            ca_file: None,
            crl_files: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MxConfig {
    pub enforce: bool,
}

impl Default for MxConfig {
    fn default() -> Self {
        Self { enforce: true }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuidanceConfig {
    /// Where a bounced sender reads how to set up a mailkey.
    pub url: Option<String>,
    /// Who to ask (an address or a phone number), shown after the URL.
    pub contact: Option<String>,
    /// A plain ASCII text that replaces the built-in explanation, in replies
    /// and bounces alike; `{domain}` stands for the sender's domain.
    pub text_file: Option<PathBuf>,
    /// The content of `text_file`, read when the configuration is loaded
    /// (a reload reads it again).
    #[serde(skip)]
    pub text: Option<String>,
    /// Append guidance to the bounces the local MTA generates.
    pub bounces: bool,
}

/// Limits on `[guidance]` values: every line must fit an SMTP reply line
/// (RFC 5321: 512 octets with the code) and the whole guidance must leave
/// room for the reason lines within 32 reply lines.
pub const GUIDANCE_MAX_LINE: usize = 300;
pub const GUIDANCE_MAX_TEXT_LINES: usize = 20;

impl Default for GuidanceConfig {
    fn default() -> Self {
        Self {
            url: None,
            contact: None,
            text_file: None,
            text: None,
            bounces: true,
        }
    }
}

impl GuidanceConfig {
    /// Reads and checks `text_file`, if one is configured.
    pub(super) fn load_text(&mut self) -> Result<(), String> {
        let Some(path) = &self.text_file else {
            return Ok(());
        };
        let text = fs::read_to_string(path).map_err(|e| {
            format!(
                "key `guidance.text_file`: cannot read {}: {e}",
                path.display()
            )
        })?;
        check_guidance_text(&text)
            .map_err(|why| format!("key `guidance.text_file`: {}: {why}", path.display()))?;
        self.text = Some(text);
        Ok(())
    }
}

/// A custom guidance text: printable ASCII lines (it goes into SMTP replies
/// and into bounce parts of any ASCII-compatible charset), not too many, not
/// too long.
fn check_guidance_text(text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err("the file is empty".into());
    }
    if lines.len() > GUIDANCE_MAX_TEXT_LINES {
        return Err(format!(
            "{} lines: allowed are at most {GUIDANCE_MAX_TEXT_LINES}",
            lines.len()
        ));
    }
    for (n, line) in lines.iter().enumerate() {
        if !line.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(format!(
                "line {}: allowed is printable ASCII text only",
                n + 1
            ));
        }
        if line.len() > GUIDANCE_MAX_LINE {
            return Err(format!(
                "line {}: allowed are at most {GUIDANCE_MAX_LINE} characters",
                n + 1
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    pub domains: Vec<SigningDomain>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningDomain {
    pub domain: String,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

/// `[forwarding]`: how forwarded and list mail is recognised (#15).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardingConfig {
    /// Domains (`d=` of the newest `ARC-Seal`) whose recorded SPF and
    /// mailkey results we accept when ours fail (docs/decisions.md).
    pub trusted_arc_sealers: Vec<String>,
}

/// `[arc]`: sealing on the forwarding side (#15).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ArcConfig {
    /// Seal every message we checked and let through (docs/decisions.md).
    pub seal: bool,
    /// The domain whose `[signing]` key seals (selector `mailkey`).
    pub seal_domain: Option<String>,
}

/// `[srs]`: the Sender Rewriting Scheme (#15), off without `domain`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SrsConfig {
    /// The domain of our SRS addresses; no rewriting when absent.
    pub domain: Option<String>,
    /// One secret per line: the first signs, all verify (rotation).
    pub secret_file: Option<PathBuf>,
    /// SRS0 addresses older than this are refused.
    pub max_age_days: u64,
}

impl Default for SrsConfig {
    fn default() -> Self {
        Self {
            domain: None,
            secret_file: None,
            max_age_days: 21,
        }
    }
}
