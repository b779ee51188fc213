//! `check-domain`: is a domain set up so that receivers running
//! mailkey-milter accept its mail? A report over the milter's own rules:
//! the key lookup and its judgement ([`mailkey::lookup`],
//! [`mailkey::key_result`]), the MX lookup and its judgement
//! ([`mx::lookup`], [`mx::answer_result`]) and the domain-name rule
//! ([`domain_name`]) are the very functions the milter runs, so that
//! check-domain cannot say "ready" where the milter rejects.

mod receiver;
mod report;
mod spf;

pub use report::Finding;
pub use report::{Mark, Report};

use crate::{
    checks::{mailkey, mx, Effect},
    config::{Alignment, MailkeyConfig, NoKey, TlsConfig},
    dns::{Dns, TxtAnswer},
    envelope::domain_name,
    protocol::{
        dkim_name, owner_name, KeyLookup, KeyType, MailkeyRecord, PublishedRecord, RecordError,
        MAX_KEYS,
    },
    sign::DomainKey,
};
use openssl::pkey::PKey;
use report::Findings;
use std::{net::IpAddr, path::Path};

/// The receiver a domain is checked against: the strictest mailkey
/// settings (a mailkey required, strict alignment), so that "ready" holds
/// whatever a receiver configured.
pub(crate) const RECEIVER: MailkeyConfig = MailkeyConfig {
    enforce: true,
    no_key: NoKey::Reject,
    alignment: Alignment::Strict,
};

/// What to check besides the domain's records: the sending side as a
/// receiver sees it.
#[derive(Clone, Debug, Default)]
pub struct Sending<'a> {
    /// The private key the domain signs with (`--key`): a record must
    /// match it and a message signed with it must verify.
    pub key_file: Option<&'a Path>,
    /// The address the domain's mail comes from (`--ip`): SPF must pass.
    pub ip: Option<IpAddr>,
    /// The sending server (`--mta HOST[:PORT]`): its STARTTLS certificate is
    /// probed as a receiver probes it, with this trust store.
    pub mta: Option<(&'a str, u16)>,
    pub tls: TlsConfig,
    /// The DKIM2 selector the domain signs with (`--dkim2-selector`): a
    /// DKIM2 test message signed with `key_file` must verify.
    pub dkim2_selector: Option<&'a str>,
}

/// Checks `domain`; with `key_file`, also that a published record matches it.
pub async fn check(dns: &Dns, domain: &str, key_file: Option<&Path>) -> Report {
    let sending = Sending {
        key_file,
        ..Sending::default()
    };
    check_sending(dns, domain, &sending).await
}

/// Checks `domain` and, as far as `sending` says, the server that sends
/// its mail: "ready" only when a receiver enforcing every check accepts.
pub async fn check_sending(dns: &Dns, domain: &str, sending: &Sending<'_>) -> Report {
    let key_file = sending.key_file;
    let mut f = Findings::default();
    let Some(domain) = domain_name(domain) else {
        let given = domain.trim().to_string();
        f.add(
            Mark::Fail,
            "domain",
            format!("{given:?} is not a domain name (two labels or more, no IP address)"),
        );
        return Report::new(given, f);
    };
    let keys = mailkey::lookup(dns, &domain).await;
    mailkey(&domain, &keys, &mut f);
    if let Some(path) = key_file {
        key_matches(&domain, path, &keys, &mut f);
        if let Ok(key) = DomainKey::load(&domain, path) {
            receiver::signature(dns, &domain, &key, &mut f).await;
        }
        if let (Some(selector), Ok(key)) = (sending.dkim2_selector, DomainKey::load(&domain, path))
        {
            receiver::dkim2_signature(dns, &domain, key, selector, &mut f).await;
        }
    }
    dkim_alias(dns, &domain, &keys, &mut f).await;
    spf::check(dns, &domain, &mut f).await;
    if let Some(ip) = sending.ip {
        receiver::spf_for_ip(dns, &domain, ip, &mut f).await;
    }
    mx(dns, &domain, &mut f).await;
    if let Some((host, port)) = sending.mta {
        receiver::mta(dns, &sending.tls, host, port, &mut f).await;
    }
    Report::new(domain, f)
}

