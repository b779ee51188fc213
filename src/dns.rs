//! DNS: one hickory resolver built from the configuration, and moka caches
//! behind mail-auth's `DnsCache` so that SPF, MX and key lookups share answers
//! across messages for as long as their TTL allows.

use crate::{config::DnsConfig, protocol::KeyLookup};
use mail_auth::{
    dkim::DomainKey,
    dns::{DnsCache, Mx, Negative, RecordSet, ResolverCache, TxtRecord},
    hickory_resolver::{
        config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts},
        net::{DnsError, NetError},
        proto::{
            op::ResponseCode,
            rr::{Name, RData},
        },
        system_conf::read_system_conf,
    },
    MessageAuthenticator,
};
use moka::{sync::Cache, Expiry};
use prometheus_client::metrics::{counter::Counter, family::Family};
use std::{
    borrow::Borrow,
    future::Future,
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

/// How the caches are used, counted here; src/metrics.rs registers these
/// same counters and so reads them at scrape time (the DNS layer needs
/// nothing of the metrics: ARCHITECTURE.md, "Module graph").
#[derive(Debug)]
pub(crate) struct CacheCounters {
    /// Lookups by `outcome`: `hit`, `miss`.
    pub lookups: Family<[(&'static str, &'static str); 1], Counter>,
    /// Entries evicted because a cache was full.
    pub evictions: Counter,
}

/// The cache counters of every [`Dns`] in the process.
pub(crate) static CACHE_COUNTERS: LazyLock<CacheCounters> = LazyLock::new(|| {
    let counters = CacheCounters {
        lookups: Family::default(),
        evictions: Counter::default(),
    };
    for outcome in ["hit", "miss"] {
        let _ = counters.lookups.get_or_create(&[("outcome", outcome)]);
    }
    counters
});

fn count_lookup(hit: bool) {
    let outcome = if hit { "hit" } else { "miss" };
    CACHE_COUNTERS
        .lookups
        .get_or_create(&[("outcome", outcome)])
        .inc();
}

/// Failure to set up the resolver.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverSetupError(String);

/// The outcome of a raw TXT query, classified the way every check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxtAnswer {
    /// The records, each with its character-strings joined.
    Records(Vec<Vec<u8>>),
    /// NXDOMAIN or NODATA: the name has no TXT records.
    NotFound,
    /// Time-out, SERVFAIL, network failure: try again later.
    TempError(String),
}

/// The shared resolver and caches. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    /// mail-auth's resolver front; reached through the methods below.
    authenticator: MessageAuthenticator,
    /// The record caches mail-auth reads.
    caches: Arc<DnsCaches>,
    /// Raw TXT answers (every record, not only the first that parses:
    /// mailkey rotation publishes several keys at one name).
    raw_txt: Cache<Box<str>, Timed<TxtAnswer>>,
    /// The key records at `mailkey.D`, parsed once per TTL (not once per
    /// message), by owner name and weighed by their record bytes like
    /// `raw_txt`; their raw answers are not kept a second time there.
    keys: Cache<Box<str>, Timed<Arc<KeyLookup>>>,
}

