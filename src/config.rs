//! The TOML configuration: every key, its default, and its validation.
//!
//! Validation happens while deserialising: each value with rules of its own
//! is a type whose `TryFrom<String>` says what is allowed, so a bad value is
//! reported by the TOML parser together with the file, line and column, e.g.
//! `/etc/mailkey-milter.toml: TOML parse error at line 3, column 8 … invalid
//! mode "maybe": allowed values are "monitor" and "enforce"`. Unknown keys are
//! errors (`deny_unknown_fields`): a typo must never silently disable a check.

use crate::netmask::Netmask;
use serde::{Deserialize, Serialize};
use std::{
    fmt, fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
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
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
    /// Permissions of a unix socket, octal.
    pub socket_mode: SocketMode,
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    pub dns: DnsConfig,
    pub mailkey: MailkeyConfig,
    pub spf: SpfConfig,
    pub tls: TlsConfig,
    pub mx: MxConfig,
    pub guidance: GuidanceConfig,
    pub signing: SigningConfig,
    pub metrics: MetricsConfig,
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
            socket_mode: SocketMode(0o660),
            socket_owner: None,
            socket_group: None,
            dns: DnsConfig::default(),
            mailkey: MailkeyConfig::default(),
            spf: SpfConfig::default(),
            tls: TlsConfig::default(),
            mx: MxConfig::default(),
            guidance: GuidanceConfig::default(),
            signing: SigningConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

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
    fn load_text(&mut self) -> Result<(), String> {
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
                message,
            })?;
        Ok(config)
    }

    /// Rules that span several keys (single values are checked by their types).
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
        Ok(())
    }

    /// The effective configuration as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
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

/// Implements string (de)serialisation for an enum of keywords.
macro_rules! keyword_enum {
    ($name:ident, $key:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($variant),+ }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    _ => Err(format!(
                        concat!("invalid ", $key, " {:?}: allowed values are {}"),
                        s,
                        [$(concat!("\"", $word, "\"")),+].join(", ")
                    )),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().into()
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(Mode, "mode", { Monitor => "monitor", Enforce => "enforce" });
keyword_enum!(LogFormat, "log_format", { Text => "text", Json => "json" });
keyword_enum!(OnError, "on_error", { Tempfail => "tempfail", Accept => "accept" });
keyword_enum!(NoKey, "no_key", { Accept => "accept", Reject => "reject" });
keyword_enum!(Alignment, "alignment", { Strict => "strict", Relaxed => "relaxed" });
keyword_enum!(TlsRequire, "require", {
    None => "none", Encryption => "encryption", Certificate => "certificate"
});

/// Where the milter listens.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Listen {
    /// `HOST:PORT`, resolved when binding.
    Inet(String),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid listen address {s:?}: allowed is inet:HOST:PORT or unix:PATH");
        if let Some(rest) = s.strip_prefix("inet:") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad());
            }
            Ok(Self::Inet(rest.into()))
        } else if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            Ok(Self::Unix(path.into()))
        } else {
            Err(bad())
        }
    }
}

impl TryFrom<String> for Listen {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Listen> for String {
    fn from(l: Listen) -> String {
        l.to_string()
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet(a) => write!(f, "inet:{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A name server address; the port defaults to 53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct NameServer(pub SocketAddr);

impl TryFrom<String> for NameServer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self(addr));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Self(SocketAddr::new(ip, 53)))
            .map_err(|_| {
                format!("invalid name server {s:?}: allowed is IP or IP:PORT ([IPv6]:PORT)")
            })
    }
}

impl From<NameServer> for String {
    fn from(n: NameServer) -> String {
        n.0.to_string()
    }
}

/// Unix socket permissions, written in octal like `"0660"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct SocketMode(pub u32);

impl TryFrom<String> for SocketMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(Self)
            .ok_or_else(|| {
                format!("invalid socket_mode {s:?}: allowed is an octal mode like \"0660\"")
            })
    }
}

impl From<SocketMode> for String {
    fn from(m: SocketMode) -> String {
        format!("{:04o}", m.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_safe_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, Mode::Monitor);
        assert_eq!(c.listen, Listen::Inet("127.0.0.1:8895".into()));
        assert!(c.dns.nameservers.is_empty());
        assert_eq!(c, Config::default());
    }

