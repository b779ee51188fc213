//! What a receiver enforcing every check makes of mail from the domain sent
//! by a given server: SPF for its address (`--ip`), the certificate probe of
//! its SMTP port (`--mta`) and a message signed with the domain's key
//! (`--key`), each through the daemon's own code — `checks::spf::check`,
//! `tls::Prober` with `checks::tls::judge`, `checks::mailkey::check` — so
//! check-domain cannot say "ready" where the daemon rejects.

use super::{report::Findings, Mark, RECEIVER};
use crate::{
    checks::{mailkey, spf, tls, Effect, Status},
    config::{Evidence, SpfConfig, TlsConfig, TlsRequire},
    dns::Dns,
    envelope::{Envelope, SenderDomain, TlsEvidence},
    sign::{DomainKey, HEADER},
    tls::{confirmed_ptr_names, Prober},
};
use std::{
    net::IpAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// The name we give in the probe's `EHLO`.
const EHLO: &str = "check-domain.invalid";

/// SPF for mail from `postmaster@domain` sent by `ip`, strictly (only
/// `pass` passes), and the address's forward-confirmed PTR names.
pub(crate) async fn spf_for_ip(dns: &Dns, domain: &str, ip: IpAddr, f: &mut Findings) {
    let envelope = Envelope {
        client_ip: Some(ip),
        helo: domain.to_string(),
        mail_from: format!("postmaster@{domain}"),
        tls: TlsEvidence::default(),
    };
    let result = spf::check(dns, &SpfConfig::default(), &envelope, EHLO).await;
    let text = match (result.status, &result.reason) {
        (Status::Pass, _) => format!("{ip} is authorised by the SPF record of {domain} (pass)"),
        (_, Some(why)) if matches!(result.effect, Effect::Reject(_)) => {
            let term = match ip {
                IpAddr::V4(_) => format!("ip4:{ip}"),
                IpAddr::V6(_) => format!("ip6:{ip}"),
            };
            format!(
                "{why} ({}); add {term} to the SPF record of {domain}: \"v=spf1 {term} ... -all\"",
                result.status
            )
        }
        (_, Some(why)) => why.clone(),
        (_, None) => format!("SPF {} for {ip}", result.status),
    };
    f.judged(result.effect, Mark::Ok, "spf", text);
    match confirmed_ptr_names(dns, ip).await {
        Ok(names) if !names.is_empty() => f.add(
            Mark::Ok,
            "ptr",
            format!(
                "{ip} has forward-confirmed reverse DNS: {}",
                names.join(", ")
            ),
        ),
        Ok(_) => f.add(
            Mark::Warn,
            "ptr",
            format!(
                "{ip} has no forward-confirmed reverse DNS: the certificate must name the HELO name"
            ),
        ),
        Err(why) => f.add(Mark::Warn, "ptr", why),
    }
}

/// Probes `host`'s SMTP port as the daemon probes a client that said
/// `HELO host` from that address, and judges the outcome as the daemon
/// does with `require = "certificate"`.
pub async fn mta(dns: &Dns, config: &TlsConfig, host: &str, port: u16, f: &mut Findings) {
    let config = TlsConfig {
        enforce: true,
        require: TlsRequire::Certificate,
        // The probe's rung alone: the client's own port is what is checked.
        evidence: vec![Evidence::Probe],
        probe: true,
        probe_port: port,
        ..config.clone()
    };
    let prober = match Prober::new(&config, EHLO) {
        Ok(p) => p,
        Err(e) => return f.add(Mark::Fail, "tls", format!("trust store: {e}")),
    };
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match dns.ipv4(host).await {
            Ok(set) => match set.records.first() {
                Some(v4) => IpAddr::V4(*v4),
                None => return f.add(Mark::Fail, "tls", format!("{host} has no address")),
            },
            Err(e) => return f.temporary("tls", format!("lookup of {host} failed: {e}")),
        },
    };
    let outcome = prober.probe(dns, ip, host).await;
    // The session the daemon sees when the client uses STARTTLS and the
    // MTA verified no certificate: the probe decides.
    let evidence = TlsEvidence {
        version: Some("TLSv1.3".into()),
        ..TlsEvidence::default()
    };
    let result = tls::judge(&evidence, &tls::Found::probe_only(outcome, host), &config);
    let why = result.reason.unwrap_or_default();
    let text = match result.effect {
        Effect::Accept => format!("{host} ({ip}) port {port}: {why}"),
        _ => format!(
            "{host} ({ip}) port {port}: {why}; offer STARTTLS with an unexpired certificate \
             from a trusted CA, with its full chain, for {host}"
        ),
    };
    f.judged(result.effect, Mark::Ok, "tls", text);
}

