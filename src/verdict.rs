//! The one place where check results become what happens to a message:
//! accept, reject or tempfail, with the SMTP reply, and — in monitor mode —
//! what would have happened.
//!
//! Rules (docs/protocol.md, "Receiver policy"): any enforced check that rejects → reject with
//! its code (several → `550 5.7.26`); otherwise any enforced check with a
//! temporary error → its `451` code; otherwise accept. `mode = "monitor"`
//! turns every reject and tempfail into an accept that is logged as
//! `would_reject`.

/// Where tests/properties.rs and older callers find them; they live in
/// [`crate::reply`].
pub use crate::reply::{sanitize, MAX_LINE_TEXT};
use crate::{
    checks::{self, CheckName, CheckResult, Effect},
    config::{Config, Mode},
    exempt::Reason,
    guidance::{self, Sender},
    reply::{Code, Outcome, Reply, MAX_REPLY_LINES},
};

/// What happens to a message, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What the checks decided, as enforce mode applies it: accept, or a
    /// reject or tempfail with our reply.
    pub outcome: Outcome<Reply>,
    /// The outcome is only what enforce mode would have done (monitor mode,
    /// or an exempt sender): the MTA is told to accept.
    pub monitor_only: bool,
    /// The sender is exempt (`[exempt]`, or a recipient's control let it
    /// through): accepted whatever the checks say.
    pub exempt: Option<Reason>,
}

impl Verdict {
    /// The verdict of a message nothing objects to.
    pub fn accept() -> Self {
        Self::refuse(Outcome::Accept)
    }

    /// A refusal or a deferral with its reply, as enforce mode gives it.
    pub(crate) fn refuse(outcome: Outcome<Reply>) -> Self {
        Self {
            outcome,
            monitor_only: false,
            exempt: None,
        }
    }

    /// The verdict for an exempt sender: accepted, and a reply only as what
    /// would have happened (as in monitor mode).
    pub(crate) fn exempt(self, reason: Reason) -> Self {
        Self {
            monitor_only: !self.outcome.is_accept(),
            outcome: self.outcome,
            exempt: Some(reason),
        }
    }

    /// What the MTA is told: in monitor mode (or for an exempt sender)
    /// always accept.
    pub fn applied(&self) -> Outcome<&Reply> {
        if self.monitor_only {
            Outcome::Accept
        } else {
            self.outcome.as_ref()
        }
    }

    /// In monitor mode: the code that enforce mode would have answered.
    pub(crate) fn would(&self) -> Option<Code> {
        self.outcome
            .refusal()
            .filter(|_| self.monitor_only)
            .map(|r| r.code)
    }
}

/// Is this check's result applied (before the global mode is considered)?
/// A result of a check that is not registered (none should exist) counts.
pub(crate) fn check_enforced(config: &Config, check: CheckName) -> bool {
    checks::find(check).is_none_or(|c| c.is_enforced(config))
}

/// The verdict on `results` for `sender` (whose domain, address and HELO
/// name the guidance names).
pub fn decide(results: &[CheckResult], config: &Config, sender: &Sender<'_>) -> Verdict {
    let domain = sender.domain;
    let enforced = || results.iter().filter(|r| check_enforced(config, r.check));
    let rejects: Vec<(&CheckResult, Code)> = enforced()
        .filter_map(|r| match r.effect {
            Effect::Reject(code) => Some((r, code)),
            _ => None,
        })
        .collect();
    let temps: Vec<(&CheckResult, Code)> = enforced()
        .filter_map(|r| match r.effect {
            Effect::Tempfail(code) => Some((r, code)),
            _ => None,
        })
        .collect();

    let outcome = match combine(enforced().map(|r| r.effect)) {
        Outcome::Accept => return Verdict::accept(),
        Outcome::Reject(_) => reject(&rejects, config, sender),
        Outcome::Tempfail(code) => {
            let mut lines: Vec<String> =
                temps.iter().map(|(r, _)| failure_line(r, domain)).collect();
            lines.push("This is a temporary failure; please try again later.".into());
            Outcome::Tempfail(Reply::new(code, lines))
        }
    };

    Verdict {
        monitor_only: config.mode == Mode::Monitor,
        ..Verdict::refuse(outcome)
    }
}

/// THE rule that combines enforced checks (docs/protocol.md, "Receiver
/// policy"): any reject rejects, else any tempfail defers, else accept —
/// the first of its kind. `report` applies it to the logged effects.
pub(crate) fn combine<T>(outcomes: impl IntoIterator<Item = Outcome<T>>) -> Outcome<T> {
    let mut deferral = None;
    for outcome in outcomes {
        match outcome {
            Outcome::Reject(_) => return outcome,
            Outcome::Tempfail(_) if deferral.is_none() => deferral = Some(outcome),
            _ => {}
        }
    }
    deferral.unwrap_or(Outcome::Accept)
}

/// The reply of a refusal by one check (its code) or several (`550 5.7.26`).
fn reject(
    rejects: &[(&CheckResult, Code)],
    config: &Config,
    sender: &Sender<'_>,
) -> Outcome<Reply> {
    let domain = sender.domain;
    if let [(only, code)] = rejects[..] {
        let lines = with_guidance(vec![failure_line(only, domain)], rejects, config, sender);
        Outcome::Reject(Reply::new(code, lines))
    } else {
        let mut lines = vec![format!(
            "{} checks failed for {}:",
            rejects.len(),
            domain.unwrap_or("this sender")
        )];
        lines.extend(rejects.iter().map(|(r, _)| failure_line(r, domain)));
        let lines = with_guidance(lines, rejects, config, sender);
        Outcome::Reject(Reply::new(Code::SEVERAL, lines))
    }
}

