//! Strict SPF (RFC 7208): only `pass` passes. `softfail`, `neutral`, `none`
//! and `permerror` are failures like `fail` — a domain that does not say
//! "this host may send for me" has not made its sender accountable.
//!
//! viaspf evaluates the record (RFC 7208 to the letter: the openspf suite,
//! `tests/spf_suite.rs`, passes whole; 10 DNS-querying terms, 2 void
//! lookups); its queries go through the shared resolver and caches
//! ([`lookup`]).

mod lookup;

use super::{Check, CheckName, CheckResult, Effect, Failure, Inputs, Stage, Status};
use crate::reply::Code;
use crate::{
    config::SpfConfig,
    dns::Dns,
    envelope::{Envelope, SenderDomain},
};
use lookup::SpfLookup;
use std::{net::IpAddr, time::Duration};
use viaspf::{
    evaluate_sender, Config, DomainName, ExplanationString, Sender, SpfResult, SpfResultCause,
};

pub const NAME: CheckName = CheckName::new("spf");

pub(crate) const CHECK: Check = Check {
    name: NAME,
    ar_method: "spf",
    enforced: |config| config.spf.enforce,
    refuses_with: &[Code::SPF_FAIL, Code::SPF_TEMPFAIL],
    logged_since: 1,
    final_at_rcpt: |_| true,
    arc_vouch: Some(arc_vouch),
    guidance: Some(&GUIDANCE),
    start: |inputs| Box::pin(async move { Stage::Done(shared_result(&inputs).await.clone()) }),
};

/// The guidance for an SPF failure: the record that authorises the client.
const GUIDANCE: super::Guidance = super::Guidance {
    keys: &["spf"],
    key: |failure| (failure == Failure::Spf).then_some("spf"),
    text: |failure, s| match failure {
        Failure::Spf => vec![
            format!(
                "Your SPF record does not authorise {} (only an SPF pass is accepted).",
                s.ip_text()
            ),
            format!(
                "Add {} to the SPF record of {}: \"v=spf1 {} ... -all\"",
                s.spf_term(),
                s.domain_or_placeholder(),
                s.spf_term()
            ),
        ],
        _ => Vec::new(),
    },
};

/// A trusted ARC sealer vouches for SPF with `spf=pass` whose
/// `smtp.mailfrom` is an address in, or the name of, the sender domain
/// (docs/decisions.md, "Forwarding: trusted ARC sealers").
fn arc_vouch(recorded: &crate::ar_syntax::ResInfo, in_domain: &dyn Fn(&str) -> bool) -> bool {
    recorded.method == "spf"
        && recorded
            .prop("smtp.mailfrom")
            .is_some_and(|m| match crate::ar_syntax::addr_spec(m) {
                Some((_, d)) => in_domain(d),
                None => in_domain(m),
            })
}

/// The transaction's SPF result, evaluated once: the SPF check and the TLS
/// check's `sender-domain` evidence both ask for it.
pub(crate) async fn shared_result(inputs: &Inputs) -> &CheckResult {
    inputs
        .spf
        .get_or_init(|| async {
            let config = &inputs.shared.config;
            let host = &config.authserv_id;
            check(&inputs.shared.dns, &config.spf, &inputs.envelope, host).await
        })
        .await
}

/// The whole evaluation of one identity may take this long (RFC 7208
/// §4.6.4: "at least 20 seconds"); each query has the resolver's own
/// time-out besides.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many characters of a domain's `exp=` explanation are quoted.
pub(crate) const MAX_EXPLANATION: usize = 200;

/// Which identity was checked (RFC 7208 §2.3, §2.4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    Helo,
    MailFrom,
}

/// Checks MAIL FROM (for `<>`, the HELO identity; with `helo = true` the
/// HELO identity first: its `fail` is conclusive). `host` is our own name,
/// for the `%{r}` macro.
pub async fn check(dns: &Dns, config: &SpfConfig, envelope: &Envelope, host: &str) -> CheckResult {
    let Some(ip) = envelope.client_ip else {
        return result(Status::None, Effect::Accept).reason("no client address");
    };
    let helo = envelope.helo.trim_end_matches('.');
    let sender = envelope.mail_from.as_str();
    if sender.is_empty() {
        return evaluate(dns, ip, Identity::Helo, helo, helo, host).await;
    }
    // RFC 7208 §4.3: a sender without a domain has no SPF (`none`). The MX
    // check owns that rule and refuses such senders with 5.1.7, naming the
    // real reason; failing here too would hide it behind 5.7.26.
    match envelope.sender_domain() {
        SenderDomain::IpLiteral(literal) => {
            return result(Status::None, Effect::Accept)
                .reason(format!(
                    "the sender address uses the IP literal {literal}: SPF does not apply"
                ))
                .prop("smtp.mailfrom", sender);
        }
        SenderDomain::Missing => {
            return result(Status::None, Effect::Accept)
                .reason("the sender address has no domain: SPF does not apply")
                .prop("smtp.mailfrom", sender);
        }
        SenderDomain::Domain(_) => {}
    }
    if config.helo && DomainName::new(helo).is_ok() {
        let r = evaluate(dns, ip, Identity::Helo, helo, helo, host).await;
        if r.status == Status::Fail {
            return r;
        }
    }
    evaluate(dns, ip, Identity::MailFrom, sender, helo, host).await
}

