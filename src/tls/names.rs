//! Which names a certificate is for, and which names the client has
//! proved: RFC 6125 matching of certificate names against the HELO name,
//! and PTR names of the client IP that resolve back to it.

use crate::dns::Dns;
use mail_auth::{DnsError, Error as AuthError};
use openssl::{nid::Nid, x509::X509Ref};
use std::net::IpAddr;

/// The DNS names a certificate is for: its subjectAltName dNSNames, or its
/// subject CN when it has none (RFC 6125 §6.4.4).
pub(crate) fn cert_names(cert: &X509Ref) -> Vec<String> {
    let sans: Vec<String> = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if !sans.is_empty() {
        return sans;
    }
    subject_cn(cert)
        .map(|cn| cn.to_ascii_lowercase())
        .into_iter()
        .collect()
}

/// The subject CN, for the header.
pub(crate) fn subject_cn(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// Does certificate name `pattern` cover `host`? Case-insensitive; a `*`
/// may stand for exactly one whole left-most label (RFC 6125 §6.4.3).
pub(crate) fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(parent) => {
            parent.contains('.')
                && host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        }
        None => pattern == host,
    }
}

/// Is `s` a domain name (not an address literal)? Only those are matched
/// and sent as SNI.
pub(crate) fn is_dns_name(s: &str) -> bool {
    s.contains('.') && s.parse::<IpAddr>().is_err() && !s.starts_with('[')
}

/// PTR names of `ip` that resolve back to it (the first two, as iprev
/// does). `Err` when DNS failed temporarily and nothing was confirmed.
pub(crate) async fn confirmed_ptr_names(dns: &Dns, ip: IpAddr) -> Result<Vec<String>, String> {
    let ptrs = match dns.ptr(ip).await {
        Ok(set) => set.records.clone(),
        Err(AuthError::Dns(DnsError::RecordNotFound(_))) => return Ok(Vec::new()),
        Err(e) => return Err(format!("PTR lookup for {ip} failed: {e}")),
    };
    let mut confirmed = Vec::new();
    let mut failed = None;
    for host in ptrs.iter().take(2) {
        let found = match ip {
            IpAddr::V4(v4) => dns.ipv4(host).await.map(|s| s.records.contains(&v4)),
            IpAddr::V6(v6) => dns.ipv6(host).await.map(|s| s.records.contains(&v6)),
        };
        match found {
            Ok(true) => confirmed.push(host.trim_end_matches('.').to_ascii_lowercase()),
            Ok(false) | Err(AuthError::Dns(DnsError::RecordNotFound(_))) => {}
            Err(e) => failed = Some(format!("lookup of {host} failed: {e}")),
        }
    }
    match failed {
        Some(why) if confirmed.is_empty() => Err(why),
        _ => Ok(confirmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("mail.example.com", "MAIL.example.com."));
        assert!(name_matches("*.example.com", "mail.example.com"));
        assert!(!name_matches("*.example.com", "a.mail.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("mail.example.com", "mail.example.org"));
    }
}