impl Dns {
    pub fn new(config: &DnsConfig) -> Result<Self, ResolverSetupError> {
        let (resolver_config, mut opts) = if config.nameservers.is_empty() {
            match read_system_conf() {
                Ok(system) => system,
                Err(e) => {
                    tracing::warn!(
                        "cannot read the system resolver configuration ({e}); using 127.0.0.1:53"
                    );
                    (
                        servers(&[SocketAddr::from(([127, 0, 0, 1], 53))]),
                        ResolverOpts::default(),
                    )
                }
            }
        } else {
            let addrs: Vec<SocketAddr> = config.nameservers.iter().map(|n| n.0).collect();
            (servers(&addrs), ResolverOpts::default())
        };
        opts.timeout = Duration::from_millis(config.timeout_ms);
        opts.attempts = 2;
        // Our moka caches hold the answers; hickory's own cache would keep
        // them a second time under different rules.
        opts.cache_size = 0;
        opts.try_tcp_on_error = true;
        let authenticator = MessageAuthenticator::new(resolver_config, opts)
            .map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self {
            authenticator,
            caches: Arc::new(DnsCaches::new(config.cache_size)),
            raw_txt: Cache::builder()
                .max_capacity(config.cache_size)
                .weigher(|_, answer: &Timed<TxtAnswer>| weight(&answer.value))
                .expire_after(TtlExpiry)
                .build(),
            keys: Cache::builder()
                .max_capacity(config.cache_size)
                .weigher(|_, keys: &Timed<Arc<KeyLookup>>| units(keys.value.bytes()))
                .expire_after(TtlExpiry)
                .build(),
        })
    }

    /// Entries in every cache, for the metrics.
    pub(crate) fn cache_entries(&self) -> u64 {
        self.raw_txt.entry_count() + self.keys.entry_count() + self.caches.entry_count()
    }

    /// The key records at `name` (a `mailkey.D`), parsed
    /// ([`KeyLookup::from_answer`]) and cached as parsed for their TTL
    /// (errors are not cached): a record is parsed once per TTL, not once
    /// per message.
    pub(crate) async fn key_records(&self, name: &str) -> Arc<KeyLookup> {
        let parse = |answer| Arc::new(KeyLookup::from_answer(answer));
        self.txt_cached(&self.keys, name, parse).await
    }

    /// All TXT records at `name`, cached for their TTL (errors are not cached).
    pub async fn txt(&self, name: &str) -> TxtAnswer {
        self.txt_cached(&self.raw_txt, name, |answer| answer).await
    }

    /// The TXT answer at `name` made into a `V` by `make`, from `cache` or
    /// queried and kept there for its TTL (errors are not cached).
    async fn txt_cached<V: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<Box<str>, Timed<V>>,
        name: &str,
        make: impl FnOnce(TxtAnswer) -> V,
    ) -> V {
        let key = fqdn(name);
        let hit = cache.get(key.as_str());
        count_lookup(hit.is_some());
        if let Some(hit) = hit {
            return hit.value;
        }
        let (answer, until) = self.query_txt(&key).await;
        let value = make(answer);
        if let Some(until) = until {
            cache.insert(key.into(), Timed::new(value.clone(), until));
        }
        value
    }

    /// Puts `answer` for `name` into the TXT cache for an hour, as a
    /// lookup would have: for benchmarks, which measure the per-message
    /// work with keys cached (the steady state), without a DNS server.
    #[doc(hidden)]
    pub fn preload_txt(&self, name: &str, answer: TxtAnswer) {
        let until = Instant::now() + Duration::from_secs(3600);
        self.raw_txt
            .insert(fqdn(name).into(), Timed::new(answer, until));
    }

    async fn query_txt(&self, name: &str) -> (TxtAnswer, Option<Instant>) {
        let Ok(qname) = Name::from_str_relaxed(name) else {
            return (TxtAnswer::NotFound, None);
        };
        match self.authenticator.resolver().txt_lookup(qname).await {
            Ok(lookup) => {
                let records = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .flat_map(|s| s.iter().copied())
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect::<Vec<Vec<u8>>>();
                let answer = if records.is_empty() {
                    TxtAnswer::NotFound
                } else {
                    TxtAnswer::Records(records)
                };
                (answer, Some(lookup.valid_until()))
            }
            Err(e) => match not_found_ttl(&e) {
                Some(ttl) => (TxtAnswer::NotFound, Some(Instant::now() + ttl)),
                None => (TxtAnswer::TempError(e.to_string()), None),
            },
        }
    }
}

/// Bytes per unit of `cache_size` in the raw TXT cache.
pub(crate) const CACHE_UNIT: usize = 512;

