//! The probe cache: what was found out about a client, remembered for as
//! long as it is likely to stay true, so that a sending host is probed once,
//! not per message.

use super::ProbeOutcome;
use moka::{future::Cache, Expiry};
use std::{net::IpAddr, time::Duration};

/// How long a result is remembered: a verified host for an hour, a bad
/// certificate for ten minutes (the sender may be fixing it), a probe that
/// could not finish for one minute (enough to spare a host that is down
/// from a probe per queued message).
const PASS_TTL: Duration = Duration::from_secs(3600);
const FAIL_TTL: Duration = Duration::from_secs(600);
const TEMP_TTL: Duration = Duration::from_secs(60);
/// Cached (IP, HELO) pairs.
const CACHE_SIZE: u64 = 10_000;

/// Outcomes per (client IP, lower-cased HELO name).
pub type ProbeCache = Cache<(IpAddr, String), ProbeOutcome>;

/// An empty cache with the lifetimes above.
pub fn new() -> ProbeCache {
    Cache::builder()
        .max_capacity(CACHE_SIZE)
        .expire_after(OutcomeExpiry)
        .build()
}

struct OutcomeExpiry;

impl Expiry<(IpAddr, String), ProbeOutcome> for OutcomeExpiry {
    fn expire_after_create(
        &self,
        _: &(IpAddr, String),
        v: &ProbeOutcome,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(match v {
            ProbeOutcome::Verified { .. } => PASS_TTL,
            ProbeOutcome::NoStartTls(_) | ProbeOutcome::BadCertificate(_) => FAIL_TTL,
            ProbeOutcome::TempError(_) => TEMP_TTL,
        })
    }
}
