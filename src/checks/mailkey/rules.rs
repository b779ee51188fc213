//! The protocol's rules on top of DKIM's (docs/protocol.md §4.3): what
//! makes a mailkey signature not count, decided from its header field
//! alone, before any hashing.

use mail_auth::{
    crypto::Algorithm,
    dkim::{parse::MAX_SIGNED_HEADERS, Signature},
};

/// The most `h=` entries a considered signature may have. Real signers
/// list 5 to 30 (Gmail ~8, Microsoft 365 ~10, dkimpy's default with
/// oversigning ~30, our own signer 15); every entry is work for the
/// verifier, so a signature listing more is refused before any hashing.
pub(crate) const MAX_SIGNED_FIELDS: usize = 128;

/// `t=` and `x=` are at most 12 digits (RFC 6376 §3.5).
const MAX_TIME_DIGITS: usize = 12;

/// Why the protocol refuses `sig`, whose header field value is `value`;
/// `now` is seconds since the epoch, for `x=`.
pub fn allowed(sig: &Signature, value: &[u8], now: u64) -> Result<(), String> {
    let tags = TagsPresent::scan(value);
    if !tags.v {
        return Err("signature has no v= tag (RFC 6376 section 3.5 requires v=1)".into());
    }
    if !tags.a {
        return Err("signature has no a= tag (RFC 6376 section 3.5 requires it)".into());
    }
    if sig.a == Algorithm::RsaSha1 {
        return Err("rsa-sha1 signatures are not accepted".into());
    }
    // Whatever its value: `l=0` signs no body at all.
    if tags.l {
        return Err("signature has an l= body length tag: l= is not accepted".into());
    }
    for (name, time) in [("t", &tags.t), ("x", &tags.x)] {
        let Some(time) = time else { continue };
        if time.is_empty() || time.len() > MAX_TIME_DIGITS || !time.iter().all(u8::is_ascii_digit) {
            let shown: String = String::from_utf8_lossy(time).chars().take(20).collect();
            return Err(format!(
                "signature has {name}={shown}{}: RFC 6376 section 3.5 allows 1 to \
                 {MAX_TIME_DIGITS} digits",
                if time.len() > 20 { "..." } else { "" }
            ));
        }
    }
    if sig.h.len() > MAX_SIGNED_FIELDS {
        // The parser reads no more than MAX_SIGNED_HEADERS names.
        let more = match sig.h.len() >= MAX_SIGNED_HEADERS {
            true => " or more",
            false => "",
        };
        return Err(format!(
            "signature lists {}{more} header fields in h=: at most {MAX_SIGNED_FIELDS} are \
             accepted; sign only the fields that matter",
            sig.h.len()
        ));
    }
    if !sig.h.iter().any(|h| h.eq_ignore_ascii_case("from")) {
        return Err("signature does not cover the From header".into());
    }
    if sig.x != 0 && sig.x <= now {
        return Err("signature expired (x=)".into());
    }
    if sig.x != 0 && sig.x <= sig.t {
        return Err("signature expired: x= is not later than t=".into());
    }
    Ok(())
}

/// Which tags a signature's tag-list carries, and the values of `t=` and
/// `x=` with white space removed (mail-auth reads a value that is not a
/// number as absent, and saturates a long one).
#[derive(Default)]
struct TagsPresent {
    v: bool,
    a: bool,
    l: bool,
    t: Option<Vec<u8>>,
    x: Option<Vec<u8>>,
}

impl TagsPresent {
    /// One pass over the tag-list (RFC 6376 §3.2: `tag = value` separated
    /// by `;`, with folding white space around them).
    fn scan(value: &[u8]) -> Self {
        let mut tags = Self::default();
        for spec in value.split(|&b| b == b';') {
            let Some(eq) = spec.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, rest) = (spec[..eq].trim_ascii(), &spec[eq + 1..]);
            let compact = || -> Vec<u8> {
                rest.iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect()
            };
            match name {
                b"v" => tags.v = true,
                b"a" => tags.a = true,
                b"l" => tags.l = true,
                b"t" => tags.t = Some(compact()),
                b"x" => tags.x = Some(compact()),
                _ => {}
            }
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, now: u64) -> Result<(), String> {
        let sig = Signature::parse(value.as_bytes()).expect("parses");
        allowed(&sig, value.as_bytes(), now)
    }

    const SIG: &str = "v=1; a=ed25519-sha256; d=sender.test; s=mailkey; h=from:to; bh=AAAA; b=AAAA";

    #[test]
    fn times_of_more_than_12_digits_are_refused() {
        assert_eq!(check(&format!("{SIG}; t=999999999999"), 0), Ok(()));
        let why = check(&format!("{SIG}; t=1000000000000"), 0).unwrap_err();
        assert_eq!(
            why,
            "signature has t=1000000000000: RFC 6376 section 3.5 allows 1 to 12 digits"
        );
        // Folding white space inside the value is not a digit.
        assert_eq!(check(&format!("{SIG}; t=1700\r\n 000000"), 0), Ok(()));
        let why = check(&format!("{SIG}; x={}", "9".repeat(30)), 0).unwrap_err();
        assert!(
            why.starts_with("signature has x=99999999999999999999...:"),
            "{why}"
        );
        assert!(check(&format!("{SIG}; t=12ab"), 0).is_err());
    }

    #[test]
    fn any_l_tag_is_refused_even_l_0() {
        for l in ["l=0", "l=100", "l = 0"] {
            let why = check(&format!("{SIG}; {l}"), 0).unwrap_err();
            assert!(why.contains("l= is not accepted"), "{l}: {why}");
        }
    }

    #[test]
    fn required_tags_and_the_h_cap() {
        assert!(check(&SIG.replace("v=1; ", ""), 0)
            .unwrap_err()
            .contains("no v="));
        assert!(check(&SIG.replace("a=ed25519-sha256; ", ""), 0)
            .unwrap_err()
            .contains("no a="));
        let fields: Vec<String> = (0..MAX_SIGNED_FIELDS).map(|i| format!("x{i}")).collect();
        let at_cap = SIG.replace("h=from:to", &format!("h=from:{}", fields[1..].join(":")));
        assert_eq!(check(&at_cap, 0), Ok(()));
        let over = SIG.replace("h=from:to", &format!("h=from:{}", fields.join(":")));
        assert_eq!(
            check(&over, 0).unwrap_err(),
            "signature lists 129 header fields in h=: at most 128 are accepted; sign only \
             the fields that matter"
        );
        // 12,000 names: the parser stops at MAX_SIGNED_HEADERS (#21 item 4).
        let names: Vec<String> = (0..12_000).map(|i| format!("x{i}")).collect();
        let flood = SIG.replace("h=from:to", &format!("h=from:{}", names.join(":")));
        assert_eq!(
            check(&flood, 0).unwrap_err(),
            "signature lists 512 or more header fields in h=: at most 128 are accepted; \
             sign only the fields that matter"
        );
    }
}