/// A raw TXT answer weighs one unit per [`CACHE_UNIT`] bytes started: a
/// sender's domain may publish records of up to 64 KiB, which must not fill
/// memory at the same count as a 200-byte SPF record. The cache thus holds
/// at most about `cache_size` × 512 bytes of record data.
fn weight(answer: &TxtAnswer) -> u32 {
    let bytes = match answer {
        TxtAnswer::Records(records) => records.iter().map(Vec::len).sum(),
        TxtAnswer::NotFound => 0,
        TxtAnswer::TempError(e) => e.len(),
    };
    units(bytes)
}

/// Cache units of `bytes`: one per [`CACHE_UNIT`] started, at least one.
fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(CACHE_UNIT).max(1)).unwrap_or(u32::MAX)
}

/// The record data an entry of mail-auth's caches holds, for the same
/// weighing as the raw TXT cache: a hostile zone answering a 64 KiB MX or
/// PTR set for every sender domain fills the cache by bytes, not by count.
pub(crate) trait CacheWeight {
    fn bytes(&self) -> usize;
}

impl CacheWeight for TxtRecord {
    /// A parsed key or policy record: its TXT source is bounded by the key
    /// record rules (docs/protocol.md), so one unit.
    fn bytes(&self) -> usize {
        CACHE_UNIT
    }
}

impl CacheWeight for Mx {
    fn bytes(&self) -> usize {
        self.exchanges.iter().map(|e| e.len() + 2).sum::<usize>() + 2
    }
}

impl CacheWeight for Ipv4Addr {
    fn bytes(&self) -> usize {
        4
    }
}

impl CacheWeight for Ipv6Addr {
    fn bytes(&self) -> usize {
        16
    }
}

impl CacheWeight for Box<str> {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// What a cached lookup holds: its records' octets, and a little per key
/// for the parsed key beside them.
impl CacheWeight for KeyLookup {
    fn bytes(&self) -> usize {
        match self {
            Self::Published { keys, records, .. } => {
                records.iter().map(|r| r.raw.len()).sum::<usize>()
                    + keys.iter().map(|k| k.public.len() + 64).sum::<usize>()
            }
            Self::NoKey => 0,
            Self::TempError(e) => e.len(),
        }
    }
}

impl<T: CacheWeight> CacheWeight for Result<RecordSet<T>, Negative> {
    fn bytes(&self) -> usize {
        match self {
            Ok(set) => set.records.iter().map(CacheWeight::bytes).sum(),
            Err(_) => 0,
        }
    }
}

/// For NXDOMAIN/NODATA, how long to remember it (RFC 2308, capped); `None`
/// for every other failure — including SERVFAIL, which hickory also reports
/// as "no records found".
fn not_found_ttl(e: &NetError) -> Option<Duration> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => matches!(
            no.response_code,
            ResponseCode::NXDomain | ResponseCode::NoError
        )
        .then(|| Duration::from_secs(u64::from(no.negative_ttl.unwrap_or(60)).min(900))),
        _ => None,
    }
}

fn servers(addrs: &[SocketAddr]) -> ResolverConfig {
    let mut config = ResolverConfig::from_name_servers(Vec::new());
    for addr in addrs {
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        config.add_name_server(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
    }
    config
}

/// `Example.COM` → `example.com.`, the cache key form mail-auth uses.
pub(crate) fn fqdn(name: &str) -> String {
    let mut s = name.to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// A cached value with the instant its TTL runs out.
#[derive(Clone)]
pub(crate) struct Timed<V> {
    value: V,
    until: Instant,
}

impl<V> Timed<V> {
    fn new(value: V, until: Instant) -> Self {
        Self { value, until }
    }
}

/// Expires each entry when its DNS TTL runs out.
struct TtlExpiry;

impl<K, V> Expiry<K, Timed<V>> for TtlExpiry {
    fn expire_after_create(&self, _: &K, v: &Timed<V>, now: Instant) -> Option<Duration> {
        Some(v.until.saturating_duration_since(now))
    }
}

fn ttl_cache<K, V>(size: u64) -> Cache<K, Timed<V>>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: CacheWeight + Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(size)
        .weigher(|_, entry: &Timed<V>| units(entry.value.bytes()))
        .expire_after(TtlExpiry)
        // Only evictions for room count (a full cache wants a larger
        // `cache_size`); expiry by TTL is the normal life of an entry.
        .eviction_listener(|_, _, cause| {
            if cause == moka::notification::RemovalCause::Size {
                CACHE_COUNTERS.evictions.inc();
            }
        })
        .build()
}

/// One moka cache for one record type, as mail-auth's `ResolverCache`.
pub struct TtlCache<K, V>(Cache<K, Timed<V>>);

impl<K, V> ResolverCache<K, V> for TtlCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hit = self.0.get(name).map(|t| t.value);
        count_lookup(hit.is_some());
        hit
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name).map(|t| t.value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.0.insert(key, Timed::new(value, valid_until));
    }
}