/// The reason lines followed by the guidance for each rejecting result's
/// failure. The guidance is kept whole (it is what the sender needs to act
/// on): when both do not fit in [`MAX_REPLY_LINES`], the reason lines are
/// cut instead.
fn with_guidance(
    mut reasons: Vec<String>,
    rejects: &[(&CheckResult, Code)],
    config: &Config,
    sender: &Sender<'_>,
) -> Vec<String> {
    let failures: Vec<_> = rejects.iter().map(|(r, _)| r.failure).collect();
    let mut guidance = guidance::reply_lines(&config.guidance, sender, &failures);
    guidance.truncate(MAX_REPLY_LINES - 1);
    reasons.truncate((MAX_REPLY_LINES - guidance.len()).max(1));
    reasons.extend(guidance);
    reasons
}

fn failure_line(r: &CheckResult, domain: Option<&str>) -> String {
    let who = domain.unwrap_or("this sender");
    match &r.reason {
        Some(why) => format!("{} check {} for {who}: {why}", r.check, r.status),
        None => format!("{} check {} for {who}", r.check, r.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn result(check: CheckName, effect: Effect) -> CheckResult {
        CheckResult::new(check, Status::Fail, effect).reason("because")
    }

    fn who(domain: Option<&str>) -> Sender<'_> {
        Sender {
            domain,
            ..Sender::default()
        }
    }

    fn enforce() -> Config {
        Config {
            mode: Mode::Enforce,
            ..Config::default()
        }
    }

    #[test]
    fn single_reject_uses_its_code_and_ends_with_guidance() {
        let v = decide(
            &[
                result(checks::mailkey::NAME, Effect::Reject(Code::MAILKEY_FAIL))
                    .failure(checks::Failure::NoSignature),
            ],
            &enforce(),
            &who(Some("a.test")),
        );
        let Outcome::Reject(reply) = v.outcome else {
            panic!("{v:?}")
        };
        assert_eq!(reply.code, Code::MAILKEY_FAIL);
        assert_eq!(reply.lines[0], "mailkey check fail for a.test: because");
        assert!(reply.lines.last().unwrap().contains("key_file"));
    }

    #[test]
    fn several_rejects_give_5_7_26() {
        let spf = Code::SPF_FAIL;
        let v = decide(
            &[
                result(checks::mailkey::NAME, Effect::Reject(Code::MAILKEY_FAIL)),
                result(checks::spf::NAME, Effect::Reject(spf)),
            ],
            &enforce(),
            &who(Some("a.test")),
        );
        let reply = v.outcome.refusal().unwrap();
        assert_eq!(reply.code, Code::SEVERAL);
        assert!(reply.lines[1].starts_with("mailkey"));
        assert!(reply.lines[2].starts_with("spf"));
    }

    #[test]
    fn reject_beats_tempfail_and_unenforced_checks_do_not_count() {
        let mut config = enforce();
        config.spf.enforce = false;
        let spf = Code::SPF_FAIL;
        let v = decide(
            &[
                result(checks::spf::NAME, Effect::Reject(spf)),
                result(checks::mailkey::NAME, Effect::Tempfail(Code::DNS_TEMPFAIL)),
            ],
            &config,
            &who(Some("a.test")),
        );
        assert_eq!(
            v.outcome.map(|r| r.code),
            Outcome::Tempfail(Code::DNS_TEMPFAIL)
        );
    }

    #[test]
    fn monitor_mode_accepts_and_says_what_it_would_do() {
        let v = decide(
            &[result(
                checks::mailkey::NAME,
                Effect::Reject(Code::MAILKEY_FAIL),
            )],
            &Config::default(),
            &who(None),
        );
        assert_eq!(v.applied(), Outcome::Accept);
        assert_eq!(v.would(), Some(Code::MAILKEY_FAIL));
    }

    #[test]
    fn guidance_survives_long_replies_within_32_lines_of_512_octets() {
        let mut config = enforce();
        config.guidance.url = Some(format!("https://example.org/{}", "u".repeat(250)));
        config.guidance.contact = Some("postmaster@example.org".into());
        let spf = Code::SPF_FAIL;
        let long = "x".repeat(5000);
        let results: Vec<CheckResult> = (0..40)
            .map(|i| {
                let check = if i % 2 == 0 {
                    checks::mailkey::NAME
                } else {
                    checks::spf::NAME
                };
                CheckResult::new(check, Status::Fail, Effect::Reject(spf)).reason(long.clone())
            })
            .collect();
        let verdict = decide(&results, &config, &who(Some(&"d".repeat(250))));
        let reply = verdict.outcome.refusal().unwrap();
        assert!(reply.lines.len() <= MAX_REPLY_LINES);
        assert_eq!(
            reply.lines.last().unwrap(),
            "Contact: postmaster@example.org"
        );
        assert!(reply
            .lines
            .iter()
            .any(|l| l.starts_with("Details: https://example.org/")));
        for line in reply.render().lines() {
            assert!(line.len() + 2 <= 512, "{} octets", line.len() + 2);
        }
    }
}
