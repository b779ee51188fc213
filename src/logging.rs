//! Logging: one `info` line per message with every result and the verdict,
//! as text or JSON, to standard error (journald and syslog wrappers pick it
//! up from there).

use crate::{
    checks::{
        tls::evidence::{self, Rung},
        CheckName, CheckResult, Effect, Status,
    },
    config::LogFormat,
    envelope::Envelope,
    transaction::Evaluation,
};
use std::io::IsTerminal;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the level (`info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The version of the per-message line's fields (docs/log-format.md); raised
/// whenever a field changes meaning, so `report` never misreads old logs.
pub const LOG_VERSION: u32 = 2;

/// What the check's result would do to the message if the check alone were
/// enforced (the check's own rule, e.g. `[mailkey] no_key`), for `report`.
fn effect(results: &[CheckResult], check: CheckName) -> &'static str {
    results
        .iter()
        .find(|r| r.check == check)
        .map_or("-", |r| match r.effect {
            Effect::Accept => "accept",
            Effect::Reject(_) => "reject",
            Effect::Tempfail(_) => "tempfail",
        })
}

/// A further field of a check's result (`tls.probe`, `org`, …), `-` when
/// no result has it.
fn fact<'a>(results: &'a [CheckResult], name: &str) -> &'a str {
    results
        .iter()
        .find_map(|r| r.fact_value(name))
        .unwrap_or("-")
}

/// The check's result, `None` if it did not run.
fn result_of(results: &[CheckResult], check: CheckName) -> Option<Status> {
    results.iter().find(|r| r.check == check).map(|r| r.status)
}

fn status(results: &[CheckResult], check: CheckName) -> &'static str {
    result_of(results, check).map_or("-", Status::as_str)
}

/// `Some(true)` when SPF did not pass but the mailkey signature of the
/// same domain did: what `[spf] satisfied_by_mailkey` would have let
/// through (docs/decisions.md, "Forwarding and mailing lists"). Logged so
/// that a monitor-mode rollout counts how often it would matter.
fn mailkey_covers_spf(results: &[CheckResult]) -> Option<bool> {
    let spf = result_of(results, crate::checks::spf::NAME);
    let mailkey = result_of(results, crate::checks::mailkey::NAME);
    (spf.is_some_and(|s| s != Status::Pass) && mailkey == Some(Status::Pass)).then_some(true)
}

/// The reasons of every result that did not pass, `check: why; …`.
fn reasons(results: &[CheckResult]) -> String {
    results
        .iter()
        // A pass may carry a description (TLS: version and certificate)
        // for the header; the log keeps `reasons=` for what went wrong, and
        // for passes that a trusted ARC sealer vouched for.
        .filter(|r| r.status != Status::Pass || crate::forwarding::vouched_for(r))
        .filter_map(|r| r.reason.as_ref().map(|why| format!("{}: {why}", r.check)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn client(envelope: &Envelope) -> String {
    envelope
        .client_ip
        .map_or_else(|| "local".into(), |ip| ip.to_string())
}

/// Where the verdict on a checked message was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecidedAt {
    /// At the first RCPT TO, before the body (a reject only).
    Rcpt,
    /// At the end of message.
    Eom,
}

impl DecidedAt {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rcpt => "rcpt",
            Self::Eom => "eom",
        }
    }
}

/// The one line for a checked message. Fields whose text comes from the
/// remote side (HELO, sender, domain, reasons) are logged as strings, which
/// the text format quotes and escapes, so no input can forge a field;
/// tokens we make ourselves (addresses, result words) are logged bare.
pub(crate) fn checked_message(queue_id: &str, envelope: &Envelope, e: &Evaluation, at: DecidedAt) {
    let reply = e.verdict.outcome.refusal().map(|r| r.code.to_string());
    let (verdict_reply, would_reject) = if e.verdict.monitor_only {
        (None, reply)
    } else {
        (reply, None)
    };
    let reasons = reasons(&e.results);
    let mail_from = format!("<{}>", envelope.mail_from);
    // A forwarder's SRS sender: the address it claims to forward for.
    let srs_original = crate::srs::claimed_original(&envelope.mail_from);
    let spf_failed_mailkey_passed = mailkey_covers_spf(&e.results);
    // The verified DKIM2 chain of custody: originator first, then each hop.
    let dkim2_chain = crate::checks::dkim2::chain(&e.results);
    // Written only on exempt lines (a `None` field is left out).
    let exempt = e.verdict.exempt.as_ref().map(|_| true);
    let exempt_by = e.verdict.exempt.as_ref().map(|r| r.to_string());
    // Two fields per registered check: `NAME` (its result) and
    // `NAME.effect` (what enforcing it does: accept, reject, tempfail).
    macro_rules! line {
        ($($check:ident),*) => {
            info!(
                log_version = LOG_VERSION,
                queue_id = %queue_id,
                client = %client(envelope),
                helo = envelope.helo.as_str(),
                mail_from = mail_from.as_str(),
                srs_original = srs_original.as_deref(),
                domain = e.sender.name().unwrap_or("-"),
                $($check = %status(&e.results, crate::checks::$check::NAME),)*
                $($check.effect = %effect(&e.results, crate::checks::$check::NAME),)*
                "tls.evidence" = %fact(&e.results, evidence::FIELD_EVIDENCE),
                "tls.mta_verified" = %fact(&e.results, Rung::MtaVerified.field()),
                "tls.mta_presented" = %fact(&e.results, Rung::MtaPresented.field()),
                "tls.probe" = %fact(&e.results, Rung::Probe.field()),
                "tls.sender_domain" = %fact(&e.results, Rung::SenderDomain.field()),
                org = fact(&e.results, evidence::FIELD_ORG),
                verdict = %e.verdict.applied().word(),
                stage = %at.as_str(),
                reply = verdict_reply.as_deref().unwrap_or("-"),
                would_reject = would_reject.as_deref().unwrap_or("-"),
                spf_failed_mailkey_passed,
                dkim2_chain,
                exempt,
                exempt_by = exempt_by.as_deref(),
                token = e.controls.token.as_deref().map(tracing::field::display),
                token_refused = e.controls.token_refused.map(tracing::field::display),
                challenge = e.controls.challenge.map(tracing::field::display),
                reasons = reasons.as_str(),
                "message"
            )
        };
    }
    crate::checks::registered!(line);
}

/// The line for a recipient refused at RCPT TO, for that recipient only
/// (an invalid SRS address of ours): `enforced` when it was refused, else
/// (monitor mode) accepted and logged with what enforce mode would have
/// answered. `message` is `recipient`, not `message`: it is not a message
/// (the transaction goes on, or ends, with its other recipients), and
/// readers of per-message lines pass it by (docs/log-format.md).
pub(crate) fn refused_recipient(
    queue_id: &str,
    envelope: &Envelope,
    rcpt: &str,
    reply: &crate::reply::Reply,
    enforced: bool,
) {
    let code = reply.code.to_string();
    let (verdict, reply_code, would_reject) = if enforced {
        ("reject", code.as_str(), "-")
    } else {
        ("accept", "-", code.as_str())
    };
    let reasons = reply.lines.join(" ").replace("%%", "%");
    info!(
        log_version = LOG_VERSION,
        queue_id = %queue_id,
        client = %client(envelope),
        helo = envelope.helo.as_str(),
        mail_from = format!("<{}>", envelope.mail_from).as_str(),
        rcpt_to = format!("<{rcpt}>").as_str(),
        verdict = %verdict,
        stage = %DecidedAt::Rcpt.as_str(),
        reply = %reply_code,
        would_reject = %would_reject,
        reasons = format!("srs: {reasons}").as_str(),
        "recipient"
    );
}

/// `signed`: the domain whose mailkey signature was added, if any;
/// `dkim2`: the DKIM2 signature added (`i=2 fwd.test`), if any.
pub(crate) fn trusted_message(
    queue_id: &str,
    envelope: &Envelope,
    how: &str,
    signed: Option<&str>,
    dkim2: Option<&str>,
) {
    info!(
        log_version = LOG_VERSION,
        queue_id = %queue_id,
        client = %client(envelope),
        helo = envelope.helo.as_str(),
        mail_from = format!("<{}>", envelope.mail_from).as_str(),
        trusted = %how,
        signed = %signed.unwrap_or("-"),
        dkim2_signed = dkim2,
        verdict = %"accept",
        "message"
    );
}
