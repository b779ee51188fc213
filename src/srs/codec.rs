//! Encoding and verification of SRS addresses (see the module docs).

use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// libsrs2's defaults: 4 hash characters, timestamps in days, 10 bits.
const HASH_LEN: usize = 4;
const DAY: u64 = 86_400;
const TIME_SLOTS: u64 = 1024;

/// Why an address does not reverse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not verify")]
    BadHash,
    #[error("SRS address expired")]
    Expired,
    #[error("no SRS secret configured")]
    NoSecret,
}

/// What reversing an SRS address gives: the address to deliver to.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded(pub String);

/// The scheme for one SRS domain with its secrets.
pub struct Srs {
    pub domain: String,
    secrets: Vec<Vec<u8>>,
    max_age_days: u64,
}

impl std::fmt::Debug for Srs {
    // Never print the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Srs({}, {} secrets)", self.domain, self.secrets.len())
    }
}

impl Srs {
    /// `secrets`: the first signs, all verify.
    pub fn new(domain: &str, secrets: Vec<Vec<u8>>, max_age_days: u64) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            secrets,
            max_age_days,
        }
    }

    /// Is `address` in our SRS domain (a candidate for [`Self::reverse`])?
    pub(crate) fn is_ours(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.trim_end_matches('.').eq_ignore_ascii_case(&self.domain))
    }

    /// The SRS form of `sender` (`local@domain`) at `now` (seconds since
    /// the epoch). Addresses already in our domain are left alone.
    pub fn forward(&self, sender: &str, now: u64) -> Result<String, SrsError> {
        let (local, domain) = sender.rsplit_once('@').ok_or(SrsError::Malformed)?;
        if domain.is_empty() || local.is_empty() {
            return Err(SrsError::Malformed);
        }
        if self.is_ours(sender) {
            return Ok(sender.to_string());
        }
        let key = self.secrets.first().ok_or(SrsError::NoSecret)?;
        let out = if let Some(rest) = strip_tag(local, "SRS0") {
            // Already SRS0 at `domain`: record the first hop, keep the rest.
            let opaque = format!("={rest}");
            let hash = hash(key, &[domain, &opaque])?;
            format!("SRS1={hash}={domain}={opaque}")
        } else if let Some(rest) = strip_tag(local, "SRS1") {
            // SRS1: keep its first hop and inner part, hash them anew.
            let (_, inner) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let (hop, opaque) = inner.split_once('=').ok_or(SrsError::Malformed)?;
            let hash = hash(key, &[hop, opaque])?;
            format!("SRS1={hash}={hop}={opaque}")
        } else {
            let ts = timestamp(now);
            let hash = hash(key, &[&ts, domain, local])?;
            format!("SRS0={hash}={ts}={domain}={local}")
        };
        Ok(format!("{out}@{}", self.domain))
    }

    /// The address an SRS address of ours stands for, after checking its
    /// hash (any secret) and, for SRS0, its age.
    pub fn reverse(&self, address: &str, now: u64) -> Result<Decoded, SrsError> {
        let (local, _) = address.rsplit_once('@').ok_or(SrsError::NotSrs)?;
        if !self.is_ours(address) {
            return Err(SrsError::NotSrs);
        }
        if let Some(rest) = strip_tag(local, "SRS0") {
            let mut parts = rest.splitn(4, '=');
            let (Some(h), Some(ts), Some(domain), Some(user)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SrsError::Malformed);
            };
            if user.is_empty() || domain.is_empty() {
                return Err(SrsError::Malformed);
            }
            self.verify(h, &[ts, domain, user])?;
            self.check_age(ts, now)?;
            return Ok(Decoded(format!("{user}@{domain}")));
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            let (h, inner) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let (hop, opaque) = inner.split_once('=').ok_or(SrsError::Malformed)?;
            if hop.is_empty() || !opaque.starts_with('=') {
                return Err(SrsError::Malformed);
            }
            self.verify(h, &[hop, opaque])?;
            return Ok(Decoded(format!("SRS0{opaque}@{hop}")));
        }
        Err(SrsError::NotSrs)
    }

    fn verify(&self, given: &str, parts: &[&str]) -> Result<(), SrsError> {
        if self.secrets.is_empty() {
            return Err(SrsError::NoSecret);
        }
        for key in &self.secrets {
            // Case-insensitive like libsrs2: some MTAs lower-case local parts.
            if hash(key, parts)?.eq_ignore_ascii_case(given) {
                return Ok(());
            }
        }
        Err(SrsError::BadHash)
    }

    fn check_age(&self, ts: &str, now: u64) -> Result<(), SrsError> {
        let then = decode_timestamp(ts).ok_or(SrsError::Malformed)?;
        let today = (now / DAY) % TIME_SLOTS;
        // Timestamps wrap every 1024 days; the age is taken mod 1024.
        let age = (today + TIME_SLOTS - then) % TIME_SLOTS;
        if age > self.max_age_days {
            return Err(SrsError::Expired);
        }
        Ok(())
    }
}

