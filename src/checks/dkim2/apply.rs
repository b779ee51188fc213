//! What a DKIM2 chain means for the mailkey check of the sender domain `D`
//! (docs/protocol.md, "mailkey v2 = DKIM2"), applied to the results before
//! the verdict:
//!
//! - a chain that verifies for this envelope and whose newest signature is
//!   `D`'s (mailkey's alignment) passes mailkey: `mailkey=pass (dkim2 …)`,
//!   whatever the DKIM1 mailkey signature says — it is the stronger
//!   evidence (it binds this transaction);
//! - a chain of `D` that fails (replay, change without recipe, broken)
//!   fails mailkey with its own reason and guidance, even when a DKIM1
//!   mailkey signature verifies: that signature is exactly what a replay
//!   reuses (docs/decisions.md, "DKIM2: the envelope-bound evidence wins");
//! - a key lookup that failed temporarily defers, unless DKIM1 passed;
//! - anything else (no chain, another domain's chain, `t=y`) leaves the
//!   mailkey result as it is.
//!
//! The `dkim2` result's effect already says which ([`super`]).

use crate::{
    checks::{dkim2, mailkey, CheckResult, Effect, Failure, Status},
    config::Alignment,
};

/// Rewrites the mailkey result by the `dkim2` result. `domain`: the
/// transaction's sender domain.
pub fn apply(results: &mut [CheckResult], domain: Option<&str>, alignment: Alignment) {
    let Some(chain) = results.iter().find(|r| r.check == dkim2::NAME).cloned() else {
        return;
    };
    let Some(domain) = domain else { return };
    let Some(mk) = results.iter_mut().find(|r| r.check == mailkey::NAME) else {
        return;
    };
    let why = chain
        .fact_value(dkim2::FACT_FAILURE)
        .unwrap_or("does not verify");
    match chain.status {
        Status::Pass => {
            let newest = |fact| chain.fact_value(fact).unwrap_or_default();
            let d = newest(dkim2::FACT_NEWEST_D);
            if !d.is_empty() && mailkey::aligned(d, domain, alignment) {
                let i = newest(dkim2::FACT_NEWEST_I);
                let originator = chain.props_value("header.d").filter(|_| i != "1");
                *mk = passed(i, d, newest(dkim2::FACT_NEWEST_S), originator);
            }
        }
        Status::Fail | Status::PermError if chain.effect != Effect::Accept => {
            let reason = if chain.failure == Some(Failure::Dkim2Dsn) {
                why.to_string()
            } else {
                format!("DKIM2 chain of {domain} fails: {why}")
            };
            *mk = CheckResult::new(mailkey::NAME, Status::Fail, chain.effect)
                .reason(reason)
                .prop("header.d", domain);
            mk.failure = chain.failure;
        }
        Status::TempError if chain.effect != Effect::Accept && mk.status != Status::Pass => {
            *mk = CheckResult::new(mailkey::NAME, Status::TempError, chain.effect)
                .reason(format!("DKIM2 chain of {domain}: {why}"));
        }
        _ => {}
    }
}

/// mailkey's pass by a DKIM2 chain: `header.d` and `header.s` of the newest
/// signature (`i=`); the comment names it and, for a forward, the
/// originator.
fn passed(i: &str, d: &str, selector: &str, originator: Option<&str>) -> CheckResult {
    let reason = match originator {
        Some(o) => format!("dkim2 i={i} by {d}, originator {o}"),
        None => format!("dkim2 i={i} by {d}"),
    };
    CheckResult::new(mailkey::NAME, Status::Pass, Effect::Accept)
        .reason(reason)
        .prop("header.d", d)
        .prop("header.s", selector)
}

/// Reading back what the `dkim2` check wrote.
trait ChainResult {
    fn props_value(&self, name: &str) -> Option<&str>;
}

impl ChainResult for CheckResult {
    fn props_value(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Code;

    fn chain(status: Status, effect: Effect, i: &str) -> CheckResult {
        CheckResult::new(dkim2::NAME, status, effect)
            .prop("header.d", "o.test")
            .fact(dkim2::FACT_NEWEST_I, i)
            .fact(dkim2::FACT_NEWEST_D, "a.test")
            .fact(dkim2::FACT_NEWEST_S, "sel")
    }

    fn mailkey_pass() -> CheckResult {
        CheckResult::new(mailkey::NAME, Status::Pass, Effect::Accept).prop("header.d", "a.test")
    }

    #[test]
    fn a_failing_chain_of_the_sender_outranks_a_dkim1_pass() {
        let failing = chain(Status::Fail, Effect::Reject(Code::MAILKEY_FAIL), "1")
            .fact(
                dkim2::FACT_FAILURE,
                "DKIM2-Signature i=1 RCPT TO <c@c.test> did not match",
            )
            .failure(Failure::Dkim2Replay);
        let mut r = vec![mailkey_pass(), failing];
        apply(&mut r, Some("a.test"), Alignment::Strict);
        assert_eq!(r[0].status, Status::Fail);
        assert_eq!(r[0].failure, Some(Failure::Dkim2Replay));
        assert_eq!(
            r[0].reason.as_deref(),
            Some(
                "DKIM2 chain of a.test fails: DKIM2-Signature i=1 RCPT TO <c@c.test> did not match"
            )
        );
    }

    #[test]
    fn a_chain_of_another_domain_or_under_test_changes_nothing() {
        let mut r = vec![mailkey_pass(), chain(Status::Fail, Effect::Accept, "1")];
        apply(&mut r, Some("a.test"), Alignment::Strict);
        assert_eq!(r[0].status, Status::Pass);
    }

    #[test]
    fn a_passing_chain_of_the_sender_passes_mailkey() {
        let none = CheckResult::new(
            mailkey::NAME,
            Status::None,
            Effect::Reject(Code::MAILKEY_FAIL),
        );
        let mut r = vec![none.clone(), chain(Status::Pass, Effect::Accept, "2")];
        apply(&mut r, Some("a.test"), Alignment::Strict);
        assert_eq!(r[0].status, Status::Pass);
        assert_eq!(
            r[0].reason.as_deref(),
            Some("dkim2 i=2 by a.test, originator o.test")
        );
        assert_eq!(
            r[0].props,
            [("header.d", "a.test".into()), ("header.s", "sel".into())]
        );
        // Strictly aligned only: a parent's chain does not pass a subdomain.
        let mut r = vec![none, chain(Status::Pass, Effect::Accept, "1")];
        apply(&mut r, Some("sub.a.test"), Alignment::Strict);
        assert_eq!(r[0].status, Status::None);
    }
}
