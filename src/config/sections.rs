//! The tables of the configuration file, one struct each, with defaults.

use super::values::{Alignment, CertAlignment, Evidence, Listen, NameServer, NoKey, TlsRequire};
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
    /// With `require = "certificate"`: the kinds of evidence that count
    /// (any one suffices); each is measured for every message.
    pub evidence: Vec<Evidence>,
    /// The name rule of `mta-verified`: the organisational domain of the
    /// certificate must equal that of one of these names (empty: none).
    pub mta_verified_alignment: Vec<CertAlignment>,
    /// `false` takes `probe` out of `evidence` (the switch of
    /// configurations written before `evidence`).
    pub probe: bool,
    /// The SMTP port probed, on clients and on a sender domain's MX hosts.
    pub probe_port: u16,
    pub probe_timeout_ms: u64,
    /// The HTTPS port of MTA-STS policy hosts. RFC 8461 fixes 443: another
    /// value is for tests only.
    pub mta_sts_port: u16,
    /// Trust store; the system store when absent.
    pub ca_file: Option<PathBuf>,
    pub crl_files: Vec<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            require: TlsRequire::Certificate,
            evidence: vec![
                Evidence::MtaVerified,
                Evidence::SenderDomain,
                Evidence::Probe,
            ],
            mta_verified_alignment: Vec::new(),
            probe: true,
            probe_port: 25,
            probe_timeout_ms: 10_000,
            mta_sts_port: 443,
            ca_file: None,
            crl_files: Vec::new(),
        }
    }
}

impl TlsConfig {
    /// Does `kind` count as evidence (listed, and for `probe`, not
    /// switched off by `probe = false`)?
    pub fn accepts(&self, kind: Evidence) -> bool {
        self.evidence.contains(&kind) && (kind != Evidence::Probe || self.probe)
    }

    /// The evidence that counts, in the configured order.
    pub fn accepted(&self) -> Vec<Evidence> {
        let mut out: Vec<Evidence> = Vec::new();
        for e in &self.evidence {
            if self.accepts(*e) && !out.contains(e) {
                out.push(*e);
            }
        }
        out
    }
}

/// `[policy]`: the Postfix policy companion (`check_policy_service`), off
/// without `listen` (src/policy.rs).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `inet:HOST:PORT` or `unix:PATH`; read at start only.
    pub listen: Option<Listen>,
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
    /// The operator's text per failure kind, replacing the built-in
    /// guidance for that kind in replies (`no_key` also in bounces).
    pub text_for: GuidanceTexts,
}

/// `[guidance.text_for]`: one text per failure kind; `{domain}`, `{ip}` and
/// `{helo}` stand for the sender's domain, address and HELO name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuidanceTexts {
    /// No mailkey published, or none usable.
    pub no_key: Option<String>,
    /// A key is published but the message has no mailkey signature.
    pub no_signature: Option<String>,
    /// The mailkey signature does not verify (body or headers changed).
    pub bad_signature: Option<String>,
    /// SPF did not pass.
    pub spf: Option<String>,
    /// Plaintext session, no STARTTLS, or an unacceptable certificate.
    pub tls: Option<String>,
    /// No MX, a null MX, or an IP-literal sender.
    pub mx: Option<String>,
    /// The DKIM2 chain of the sender domain fails (replay, a change without
    /// recipe, a broken chain).
    pub dkim2: Option<String>,
}

/// At most this many lines per `text_for` text: with all four checks
/// failing, 4 texts, the links and the reason lines still fit 32 lines.
pub(crate) const GUIDANCE_MAX_KIND_LINES: usize = 6;
/// The placeholders a `text_for` text may use.
pub(crate) const GUIDANCE_PLACEHOLDERS: [&str; 3] = ["{domain}", "{ip}", "{helo}"];

impl GuidanceTexts {
    /// Every text, with its key.
    pub fn all(&self) -> [(&'static str, &Option<String>); 7] {
        [
            ("no_key", &self.no_key),
            ("no_signature", &self.no_signature),
            ("bad_signature", &self.bad_signature),
            ("spf", &self.spf),
            ("tls", &self.tls),
            ("mx", &self.mx),
            ("dkim2", &self.dkim2),
        ]
    }

    /// The text under `key` (a key a check declares, `checks::Guidance`).
    pub(crate) fn get(&self, key: &str) -> Option<&String> {
        self.all()
            .into_iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, text)| text.as_ref())
    }

    /// Checks each text like `text_file` (printable ASCII, line length),
    /// with at most [`GUIDANCE_MAX_KIND_LINES`] lines and only the known
    /// placeholders.
    pub(super) fn validate(&self) -> Result<(), String> {
        for (key, text) in self.all() {
            let Some(text) = text else { continue };
            let fail = |why: String| format!("key `guidance.text_for.{key}`: {why}");
            check_guidance_text(text).map_err(&fail)?;
            let lines = text.lines().count();
            if lines > GUIDANCE_MAX_KIND_LINES {
                return Err(fail(format!(
                    "{lines} lines: allowed are at most {GUIDANCE_MAX_KIND_LINES}"
                )));
            }
            let mut rest = text.as_str();
            while let Some(start) = rest.find('{') {
                let word = &rest[start..];
                let end = word.find('}').map_or(word.len(), |i| i + 1);
                if !GUIDANCE_PLACEHOLDERS.contains(&&word[..end]) {
                    return Err(fail(format!(
                        "unknown placeholder {:?}: allowed are {}",
                        &word[..end],
                        GUIDANCE_PLACEHOLDERS.join(", ")
                    )));
                }
                rest = &word[end..];
            }
        }
        Ok(())
    }
}

