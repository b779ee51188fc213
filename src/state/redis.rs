//! The shared store: a Redis server every MX host of the domain talks to
//! (`[state] url = "redis://…"`). Keys start with `mailkey-milter:`:
//!
//! - `token:TAG`: a hash (the token's fields, `used`, `revoked`, `recent`),
//!   listed in the sorted set `tokens` (by creation time); an expiring
//!   token's keys expire [`super::EXPIRED_KEPT_SECS`] after it does;
//! - `allow:SENDER RECIPIENT`: a solved challenge's pair, expiring with it;
//! - `challenge:NONCE`: a hash (`attempts`, `solved`) expiring with the URL.
//!
//! Counting a use and solving a challenge are Lua scripts, which Redis runs
//! atomically: two hosts cannot both take a token's last use. Every command
//! gives up after `[state] timeout_ms`; the callers then defer the mail
//! (4xx), never guess (docs/decisions.md). A single Redis (or its
//! replicated primary) is supported, not Redis Cluster: the scripts touch
//! two keys.

use super::{Allow, ChallengeState, StateError, Store, Token, TokenState, Use, RECENT_USES};
use redis::{aio::ConnectionManager, AsyncCommands, Script};
use std::{collections::HashMap, future::Future, time::Duration};

const PREFIX: &str = "mailkey-milter:";

const USE_TOKEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', 0} end
local t = redis.call('HMGET', KEYS[1], 'used', 'max_uses', 'revoked', 'recent')
local used = tonumber(t[1]) or 0
if t[3] and t[3] ~= '' then return {'revoked', used} end
local recent = t[4] or ''
local keys = {}
for k in string.gmatch(recent, '%S+') do
  if k == ARGV[1] then return {'again', used} end
  table.insert(keys, k)
end
if t[2] and t[2] ~= '' and used >= tonumber(t[2]) then return {'used_up', used} end
table.insert(keys, ARGV[1])
local keep = tonumber(ARGV[2])
while #keys > keep do table.remove(keys, 1) end
used = used + 1
redis.call('HSET', KEYS[1], 'used', used, 'recent', table.concat(keys, ' '))
return {'counted', used}
";

const SOLVE: &str = r"
if redis.call('HGET', KEYS[1], 'solved') == '1' then return 0 end
redis.call('HSET', KEYS[1], 'solved', '1')
redis.call('EXPIREAT', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
local old = redis.call('TTL', KEYS[2])
if ttl > old then redis.call('SET', KEYS[2], '1', 'EX', ttl) end
return 1
";

const WRONG_ANSWER: &str = r"
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return n
";

pub struct RedisStore {
    url: String,
    conn: ConnectionManager,
    timeout_ms: u64,
}

impl RedisStore {
    /// Sets up the connection; it is made at the first command and made
    /// again by itself after a failure.
    pub fn connect(url: &str, timeout_ms: u64) -> Result<Self, StateError> {
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_millis(timeout_ms);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        // Lazy: a daemon starts while Redis is down (its mail is then
        // deferred where the store matters), and connects when it is back.
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            url: redacted(url),
            conn,
            timeout_ms,
        })
    }

    /// Runs one step under the time limit.
    async fn run<T>(
        &self,
        step: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(Duration::from_millis(self.timeout_ms), step).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StateError::Timeout(self.timeout_ms)),
        }
    }
}

/// The URL without its password, for the log.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn token_key(tag: &str) -> String {
    format!("{PREFIX}token:{tag}")
}

fn allow_key(sender: &str, recipient: &str) -> String {
    format!("{PREFIX}allow:{sender} {recipient}")
}