/// Signs a test message from `postmaster@domain` with `key` and verifies
/// it with the mailkey check against the published records.
pub async fn signature(dns: &Dns, domain: &str, key: &DomainKey, f: &mut Findings) {
    let message = format!(
        "From: <postmaster@{domain}>\r\nTo: <check@receiver.invalid>\r\n\
         Subject: check-domain test\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <check-domain@{domain}>\r\n\r\nA test message signed by check-domain.\r\n"
    );
    let value = match key.sign(message.as_bytes()) {
        Ok(v) => v,
        Err(e) => return f.add(Mark::Fail, "signature", format!("cannot sign: {e}")),
    };
    let signed = format!("{HEADER}:{value}\r\n{message}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keys = mailkey::lookup(dns, domain).await;
    let sender = SenderDomain::Domain(domain.to_string());
    // As long as a receiver would give it (`limits.eom_timeout_ms`).
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = mailkey::check(
        dns,
        &RECEIVER,
        &sender,
        keys,
        signed.as_bytes(),
        now,
        deadline,
    )
    .await
    .unwrap_or_else(mailkey::Stopped::into_result);
    let text = match result.status {
        Status::Pass => {
            "a test message signed with the key verifies as a receiver checks it".into()
        }
        _ => format!(
            "a test message signed with the key does not verify: {}",
            result.reason.unwrap_or_default()
        ),
    };
    f.judged(result.effect, Mark::Ok, "signature", text);
}

/// Signs a DKIM2 test message (`i=1`, from `postmaster@domain` to a test
/// recipient) with `key` under `selector` and verifies it with the DKIM2
/// check, keys at `selector._domainkey.domain`.
pub(crate) async fn dkim2_signature(
    dns: &Dns,
    domain: &str,
    key: DomainKey,
    selector: &str,
    f: &mut Findings,
) {
    let from = format!("postmaster@{domain}");
    let rcpt = vec!["check@receiver.invalid".to_string()];
    let message = format!(
        "From: <{from}>\r\nTo: <check@receiver.invalid>\r\n\
         Subject: check-domain DKIM2 test\r\nMessage-ID: <check-domain-dkim2@{domain}>\r\n\r\n\
         A test message signed by check-domain.\r\n"
    );
    let Some(key) = key.into_dkim_key() else {
        return f.add(Mark::Fail, "dkim2", "cannot use the key for DKIM2");
    };
    let signer = mail_auth::dkim2::Dkim2Signer::from_key(key)
        .domain(domain)
        .selector(selector);
    let role = crate::dkim2::sign::Role::Originator;
    let fields = match crate::dkim2::sign::sign(&signer, message.as_bytes(), &from, &rcpt, role) {
        Ok(fields) => fields,
        Err(e) => return f.add(Mark::Fail, "dkim2", format!("cannot sign: {e}")),
    };
    let head: String = fields.iter().map(|(n, v)| format!("{n}:{v}\r\n")).collect();
    let signed = format!("{head}{message}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let arrival = crate::dkim2::verify::Arrival {
        mail_from: &from,
        rcpt_to: &rcpt,
    };
    let outcome = crate::dkim2::verify::verify(dns, arrival, signed.as_bytes(), now).await;
    let result = crate::checks::dkim2::result(&outcome, Some(domain), RECEIVER.alignment);
    let name = format!("{selector}._domainkey.{domain}");
    let text = match result.status {
        Status::Pass => format!(
            "a DKIM2 test message signed with the key (selector {selector}) verifies with \
             the key at {name}"
        ),
        _ => format!(
            "a DKIM2 test message signed with the key (selector {selector}) does not verify: \
             {}; publish the key as one TXT record at {name}",
            outcome
                .failure
                .as_ref()
                .map_or("no result", |(_, why)| why.as_str())
        ),
    };
    f.judged(result.effect, Mark::Ok, "dkim2", text);
}
