//! What the MTA is told: the one table of SMTP reply codes we give
//! (docs/protocol.md §7.1), a sanitised multi-line reply (§7.2), and the
//! [`Outcome`] — accept, reject or tempfail — that every layer speaks, from
//! one check's effect to the milter's answer.

use std::fmt;

/// The SMTP reply lines have at most this many lines (libmilter's limit).
pub(crate) const MAX_REPLY_LINES: usize = 32;
/// Octets of text per reply line as we hand it to the MTA, `%` doubled:
/// with the code, the enhanced code, separators and CRLF (`550-5.7.20 ` …
/// `\r\n`, 13 octets) a line stays below RFC 5321's 512 octets (§4.5.3.1.5)
/// both as sent and after the MTA turns our `%%` back into `%`.
pub const MAX_LINE_TEXT: usize = 400;

/// An SMTP reply code with its enhanced status code (RFC 3463).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// The three-digit reply code, `550`.
    pub reply: u16,
    /// The enhanced status code, `5.7.20`.
    pub enhanced: &'static str,
}

const fn code(reply: u16, enhanced: &'static str) -> Code {
    Code { reply, enhanced }
}

impl Code {
    /// No passing mailkey signature (RFC 7372: no passing DKIM signature).
    pub(crate) const MAILKEY_FAIL: Code = code(550, "5.7.20");
    /// SPF did not pass (RFC 7372).
    pub(crate) const SPF_FAIL: Code = code(550, "5.7.23");
    /// SPF's lookups failed temporarily (RFC 7372).
    pub(crate) const SPF_TEMPFAIL: Code = code(451, "4.7.24");
    /// The session was not encrypted (RFC 5248: "Encryption Needed").
    pub(crate) const NO_TLS: Code = code(550, "5.7.10");
    /// No acceptable evidence of who runs the client (RFC 3463 X.7.5:
    /// "Cryptographic failure").
    pub(crate) const BAD_CERTIFICATE: Code = code(550, "5.7.5");
    /// No evidence yet, and some may come (a probe that timed out).
    pub(crate) const TLS_TEMPFAIL: Code = code(451, "4.7.5");
    /// An address-literal sender, or one without a domain (RFC 3463).
    pub(crate) const IP_LITERAL: Code = code(550, "5.1.7");
    /// The sender domain does not exist or has no MX (RFC 3463).
    pub(crate) const NO_MX: Code = code(550, "5.1.8");
    /// The sender domain publishes a null MX (RFC 7505).
    pub(crate) const NULL_MX: Code = code(550, "5.7.27");
    /// Two or more enforced checks reject (RFC 7372).
    pub(crate) const SEVERAL: Code = code(550, "5.7.26");
    /// A DNS lookup failed temporarily (RFC 3463: directory server failure).
    pub(crate) const DNS_TEMPFAIL: Code = code(451, "4.4.3");
    /// The milter itself failed, or the state store did not answer.
    pub(crate) const INTERNAL: Code = code(451, "4.3.0");
    /// A message larger than `limits.max_message_size` (RFC 3463: message
    /// too big for system).
    pub(crate) const TOO_BIG: Code = code(552, "5.3.4");
    /// A recipient at our `[srs] domain` that does not reverse.
    pub(crate) const INVALID_SRS: Code = code(550, "5.1.1");
    /// This recipient in another transaction, please (RFC 5321
    /// §4.5.3.1.10).
    pub(crate) const SPLIT: Code = code(452, "4.5.3");
    /// Delivery not authorised: a refused token, a first-contact
    /// challenge.
    pub(crate) const NOT_AUTHORISED: Code = code(550, "5.7.1");

    /// Every code we give, with what it means: docs/protocol.md §7.1 lists
    /// the same (a test holds the two together).
    #[cfg(test)]
    pub(crate) const TABLE: [(Code, &'static str); 16] = [
        (Self::MAILKEY_FAIL, "no passing mailkey signature"),
        (Self::SPF_FAIL, "SPF did not pass"),
        (Self::SPF_TEMPFAIL, "SPF lookup failed temporarily"),
        (Self::NO_TLS, "not encrypted"),
        (Self::BAD_CERTIFICATE, "no acceptable peer evidence"),
        (Self::TLS_TEMPFAIL, "no peer evidence yet"),
        (Self::IP_LITERAL, "sender without a domain"),
        (Self::NO_MX, "no MX"),
        (Self::NULL_MX, "null MX"),
        (Self::SEVERAL, "several checks failed"),
        (Self::DNS_TEMPFAIL, "DNS failure"),
        (Self::INTERNAL, "internal error"),
        (Self::TOO_BIG, "message too big for the checks"),
        (Self::INVALID_SRS, "invalid SRS recipient"),
        (Self::SPLIT, "recipient for another transaction"),
        (Self::NOT_AUTHORISED, "token refused, or first contact"),
    ];

    /// A `4xx` code: try again later.
    pub(crate) fn is_temporary(self) -> bool {
        self.reply / 100 == 4
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.reply, self.enhanced)
    }
}