fn challenge_key(nonce: &str) -> String {
    format!("{PREFIX}challenge:{nonce}")
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_hash(tag: &str, h: &HashMap<String, String>) -> Option<TokenState> {
    let num = |k: &str| {
        h.get(k)
            .filter(|v| !v.is_empty())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(TokenState {
        token: Token {
            tag: tag.to_string(),
            recipient: h.get("recipient")?.clone(),
            scope: h.get("scope").filter(|s| !s.is_empty()).cloned(),
            expires: num("expires"),
            max_uses: num("max_uses").map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            nonce: h.get("nonce")?.clone(),
            created: num("created").unwrap_or(0),
        },
        used: num("used").map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        revoked: num("revoked"),
    })
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn put_token(&self, t: &Token) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let key = token_key(&t.tag);
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let fields = [
            ("recipient", t.recipient.clone()),
            ("scope", t.scope.clone().unwrap_or_default()),
            ("expires", opt(t.expires)),
            ("max_uses", opt(t.max_uses.map(u64::from))),
            ("nonce", t.nonce.clone()),
            ("created", t.created.to_string()),
            ("used", "0".into()),
            ("revoked", String::new()),
            ("recent", String::new()),
        ];
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .zadd(format!("{PREFIX}tokens"), &t.tag, i64_of(t.created))
            .ignore();
        if let Some(expires) = t.expires {
            let gone = i64_of(expires.saturating_add(super::EXPIRED_KEPT_SECS));
            pipe.expire_at(&key, gone).ignore();
        }
        self.run(pipe.query_async::<()>(&mut conn)).await
    }

    async fn token(&self, tag: &str) -> Result<Option<TokenState>, StateError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = self.run(conn.hgetall(token_key(tag))).await?;
        Ok(from_hash(tag, &h))
    }

    async fn tokens(&self) -> Result<Vec<TokenState>, StateError> {
        let mut conn = self.conn.clone();
        let tags: Vec<String> = self
            .run(conn.zrange(format!("{PREFIX}tokens"), 0, -1))
            .await?;
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            match self.token(&tag).await? {
                Some(t) => out.push(t),
                // Expired and gone: drop it from the index too.
                None => {
                    let mut conn = self.conn.clone();
                    let _: usize = self.run(conn.zrem(format!("{PREFIX}tokens"), &tag)).await?;
                }
            }
        }
        Ok(out)
    }

    async fn revoke(&self, tag: &str, now: u64) -> Result<bool, StateError> {
        let script = Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
             if (redis.call('HGET', KEYS[1], 'revoked') or '') == '' then \
               redis.call('HSET', KEYS[1], 'revoked', ARGV[1]) end return 1",
        );
        let mut conn = self.conn.clone();
        let mut call = script.key(token_key(tag));
        call.arg(now);
        let n: i64 = self.run(call.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    async fn use_token(&self, tag: &str, key: &str) -> Result<Use, StateError> {
        let script = Script::new(USE_TOKEN);
        let mut conn = self.conn.clone();
        let mut call = script.key(token_key(tag));
        call.arg(key).arg(RECENT_USES);
        let (word, n): (String, u32) = self.run(call.invoke_async(&mut conn)).await?;
        Ok(match word.as_str() {
            "counted" => Use::Counted(n),
            "again" => Use::Again(n),
            "used_up" => Use::UsedUp(n),
            "revoked" => Use::Revoked,
            _ => Use::Unknown,
        })
    }

    async fn allowed(&self, sender: &str, recipient: &str, _now: u64) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        self.run(conn.exists(allow_key(sender, recipient))).await
    }

    async fn challenge(&self, nonce: &str, _now: u64) -> Result<ChallengeState, StateError> {
        let mut conn = self.conn.clone();
        let (attempts, solved): (Option<u32>, Option<String>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(challenge_key(nonce))
                    .arg("attempts")
                    .arg("solved")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(ChallengeState {
            attempts: attempts.unwrap_or(0),
            solved: solved.as_deref() == Some("1"),
        })
    }

    async fn wrong_answer(&self, nonce: &str, until: u64, _now: u64) -> Result<u32, StateError> {
        let script = Script::new(WRONG_ANSWER);
        let mut conn = self.conn.clone();
        let mut call = script.key(challenge_key(nonce));
        call.arg(until);
        self.run(call.invoke_async(&mut conn)).await
    }

    async fn solve(
        &self,
        nonce: &str,
        until: u64,
        allow: &Allow<'_>,
        now: u64,
    ) -> Result<bool, StateError> {
        let script = Script::new(SOLVE);
        let mut conn = self.conn.clone();
        let mut call = script.key(challenge_key(nonce));
        call.key(allow_key(allow.sender, allow.recipient))
            .arg(until)
            .arg(allow.until)
            .arg(now);
        let n: i64 = self.run(call.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    fn describe(&self) -> String {
        format!("redis {}", self.url)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(
            super::redacted("redis://:hunter2@10.0.0.5:6379/1"),
            "redis://…@10.0.0.5:6379/1"
        );
        assert_eq!(super::redacted("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
