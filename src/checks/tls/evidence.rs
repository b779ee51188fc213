//! The evidence ladder (docs/decisions.md, "Evidence ladder"): the kinds of
//! evidence that a sending server can be held to account, each a named
//! rung with the words it logs, and the one rule that turns what was found
//! on the rungs into a decision for a set of accepted kinds. The check
//! decides with it for `[tls] evidence`; the report decides with it again,
//! from the log, for every candidate setting. Nothing here does I/O.

use crate::config::Evidence;
use std::fmt;

/// A rung of the ladder. `MtaPresented` is measured and logged, never
/// accepted (an untrusted certificate proves nothing about its holder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rung {
    MtaVerified,
    MtaPresented,
    Probe,
    SenderDomain,
}

/// How a rung's finding counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Pass,
    Fail,
    /// May pass later: the decision is a deferral, not a refusal.
    Temporary,
}

impl Rung {
    /// Every rung, in the order of the log line and the report.
    pub(crate) const ALL: [Rung; 4] = [
        Self::MtaVerified,
        Self::MtaPresented,
        Self::Probe,
        Self::SenderDomain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MtaVerified => "mta-verified",
            Self::MtaPresented => "mta-presented",
            Self::Probe => "probe",
            Self::SenderDomain => "sender-domain",
        }
    }

    /// Its field in the log line (docs/log-format.md).
    pub fn field(self) -> &'static str {
        match self {
            Self::MtaVerified => "tls.mta_verified",
            Self::MtaPresented => "tls.mta_presented",
            Self::Probe => "tls.probe",
            Self::SenderDomain => "tls.sender_domain",
        }
    }

    /// The words this rung logs, and how each counts. `-` (not measured)
    /// is none of them.
    pub fn words(self) -> &'static [(&'static str, Class)] {
        use Class::*;
        match self {
            Self::MtaVerified => &[("verified", Pass), ("unaligned", Fail), ("none", Fail)],
            // Reported, never a pass.
            Self::MtaPresented => &[
                ("untrusted", Fail),
                ("no-certificate", Fail),
                ("unknown", Fail),
            ],
            Self::Probe => &PROBE_WORDS,
            Self::SenderDomain => &[
                ("mx-certified", Pass),
                ("mta-sts", Pass),
                ("dane", Pass),
                ("no-spf-pass", Fail),
                ("not-certified", Fail),
                ("no-domain", Fail),
                ("temporary", Temporary),
            ],
        }
    }

    /// How a logged word counts; `None` for `-` or a word this version
    /// does not know.
    pub fn class(self, word: &str) -> Option<Class> {
        self.words()
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, c)| *c)
    }
}

impl From<Evidence> for Rung {
    fn from(e: Evidence) -> Self {
        match e {
            Evidence::MtaVerified => Self::MtaVerified,
            Evidence::SenderDomain => Self::SenderDomain,
            Evidence::Probe => Self::Probe,
        }
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The probe's words: its outcome taxonomy ([`crate::tls::ProbeKind`]).
const PROBE_WORDS: [(&str, Class); 12] = {
    use crate::tls::ProbeKind as K;
    let mut out = [("", Class::Fail); 12];
    let mut i = 0;
    while i < 12 {
        let k = K::ALL[i];
        let class = match k {
            K::Verified => Class::Pass,
            _ if k.is_temporary() => Class::Temporary,
            _ => Class::Fail,
        };
        out[i] = (k.as_str(), class);
        i += 1;
    }
    out
};

/// The `tls.evidence` field: which accepted kind passed, or why none could.
pub(crate) const FIELD_EVIDENCE: &str = "tls.evidence";
/// The `org` field: the sending organisation.
pub(crate) const FIELD_ORG: &str = "org";
/// `tls.evidence` of a plaintext session (no rung was measured).
pub(crate) const PLAINTEXT: &str = "plaintext";
/// `tls.evidence` when no accepted kind passed.
pub const NONE: &str = "none";

/// What a set of accepted kinds makes of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This kind (the first of the set, in its order, that passed).
    Pass(Evidence),
    /// None passed and one may yet: defer.
    Temporary,
    /// None passed and none can by waiting: refuse.
    Fail,
    /// None passed, and a kind of the set was not measured (the report,
    /// for a setting the daemon did not run).
    Unmeasured,
}

/// THE rule: any accepted kind that passed is enough; otherwise a
/// temporary finding defers; otherwise a kind not measured leaves it open;
/// otherwise refuse. `class(rung)` is `None` for a rung not measured.
pub fn decide(accepted: &[Evidence], class: impl Fn(Rung) -> Option<Class>) -> Decision {
    let classes: Vec<(Evidence, Option<Class>)> =
        accepted.iter().map(|e| (*e, class((*e).into()))).collect();
    if let Some((e, _)) = classes.iter().find(|(_, c)| *c == Some(Class::Pass)) {
        return Decision::Pass(*e);
    }
    if classes.iter().any(|(_, c)| *c == Some(Class::Temporary)) {
        Decision::Temporary
    } else if classes.iter().any(|(_, c)| c.is_none()) {
        Decision::Unmeasured
    } else {
        Decision::Fail
    }
}

/// A set of accepted kinds, small and `Copy`, for the guidance (which
/// names a way to meet each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EvidenceSet(u8);

impl EvidenceSet {
    fn bit(e: Evidence) -> u8 {
        match e {
            Evidence::MtaVerified => 1,
            Evidence::SenderDomain => 2,
            Evidence::Probe => 4,
        }
    }

    pub fn of(kinds: &[Evidence]) -> Self {
        Self(kinds.iter().fold(0, |acc, e| acc | Self::bit(*e)))
    }

    pub fn contains(self, e: Evidence) -> bool {
        self.0 & Self::bit(e) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ProbeKind;
    use Evidence::*;

    #[test]
    fn probe_words_are_the_taxonomy() {
        for k in ProbeKind::ALL {
            let class = Rung::Probe.class(k.as_str());
            let expected = if k == ProbeKind::Verified {
                Class::Pass
            } else if k.is_temporary() {
                Class::Temporary
            } else {
                Class::Fail
            };
            assert_eq!(class, Some(expected), "{k}");
        }
        assert_eq!(Rung::Probe.class("-"), None);
    }

    #[test]
    fn any_pass_then_temporary_then_unmeasured_then_fail() {
        let found = |mv, sd, pr| {
            move |r: Rung| match r {
                Rung::MtaVerified => mv,
                Rung::SenderDomain => sd,
                Rung::Probe => pr,
                Rung::MtaPresented => Some(Class::Fail),
            }
        };
        let all = [MtaVerified, SenderDomain, Probe];
        let (p, f, t) = (Some(Class::Pass), Some(Class::Fail), Some(Class::Temporary));
        assert_eq!(decide(&all, found(f, p, t)), Decision::Pass(SenderDomain));
        assert_eq!(decide(&all, found(f, f, t)), Decision::Temporary);
        assert_eq!(decide(&all, found(f, f, f)), Decision::Fail);
        assert_eq!(decide(&[MtaVerified], found(f, p, p)), Decision::Fail);
        assert_eq!(decide(&[Probe], found(p, f, None)), Decision::Unmeasured);
        // A kind not in the set never counts, not even temporarily.
        assert_eq!(decide(&[SenderDomain], found(f, f, t)), Decision::Fail);
    }
}
