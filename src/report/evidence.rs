//! The certificate check measured per sender: for every sending
//! organisation and sender domain, which kinds of evidence its messages
//! had (with the probe's outcome taxonomy); and for every candidate
//! `[tls] evidence` setting, what enforcing it would have refused or
//! deferred, decided from the logged rungs by the daemon's own rule
//! ([`evidence::decide`]). Rungs, settings and words all come from
//! [`Rung`] and [`Evidence`]: nothing here names a column by hand.

use super::{
    aggregate::Count,
    parse::{Record, TlsFacts},
};
use crate::{
    checks::tls::evidence::{self, Class, Decision, Rung},
    config::Evidence,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The kinds a setting may accept, in the order settings are written
/// (and the report's columns).
pub(crate) const KINDS: [Evidence; 3] = [
    Evidence::MtaVerified,
    Evidence::SenderDomain,
    Evidence::Probe,
];

/// Every non-empty set of kinds: those with `mta-verified` first (the
/// free evidence nobody would give up), smaller sets first.
pub(crate) fn candidate_settings() -> Vec<Vec<Evidence>> {
    let mut sets: Vec<Vec<Evidence>> = (1u8..1 << KINDS.len())
        .map(|mask| {
            KINDS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| *k)
                .collect()
        })
        .collect();
    sets.sort_by_key(|s| (!s.contains(&Evidence::MtaVerified), s.len()));
    sets
}

/// A setting as the configuration writes it: `["mta-verified", "probe"]`.
pub(crate) fn setting_name(kinds: &[&str]) -> String {
    let words: Vec<String> = kinds.iter().map(|k| format!("\"{k}\"")).collect();
    format!("[{}]", words.join(", "))
}

/// One organisation and sender domain.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct OrgRow {
    pub organisation: String,
    pub sender_domain: String,
    pub messages: u64,
    /// Sent without STARTTLS.
    pub plaintext: u64,
    /// Per kind (`mta-verified`, `sender-domain`, `probe`): the messages on
    /// which it passed, whether the running setting accepted it or not.
    pub passed: BTreeMap<&'static str, u64>,
    /// Under the daemon's own setting, what decided (`tls.evidence`): a
    /// kind, `none`, `plaintext`.
    pub decided_by: BTreeMap<String, u64>,
    /// A certificate the MTA did not verify was presented.
    pub untrusted_certificate: u64,
    /// The probe's outcomes (taxonomy words), where it ran.
    pub probe: BTreeMap<String, u64>,
}

/// What enforcing one setting would have done.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct SettingImpact {
    pub evidence: Vec<&'static str>,
    pub refuse: u64,
    /// Of the checked messages, rounded to 0.1.
    pub refuse_percent: f64,
    pub defer: u64,
    pub defer_percent: f64,
    /// Messages for which a kind of this setting was not measured (the
    /// daemon did not run it, or the line is of log_version 1).
    pub unmeasured: u64,
    /// Behind the refusals, most first.
    pub top_organisations: Vec<Count>,
}

/// The report's TLS evidence part.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct EvidenceSummary {
    /// Checked messages whose line has the evidence fields.
    pub measured: u64,
    /// Distinct (organisation, sender domain) pairs; `organisations`
    /// lists the top ones.
    pub organisations_total: usize,
    pub organisations: Vec<OrgRow>,
    pub settings: Vec<SettingImpact>,
}

#[derive(Default)]
struct SettingCounts {
    refuse: u64,
    defer: u64,
    unmeasured: u64,
    organisations: HashMap<String, u64>,
}

/// Counts as records are read.
pub(crate) struct EvidenceAggregate {
    measured: u64,
    rows: HashMap<(String, String), OrgRow>,
    settings: Vec<(Vec<Evidence>, SettingCounts)>,
}

impl Default for EvidenceAggregate {
    fn default() -> Self {
        Self {
            measured: 0,
            rows: HashMap::new(),
            settings: candidate_settings()
                .into_iter()
                .map(|s| (s, SettingCounts::default()))
                .collect(),
        }
    }
}

/// What `kinds` would have made of a message.
pub fn decide(kinds: &[Evidence], facts: Option<&TlsFacts>) -> Decision {
    match facts {
        None => Decision::Unmeasured,
        Some(f) if f.evidence == evidence::PLAINTEXT => Decision::Fail,
        Some(f) if f.evidence == "-" => Decision::Unmeasured,
        Some(f) => evidence::decide(kinds, |rung| rung.class(f.word(rung))),
    }
}

