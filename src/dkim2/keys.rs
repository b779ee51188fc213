//! The keys a DKIM2 chain names, fetched before verification: every
//! `selector._domainkey.d` of the chain through our TXT cache (shared with
//! every check, TTL-bounded), handed to mail-auth as its TXT cache, so that
//! verification itself sends no query and runs on the blocking pool as
//! pure computation.
//!
//! A name with several TXT records is parsed as mail-auth parses it (the
//! first key, marked as one of several): the draft makes that a
//! `permerror` (docs/decisions.md, "DKIM2: one record per selector").

use crate::{
    dns::{fqdn, Dns, TxtAnswer},
    key_overlay::KeyOverlay,
};
use mail_auth::{
    dkim::DomainKey,
    dns::{TxtRecord, TxtRecordParser},
    hickory_resolver::proto::op::ResponseCode,
    DnsError, Error,
};

/// The keys of one chain, by the name mail-auth asks for; every name the
/// chain names was fetched, and anything else (a lookup that failed as a
/// task) has no key.
pub(super) struct KeyRing(KeyOverlay);

impl KeyRing {
    /// Looks up `selector._domainkey.d` for each of `wanted` (distinct, at
    /// most [`super::MAX_KEYS`]), all at once.
    pub(super) async fn fetch(dns: &Dns, wanted: &[(String, String)]) -> KeyRing {
        let mut lookups = tokio::task::JoinSet::new();
        for (selector, d) in wanted {
            let (dns, name) = (dns.clone(), key_name(selector, d));
            lookups.spawn(async move {
                let record = record(dns.txt(&name).await);
                (name.into_boxed_str(), record)
            });
        }
        let mut keys = Vec::with_capacity(wanted.len());
        while let Some(done) = lookups.join_next().await {
            match done {
                Ok(key) => keys.push(key),
                // A lookup task that panicked: as a failed query.
                Err(e) => tracing::error!("DKIM2 key lookup failed: {e}"),
            }
        }
        KeyRing(KeyOverlay(keys))
    }

    /// The keys as mail-auth's TXT cache.
    pub(super) fn cache(&self) -> &KeyOverlay {
        &self.0
    }

    /// Is the key at `selector._domainkey.d` published with `t=y`?
    pub(super) fn testing(&self, selector: &str, d: &str) -> bool {
        let name = key_name(selector, d);
        self.0 .0.iter().any(|(n, r)| {
            **n == *name && matches!(r, TxtRecord::DomainKey(key) if key.is_testing())
        })
    }
}

/// The name mail-auth looks a key up at, in cache form.
fn key_name(selector: &str, d: &str) -> String {
    fqdn(&format!("{selector}._domainkey.{d}"))
}

/// A TXT answer as mail-auth's cache holds it for a key lookup.
fn record(answer: TxtAnswer) -> TxtRecord {
    match answer {
        TxtAnswer::Records(records) => DomainKey::parse_records(&records).into(),
        TxtAnswer::NotFound => not_found(),
        TxtAnswer::TempError(e) => TxtRecord::Error(Error::Dns(DnsError::Resolver(e))),
    }
}

fn not_found() -> TxtRecord {
    TxtRecord::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))
}
