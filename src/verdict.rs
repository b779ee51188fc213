//! The one place where check results become what happens to a message:
//! accept, reject or tempfail, with the SMTP reply, and — in monitor mode —
//! what would have happened.
//!
//! Rules (docs/protocol.md, "Receiver policy"): any enforced check that rejects → reject with
//! its code (several → `550 5.7.26`); otherwise any enforced check with a
//! temporary error → its `451` code; otherwise accept. `mode = "monitor"`
//! turns every reject and tempfail into an accept that is logged as
//! `would_reject`.

use crate::{
    checks::{self, CheckName, CheckResult, Code, Effect},
    config::{Config, Mode},
    exempt::Reason,
    guidance::{self, Sender},
};

/// The SMTP reply lines have at most this many lines (libmilter's limit).
pub const MAX_REPLY_LINES: usize = 32;
/// Octets of text per reply line as we hand it to the MTA, `%` doubled:
/// with the code, the enhanced code, separators and CRLF (`550-5.7.20 ` …
/// `\r\n`, 13 octets) a line stays below RFC 5321's 512 octets (§4.5.3.1.5)
/// both as sent and after the MTA turns our `%%` back into `%`.
pub const MAX_LINE_TEXT: usize = 400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Accept,
    Reject,
    Tempfail,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Tempfail => "tempfail",
        }
    }
}