/// The address an SRS address of someone else's claims to stand for,
/// unverified (only its forwarder holds the secret): for the log line of a
/// forwarded message, never for a decision. SRS1 names the original inside
/// its opaque SRS0 part.
pub(crate) fn claimed_original(address: &str) -> Option<String> {
    let (local, _) = address.rsplit_once('@')?;
    let srs0 = match strip_tag(local, "SRS1") {
        // SRS1=HHH=hop==HHH=TT=domain=user: after the hop, the SRS0 part.
        Some(rest) => rest.split_once("==")?.1.split_once('=')?.1,
        None => strip_tag(local, "SRS0")?.split_once('=')?.1,
    };
    // TT=domain=user
    let mut parts = srs0.splitn(3, '=');
    let (_, domain, user) = (parts.next()?, parts.next()?, parts.next()?);
    (!domain.is_empty() && !user.is_empty()).then(|| format!("{user}@{domain}"))
}

/// The part after `SRS0=`/`SRS1=` (tag case-insensitive, `=`, `-` or `+`
/// as separator like libsrs2).
fn strip_tag<'a>(local: &'a str, tag: &str) -> Option<&'a str> {
    let head = local.get(..4)?;
    let sep = local.as_bytes().get(4)?;
    (head.eq_ignore_ascii_case(tag) && matches!(sep, b'=' | b'-' | b'+')).then(|| &local[5..])
}

/// The first [`HASH_LEN`] characters of base64(HMAC-SHA1(key, parts
/// lower-cased and concatenated)).
fn hash(key: &[u8], parts: &[&str]) -> Result<String, SrsError> {
    let mac = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let pkey = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha1(), &pkey)?;
        for p in parts {
            signer.update(p.to_ascii_lowercase().as_bytes())?;
        }
        signer.sign_to_vec()
    };
    let digest = mac().map_err(|_| SrsError::NoSecret)?;
    Ok(openssl::base64::encode_block(&digest)
        .chars()
        .take(HASH_LEN)
        .collect())
}

fn timestamp(now: u64) -> String {
    let days = (now / DAY) % TIME_SLOTS;
    let hi = BASE32[(days >> 5) as usize & 31] as char;
    let lo = BASE32[days as usize & 31] as char;
    format!("{hi}{lo}")
}

