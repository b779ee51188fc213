//! The ARC header fields of a message, read from the header block alone
//! before anything is validated: how many sets and bytes there are, who
//! sealed last, which keys validation needs, what the newest set recorded.
//! Everything a sender can inflate is counted here first and capped, so
//! that validation costs at most a fixed amount whatever the message
//! carries (docs/decisions.md, "ARC bounds"; SECURITY.md).

use crate::ar_syntax::{self as syntax, ResInfo};
use mail_auth::arc::{ArcAuthResults, Seal, Signature};

/// The most ARC sets validated. RFC 8617 allows 50; real chains have one
/// to four (a list, a forwarder, a provider's internal hops). Validation
/// checks one seal per set over every set before it (work grows with the
/// square of the count) and looks up one key per set.
pub const MAX_SETS: usize = 8;
/// The most bytes of ARC header fields (names and values) validated. A set
/// with RSA-2048 signatures and a long `ARC-Authentication-Results` is 2 to
/// 4 KiB; eight of them fit. Each seal hashes the sets before it, so this
/// times [`MAX_SETS`] bounds the bytes hashed.
pub(crate) const MAX_BYTES: usize = 32 * 1024;
/// The longest signature validated, in bits: RFC 8301 §3.1 asks verifiers
/// to accept RSA keys of 1024 to 4096 bits; a longer one costs more to
/// verify (8192 bits: about 4×) and is not required.
pub(crate) const MAX_SIGNATURE_BITS: usize = 4096;
/// The most header names in the newest `ARC-Message-Signature`'s `h=`:
/// each is looked for among the message's header fields. Sealers sign ten
/// to thirty.
pub(crate) const MAX_SIGNED_HEADERS: usize = 64;
/// The most header fields of a message whose chain is validated: finding
/// the signed fields costs up to [`MAX_SIGNED_HEADERS`] passes over them.
/// Real messages have 20 to a few hundred (long `Received` chains).
pub(crate) const MAX_HEADER_FIELDS: usize = 1000;

/// The ARC header fields of one message, borrowed from it.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    seals: Vec<&'a [u8]>,
    signatures: Vec<&'a [u8]>,
    results: Vec<&'a [u8]>,
    bytes: usize,
}

/// What validation would have to do, known from the header fields.
pub(crate) struct Chain {
    /// `d=` of the newest `ARC-Seal`, lower case.
    pub sealer: String,
    /// The key names (`s._domainkey.d.`) validation looks up, each once;
    /// empty when the sets do not pair up (validation fails without keys).
    pub keys: Vec<String>,
}

impl<'a> Fields<'a> {
    /// Reads the header block of `message`; stops (with `Err`, the reason)
    /// as soon as a cap is passed, so an oversized chain costs one pass over
    /// part of the header block.
    pub(crate) fn scan(message: &'a [u8]) -> Result<Self, String> {
        let mut f = Self::default();
        let mut fields = 0;
        for (name, value) in header_fields(message) {
            fields += 1;
            let list = if name.eq_ignore_ascii_case(b"ARC-Seal") {
                &mut f.seals
            } else if name.eq_ignore_ascii_case(b"ARC-Message-Signature") {
                &mut f.signatures
            } else if name.eq_ignore_ascii_case(b"ARC-Authentication-Results") {
                &mut f.results
            } else {
                continue;
            };
            list.push(value);
            f.bytes += name.len() + 1 + value.len();
            let sets = f.sets();
            if sets > MAX_SETS {
                return Err(format!("more than {MAX_SETS} ARC sets"));
            }
            if f.bytes > MAX_BYTES {
                return Err(format!("more than {MAX_BYTES} bytes of ARC header fields"));
            }
        }
        if fields > MAX_HEADER_FIELDS && !f.is_empty() {
            return Err(format!("more than {MAX_HEADER_FIELDS} header fields"));
        }
        Ok(f)
    }

    /// No ARC header field at all.
    pub fn is_empty(&self) -> bool {
        self.sets() == 0
    }

    fn sets(&self) -> usize {
        self.seals
            .len()
            .max(self.signatures.len())
            .max(self.results.len())
    }