impl EvidenceAggregate {
    /// A checked message.
    pub fn add(&mut self, r: &Record) {
        let facts = r.tls.as_ref();
        let org = facts.map_or("unknown", |f| f.org.as_str()).to_string();
        for (kinds, counts) in &mut self.settings {
            match decide(kinds, facts) {
                Decision::Pass(_) => {}
                Decision::Temporary => counts.defer += 1,
                Decision::Unmeasured => counts.unmeasured += 1,
                Decision::Fail => {
                    counts.refuse += 1;
                    *counts.organisations.entry(org.clone()).or_default() += 1;
                }
            }
        }
        let Some(f) = facts.filter(|f| f.evidence != "-") else {
            return;
        };
        self.measured += 1;
        let domain = r.domain.clone().unwrap_or_else(|| "(none)".into());
        let row = self
            .rows
            .entry((org.clone(), domain.clone()))
            .or_insert_with(|| OrgRow {
                organisation: org,
                sender_domain: domain,
                ..OrgRow::default()
            });
        row.messages += 1;
        if f.evidence == evidence::PLAINTEXT {
            row.plaintext += 1;
        }
        *row.decided_by.entry(f.evidence.clone()).or_default() += 1;
        for kind in KINDS {
            let rung = Rung::from(kind);
            let passed = u64::from(rung.class(f.word(rung)) == Some(Class::Pass));
            *row.passed.entry(rung.as_str()).or_default() += passed;
        }
        if f.word(Rung::MtaPresented) == "untrusted" {
            row.untrusted_certificate += 1;
        }
        let probe = f.word(Rung::Probe);
        if probe != "-" {
            *row.probe.entry(probe.to_string()).or_default() += 1;
        }
    }

    /// `checked`: the shares' base; `top`: rows and organisations listed.
    pub fn summary(self, checked: u64, top: usize) -> EvidenceSummary {
        let percent = |n: u64| {
            if checked == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / checked as f64).round() / 10.0
            }
        };
        let organisations_total = self.rows.len();
        let mut rows: Vec<OrgRow> = self.rows.into_values().collect();
        rows.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then_with(|| a.organisation.cmp(&b.organisation))
                .then_with(|| a.sender_domain.cmp(&b.sender_domain))
        });
        rows.truncate(top);
        let settings = self
            .settings
            .into_iter()
            .map(|(kinds, c)| SettingImpact {
                evidence: kinds.iter().map(|k| k.as_str()).collect(),
                refuse: c.refuse,
                refuse_percent: percent(c.refuse),
                defer: c.defer,
                defer_percent: percent(c.defer),
                unmeasured: c.unmeasured,
                top_organisations: super::aggregate::top_n(&c.organisations, top),
            })
            .collect();
        EvidenceSummary {
            measured: self.measured,
            organisations_total,
            organisations: rows,
            settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(evidence: &str, mv: &str, pr: &str, sd: &str) -> TlsFacts {
        TlsFacts {
            evidence: evidence.into(),
            rungs: [mv.into(), "-".into(), pr.into(), sd.into()],
            org: "o.test".into(),
        }
    }

    #[test]
    fn seven_settings_with_mta_verified_first() {
        let sets = candidate_settings();
        assert_eq!(sets.len(), 7);
        let with: Vec<bool> = sets
            .iter()
            .map(|s| s.contains(&Evidence::MtaVerified))
            .collect();
        assert_eq!(with, [true, true, true, true, false, false, false]);
        let sizes: Vec<usize> = sets.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 2, 2, 3, 1, 1, 2]);
        assert_eq!(
            setting_name(&["mta-verified", "probe"]),
            r#"["mta-verified", "probe"]"#
        );
    }

    #[test]
    fn settings_decide_from_the_logged_rungs() {
        use Evidence::*;
        let ses = facts("sender-domain", "none", "no-listener", "mx-certified");
        assert_eq!(decide(&[MtaVerified], Some(&ses)), Decision::Fail);
        assert_eq!(
            decide(&[MtaVerified, SenderDomain], Some(&ses)),
            Decision::Pass(SenderDomain)
        );
        let gmail = facts("mta-verified", "verified", "-", "mx-certified");
        assert_eq!(decide(&[Probe], Some(&gmail)), Decision::Unmeasured);
        let firewalled = facts("none", "none", "timeout", "not-certified");
        assert_eq!(decide(&[Probe], Some(&firewalled)), Decision::Temporary);
        assert_eq!(decide(&[SenderDomain], Some(&firewalled)), Decision::Fail);
        let plain = facts("plaintext", "-", "-", "-");
        assert_eq!(decide(&[Probe], Some(&plain)), Decision::Fail);
        assert_eq!(decide(&[Probe], None), Decision::Unmeasured);
    }
}
