//! Counting: what enforcing each check alone, and all of them together,
//! would have done to the messages of the period.

use super::parse::{self, Effect, Kind, Record};
use crate::rfc3339::{self as time, Nanos};
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

/// Which checks are imagined enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This check alone (by name, one of [`parse::checks`]).
    Alone(&'static str),
    /// All of them.
    All,
}

/// The scopes in report order: each check alone, then all.
pub fn scopes() -> Vec<Scope> {
    parse::checks()
        .map(Scope::Alone)
        .chain([Scope::All])
        .collect()
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Alone(check) => check,
            Self::All => "all",
        }
    }
}

/// What the message would have met under `scope`. Each check's own effect
/// is logged by the daemon (`<check>.effect`, the check's rule with its
/// configuration); several enforced checks combine by the daemon's rule,
/// [`crate::verdict::combine`].
pub fn would(effects: &[(&'static str, Effect)], scope: Scope) -> Effect {
    match scope {
        Scope::Alone(check) => effects
            .iter()
            .find(|(name, _)| *name == check)
            .map_or(Effect::Accept, |(_, effect)| *effect),
        Scope::All => crate::verdict::combine(effects.iter().map(|(_, effect)| *effect)),
    }
}

/// The client network a would-reject is counted under: /24 for IPv4, /48
/// for IPv6 (what one sending organisation usually holds).
pub fn network(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let [a, b, c, _] = ip.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(ip)) => {
            let s = ip.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
        Err(_) => client.to_string(),
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct Count {
    pub name: String,
    pub messages: u64,
}

/// One scope's effect over the period.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Impact {
    /// `mailkey`, `spf`, `tls`, `mx`, or `all`.
    pub check: &'static str,
    pub reject: u64,
    /// Of the checked messages, rounded to 0.1.
    pub reject_percent: f64,
    pub tempfail: u64,
    pub tempfail_percent: f64,
    /// Behind the would-rejects (not the deferrals), most first.
    pub top_domains: Vec<Count>,
    pub top_networks: Vec<Count>,
}

/// One UTC day.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Day {
    pub day: String,
    pub messages: u64,
    pub checked: u64,
    /// Would-rejects by scope name (`mailkey` … `all`).
    pub reject: BTreeMap<&'static str, u64>,
    pub tempfail: BTreeMap<&'static str, u64>,
}

/// What `report` prints.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Summary {
    pub log_version: u64,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The first and last message in the period.
    pub first: Option<String>,
    pub last: Option<String>,
    pub files: Vec<String>,
    /// Per-message lines in the period: checked + trusted + exempt.
    pub messages: u64,
    pub checked: u64,
    pub trusted: u64,
    pub exempt: u64,
    /// What recipients' tokens and challenges let through.
    pub let_through: LetThrough,
    /// Recipients refused at RCPT as invalid SRS addresses of ours (in
    /// monitor mode: that enforce mode would have refused); not messages.
    pub invalid_srs_recipients: u64,
    pub impact: Vec<Impact>,
    pub days: Vec<Day>,
    /// The certificate check per sender and per candidate setting.
    pub tls_evidence: super::evidence::EvidenceSummary,
    /// With `--lookup`: what each top domain publishes now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Vec<super::lookup::DomainState>>,
    /// Checked messages that carried a DKIM2 chain, by result.
    pub dkim2: Dkim2Counts,
}

/// The DKIM2 chains of the checked messages (docs/protocol.md, "mailkey
/// v2 = DKIM2"): how many verified, and how many failed so that they make
/// mailkey reject (a replay, a change without recipe, a broken chain or an
/// unverified DSN of the sender's own domain).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct Dkim2Counts {
    /// Messages by result word (`pass`, `fail`, `permerror`, `temperror`).
    pub results: BTreeMap<String, u64>,
    /// Failures that make mailkey reject.
    pub mailkey_rejects: u64,
}

/// Tokens and challenges over the period: how much mail the checks would
/// have refused reached its recipient through them.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct LetThrough {
    /// Refusals that carried a challenge URL.
    pub challenges_offered: u64,
    /// Messages let through by a solved challenge…
    pub challenge_messages: u64,
    /// …of which the checks would have refused (recovered mail).
    pub challenge_recovered: u64,
    /// Messages let through by a token…
    pub token_messages: u64,
    /// …of which the checks would have refused.
    pub token_recovered: u64,
}

impl LetThrough {
    fn add(&mut self, l: &super::parse::Letting) {
        self.challenges_offered += u64::from(l.challenge_offered);
        self.challenge_messages += u64::from(l.challenge_passed);
        self.challenge_recovered += u64::from(l.challenge_passed && l.would_refuse);
        self.token_messages += u64::from(l.token);
        self.token_recovered += u64::from(l.token && l.would_refuse);
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Default)]
struct ScopeCounts {
    reject: u64,
    tempfail: u64,
    domains: HashMap<String, u64>,
    networks: HashMap<String, u64>,
}

#[derive(Default)]
struct DayCounts {
    messages: u64,
    checked: u64,
    /// By scope name.
    reject: HashMap<&'static str, u64>,
    tempfail: HashMap<&'static str, u64>,
}