/// The caches of mail-auth's verifiers (DKIM keys; MX, A, AAAA, PTR, which SPF
/// shares through `checks::spf`).
pub struct DnsCaches {
    txt: TtlCache<Box<str>, TxtRecord>,
    mx: TtlCache<Box<str>, Result<RecordSet<Mx>, Negative>>,
    ipv4: TtlCache<Box<str>, Result<RecordSet<Ipv4Addr>, Negative>>,
    ipv6: TtlCache<Box<str>, Result<RecordSet<Ipv6Addr>, Negative>>,
    ptr: TtlCache<IpAddr, Result<RecordSet<Box<str>>, Negative>>,
}

impl DnsCaches {
    /// Entries in all caches (moka's count, which lags inserts slightly).
    fn entry_count(&self) -> u64 {
        self.txt.0.entry_count()
            + self.mx.0.entry_count()
            + self.ipv4.0.entry_count()
            + self.ipv6.0.entry_count()
            + self.ptr.0.entry_count()
    }

    fn new(size: u64) -> Self {
        Self {
            txt: TtlCache(ttl_cache(size)),
            mx: TtlCache(ttl_cache(size)),
            ipv4: TtlCache(ttl_cache(size)),
            ipv6: TtlCache(ttl_cache(size)),
            ptr: TtlCache(ttl_cache(size)),
        }
    }
}

impl DnsCache for DnsCaches {
    type Txt = TtlCache<Box<str>, TxtRecord>;
    type Mx = TtlCache<Box<str>, Result<RecordSet<Mx>, Negative>>;
    type Ipv4 = TtlCache<Box<str>, Result<RecordSet<Ipv4Addr>, Negative>>;
    type Ipv6 = TtlCache<Box<str>, Result<RecordSet<Ipv6Addr>, Negative>>;
    type Ptr = TtlCache<IpAddr, Result<RecordSet<Box<str>>, Negative>>;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(&self.txt)
    }
    fn mx(&self) -> Option<&Self::Mx> {
        Some(&self.mx)
    }
    fn ipv4(&self) -> Option<&Self::Ipv4> {
        Some(&self.ipv4)
    }
    fn ipv6(&self) -> Option<&Self::Ipv6> {
        Some(&self.ipv6)
    }
    fn ptr(&self) -> Option<&Self::Ptr> {
        Some(&self.ptr)
    }
}

impl KeyLookup {
    /// The mailkey keys in a TXT answer at `mailkey.D`: none for NXDOMAIN
    /// or NODATA, a temporary error for one.
    pub fn from_answer(answer: TxtAnswer) -> Self {
        match answer {
            TxtAnswer::Records(records) => Self::from_records(records),
            TxtAnswer::NotFound => Self::NoKey,
            TxtAnswer::TempError(e) => Self::TempError(e),
        }
    }
}

/// Typed lookups through the shared caches: what the checks and the tools
/// ask for. The resolver and the caches themselves stay inside.
impl Dns {
    pub async fn mx(&self, domain: &str) -> mail_auth::Result<RecordSet<Mx>> {
        self.authenticator.mx_lookup(domain, self.caches.mx()).await
    }

