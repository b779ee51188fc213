//! Pre-approved tokens: a recipient hands a sender a tagged address,
//! `alice+mk-TAG@example.org`, and mail to it is let through (still
//! checked and marked) for as long and as often as the token allows.
//!
//! The tag is the first 60 bits of HMAC-SHA256(secret, recipient, scope,
//! expiry, uses, nonce) in a 32-letter alphabet: it cannot be guessed
//! (one try per RCPT, 2^60 tags), and a token's terms cannot be changed
//! in the store without the tag failing to match (docs/decisions.md,
//! "Letting wanted senders through"). The tag is also the token's ID.

pub mod cli;

use crate::{
    config::TokensConfig,
    reply::{Code, Reply},
    secrets,
    state::{Token, TokenState},
};
use std::fmt;

/// What starts a tag after the delimiter.
pub(crate) const PREFIX: &str = "mk-";
/// Characters of a tag (5 bits each).
pub(crate) const TAG_LEN: usize = 12;
/// The tag alphabet: lower case (MTAs lower-case local parts), without
/// the look-alikes `l`, `o`, `0`, `1`.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Most uses a token may be given.
pub(crate) const MAX_USES: u32 = 1_000_000;

/// `[tokens]` put to work: the secrets and the delimiters.
#[derive(Clone, Debug)]
pub struct Tokens {
    secrets: Vec<Vec<u8>>,
    delimiters: Vec<char>,
}

/// A tagged recipient, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tagged {
    /// The address without the tag, lower-cased: whom the token is for.
    pub recipient: String,
    pub tag: String,
}

/// Why a token does not let a message through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such token (never issued, or removed long after expiry).
    Unknown,
    /// The stored terms do not match the tag, or the token is another
    /// recipient's.
    Invalid,
    Revoked,
    Expired(u64),
    UsedUp(u32),
    /// The sender is not the one the token was given to.
    OutOfScope,
}

