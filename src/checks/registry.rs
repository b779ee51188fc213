//! The list of checks. Everything that treats checks alike — starting them
//! at MAIL FROM, the verdict, the `Authentication-Results` header, the log
//! line, the metrics, the reply's guidance — iterates over [`CHECKS`];
//! nothing else names them.
//!
//! Adding a check is one new module that defines `NAME` and `CHECK` (a
//! [`Check`]), its `mod` line in `checks/mod.rs`, and its name in
//! [`registered!`]. ARCHITECTURE.md shows the flow.

use super::{CheckName, CheckResult, Effect, Status};
use crate::{ar_syntax::ResInfo, reply::Code};
use crate::{config::Config, envelope::Envelope, Shared};
use std::{future::Future, pin::Pin, sync::Arc};

/// The registry: the check modules, in the order of the
/// `Authentication-Results` header and the log line. Invokes `$then!` with
/// the module names, so that code which needs them as identifiers (the log
/// line's field names) expands from the same list.
macro_rules! registered {
    ($then:ident) => {
        $then! { mailkey, spf, tls, mx, arc, dkim2 }
    };
}
pub(crate) use registered;

macro_rules! registry_list {
    ($($check:ident),*) => {
        /// Every check, from [`registered!`].
        pub static CHECKS: &[&Check] = &[$(&super::$check::CHECK),*];
    };
}
registered!(registry_list);

/// The check registered under `name`.
pub fn find(name: CheckName) -> Option<&'static Check> {
    CHECKS.iter().copied().find(|c| c.name == name)
}

/// The checks that can refuse a message on their own, in registry order:
/// the ones whose `<check>.effect` the report counts (docs/log-format.md).
pub fn refusing() -> impl Iterator<Item = &'static Check> {
    CHECKS
        .iter()
        .copied()
        .filter(|c| !c.refuses_with.is_empty())
}

/// See [`Check::arc_vouch`].
pub type ArcVouch = fn(recorded: &ResInfo, in_domain: &dyn Fn(&str) -> bool) -> bool;

/// A boxed future, as checks return them.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a check gets: the transaction's envelope and the configuration
/// snapshot (with the resolver and the prober built from it).
pub struct Inputs {
    pub shared: Arc<Shared>,
    pub envelope: Envelope,
    /// The SPF result, evaluated once for the SPF check and the TLS
    /// check's `sender-domain` evidence ([`super::spf::shared_result`]).
    pub spf: tokio::sync::OnceCell<CheckResult>,
    /// Every RCPT TO of the transaction, known at the end of message (a
    /// DKIM2 signature binds them all); empty before.
    pub rcpt_to: std::sync::OnceLock<Vec<String>>,
}

impl Inputs {
    pub fn new(shared: Arc<Shared>, envelope: Envelope) -> Self {
        Self {
            shared,
            envelope,
            spf: tokio::sync::OnceCell::new(),
            rcpt_to: std::sync::OnceLock::new(),
        }
    }

    /// The recipients ([`Inputs::rcpt_to`]), empty when not known.
    pub fn recipients(&self) -> &[String] {
        self.rcpt_to.get().map_or(&[], Vec::as_slice)
    }
}

/// What a check has after its envelope-only work (at MAIL FROM).
pub enum Stage {
    /// The result needs nothing from the message (SPF, MX, TLS).
    Done(CheckResult),
    /// The result needs the message (mailkey): this finishes it.
    NeedsMessage(Box<dyn MessageStep>),
}

/// The second half of a check that reads the message. `Sync`: it waits in
/// the session between RCPT and the end of message.
pub trait MessageStep: Send + Sync {
    /// `now`: seconds since the epoch, for expiry decisions; `deadline`:
    /// when the end-of-message deadline passes, for work that must stop
    /// then rather than only lose its answer (#21).
    fn finish<'a>(
        self: Box<Self>,
        inputs: &'a Inputs,
        message: &'a [u8],
        now: u64,
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, CheckResult>;

    /// The message was larger than `limits.max_message_size` (`size` bytes
    /// so far) and was not kept whole: the result without it. By default a
    /// `permerror` that rejects with `552 5.3.4` when enforced.
    fn too_big(self: Box<Self>, check: CheckName, size: u64, limit: u64) -> CheckResult {
        too_big(check, size, limit)
    }
}

/// The default [`MessageStep::too_big`] result.
pub(crate) fn too_big(check: CheckName, size: u64, limit: u64) -> CheckResult {
    CheckResult::new(check, Status::PermError, Effect::Reject(Code::TOO_BIG)).reason(format!(
        "message too big for the checks: {size} bytes, limits.max_message_size is {limit}"
    ))
}

/// One check, as the registry knows it.
pub struct Check {
    pub name: CheckName,
    /// The method name in `Authentication-Results` (RFC 8601 §2.7; `x-`
    /// marks methods that are not registered, see docs/protocol.md).
    pub ar_method: &'static str,
    /// Is its result applied (before the global mode is considered)?
    pub enforced: fn(&Config) -> bool,
    /// The reply codes it refuses a message with on its own, when enforced
    /// (besides [`Code::INTERNAL`] and [`Code::TOO_BIG`], which any check
    /// may give). Empty: it never refuses on its own — ARC only vouches,
    /// DKIM2 refuses through mailkey. The checks that refuse are the
    /// report's columns ([`refusing`]).
    pub refuses_with: &'static [Code],
    /// The first `log_version` whose per-message lines carry its fields
    /// (`<check>` and `<check>.effect`, docs/log-format.md): the report
    /// reads older lines as "not measured" for it. A new check raises
    /// `crate::logging::LOG_VERSION` and sets this to the new version.
    pub logged_since: u32,
    /// Is its result at RCPT (without the message) final, so that an
    /// early reject may rest on it (`crate::milter::early`)? Mailkey's is
    /// not while a DKIM2 chain in the message may still pass it.
    pub final_at_rcpt: fn(&Config) -> bool,
    /// How a trusted ARC sealer vouches for a failure of this check
    /// (`[forwarding] trusted_arc_sealers`, `crate::forwarding`): does a
    /// recorded `pass` say it passed for the sender domain (`in_domain`
    /// tests a domain name)? `None`: no sealer may (TLS and MX judge the
    /// connecting forwarder itself).
    pub arc_vouch: Option<ArcVouch>,
    /// Its failure kinds' guidance: their `[guidance.text_for]` keys and
    /// built-in texts (`crate::guidance` reads them). `None`: its results
    /// carry no failure kind of their own (ARC).
    pub guidance: Option<&'static super::Guidance>,
    /// Starts the check at MAIL FROM; runs while the message streams.
    pub start: fn(Arc<Inputs>) -> BoxFuture<'static, Stage>,
}

impl Check {
    pub(crate) fn is_enforced(&self, config: &Config) -> bool {
        (self.enforced)(config)
    }
}

#[cfg(test)]
mod tests;
