//! Strict SPF (RFC 7208): only `pass` passes. `softfail`, `neutral`, `none`
//! and `permerror` are failures like `fail` — a domain that does not say
//! "this host may send for me" has not made its sender accountable.
//! mail-auth evaluates the record (lookup limits included); its lookups go
//! through the shared DNS cache.

use super::{Check, CheckName, CheckResult, Code, Effect, Stage, Status};
use crate::{
    config::SpfConfig,
    dns::{Dns, TxtAnswer},
    envelope::Envelope,
};
use mail_auth::{dns::Parameters, spf::verify::SpfParameters, SpfResult};

pub const NAME: CheckName = CheckName::new("spf");

pub const CHECK: Check = Check {
    name: NAME,
    ar_method: "spf",
    enforced: |config| config.spf.enforce,
    start: |inputs| {
        Box::pin(async move {
            let config = &inputs.shared.config;
            let host = &config.authserv_id;
            Stage::Done(check(&inputs.shared.dns, &config.spf, &inputs.envelope, host).await)
        })
    },
};

pub const FAIL: Code = Code {
    reply: 550,
    enhanced: "5.7.23",
};
pub const TEMPFAIL: Code = Code {
    reply: 451,
    enhanced: "4.7.24",
};

/// Checks MAIL FROM (for `<>`, the HELO identity; with `helo = true` the
/// HELO identity first). `host` is our own name, for the `%{r}` macro.
pub async fn check(dns: &Dns, config: &SpfConfig, envelope: &Envelope, host: &str) -> CheckResult {
    let result = |status, effect| CheckResult::new(NAME, status, effect);
    let Some(ip) = envelope.client_ip else {
        return result(Status::None, Effect::Accept).reason("no client address");
    };
    let helo = envelope.helo.trim_end_matches('.');
    let sender = envelope.mail_from.as_str();
    let params = if config.helo {
        SpfParameters::helo_and_mail_from(ip, helo, host, sender)
    } else {
        SpfParameters::mail_from(ip, helo, host, sender)
    };
    // RFC 7208 §4.5: two SPF records are a permerror; mail-auth would take
    // the first one that parses.
    let identity = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
    if let TxtAnswer::Records(records) = dns.txt(identity).await {
        let count = records.iter().filter(|r| is_spf_record(r)).count();
        if count > 1 {
            return result(Status::PermError, Effect::Reject(FAIL))
                .reason(format!(
                    "the SPF record of {identity} is broken: {count} SPF records"
                ))
                .prop(
                    if sender.is_empty() {
                        "smtp.helo"
                    } else {
                        "smtp.mailfrom"
                    },
                    if sender.is_empty() { helo } else { sender },
                );
        }
    }
    let output = dns
        .authenticator
        .verify_spf(Parameters::new(params).with_cache(&*dns.caches))
        .await;

    let status = match output.result() {
        SpfResult::Pass => Status::Pass,
        SpfResult::Fail => Status::Fail,
        SpfResult::SoftFail => Status::SoftFail,
        SpfResult::Neutral => Status::Neutral,
        SpfResult::None => Status::None,
        SpfResult::PermError => Status::PermError,
        SpfResult::TempError => Status::TempError,
    };
    let domain = output.domain().to_string();
    let effect = match status {
        Status::Pass => Effect::Accept,
        Status::TempError => Effect::Tempfail(TEMPFAIL),
        _ => Effect::Reject(FAIL),
    };
    let mut r = result(status, effect);
    if status != Status::Pass {
        let mut why = match status {
            Status::None => format!("{domain} publishes no SPF record"),
            Status::TempError => format!("SPF lookup for {domain} failed temporarily"),
            Status::PermError => format!("the SPF record of {domain} is broken"),
            _ => format!("{ip} is not authorised by the SPF record of {domain}: {status}"),
        };
        if let Some(exp) = output.explanation() {
            // Raw here; replies, headers and logs each make it safe.
            let exp: String = exp.chars().take(200).collect();
            why.push_str(&format!("; {domain} says: {exp}"));
        }
        r = r.reason(why);
    }
    if sender.is_empty() || (config.helo && status == Status::Fail && domain == helo) {
        r.prop("smtp.helo", helo)
    } else {
        r.prop("smtp.mailfrom", sender)
    }
}

/// `v=spf1` followed by a space or nothing (RFC 7208 §4.5).
pub fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt[..6].eq_ignore_ascii_case(b"v=spf1")
        && txt.get(6).is_none_or(|b| *b == b' ')
}