    #[test]
    fn bad_value_names_file_line_key_and_allowed_values() {
        let e = parse("listen = \"inet:127.0.0.1:1\"\nmode = \"maybe\"\n").unwrap_err();
        assert!(e.contains("test.toml"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("mode"), "{e}");
        assert!(e.contains("\"monitor\", \"enforce\""), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = parse("[mailkey]\nenfrce = true\n").unwrap_err();
        assert!(e.contains("unknown field `enfrce`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn values_with_rules() {
        assert!(parse("listen = \"unix:/run/m.sock\"").is_ok());
        assert!(parse("listen = \"tcp:1\"")
            .unwrap_err()
            .contains("inet:HOST:PORT"));
        assert!(parse("trusted_networks = [\"10.0.0.0/33\"]").is_err());
        assert!(parse("socket_mode = \"0999\"").is_err());
        let c = parse("[dns]\nnameservers = [\"127.0.0.1:5353\", \"::1\"]").unwrap();
        assert_eq!(c.dns.nameservers[1].0.port(), 53);
        assert!(parse("[dns]\ntimeout_ms = 0")
            .unwrap_err()
            .contains("dns.timeout_ms"));
    }

    #[test]
    fn shipped_example_shows_the_defaults() {
        // contrib/mailkey-milter.toml documents every key with its default.
        let text = include_str!("../contrib/mailkey-milter.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn guidance_values_are_checked() {
        let c = parse(
            "[guidance]\nurl = \"https://example.org/mk\"\ncontact = \"postmaster@example.org\"",
        )
        .unwrap();
        assert_eq!(
            c.guidance.contact.as_deref(),
            Some("postmaster@example.org")
        );
        let e = parse("[guidance]\ncontact = \"a\\nb\"").unwrap_err();
        assert!(e.contains("guidance.contact"), "{e}");
        let e = parse("[guidance]\nurl = \"https://example.org/\u{e9}\"").unwrap_err();
        assert!(e.contains("printable ASCII"), "{e}");
        let e = parse("[guidance]\ntext_file = \"/nonexistent/guidance.txt\"").unwrap_err();
        assert!(
            e.contains("guidance.text_file") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn guidance_text_file_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("mk-config-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        fs::write(&good, "Ask {domain}'s postmaster.\nThen publish a key.\n").unwrap();
        let c = parse(&format!("[guidance]\ntext_file = {:?}", good)).unwrap();
        assert_eq!(
            c.guidance.text.as_deref(),
            Some("Ask {domain}'s postmaster.\nThen publish a key.\n")
        );
        for (name, text, why) in [
            ("empty.txt", " \n", "empty"),
            ("utf8.txt", "caf\u{e9}\n", "printable ASCII"),
            ("long.txt", &"x".repeat(301), "at most 300"),
            ("many.txt", &"x\n".repeat(21), "at most 20"),
        ] {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            let e = parse(&format!("[guidance]\ntext_file = {:?}", path)).unwrap_err();
            assert!(e.contains(why), "{name}: {e}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn rollout_stages_are_valid_and_do_what_they_say() {
        let stage = |t: &str| parse(t).unwrap();
        let monitor = stage(include_str!("../contrib/rollout/1-monitor.toml"));
        assert_eq!(monitor.mode, Mode::Monitor);
        let mailkey = stage(include_str!("../contrib/rollout/2-enforce-mailkey.toml"));
        assert_eq!(mailkey.mode, Mode::Enforce);
        assert!(
            mailkey.mailkey.enforce
                && !mailkey.spf.enforce
                && !mailkey.mx.enforce
                && !mailkey.tls.enforce
        );
        let all = stage(include_str!("../contrib/rollout/3-enforce-all.toml"));
        assert!(
            all.mode == Mode::Enforce
                && all.mailkey.enforce
                && all.spf.enforce
                && all.mx.enforce
                && all.tls.enforce
        );
    }

    #[test]
    fn effective_config_round_trips() {
        let c = parse("mode = \"enforce\"\n[mailkey]\nno_key = \"reject\"").unwrap();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }
}
