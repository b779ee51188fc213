//! Probe slots: how many probes run at once, in all and per client
//! network, so that no sender can starve the probing of others
//! (docs/decisions.md, "Probe slots").
//!
//! A probe holds one of [`MAX_CONCURRENT_PROBES`] slots and one of its
//! network's [`MAX_PROBES_PER_NETWORK`] (a /24 for IPv4, a /64 for IPv6:
//! what one sender can hold without asking anyone, so one host with a
//! routed /64, or a rented /24, is one network). The network's slot is
//! taken first: a network's probes beyond its share wait there and never
//! stand in the queue for the shared slots, so a flood from one network
//! holds at most 4 of the 32 and the other 28 stay free for everyone else.
//!
//! The slots outlive a reload: [`Slots`] is shared by the prober that a
//! changed `[tls]` builds and the one that connections opened before still
//! use, so the budget stays 32 however often the configuration changes.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex},
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

/// Probes running at once; more wait in order (within their limit).
pub const MAX_CONCURRENT_PROBES: usize = 32;
/// Probes running at once for clients of one network ([`network`]).
pub const MAX_PROBES_PER_NETWORK: usize = 4;

/// The network a client address is counted under: its /24 (IPv4) or /64
/// (IPv6). IPv4-mapped IPv6 addresses are their IPv4 address.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The probe slots, shared by every [`super::Prober`] of one daemon.
#[derive(Clone)]
pub struct Slots(Arc<Inner>);

struct Inner {
    all: Arc<Semaphore>,
    /// The networks with a probe running or waiting; an entry goes when
    /// its last holder does (see [`NetworkSlot`]'s `Drop`).
    networks: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// Why no slot was given.
#[derive(Debug, PartialEq, Eq)]
pub enum NoSlot {
    /// The deadline passed while waiting.
    Late,
    /// Probing is shutting down.
    Closed,
}

/// The right to probe one client: held for as long as the conversation.
pub struct Slot {
    _all: OwnedSemaphorePermit,
    _network: NetworkSlot,
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

impl Slots {
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            all: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            networks: Mutex::new(HashMap::new()),
        }))
    }

    /// A slot for probing `ip`, waiting for it until `deadline`: first one
    /// of its network's, then one of all. Both semaphores serve waiters in
    /// order.
    pub async fn acquire(&self, ip: IpAddr, deadline: Instant) -> Result<Slot, NoSlot> {
        let mut network = NetworkSlot::new(&self.0, network(ip));
        network.take(deadline).await?;
        let all = match tokio::time::timeout_at(deadline, self.0.all.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(NoSlot::Closed),
            Err(_) => return Err(NoSlot::Late),
        };
        Ok(Slot {
            _all: all,
            _network: network,
        })
    }

    /// Shared slots free now.
    pub fn available(&self) -> usize {
        self.0.all.available_permits()
    }
}

/// A network's semaphore, held by one probe or waiter, and whether it
/// holds one of its permits. The permit is kept as a count (taken with
/// `forget`, given back in `Drop`) so that nothing but the holders and the
/// map refer to the semaphore: the last holder can tell it is the last.
struct NetworkSlot {
    inner: Arc<Inner>,
    network: IpAddr,
    /// `None` only while being dropped.
    semaphore: Option<Arc<Semaphore>>,
    holds: bool,
}

impl NetworkSlot {
    fn new(inner: &Arc<Inner>, network: IpAddr) -> Self {
        let mut map = inner.networks.lock().unwrap_or_else(|p| p.into_inner());
        let semaphore = map
            .entry(network)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_PROBES_PER_NETWORK)))
            .clone();
        Self {
            inner: inner.clone(),
            network,
            semaphore: Some(semaphore),
            holds: false,
        }
    }

    /// Waits for one of the network's permits until `deadline`.
    async fn take(&mut self, deadline: Instant) -> Result<(), NoSlot> {
        let semaphore = self.semaphore.as_ref().ok_or(NoSlot::Closed)?;
        match tokio::time::timeout_at(deadline, semaphore.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                self.holds = true;
                Ok(())
            }
            Ok(Err(_)) => Err(NoSlot::Closed),
            Err(_) => Err(NoSlot::Late),
        }
    }
}

impl Drop for NetworkSlot {
    /// Gives the permit back; the last holder of a network's semaphore
    /// removes it, so the map has only the networks in use. Every holder
    /// lets go of its reference under the lock, so the last one to take
    /// the lock sees only the map's.
    fn drop(&mut self) {
        if let Some(s) = self.semaphore.as_ref().filter(|_| self.holds) {
            s.add_permits(1);
        }
        let mut map = self
            .inner
            .networks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.semaphore = None;
        if map
            .get(&self.network)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            map.remove(&self.network);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(network(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(network(ip("::ffff:192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(
            network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(network(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
    }

    #[tokio::test]
    async fn one_ipv6_slash_64_holds_at_most_its_share() {
        let slots = Slots::new();
        let soon = || Instant::now() + Duration::from_millis(100);
        // Many hosts of one /64, each a single flight of its own.
        let mut held = Vec::new();
        for host in 1..=MAX_PROBES_PER_NETWORK {
            let a = ip(&format!("2001:db8:0:1::{host:x}"));
            held.push(slots.acquire(a, soon()).await.expect("a slot"));
        }
        let next = ip("2001:db8:0:1:ffff::1");
        assert_eq!(slots.acquire(next, soon()).await.err(), Some(NoSlot::Late));
        // The rest of the slots are there for other networks.
        assert_eq!(
            slots.available(),
            MAX_CONCURRENT_PROBES - MAX_PROBES_PER_NETWORK
        );
        let other = ip("2001:db8:0:2::1");
        let _other = slots.acquire(other, soon()).await.expect("another /64");
        // A slot given back is the network's again.
        held.pop();
        let again = slots.acquire(next, soon()).await.expect("freed");
        // Nothing is remembered of networks nobody probes or waits for,
        // including the waiter that gave up above.
        drop((held, again, _other));
        assert!(slots.0.networks.lock().unwrap().is_empty());
        assert_eq!(slots.available(), MAX_CONCURRENT_PROBES);
    }

    #[tokio::test]
    async fn networks_in_use_only_are_remembered() {
        let slots = Slots::new();
        let far = Instant::now() + Duration::from_secs(10);
        for n in 0..100u8 {
            let slot = slots.acquire(ip(&format!("198.51.{n}.1")), far).await;
            drop(slot);
        }
        let kept = slots.0.networks.lock().unwrap().len();
        assert_eq!(kept, 0);
    }
}
