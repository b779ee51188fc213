//! DKIM2 (draft-ietf-dkim-dkim2-spec, as mail-auth 0.15.1 implements it):
//! "mailkey v2", the envelope-bound signature (docs/protocol.md, "mailkey
//! v2 = DKIM2").
//!
//! Every hop adds a `DKIM2-Signature` that binds its SMTP envelope (`mf=`
//! MAIL FROM, `rt=` RCPT TO) and, when it changed the message, a
//! `Message-Instance` whose recipe recreates the previous version. So a
//! receiver can follow the chain of custody from the originator to the
//! hop that delivered, and a signature replayed to other recipients or
//! from another sender fails.
//!
//! - [`verify`]: the receiving side, a pure function of the message, the
//!   envelope (every RCPT), the DNS and the clock; [`crate::checks::dkim2`]
//!   is the check, and [`crate::checks::dkim2::apply`] lets its result pass or fail the mailkey
//!   check of the sender domain;
//! - [`sign`]: the sending side, an originator's signature or a
//!   forwarder's hop ([`custody`] keeps what our door verified, for the
//!   hop's recipe);
//! - [`dsn`]: bounces for our DKIM2-signed mail, verified as the draft's
//!   §16.4 says, and passed back along the chain (§16.3).
//!
//! Bounds (SECURITY.md): see [`MAX_SIGNATURES`], [`MAX_KEYS`] and
//! [`MAX_HEADER_BYTES`].

pub(crate) mod custody;
pub mod dsn;
mod keys;
mod outcome;
pub mod sign;
pub mod verify;

pub use outcome::{Kind, Outcome};

use crate::config::{Config, SignatureKind};

/// The most `DKIM2-Signature` fields a message may carry, and the most
/// `Message-Instance` fields: an originator, a list and a few forwarders. mail-auth allows 50;
/// each hop costs the verifier its key lookups, a signature check and, for
/// a changed message, a recipe applied to the body and a hash of it, so
/// the chain length multiplies the work a sender can ask for.
pub(crate) const MAX_SIGNATURES: usize = 8;

/// The most distinct keys (selector, `d=`) looked up for one message: a
/// chain of [`MAX_SIGNATURES`] hops with one key each, and room for hops
/// that sign with two algorithms. mail-auth allows 8 per signature.
pub const MAX_KEYS: usize = 16;

/// The most bytes of DKIM2 header fields (signatures and instances, their
/// recipes included) per message. A recipe replaces lines of the body; a
/// list footer's is a few hundred bytes, a subject tag's less. A recipe is
/// JSON parsed and applied over the whole body once per hop: bounding its
/// size bounds the recipe's work to the size of the message plus this.
pub(crate) const MAX_HEADER_BYTES: usize = 256 * 1024;

/// The DKIM2 header field names (RFC 5322 names, compared case-blind).
pub(crate) const SIGNATURE_HEADER: &str = "DKIM2-Signature";
pub(crate) const INSTANCE_HEADER: &str = "Message-Instance";

/// What DKIM2 keeps per configuration: the signers of our DKIM2 domains
/// and the forwarding host's door-verified messages.
pub struct State {
    pub signers: sign::Signers,
    pub custody: custody::Custody,
}

impl State {
    pub fn load(config: &Config) -> Result<State, crate::sign::SignError> {
        Ok(State {
            signers: sign::Signers::load(config)?,
            custody: custody::Custody::new(config.dkim2.forward, config.dkim2.custody_cache_size),
        })
    }
}

/// Do DKIM2 verification or signing need the RCPT stage of the milter?
pub(crate) fn needs_recipients(shared: &crate::Shared) -> bool {
    let config = &shared.config;
    config.dkim2.verify
        || config
            .signing
            .domains
            .iter()
            .any(|d| d.signatures.contains(&SignatureKind::Dkim2))
}

