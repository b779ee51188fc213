//! The key a verification pass may use, as a DNS cache: mail-auth asks its
//! TXT cache before it would query DNS, so verification itself sends no
//! query.

use mail_auth::{
    dns::{DnsCache, NoCache, ResolverCache, TxtRecord},
    hickory_resolver::proto::op::ResponseCode,
    DnsError, Error,
};
use std::{borrow::Borrow, hash::Hash, time::Instant};

/// A one-entry TXT cache answering the key name with one mailkey.
pub struct KeyOverlay {
    pub name: Box<str>,
    pub record: TxtRecord,
}

impl ResolverCache<Box<str>, TxtRecord> for KeyOverlay {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if <Box<str> as Borrow<Q>>::borrow(&self.name) == name {
            Some(self.record.clone())
        } else {
            // Key lookups elsewhere, ATPS and r= report records: none.
            Some(TxtRecord::Error(Error::Dns(DnsError::RecordNotFound(
                ResponseCode::NXDomain,
            ))))
        }
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
