//! The peer-certificate check (docs/protocol.md §6.3): the session
//! must be encrypted, and the sending server must hold a CA-signed,
//! unexpired, unrevoked certificate for its own name. A server that proves
//! who it is can be held to account; an anonymous one cannot.
//!
//! Evidence comes first from the MTA's TLS macros (free), then, only when
//! `require = "certificate"` and the MTA saw no verified certificate, from
//! an active STARTTLS probe of the client ([`crate::tls`]). [`judge`]
//! turns the evidence into a result; it does no I/O.

use super::{Check, CheckName, CheckResult, Code, Effect, Failure, Stage, Status};

pub const NAME: CheckName = CheckName::new("tls");

pub const CHECK: Check = Check {
    name: NAME,
    ar_method: "x-tls",
    enforced: |config| config.tls.enforce,
    start: |inputs| {
        Box::pin(async move {
            let shared = &inputs.shared;
            let (dns, tls) = (&shared.dns, &shared.config.tls);
            Stage::Done(check(dns, &shared.probe, tls, &inputs.envelope).await)
        })
    },
};
use crate::{
    config::{TlsConfig, TlsRequire},
    dns::Dns,
    envelope::{Envelope, TlsEvidence},
    tls::{ProbeOutcome, Prober},
};

/// The session was not encrypted (RFC 5248: "Encryption Needed").
pub const NO_TLS: Code = Code {
    reply: 550,
    enhanced: "5.7.10",
};
/// No acceptable certificate (RFC 3463 X.7.5: "Cryptographic failure").
pub const BAD_CERT: Code = Code {
    reply: 550,
    enhanced: "5.7.5",
};
/// The probe could not finish.
pub const TEMPFAIL: Code = Code {
    reply: 451,
    enhanced: "4.7.5",
};

