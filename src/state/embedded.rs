//! The embedded store: one SQLite file (WAL journal, `synchronous = FULL`),
//! so a use counted is on disk before the MTA hears the accept, and a
//! daemon killed at any point leaves the file consistent (SQLite's
//! journal rolls back an unfinished transaction at the next open). Several
//! processes may open it at once: the daemon, and the `token` commands an
//! operator runs beside it (each step waits up to 5 s for another's lock).
//!
//! The connection is used from the blocking pool: a step takes
//! microseconds, a commit one fsync.

use super::{Allow, ChallengeState, StateError, Store, Token, TokenState, Use, RECENT_USES};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    tag TEXT PRIMARY KEY, recipient TEXT NOT NULL, scope TEXT,
    expires INTEGER, max_uses INTEGER, nonce TEXT NOT NULL,
    created INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER, recent TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS allow (
    sender TEXT NOT NULL, recipient TEXT NOT NULL, until INTEGER NOT NULL,
    PRIMARY KEY (sender, recipient));
CREATE TABLE IF NOT EXISTS challenges (
    nonce TEXT PRIMARY KEY, until INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, solved INTEGER NOT NULL DEFAULT 0);
";

pub struct FileStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl FileStore {
    /// Opens (or creates) the file; its directory must exist.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never wait for the writer; FULL: a commit is on
        // disk when it returns (power loss included).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Tags are secrets: only the daemon's user reads the file.
            let mode = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(path, mode).map_err(|source| StateError::Io {
                path: path.into(),
                source,
            })?;
        }
        Ok(Self {
            path: path.into(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = match conn.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            f(&mut guard)
        })
        .await
        .map_err(|e| StateError::Worker(e.to_string()))?
        .map_err(StateError::from)
    }

    /// Removes what has expired: allowlisted pairs, challenges, and tokens
    /// past [`super::EXPIRED_KEPT_SECS`].
    async fn remove_expired(&self, now: u64) -> Result<(), StateError> {
        let now = to_sql(now);
        let kept = to_sql(super::EXPIRED_KEPT_SECS);
        self.with(move |c| {
            c.execute("DELETE FROM allow WHERE until <= ?1", [now])?;
            c.execute("DELETE FROM challenges WHERE until <= ?1", [now])?;
            c.execute(
                "DELETE FROM tokens WHERE expires IS NOT NULL AND expires + ?2 <= ?1",
                [now, kept],
            )?;
            Ok(())
        })
        .await
    }
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn row_to_state(row: &rusqlite::Row<'_>) -> Result<TokenState, rusqlite::Error> {
    Ok(TokenState {
        token: Token {
            tag: row.get(0)?,
            recipient: row.get(1)?,
            scope: row.get(2)?,
            expires: row.get::<_, Option<i64>>(3)?.map(from_sql),
            max_uses: row
                .get::<_, Option<i64>>(4)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            nonce: row.get(5)?,
            created: from_sql(row.get(6)?),
        },
        used: u32::try_from(row.get::<_, i64>(7)?).unwrap_or(u32::MAX),
        revoked: row.get::<_, Option<i64>>(8)?.map(from_sql),
    })
}

const COLUMNS: &str = "tag, recipient, scope, expires, max_uses, nonce, created, used, revoked";