/// The records at `mailkey.D` that are keys (usable or not), numbered from 1
/// as the report shows them.
fn key_records(keys: &KeyLookup) -> impl Iterator<Item = (usize, &PublishedRecord)> {
    let records = match keys {
        KeyLookup::Published { records, .. } => records.as_slice(),
        _ => &[],
    };
    records
        .iter()
        .filter(|r| !matches!(r.parsed, Err(RecordError::NotAKey)))
        .enumerate()
        .map(|(i, r)| (i + 1, r))
}

/// The published keys, judged by the mailkey check itself: its verdict on
/// the keys alone marks the findings, the records explain it.
fn mailkey(domain: &str, keys: &KeyLookup, f: &mut Findings) {
    let name = owner_name(domain);
    let verdict = mailkey::key_result(&RECEIVER, domain, keys);
    let effect = verdict.as_ref().map_or(Effect::Accept, |r| r.effect);
    let records = match keys {
        KeyLookup::TempError(e) => {
            f.judged(
                effect,
                Mark::Warn,
                "mailkey",
                format!("lookup of {name} failed: {e}"),
            );
            return;
        }
        KeyLookup::NoKey => {
            f.judged(
                effect,
                Mark::Warn,
                "mailkey",
                format!(
                    "no record at {name}; make one with: mailkey-milter keygen --domain {domain} --out /etc/mailkey"
                ),
            );
            return;
        }
        KeyLookup::Published { records, .. } => records,
    };
    for raw in records
        .iter()
        .filter(|r| matches!(r.parsed, Err(RecordError::NotAKey)))
    {
        f.add(
            Mark::Warn,
            "mailkey",
            format!(
                "ignored a TXT record at {name} that is not a key: {}",
                shorten(&raw.raw)
            ),
        );
    }
    let mut usable = 0;
    for (n, record) in key_records(keys) {
        match &record.parsed {
            Ok(key) => {
                usable += 1;
                let what = match key.key_type {
                    KeyType::Ed25519 => "ed25519 key".to_string(),
                    KeyType::Rsa { bits } => format!("rsa key, {bits} bits"),
                };
                f.add(Mark::Ok, "mailkey", format!("record {n} at {name}: {what}"));
                if key.testing {
                    f.add(
                        Mark::Warn,
                        "mailkey",
                        format!(
                            "record {n} says t=y (testing): receivers report failures but never reject; remove t=y once signing works"
                        ),
                    );
                }
            }
            Err(e) => {
                let consequence = match (&verdict, effect) {
                    (Some(r), Effect::Reject(_)) => {
                        format!("receivers reject the domain's mail ({})", r.status)
                    }
                    (Some(_), _) => {
                        "no key is usable; receivers accept the mail only because of t=y".into()
                    }
                    (None, _) => "receivers skip it and try the usable keys".into(),
                };
                f.judged(
                    effect,
                    Mark::Warn,
                    "mailkey",
                    format!("record {n} at {name} is broken: {e}; {consequence}"),
                );
            }
        }
    }
    if usable > MAX_KEYS {
        f.add(
            Mark::Warn,
            "mailkey",
            format!("{usable} keys published; receivers try only the first {MAX_KEYS}"),
        );
    }
}

