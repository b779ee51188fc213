//! `check-domain`: is a domain set up so that receivers running
//! mailkey-milter accept its mail? One line per finding, marked
//! ✓ (good), ✗ (to fix) or ! (worth knowing, not an error).

use crate::{
    checks::{
        keyrecord::{parse_record, KeyType, RecordError, Tags, MAX_KEYS},
        spf::is_spf_record,
    },
    dns::{Dns, TxtAnswer},
    sign::DomainKey,
};
use mail_auth::{dns::DnsCache, hickory_resolver::proto::op::ResponseCode, DnsError, Error};
use openssl::pkey::PKey;
use serde::Serialize;
use std::{fmt, path::Path};

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups.
pub const SPF_LOOKUP_LIMIT: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Ok,
    Fail,
    Warn,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "✓",
            Self::Fail => "✗",
            Self::Warn => "!",
        })
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub mark: Mark,
    /// `mailkey`, `dkim`, `key`, `spf` or `mx`.
    pub check: &'static str,
    pub text: String,
    /// A DNS failure: the answer may be different next time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// Everything found about one domain.
#[derive(Debug, Serialize)]
pub struct Report {
    pub domain: String,
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    /// 0: nothing to fix; 1: something to fix; 2: a DNS lookup failed, so
    /// the domain could not be checked completely.
    pub fn exit_code(&self) -> u8 {
        if self.findings.iter().any(|f| f.temporary) {
            2
        } else if self.ok {
            0
        } else {
            1
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!("check-domain {}\n", self.domain);
        for f in &self.findings {
            out.push_str(&format!("{} {}: {}\n", f.mark, f.check, f.text));
        }
        out.push_str(if self.ok {
            "result: ready for mailkey-milter receivers\n"
        } else {
            "result: not ready, see ✗ above\n"
        });
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, mark: Mark, check: &'static str, text: impl Into<String>) {
        self.0.push(Finding {
            mark,
            check,
            text: text.into(),
            temporary: false,
        });
    }

    fn temporary(&mut self, check: &'static str, text: impl Into<String>) {
        self.0.push(Finding {
            mark: Mark::Fail,
            check,
            text: text.into(),
            temporary: true,
        });
    }
}

/// Checks `domain`; with `key_file`, also that a published record matches it.
pub async fn check(dns: &Dns, domain: &str, key_file: Option<&Path>) -> Report {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut f = Findings::default();
    let published = mailkey(dns, &domain, &mut f).await;
    if let Some(path) = key_file {
        key_matches(&domain, path, &published, &mut f);
    }
    dkim_alias(dns, &domain, &published, &mut f).await;
    spf(dns, &domain, &mut f).await;
    mx(dns, &domain, &mut f).await;
    let ok = !f.0.iter().any(|x| x.mark == Mark::Fail);
    Report {
        domain,
        ok,
        findings: f.0,
    }
}

/// The records at `mailkey.D` that hold a key, as published.
async fn mailkey(dns: &Dns, domain: &str, f: &mut Findings) -> Vec<Vec<u8>> {
    let name = format!("mailkey.{domain}");
    let records = match dns.txt(&name).await {
        TxtAnswer::Records(r) => r,
        TxtAnswer::NotFound => {
            f.add(
                Mark::Fail,
                "mailkey",
                format!(
                    "no record at {name}; make one with: mailkey-milter keygen --domain {domain} --out /etc/mailkey"
                ),
            );
            return Vec::new();
        }
        TxtAnswer::TempError(e) => {
            f.temporary("mailkey", format!("lookup of {name} failed: {e}"));
            return Vec::new();
        }
    };
    let mut keys = Vec::new();
    let mut usable = 0;
    for raw in records {
        let tags = Tags::parse(&raw);
        let n = keys.len() + 1;
        match parse_record(&raw, &tags) {
            Err(RecordError::NotAKey) => {
                f.add(
                    Mark::Warn,
                    "mailkey",
                    format!(
                        "ignored a TXT record at {name} that is not a key: {}",
                        shorten(&raw)
                    ),
                );
                continue;
            }
            Ok(record) => {
                usable += 1;
                let what = match record.key_type {
                    KeyType::Ed25519 => "ed25519 key".to_string(),
                    KeyType::Rsa { bits } => format!("rsa key, {bits} bits"),
                };
                f.add(
                    Mark::Ok,
                    "mailkey",
                    format!("record {n} at {name}: {what}"),
                );
                if record.testing {
                    f.add(
                        Mark::Warn,
                        "mailkey",
                        format!(
                            "record {n} says t=y (testing): receivers report failures but never reject; remove t=y once signing works"
                        ),
                    );
                }
            }
            Err(e) => f.add(
                Mark::Fail,
                "mailkey",
                format!("record {n} at {name} is broken: {e}; receivers reject the domain's mail (permerror)"),
            ),
        }
        keys.push(raw);
    }
    if keys.is_empty() {
        f.add(
            Mark::Fail,
            "mailkey",
            format!("no key record at {name} (only other TXT records)"),
        );
    } else if usable > MAX_KEYS {
        f.add(
            Mark::Warn,
            "mailkey",
            format!("{usable} keys published; receivers try only the first {MAX_KEYS}"),
        );
    }
    keys
}

/// Does one of `records` publish the public half of the key in `path`?
fn key_matches(domain: &str, path: &Path, records: &[Vec<u8>], f: &mut Findings) {
    let key = match DomainKey::load(domain, path) {
        Ok(k) => k,
        Err(e) => {
            f.add(Mark::Fail, "key", e.to_string());
            return;
        }
    };
    let file = path.display();
    let matching = records
        .iter()
        .position(|raw| published_key(raw).is_some_and(|p| same_key(&key, &p)));
    match matching {
        Some(i) => f.add(
            Mark::Ok,
            "key",
            format!("{file} ({}) matches record {}", key.key_type, i + 1),
        ),
        None => f.add(
            Mark::Fail,
            "key",
            format!(
                "{file} ({}) matches no record at mailkey.{domain}: its signatures would fail",
                key.key_type
            ),
        ),
    }
}

/// The decoded `p=` of a record.
fn published_key(raw: &[u8]) -> Option<Vec<u8>> {
    let tags = Tags::parse(raw);
    let p: String = tags
        .get("p")?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    openssl::base64::decode_block(&p).ok()
}

fn same_key(key: &DomainKey, published: &[u8]) -> bool {
    match key.key_type {
        KeyType::Ed25519 => key.public == published,
        // Some publish PKCS#1 instead of SubjectPublicKeyInfo; compare keys,
        // not encodings.
        KeyType::Rsa { .. } => {
            let ours = PKey::public_key_from_der(&key.public);
            let theirs = PKey::public_key_from_der(published).or_else(|_| {
                openssl::rsa::Rsa::public_key_from_der_pkcs1(published).and_then(PKey::from_rsa)
            });
            match (ours, theirs) {
                (Ok(a), Ok(b)) => a.public_eq(&b),
                _ => false,
            }
        }
    }
}

/// `mailkey._domainkey.D` (usually a CNAME to `mailkey.D`) lets ordinary
/// DKIM verifiers check mailkey signatures. Optional.
async fn dkim_alias(dns: &Dns, domain: &str, keys: &[Vec<u8>], f: &mut Findings) {
    if keys.is_empty() {
        return;
    }
    let name = format!("mailkey._domainkey.{domain}");
    match dns.txt(&name).await {
        TxtAnswer::Records(r) if keys.iter().all(|k| r.contains(k)) => f.add(
            Mark::Ok,
            "dkim",
            format!("{name} publishes the same keys: ordinary DKIM verifiers check mailkey signatures too"),
        ),
        TxtAnswer::Records(_) => f.add(
            Mark::Warn,
            "dkim",
            format!("{name} differs from mailkey.{domain}; make it a CNAME: {name}. IN CNAME mailkey.{domain}."),
        ),
        TxtAnswer::NotFound => f.add(
            Mark::Warn,
            "dkim",
            format!("optional: {name}. IN CNAME mailkey.{domain}. lets ordinary DKIM verifiers check mailkey signatures"),
        ),
        TxtAnswer::TempError(e) => f.temporary("dkim", format!("lookup of {name} failed: {e}")),
    }
}

async fn spf(dns: &Dns, domain: &str, f: &mut Findings) {
    let records = match dns.txt(domain).await {
        TxtAnswer::Records(r) => r,
        TxtAnswer::NotFound => Vec::new(),
        TxtAnswer::TempError(e) => {
            f.temporary("spf", format!("lookup of {domain} failed: {e}"));
            return;
        }
    };
    let spf: Vec<String> = records
        .iter()
        .filter(|r| is_spf_record(r))
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    let record = match spf.as_slice() {
        [] => {
            f.add(
                Mark::Fail,
                "spf",
                format!("no SPF record at {domain}; publish e.g. \"v=spf1 mx -all\""),
            );
            return;
        }
        [one] => one,
        more => {
            f.add(
                Mark::Fail,
                "spf",
                format!(
                    "{} SPF records at {domain}: that is a permerror; merge them into one",
                    more.len()
                ),
            );
            return;
        }
    };
    f.add(Mark::Ok, "spf", format!("record: {record}"));
    let mut walk = SpfWalk::default();
    walk.record(dns, record, 0).await;
    match walk.all.as_deref() {
        Some("-all") => f.add(Mark::Ok, "spf", "strict: ends in -all"),
        Some(all) => f.add(
            Mark::Fail,
            "spf",
            format!("not strict: ends in {all}; end it with -all so that forgeries fail"),
        ),
        None => f.add(
            Mark::Fail,
            "spf",
            "not strict: no \"all\" term (unlisted hosts are neutral); end it with -all",
        ),
    }
    if let Some(e) = walk.temp_error {
        f.temporary("spf", format!("could not follow every include: {e}"));
    }
    if walk.lookups > SPF_LOOKUP_LIMIT {
        f.add(
            Mark::Fail,
            "spf",
            format!(
                "about {} DNS lookups, over the limit of {SPF_LOOKUP_LIMIT}: receivers get permerror",
                walk.lookups
            ),
        );
    } else {
        f.add(
            Mark::Ok,
            "spf",
            format!(
                "about {} DNS lookup{} (limit {SPF_LOOKUP_LIMIT})",
                walk.lookups,
                if walk.lookups == 1 { "" } else { "s" }
            ),
        );
    }
}

/// A rough count of an SPF record's DNS lookups (include:, a, mx, ptr,
/// exists:, redirect=, followed into include: and redirect= targets), and
/// the `all` term that decides for unlisted hosts.
#[derive(Default)]
struct SpfWalk {
    lookups: usize,
    all: Option<String>,
    temp_error: Option<String>,
}

impl SpfWalk {
    async fn record(&mut self, dns: &Dns, record: &str, depth: usize) {
        let mut redirect = None;
        for term in record.split_ascii_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            let mech = lower.trim_start_matches(['+', '-', '~', '?']);
            let name = mech.split([':', '/', '=']).next().unwrap_or("");
            match name {
                "include" => {
                    self.lookups += 1;
                    if let Some(target) = mech.strip_prefix("include:") {
                        // An include's own `all` does not end the outer record.
                        let outer_all = self.all.take();
                        self.follow(dns, target, depth).await;
                        self.all = outer_all;
                    }
                }
                "a" | "mx" | "ptr" | "exists" => self.lookups += 1,
                "redirect" => {
                    self.lookups += 1;
                    redirect = mech.strip_prefix("redirect=").map(str::to_string);
                }
                "all" if depth == 0 || self.all.is_none() => self.all = Some(lower.clone()),
                _ => {}
            }
        }
        if let (Some(target), None) = (redirect, &self.all) {
            self.follow(dns, &target, depth).await;
        }
    }