#[async_trait::async_trait]
impl Store for FileStore {
    async fn put_token(&self, token: &Token) -> Result<(), StateError> {
        let t = token.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO tokens (tag, recipient, scope, expires, max_uses, nonce, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.tag,
                    t.recipient,
                    t.scope,
                    t.expires.map(to_sql),
                    t.max_uses,
                    t.nonce,
                    to_sql(t.created)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, tag: &str) -> Result<Option<TokenState>, StateError> {
        let tag = tag.to_string();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM tokens WHERE tag = ?1"),
                [tag],
                row_to_state,
            )
            .optional()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenState>, StateError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tokens ORDER BY created, tag"
            ))?;
            let rows = stmt.query_map([], row_to_state)?;
            rows.collect()
        })
        .await
    }

    async fn revoke(&self, tag: &str, now: u64) -> Result<bool, StateError> {
        let tag = tag.to_string();
        self.with(move |c| {
            let n = c.execute(
                "UPDATE tokens SET revoked = COALESCE(revoked, ?2) WHERE tag = ?1",
                params![tag, to_sql(now)],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn use_token(&self, tag: &str, key: &str) -> Result<Use, StateError> {
        let (tag, key) = (tag.to_string(), key.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(i64, Option<i64>, Option<i64>, String)> = tx
                .query_row(
                    "SELECT used, max_uses, revoked, recent FROM tokens WHERE tag = ?1",
                    [&tag],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((used, max, revoked, recent)) = row else {
                return Ok(Use::Unknown);
            };
            let used = u32::try_from(used).unwrap_or(u32::MAX);
            let outcome = if revoked.is_some() {
                Use::Revoked
            } else if recent.split(' ').any(|k| k == key) {
                Use::Again(used)
            } else if max.is_some_and(|m| i64::from(used) >= m) {
                Use::UsedUp(used)
            } else {
                let recent = remember(&recent, &key);
                tx.execute(
                    "UPDATE tokens SET used = used + 1, recent = ?2 WHERE tag = ?1",
                    params![tag, recent],
                )?;
                Use::Counted(used.saturating_add(1))
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn allowed(&self, sender: &str, recipient: &str, now: u64) -> Result<bool, StateError> {
        let (s, r) = (sender.to_string(), recipient.to_string());
        self.with(move |c| {
            c.query_row(
                "SELECT 1 FROM allow WHERE sender = ?1 AND recipient = ?2 AND until > ?3",
                params![s, r, to_sql(now)],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
        .await
    }

    async fn challenge(&self, nonce: &str, now: u64) -> Result<ChallengeState, StateError> {
        let nonce = nonce.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT attempts, solved FROM challenges WHERE nonce = ?1 AND until > ?2",
                params![nonce, to_sql(now)],
                |r| {
                    Ok(ChallengeState {
                        attempts: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                        solved: r.get::<_, i64>(1)? != 0,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn wrong_answer(&self, nonce: &str, until: u64, now: u64) -> Result<u32, StateError> {
        let nonce = nonce.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM challenges WHERE nonce = ?1 AND until <= ?2",
                params![nonce, to_sql(now)],
            )?;
            tx.execute(
                "INSERT INTO challenges (nonce, until, attempts) VALUES (?1, ?2, 1) \
                 ON CONFLICT (nonce) DO UPDATE SET attempts = attempts + 1",
                params![nonce, to_sql(until)],
            )?;
            let n: i64 = tx.query_row(
                "SELECT attempts FROM challenges WHERE nonce = ?1",
                [&nonce],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn solve(
        &self,
        nonce: &str,
        until: u64,
        allow: &Allow<'_>,
        now: u64,
    ) -> Result<bool, StateError> {
        let nonce = nonce.to_string();
        let (sender, recipient, allow_until) = (
            allow.sender.to_string(),
            allow.recipient.to_string(),
            to_sql(allow.until),
        );
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let solved: Option<i64> = tx
                .query_row(
                    "SELECT solved FROM challenges WHERE nonce = ?1 AND until > ?2",
                    params![nonce, to_sql(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if solved.is_some_and(|s| s != 0) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO challenges (nonce, until, solved) VALUES (?1, ?2, 1) \
                 ON CONFLICT (nonce) DO UPDATE SET solved = 1, until = ?2",
                params![nonce, to_sql(until)],
            )?;
            tx.execute(
                "INSERT INTO allow (sender, recipient, until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (sender, recipient) DO UPDATE SET until = MAX(until, ?3)",
                params![sender, recipient, allow_until],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn purge(&self, now: u64) -> Result<(), StateError> {
        self.remove_expired(now).await
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// `recent` (space-separated keys) with `key` added, the oldest dropped
/// beyond [`RECENT_USES`].
pub(super) fn remember(recent: &str, key: &str) -> String {
    let mut keys: Vec<&str> = recent.split(' ').filter(|k| !k.is_empty()).collect();
    keys.push(key);
    let skip = keys.len().saturating_sub(RECENT_USES);
    keys[skip..].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(tag: &str, max: Option<u32>) -> Token {
        Token {
            tag: tag.into(),
            recipient: "alice@example.org".into(),
            scope: None,
            expires: None,
            max_uses: max,
            nonce: "00".into(),
            created: 1,
        }
    }

    #[tokio::test]
    async fn uses_are_counted_once_per_message_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("mk-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        let store = FileStore::open(&path).unwrap();
        store.put_token(&token("t1", Some(2))).await.unwrap();
        assert_eq!(store.use_token("t1", "m1").await.unwrap(), Use::Counted(1));
        assert_eq!(store.use_token("t1", "m1").await.unwrap(), Use::Again(1));
        drop(store);
        let store = FileStore::open(&path).unwrap();
        assert_eq!(store.use_token("t1", "m2").await.unwrap(), Use::Counted(2));
        assert_eq!(store.use_token("t1", "m3").await.unwrap(), Use::UsedUp(2));
        assert_eq!(store.use_token("nope", "m3").await.unwrap(), Use::Unknown);
        assert!(store.revoke("t1", 5).await.unwrap());
        assert_eq!(store.use_token("t1", "m4").await.unwrap(), Use::Revoked);
        let allow = Allow {
            sender: "bob@shop.test",
            recipient: "alice@example.org",
            until: 100,
        };
        assert!(store.solve("n1", 50, &allow, 10).await.unwrap());
        assert!(!store.solve("n1", 50, &allow, 11).await.unwrap());
        assert!(store
            .allowed("bob@shop.test", "alice@example.org", 99)
            .await
            .unwrap());
        assert!(!store
            .allowed("bob@shop.test", "alice@example.org", 100)
            .await
            .unwrap());
        assert_eq!(store.wrong_answer("n2", 50, 10).await.unwrap(), 1);
        assert_eq!(store.wrong_answer("n2", 50, 10).await.unwrap(), 2);
        store.purge(200).await.unwrap();
        assert_eq!(
            store.challenge("n2", 10).await.unwrap(),
            ChallengeState::default()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn recent_keys_are_bounded() {
        let mut recent = String::new();
        for i in 0..100 {
            recent = remember(&recent, &format!("k{i}"));
        }
        assert_eq!(recent.split(' ').count(), RECENT_USES);
        assert!(recent.ends_with("k99"));
        assert!(!recent.contains("k67 "));
    }
}
