//! What check-domain found, and how it is shown: one line per finding,
//! marked ✓ (good), ✗ (to fix) or ! (worth knowing, not an error), or the
//! same as JSON for scripts.

use crate::checks::Effect;
use serde::Serialize;
use std::fmt;

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
    /// `domain`, `mailkey`, `dkim`, `key`, `signature`, `spf`, `ptr`, `mx`
    /// or `tls`.
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
    /// Nothing to fix and no lookup failed: receivers accept the mail.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub(super) fn new(domain: String, findings: Findings) -> Self {
        let findings = findings.0;
        let ok = !findings.iter().any(|x| x.mark == Mark::Fail);
        Self {
            domain,
            ok,
            findings,
        }
    }

    /// 0: nothing to fix; 1: something to fix (receivers reject the mail);
    /// 2: nothing to fix was found, but a lookup that receivers make failed:
    /// they would defer the mail now, and the check is incomplete. A rule
    /// broken outright wins over a failed lookup, as a reject wins over a
    /// tempfail in the milter's verdict.
    pub fn exit_code(&self) -> u8 {
        if self
            .findings
            .iter()
            .any(|f| f.mark == Mark::Fail && !f.temporary)
        {
            1
        } else if self.findings.iter().any(|f| f.temporary) {
            2
        } else {
            0
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

/// The findings collected so far.
#[derive(Default)]
pub(super) struct Findings(Vec<Finding>);

impl Findings {
    pub(super) fn add(&mut self, mark: Mark, check: &'static str, text: impl Into<String>) {
        self.0.push(Finding {
            mark,
            check,
            text: text.into(),
            temporary: false,
        });
    }

    pub(super) fn temporary(&mut self, check: &'static str, text: impl Into<String>) {
        self.0.push(Finding {
            mark: Mark::Fail,
            check,
            text: text.into(),
            temporary: true,
        });
    }

    /// A finding marked by what the milter's check makes of it: a reject
    /// is ✗, a tempfail a temporary ✗, an accept `accepted`.
    pub(super) fn judged(
        &mut self,
        effect: Effect,
        accepted: Mark,
        check: &'static str,
        text: impl Into<String>,
    ) {
        match effect {
            Effect::Accept => self.add(accepted, check, text),
            Effect::Reject(_) => self.add(Mark::Fail, check, text),
            Effect::Tempfail(_) => self.temporary(check, text),
        }
    }
}
