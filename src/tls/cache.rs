//! The probe cache: what was found out about a client, remembered for as
//! long as it is likely to stay true, so that a sending host is probed once,
//! not per message.
//!
//! One record per client IP, behind an async mutex: whoever holds it may
//! probe that IP, so at most one probe per IP is in flight and concurrent
//! transactions from the same IP wait for its result instead of starting
//! their own (single flight). Only a certificate depends on the HELO name
//! (it is sent as SNI, and a server may choose its certificate by it);
//! everything decided before the handshake — no STARTTLS, a port that
//! cannot be probed — holds for every HELO name of the IP. So a client
//! that varies its HELO name gets at most [`MAX_HELO_VARIANTS`] probes per
//! lifetime below, however many names it tries.
//!
//! The cache is bounded in bytes, not in entries: a certificate may carry
//! thousands of names (OpenSSL reads a chain of up to 100 KiB), so each
//! record weighs what it holds ([`IpRecord::bytes`]).

use super::ProbeOutcome;
use moka::future::Cache;
use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::sync::Mutex;

/// How long a result is remembered: a verified host for an hour, a bad
/// certificate for ten minutes (the sender may be fixing it), a probe that
/// could not finish for one minute (enough to spare a host that is down
/// from a probe per queued message).
const PASS_TTL: Duration = Duration::from_secs(3600);
const FAIL_TTL: Duration = Duration::from_secs(600);
const TEMP_TTL: Duration = Duration::from_secs(60);
/// What the records of all client IPs may hold together, in bytes (about
/// 14,000 records of an ordinary certificate's few names).
pub(crate) const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// What a record weighs besides its text: the record, its findings and
/// the cache's bookkeeping, rounded up.
const RECORD_OVERHEAD: usize = 512;
/// Certificates fetched per client IP with different SNI (HELO) names
/// within their lifetime; a further name is judged against those already
/// fetched instead of probing again.
pub(crate) const MAX_HELO_VARIANTS: usize = 4;

/// What one conversation with a client's port established, before its
/// certificate's names are matched against a transaction's HELO name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A trusted, valid, unrevoked certificate.
    Certificate {
        /// The names it is for (SANs, or the CN).
        names: Vec<String>,
        /// Its subject CN (or first name), for the header.
        subject: String,
        /// The TLS version the probe negotiated.
        version: String,
    },
    /// Decided without names: no STARTTLS, a bad certificate, a probe that
    /// could not finish.
    Outcome(ProbeOutcome),
}

impl Finding {
    fn ttl(&self) -> Duration {
        match self {
            Finding::Certificate { .. } | Finding::Outcome(ProbeOutcome::Verified { .. }) => {
                PASS_TTL
            }
            Finding::Outcome(ProbeOutcome::NoStartTls(_) | ProbeOutcome::BadCertificate(_)) => {
                FAIL_TTL
            }
            Finding::Outcome(ProbeOutcome::TempError(_)) => TEMP_TTL,
        }
    }

    /// Holds for every HELO name: decided before the TLS handshake (or, for
    /// a probe that could not finish, treated so — see the module doc).
    fn for_every_name(&self) -> bool {
        matches!(
            self,
            Finding::Outcome(ProbeOutcome::NoStartTls(_) | ProbeOutcome::TempError(_))
        )
    }

    /// The text it holds, with what each string costs besides.
    fn bytes(&self) -> usize {
        const STRING: usize = std::mem::size_of::<String>();
        match self {
            Finding::Certificate {
                names,
                subject,
                version,
            } => {
                names.iter().map(|n| n.len() + STRING).sum::<usize>()
                    + subject.len()
                    + version.len()
            }
            Finding::Outcome(o) => match o {
                ProbeOutcome::Verified {
                    name,
                    subject,
                    version,
                } => name.len() + subject.len() + version.len(),
                ProbeOutcome::NoStartTls(why)
                | ProbeOutcome::BadCertificate(why)
                | ProbeOutcome::TempError(why) => why.text.len(),
            },
        }
    }

    fn covers(&self, host: &str) -> bool {
        match self {
            Finding::Certificate { names, .. } => {
                names.iter().any(|p| super::names::name_matches(p, host))
            }
            Finding::Outcome(_) => false,
        }
    }
}

/// What is known about one client IP.
#[derive(Debug, Default)]
pub(crate) struct IpRecord {
    /// A finding that holds whatever the HELO name, and when it expires.
    every_name: Option<(Finding, Instant)>,
    /// Findings per SNI name sent (`None`: none sent), oldest first, at
    /// most [`MAX_HELO_VARIANTS`].
    by_sni: Vec<(Option<String>, Finding, Instant)>,
}

impl IpRecord {
    /// The finding that answers for a transaction with HELO `helo` (sent as
    /// `sni`), if no new probe is needed.
    pub fn lookup(&mut self, sni: Option<&str>, helo: &str, now: Instant) -> Option<Finding> {
        self.every_name = self.every_name.take().filter(|(_, until)| *until > now);
        self.by_sni.retain(|(_, _, until)| *until > now);
        if let Some((finding, _)) = &self.every_name {
            return Some(finding.clone());
        }
        let same_sni = self.by_sni.iter().find(|(s, _, _)| s.as_deref() == sni);
        // A certificate fetched for another name may cover this one too
        // (`*.example.org`): no need to ask again.
        let covering = || self.by_sni.iter().find(|(_, f, _)| f.covers(helo));
        let latest = || {
            (self.by_sni.len() >= MAX_HELO_VARIANTS)
                .then(|| self.by_sni.last())
                .flatten()
        };
        same_sni
            .or_else(covering)
            .or_else(latest)
            .map(|(_, f, _)| f.clone())
    }

