//! `[state]`, `[tokens]` and `[challenge]`: the recipients' controls
//! (docs/decisions.md, "Letting wanted senders through").

use crate::netmask::Netmask;
use serde::{Deserialize, Serialize};
use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

/// Where tokens, their use counts and solved challenges are kept.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The embedded store (one SQLite file), used without `url`.
    pub path: PathBuf,
    /// `redis://HOST:PORT/DB` (or `rediss://`, `redis+unix://`): a store
    /// every MX host shares.
    pub url: Option<String>,
    /// How long one Redis command may take before the mail that needs its
    /// answer is deferred.
    pub timeout_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            path: "/var/lib/mailkey-milter/state.sqlite".into(),
            url: None,
            timeout_ms: 1000,
        }
    }
}

/// Pre-approved tokens: tagged addresses a recipient hands out. Off
/// without `secret_file`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// The HMAC secrets of the tags: one per line, the first signs.
    pub secret_file: Option<PathBuf>,
    /// The characters that may separate the local part from the tag, as
    /// Postfix's `recipient_delimiter`; the first is used when issuing.
    pub delimiter: String,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            secret_file: None,
            delimiter: "+".into(),
        }
    }
}

keyword_enum!(ChallengeWhen, "when", {
    Off => "off", Refused => "refused", FirstContact => "first-contact"
});

/// The sender challenge: offered in the refusal to senders that proved
/// their address; its page is served on `listen`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeConfig {
    pub when: ChallengeWhen,
    /// Plain HTTP, behind the operator's HTTPS proxy.
    pub listen: Option<SocketAddr>,
    /// The public address of the page, as the proxy serves it
    /// (`https://mx.example.org/challenge`); the URL in a refusal is this
    /// plus `/` and the signed challenge.
    pub url: Option<String>,
    /// The HMAC secrets of the URLs: one per line, the first signs.
    pub secret_file: Option<PathBuf>,
    /// How long a challenge URL can be solved.
    pub valid_hours: u64,
    /// How long a solved challenge lets the pair's mail through.
    pub allow_days: u64,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Netmask>,
    /// Page requests per hour per client address.
    pub rate_per_client: u32,
    /// Answers per hour per sender address.
    pub rate_per_sender: u32,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            when: ChallengeWhen::Off,
            listen: None,
            url: None,
            secret_file: None,
            valid_hours: 72,
            allow_days: 365,
            trusted_proxies: vec![Netmask::LOOPBACK_V4, Netmask::LOOPBACK_V6],
            rate_per_client: 60,
            rate_per_sender: 10,
        }
    }
}

/// The longest `[challenge] url`: with the signed part (about 150
/// characters for common addresses) a reply line stays below 400.
pub(crate) const CHALLENGE_URL_MAX: usize = 120;

/// Rules across the three tables; messages name the key, as
/// `Config::validate` wants them.
pub(super) fn validate(
    state: &StateConfig,
    tokens: &TokensConfig,
    challenge: &ChallengeConfig,
) -> Result<(), String> {
    if state.timeout_ms == 0 || state.timeout_ms > 30_000 {
        return Err(format!(
            "key `state.timeout_ms`: invalid value {}: allowed is 1 to 30000",
            state.timeout_ms
        ));
    }
    if let Some(url) = &state.url {
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| url.starts_with(s))
        {
            return Err(format!(
                "key `state.url`: invalid value {:?}: allowed is redis://HOST[:PORT][/DB], \
                 rediss://… or redis+unix:///PATH",
                url.split('@').next_back().unwrap_or_default()
            ));
        }
    }
    let d = &tokens.delimiter;
    if d.is_empty() || d.len() > 8 || !d.bytes().all(|b| b.is_ascii_punctuation() && b != b'@') {
        return Err(format!(
            "key `tokens.delimiter`: invalid value {d:?}: allowed are 1 to 8 punctuation \
             characters other than '@', as Postfix's recipient_delimiter (e.g. \"+\")"
        ));
    }
    if challenge.when == ChallengeWhen::Off {
        return Ok(());
    }
    let need = |key: &str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(format!(
                "key `challenge.when`: a challenge needs `challenge.{key}`"
            ))
        }
    };
    need("listen", challenge.listen.is_some())?;
    need("secret_file", challenge.secret_file.is_some())?;
    need("url", challenge.url.is_some())?;
    if let Some(url) = &challenge.url {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= CHALLENGE_URL_MAX
            && url.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(format!(
                "key `challenge.url`: invalid value {url:?}: allowed is an http(s) URL of at \
                 most {CHALLENGE_URL_MAX} printable characters"
            ));
        }
    }
    for (key, value, max) in [
        ("valid_hours", challenge.valid_hours, 24 * 30),
        ("allow_days", challenge.allow_days, 3650),
        (
            "rate_per_client",
            u64::from(challenge.rate_per_client),
            100_000,
        ),
        (
            "rate_per_sender",
            u64::from(challenge.rate_per_sender),
            100_000,
        ),
    ] {
        if value == 0 || value > max {
            return Err(format!(
                "key `challenge.{key}`: invalid value {value}: allowed is 1 to {max}"
            ));
        }
    }
    Ok(())
}
