//! `--lookup`: what each top domain publishes now, through the daemon's
//! own resolver code (and its configured name servers). SPF is judged on
//! the record (one record ending in `-all` is strict), not evaluated for
//! the clients in the log: the log does not say which of a domain's
//! clients should be authorised.

use crate::{
    checks::{mailkey, mx, spf::is_spf_record},
    dns::{Dns, TxtAnswer},
    protocol::KeyLookup,
};
use mail_auth::{DnsError, Error};
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DomainState {
    pub domain: String,
    /// `published` (with `t=y`: `testing`), `none`, `temperror`.
    pub mailkey: &'static str,
    /// `strict` (one record, `-all`), `not-strict`, `none`, `several`
    /// (a permerror), `temperror`.
    pub spf: &'static str,
    /// `real`, `null` (RFC 7505), `none`, `temperror`.
    pub mx: &'static str,
}

pub async fn domain(dns: &Dns, domain: &str) -> DomainState {
    let mailkey = match *mailkey::lookup(dns, domain).await {
        KeyLookup::Published { testing: true, .. } => "testing",
        KeyLookup::Published { .. } => "published",
        KeyLookup::NoKey => "none",
        KeyLookup::TempError(_) => "temperror",
    };
    let spf = match dns.txt(domain).await {
        TxtAnswer::Records(records) => {
            let spf: Vec<String> = records
                .iter()
                .filter(|r| is_spf_record(r))
                .map(|r| String::from_utf8_lossy(r).to_ascii_lowercase())
                .collect();
            match spf.as_slice() {
                [] => "none",
                [one] if one.split_whitespace().last() == Some("-all") => "strict",
                [_] => "not-strict",
                _ => "several",
            }
        }
        TxtAnswer::NotFound => "none",
        TxtAnswer::TempError(_) => "temperror",
    };
    let mx = match dns.mx(domain).await {
        Ok(set) if mx::is_real(&set) => "real",
        Ok(_) => "null",
        Err(Error::Dns(DnsError::RecordNotFound(_))) => "none",
        Err(_) => "temperror",
    };
    DomainState {
        domain: domain.to_string(),
        mailkey,
        spf,
        mx,
    }
}