/// A multi-line SMTP reply, sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: Code,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: Code, lines: impl IntoIterator<Item = String>) -> Self {
        let lines = lines
            .into_iter()
            .map(|l| sanitize(&l))
            .take(MAX_REPLY_LINES)
            .collect();
        Self { code, lines }
    }

    /// As the SMTP client sees it (for `evaluate` and logs).
    pub fn render(&self) -> String {
        let last = self.lines.len().saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let sep = if i == last { ' ' } else { '-' };
                format!(
                    "{}{sep}{} {}",
                    self.code.reply,
                    self.code.enhanced,
                    l.replace("%%", "%")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What the MTA is told.
    pub action: Action,
    /// The reply for reject/tempfail; in monitor mode, the reply it would be.
    pub reply: Option<Reply>,
    /// The reply is only what enforce mode would have done.
    pub monitor_only: bool,
    /// The sender is exempt (`[exempt]`): accepted whatever the checks say.
    pub exempt: Option<Reason>,
}

impl Verdict {
    pub fn accept() -> Self {
        Self {
            action: Action::Accept,
            reply: None,
            monitor_only: false,
            exempt: None,
        }
    }

    /// The verdict for an exempt sender: accepted, and a reply only as what
    /// would have happened (as in monitor mode).
    pub fn exempt(self, reason: Reason) -> Self {
        Self {
            action: Action::Accept,
            monitor_only: self.reply.is_some(),
            reply: self.reply,
            exempt: Some(reason),
        }
    }

    /// In monitor mode: the code that enforce mode would have answered.
    pub fn would(&self) -> Option<Code> {
        self.reply
            .as_ref()
            .filter(|_| self.monitor_only)
            .map(|r| r.code)
    }
}

/// Is this check's result applied (before the global mode is considered)?
/// A result of a check that is not registered (none should exist) counts.
pub fn check_enforced(config: &Config, check: CheckName) -> bool {
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

    let (action, reply) = if let [(only, code)] = rejects[..] {
        let lines = with_guidance(vec![failure_line(only, domain)], &rejects, config, sender);
        (Action::Reject, Reply::new(code, lines))
    } else if !rejects.is_empty() {
        let mut lines = vec![format!(
            "{} checks failed for {}:",
            rejects.len(),
            domain.unwrap_or("this sender")
        )];
        lines.extend(rejects.iter().map(|(r, _)| failure_line(r, domain)));
        let lines = with_guidance(lines, &rejects, config, sender);
        (Action::Reject, Reply::new(Code::SEVERAL, lines))
    } else if let Some((_, code)) = temps.first() {
        let mut lines: Vec<String> = temps.iter().map(|(r, _)| failure_line(r, domain)).collect();
        lines.push("This is a temporary failure; please try again later.".into());
        (Action::Tempfail, Reply::new(*code, lines))
    } else {
        return Verdict::accept();
    };

    if config.mode == Mode::Monitor {
        Verdict {
            action: Action::Accept,
            reply: Some(reply),
            monitor_only: true,
            exempt: None,
        }
    } else {
        Verdict {
            action,
            reply: Some(reply),
            monitor_only: false,
            exempt: None,
        }
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

/// Makes text safe for a reply line: printable ASCII only (no CR/LF from a
/// hostile sender can start a new reply line), `%` doubled (the MTA treats
/// reply text as a format string), and at most [`MAX_LINE_TEXT`] octets
/// with the `%` doubled (a `%` that does not fit whole is left out).
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LINE_TEXT));
    for c in text.chars() {
        let c = if (' '..='~').contains(&c) { c } else { '?' };
        let len = if c == '%' { 2 } else { 1 };
        if out.len() + len > MAX_LINE_TEXT {
            break;
        }
        out.push(c);
        if c == '%' {
            out.push('%');
        }
    }
    out
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
        assert_eq!(v.action, Action::Reject);
        let reply = v.reply.unwrap();
        assert_eq!(reply.code, Code::MAILKEY_FAIL);
        assert_eq!(reply.lines[0], "mailkey check fail for a.test: because");
        assert!(reply.lines.last().unwrap().contains("key_file"));
    }

    #[test]
    fn several_rejects_give_5_7_26() {
        let spf = Code {
            reply: 550,
            enhanced: "5.7.23",
        };
        let v = decide(
            &[
                result(checks::mailkey::NAME, Effect::Reject(Code::MAILKEY_FAIL)),
                result(checks::spf::NAME, Effect::Reject(spf)),
            ],
            &enforce(),
            &who(Some("a.test")),
        );
        let reply = v.reply.unwrap();
        assert_eq!(reply.code, Code::SEVERAL);
        assert!(reply.lines[1].starts_with("mailkey"));
        assert!(reply.lines[2].starts_with("spf"));
    }

    #[test]
    fn reject_beats_tempfail_and_unenforced_checks_do_not_count() {
        let mut config = enforce();
        config.spf.enforce = false;
        let spf = Code {
            reply: 550,
            enhanced: "5.7.23",
        };
        let v = decide(
            &[
                result(checks::spf::NAME, Effect::Reject(spf)),
                result(checks::mailkey::NAME, Effect::Tempfail(Code::DNS_TEMPFAIL)),
            ],
            &config,
            &who(Some("a.test")),
        );
        assert_eq!(v.action, Action::Tempfail);
        assert_eq!(v.reply.unwrap().code, Code::DNS_TEMPFAIL);
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
        assert_eq!(v.action, Action::Accept);
        assert_eq!(v.would(), Some(Code::MAILKEY_FAIL));
    }

    #[test]
    fn guidance_survives_long_replies_within_32_lines_of_512_octets() {
        let mut config = enforce();
        config.guidance.url = Some(format!("https://example.org/{}", "u".repeat(250)));
        config.guidance.contact = Some("postmaster@example.org".into());
        let spf = Code {
            reply: 550,
            enhanced: "5.7.23",
        };
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
        let reply = decide(&results, &config, &who(Some(&"d".repeat(250))))
            .reply
            .unwrap();
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

    #[test]
    fn sanitize_blocks_injection() {
        assert_eq!(sanitize("a\r\n550 5.7.1 b%s"), "a??550 5.7.1 b%%s");
        assert_eq!(sanitize("é"), "?");
        assert_eq!(sanitize(&"x".repeat(2000)).len(), MAX_LINE_TEXT);
    }

    /// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its
    /// code and CRLF, also as we send it, `%` doubled.
    #[test]
    fn reply_lines_fit_512_octets_with_percent_doubled() {
        let spf = Code {
            reply: 550,
            enhanced: "5.7.26",
        };
        for text in [
            "%".repeat(1000),
            format!("x{}", "%".repeat(600)),
            "%x".repeat(500),
        ] {
            let reply = Reply::new(spf, [text.clone(), text]);
            let last = reply.lines.len() - 1;
            for (i, line) in reply.lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                let sent = format!("{}{sep}{} {line}\r\n", spf.reply, spf.enhanced);
                assert!(sent.len() <= 512, "{} octets", sent.len());
                assert!(line.split("%%").all(|s| !s.contains('%')), "{line}");
            }
        }
        assert_eq!(sanitize(&"%".repeat(1000)), "%".repeat(MAX_LINE_TEXT));
    }
}
