//! ARC sealing on the forwarding side (#15, RFC 8617 §5.1): with `[arc]
//! seal = true`, every message we checked and let through gets an ARC set
//! signed with the `[signing]` key of `seal_domain`, whose
//! `ARC-Authentication-Results` record our own results for the message as
//! it reached us. A receiver that trusts us can then accept it after a
//! forward or a list changed it (our `[forwarding] trusted_arc_sealers` is
//! that receiver's side).
//!
//! Why every message and not only "forwarded" ones: at the SMTP stage the
//! milter cannot know whether the message will leave again — Postfix
//! expands virtual aliases and `.forward` files after the milter has seen
//! the message — so sealing all checked mail is the one rule that covers
//! every forwarding path (docs/decisions.md, "ARC sealing: every checked
//! message"). A copy delivered locally carries a harmless seal.

use crate::{
    checks::keyrecord::SELECTOR,
    dns::Dns,
    sign::{headers_to_sign, DomainKey, SignError},
};
use mail_auth::{
    arc::ArcSealer, dns::Parameters, headers::HeaderWriter, AuthenticatedMessage,
    AuthenticationResults,
};

/// The three header fields of a new ARC set, as (name, value) with values
/// folded with LF as milters pass them, without leading space; in the order
/// they must appear at the top of the message (RFC 8617 §4.1).
pub type SealedHeaders = Vec<(String, String)>;

/// Seals `message` (CRLF line ends) for `key`'s domain; `results` is our
/// `Authentication-Results` value (authserv-id first).
pub async fn seal(
    dns: &Dns,
    key: &DomainKey,
    message: &[u8],
    results: &str,
) -> Result<SealedHeaders, SignError> {
    let parsed = AuthenticatedMessage::parse(message).ok_or(SignError::NoFrom)?;
    let headers = headers_to_sign(message);
    if !headers.iter().any(|h| h.eq_ignore_ascii_case("From")) {
        return Err(SignError::NoFrom);
    }
    // The seal covers the sets already there and says whether they
    // validated (cv=): the chain is verified again here (its keys are in
    // the DNS cache from the arc check).
    let chain = dns
        .authenticator
        .verify_arc(Parameters::new(&parsed).with_cache(&*dns.caches))
        .await;
    // mail-auth builds `ARC-Authentication-Results` only from its own
    // verifiers' outputs; it writes the authserv-id verbatim, so our
    // results ride along after it. They are put on one line with single
    // spaces: relaxed canonicalisation, as verifiers apply it, leaves that
    // unchanged, so the seal verifies.
    let recorded = one_line(results);
    let ar = AuthenticationResults::new(&recorded);
    let set = ArcSealer::from_key(key.signing_key())
        .domain(key.domain.as_str())
        .selector(SELECTOR)
        .headers(headers)
        .seal(&parsed, &ar, &chain)
        .map_err(|e| SignError::Crypto(e.to_string()))?;
    Ok(split_fields(&set.to_header()))
}

/// Whitespace runs (folding included) become one space.
fn one_line(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Name: value\r\n…` fields → (name, value) with LF folding.
fn split_fields(text: &str) -> SealedHeaders {
    let mut out: SealedHeaders = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_string(), value.trim_start().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_split_with_their_folding() {
        let f = split_fields(
            "ARC-Seal: i=1; a=x;\r\n\tb=abc\r\nARC-Authentication-Results: i=1; h\r\n",
        );
        assert_eq!(
            f,
            vec![
                ("ARC-Seal".to_string(), "i=1; a=x;\n\tb=abc".to_string()),
                (
                    "ARC-Authentication-Results".to_string(),
                    "i=1; h".to_string()
                ),
            ]
        );
    }

    #[test]
    fn results_are_put_on_one_line() {
        assert_eq!(
            one_line("mx.test;\n\tspf=pass  x=y"),
            "mx.test; spf=pass x=y"
        );
    }
}
