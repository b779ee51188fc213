//! The peer-certificate check (docs/protocol.md §6.3): the session must be
//! encrypted, and something must show who runs the sending server — the
//! evidence ladder (docs/decisions.md, "Evidence ladder"). Each kind of
//! evidence is a rung ([`evidence::Rung`]); `[tls] evidence` says which
//! count, any one suffices, and every one of them is measured and logged
//! so that the report can say what each other setting would have done:
//!
//! - `mta-verified`: the MTA verified a client certificate (its macros,
//!   free), optionally of the sender's organisation ([`org`]);
//! - `mta-presented`: a certificate the MTA did not verify (Sendmail's
//!   `{verify}`, or the Postfix policy companion): logged, never a pass;
//! - `probe`: our STARTTLS probe of the client's port ([`crate::tls`]),
//!   with its outcome taxonomy;
//! - `sender-domain`: SPF passed for `D`, and `D`'s own mail servers are
//!   CA-certified ([`sender_domain`]).
//!
//! [`check`] gathers (I/O, concurrently); [`judge`] decides (no I/O).

pub mod evidence;
mod guidance;
mod ladder;
pub mod org;
pub mod sender_domain;

use super::{Check, CheckName, CheckResult, Effect, Failure, Inputs, Stage, Status};
use crate::reply::Code;
use crate::{
    config::{CertAlignment, Evidence, TlsConfig, TlsRequire},
    envelope::TlsEvidence,
    tls::{confirmed_ptr_names, ProbeOutcome},
};
use evidence::Rung;
use std::time::Duration;

pub const NAME: CheckName = CheckName::new("tls");

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "x-tls",
    enforced: |config| config.tls.enforce,
    refuses_with: &[Code::NO_TLS, Code::BAD_CERTIFICATE, Code::TLS_TEMPFAIL],
    logged_since: 1,
    final_at_rcpt: |_| true,
    arc_vouch: None,
    guidance: Some(&guidance::GUIDANCE),
    start: |inputs| Box::pin(async move { Stage::Done(check(&inputs).await) }),
};

/// What the MTA's macros say about the client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MtaCertificate {
    /// Verified by the MTA; the subject as the MTA gave it.
    Verified(String),
    /// Shown and refused by the MTA (Sendmail `{verify}=FAIL`).
    Failed(String),
    /// None shown, not asked for, or the MTA does not say.
    Unverified,
}

/// Sendmail says in `{verify}` whether it verified the certificate (and
/// sends the subject for unverified ones too); Postfix has no `{verify}`
/// and sends `{cert_subject}`/`{cert_issuer}` only for a certificate it
/// verified.
pub(crate) fn mta_certificate(e: &TlsEvidence) -> MtaCertificate {
    let subject = || e.cert_subject.clone().unwrap_or_else(|| "?".into());
    match e.verify.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("OK") => MtaCertificate::Verified(subject()),
        Some("FAIL") => MtaCertificate::Failed("FAIL".into()),
        Some(_) => MtaCertificate::Unverified,
        None if e.cert_subject.is_some() && e.cert_issuer.is_some() => {
            MtaCertificate::Verified(subject())
        }
        None => MtaCertificate::Unverified,
    }
}

/// The `mta-presented` rung: did the client show a certificate the MTA did
/// not verify? Sendmail says so in `{verify}`; Postfix only through the
/// policy companion ([`crate::policy`], applied by [`with_session_record`]).
pub fn presented(e: &TlsEvidence) -> &'static str {
    match e.verify.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("OK") => "-",
        Some("FAIL") => "untrusted",
        Some("NO") | Some("NONE") => "no-certificate",
        Some(_) => "unknown",
        None if mta_certificate(e) != MtaCertificate::Unverified => "-",
        None => "unknown",
    }
}

/// What the check's I/O found, for [`judge`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// The client probe's outcome; `None` when it did not run.
    pub probe: Option<ProbeOutcome>,
    /// The `sender-domain` rung; `None` when it did not run.
    pub sender_domain: Option<sender_domain::Finding>,
    /// Confirmed PTR names of the client (when looked up).
    pub ptr_names: Vec<String>,
    /// The HELO name and the sender domain `D`.
    pub helo: String,
    pub domain: Option<String>,
}

impl Found {
    /// Only a probe's outcome (`check-domain`'s receiver view).
    pub fn probe_only(outcome: ProbeOutcome, helo: &str) -> Self {
        Self {
            probe: Some(outcome),
            helo: helo.to_string(),
            ..Self::default()
        }
    }
}

/// The check: the macros, then every accepted rung (concurrently).
pub async fn check(inputs: &Inputs) -> CheckResult {
    let found = gather(inputs).await;
    judge(&inputs.envelope.tls, &found, &inputs.shared.config.tls)
}

