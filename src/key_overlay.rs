//! The keys a verification may use, as mail-auth's TXT cache: mail-auth
//! asks its cache before it would query DNS, so a verification given one
//! sends no query. The keys are looked up before, through our caches: one
//! per ARC set (`checks::arc::keys`), one per DKIM2 hop (`dkim2::keys`).
//! (The mailkey verifier needs none: it checks each signature with the key
//! it chose, vendor/mail-auth PATCHED.md.)

use mail_auth::{
    dns::{DnsCache, NoCache, ResolverCache, TxtRecord},
    hickory_resolver::proto::op::ResponseCode,
    DnsError, Error,
};
use std::{borrow::Borrow, hash::Hash, time::Instant};

/// A TXT cache answering each of its names (fully qualified, lower case)
/// with its record, and every other name with "not found".
pub(crate) struct KeyOverlay(pub Vec<(Box<str>, TxtRecord)>);

impl ResolverCache<Box<str>, TxtRecord> for KeyOverlay {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self
            .0
            .iter()
            .find(|(n, _)| <Box<str> as Borrow<Q>>::borrow(n) == name);
        // Key lookups elsewhere, ATPS and r= report records: none.
        Some(found.map_or_else(
            || TxtRecord::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))),
            |(_, record)| record.clone(),
        ))
    }

    fn remove<Q>(&self, _: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: TxtRecord, _: Instant) {}
}

impl DnsCache for KeyOverlay {
    type Txt = KeyOverlay;
    type Mx = NoCache;
    type Ipv4 = NoCache;
    type Ipv6 = NoCache;
    type Ptr = NoCache;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(self)
    }
    fn mx(&self) -> Option<&NoCache> {
        None
    }
    fn ipv4(&self) -> Option<&NoCache> {
        None
    }
    fn ipv6(&self) -> Option<&NoCache> {
        None
    }
    fn ptr(&self) -> Option<&NoCache> {
        None
    }
}