    /// Remembers what a probe sending `sni` found.
    pub fn store(&mut self, sni: Option<String>, finding: Finding, now: Instant) {
        let until = now + finding.ttl();
        if finding.for_every_name() {
            self.every_name = Some((finding, until));
            return;
        }
        self.by_sni.retain(|(s, _, _)| *s != sni);
        if self.by_sni.len() >= MAX_HELO_VARIANTS {
            self.by_sni.remove(0);
        }
        self.by_sni.push((sni, finding, until));
    }

    /// What the record weighs in the cache.
    pub fn bytes(&self) -> usize {
        let every = self.every_name.as_ref().map_or(0, |(f, _)| f.bytes());
        let by_sni: usize = self
            .by_sni
            .iter()
            .map(|(sni, f, _)| sni.as_ref().map_or(0, String::len) + f.bytes())
            .sum();
        RECORD_OVERHEAD + every + by_sni
    }
}

/// One client IP's record in the cache, with its weight when last stored.
pub(crate) struct Entry {
    pub record: Arc<Mutex<IpRecord>>,
    weight: AtomicU32,
}

/// The records of all client IPs.
#[derive(Clone)]
pub(crate) struct ProbeCache(Cache<IpAddr, Arc<Entry>>);

impl ProbeCache {
    pub fn new() -> Self {
        // Records expire entry by entry (see `lookup`); an IP not seen for
        // the longest lifetime has nothing left worth keeping.
        Self(
            Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, entry: &Arc<Entry>| entry.weight.load(Ordering::Relaxed))
                .time_to_idle(PASS_TTL)
                .build(),
        )
    }

    /// The record of `ip` (a new, empty one for a new IP).
    pub async fn record(&self, ip: IpAddr) -> Arc<Entry> {
        let new = || {
            Arc::new(Entry {
                record: Arc::default(),
                weight: AtomicU32::new(RECORD_OVERHEAD as u32),
            })
        };
        self.0.get_with(ip, async { new() }).await
    }

    /// Weighs `entry` again after a store that left it `bytes` heavy: the
    /// cache weighs an entry when it is inserted, so it is inserted again.
    pub(crate) async fn reweigh(&self, ip: IpAddr, entry: &Arc<Entry>, bytes: usize) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        entry.weight.store(bytes, Ordering::Relaxed);
        self.0.insert(ip, entry.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> Finding {
        Finding::Certificate {
            names: vec![name.into()],
            subject: name.into(),
            version: "TLSv1.3".into(),
        }
    }

    #[test]
    fn failures_before_the_handshake_answer_for_every_helo_name() {
        let now = Instant::now();
        let mut r = IpRecord::default();
        let down = Finding::Outcome(ProbeOutcome::TempError(super::super::Problem::new(
            super::super::ProbeKind::Timeout,
            "timed out",
        )));
        r.store(Some("a.test".into()), down.clone(), now);
        assert_eq!(r.lookup(Some("b.test"), "b.test", now), Some(down));
        assert_eq!(r.lookup(Some("b.test"), "b.test", now + TEMP_TTL), None);
    }

    #[test]
    fn helo_variants_per_ip_are_bounded() {
        let now = Instant::now();
        let mut r = IpRecord::default();
        for i in 0..MAX_HELO_VARIANTS {
            let name = format!("h{i}.test");
            assert_eq!(r.lookup(Some(&name), &name, now), None, "{name}");
            r.store(Some(name.clone()), cert(&name), now);
        }
        // One name more: answered by the latest certificate, no probe.
        let last = format!("h{}.test", MAX_HELO_VARIANTS - 1);
        assert_eq!(
            r.lookup(Some("new.test"), "new.test", now),
            Some(cert(&last))
        );
        // A name a fetched certificate covers needs no probe either.
        let mut r = IpRecord::default();
        r.store(Some("a.x.test".into()), cert("*.x.test"), now);
        assert_eq!(
            r.lookup(Some("b.x.test"), "b.x.test", now),
            Some(cert("*.x.test"))
        );
        assert_eq!(r.lookup(Some("b.y.test"), "b.y.test", now), None);
    }

    /// Certificates with thousands of names cannot make the cache big: it
    /// holds at most [`CACHE_BYTES`] of what its records hold.
    #[tokio::test]
    async fn the_cache_is_bounded_in_bytes_not_entries() {
        let cache = ProbeCache::new();
        let names: Vec<String> = (0..2000).map(|i| format!("{i:0>90}.many.test")).collect();
        let big = Finding::Certificate {
            names,
            subject: "many.test".into(),
            version: "TLSv1.3".into(),
        };
        // 64 clients of ~200 KB each: 12.8 MB offered.
        for i in 0..64u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            let entry = cache.record(ip).await;
            let bytes = {
                let mut record = entry.record.lock().await;
                record.store(Some("many.test".into()), big.clone(), Instant::now());
                record.bytes()
            };
            assert!(bytes > 200_000, "{bytes}");
            cache.reweigh(ip, &entry, bytes).await;
        }
        cache.0.run_pending_tasks().await;
        let held: usize = cache
            .0
            .iter()
            .map(|(_, e)| e.record.try_lock().map_or(0, |r| r.bytes()))
            .sum();
        assert!(held > 0);
        assert!(held as u64 <= CACHE_BYTES, "{held} bytes held");
    }
}