fn result(status: Status, effect: Effect) -> CheckResult {
    CheckResult::new(NAME, status, effect)
}

/// check_host() for one identity, mapped strictly.
async fn evaluate(
    dns: &Dns,
    ip: IpAddr,
    identity: Identity,
    who: &str,
    helo: &str,
    host: &str,
) -> CheckResult {
    let prop = match identity {
        Identity::Helo => "smtp.helo",
        Identity::MailFrom => "smtp.mailfrom",
    };
    let Some(sender) = parse_sender(identity, who) else {
        // §4.3: a malformed domain gives `none` without any lookup.
        let domain = who.rsplit_once('@').map_or(who, |(_, d)| d);
        return result(Status::None, Effect::Reject(Code::SPF_FAIL))
            .failure(Failure::Spf)
            .reason(format!("{domain} is not a domain name that SPF can check"))
            .prop(prop, who);
    };
    let domain = sender.domain().to_string();
    let helo_domain = DomainName::new(helo).ok();
    let config = Config::builder()
        .hostname(host)
        .timeout(EVALUATION_TIMEOUT)
        .build();
    let lookup = SpfLookup::new(dns);
    let output = evaluate_sender(&lookup, &config, ip, &sender, helo_domain.as_ref()).await;
    let cause = match &output.cause {
        Some(SpfResultCause::Error(e)) => format!(": {e}"),
        _ => String::new(),
    };
    let (status, effect, why) = match &output.spf_result {
        SpfResult::Pass => (Status::Pass, Effect::Accept, None),
        SpfResult::Fail(exp) => {
            let mut why = not_authorised(ip, &domain, Status::Fail);
            if let ExplanationString::External(exp) = exp {
                why.push_str(&format!("; {domain} says: {}", explanation(exp)));
            }
            (Status::Fail, Effect::Reject(Code::SPF_FAIL), Some(why))
        }
        SpfResult::Softfail => {
            let why = not_authorised(ip, &domain, Status::SoftFail);
            (Status::SoftFail, Effect::Reject(Code::SPF_FAIL), Some(why))
        }
        SpfResult::Neutral => {
            let why = not_authorised(ip, &domain, Status::Neutral);
            (Status::Neutral, Effect::Reject(Code::SPF_FAIL), Some(why))
        }
        SpfResult::None => {
            let why = format!("{domain} publishes no SPF record");
            (Status::None, Effect::Reject(Code::SPF_FAIL), Some(why))
        }
        SpfResult::Permerror => {
            let why = format!("the SPF record of {domain} is broken{cause}");
            (Status::PermError, Effect::Reject(Code::SPF_FAIL), Some(why))
        }
        SpfResult::Temperror => {
            let why = format!("SPF lookup for {domain} failed temporarily{cause}");
            (
                Status::TempError,
                Effect::Tempfail(Code::SPF_TEMPFAIL),
                Some(why),
            )
        }
    };
    let mut r = result(status, effect).prop(prop, who);
    if matches!(effect, Effect::Reject(_)) {
        r = r.failure(Failure::Spf);
    }
    match why {
        Some(why) => r.reason(why),
        None => r,
    }
}

/// The identity as viaspf takes it. A MAIL FROM without local-part
/// (`<@example.org>`) is `postmaster@example.org` (RFC 7208 §4.3).
fn parse_sender(identity: Identity, who: &str) -> Option<Sender> {
    match identity {
        Identity::Helo => Sender::from_domain(who).ok(),
        Identity::MailFrom => match who.rsplit_once('@') {
            Some(("", domain)) => Sender::from_domain(domain).ok(),
            _ => Sender::from_address(who).ok(),
        },
    }
}

fn not_authorised(ip: IpAddr, domain: &str, status: Status) -> String {
    format!("{ip} is not authorised by the SPF record of {domain}: {status}")
}

/// A domain's explanation made safe to quote anywhere (RFC 7208 §6.2: it
/// comes from a third party): printable ASCII only, at most
/// [`MAX_EXPLANATION`] characters. Replies double `%` themselves.
fn explanation(exp: &str) -> String {
    exp.chars()
        .take(MAX_EXPLANATION)
        .map(|c| if matches!(c, ' '..='~') { c } else { '?' })
        .collect()
}

/// `v=spf1` followed by a space or nothing (RFC 7208 §4.5).
pub(crate) fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt[..6].eq_ignore_ascii_case(b"v=spf1")
        && txt.get(6).is_none_or(|b| *b == b' ')
}
