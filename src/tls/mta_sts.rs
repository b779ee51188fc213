//! MTA-STS (RFC 8461) for the `sender-domain` evidence: a domain that
//! publishes `_mta-sts.D` TXT `v=STSv1; id=…` and serves a policy in
//! `enforce` mode at `https://mta-sts.D/.well-known/mta-sts.txt`, from a
//! host with a CA-valid certificate for `mta-sts.D`, asserts that its MX
//! hosts hold CA certificates — the accountable-operator evidence.
//!
//! The fetch is bounded: one deadline (`probe_timeout_ms`) for connect,
//! handshake, request and response; the response read to at most
//! [`MAX_RESPONSE`] octets; no redirects (RFC 8461 §3.3: a `3xx` is a
//! failure); HTTP/1.0, so the body ends with the connection (no chunked
//! encoding to parse). Results are cached per domain like the MX hosts'.

use super::{
    cert_names,
    client::{io_kind, time_left, Bounded},
    name_matches,
    outcome::{ProbeKind, Problem},
    servers::{ServerFinding, Servers},
    trust::CertProblem,
};
use crate::dns::{Dns, TxtAnswer};
use mail_auth::hickory_resolver::{
    net::{DnsError, NetError},
    proto::op::ResponseCode,
};
use openssl::{ssl::SslConnector, x509::X509};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// The largest policy read (RFC 8461 §3.3 suggests 64 KiB), plus room for
/// the status line and the header.
pub(crate) const MAX_POLICY: usize = 64 * 1024;
pub(crate) const MAX_RESPONSE: usize = MAX_POLICY + 8 * 1024;

/// NXDOMAIN or NODATA (not SERVFAIL, which hickory reports alike).
pub(crate) fn is_not_found(e: &NetError) -> bool {
    matches!(e, NetError::Dns(DnsError::NoRecordsFound(no))
        if matches!(no.response_code, ResponseCode::NXDomain | ResponseCode::NoError))
}

impl Servers {
    /// Does `domain` publish an MTA-STS policy in `enforce` mode (cached)?
    /// [`ServerFinding::Certified`] says yes (its subject: the policy host).
    pub(crate) async fn mta_sts(&self, dns: &Dns, domain: &str) -> ServerFinding {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.policies
            .get_with(domain.clone(), self.examine_policy(dns, domain))
            .await
    }

    async fn examine_policy(&self, dns: &Dns, domain: String) -> ServerFinding {
        let not = |text: String| ServerFinding::Not(Problem::new(ProbeKind::BadCertificate, text));
        match dns.txt(&format!("_mta-sts.{domain}")).await {
            TxtAnswer::Records(records) => {
                let sts = records.iter().filter(|r| r.starts_with(b"v=STSv1")).count();
                if sts != 1 {
                    return not(format!("{domain} publishes no single MTA-STS record"));
                }
            }
            TxtAnswer::NotFound => return not(format!("{domain} publishes no MTA-STS policy")),
            TxtAnswer::TempError(e) => {
                return ServerFinding::Temporary(Problem::new(
                    ProbeKind::Temporary,
                    format!("MTA-STS record of {domain}: {e}"),
                ))
            }
        }
        let host = format!("mta-sts.{domain}");
        let (ip, permit) = match self.reach(dns, &host).await {
            Ok(reached) => reached,
            Err(finding) => return finding,
        };
        let (connector, limit, sni) = (self.connector.clone(), self.timeout, host.clone());
        let addr = SocketAddr::new(ip, self.https_port);
        let fetched = tokio::task::spawn_blocking(move || {
            let got = fetch(&connector, addr, &sni, limit);
            drop(permit);
            got
        })
        .await
        .unwrap_or_else(|e| Err(Problem::new(ProbeKind::Temporary, e.to_string())));
        let (chain, body) = match fetched {
            Ok(got) => got,
            Err(p) => {
                let p = Problem::new(p.kind, format!("MTA-STS policy of {domain}: {}", p.text));
                return ServerFinding::from_problem(p);
            }
        };
        match self.trust.verify(&chain, None, super::unix_now()) {
            Ok(v)
                if v.first()
                    .is_some_and(|l| cert_names(l).iter().any(|n| name_matches(n, &host))) => {}
            Ok(_) => return not(format!("{host}: its certificate is not for {host}")),
            Err(CertProblem::Bad(p)) => return not(format!("{host}: {}", p.text)),
            Err(CertProblem::Internal(why)) => {
                return ServerFinding::Temporary(Problem::new(ProbeKind::Temporary, why))
            }
        }
        match policy_mode(&String::from_utf8_lossy(&body)) {
            Some("enforce") => ServerFinding::Certified { subject: host },
            Some(mode) => not(format!("the MTA-STS policy of {domain} is in mode {mode}")),
            None => not(format!(
                "the MTA-STS policy of {domain} is not a valid STSv1 policy"
            )),
        }
    }
}

