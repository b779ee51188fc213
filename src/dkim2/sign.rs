//! DKIM2 signing for our `[signing]` domains (docs/decisions.md, "DKIM2:
//! signing"): what a domain signs with (`signatures`), and the header
//! fields of one signature —
//!
//! - an originator's (`i=1`): a message without DKIM2 fields, from one of
//!   our domains, bound to its envelope (`mf=` MAIL FROM, `rt=` every
//!   RCPT). The draft requires the From domain to be `d=` or below;
//! - a hop (`i=n+1`): a message that carries a chain our door verified
//!   (its original is in the [`super::custody`] cache); when the message
//!   changed since (a list footer), a `Message-Instance` whose recipe
//!   recreates the original (mail-auth's `sign_revised`);
//! - a DSN's, by one of our domains its returned message was sent to
//!   (draft §16.2).

use crate::{
    config::{Config, SignatureKind},
    sign::{normalise_domain, DomainKey, SignError},
};
use mail_auth::{
    dkim2::{Dkim2Dsn, Dkim2Signed, Dkim2Signer, Hop},
    headers::HeaderWriter,
    signer::Ready,
};
use std::collections::HashMap;

/// What a domain's mail is signed with (its first `[[signing.domains]]`
/// entry, the one that signs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// A DKIM1 mailkey signature (`s=mailkey`).
    pub mailkey: bool,
    pub dkim2: bool,
}

impl Plan {
    /// The plan for `domain`: nothing when it is not a `[signing]` domain.
    pub fn of(config: &Config, domain: &str) -> Plan {
        let domain = normalise_domain(domain).unwrap_or_default();
        config
            .signing
            .domains
            .iter()
            .find(|e| normalise_domain(&e.domain).is_ok_and(|d| d == domain))
            .map_or(Plan::default(), |e| Plan {
                mailkey: e.signatures.contains(&SignatureKind::Mailkey),
                dkim2: e.signatures.contains(&SignatureKind::Dkim2),
            })
    }
}

/// The DKIM2 signers of the domains that sign with DKIM2, by domain. Each
/// owns its key (read once more from the key file at start and reload).
#[derive(Default)]
pub struct Signers {
    by_domain: HashMap<String, Dkim2Signer<Ready>>,
}

impl std::fmt::Debug for Signers {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_domain.keys()).finish()
    }
}

impl Signers {
    /// Loads the key of the first entry of each domain that signs DKIM2.
    pub fn load(config: &Config) -> Result<Signers, SignError> {
        let mut by_domain = HashMap::new();
        for entry in &config.signing.domains {
            let domain = normalise_domain(&entry.domain)?;
            if by_domain.contains_key(&domain) || !Plan::of(config, &domain).dkim2 {
                continue;
            }
            let key = DomainKey::load(&domain, &entry.key_file)?;
            let Some(key) = key.into_dkim_key() else {
                continue; // not shared: cannot happen for a key just loaded
            };
            // Out-of-band: a hop is signed only for a chain our own door
            // verified (the custody cache), which replaces the proof the
            // signer would otherwise ask for (draft §12).
            let signer = Dkim2Signer::from_key(key)
                .domain(domain.as_str())
                .selector(entry.dkim2_selector.as_str())
                .out_of_band_arrangement();
            by_domain.insert(domain, signer);
        }
        Ok(Signers { by_domain })
    }

    /// Does no domain sign DKIM2?
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The DKIM2 signer of `domain`, if it signs DKIM2.
    pub(crate) fn for_domain(&self, domain: &str) -> Option<&Dkim2Signer<Ready>> {
        let domain = normalise_domain(domain).ok()?;
        self.by_domain.get(&domain)
    }

    /// The first of our DKIM2 domains that may sign a DSN about the message
    /// returned in `dsn` (a domain of a recipient of its newest signature,
    /// §16.2), with its signer.
    pub(crate) fn for_dsn(&self, dsn: &[u8]) -> Option<(String, &Dkim2Signer<Ready>)> {
        let parsed = Dkim2Dsn::parse(dsn).ok()?;
        let domains: Vec<String> = parsed
            .returned
            .dkim2_dsn_domains()
            .map(str::to_string)
            .collect();
        domains
            .into_iter()
            .find_map(|d| self.for_domain(&d).map(|s| (d, s)))
    }
}