/// Counts records as they are read (logs can be large: nothing per
/// message is kept).
#[derive(Default)]
pub(crate) struct Aggregate {
    since: Option<Nanos>,
    until: Option<Nanos>,
    first: Option<Nanos>,
    last: Option<Nanos>,
    checked: u64,
    trusted: u64,
    exempt: u64,
    let_through: LetThrough,
    invalid_srs_recipients: u64,
    /// In the order of [`scopes`].
    scopes: Vec<(Scope, ScopeCounts)>,
    days: BTreeMap<i64, DayCounts>,
    dkim2: Dkim2Counts,
    evidence: super::evidence::EvidenceAggregate,
}

impl Aggregate {
    /// `since` inclusive, `until` exclusive.
    pub fn new(since: Option<Nanos>, until: Option<Nanos>) -> Self {
        Self {
            since,
            until,
            scopes: scopes()
                .into_iter()
                .map(|s| (s, ScopeCounts::default()))
                .collect(),
            ..Self::default()
        }
    }

    pub fn add(&mut self, r: &Record) {
        if self.since.is_some_and(|s| r.time < s) || self.until.is_some_and(|u| r.time >= u) {
            return;
        }
        if r.kind == Kind::InvalidSrsRecipient {
            self.invalid_srs_recipients += 1;
            return;
        }
        self.first = Some(self.first.map_or(r.time, |f| f.min(r.time)));
        self.last = Some(self.last.map_or(r.time, |l| l.max(r.time)));
        let day = self.days.entry(time::day_number(r.time)).or_default();
        day.messages += 1;
        self.let_through.add(&r.letting);
        let effects = match &r.kind {
            Kind::Trusted => return self.trusted += 1,
            Kind::Exempt => return self.exempt += 1,
            Kind::InvalidSrsRecipient => return,
            Kind::Checked(effects) => effects,
        };
        self.checked += 1;
        day.checked += 1;
        if let Some((result, rejects)) = &r.dkim2 {
            *self.dkim2.results.entry(result.clone()).or_default() += 1;
            self.dkim2.mailkey_rejects += u64::from(*rejects);
        }
        self.evidence.add(r);
        for (scope, counts) in &mut self.scopes {
            match would(effects, *scope) {
                Effect::Accept => {}
                Effect::Tempfail(()) => {
                    counts.tempfail += 1;
                    *day.tempfail.entry(scope.name()).or_default() += 1;
                }
                Effect::Reject(()) => {
                    counts.reject += 1;
                    *day.reject.entry(scope.name()).or_default() += 1;
                    let domain = r.domain.clone().unwrap_or_else(|| "(none)".into());
                    *counts.domains.entry(domain).or_default() += 1;
                    *counts.networks.entry(network(&r.client)).or_default() += 1;
                }
            }
        }
    }

    pub fn summary(self, files: Vec<String>, top: usize) -> Summary {
        let percent = |n: u64| {
            if self.checked == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / self.checked as f64).round() / 10.0
            }
        };
        let impact = self
            .scopes
            .iter()
            .map(|(scope, c)| Impact {
                check: scope.name(),
                reject: c.reject,
                reject_percent: percent(c.reject),
                tempfail: c.tempfail,
                tempfail_percent: percent(c.tempfail),
                top_domains: top_n(&c.domains, top),
                top_networks: top_n(&c.networks, top),
            })
            .collect();
        // Every scope, zeros included.
        let per_scope = |counts: &HashMap<&'static str, u64>| {
            self.scopes
                .iter()
                .map(|(s, _)| (s.name(), counts.get(s.name()).copied().unwrap_or(0)))
                .collect()
        };
        let days = self
            .days
            .iter()
            .map(|(day, c)| Day {
                day: time::day(day * 86_400),
                messages: c.messages,
                checked: c.checked,
                reject: per_scope(&c.reject),
                tempfail: per_scope(&c.tempfail),
            })
            .collect();
        Summary {
            log_version: super::parse::LOG_VERSION,
            since: self.since.map(time::datetime),
            until: self.until.map(time::datetime),
            first: self.first.map(time::datetime),
            last: self.last.map(time::datetime),
            files,
            messages: self.checked + self.trusted + self.exempt,
            checked: self.checked,
            trusted: self.trusted,
            exempt: self.exempt,
            let_through: self.let_through,
            invalid_srs_recipients: self.invalid_srs_recipients,
            impact,
            days,
            tls_evidence: self.evidence.summary(self.checked, top),
            lookup: None,
            dkim2: self.dkim2,
        }
    }
}

/// The `n` largest counts, ties by name.
pub(crate) fn top_n(counts: &HashMap<String, u64>, n: usize) -> Vec<Count> {
    let mut all: Vec<Count> = counts
        .iter()
        .map(|(name, messages)| Count {
            name: name.clone(),
            messages: *messages,
        })
        .collect();
    all.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.name.cmp(&b.name)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Outcome::*;

    fn effects(of: [Effect; 4]) -> Vec<(&'static str, Effect)> {
        ["mailkey", "spf", "tls", "mx"]
            .into_iter()
            .zip(of)
            .collect()
    }

    #[test]
    fn all_combine_like_the_verdict() {
        let e = effects([Tempfail(()), Reject(()), Accept, Accept]);
        assert_eq!(would(&e, Scope::All), Reject(()));
        assert_eq!(would(&e, Scope::Alone("mailkey")), Tempfail(()));
        let e = effects([Tempfail(()), Accept, Accept, Accept]);
        assert_eq!(would(&e, Scope::All), Tempfail(()));
        assert_eq!(would(&effects([Accept; 4]), Scope::All), Accept);
    }

    #[test]
    fn networks() {
        assert_eq!(network("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(network("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(network("::1"), "::/48");
        assert_eq!(network("local"), "local");
    }
}
