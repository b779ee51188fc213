//! The keys an ARC validation needs, looked up before it starts (at most
//! one per set and one for the newest `ARC-Message-Signature`, each name
//! once, all at once), then handed to mail-auth as its TXT cache: the
//! validation itself, on a blocking thread, sends no query and waits on no
//! network. A name it asks for that was not looked up is "not found".

use crate::dns::Dns;
use mail_auth::{
    dkim::DomainKey,
    dns::{DnsCache, NoCache, ResolverCache, ToFqdn, TxtRecord},
    hickory_resolver::proto::op::ResponseCode,
    DnsError, Error,
};
use std::{borrow::Borrow, hash::Hash, time::Instant};
use tokio::task::JoinSet;

/// The answers for the key names of one chain.
pub struct Keyring(Vec<(Box<str>, TxtRecord)>);

impl Keyring {
    /// Looks up `names` (`s._domainkey.d.`) through the shared caches, all
    /// at once; each answer (a key or the error) is kept.
    pub async fn fetch(dns: &Dns, names: &[String]) -> Self {
        let mut lookups = JoinSet::new();
        for name in names {
            let (authenticator, caches) = (dns.authenticator.clone(), dns.caches.clone());
            let name = name.clone();
            lookups.spawn(async move {
                let answer = authenticator
                    .txt_lookup::<DomainKey>(name.as_str(), caches.txt())
                    .await;
                let record = match answer {
                    Ok(key) => TxtRecord::DomainKey(key),
                    Err(e) => TxtRecord::Error(e),
                };
                // Kept under the name mail-auth asks for (lower case, with
                // the final dot).
                (name.to_fqdn().into(), record)
            });
        }
        let mut answers = Vec::with_capacity(names.len());
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok(answer) => answers.push(answer),
                // A lookup task that panicked: its key stays "not found".
                Err(_) => continue,
            }
        }
        Self(answers)
    }
}

impl ResolverCache<Box<str>, TxtRecord> for Keyring {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self
            .0
            .iter()
            .find(|(n, _)| <Box<str> as Borrow<Q>>::borrow(n) == name);
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

impl DnsCache for Keyring {
    type Txt = Keyring;
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