/// `<user@example.com>` → `user@example.com`; `<>` and `` stay empty.
pub fn bare(path: &str) -> &str {
    path.trim().trim_start_matches('<').trim_end_matches('>')
}

/// Does the header block of `message` carry a DKIM2 header field? A scan
/// of the field names only: mail without DKIM2 (nearly all of it today)
/// costs nothing more.
pub(crate) fn has_dkim2_fields(message: &[u8]) -> bool {
    header_fields(message).any(|(name, _)| is_dkim2_name(name))
}

fn is_dkim2_name(name: &[u8]) -> bool {
    let name = name.trim_ascii();
    name.eq_ignore_ascii_case(SIGNATURE_HEADER.as_bytes())
        || name.eq_ignore_ascii_case(INSTANCE_HEADER.as_bytes())
}

/// The header fields of `message` as (name, whole field with its line end)
/// byte ranges, up to the empty line.
pub(crate) fn header_fields(
    message: &[u8],
) -> impl Iterator<Item = (&[u8], std::ops::Range<usize>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = message.get(at..)?;
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let start = at;
        // The field ends at a line end not followed by white space.
        let mut end = start;
        loop {
            match message[end..].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    end += nl + 1;
                    if !matches!(message.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = message.len();
                    break;
                }
            }
        }
        at = end;
        let field = &message[start..end];
        let name = field
            .iter()
            .position(|&b| b == b':')
            .map_or(&field[..0], |colon| &field[..colon]);
        Some((name, start..end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_split_folded_lines_and_stop_at_the_body() {
        let m = b"A: 1\r\nB: 2\r\n 3\r\nDKIM2-Signature: x\r\n\r\nC: body\r\n";
        let fields: Vec<_> = header_fields(m).map(|(n, r)| (n, &m[r])).collect();
        assert_eq!(
            fields,
            [
                (&b"A"[..], &b"A: 1\r\n"[..]),
                (&b"B"[..], &b"B: 2\r\n 3\r\n"[..]),
                (&b"DKIM2-Signature"[..], &b"DKIM2-Signature: x\r\n"[..]),
            ]
        );
        assert!(has_dkim2_fields(m));
        assert!(!has_dkim2_fields(b"A: 1\r\n\r\nDKIM2-Signature: x\r\n"));
    }

    #[test]
    fn signing_settings_are_checked_and_round_trip() {
        let parse = |entry: &str| {
            let text = format!(
                "[[signing.domains]]\ndomain = \"a.test\"\nkey_file = \"/k.pem\"\n{entry}\n"
            );
            Config::parse(&text, std::path::Path::new("t.toml")).map_err(|e| e.to_string())
        };
        let config =
            parse("signatures = [\"mailkey\", \"dkim2\"]\ndkim2_selector = \"s2026\"").unwrap();
        let entry = &config.signing.domains[0];
        assert_eq!(
            entry.signatures,
            [SignatureKind::Mailkey, SignatureKind::Dkim2]
        );
        assert_eq!(entry.dkim2_selector, "s2026");
        let again = Config::parse(&config.to_toml(), std::path::Path::new("t.toml")).unwrap();
        assert_eq!(again, config);
        // Defaults: DKIM1 only, selector mailkey.
        let default = parse("").unwrap();
        assert_eq!(
            default.signing.domains[0].signatures,
            [SignatureKind::Mailkey]
        );
        assert_eq!(default.signing.domains[0].dkim2_selector, "mailkey");
        for (entry, why) in [
            (
                "signatures = []",
                "t.toml, line 4: key `signing.domains.signatures`",
            ),
            (
                "signatures = [\"dkim3\"]",
                "invalid signature \"dkim3\": allowed values are \"mailkey\", \"dkim2\"",
            ),
            (
                "dkim2_selector = \"a b\"",
                "t.toml, line 4: key `signing.domains.dkim2_selector`: invalid value \"a b\"",
            ),
        ] {
            let err = parse(entry).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }
}
