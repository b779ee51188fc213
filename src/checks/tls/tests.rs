//! The judge alone: macros and rung findings in, result and log facts out.

use super::*;
use crate::tls::{ProbeKind, Problem};
use evidence::EvidenceSet;

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

fn with(evidence: &[Evidence]) -> TlsConfig {
    TlsConfig {
        evidence: evidence.to_vec(),
        ..TlsConfig::default()
    }
}

fn found(probe: Option<ProbeOutcome>, domain: Option<sender_domain::Outcome>) -> Found {
    Found {
        probe,
        sender_domain: domain.map(|outcome| sender_domain::Finding {
            outcome,
            text: format!("it is {outcome}"),
        }),
        helo: "mail-wr1.google.test".into(),
        domain: Some("gmail.test".into()),
        ..Found::default()
    }
}

fn problem(kind: ProbeKind, text: &str) -> Problem {
    Problem::new(kind, text)
}

fn fact<'a>(r: &'a CheckResult, name: &str) -> &'a str {
    r.fact_value(name).unwrap_or("(absent)")
}

const VERIFIED: [(&str, &str); 3] = [
    ("{tls_version}", "TLSv1.3"),
    ("{cert_subject}", "smtp.gmail.test"),
    ("{cert_issuer}", "CA"),
];

#[test]
fn postfix_subject_and_issuer_mean_verified() {
    let r = judge(
        &evidence(&VERIFIED),
        &found(None, None),
        &TlsConfig::default(),
    );
    assert_eq!(r.status, Status::Pass);
    assert_eq!(
        r.reason.as_deref(),
        Some("TLSv1.3, cert verified by MTA, CN=smtp.gmail.test")
    );
    assert_eq!(fact(&r, "tls.evidence"), "mta-verified");
    assert_eq!(fact(&r, "tls.mta_verified"), "verified");
    assert_eq!(fact(&r, "tls.mta_presented"), "-");
    assert_eq!(fact(&r, "tls.probe"), "-");
    assert_eq!(fact(&r, "org"), "gmail.test");
}

#[test]
fn alignment_by_organisation_not_name() {
    let e = evidence(&VERIFIED);
    let aligned = |rules: &[CertAlignment]| {
        let c = TlsConfig {
            mta_verified_alignment: rules.to_vec(),
            evidence: vec![Evidence::MtaVerified],
            ..TlsConfig::default()
        };
        judge(&e, &found(None, None), &c).status
    };
    assert_eq!(aligned(&[]), Status::Pass);
    // smtp.gmail.test vs HELO mail-wr1.google.test: other organisations.
    assert_eq!(aligned(&[CertAlignment::Helo]), Status::Fail);
    assert_eq!(aligned(&[CertAlignment::SenderDomain]), Status::Pass);
    assert_eq!(
        aligned(&[CertAlignment::Helo, CertAlignment::SenderDomain]),
        Status::Pass
    );
}

#[test]
fn sendmail_verify_decides_over_subject() {
    let with_verify = |v| {
        evidence(&[
            ("{tls_version}", "TLSv1.3"),
            ("{cert_subject}", "/CN=mx.a.test"),
            ("{cert_issuer}", "/CN=CA"),
            ("{verify}", v),
        ])
    };
    assert_eq!(
        mta_certificate(&with_verify("OK")),
        MtaCertificate::Verified("/CN=mx.a.test".into())
    );
    assert_eq!(presented(&with_verify("FAIL")), "untrusted");
    assert_eq!(presented(&with_verify("NO")), "no-certificate");
    assert_eq!(presented(&with_verify("TEMP")), "unknown");
    // FAIL is reported, never decisive: the other rungs decide.
    let ok = ProbeOutcome::Verified {
        name: "mx.a.test".into(),
        subject: "mx.a.test".into(),
        version: "TLSv1.3".into(),
    };
    let r = judge(
        &with_verify("FAIL"),
        &found(Some(ok), None),
        &TlsConfig::default(),
    );
    assert_eq!(r.status, Status::Pass);
    assert_eq!(fact(&r, "tls.mta_presented"), "untrusted");
}

