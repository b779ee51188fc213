//! The `Authentication-Results` header (RFC 8601) we add, and recognition of
//! forged ones: a header that claims our authserv-id but did not come from
//! us must be removed before ours is added, or downstream filters would
//! trust the sender's own claims.

use crate::{
    ar_syntax as syntax,
    checks::{self, CheckResult, Effect},
    config::Config,
    verdict::{check_enforced, Verdict},
};

pub const HEADER: &str = "Authentication-Results";

/// The header value (without the name), folded with LF+TAB as milters pass
/// folded values to the MTA.
pub fn header_value(config: &Config, results: &[CheckResult], verdict: &Verdict) -> String {
    let mut out = syntax::authserv_id_value(&config.authserv_id);
    // A comment after the authserv-id (RFC 8601 allows CFWS there).
    if let Some(reason) = &verdict.exempt {
        out.push(' ');
        out.push_str(&syntax::comment(&format!("exempt: {reason}")));
    }
    if results.is_empty() {
        out.push_str("; none");
        return out;
    }
    for r in results {
        out.push_str(";\n\t");
        out.push_str(checks::find(r.check).map_or(r.check.as_str(), |c| c.ar_method));
        out.push('=');
        out.push_str(r.status.as_str());
        let mut comment = r.reason.clone().unwrap_or_default();
        if verdict.monitor_only && check_enforced(config, r.check) {
            let would = match r.effect {
                Effect::Reject(code) => Some(format!("would reject: {code}")),
                Effect::Tempfail(code) => Some(format!("would tempfail: {code}")),
                Effect::Accept => None,
            };
            if let Some(w) = would {
                if !comment.is_empty() {
                    comment.push_str("; ");
                }
                comment.push_str(if verdict.exempt.is_some() {
                    "exempt, "
                } else {
                    "monitor mode, "
                });
                comment.push_str(&w);
            }
        }
        if !comment.is_empty() {
            out.push(' ');
            out.push_str(&syntax::comment(&comment));
        }
        for (name, value) in &r.props {
            out.push(' ');
            out.push_str(name);
            out.push('=');
            out.push_str(&syntax::value(value));
        }
    }
    out
}

/// Does this `Authentication-Results` value claim `authserv_id`? Yes
/// when its authserv-id reads as ours either as RFC 8601 reads it (a
/// quoted-string unquoted, quoted-pairs resolved: `"mx\.example.org"`) or
/// as a lax reader might (the first word with every `"` and `\` dropped),
/// ASCII case-insensitively and with or without a trailing dot: a header
/// that any downstream reader could take for ours is removed.
pub fn claims(value: &str, authserv_id: &str) -> bool {
    let ours = authserv_id.trim_end_matches('.');
    [syntax::authserv_id(value), syntax::lax_authserv_id(value)]
        .into_iter()
        .flatten()
        .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_authserv_id() {
        assert!(claims(" mx.example.org; mailkey=pass", "mx.example.org"));
        assert!(claims("MX.Example.ORG 1; none", "mx.example.org"));
        assert!(claims(
            " (forged (nested)) mx.example.org;spf=pass",
            "mx.example.org"
        ));
        assert!(!claims(
            " other.example.org; mailkey=pass",
            "mx.example.org"
        ));
        assert!(!claims(" mx.example.org.evil; spf=pass", "mx.example.org"));
        assert!(!claims("", "mx.example.org"));
    }

    /// Issue #21, item 2: quoted-strings and quoted-pairs do not hide a
    /// claim.
    #[test]
    fn recognises_our_authserv_id_quoted() {
        for forged in [
            "\"mx.receiver\\.example\"; spf=pass",
            "\"\\mx.receiver.example\"; spf=pass",
            " (c) \"MX.receiver.example\" (d); spf=pass",
            "\\mx.receiver.example; spf=pass",
            "mx.receiver.example.; spf=pass",
        ] {
            assert!(claims(forged, "mx.receiver.example"), "{forged}");
        }
        assert!(!claims(
            "\"mx.receiver.example.evil\"; x",
            "mx.receiver.example"
        ));
    }
}
