//! Forwarded and list mail (#15): a forwarder sends from its own IP, so
//! strict SPF of the original sender fails; a list changes the subject or
//! adds a footer, so the mailkey signature fails. When a sealer we trust
//! (`[forwarding] trusted_arc_sealers`) recorded in a validating ARC chain
//! that those checks passed when the message reached it, its word stands in
//! for ours: the failing result becomes `pass` with the reason
//! `arc: <sealer>`.
//!
//! The rule (docs/decisions.md, "Forwarding: trusted ARC sealers"):
//! - our `arc` result is `pass` (the whole chain validates) — a broken
//!   chain changes nothing;
//! - `d=` of the newest `ARC-Seal` is a trusted sealer — an untrusted one
//!   changes nothing, however valid its seal;
//! - the newest `ARC-Authentication-Results` records, *for the sender
//!   domain D of this transaction*, `spf=pass` (smtp.mailfrom an address
//!   in D, or D) or `mailkey=pass` (or `dkim=pass` with `header.s=mailkey`,
//!   from a verifier that is not mailkey-milter) with `header.d=D` — read
//!   with the RFC 8601 grammar (`ar_syntax`), so that a quoted
//!   value is one value, and taken only when the property is a domain or
//!   an address whose domain is D (issue #21);
//! - each of SPF and mailkey is satisfied on its own record; only results
//!   that would reject or defer are rewritten. The TLS and MX checks of the
//!   connecting forwarder are never rewritten.

use crate::{
    ar_syntax::{is_domain_name, ResInfo},
    checks::{self, arc, ArcVouch, CheckResult, Effect, Status},
};

/// The reason of a result satisfied here starts with this.
const VIA: &str = "arc: ";

/// Was `r` satisfied by a trusted sealer (the log line says so)?
pub(crate) fn vouched_for(r: &CheckResult) -> bool {
    r.status == Status::Pass && r.reason.as_deref().is_some_and(|w| w.starts_with(VIA))
}

/// Rewrites the SPF and mailkey results that a trusted ARC sealer vouches
/// for. `domain`: the transaction's sender domain D. Pure but for parsing
/// `message`, which happens only when there is something to rewrite.
pub fn apply(
    results: &mut [CheckResult],
    trusted: &[String],
    domain: Option<&str>,
    message: &[u8],
) {
    let Some(domain) = domain else { return };
    let Some(sealer) = trusted_sealer(results, trusted) else {
        return;
    };
    let failing = |r: &CheckResult| arc_vouch(r).is_some() && r.effect != Effect::Accept;
    if !results.iter().any(failing) {
        return;
    }
    let Some((newest_sealer, recorded)) = arc::newest_results(message) else {
        return;
    };
    // The set the check validated and the one we read must be the same.
    if !same_domain(&newest_sealer, &sealer) {
        return;
    }
    for r in results.iter_mut().filter(|r| failing(r)) {
        if vouched(&recorded, r, domain) {
            r.status = Status::Pass;
            r.effect = Effect::Accept;
            r.reason = Some(format!("{VIA}{sealer}"));
        }
    }
}

/// The newest sealer of a validating chain, if we trust it.
fn trusted_sealer(results: &[CheckResult], trusted: &[String]) -> Option<String> {
    let arc = results
        .iter()
        .find(|r| r.check == arc::NAME && r.status == Status::Pass)?;
    let (_, sealer) = arc.props.iter().find(|(n, _)| *n == "header.d")?;
    trusted
        .iter()
        .any(|t| same_domain(t, sealer))
        .then(|| sealer.clone())
}

/// How a trusted sealer may vouch for `r`'s check (the registry's
/// [`checks::Check::arc_vouch`]); `None`: it may not.
pub(crate) fn arc_vouch(r: &CheckResult) -> Option<ArcVouch> {
    checks::find(r.check).and_then(|c| c.arc_vouch)
}

/// Does the recorded set say that `r`'s check passed for `domain`? Only
/// a property that is a domain name (`header.d`), or an address or domain
/// (`smtp.mailfrom`), in `domain` counts (each check's `arc_vouch`).
fn vouched(recorded: &[ResInfo], r: &CheckResult, domain: &str) -> bool {
    let in_domain = |d: &str| is_domain_name(d) && same_domain(d, domain);
    let Some(vouch) = arc_vouch(r) else {
        return false;
    };
    recorded
        .iter()
        .filter(|x| x.result == "pass")
        .any(|x| vouch(x, &in_domain))
}

fn same_domain(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{mailkey, spf};
    use crate::reply::Code;

    fn recorded(method: &str, result: &str, props: &[(&str, &str)]) -> ResInfo {
        ResInfo {
            method: method.into(),
            result: result.into(),
            props: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn failing(check: crate::checks::CheckName) -> CheckResult {
        CheckResult::new(check, Status::Fail, Effect::Reject(Code::SEVERAL))
    }

    #[test]
    fn spf_needs_a_pass_for_the_sender_domain() {
        let spf = failing(spf::NAME);
        let pass = |from| [recorded("spf", "pass", &[("smtp.mailfrom", from)])];
        assert!(vouched(&pass("a@Sender.test"), &spf, "sender.test"));
        assert!(vouched(&pass("sender.test"), &spf, "sender.test"));
        assert!(!vouched(&pass("a@other.test"), &spf, "sender.test"));
        // Issue #21: only an address or a domain in D counts.
        assert!(vouched(&pass("\"x y\"@sender.test"), &spf, "sender.test"));
        assert!(!vouched(&pass("\"x@sender.test"), &spf, "sender.test"));
        assert!(!vouched(&pass("a@sender.test;"), &spf, "sender.test"));
        assert!(!vouched(&pass("x;sender.test"), &spf, "sender.test"));
        let fail = [recorded(
            "spf",
            "fail",
            &[("smtp.mailfrom", "a@sender.test")],
        )];
        assert!(!vouched(&fail, &spf, "sender.test"));
    }

    #[test]
    fn mailkey_accepts_mailkey_or_dkim_with_the_mailkey_selector() {
        let mk = failing(mailkey::NAME);
        let ours = [recorded("mailkey", "pass", &[("header.d", "sender.test")])];
        assert!(vouched(&ours, &mk, "sender.test"));
        let dkim = [recorded(
            "dkim",
            "pass",
            &[("header.d", "sender.test"), ("header.s", "mailkey")],
        )];
        assert!(vouched(&dkim, &mk, "sender.test"));
        let other_selector = [recorded(
            "dkim",
            "pass",
            &[("header.d", "sender.test"), ("header.s", "s1")],
        )];
        assert!(!vouched(&other_selector, &mk, "sender.test"));
        let other_domain = [recorded("mailkey", "pass", &[("header.d", "evil.test")])];
        assert!(!vouched(&other_domain, &mk, "sender.test"));
        let not_a_domain = [recorded("mailkey", "pass", &[("header.d", "@sender.test")])];
        assert!(!vouched(&not_a_domain, &mk, "sender.test"));
    }

    #[test]
    fn only_a_passing_chain_by_a_trusted_sealer_counts() {
        let trusted = vec!["Lists.example.org".to_string()];
        let arc = |status| {
            vec![CheckResult::new(arc::NAME, status, Effect::Accept)
                .prop("header.d", "lists.example.org")]
        };
        assert_eq!(
            trusted_sealer(&arc(Status::Pass), &trusted).as_deref(),
            Some("lists.example.org")
        );
        assert_eq!(trusted_sealer(&arc(Status::Fail), &trusted), None);
        assert_eq!(trusted_sealer(&arc(Status::Pass), &["x.test".into()]), None);
    }
}
