//! The checks. Each is a pure async function of the transaction (envelope,
//! message, prefetched DNS answers) that returns a [`CheckResult`]; the
//! milter, `evaluate`, the tests and the benchmark all call the same code.
//! A result says what happened and what it would mean for the message if
//! the check is enforced; [`crate::verdict`] alone decides what happens.

pub mod arc;
pub mod dkim2;
mod guidance;
pub mod mailkey;
pub mod mx;
mod registry;
pub mod spf;
pub mod tls;

/// The result words live with the RFC 8601 grammar.
pub use crate::ar_syntax::Status;
use crate::{
    config::OnError,
    reply::{Code, Outcome},
};
pub use guidance::{Guidance, Sender};
pub(crate) use registry::registered;
pub use registry::MessageStep;
pub use registry::Stage;
pub use registry::{find, refusing, ArcVouch, Check, Inputs, CHECKS};
pub(crate) use registry::{too_big, BoxFuture};
use std::{fmt, time::Duration};

/// What `on_error` makes of a check that could not give its result.
fn on_error_effect(on_error: OnError) -> Effect {
    match on_error {
        OnError::Tempfail => Effect::Tempfail(Code::INTERNAL),
        OnError::Accept => Effect::Accept,
    }
}

/// A check's name: its key in the log line, the metrics label and the
/// reply text. Each check module defines its own (`spf::NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckName(&'static str);

impl CheckName {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What a result means for the message when its check is enforced: the
/// [`Outcome`] with the reply code of a refusal.
pub type Effect = Outcome<Code>;

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
    /// What the sender must fix, for a result that fails: it picks the
    /// guidance of the reject reply ([`crate::guidance`]).
    pub failure: Option<Failure>,
    /// Further fields of the log line (name, value), e.g. the TLS check's
    /// evidence ladder (docs/log-format.md).
    pub facts: Vec<(&'static str, String)>,
}

/// Why a check failed, as what the sender has to fix. Typed, so that the
/// reply's guidance never depends on the wording of a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No mailkey is published.
    NoKey,
    /// The records at `mailkey.D` hold no usable key.
    BadKey,
    /// A key is published, but the message carries no mailkey signature
    /// (none, another selector, another domain).
    NoSignature,
    /// The mailkey signature is one the protocol refuses before verifying
    /// it (docs/protocol.md §4.3: `l=`, `rsa-sha1`, `From` not signed, too
    /// many `h=` entries, a malformed `t=`/`x=`, expired).
    RefusedSignature,
    /// The signature's body hash does not match: the body was changed.
    BodyChanged,
    /// The signature does not verify (headers changed, wrong key, expired).
    BadSignature,
    /// SPF did not pass for the client's address.
    Spf,
    /// The session was plaintext.
    NoTls,
    /// The probe found no STARTTLS on the client's port.
    NoStartTls,
    /// The client's certificate is not acceptable (the reason says why).
    BadCertificate,
    /// Nothing proved who runs the sending server: none of the accepted
    /// kinds of evidence passed (the guidance names a way to meet each).
    NoEvidence(tls::evidence::EvidenceSet),
    NoMx,
    NullMx,
    /// The sender address has no domain (`user@[192.0.2.1]`).
    IpLiteral,
    /// The DKIM2 signature of the sender domain binds another envelope
    /// (or is too old): forwarded without a DKIM2 hop, or replayed.
    Dkim2Replay,
    /// The message changed after the newest DKIM2 signature, without a
    /// `Message-Instance` recipe.
    Dkim2Changed,
    /// The DKIM2 chain of the sender domain does not verify otherwise.
    Dkim2Broken,
    /// A DSN about a DKIM2-signed message of ours does not verify.
    Dkim2Dsn,
}

impl CheckResult {
    /// The result reported for a check that could not run because the
    /// milter itself failed (a bug, a panic): never a pass, and what it
    /// does to the message is `on_error`'s choice.
    pub(crate) fn internal_error(check: CheckName, why: &str, on_error: OnError) -> Self {
        Self::new(check, Status::TempError, on_error_effect(on_error))
            .reason(format!("internal error: {why}"))
    }

    /// The result of a check that did not finish within `eom_timeout_ms`:
    /// like an internal error, `on_error` decides.
    pub(crate) fn timed_out(check: CheckName, timeout: Duration, on_error: OnError) -> Self {
        Self::new(check, Status::TempError, on_error_effect(on_error)).reason(format!(
            "not finished within the end-of-message deadline of {} ms",
            timeout.as_millis()
        ))
    }

    /// The result of a check whose verification stopped at the
    /// end-of-message deadline (`eom_timeout_ms`), its work unfinished.
    pub(crate) fn stopped(
        check: CheckName,
        limits: &crate::config::LimitsConfig,
        on_error: OnError,
    ) -> Self {
        let timeout = Duration::from_millis(limits.eom_timeout_ms);
        let result = Self::timed_out(check, timeout, on_error);
        let why = result.reason.clone().unwrap_or_default();
        result.reason(format!("{why} (verification stopped)"))
    }

    pub fn new(check: CheckName, status: Status, effect: Effect) -> Self {
        Self {
            check,
            status,
            reason: None,
            effect,
            props: Vec::new(),
            failure: None,
            facts: Vec::new(),
        }
    }

    /// Adds a field to the log line.
    pub(crate) fn fact(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.facts.push((name, value.into()));
        self
    }

    /// The value of the log field `name`, if this result has it.
    pub(crate) fn fact_value(&self, name: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn failure(mut self, failure: Failure) -> Self {
        self.failure = Some(failure);
        self
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