fn decode_timestamp(ts: &str) -> Option<u64> {
    let value = |c: u8| {
        BASE32
            .iter()
            .position(|b| *b == c.to_ascii_uppercase())
            .map(|p| p as u64)
    };
    match ts.as_bytes() {
        [hi, lo] => Some(value(*hi)? << 5 | value(*lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_000_000;

    fn srs() -> Srs {
        Srs::new(
            "fwd.test",
            vec![b"new secret".to_vec(), b"old secret".to_vec()],
            21,
        )
    }

    #[test]
    fn claimed_original_reads_srs0_and_srs1_without_a_secret() {
        let a = srs().forward("alice@sender.test", NOW).unwrap();
        assert_eq!(claimed_original(&a).as_deref(), Some("alice@sender.test"));
        let hop2 = Srs::new("list.test", vec![b"x".to_vec()], 21);
        let b = hop2.forward(&a, NOW).unwrap();
        assert!(b.starts_with("SRS1="), "{b}");
        assert_eq!(claimed_original(&b).as_deref(), Some("alice@sender.test"));
        assert_eq!(claimed_original("alice@sender.test"), None);
        assert_eq!(claimed_original("SRS0=x@fwd.test"), None);
    }

    #[test]
    fn srs0_round_trip() {
        let a = srs().forward("alice@sender.test", NOW).unwrap();
        assert!(a.starts_with("SRS0="), "{a}");
        assert!(a.ends_with("=sender.test=alice@fwd.test"), "{a}");
        assert_eq!(
            srs().reverse(&a, NOW).unwrap(),
            Decoded("alice@sender.test".into())
        );
        // Case changes by MTAs do not break it.
        let lower = a.to_ascii_lowercase();
        assert_eq!(
            srs().reverse(&lower, NOW).unwrap(),
            Decoded("alice@sender.test".into())
        );
    }

    #[test]
    fn expired_after_max_age() {
        let a = srs().forward("alice@sender.test", NOW).unwrap();
        assert!(srs().reverse(&a, NOW + 21 * DAY).is_ok());
        assert_eq!(srs().reverse(&a, NOW + 22 * DAY), Err(SrsError::Expired));
    }

    #[test]
    fn forged_hash_and_unknown_secret_fail() {
        let a = srs().forward("alice@sender.test", NOW).unwrap();
        let forged = a.replacen(&a[5..9], "AAAA", 1);
        assert_eq!(srs().reverse(&forged, NOW), Err(SrsError::BadHash));
        let retargeted = a.replace("=alice@", "=mallory@");
        assert_eq!(srs().reverse(&retargeted, NOW), Err(SrsError::BadHash));
        let other = Srs::new("fwd.test", vec![b"someone else".to_vec()], 21);
        assert_eq!(other.reverse(&a, NOW), Err(SrsError::BadHash));
    }

    #[test]
    fn old_secrets_verify_but_do_not_sign() {
        let old = Srs::new("fwd.test", vec![b"old secret".to_vec()], 21);
        let a = old.forward("alice@sender.test", NOW).unwrap();
        assert!(srs().reverse(&a, NOW).is_ok());
        assert_ne!(srs().forward("alice@sender.test", NOW).unwrap(), a);
    }

    #[test]
    fn srs1_records_the_first_hop_and_reverses_to_it() {
        let first = Srs::new("hop1.test", vec![b"hop1".to_vec()], 21);
        let srs0 = first.forward("alice@sender.test", NOW).unwrap();
        let srs1 = srs().forward(&srs0, NOW).unwrap();
        assert!(srs1.starts_with("SRS1="), "{srs1}");
        assert!(
            srs1.contains("=hop1.test==") && srs1.ends_with("@fwd.test"),
            "{srs1}"
        );
        assert_eq!(srs().reverse(&srs1, NOW).unwrap(), Decoded(srs0.clone()));
        // A third hop keeps the first hop and the opaque part.
        let third = Srs::new("hop3.test", vec![b"hop3".to_vec()], 21);
        let again = third.forward(&srs1, NOW).unwrap();
        assert_eq!(third.reverse(&again, NOW).unwrap(), Decoded(srs0));
    }

    #[test]
    fn not_srs_and_malformed() {
        assert_eq!(srs().reverse("bob@fwd.test", NOW), Err(SrsError::NotSrs));
        assert_eq!(
            srs().reverse("SRS0=x@other.test", NOW),
            Err(SrsError::NotSrs)
        );
        assert_eq!(
            srs().reverse("SRS0=abcd=AA@fwd.test", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(srs().forward("no-at-sign", NOW), Err(SrsError::Malformed));
    }

    #[test]
    fn timestamps_wrap_mod_1024_days() {
        assert_eq!(decode_timestamp(&timestamp(NOW)), Some((NOW / DAY) % 1024));
        assert_eq!(timestamp(0), "AA");
        assert_eq!(timestamp(1023 * DAY), "77");
    }
}