#[test]
fn requirements() {
    let plain = TlsEvidence::default();
    let tls = evidence(&[("{tls_version}", "TLSv1.2")]);
    let none = Found::default();
    let r = judge(&plain, &none, &TlsConfig::default());
    assert_eq!(r.effect, Effect::Reject(Code::NO_TLS));
    assert_eq!(fact(&r, "tls.evidence"), "plaintext");
    assert_eq!(
        judge(&plain, &none, &cfg(TlsRequire::None)).effect,
        Effect::Accept
    );
    assert_eq!(
        judge(&tls, &none, &cfg(TlsRequire::Encryption)).effect,
        Effect::Accept
    );
    let no_probe = TlsConfig {
        probe: false,
        evidence: vec![Evidence::Probe],
        ..TlsConfig::default()
    };
    assert!(no_probe.accepted().is_empty());
}

#[test]
fn probe_outcomes_only_a_time_out_defers() {
    let tls = evidence(&[("{tls_version}", "TLSv1.3")]);
    let c = with(&[Evidence::MtaVerified, Evidence::Probe]);
    let judged = |p: ProbeOutcome| judge(&tls, &found(Some(p), None), &c);
    let r = judged(ProbeOutcome::TempError(problem(
        ProbeKind::Timeout,
        "timed out",
    )));
    assert_eq!(
        (r.status, r.effect),
        (Status::TempError, Effect::Tempfail(Code::TLS_TEMPFAIL))
    );
    assert_eq!(fact(&r, "tls.probe"), "timeout");
    let refused = problem(
        ProbeKind::NoListener,
        "nothing listens on 192.0.2.1 port 25",
    );
    let r = judged(ProbeOutcome::NoStartTls(refused));
    assert_eq!(r.effect, Effect::Reject(Code::BAD_CERTIFICATE));
    assert_eq!(fact(&r, "tls.probe"), "no-listener");
    assert_eq!(
        r.failure,
        Some(Failure::NoEvidence(EvidenceSet::of(&c.accepted())))
    );
    let none =
        ProbeOutcome::NoStartTls(problem(ProbeKind::NoStartTls, "x does not offer STARTTLS"));
    assert_eq!(judged(none).failure, Some(Failure::NoStartTls));
    let selfsigned = problem(ProbeKind::SelfSigned, "self-signed certificate");
    let r = judged(ProbeOutcome::BadCertificate(selfsigned));
    assert_eq!(r.failure, Some(Failure::BadCertificate));
    assert_eq!(
        r.reason.as_deref(),
        Some("self-signed certificate; no verified client certificate")
    );
}

#[test]
fn sender_domain_rescues_what_the_probe_cannot() {
    let tls = evidence(&[("{tls_version}", "TLSv1.3")]);
    let refused = ProbeOutcome::NoStartTls(problem(ProbeKind::NoListener, "nothing listens"));
    let timeout = ProbeOutcome::TempError(problem(ProbeKind::Timeout, "timed out"));
    let c = TlsConfig::default();
    let r = judge(
        &tls,
        &found(
            Some(refused.clone()),
            Some(sender_domain::Outcome::MxCertified),
        ),
        &c,
    );
    assert_eq!(r.status, Status::Pass);
    assert_eq!(fact(&r, "tls.evidence"), "sender-domain");
    assert_eq!(fact(&r, "tls.sender_domain"), "mx-certified");
    // A time-out does not defer a sender whose domain vouches for it.
    let r = judge(
        &tls,
        &found(Some(timeout), Some(sender_domain::Outcome::MtaSts)),
        &c,
    );
    assert_eq!(r.status, Status::Pass);
    let r = judge(
        &tls,
        &found(Some(refused), Some(sender_domain::Outcome::NotCertified)),
        &c,
    );
    assert_eq!(r.effect, Effect::Reject(Code::BAD_CERTIFICATE));
    assert_eq!(fact(&r, "tls.evidence"), "none");
}