impl Refusal {
    /// The word in the log and the metrics label.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Invalid => "invalid",
            Self::Revoked => "revoked",
            Self::Expired(_) => "expired",
            Self::UsedUp(_) => "used_up",
            Self::OutOfScope => "out_of_scope",
        }
    }

    pub const WORDS: [&'static str; 6] = [
        "unknown",
        "invalid",
        "revoked",
        "expired",
        "used_up",
        "out_of_scope",
    ];

    /// The refusal the sender reads: what is wrong with the address, and
    /// whom to ask (the recipient, whose address the sender typed).
    pub fn reply(&self, tagged: &Tagged) -> Reply {
        let who = &tagged.recipient;
        let what = match self {
            Self::Unknown | Self::Invalid => "is not a valid address".to_string(),
            Self::Revoked => "was withdrawn by its owner".to_string(),
            Self::Expired(at) => format!("expired on {}", datetime(*at)),
            Self::UsedUp(n) => format!("has been used for all {n} messages it allowed"),
            Self::OutOfScope => "was not given for mail from this sender".to_string(),
        };
        Reply::new(
            Code::NOT_AUTHORISED,
            [
                format!("The token address for {who} {what}."),
                format!("Ask {who} for a new address if you should be writing to them."),
            ],
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl Tokens {
    /// `None` when `[tokens] secret_file` is not set (tokens are off).
    pub fn load(config: &TokensConfig) -> Result<Option<Self>, secrets::SecretError> {
        let Some(path) = &config.secret_file else {
            return Ok(None);
        };
        Ok(Some(Self {
            secrets: secrets::read(path, "token", secrets::MIN_LEN)?,
            delimiters: config.delimiter.chars().collect(),
        }))
    }

    /// `address` split into recipient and tag, if it carries one of ours:
    /// `LOCAL<delimiter>mk-TAG@DOMAIN`.
    pub fn parse(&self, address: &str) -> Option<Tagged> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        if address.len() > crate::state::MAX_ADDRESS {
            return None;
        }
        let (local, domain) = address.rsplit_once('@')?;
        let local = local.to_ascii_lowercase();
        let at = local.len().checked_sub(PREFIX.len() + TAG_LEN + 1)?;
        let (base, rest) = (local.get(..at)?, local.get(at..)?);
        let mut rest = rest.chars();
        let delimiter = rest.next()?;
        let rest = rest.as_str();
        let tag = rest.strip_prefix(PREFIX)?;
        let tag_ok = tag.len() == TAG_LEN && tag.bytes().all(|b| ALPHABET.contains(&b));
        if base.is_empty() || domain.is_empty() || !tag_ok || !self.delimiters.contains(&delimiter)
        {
            return None;
        }
        Some(Tagged {
            recipient: format!("{base}@{}", domain.to_ascii_lowercase()),
            tag: tag.to_string(),
        })
    }

    /// The tagged address for `token`, with the first delimiter.
    pub fn address(&self, token: &Token) -> String {
        let (local, domain) = token
            .recipient
            .rsplit_once('@')
            .unwrap_or((&token.recipient, ""));
        let delimiter = self.delimiters.first().copied().unwrap_or('+');
        format!("{local}{delimiter}{PREFIX}{}@{domain}", token.tag)
    }

    /// The tag of these terms under secret `key`.
    fn tag_with(key: &[u8], t: &Token) -> Option<String> {
        let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mac = secrets::hmac(
            key,
            &[
                b"mailkey-milter token v1",
                t.recipient.as_bytes(),
                t.scope.as_deref().unwrap_or("").as_bytes(),
                num(t.expires).as_bytes(),
                num(t.max_uses.map(u64::from)).as_bytes(),
                t.nonce.as_bytes(),
            ],
        )?;
        Some(encode(&mac))
    }

    /// Signs new terms: sets `token.tag` with the first secret.
    pub fn sign(&self, token: &mut Token) -> Option<()> {
        token.tag = Self::tag_with(self.secrets.first()?, token)?;
        Some(())
    }

    /// May mail from `sender` to `tagged` pass under the stored token
    /// `state` at `now`? The use itself is counted at the end of the
    /// message ([`crate::state::Store::use_token`]).
    pub(crate) fn judge(
        &self,
        tagged: &Tagged,
        state: Option<&TokenState>,
        sender: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        let state = state.ok_or(Refusal::Unknown)?;
        let t = &state.token;
        let genuine = self.secrets.iter().any(|key| {
            Self::tag_with(key, t)
                .is_some_and(|tag| secrets::same(tag.as_bytes(), t.tag.as_bytes()))
        });
        if !genuine || t.tag != tagged.tag || t.recipient != tagged.recipient {
            return Err(Refusal::Invalid);
        }
        if state.revoked.is_some() {
            return Err(Refusal::Revoked);
        }
        if let Some(at) = t.expires.filter(|at| *at <= now) {
            return Err(Refusal::Expired(at));
        }
        if let Some(max) = t.max_uses.filter(|max| state.used >= *max) {
            return Err(Refusal::UsedUp(max));
        }
        if !in_scope(t.scope.as_deref(), sender) {
            return Err(Refusal::OutOfScope);
        }
        Ok(())
    }
}

/// Does `sender` (the MAIL FROM address) fall under `scope`: an address
/// (equal, case-blind) or a domain (itself and its subdomains)?
pub(crate) fn in_scope(scope: Option<&str>, sender: &str) -> bool {
    let Some(scope) = scope else {
        return true;
    };
    let sender = sender.to_ascii_lowercase();
    if scope.contains('@') {
        return sender == scope;
    }
    let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
    domain == scope || domain.strip_suffix(scope).is_some_and(|p| p.ends_with('.'))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn datetime(secs: u64) -> String {
    use crate::rfc3339 as time;
    time::datetime(time::Nanos::from(secs) * time::SECOND)
}

/// The first [`TAG_LEN`] characters of `bytes` in [`ALPHABET`].
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(TAG_LEN);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        if out.len() == TAG_LEN {
            break;
        }
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && out.len() < TAG_LEN {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    out
}

/// The key under which a message's use is counted once: SHA-256 of its
/// `Message-ID` and body, which a client's re-send keeps (our MTA's
/// `Received:` line, with the queue ID, differs).
pub(crate) fn message_key(message_id: Option<&[u8]>, body: &[u8]) -> String {
    let mut h = openssl::sha::Sha256::new();
    h.update(message_id.unwrap_or_default());
    h.update(b"\0");
    h.update(body);
    h.finish()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            secrets: vec![b"a test secret of some length".to_vec()],
            delimiters: vec!['+', '-'],
        }
    }

    fn issued(scope: Option<&str>) -> TokenState {
        let mut token = Token {
            tag: String::new(),
            recipient: "alice@example.org".into(),
            scope: scope.map(str::to_string),
            expires: Some(1000),
            max_uses: Some(2),
            nonce: "0123456789abcdef".into(),
            created: 1,
        };
        tokens().sign(&mut token).unwrap();
        TokenState {
            token,
            used: 0,
            revoked: None,
        }
    }

    #[test]
    fn the_tagged_address_round_trips() {
        let t = issued(None);
        let address = tokens().address(&t.token);
        assert!(address.starts_with("alice+mk-") && address.ends_with("@example.org"));
        let tagged = tokens()
            .parse(&format!("<{}>", address.to_uppercase()))
            .unwrap();
        assert_eq!(tagged.recipient, "alice@example.org");
        assert_eq!(tokens().judge(&tagged, Some(&t), "x@y.test", 10), Ok(()));
        assert_eq!(tokens().parse("alice+shopping@example.org"), None);
        assert_eq!(tokens().parse("+mk-abcdefghijkm@example.org"), None);
        // Not ASCII (SMTPUTF8): no panic on a character boundary.
        assert_eq!(
            tokens()
                .parse("ålice+mk-abcdefghijkm@example.org")
                .map(|t| t.tag),
            Some("abcdefghijkm".into())
        );
        assert_eq!(tokens().parse("éééééééééééééééé@example.org"), None);
    }

    #[test]
    fn altered_terms_expiry_uses_scope_and_revocation_refuse() {
        let t = issued(Some("shop.test"));
        let tagged = tokens().parse(&tokens().address(&t.token)).unwrap();
        let judge = |s: &TokenState, from: &str, now| tokens().judge(&tagged, Some(s), from, now);
        assert_eq!(judge(&t, "news@mail.shop.test", 10), Ok(()));
        assert_eq!(judge(&t, "x@othershop.test", 10), Err(Refusal::OutOfScope));
        assert_eq!(judge(&t, "x@shop.test", 1000), Err(Refusal::Expired(1000)));
        let mut more = t.clone();
        more.token.max_uses = Some(1000);
        assert_eq!(judge(&more, "x@shop.test", 10), Err(Refusal::Invalid));
        let mut used = t.clone();
        used.used = 2;
        assert_eq!(judge(&used, "x@shop.test", 10), Err(Refusal::UsedUp(2)));
        let mut revoked = t.clone();
        revoked.revoked = Some(5);
        assert_eq!(judge(&revoked, "x@shop.test", 10), Err(Refusal::Revoked));
        let bob = Tagged {
            recipient: "bob@example.org".into(),
            tag: tagged.tag.clone(),
        };
        assert_eq!(
            tokens().judge(&bob, Some(&t), "x@shop.test", 10),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            tokens().judge(&tagged, None, "x@shop.test", 10),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn message_keys_follow_message_id_and_body() {
        let a = message_key(Some(b"<1@x>"), b"body");
        assert_eq!(a, message_key(Some(b"<1@x>"), b"body"));
        assert_ne!(a, message_key(Some(b"<2@x>"), b"body"));
        assert_ne!(a, message_key(Some(b"<1@x>"), b"other"));
        assert_eq!(a.len(), 24);
    }
}
