//! What our door verified, for the hop a forwarding host signs
//! (docs/decisions.md, "DKIM2: forwarding").
//!
//! A forwarding host sees a message twice (README, "A Postfix forwarding
//! host"): when it arrives (checked; its DKIM2 chain verified against the
//! real envelope) and when it leaves through the second pass (trusted; new
//! recipients, perhaps a list footer added in between). The hop's
//! signature vouches for the chain, and its recipe must recreate the
//! message as it arrived — which the second pass alone no longer has. So
//! the first pass keeps each message whose chain passed, keyed by its
//! DKIM2 fields (which the second pass still carries),
//! and the second pass signs a hop only for a message found here:
//!
//! - a chain that failed at our door (a replay to one of our aliases) is
//!   never laundered into a fresh hop;
//! - the recipe is the exact difference between what arrived and what
//!   leaves, whatever changed it in between.
//!
//! Bounded by bytes (`[dkim2] custody_cache_size`) and by time (an hour:
//! the second pass follows the first within seconds unless the loopback
//! smtpd is down). A message not found is forwarded without a DKIM2 hop
//! (SRS and the DKIM1 mailkey signature still apply), and the log says so.

use super::{header_fields, INSTANCE_HEADER, SIGNATURE_HEADER};
use crate::spool::Bytes;
use moka::sync::Cache;
use std::{sync::Arc, time::Duration};

/// How long a verified message is kept for its second pass.
pub(crate) const KEEP: Duration = Duration::from_secs(3600);

/// The door-verified messages of a forwarding host (a clone shares them).
#[derive(Clone)]
pub struct Custody {
    /// `None` unless `[dkim2] forward`.
    /// The message as the inbound step holds it (its buffer, or the map of
    /// its spool file: page cache, not heap), never a copy.
    cache: Option<Cache<[u8; 32], Arc<Bytes>>>,
}

impl Custody {
    /// `bytes`: the most message bytes kept; 0 (or not forwarding) keeps none.
    pub fn new(forward: bool, bytes: u64) -> Self {
        let cache = (forward && bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, m: &Arc<Bytes>| u32::try_from(m.len()).unwrap_or(u32::MAX))
                .time_to_live(KEEP)
                .build()
        });
        Self { cache }
    }

    /// Keeps `message`, whose chain verified at our door.
    pub(crate) fn remember(&self, message: Arc<Bytes>) {
        let Some(cache) = &self.cache else { return };
        if let Some(key) = key(&message) {
            cache.insert(key, message);
        }
    }

    /// The message as it arrived, for a message leaving with the same
    /// DKIM2 fields.
    pub(crate) fn recall(&self, message: &[u8]) -> Option<Arc<Bytes>> {
        self.cache.as_ref()?.get(&key(message)?)
    }
}

/// The SHA-256 of every `DKIM2-Signature` and `Message-Instance` field
/// (white space removed: folding may differ), in header order: two
/// messages share it only if they carry the same chain, whose newest
/// signature covers every instance and the envelope of the last hop.
fn key(message: &[u8]) -> Option<[u8; 32]> {
    let mut hasher = openssl::sha::Sha256::new();
    let mut any = false;
    for (name, range) in header_fields(message) {
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(SIGNATURE_HEADER.as_bytes())
            || name.eq_ignore_ascii_case(INSTANCE_HEADER.as_bytes())
        {
            let stripped: Vec<u8> = message[range]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            hasher.update(&stripped);
            any = true;
        }
    }
    any.then(|| hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_found_by_its_chain_whatever_else_changed() {
        let custody = Custody::new(true, 1 << 20);
        let arrived = b"DKIM2-Signature: i=1; d=a.test\r\nFrom: a@a.test\r\n\r\nhi\r\n";
        custody.remember(Arc::new(Bytes::Memory(arrived.to_vec())));
        let leaving = b"DKIM2-Signature: i=1;\r\n d=a.test\r\nFrom: a@a.test\r\n\r\nhi\r\n--\r\n";
        let found = custody.recall(leaving).expect("found");
        assert_eq!(&found[..], &arrived[..]);
        let other = b"DKIM2-Signature: i=1; d=b.test\r\nFrom: a@a.test\r\n\r\nhi\r\n";
        assert!(custody.recall(other).is_none());
        assert!(Custody::new(false, 1 << 20).recall(leaving).is_none());
    }
}