/// Limits on `[guidance]` values: every line must fit an SMTP reply line
/// (RFC 5321: 512 octets with the code) and the whole guidance must leave
/// room for the reason lines within 32 reply lines.
pub(crate) const GUIDANCE_MAX_LINE: usize = 300;
pub(crate) const GUIDANCE_MAX_TEXT_LINES: usize = 20;

impl Default for GuidanceConfig {
    fn default() -> Self {
        Self {
            url: None,
            contact: None,
            text_file: None,
            text: None,
            bounces: true,
            text_for: GuidanceTexts::default(),
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
        return Err("the text is empty".into());
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
    /// The signatures the domain's mail gets: `mailkey` (a DKIM-Signature
    /// with s=mailkey), `dkim2` (a DKIM2-Signature binding the envelope),
    /// or both (docs/decisions.md, "DKIM2").
    #[serde(default = "default_signatures")]
    pub signatures: Vec<super::SignatureKind>,
    /// The DKIM2 selector: receivers look the key up at
    /// `SELECTOR._domainkey.DOMAIN` (`mailkey`: the CNAME keygen prints).
    #[serde(default = "default_dkim2_selector")]
    pub dkim2_selector: String,
}

fn default_signatures() -> Vec<super::SignatureKind> {
    vec![super::SignatureKind::Mailkey]
}

fn default_dkim2_selector() -> String {
    crate::protocol::SELECTOR.into()
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ArcConfig {
    /// Seal every message we checked and let through (docs/decisions.md).
    pub seal: bool,
    /// `d=` of our seals.
    pub seal_domain: Option<String>,
    /// The RSA private key that seals (`src/arc_seal.rs`, #21: ARC
    /// verifiers refuse Ed25519 seals).
    pub key_file: Option<PathBuf>,
    /// `s=` of our seals: the key is published at
    /// `SELECTOR._domainkey.seal_domain`.
    pub selector: String,
}

impl Default for ArcConfig {
    fn default() -> Self {
        Self {
            seal: false,
            seal_domain: None,
            key_file: None,
            selector: "arc".into(),
        }
    }
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
/// Senders that are checked and logged but never rejected or deferred
/// (src/exempt.rs): partners whose setup is in progress.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExemptConfig {
    /// Sender domains; each covers its subdomains too.
    pub domains: Vec<String>,
    /// Client networks (CIDR).
    pub networks: Vec<crate::netmask::Netmask>,
    /// One domain or network per line, `#` comments; read at start and on
    /// every reload.
    pub file: Option<PathBuf>,
}

/// Bounds on what one sender can make the milter do (docs/decisions.md,
/// "Resource bounds").
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// One deadline for the checks at end of message; when it runs out the
    /// message gets `on_error`.
    pub eom_timeout_ms: u64,
    /// Messages larger than this (header and body as received) are not
    /// buffered further and not checked.
    pub max_message_size: u64,
    /// Milter connections (MTA smtpd processes) served at once.
    pub max_connections: usize,
    /// Where a message larger than 32 KiB waits for the end of message, in
    /// an unlinked file (src/spool.rs). On a disk file system: its
    /// page cache is the kernel's to reclaim, tmpfs is memory.
    pub spool_dir: PathBuf,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            eom_timeout_ms: 10_000,
            max_message_size: 64 * 1024 * 1024,
            max_connections: 1000,
            spool_dir: PathBuf::from("/var/tmp"),
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.eom_timeout_ms == 0 || self.eom_timeout_ms > 600_000 {
            return Err(format!(
                "key `limits.eom_timeout_ms`: invalid value {}: allowed is 1 to 600000",
                self.eom_timeout_ms
            ));
        }
        if self.max_message_size < 64 * 1024 {
            return Err(format!(
                "key `limits.max_message_size`: invalid value {}: allowed is 65536 or more",
                self.max_message_size
            ));
        }
        if self.max_connections == 0 {
            return Err(
                "key `limits.max_connections`: invalid value 0: allowed is 1 or more".into(),
            );
        }
        // Relative to what? The daemon's working directory is `/` under
        // systemd and anything elsewhere.
        if !self.spool_dir.is_absolute() {
            return Err(format!(
                "key `limits.spool_dir`: invalid value {:?}: allowed is an absolute path",
                self.spool_dir
            ));
        }
        Ok(())
    }
}

/// `[dkim2]`: DKIM2 chains (docs/protocol.md, "mailkey v2 = DKIM2").
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim2Config {
    /// Verify DKIM2 chains of checked mail (`dkim2=` in the header; a chain
    /// for the sender domain passes or fails the mailkey check).
    pub verify: bool,
    /// A forwarding host: mail from trusted clients that carries a DKIM2
    /// chain verified at our door gets a DKIM2 hop of ours.
    pub forward: bool,
    /// Bytes of door-verified messages kept for the forward hop's recipe.
    pub custody_cache_size: u64,
    /// Refuse a DSN for a DKIM2-signed message of ours that does not
    /// verify (`verify_dkim2_dsn`); otherwise it is logged only.
    pub refuse_unverified_dsn: bool,
}

impl Default for Dkim2Config {
    fn default() -> Self {
        Self {
            verify: true,
            forward: false,
            custody_cache_size: 32 * 1024 * 1024,
            refuse_unverified_dsn: false,
        }
    }
}
