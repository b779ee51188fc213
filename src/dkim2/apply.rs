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
//! The `dkim2` result's effect already says which ([`crate::checks::dkim2`]).

use crate::{
    checks::{dkim2, mailkey, CheckResult, Effect, Failure, Status},
    config::Alignment,
};
use mail_auth::AuthenticatedMessage;

/// Rewrites the mailkey result by the `dkim2` result. `domain`: the
/// transaction's sender domain; `message`: the message (its header block
/// names the newest signer).
pub fn apply(
    results: &mut [CheckResult],
    domain: Option<&str>,
    alignment: Alignment,
    message: &[u8],
) {
    let Some(chain) = results.iter().find(|r| r.check == dkim2::NAME).cloned() else {
        return;
    };
    let Some(domain) = domain else { return };
    let Some(mk) = results.iter_mut().find(|r| r.check == mailkey::NAME) else {
        return;
    };
    match chain.status {
        Status::Pass => {
            let Some(newest) = newest_signer(message) else {
                return;
            };
            if mailkey::aligned(&newest.d, domain, alignment) {
                *mk = passed(&newest, chain.props_value("header.d"));
            }
        }
        Status::Fail | Status::PermError if chain.effect != Effect::Accept => {
            let why = chain.failure_reason();
            let reason = if chain.failure == Some(Failure::Dkim2Dsn) {
                why
            } else {
                format!("DKIM2 chain of {domain} fails: {why}")
            };
            *mk = CheckResult {
                check: mailkey::NAME,
                status: Status::Fail,
                reason: Some(reason),
                effect: chain.effect,
                props: vec![("header.d", domain.to_string())],
                failure: chain.failure,
            };
        }
        Status::TempError if chain.effect != Effect::Accept && mk.status != Status::Pass => {
            *mk = CheckResult {
                check: mailkey::NAME,
                status: Status::TempError,
                reason: Some(format!(
                    "DKIM2 chain of {domain}: {}",
                    chain.failure_reason()
                )),
                effect: chain.effect,
                props: Vec::new(),
                failure: None,
            };
        }
        _ => {}
    }
}

/// The newest signature: who delivered to us.
struct Signer {
    i: u32,
    d: String,
    selector: String,
}

fn newest_signer(message: &[u8]) -> Option<Signer> {
    let end = super::header_fields(message)
        .last()
        .map_or(0, |(_, r)| r.end);
    let head = AuthenticatedMessage::parse(message.get(..end)?)?;
    let sig = head.dkim2_signatures().iter().max_by_key(|h| h.header.i)?;
    Some(Signer {
        i: sig.header.i,
        d: sig.header.d.to_ascii_lowercase(),
        selector: sig
            .header
            .s
            .first()
            .map(|v| v.selector.clone())
            .unwrap_or_default(),
    })
}

/// mailkey's pass by a DKIM2 chain: `header.d` and `header.s` of the newest
/// signature; the comment names it and, for a forward, the originator.
fn passed(newest: &Signer, originator: Option<&str>) -> CheckResult {
    let reason = match originator {
        Some(o) if newest.i > 1 => format!("dkim2 i={} by {}, originator {o}", newest.i, newest.d),
        _ => format!("dkim2 i={} by {}", newest.i, newest.d),
    };
    CheckResult::new(mailkey::NAME, Status::Pass, Effect::Accept)
        .reason(reason)
        .prop("header.d", newest.d.clone())
        .prop("header.s", newest.selector.clone())
}

/// Reading back what the `dkim2` check wrote.
trait ChainResult {
    fn props_value(&self, name: &str) -> Option<&str>;
    fn failure_reason(&self) -> String;
}

impl ChainResult for CheckResult {
    fn props_value(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The comment without the hop list and the result word: the draft's
    /// text of the failure.
    fn failure_reason(&self) -> String {
        let comment = self.reason.as_deref().unwrap_or("does not verify");
        let why = comment.rsplit_once("; ").map_or(comment, |(_, why)| why);
        ["FAIL: ", "PERMERROR: ", "TEMPERROR: "]
            .iter()
            .find_map(|p| why.strip_prefix(p))
            .unwrap_or(why)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Code;

    fn results(chain: CheckResult) -> Vec<CheckResult> {
        vec![
            CheckResult::new(mailkey::NAME, Status::Pass, Effect::Accept)
                .prop("header.d", "a.test"),
            chain,
        ]
    }

    const MESSAGE: &[u8] = b"DKIM2-Signature: i=1; m=1; t=1; d=a.test; mf=PGFAYS50ZXN0Pg==; \
        rt=PGJAYi50ZXN0Pg==; s=sel:ed25519-sha256:AAAA\r\nFrom: a@a.test\r\n\r\nhi\r\n";

    #[test]
    fn a_failing_chain_of_the_sender_outranks_a_dkim1_pass() {
        let chain = CheckResult::new(
            dkim2::NAME,
            Status::Fail,
            Effect::Reject(Code::MAILKEY_FAIL),
        )
        .reason("i=1 a.test; FAIL: DKIM2-Signature i=1 RCPT TO <c@c.test> did not match")
        .failure(Failure::Dkim2Replay);
        let mut r = results(chain);
        apply(&mut r, Some("a.test"), Alignment::Strict, MESSAGE);
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
        let chain = CheckResult::new(dkim2::NAME, Status::Fail, Effect::Accept);
        let mut r = results(chain);
        apply(&mut r, Some("a.test"), Alignment::Strict, MESSAGE);
        assert_eq!(r[0].status, Status::Pass);
    }

    #[test]
    fn a_passing_chain_of_the_sender_passes_mailkey() {
        let chain =
            CheckResult::new(dkim2::NAME, Status::Pass, Effect::Accept).prop("header.d", "a.test");
        let mut r = vec![
            CheckResult::new(
                mailkey::NAME,
                Status::None,
                Effect::Reject(Code::MAILKEY_FAIL),
            ),
            chain,
        ];
        apply(&mut r, Some("a.test"), Alignment::Strict, MESSAGE);
        assert_eq!(r[0].status, Status::Pass);
        assert_eq!(r[0].reason.as_deref(), Some("dkim2 i=1 by a.test"));
        assert_eq!(
            r[0].props,
            [("header.d", "a.test".into()), ("header.s", "sel".into())]
        );
        // Strictly aligned only: a parent's chain does not pass a subdomain.
        let mut r = vec![
            CheckResult::new(mailkey::NAME, Status::None, Effect::Accept),
            CheckResult::new(dkim2::NAME, Status::Pass, Effect::Accept),
        ];
        apply(&mut r, Some("sub.a.test"), Alignment::Strict, MESSAGE);
        assert_eq!(r[0].status, Status::None);
    }
}