/// How the signature relates to a chain already on the message.
pub enum Role<'a> {
    /// A new message: `i=1`.
    Originator,
    /// A hop over `original`, the message as our door verified it.
    Hop { original: &'a [u8] },
}

/// The header fields of the signature of `message` (CRLF line ends, as it
/// will be sent) for the envelope (`mail_from` without angle brackets,
/// empty for the null sender; every RCPT TO): (name, value without the
/// name, folded with CRLF + TAB).
pub fn sign(
    signer: &Dkim2Signer<Ready>,
    message: &[u8],
    mail_from: &str,
    rcpt_to: &[String],
    role: Role<'_>,
) -> Result<Vec<(&'static str, String)>, SignError> {
    let mail_from = format!("<{}>", super::bare(mail_from));
    let hop = Hop::real(mail_from.as_str(), rcpt_to);
    let signed = match role {
        Role::Originator => signer.sign(message, hop, None),
        Role::Hop { original } => signer.sign_revised(original, message, hop, None),
    }
    .map_err(|e| SignError::Crypto(format!("DKIM2: {e}")))?;
    Ok(fields(&signed))
}

/// The fields of `signed`: the signature, and the instance when there is
/// one. Folded as mail-auth folds them (DKIM2 removes all white space
/// before hashing, so folding is free).
fn fields(signed: &Dkim2Signed) -> Vec<(&'static str, String)> {
    let value = |header: String, name: &str| {
        header
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix(':'))
            .unwrap_or(&header)
            .trim_end_matches("\r\n")
            .to_string()
    };
    let mut out = vec![(
        super::SIGNATURE_HEADER,
        value(signed.signature.to_header(), super::SIGNATURE_HEADER),
    )];
    if let Some(instance) = &signed.message_instance {
        out.push((
            super::INSTANCE_HEADER,
            value(instance.to_header(), super::INSTANCE_HEADER),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::{crypto::Ed25519Key, AuthenticatedMessage};
    use openssl::pkey::PKey;

    fn signer(domain: &str) -> Dkim2Signer<Ready> {
        let pkey = PKey::generate_ed25519().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkey.private_key_to_pkcs8().unwrap()).unwrap();
        Dkim2Signer::from_key(key)
            .domain(domain)
            .selector("mailkey")
            .out_of_band_arrangement()
    }

    #[test]
    fn an_originator_binds_the_envelope_and_a_hop_records_the_footer() {
        let message = b"From: a@a.test\r\nSubject: hi\r\n\r\nHello\r\n";
        let rcpt = vec!["list@b.test".to_string()];
        let fields = sign(
            &signer("a.test"),
            message,
            "a@a.test",
            &rcpt,
            Role::Originator,
        )
        .unwrap();
        assert_eq!(fields.len(), 2, "{fields:?}");
        assert!(fields[0].1.contains("i=1; m=1;"), "{fields:?}");
        let head: String = fields.iter().map(|(n, v)| format!("{n}:{v}\r\n")).collect();
        let received = [head.as_bytes(), message].concat();
        let changed = [received.as_slice(), b"-- \r\nfooter\r\n"].concat();
        let rcpt = vec!["c@c.test".to_string()];
        let role = Role::Hop {
            original: &received,
        };
        let hop = sign(&signer("b.test"), &changed, "list@b.test", &rcpt, role).unwrap();
        assert!(hop[0].1.contains("i=2; m=2;"), "{hop:?}");
        assert!(hop[1].1.contains("r="), "a recipe: {hop:?}");
        let parsed = AuthenticatedMessage::parse(&changed).unwrap();
        assert_eq!(parsed.dkim2_signatures().len(), 1);
    }

    #[test]
    fn an_originator_must_be_the_from_domain_or_above_it() {
        let message = b"From: a@elsewhere.test\r\n\r\nHello\r\n";
        let err = sign(
            &signer("a.test"),
            message,
            "a@a.test",
            &["b@b.test".into()],
            Role::Originator,
        )
        .unwrap_err();
        assert!(err.to_string().contains("From is not authentic"), "{err}");
    }
}