/// What the MTA's macros say about the client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MtaCertificate {
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
pub fn mta_certificate(e: &TlsEvidence) -> MtaCertificate {
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

/// Is a probe needed to decide? Only when a certificate is required, the
/// session is encrypted (else it fails anyway) and the MTA verified none.
pub fn wants_probe(e: &TlsEvidence, config: &TlsConfig) -> bool {
    config.require == TlsRequire::Certificate
        && config.probe
        && e.version.is_some()
        && mta_certificate(e) == MtaCertificate::Unverified
}

/// The check: the macros, and the probe when [`wants_probe`].
pub async fn check(
    dns: &Dns,
    prober: &Prober,
    config: &TlsConfig,
    envelope: &Envelope,
) -> CheckResult {
    let probe = match envelope.client_ip {
        Some(ip) if wants_probe(&envelope.tls, config) => {
            Some(prober.probe(dns, ip, &envelope.helo).await)
        }
        _ => None,
    };
    judge(&envelope.tls, probe.as_ref(), config)
}

/// The decision, from the MTA's evidence and the probe's outcome (if one
/// ran). The reason of a pass is the `Authentication-Results` comment.
pub fn judge(e: &TlsEvidence, probe: Option<&ProbeOutcome>, config: &TlsConfig) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let Some(version) = e.version.as_deref() else {
        return match config.require {
            TlsRequire::None => {
                result(Status::None, Effect::Accept).reason("not encrypted; not required")
            }
            _ => result(Status::Fail, Effect::Reject(NO_TLS))
                .failure(Failure::NoTls)
                .reason("session not encrypted: STARTTLS was not used"),
        };
    };
    let session = match (&e.cipher, &e.cipher_bits) {
        (Some(c), Some(b)) => format!("{version}, {c} {b} bits"),
        (Some(c), None) => format!("{version}, {c}"),
        _ => version.to_string(),
    };
    match config.require {
        TlsRequire::None => {
            return result(Status::Pass, Effect::Accept).reason(format!("{session}, not required"))
        }
        TlsRequire::Encryption => {
            return result(Status::Pass, Effect::Accept)
                .reason(format!("{session}, no certificate required"))
        }
        TlsRequire::Certificate => {}
    }
    match mta_certificate(e) {
        MtaCertificate::Verified(subject) => {
            return result(Status::Pass, Effect::Accept).reason(format!(
                "{version}, cert verified by MTA, {}",
                subject_text(&subject)
            ))
        }
        MtaCertificate::Failed(how) => {
            return result(Status::Fail, Effect::Reject(BAD_CERT))
                .failure(Failure::BadCertificate)
                .reason(format!(
                    "the client certificate failed verification by the MTA (verify={how})"
                ))
        }
        MtaCertificate::Unverified => {}
    }
    let bad = |why: String| {
        result(Status::Fail, Effect::Reject(BAD_CERT))
            .failure(Failure::BadCertificate)
            .reason(why)
    };
    match probe {
        None if !config.probe => {
            bad("no verified client certificate, and probing is disabled".into())
        }
        None => bad("no verified client certificate and no client address to probe".into()),
        Some(ProbeOutcome::Verified { name, subject, .. }) => result(Status::Pass, Effect::Accept)
            .reason(format!(
                "{version}, cert verified by probe for {name}, CN={subject}"
            )),
        Some(ProbeOutcome::NoStartTls(why)) => {
            bad(format!("no certificate to verify: {why}")).failure(Failure::NoStartTls)
        }
        Some(ProbeOutcome::BadCertificate(why)) => bad(why.clone()),
        Some(ProbeOutcome::TempError(why)) => result(Status::TempError, Effect::Tempfail(TEMPFAIL))
            .reason(format!("certificate probe failed: {why}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(pairs: &[(&str, &str)]) -> TlsEvidence {
        TlsEvidence::from_macros(|n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
    }

    fn cfg(require: TlsRequire) -> TlsConfig {
        TlsConfig {
            require,
            ..TlsConfig::default()
        }
    }

    #[test]
    fn postfix_subject_and_issuer_mean_verified() {
        let e = evidence(&[
            ("{tls_version}", "TLSv1.3"),
            ("{cert_subject}", "mx.a.test"),
            ("{cert_issuer}", "CA"),
        ]);
        assert!(!wants_probe(&e, &TlsConfig::default()));
        let r = judge(&e, None, &TlsConfig::default());
        assert_eq!(r.status, Status::Pass);
        assert_eq!(
            r.reason.as_deref(),
            Some("TLSv1.3, cert verified by MTA, CN=mx.a.test")
        );
    }

    #[test]
    fn sendmail_verify_decides_over_subject() {
        let with = |v| {
            evidence(&[
                ("{tls_version}", "TLSv1.3"),
                ("{cert_subject}", "/CN=mx.a.test"),
                ("{cert_issuer}", "/CN=CA"),
                ("{verify}", v),
            ])
        };
        assert_eq!(
            mta_certificate(&with("OK")),
            MtaCertificate::Verified("/CN=mx.a.test".into())
        );
        assert_eq!(
            judge(&with("FAIL"), None, &TlsConfig::default()).effect,
            Effect::Reject(BAD_CERT)
        );
        for v in ["NO", "NOT", "NONE", "TEMP", "PROTOCOL", "SOFTWARE"] {
            assert!(wants_probe(&with(v), &TlsConfig::default()), "{v}");
        }
    }

    #[test]
    fn requirements() {
        let plain = TlsEvidence::default();
        let tls = evidence(&[("{tls_version}", "TLSv1.2")]);
        assert_eq!(
            judge(&plain, None, &TlsConfig::default()).effect,
            Effect::Reject(NO_TLS)
        );
        assert_eq!(
            judge(&plain, None, &cfg(TlsRequire::None)).effect,
            Effect::Accept
        );
        assert_eq!(
            judge(&tls, None, &cfg(TlsRequire::Encryption)).effect,
            Effect::Accept
        );
        assert!(!wants_probe(&tls, &cfg(TlsRequire::Encryption)));
        assert!(!wants_probe(&plain, &TlsConfig::default()));
        let no_probe = TlsConfig {
            probe: false,
            ..TlsConfig::default()
        };
        assert_eq!(
            judge(&tls, None, &no_probe).effect,
            Effect::Reject(BAD_CERT)
        );
    }

    #[test]
    fn probe_outcomes() {
        let tls = evidence(&[("{tls_version}", "TLSv1.3")]);
        let c = TlsConfig::default();
        let temp = ProbeOutcome::TempError("timed out".into());
        let r = judge(&tls, Some(&temp), &c);
        assert_eq!(
            (r.status, r.effect),
            (Status::TempError, Effect::Tempfail(TEMPFAIL))
        );
        let none = ProbeOutcome::NoStartTls("x does not offer STARTTLS".into());
        assert_eq!(
            judge(&tls, Some(&none), &c).effect,
            Effect::Reject(BAD_CERT)
        );
        let ok = ProbeOutcome::Verified {
            name: "mx.a.test".into(),
            subject: "mx.a.test".into(),
            version: "TLSv1.3".into(),
        };
        let r = judge(&tls, Some(&ok), &c);
        assert_eq!(r.status, Status::Pass);
        assert!(r.reason.unwrap().contains("cert verified by probe"));
    }
}