/// The `mode` of an STSv1 policy (RFC 8461 §3.2), `None` when it is not one.
pub(crate) fn policy_mode(text: &str) -> Option<&str> {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    };
    if field("version") != Some("STSv1") {
        return None;
    }
    field("mode").filter(|m| ["enforce", "testing", "none"].contains(m))
}

/// `GET /.well-known/mta-sts.txt` from `addr` as `host`, under one deadline:
/// the chain the server presented and the body of a `200` answer.
fn fetch(
    connector: &SslConnector,
    addr: SocketAddr,
    host: &str,
    limit: Duration,
) -> Result<(Vec<X509>, Vec<u8>), Problem> {
    let deadline = Instant::now() + limit;
    let at = format!("{host} ({addr})");
    let io = |what: &str, e: std::io::Error| {
        let kind = if Instant::now() >= deadline {
            ProbeKind::Timeout
        } else {
            io_kind(&e)
        };
        Problem::new(kind, format!("{at}: {what}: {e}"))
    };
    let left = time_left(deadline)
        .ok_or_else(|| Problem::new(ProbeKind::Timeout, format!("{at}: no time left")))?;
    let stream = TcpStream::connect_timeout(&addr, left).map_err(|e| io("connect", e))?;
    let ssl = connector
        .configure()
        .and_then(|mut c| {
            c.set_verify_hostname(false);
            c.into_ssl(host)
        })
        .map_err(|e| Problem::new(ProbeKind::Temporary, format!("OpenSSL: {e}")))?;
    let mut tls = ssl.connect(Bounded { stream, deadline }).map_err(|e| {
        let kind = if Instant::now() >= deadline {
            ProbeKind::Timeout
        } else {
            ProbeKind::HandshakeFailed
        };
        Problem::new(kind, format!("{at}: TLS handshake failed: {e}"))
    })?;
    let chain: Vec<X509> = tls
        .ssl()
        .peer_cert_chain()
        .map(|s| s.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    let request = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n\
         User-Agent: mailkey-milter\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .and_then(|()| tls.flush())
        .map_err(|e| io("sending the request", e))?;
    let mut response = Vec::new();
    let read = (&mut tls)
        .take(MAX_RESPONSE as u64 + 1)
        .read_to_end(&mut response);
    // A server that closes without close_notify still sent its answer.
    if let Err(e) = read {
        if response.is_empty() {
            return Err(io("reading the response", e));
        }
    }
    let _ = tls.shutdown();
    if response.len() > MAX_RESPONSE {
        return Err(Problem::new(
            ProbeKind::BadCertificate,
            format!("{at}: the response is larger than {MAX_RESPONSE} octets"),
        ));
    }
    let body = http_body(&response)
        .map_err(|why| Problem::new(ProbeKind::BadCertificate, format!("{at}: {why}")))?;
    Ok((chain, body))
}

/// The body of a `200` response with a `text/plain` type (or none);
/// redirects are refused (RFC 8461 §3.3).
fn http_body(response: &[u8]) -> Result<Vec<u8>, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete HTTP response header")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(format!(
            "HTTP status {status:?} (only 200 counts; redirects are not followed)"
        ));
    }
    let plain = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .is_none_or(|(_, v)| v.trim().to_ascii_lowercase().starts_with("text/plain"));
    if !plain {
        return Err("the policy is not text/plain".into());
    }
    let body = &response[end + 4..];
    if body.len() > MAX_POLICY {
        return Err(format!("the policy is larger than {MAX_POLICY} octets"));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_responses() {
        let p = "version: STSv1\r\nmode: enforce\r\nmx: *.example.org\r\nmax_age: 86400\r\n";
        assert_eq!(policy_mode(p), Some("enforce"));
        assert_eq!(
            policy_mode("version: STSv1\nmode: testing\n"),
            Some("testing")
        );
        assert_eq!(policy_mode("version: STSv2\nmode: enforce\n"), None);
        assert_eq!(policy_mode("mode: enforce\n"), None);
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nversion: STSv1\r\n";
        assert_eq!(http_body(ok).unwrap(), b"version: STSv1\r\n");
        let moved = b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n";
        assert!(http_body(moved)
            .unwrap_err()
            .contains("redirects are not followed"));
        let html = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>";
        assert!(http_body(html).is_err());
        let big = [&b"HTTP/1.0 200 OK\r\n\r\n"[..], &vec![b'a'; MAX_POLICY + 1]].concat();
        assert!(http_body(&big).unwrap_err().contains("larger than"));
    }
}