/// The rungs' I/O. The client probe is left out when the MTA verified a
/// certificate that counts (it cannot change the verdict, and the big
/// senders' outbound addresses do not listen); the report counts those
/// messages as unmeasured for settings without `mta-verified`.
async fn gather(inputs: &Inputs) -> Found {
    let (shared, envelope) = (&inputs.shared, &inputs.envelope);
    let (config, dns) = (&shared.config.tls, &shared.dns);
    let mut found = Found {
        helo: envelope.helo.trim_end_matches('.').to_ascii_lowercase(),
        domain: envelope.sender_domain().name().map(str::to_string),
        ..Found::default()
    };
    if envelope.tls.version.is_none() || config.require != TlsRequire::Certificate {
        return found;
    }
    let timeout = Duration::from_millis(config.probe_timeout_ms);
    let ptr_names = || async {
        match envelope.client_ip {
            Some(ip) => tokio::time::timeout(timeout, confirmed_ptr_names(dns, ip))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let verified = match mta_certificate(&envelope.tls) {
        MtaCertificate::Verified(subject) => Some(subject),
        _ => None,
    };
    if verified.is_some() && config.mta_verified_alignment.contains(&CertAlignment::Ptr) {
        found.ptr_names = ptr_names().await;
    }
    let mta_passes = config.accepts(Evidence::MtaVerified)
        && verified
            .as_deref()
            .is_some_and(|s| aligned(s, config, &found));
    let probe = async {
        match envelope.client_ip {
            Some(ip) if config.accepts(Evidence::Probe) && !mta_passes => {
                Some(shared.probe.probe(dns, ip, &envelope.helo).await)
            }
            _ => None,
        }
    };
    let domain = async {
        match config.accepts(Evidence::SenderDomain) {
            true => Some(sender_domain::evaluate(inputs).await),
            false => None,
        }
    };
    // The organisation of a message without a verified certificate is its
    // confirmed PTR name's (looked up while the probes run).
    let ptrs = async {
        match verified.is_none() && found.ptr_names.is_empty() {
            true => Some(ptr_names().await),
            false => None,
        }
    };
    let (probe, domain, ptrs) = tokio::join!(probe, domain, ptrs);
    found.probe = probe;
    found.sender_domain = domain;
    if let Some(ptrs) = ptrs {
        found.ptr_names = ptrs;
    }
    found
}

/// Does an MTA-verified certificate's organisation align with one of the
/// names `mta_verified_alignment` lists (always, when it lists none)?
fn aligned(subject: &str, config: &TlsConfig, found: &Found) -> bool {
    let cert = org::subject_name(subject);
    let rules = &config.mta_verified_alignment;
    rules.is_empty()
        || rules.iter().any(|rule| match rule {
            CertAlignment::Helo => org::aligned(cert, &found.helo),
            CertAlignment::Ptr => found.ptr_names.iter().any(|p| org::aligned(cert, p)),
            CertAlignment::SenderDomain => found
                .domain
                .as_deref()
                .is_some_and(|d| org::aligned(cert, d)),
        })
}

/// The decision, from the MTA's evidence and what the rungs found. The
/// reason of a pass is the `Authentication-Results` comment; the log line
/// gets every rung's word (`facts`).
pub(crate) fn judge(e: &TlsEvidence, found: &Found, config: &TlsConfig) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let Some(version) = e.version.as_deref() else {
        let r = match config.require {
            TlsRequire::None => {
                result(Status::None, Effect::Accept).reason("not encrypted; not required")
            }
            _ => result(Status::Fail, Effect::Reject(Code::NO_TLS))
                .failure(Failure::NoTls)
                .reason("session not encrypted: STARTTLS was not used"),
        };
        let org = org::organisation(None, &found.ptr_names, &found.helo);
        return r
            .fact(evidence::FIELD_EVIDENCE, evidence::PLAINTEXT)
            .fact(evidence::FIELD_ORG, org);
    };
    let session = match (&e.cipher, &e.cipher_bits) {
        (Some(c), Some(b)) => format!("{version}, {c} {b} bits"),
        (Some(c), None) => format!("{version}, {c}"),
        _ => version.to_string(),
    };
    let unmeasured = |r: CheckResult| {
        let org = org::organisation(None, &found.ptr_names, &found.helo);
        r.fact(evidence::FIELD_EVIDENCE, "-")
            .fact(evidence::FIELD_ORG, org)
    };
    match config.require {
        TlsRequire::None => {
            return unmeasured(
                result(Status::Pass, Effect::Accept).reason(format!("{session}, not required")),
            )
        }
        TlsRequire::Encryption => {
            return unmeasured(
                result(Status::Pass, Effect::Accept)
                    .reason(format!("{session}, no certificate required")),
            )
        }
        TlsRequire::Certificate => {}
    }
    ladder::Ladder::new(e, found, config).result(version, config)
}

/// Postfix's side of `mta-presented`, from the policy companion's record
/// of the session (looked up when the verdict is made: Postfix consults
/// the policy service before it passes RCPT to the milter). Changes only
/// the TLS result's `unknown`: the rung is reported, never a pass, but a
/// client that showed an untrusted certificate is told to fix that one.
pub(crate) fn with_session_record(results: &mut [CheckResult], inputs: &Inputs) {
    let shared = &inputs.shared;
    let e = &inputs.envelope.tls;
    if shared.config.policy.listen.is_none() || e.verify.is_some() {
        return;
    }
    let (Some(ip), Some(port)) = (inputs.envelope.client_ip, e.client_port) else {
        return;
    };
    let Some(r) = results.iter_mut().find(|r| r.check == NAME) else {
        return;
    };
    let field = Rung::MtaPresented.field();
    if r.fact_value(field) != Some("unknown") {
        return;
    }
    let Some(session) = shared.policy.get(ip, port) else {
        return;
    };
    let word = match (&session.fingerprint, session.verified) {
        (Some(_), false) => "untrusted",
        (Some(_), true) => "-",
        (None, _) => "no-certificate",
    };
    for fact in r.facts.iter_mut().filter(|(n, _)| *n == field) {
        fact.1 = word.into();
    }
    if word == "untrusted" && matches!(r.failure, Some(Failure::NoEvidence(_))) {
        r.failure = Some(Failure::BadCertificate);
        let fingerprint = session.fingerprint.unwrap_or_default();
        let why = format!(
            "the client presented a certificate the MTA did not verify (fingerprint {fingerprint})"
        );
        r.reason = Some(match r.reason.take() {
            Some(before) => format!("{why}; {before}"),
            None => why,
        });
    }
}

#[cfg(test)]
mod tests;