    /// The newest sealer and the keys to look up; `Err` (the reason) for a
    /// signature above the caps. `Ok(None)` when the seals do not parse or
    /// name no sealer: validation then fails without looking anything up.
    pub fn chain(&self) -> Result<Option<Chain>, String> {
        let Ok(seals) = self
            .seals
            .iter()
            .map(|v| Seal::parse(v))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        let Some(newest) = seals.iter().max_by_key(|s| s.i) else {
            return Ok(None);
        };
        let signature = self
            .signatures
            .iter()
            .filter_map(|v| Signature::parse(v).ok())
            .max_by_key(|s| s.i);
        let bits = seals
            .iter()
            .map(|s| s.b.len())
            .chain(signature.iter().map(|s| s.b.len()))
            .max()
            .unwrap_or(0)
            * 8;
        if bits > MAX_SIGNATURE_BITS {
            return Err(format!(
                "a signature of {bits} bits, more than {MAX_SIGNATURE_BITS}"
            ));
        }
        if let Some(s) = &signature {
            if s.h.len() > MAX_SIGNED_HEADERS {
                return Err(format!(
                    "{} header names in h=, more than {MAX_SIGNED_HEADERS}",
                    s.h.len()
                ));
            }
        }
        let mut keys = Vec::with_capacity(seals.len() + 1);
        // Worth looking up only for sets that pair up as validation needs
        // (instances 1..n of each kind): anything else fails without keys.
        let n = seals.len();
        let paired = self.signatures.len() == n
            && self.results.len() == n
            && (1..=n).all(|i| seals.iter().any(|s| s.i as usize == i))
            && signature.as_ref().is_some_and(|s| s.i as usize == n);
        if paired {
            let names = signature
                .iter()
                .map(|s| key_name(&s.s, &s.d))
                .chain(seals.iter().map(|s| key_name(&s.s, &s.d)));
            for name in names {
                if !keys.contains(&name) {
                    keys.push(name);
                }
            }
        }
        Ok(Some(Chain {
            sealer: newest.d.to_ascii_lowercase(),
            keys,
        }))
    }

    /// `d=` of the newest `ARC-Seal` and the results its
    /// `ARC-Authentication-Results` (same instance) records; `None` when
    /// either is missing or does not parse. The instance is the one the
    /// check validated: validation requires exactly one set per instance.
    pub(crate) fn newest_results(&self) -> Option<(String, Vec<ResInfo>)> {
        let newest = self
            .seals
            .iter()
            .filter_map(|v| Seal::parse(v).ok())
            .max_by_key(|s| s.i)?;
        let recorded = self.results.iter().find_map(|v| {
            let i = ArcAuthResults::parse(v).ok()?.i;
            (i == newest.i).then_some(v)
        })?;
        let (i, parsed) = syntax::parse_arc(&String::from_utf8_lossy(recorded))?;
        (i == newest.i).then(|| (newest.d.to_ascii_lowercase(), parsed.results))
    }
}

/// The name a key of selector `s` and domain `d` is looked up under, as
/// mail-auth writes it.
fn key_name(s: &str, d: &str) -> String {
    format!("{s}._domainkey.{d}.").to_ascii_lowercase()
}

/// The header fields of `message` up to the empty line: (name, value), the
/// value as mail-auth parses it (after the colon, folding and the final
/// line end included).
fn header_fields(message: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = message;
    std::iter::from_fn(move || {
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        // The field ends at a line end not followed by folding white space.
        let mut end = 0;
        loop {
            match rest[end..].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    end += nl + 1;
                    if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = rest.len();
                    break;
                }
            }
        }
        let (field, after) = rest.split_at(end);
        rest = after;
        let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
        let (name, value) = field.split_at(colon);
        Some((name, value.get(1..).unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_with_folding_end_at_the_empty_line() {
        let m = b"A: 1\r\nB: 2\r\n\t3\r\nC:4\n\r\nD: body\r\n";
        let f: Vec<_> = header_fields(m).collect();
        assert_eq!(
            f,
            [
                (&b"A"[..], &b" 1\r\n"[..]),
                (b"B", b" 2\r\n\t3\r\n"),
                (b"C", b"4\n")
            ]
        );
    }

    #[test]
    fn caps_stop_the_scan() {
        let set = "ARC-Seal: i=1; a=rsa-sha256; d=x.test; s=s; cv=none; b=AA==\r\n";
        let m = set.repeat(MAX_SETS + 1) + "\r\nbody";
        let e = Fields::scan(m.as_bytes()).err().unwrap_or_default();
        assert!(e.contains("more than 8 ARC sets"), "{e}");
        let big = format!(
            "ARC-Authentication-Results: i=1; {}\r\n\r\n",
            "x".repeat(MAX_BYTES)
        );
        let e = Fields::scan(big.as_bytes()).err().unwrap_or_default();
        assert!(e.contains("bytes of ARC header fields"), "{e}");
        assert!(Fields::scan(b"From: a@b.test\r\n\r\n").is_ok_and(|f| f.is_empty()));
        let many = "X: y\r\n".repeat(MAX_HEADER_FIELDS);
        assert!(Fields::scan(many.as_bytes()).is_ok_and(|f| f.is_empty()));
        let e = Fields::scan((many + set).as_bytes())
            .err()
            .unwrap_or_default();
        assert!(e.contains("more than 1000 header fields"), "{e}");
    }
}
