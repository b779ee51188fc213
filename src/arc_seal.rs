//! ARC sealing on the forwarding side (#15, RFC 8617 §5.1): with `[arc]
//! seal = true`, every message we checked and let through gets an ARC set
//! signed with the RSA key of `[arc] key_file` for `seal_domain` (selector
//! `[arc] selector`), whose `ARC-Authentication-Results` record our own
//! results for the message as it reached us. A receiver that trusts us can
//! then accept it after a forward or a list changed it (our `[forwarding]
//! trusted_arc_sealers` is that receiver's side).
//!
//! Why every message and not only "forwarded" ones: at the SMTP stage the
//! milter cannot know whether the message will leave again — Postfix
//! expands virtual aliases and `.forward` files after the milter has seen
//! the message — so sealing all checked mail is the one rule that covers
//! every forwarding path (docs/decisions.md, "ARC sealing: every checked
//! message"). A copy delivered locally carries a harmless seal.
//!
//! Why RSA (#21): ARC verifiers in the field (dkimpy, Microsoft, Gmail)
//! accept `rsa-sha256` seals only, so an Ed25519 key is refused when the
//! configuration is loaded.
//!
//! The chain already on the message is not validated here: the `arc` check
//! did it once (`cv=pass` needs its `pass`), and a chain it did not
//! validate, or that failed, is not sealed over (docs/decisions.md, "ARC:
//! validated only when it can matter").

use crate::{
    checks::{arc, CheckResult, Status},
    config::ArcConfig,
    keygen::RSA_BITS,
    protocol::KeyType,
    sign::{headers_to_sign, DomainKey, SignError},
};
use mail_auth::{
    arc::ArcSealer, headers::HeaderWriter, ArcOutput, AuthenticatedMessage, AuthenticationResults,
    DkimResult,
};
use std::path::PathBuf;

/// The three header fields of a new ARC set, as (name, value) with values
/// folded with LF as milters pass them, without leading space; in the order
/// they must appear at the top of the message (RFC 8617 §4.1).
pub(crate) type SealedHeaders = Vec<(String, String)>;

/// The key that seals, read and checked when the configuration is loaded.
#[derive(Debug)]
pub struct Sealer {
    key: DomainKey,
    selector: String,
}

/// Why `[arc] key_file` cannot seal (`SetupError::key` names the key and
/// what it allows).
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error(transparent)]
    Load(SignError),
    #[error("{path}: the ARC key for {domain} is {found}, which cannot seal")]
    NotAllowed {
        path: PathBuf,
        domain: String,
        found: String,
    },
}

/// Why a message was not sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The chain on the message was not validated or did not validate: a
    /// seal over it would say `cv=fail`, which no receiver can use.
    #[error("the ARC chain it carries {0}")]
    Chain(String),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Sealer {
    /// The sealer of `[arc]`; `None` unless `seal = true`.
    pub fn load(config: &ArcConfig) -> Result<Option<Self>, SealKeyError> {
        let (true, Some(domain), Some(path)) = (config.seal, &config.seal_domain, &config.key_file)
        else {
            return Ok(None);
        };
        let key = DomainKey::load(domain, path).map_err(SealKeyError::Load)?;
        match key.key_type {
            KeyType::Rsa { bits } if RSA_BITS.contains(&bits) => Ok(Some(Self {
                key,
                selector: config.selector.clone(),
            })),
            found => Err(SealKeyError::NotAllowed {
                path: path.clone(),
                domain: key.domain,
                found: match found {
                    KeyType::Ed25519 => "an Ed25519 key".into(),
                    KeyType::Rsa { bits } => format!("an RSA key of {bits} bits"),
                },
            }),
        }
    }

    /// `d=` of our seals.
    pub fn domain(&self) -> &str {
        &self.key.domain
    }

    /// `s=` of our seals.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// Seals `message` (CRLF line ends); `results` is our
    /// `Authentication-Results` value (authserv-id first), `arc` our `arc`
    /// check's result for the same message.
    pub fn seal(
        &self,
        message: &[u8],
        results: &str,
        arc: Option<&CheckResult>,
    ) -> Result<SealedHeaders, SealError> {
        let parsed = AuthenticatedMessage::parse_arc(message).ok_or(SignError::NoFrom)?;
        let headers = headers_to_sign(message);
        if !headers.iter().any(|h| h.eq_ignore_ascii_case("From")) {
            return Err(SignError::NoFrom.into());
        }
        let chain = chain(&parsed, arc)?;
        // mail-auth builds `ARC-Authentication-Results` only from its own
        // verifiers' outputs; it writes the authserv-id verbatim, so our
        // results ride along after it. They are put on one line with single
        // spaces: relaxed canonicalisation, as verifiers apply it, leaves that
        // unchanged, so the seal verifies.
        let recorded = one_line(results);
        let ar = AuthenticationResults::new(&recorded);
        let set = ArcSealer::from_key(self.key.signing_key())
            .domain(self.key.domain.as_str())
            .selector(self.selector.as_str())
            .headers(headers)
            .seal(&parsed, &ar, &chain)
            .map_err(|e| SignError::Crypto(e.to_string()))?;
        Ok(split_fields(&set.to_header()))
    }
}

/// The chain the new set goes on: none (`cv=none`), or the one the `arc`
/// check validated (`cv=pass`).
fn chain<'x>(
    parsed: &'x AuthenticatedMessage<'x>,
    arc: Option<&CheckResult>,
) -> Result<ArcOutput<'x>, SealError> {
    let carries_chain = !parsed.arc_seals().is_empty()
        || !parsed.arc_message_signatures().is_empty()
        || !parsed.arc_authentication_results().is_empty()
        || parsed.has_arc_errors();
    if !carries_chain {
        return Ok(ArcOutput::default());
    }
    let status = arc.filter(|r| r.check == arc::NAME).map(|r| r.status);
    let chain = ArcOutput::validated(parsed, DkimResult::Pass);
    match status {
        Some(Status::Pass) if !chain.chain().is_empty() => Ok(chain),
        Some(Status::Pass) => Err(SealError::Chain("does not pair up into sets".into())),
        Some(Status::None) => Err(SealError::Chain("was not validated (arc=none)".into())),
        Some(other) => Err(SealError::Chain(format!(
            "did not validate (arc={})",
            other.as_str()
        ))),
        None => Err(SealError::Chain("was not checked".into())),
    }
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
