//! viaspf's DNS interface (`Lookup`) on our resolver and caches: SPF shares
//! every answer with the other checks — the TXT cache with the mailkey and
//! SPF record lookups, the MX cache with the MX check, and A, AAAA and PTR
//! with mail-auth — for as long as each answer's TTL allows.
//!
//! viaspf wants three outcomes per query: records (possibly none: NODATA),
//! `NoRecords` (NXDOMAIN) and an error (time-out, SERVFAIL: `temperror`).
//!
//! A domain-spec may hold any visible character (RFC 7208 §7.1: `a:foo:bar`
//! is a name). mail-auth and our TXT cache take names through hickory's
//! host-name parser, which refuses such labels; those few names are asked
//! as raw labels, uncached ([`SpfLookup::raw`]).

use crate::dns::{Dns, TxtAnswer};
use mail_auth::{
    dns::RecordSet,
    hickory_resolver::{
        net::{DnsError as NetDnsError, NetError},
        proto::{
            op::ResponseCode,
            rr::{Name as WireName, RData, RecordType},
        },
    },
    DnsError, Error,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use viaspf::lookup::{Lookup, LookupError, LookupResult, Name};

/// The shared resolver as seen by viaspf. Borrowed per evaluation.
pub(crate) struct SpfLookup<'a> {
    dns: &'a Dns,
}

impl<'a> SpfLookup<'a> {
    pub fn new(dns: &'a Dns) -> Self {
        Self { dns }
    }

    /// The answers for a name hickory's host-name parser refuses, asked
    /// as raw labels; `None` when the name is an ordinary one.
    async fn raw(&self, name: &Name, rtype: RecordType) -> Option<LookupResult<Vec<RData>>> {
        let text = name.as_str();
        if WireName::from_str_relaxed(text).is_ok() {
            return None;
        }
        let labels = text.trim_end_matches('.').split('.').map(str::as_bytes);
        let Ok(mut wire) = WireName::from_labels(labels) else {
            return Some(Err(LookupError::NoRecords));
        };
        wire.set_fqdn(true);
        let resolver = self.dns.resolver();
        Some(match resolver.lookup(wire, rtype).await {
            Ok(found) => Ok(found.answers().iter().map(|r| r.data.clone()).collect()),
            Err(NetError::Dns(NetDnsError::NoRecordsFound(no))) => match no.response_code {
                ResponseCode::NXDomain => Err(LookupError::NoRecords),
                ResponseCode::NoError => Ok(Vec::new()),
                code => Err(lookup_error(code.to_string())),
            },
            Err(e) => Err(lookup_error(e.to_string())),
        })
    }
}

/// A name from an answer as its labels' octets, unescaped.
fn raw_labels(name: &WireName) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    labels.join(".")
}

/// The records of one type among raw answers.
fn pick<T>(
    answers: LookupResult<Vec<RData>>,
    f: impl Fn(RData) -> Option<T>,
) -> LookupResult<Vec<T>> {
    answers.map(|a| a.into_iter().filter_map(f).collect())
}

/// mail-auth's outcome of a cached lookup, as viaspf wants it.
fn classify<T, U>(
    answer: Result<RecordSet<T>, Error>,
    convert: impl Fn(&T) -> Option<U>,
) -> LookupResult<Vec<U>> {
    match answer {
        Ok(set) => Ok(set.records.iter().filter_map(convert).collect()),
        Err(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))) => {
            Err(LookupError::NoRecords)
        }
        // NODATA, and whatever mail-auth found but could not use.
        Err(Error::Dns(DnsError::RecordNotFound(_))) => Ok(Vec::new()),
        // The name cannot be queried at all.
        Err(Error::Parse) => Err(LookupError::NoRecords),
        Err(e) => Err(lookup_error(e.to_string())),
    }
}

/// A failed query: time-out or any other DNS trouble (both `temperror`).
fn lookup_error(message: String) -> LookupError {
    if message.contains("timed out") || message.contains("timeout") {
        LookupError::Timeout
    } else {
        LookupError::Dns(Some(message.into()))
    }
}

/// A host name from the DNS as a viaspf name (unusable ones are dropped:
/// they could never match).
fn name(host: &str) -> Option<Name> {
    Name::new(host).ok()
}

#[async_trait::async_trait]
impl Lookup for SpfLookup<'_> {
    async fn lookup_a<'l, 'n>(&'l self, name: &'n Name) -> LookupResult<Vec<Ipv4Addr>> {
        if let Some(raw) = self.raw(name, RecordType::A).await {
            return pick(raw, |d| match d {
                RData::A(a) => Some(a.0),
                _ => None,
            });
        }
        let answer = self.dns.ipv4(name.as_str()).await;
        classify(answer, |ip| Some(*ip))
    }

    async fn lookup_aaaa<'l, 'n>(&'l self, name: &'n Name) -> LookupResult<Vec<Ipv6Addr>> {
        if let Some(raw) = self.raw(name, RecordType::AAAA).await {
            return pick(raw, |d| match d {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            });
        }
        let answer = self.dns.ipv6(name.as_str()).await;
        classify(answer, |ip| Some(*ip))
    }

    async fn lookup_mx<'l, 'n>(&'l self, domain: &'n Name) -> LookupResult<Vec<Name>> {
        if let Some(raw) = self.raw(domain, RecordType::MX).await {
            let mut mx = pick(raw, |d| match d {
                RData::MX(mx) => Some((mx.preference, raw_labels(&mx.exchange))),
                _ => None,
            })?;
            mx.sort_by_key(|(preference, _)| *preference);
            return Ok(mx.iter().filter_map(|(_, host)| name(host)).collect());
        }
        let answer = self.dns.mx(domain.as_str()).await;
        // Sorted by preference already; the exchanges of each preference
        // in answer order.
        let hosts = classify(answer, |mx| {
            Some(
                mx.exchanges
                    .iter()
                    .filter_map(|h| name(h))
                    .collect::<Vec<_>>(),
            )
        })?;
        Ok(hosts.into_iter().flatten().collect())
    }

    async fn lookup_txt<'l, 'n>(&'l self, name: &'n Name) -> LookupResult<Vec<String>> {
        if let Some(raw) = self.raw(name, RecordType::TXT).await {
            return pick(raw, |d| match d {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => None,
            });
        }
        match self.dns.txt(name.as_str()).await {
            // viaspf wants text; bytes that are not UTF-8 make the record
            // fail to parse (permerror), which is what they deserve.
            TxtAnswer::Records(records) => Ok(records
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect()),
            TxtAnswer::NotFound => Err(LookupError::NoRecords),
            TxtAnswer::TempError(e) => Err(lookup_error(e)),
        }
    }

    async fn lookup_ptr<'l>(&'l self, ip: IpAddr) -> LookupResult<Vec<Name>> {
        let answer = self.dns.ptr(ip).await;
        classify(answer, |host| name(host))
    }
}
