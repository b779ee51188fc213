//! The ARC check (RFC 8617): does the message carry an ARC chain that
//! validates? `arc=pass` says that every intermediary that sealed the
//! message is the one it claims to be and that the newest one's signature
//! still covers the message; it says nothing about whether to trust what
//! those intermediaries recorded.
//!
//! ARC never rejects or defers a message: its effect is always `Accept`.
//! Its only use is [`crate::forwarding`], which lets the recorded results
//! of a *trusted* sealer (`[forwarding] trusted_arc_sealers`) stand in for
//! the SPF and mailkey results that forwarding and mailing lists break.

use super::{BoxFuture, Check, CheckName, CheckResult, Effect, Inputs, MessageStep, Stage, Status};
use crate::dns::Dns;
use mail_auth::{dns::Parameters, AuthenticatedMessage, DkimResult, Error};

pub const NAME: CheckName = CheckName::new("arc");

pub const CHECK: Check = Check {
    name: NAME,
    ar_method: "arc",
    // Never enforced: the result only vouches for other checks' results.
    enforced: |_| false,
    start: |_| Box::pin(async { Stage::NeedsMessage(Box::new(Verify)) }),
};

/// Nothing to look up before the message: the keys are named in it.
struct Verify;

impl MessageStep for Verify {
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        _now: u64,
        _deadline: std::time::Instant,
    ) -> BoxFuture<'a, CheckResult> {
        Box::pin(check(&inputs.shared.dns, message))
    }

    /// A message too big to keep cannot be validated; ARC still never
    /// rejects (the registry's default would), so it is `none`.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        CheckResult::new(check, Status::None, Effect::Accept).reason(format!(
            "message too big for the checks: {size} bytes, limits.max_message_size is {limit}"
        ))
    }
}

/// Validates the ARC chain of `message`.
pub async fn check(dns: &Dns, message: &[u8]) -> CheckResult {
    let result = |status| CheckResult::new(NAME, status, Effect::Accept);
    let Some(msg) = AuthenticatedMessage::parse(message) else {
        return result(Status::None).reason("message has no parsable header");
    };
    let params = Parameters::new(&msg).with_cache(&*dns.caches);
    let output = dns.authenticator.verify_arc(params).await;
    let sealer = output
        .chain()
        .last()
        .map(|link| link.seal.header.d.to_ascii_lowercase());
    let r = match output.result().clone() {
        DkimResult::None => return result(Status::None),
        DkimResult::Pass => result(Status::Pass),
        DkimResult::TempError(e) => result(Status::TempError).reason(describe(&e)),
        DkimResult::PermError(e) => result(Status::PermError).reason(describe(&e)),
        DkimResult::Fail(e) | DkimResult::Neutral(e) => result(Status::Fail).reason(describe(&e)),
    };
    match sealer {
        Some(d) => r.prop("header.d", d),
        None => r,
    }
}

fn describe(e: &Error) -> String {
    format!("ARC chain does not validate: {e}")
}

/// The newest ARC set of a message: who sealed it and what it recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewestSet {
    /// `d=` of the newest `ARC-Seal`, lower case.
    pub sealer: String,
    /// The results of its `ARC-Authentication-Results`.
    pub results: Vec<RecordedResult>,
}

/// One `method=result` of an `ARC-Authentication-Results` header with its
/// properties (names lower case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedResult {
    pub method: String,
    pub result: String,
    pub props: Vec<(String, String)>,
}

impl RecordedResult {
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The newest set of `message`'s chain as mail-auth groups it (the grouping
/// the check validated), or `None` without a chain.
pub fn newest_set(message: &[u8]) -> Option<NewestSet> {
    let msg = AuthenticatedMessage::parse(message)?;
    let seal = msg.arc_seals().iter().max_by_key(|h| h.header.i)?;
    let aar = msg
        .arc_authentication_results()
        .iter()
        .filter(|h| h.header.i == seal.header.i)
        .map(|h| h.value)
        .next()?;
    Some(NewestSet {
        sealer: seal.header.d.to_ascii_lowercase(),
        results: parse_results(&String::from_utf8_lossy(aar)),
    })
}

/// Parses an `ARC-Authentication-Results` value (`i=N; authserv-id;
/// method=result prop=value …; …`). Comments are dropped; what does not
/// read as `method=result` is skipped.
pub fn parse_results(value: &str) -> Vec<RecordedResult> {
    strip_comments(value)
        .split(';')
        .skip(2)
        .filter_map(|resinfo| {
            let mut words = resinfo.split_whitespace();
            let (method, result) = words.next()?.split_once('=')?;
            let props = words
                .filter_map(|w| w.split_once('='))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.trim_matches('"').to_string()))
                .collect();
            Some(RecordedResult {
                method: method.to_ascii_lowercase(),
                result: result.to_ascii_lowercase(),
                props,
            })
        })
        .collect()
}

/// `value` without `( … )` comments (nested, with `\` escapes).
fn strip_comments(value: &str) -> String {
    let (mut out, mut depth, mut escaped) = (String::with_capacity(value.len()), 0u32, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if depth > 0 => escaped = true,
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_read_without_comments() {
        let r = parse_results(
            " i=1; lists.example.org;\r\n\tmailkey=pass (good (nested)) header.d=Sender.test \
             header.s=mailkey;\r\n\tspf=fail smtp.mailfrom=\"a@sender.test\"; garbage",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].method, "mailkey");
        assert_eq!(r[0].result, "pass");
        assert_eq!(r[0].prop("header.d"), Some("Sender.test"));
        assert_eq!(r[1].method, "spf");
        assert_eq!(r[1].result, "fail");
        assert_eq!(r[1].prop("smtp.mailfrom"), Some("a@sender.test"));
    }

    #[test]
    fn a_semicolon_in_a_comment_does_not_split() {
        let r = parse_results("i=1; id (x; y); spf=pass smtp.mailfrom=a@b.test");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].method, "spf");
    }
}
