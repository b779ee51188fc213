//! The state behind recipients' controls (docs/decisions.md, "Letting
//! wanted senders through"): issued tokens with their use counts and
//! revocations, solved challenges and the (sender, recipient) pairs they
//! allowlist. One trait, two backends:
//!
//! - [`embedded`]: one SQLite file on the host (the default; no server).
//!   The `token` commands write to it while the daemon runs.
//! - [`redis`]: a Redis server every MX host of a domain shares, so that a
//!   token used up at one host is used up at all, and a challenge solved
//!   through one host's page lets the re-send through any.
//!
//! Every operation that must not count twice (a token use, a solved
//! challenge) is one atomic step in the store: a SQLite `IMMEDIATE`
//! transaction, a Redis Lua script. Callers pass the time (`now`, seconds
//! since the epoch), so expiry is testable.

pub mod embedded;
pub mod redis;

use crate::config::StateConfig;
use std::sync::Arc;

/// The longest address kept (RFC 5321 §4.5.3.1.3: a path is at most 256
/// octets with its angle brackets). Longer ones get no token lookup and no
/// challenge, so no key in the store is longer.
pub(crate) const MAX_ADDRESS: usize = 254;
/// Message keys remembered per token: a re-send of one of the last this
/// many accepted messages (the daemon died after counting, before the MTA
/// heard the accept) is not counted again.
pub(crate) const RECENT_USES: usize = 32;
/// Expired tokens stay listed this long, then are removed.
pub(crate) const EXPIRED_KEPT_SECS: u64 = 30 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("the state store did not answer within {0} ms")]
    Timeout(u64),
    #[error("state file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the state store's worker failed: {0}")]
    Worker(String),
}

/// A token as issued. Everything here is covered by the tag's HMAC
/// (src/tokens/mod.rs); `used` and `revoked` are state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The tag after `mk-`, which is also the token's ID.
    pub tag: String,
    /// The address it is for, lower-cased, without the tag.
    pub recipient: String,
    /// A sender domain (with its subdomains) or address; `None`: anyone.
    pub scope: Option<String>,
    /// Seconds since the epoch; `None`: never.
    pub expires: Option<u64>,
    /// `None`: unlimited.
    pub max_uses: Option<u32>,
    /// Random, hex: makes each token's HMAC input unique.
    pub nonce: String,
    pub created: u64,
}

/// A token with its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    pub token: Token,
    pub used: u32,
    /// When it was revoked.
    pub revoked: Option<u64>,
}

/// What counting one use did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Counted: this is use number `n`.
    Counted(u32),
    /// This message was counted before (a re-send): not counted again.
    Again(u32),
    /// Every use is gone (`n` used).
    UsedUp(u32),
    Revoked,
    Unknown,
}

/// A challenge's state: answers tried, and whether it was solved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChallengeState {
    pub attempts: u32,
    pub solved: bool,
}

/// The pair a solved challenge allowlists, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow<'a> {
    pub sender: &'a str,
    pub recipient: &'a str,
    pub until: u64,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Adds an issued token.
    async fn put_token(&self, token: &Token) -> Result<(), StateError>;
    async fn token(&self, tag: &str) -> Result<Option<TokenState>, StateError>;
    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenState>, StateError>;
    /// `false`: no such token.
    async fn revoke(&self, tag: &str, now: u64) -> Result<bool, StateError>;
    /// Counts one use of `tag` for the message `key`, atomically: not when
    /// revoked or used up, and not twice for one `key`.
    async fn use_token(&self, tag: &str, key: &str) -> Result<Use, StateError>;
    /// Is (sender, recipient) allowlisted by a solved challenge at `now`?
    async fn allowed(&self, sender: &str, recipient: &str, now: u64) -> Result<bool, StateError>;
    async fn challenge(&self, nonce: &str, now: u64) -> Result<ChallengeState, StateError>;
    /// One wrong answer to challenge `nonce` (kept until `until`): the
    /// attempts so far, this one included.
    async fn wrong_answer(&self, nonce: &str, until: u64, now: u64) -> Result<u32, StateError>;
    /// Marks `nonce` solved (kept until `until`) and allowlists the pair,
    /// atomically; `false` when it was solved before (one-time URLs).
    async fn solve(
        &self,
        nonce: &str,
        until: u64,
        allow: &Allow<'_>,
        now: u64,
    ) -> Result<bool, StateError>;
    /// Removes what has expired (Redis does it by itself).
    async fn purge(&self, _now: u64) -> Result<(), StateError> {
        Ok(())
    }
    /// Which backend, for the log.
    fn describe(&self) -> String;
}

/// Opens the store `[state]` names: Redis with `url`, else the file at
/// `path`.
pub fn open(config: &StateConfig) -> Result<Arc<dyn Store>, StateError> {
    match &config.url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(
            url,
            config.timeout_ms,
        )?)),
        None => Ok(Arc::new(embedded::FileStore::open(&config.path)?)),
    }
}
