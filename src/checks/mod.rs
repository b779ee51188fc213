//! The checks. Each is a pure async function of the transaction (envelope,
//! message, prefetched DNS answers) that returns a [`CheckResult`]; the
//! milter, `evaluate`, the tests and the benchmark all call the same code.
//! A result says what happened and what it would mean for the message if
//! the check is enforced; [`crate::verdict`] alone decides what happens.

pub mod keyrecord;
pub mod mailkey;
pub mod mx;
pub mod spf;
pub mod tls;

use std::fmt;

/// The four checks of the design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckName {
    Mailkey,
    Spf,
    Tls,
    Mx,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mailkey => "mailkey",
            Self::Spf => "spf",
            Self::Tls => "tls",
            Self::Mx => "mx",
        }
    }

    /// The method name in `Authentication-Results` (RFC 8601 §2.7). `spf` is
    /// registered; the others are ours (`x-` marks unregistered methods, but
    /// `mailkey` is the protocol's own name, see DESIGN.md).
    pub fn ar_method(self) -> &'static str {
        match self {
            Self::Mailkey => "mailkey",
            Self::Spf => "spf",
            Self::Tls => "x-tls",
            Self::Mx => "x-mx",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result words of RFC 8601 used by all checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// SPF only.
    SoftFail,
    /// SPF only.
    Neutral,
    None,
    TempError,
    PermError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::Neutral => "neutral",
            Self::None => "none",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SMTP reply code with its enhanced status code (RFC 3463).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub reply: u16,
    pub enhanced: &'static str,
}

impl Code {
    pub const MAILKEY_FAIL: Code = Code {
        reply: 550,
        enhanced: "5.7.20",
    };
    pub const SEVERAL: Code = Code {
        reply: 550,
        enhanced: "5.7.26",
    };
    pub const DNS_TEMPFAIL: Code = Code {
        reply: 451,
        enhanced: "4.4.3",
    };
    pub const INTERNAL: Code = Code {
        reply: 451,
        enhanced: "4.3.0",
    };

    pub fn is_temporary(self) -> bool {
        self.reply / 100 == 4
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.reply, self.enhanced)
    }
}

/// What a result means for the message when its check is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Accept,
    Reject(Code),
    Tempfail(Code),
}

/// The outcome of one check for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub check: CheckName,
    pub status: Status,
    /// Why, in a few words (may quote DNS or header data: sanitise before
    /// putting it into a reply or header).
    pub reason: Option<String>,
    pub effect: Effect,
    /// `Authentication-Results` properties, e.g. `("header.d", "example.com")`.
    pub props: Vec<(&'static str, String)>,
}

impl CheckResult {
    pub fn new(check: CheckName, status: Status, effect: Effect) -> Self {
        Self {
            check,
            status,
            reason: None,
            effect,
            props: Vec::new(),
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn prop(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.props.push((name, value.into()));
        self
    }
}
