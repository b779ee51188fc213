//! The `Authentication-Results` header (RFC 8601) we add, and recognition of
//! forged ones: a header that claims our authserv-id but did not come from
//! us must be removed before ours is added, or downstream filters would
//! trust the sender's own claims.

use crate::{
    checks::{self, CheckResult, Effect},
    config::Config,
    verdict::{check_enforced, Verdict},
};

pub const HEADER: &str = "Authentication-Results";

/// The header value (without the name), folded with LF+TAB as milters pass
/// folded values to the MTA.
pub fn header_value(config: &Config, results: &[CheckResult], verdict: &Verdict) -> String {
    let mut out = config.authserv_id.clone();
    // A comment after the authserv-id (RFC 8601 allows CFWS there).
    if let Some(reason) = &verdict.exempt {
        out.push_str(" (exempt: ");
        out.push_str(&sanitize_comment(&reason.to_string()));
        out.push(')');
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
            out.push_str(" (");
            out.push_str(&sanitize_comment(&comment));
            out.push(')');
        }
        for (name, value) in &r.props {
            out.push(' ');
            out.push_str(name);
            out.push('=');
            out.push_str(&property_value(value));
        }
    }
    out
}

/// Does this `Authentication-Results` value claim `authserv_id`?
pub fn claims(value: &str, authserv_id: &str) -> bool {
    first_token(value).is_some_and(|t| t.eq_ignore_ascii_case(authserv_id))
}

/// The authserv-id: the first token after optional CFWS.
fn first_token(value: &str) -> Option<&str> {
    let mut rest = value;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('(') {
            // Skip a (possibly nested) comment.
            let mut depth = 1;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[end?..];
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .unwrap_or(rest.len());
    let token = rest[..end].trim_matches('"');
    (!token.is_empty()).then_some(token)
}

/// Comment text: printable ASCII without parentheses or backslashes.
fn sanitize_comment(s: &str) -> String {
    s.chars()
        .take(300)
        .map(|c| match c {
            '(' | ')' | '\\' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A property value: bare when it is a token or address, else quoted.
fn property_value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c));
    if bare {
        v.to_string()
    } else {
        let escaped: String = v
            .chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                _ => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
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

    #[test]
    fn property_values_are_quoted_when_needed() {
        assert_eq!(property_value("user@example.com"), "user@example.com");
        assert_eq!(property_value("a b\"c"), "\"a b\\\"c\"");
        assert_eq!(property_value(""), "\"\"");
    }
}