/// Does one of the keys the mailkey check tries publish the public half of
/// the key in `path`?
fn key_matches(domain: &str, path: &Path, keys: &KeyLookup, f: &mut Findings) {
    let key = match DomainKey::load(domain, path) {
        Ok(k) => k,
        Err(e) => {
            f.add(Mark::Fail, "key", e.to_string());
            return;
        }
    };
    let file = path.display();
    let (tried, testing): (&[MailkeyRecord], bool) = match keys {
        KeyLookup::Published { keys, testing, .. } => (keys, *testing),
        KeyLookup::NoKey => (&[], false),
        KeyLookup::TempError(_) => {
            f.temporary(
                "key",
                format!("{file} not compared: the lookup of the published keys failed"),
            );
            return;
        }
    };
    // Signatures by a key that is not tried fail, and a failing signature
    // is judged as the mailkey check judges it (t=y: never rejected).
    let effect = mailkey::fail_effect(testing);
    let but = if testing {
        "; receivers accept the mail only because of t=y"
    } else {
        ""
    };
    let matching = key_records(keys).find_map(|(n, r)| match &r.parsed {
        Ok(published) if same_key(&key, &published.public) => Some((n, published)),
        _ => None,
    });
    match matching {
        Some((n, published)) if tried.iter().any(|t| t.public == published.public) => f.add(
            Mark::Ok,
            "key",
            format!("{file} ({}) matches record {n}", key.key_type),
        ),
        Some((n, _)) => f.judged(
            effect,
            Mark::Warn,
            "key",
            format!(
                "{file} ({}) matches record {n}, but receivers try only the first {MAX_KEYS} keys: its signatures would fail{but}",
                key.key_type
            ),
        ),
        None => f.judged(
            effect,
            Mark::Warn,
            "key",
            format!(
                "{file} ({}) matches no record at {}: its signatures would fail{but}",
                key.key_type,
                owner_name(domain)
            ),
        ),
    }
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
/// DKIM verifiers check mailkey signatures. Optional: receivers running
/// mailkey-milter never look it up, so nothing about it is a ✗.
async fn dkim_alias(dns: &Dns, domain: &str, keys: &KeyLookup, f: &mut Findings) {
    let published: Vec<&[u8]> = key_records(keys).map(|(_, r)| r.raw.as_slice()).collect();
    if published.is_empty() {
        return;
    }
    let (name, owner) = (dkim_name(domain), owner_name(domain));
    let answer = dns.txt(&name).await;
    if let TxtAnswer::Records(r) = &answer {
        if r.len() > 1 {
            f.add(
                Mark::Warn,
                "dkim2",
                format!(
                    "{name} holds {} records: DKIM2 verifiers refuse a selector with several \
                     (permerror); rotate DKIM2 keys under a selector of their own",
                    r.len()
                ),
            );
        }
    }
    match answer {
        TxtAnswer::Records(r) if published.iter().all(|k| r.iter().any(|x| x == k)) => f.add(
            Mark::Ok,
            "dkim",
            format!("{name} publishes the same keys: ordinary DKIM verifiers check mailkey signatures too"),
        ),
        TxtAnswer::Records(_) => f.add(
            Mark::Warn,
            "dkim",
            format!("{name} differs from {owner}; make it a CNAME: {name}. IN CNAME {owner}."),
        ),
        TxtAnswer::NotFound => f.add(
            Mark::Warn,
            "dkim",
            format!("optional: {name}. IN CNAME {owner}. lets ordinary DKIM verifiers check mailkey signatures"),
        ),
        TxtAnswer::TempError(e) => f.add(
            Mark::Warn,
            "dkim",
            format!("lookup of {name} failed: {e}; ordinary DKIM verifiers may defer the mail"),
        ),
    }
}

/// The MX, judged by the MX check itself.
async fn mx(dns: &Dns, domain: &str, f: &mut Findings) {
    let answer = mx::lookup(dns, domain).await;
    let result = mx::answer_result(domain, &answer);
    let text = match &answer {
        mx::MxAnswer::Real(hosts) => hosts
            .iter()
            .map(|(preference, host)| format!("{preference} {host}"))
            .collect::<Vec<_>>()
            .join(", "),
        mx::MxAnswer::Null => {
            format!("null MX: {domain} receives no mail, so receivers refuse it as a sender")
        }
        mx::MxAnswer::NoMx => format!("no MX record at {domain}: receivers refuse it as a sender"),
        mx::MxAnswer::NxDomain => format!("{domain} does not exist"),
        mx::MxAnswer::TempError(e) => format!("MX lookup of {domain} failed: {e}"),
    };
    let text = match result.effect {
        Effect::Reject(code) => format!("{text} ({})", code.enhanced),
        _ => text,
    };
    f.judged(result.effect, Mark::Ok, "mx", text);
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