    pub async fn ipv4(&self, name: &str) -> mail_auth::Result<RecordSet<Ipv4Addr>> {
        self.authenticator
            .ipv4_lookup(name, self.caches.ipv4())
            .await
    }

    pub(crate) async fn ipv6(&self, name: &str) -> mail_auth::Result<RecordSet<Ipv6Addr>> {
        self.authenticator
            .ipv6_lookup(name, self.caches.ipv6())
            .await
    }

    pub async fn ptr(&self, ip: IpAddr) -> mail_auth::Result<RecordSet<Box<str>>> {
        self.authenticator.ptr_lookup(ip, self.caches.ptr()).await
    }

    /// The DKIM key record at `name` (`s._domainkey.d.`) through the
    /// shared TXT cache, as a record for mail-auth's key caches (a key or
    /// the error). The future owns what it needs, so it can be spawned.
    pub(crate) fn domain_key(
        &self,
        name: &str,
    ) -> impl Future<Output = TxtRecord> + Send + 'static {
        let (authenticator, caches) = (self.authenticator.clone(), self.caches.clone());
        let name = name.to_string();
        async move {
            match authenticator
                .txt_lookup::<DomainKey>(name.as_str(), caches.txt())
                .await
            {
                Ok(key) => TxtRecord::DomainKey(key),
                Err(e) => TxtRecord::Error(e),
            }
        }
    }

    /// mail-auth's verifier over our resolver, for DKIM2 and ARC
    /// verification (which read keys from a key overlay, not from here).
    pub fn verifier(&self) -> &MessageAuthenticator {
        &self.authenticator
    }

    /// The resolver, for queries by raw wire name that hickory's host-name
    /// parser would refuse (SPF domain-specs, RFC 7208 §7.1); uncached.
    pub fn resolver(&self) -> &mail_auth::hickory_resolver::TokioResolver {
        self.authenticator.resolver()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_mx_and_ptr_sets_weigh_by_size() {
        let mx = |n: usize| -> Result<RecordSet<Mx>, Negative> {
            Ok(RecordSet {
                records: vec![Mx {
                    exchanges: vec!["x".repeat(60).into_boxed_str(); n].into(),
                    preference: 10,
                }]
                .into(),
                dnssec_status: Default::default(),
            })
        };
        assert_eq!(units(mx(1).bytes()), 1);
        // A 64 KiB answer of 62-byte names: about 1,000 of them.
        assert!(units(mx(1000).bytes()) >= 120, "{}", mx(1000).bytes());
        let caches = DnsCaches::new(64);
        let until = Instant::now() + Duration::from_secs(300);
        for name in ["a.test", "b.test", "c.test"] {
            caches.mx.insert(name.into(), mx(300), until);
        }
        caches.mx.0.run_pending_tasks();
        assert!(
            caches.mx.0.weighted_size() <= 64,
            "{}",
            caches.mx.0.weighted_size()
        );
        assert!(caches.mx.0.entry_count() < 3);
    }

    #[test]
    fn big_txt_answers_weigh_by_size() {
        let config = DnsConfig {
            cache_size: 8,
            ..DnsConfig::default()
        };
        let dns = Dns::new(&config).unwrap();
        let until = Instant::now() + Duration::from_secs(300);
        let big = TxtAnswer::Records(vec![vec![b'x'; 2048]]); // 4 units
        for name in ["a.test.", "b.test.", "c.test."] {
            dns.raw_txt
                .insert(name.into(), Timed::new(big.clone(), until));
        }
        dns.raw_txt.run_pending_tasks();
        assert!(
            dns.raw_txt.weighted_size() <= 8,
            "{}",
            dns.raw_txt.weighted_size()
        );
        assert!(
            dns.raw_txt.entry_count() <= 2,
            "{}",
            dns.raw_txt.entry_count()
        );
        assert_eq!(weight(&TxtAnswer::Records(vec![vec![0; 200]])), 1);
    }
}