    async fn follow(&mut self, dns: &Dns, target: &str, depth: usize) {
        // Macros (`%{i}`) cannot be expanded without a client; the lookup
        // limit stops loops.
        if target.contains('%') || depth >= SPF_LOOKUP_LIMIT || self.lookups > SPF_LOOKUP_LIMIT {
            return;
        }
        match dns.txt(target).await {
            TxtAnswer::Records(r) => {
                if let Some(record) = r.iter().find(|r| is_spf_record(r)) {
                    let record = String::from_utf8_lossy(record).into_owned();
                    Box::pin(self.record(dns, &record, depth + 1)).await;
                }
            }
            TxtAnswer::NotFound => {}
            TxtAnswer::TempError(e) => self.temp_error = Some(format!("{target}: {e}")),
        }
    }
}

async fn mx(dns: &Dns, domain: &str, f: &mut Findings) {
    match dns.authenticator.mx_lookup(domain, dns.caches.mx()).await {
        Ok(set) => {
            let hosts: Vec<String> = set
                .records
                .iter()
                .flat_map(|mx| {
                    mx.exchanges
                        .iter()
                        .map(move |h| format!("{} {}", mx.preference, h.trim_end_matches('.')))
                })
                .collect();
            if crate::checks::mx::is_real(&set) {
                f.add(Mark::Ok, "mx", hosts.join(", "));
            } else {
                f.add(
                    Mark::Fail,
                    "mx",
                    format!("null MX: {domain} receives no mail, so receivers refuse it as a sender (5.7.27)"),
                );
            }
        }
        Err(Error::Dns(DnsError::RecordNotFound(code))) => {
            let why = if code == ResponseCode::NXDomain {
                format!("{domain} does not exist")
            } else {
                format!("no MX record at {domain}: receivers refuse it as a sender (5.1.8)")
            };
            f.add(Mark::Fail, "mx", why);
        }
        Err(e) => f.temporary("mx", format!("MX lookup of {domain} failed: {e}")),
    }
}

/// A record for display: printable, and not a whole key.
fn shorten(raw: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}