/// What happens to a message (or to one recipient). `T` is what a refusal
/// carries along the way: a check's [`Effect`](crate::checks::Effect)
/// carries its [`Code`]; the verdict carries the whole [`Reply`]; the
/// milter's answer an optional reply (a tempfail may use the MTA's own
/// text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Goes on.
    Accept,
    /// Refused for good (`5xx`).
    Reject(T),
    /// Deferred: the client tries again later (`4xx`).
    Tempfail(T),
}

impl<T> Outcome<T> {
    /// The word in the log line and the metrics: `accept`, `reject`,
    /// `tempfail`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject(_) => "reject",
            Self::Tempfail(_) => "tempfail",
        }
    }

    /// The same outcome carrying `f` of what this one carries.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Self::Accept => Outcome::Accept,
            Self::Reject(t) => Outcome::Reject(f(t)),
            Self::Tempfail(t) => Outcome::Tempfail(f(t)),
        }
    }

    /// The same outcome, borrowing what this one carries.
    pub fn as_ref(&self) -> Outcome<&T> {
        match self {
            Self::Accept => Outcome::Accept,
            Self::Reject(t) => Outcome::Reject(t),
            Self::Tempfail(t) => Outcome::Tempfail(t),
        }
    }

    /// What a refusal carries; `None` for an accept.
    pub fn refusal(&self) -> Option<&T> {
        match self {
            Self::Accept => None,
            Self::Reject(t) | Self::Tempfail(t) => Some(t),
        }
    }

    /// Is it an accept?
    pub fn is_accept(&self) -> bool {
        matches!(self, Self::Accept)
    }

    /// Is it a reject?
    pub(crate) fn is_reject(&self) -> bool {
        matches!(self, Self::Reject(_))
    }
}

/// A multi-line SMTP reply, sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The code on every line.
    pub code: Code,
    /// The text of each line, sanitised ([`sanitize`]), at most
    /// [`MAX_REPLY_LINES`].
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply of `code` with `lines`, each sanitised; lines beyond
    /// [`MAX_REPLY_LINES`] are dropped.
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
        let code = Code::SEVERAL;
        for text in [
            "%".repeat(1000),
            format!("x{}", "%".repeat(600)),
            "%x".repeat(500),
        ] {
            let reply = Reply::new(code, [text.clone(), text]);
            let last = reply.lines.len() - 1;
            for (i, line) in reply.lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                let sent = format!("{}{sep}{} {line}\r\n", code.reply, code.enhanced);
                assert!(sent.len() <= 512, "{} octets", sent.len());
                assert!(line.split("%%").all(|s| !s.contains('%')), "{line}");
            }
        }
        assert_eq!(sanitize(&"%".repeat(1000)), "%".repeat(MAX_LINE_TEXT));
    }

    /// The table and docs/protocol.md §7.1 list the same codes, each once.
    #[test]
    fn every_code_is_documented_once() {
        let doc = include_str!("../docs/protocol.md");
        let section = doc
            .split("### 7.1 Codes")
            .nth(1)
            .and_then(|s| s.split("\n### ").next())
            .unwrap_or_default();
        let rows: Vec<String> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells.len() > 3 && cells[1].parse::<u16>().is_ok())
                    .then(|| format!("{} {}", cells[1], cells[2]))
            })
            .collect();
        let table: Vec<String> = Code::TABLE.iter().map(|(c, _)| c.to_string()).collect();
        for code in &table {
            assert_eq!(
                rows.iter().filter(|r| *r == code).count(),
                1,
                "{code} in docs/protocol.md §7.1"
            );
        }
        for row in &rows {
            assert!(
                table.contains(row),
                "{row} is documented but not in the table"
            );
        }
    }
}
