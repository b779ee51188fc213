//! The MX check: an accountable sender domain can receive mail — it has an
//! MX that is not a null MX (RFC 7505) — and the sender address is not an
//! IP literal or domain-less.
//!
//! The null sender is exempt: bounces come from hosts whose HELO names
//! rarely have MX records of their own, and rejecting bounces loses mail
//! about mail.

use super::{Check, CheckName, CheckResult, Effect, Failure, Stage, Status};
use crate::reply::Code;
use crate::{
    dns::Dns,
    envelope::{Envelope, SenderDomain},
};
use mail_auth::{
    dns::{Mx, RecordSet},
    hickory_resolver::proto::op::ResponseCode,
    DnsError, Error,
};

pub const NAME: CheckName = CheckName::new("mx");

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "x-mx",
    enforced: |config| config.mx.enforce,
    refuses_with: &[
        Code::IP_LITERAL,
        Code::NULL_MX,
        Code::NO_MX,
        Code::DNS_TEMPFAIL,
    ],
    logged_since: 1,
    final_at_rcpt: |_| true,
    arc_vouch: None,
    guidance: Some(&GUIDANCE),
    start: |inputs| {
        Box::pin(async move { Stage::Done(check(&inputs.shared.dns, &inputs.envelope).await) })
    },
};

/// The guidance for an MX failure: the MX record to publish.
const GUIDANCE: super::Guidance = super::Guidance {
    keys: &["mx"],
    key: |failure| match failure {
        Failure::NoMx | Failure::NullMx | Failure::IpLiteral => Some("mx"),
        _ => None,
    },
    text: |failure, s| {
        let d = s.domain_or_placeholder();
        match failure {
            Failure::NoMx => vec![
                format!("{d} has no MX record, so no one can answer its mail."),
                format!("Publish one: {d}. IN MX 10 mail.{d}. (a host that takes mail for {d})"),
            ],
            Failure::NullMx => vec![
                format!("{d} publishes a null MX (MX 0 .): it says it takes no mail."),
                format!("Replace it with a real one: {d}. IN MX 10 mail.{d}."),
            ],
            Failure::IpLiteral => vec![
                "An address without a domain (user@[IP]) cannot be checked or answered.".into(),
                format!("Send from an address at your domain, with an MX: {d}. IN MX 10 mail.{d}."),
            ],
            _ => Vec::new(),
        }
    },
};

pub async fn check(dns: &Dns, envelope: &Envelope) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    if envelope.mail_from.is_empty() {
        return result(Status::None, Effect::Accept).reason("null sender");
    }
    let domain = match envelope.sender_domain() {
        SenderDomain::Domain(d) => d,
        SenderDomain::IpLiteral(lit) => {
            return result(Status::Fail, Effect::Reject(Code::IP_LITERAL))
                .failure(Failure::IpLiteral)
                .reason(format!(
                    "sender address uses the IP literal {lit} instead of a domain"
                ));
        }
        SenderDomain::Missing => {
            return result(Status::Fail, Effect::Reject(Code::IP_LITERAL))
                .failure(Failure::IpLiteral)
                .reason("sender address has no valid domain");
        }
    };
    answer_result(&domain, &lookup(dns, &domain).await)
}

/// What the DNS says about a domain as a receiver of mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// At least one real exchange: (preference, host without trailing dot).
    Real(Vec<(u16, String)>),
    /// RFC 7505's null MX: the domain accepts no mail.
    Null,
    /// The domain exists but publishes no MX.
    NoMx,
    NxDomain,
    TempError(String),
}

/// Looks up and classifies the MX records of `domain` (`check-domain`
/// reports on the same lookup).
pub async fn lookup(dns: &Dns, domain: &str) -> MxAnswer {
    match dns.mx(domain).await {
        Ok(set) if is_real(&set) => MxAnswer::Real(
            set.records
                .iter()
                .flat_map(|mx| {
                    mx.exchanges
                        .iter()
                        .map(|h| (mx.preference, h.trim_end_matches('.').to_string()))
                })
                .collect(),
        ),
        Ok(_) => MxAnswer::Null,
        Err(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))) => MxAnswer::NxDomain,
        Err(Error::Dns(DnsError::RecordNotFound(_))) => MxAnswer::NoMx,
        Err(e) => MxAnswer::TempError(e.to_string()),
    }
}

/// The check's result for `domain` given its MX answer; `check-domain`
/// judges a domain with this very function.
pub(crate) fn answer_result(domain: &str, answer: &MxAnswer) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let r = match answer {
        MxAnswer::Real(_) => result(Status::Pass, Effect::Accept),
        MxAnswer::Null => result(Status::Fail, Effect::Reject(Code::NULL_MX))
            .failure(Failure::NullMx)
            .reason(format!(
                "{domain} publishes a null MX: it does not accept mail"
            )),
        MxAnswer::NoMx => result(Status::Fail, Effect::Reject(Code::NO_MX))
            .failure(Failure::NoMx)
            .reason(format!("{domain} has no MX record")),
        MxAnswer::NxDomain => result(Status::Fail, Effect::Reject(Code::NO_MX))
            .failure(Failure::NoMx)
            .reason(format!("{domain} does not exist")),
        MxAnswer::TempError(e) => {
            return result(Status::TempError, Effect::Tempfail(Code::DNS_TEMPFAIL))
                .reason(format!("MX lookup for {domain} failed: {e}"))
        }
    };
    r.prop("smtp.mailfrom", domain)
}

/// At least one exchange that is not the root: RFC 7505's null MX (`0 .`)
/// says the domain accepts no mail.
pub(crate) fn is_real(set: &RecordSet<Mx>) -> bool {
    set.records
        .iter()
        .flat_map(|mx| mx.exchanges.iter())
        .any(|host| !matches!(host.as_ref(), "." | ""))
}
