//! Values with rules of their own: each is a type whose `TryFrom<String>`
//! says what is allowed, so the TOML parser reports a bad value with its
//! file, line and column.

use serde::{Deserialize, Serialize};
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

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
keyword_enum!(SignatureKind, "signature", { Mailkey => "mailkey", Dkim2 => "dkim2" });
keyword_enum!(TlsRequire, "require", {
    None => "none", Encryption => "encryption", Certificate => "certificate"
});
// The kinds of evidence `[tls] evidence` may accept (docs/decisions.md,
// "Evidence ladder"). `mta-presented` is measured and logged, never
// accepted: it is not one of them.
keyword_enum!(Evidence, "evidence", {
    MtaVerified => "mta-verified", SenderDomain => "sender-domain", Probe => "probe"
});
// What the organisational domain of an MTA-verified certificate may align
// with (`[tls] mta_verified_alignment`).
keyword_enum!(CertAlignment, "mta_verified_alignment", {
    Helo => "helo", Ptr => "ptr", SenderDomain => "sender-domain"
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
