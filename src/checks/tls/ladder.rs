//! The ladder's findings for one message, and what they make of it: the
//! result, its reason (the `Authentication-Results` comment of a pass, the
//! reply's reason line of a failure), the guidance and the log's facts.

use super::{aligned, evidence, mta_certificate, org, presented, Found, MtaCertificate, NAME};
use crate::{
    checks::{CheckResult, Effect, Failure, Status},
    config::{Evidence, TlsConfig},
    envelope::TlsEvidence,
    reply::Code,
    tls::{ProbeKind, ProbeOutcome},
};
use evidence::{Class, Decision, EvidenceSet, Rung};

/// Every rung's finding for one message.
pub(super) struct Ladder<'a> {
    found: &'a Found,
    mta: MtaCertificate,
    /// `verified`, `unaligned` or `none`.
    mta_word: &'static str,
    presented: &'static str,
}

impl<'a> Ladder<'a> {
    pub(super) fn new(e: &TlsEvidence, found: &'a Found, config: &TlsConfig) -> Self {
        let mta = mta_certificate(e);
        let mta_word = match &mta {
            MtaCertificate::Verified(s) if aligned(s, config, found) => "verified",
            MtaCertificate::Verified(_) => "unaligned",
            _ => "none",
        };
        Self {
            found,
            presented: presented(e),
            mta,
            mta_word,
        }
    }

    fn word(&self, rung: Rung) -> &'static str {
        match rung {
            Rung::MtaVerified => self.mta_word,
            Rung::MtaPresented => self.presented,
            Rung::Probe => self.found.probe.as_ref().map_or("-", |p| p.kind().as_str()),
            Rung::SenderDomain => self
                .found
                .sender_domain
                .as_ref()
                .map_or("-", |d| d.outcome.as_str()),
        }
    }

    /// The organisation: of a verified certificate, else PTR, else HELO.
    fn organisation(&self) -> String {
        let cert = match (&self.mta, &self.found.probe) {
            (MtaCertificate::Verified(s), _) => Some(org::subject_name(s).to_string()),
            (_, Some(ProbeOutcome::Verified { subject, .. })) => Some(subject.clone()),
            _ => None,
        };
        org::organisation(cert.as_deref(), &self.found.ptr_names, &self.found.helo)
    }

    pub(super) fn result(&self, version: &str, config: &TlsConfig) -> CheckResult {
        let accepted = config.accepted();
        // In the daemon an accepted rung that could not run (no client
        // address to probe) proved nothing: a failure, never "unmeasured".
        let decision = evidence::decide(&accepted, |rung| {
            Some(rung.class(self.word(rung)).unwrap_or(Class::Fail))
        });
        let mut r = match decision {
            Decision::Pass(kind) => CheckResult::new(NAME, Status::Pass, Effect::Accept)
                .reason(self.passed(kind, version)),
            Decision::Temporary => CheckResult::new(
                NAME,
                Status::TempError,
                Effect::Tempfail(Code::TLS_TEMPFAIL),
            )
            .reason(self.findings(&accepted)),
            Decision::Fail | Decision::Unmeasured => {
                CheckResult::new(NAME, Status::Fail, Effect::Reject(Code::BAD_CERTIFICATE))
                    .failure(self.failure(&accepted))
                    .reason(self.findings(&accepted))
            }
        };
        let evidence = match decision {
            Decision::Pass(kind) => Rung::from(kind).as_str(),
            _ => evidence::NONE,
        };
        r = r.fact(evidence::FIELD_EVIDENCE, evidence);
        for rung in Rung::ALL {
            r = r.fact(rung.field(), self.word(rung));
        }
        r.fact(evidence::FIELD_ORG, self.organisation())
    }

    /// The `Authentication-Results` comment of a pass by `kind`.
    fn passed(&self, kind: Evidence, version: &str) -> String {
        match (
            kind,
            &self.mta,
            &self.found.probe,
            &self.found.sender_domain,
        ) {
            (Evidence::MtaVerified, MtaCertificate::Verified(subject), _, _) => {
                format!("{version}, cert verified by MTA, {}", subject_text(subject))
            }
            (Evidence::Probe, _, Some(ProbeOutcome::Verified { name, subject, .. }), _) => {
                format!("{version}, cert verified by probe for {name}, CN={subject}")
            }
            (Evidence::SenderDomain, _, _, Some(d)) => format!(
                "{version}, sender domain {}: SPF pass, {}",
                self.found.domain.as_deref().unwrap_or("-"),
                d.text
            ),
            _ => version.to_string(),
        }
    }

    /// What each accepted rung found, the most telling first: the probe's
    /// finding, then the MTA's, then the sender domain's.
    fn findings(&self, accepted: &[Evidence]) -> String {
        let mut out: Vec<String> = Vec::new();
        if accepted.contains(&Evidence::Probe) {
            out.push(match &self.found.probe {
                Some(p) => probe_text(p),
                None => "no client address to probe".into(),
            });
        }
        if accepted.contains(&Evidence::MtaVerified) {
            out.push(match (&self.mta, self.mta_word) {
                (MtaCertificate::Failed(how), _) => {
                    format!("the client certificate failed verification by the MTA (verify={how})")
                }
                (MtaCertificate::Verified(s), "unaligned") => format!(
                    "the client certificate for {} is not of the sender's organisation",
                    org::subject_name(s)
                ),
                _ => "no verified client certificate".into(),
            });
        } else if self.presented == "untrusted" {
            out.push("the client certificate is not trusted by the MTA".into());
        }
        if accepted.contains(&Evidence::SenderDomain) {
            if let Some(d) = &self.found.sender_domain {
                out.push(format!("sender domain: {}", d.text));
            }
        }
        out.join("; ")
    }

    /// What the sender should fix: a certificate that was shown and found
    /// wanting; no STARTTLS when only the probe could help; else a way to
    /// meet each accepted kind of evidence.
    fn failure(&self, accepted: &[Evidence]) -> Failure {
        let probe = self.found.probe.as_ref().map(ProbeOutcome::kind);
        if probe.is_some_and(ProbeKind::is_bad_certificate) || self.presented == "untrusted" {
            Failure::BadCertificate
        } else if probe == Some(ProbeKind::NoStartTls)
            && !accepted.contains(&Evidence::SenderDomain)
        {
            Failure::NoStartTls
        } else {
            Failure::NoEvidence(EvidenceSet::of(accepted))
        }
    }
}

/// The probe's finding for the reply.
fn probe_text(p: &ProbeOutcome) -> String {
    match p {
        ProbeOutcome::Verified { name, .. } => format!("probe verified a certificate for {name}"),
        ProbeOutcome::NoStartTls(why) => format!("no certificate to verify: {why}"),
        ProbeOutcome::BadCertificate(why) => why.text.clone(),
        ProbeOutcome::TempError(why) => format!("certificate probe failed: {why}"),
    }
}

/// Postfix gives the subject CN, Sendmail a whole DN.
fn subject_text(subject: &str) -> String {
    if subject.contains('=') {
        subject.to_string()
    } else {
        format!("CN={subject}")
    }
}
