//! Mailkey records: the TXT records at `mailkey.D`, in DKIM key-record syntax
//! (RFC 6376 §3.6.1). mail-auth parses the key itself but keeps the tags
//! private, so the tags the mailkey protocol acts on (`t=y`, `k=`, key size,
//! revocation) are read here first.
//!
//! The mailkey protocol's vocabulary (the selector, owner names, key
//! types), below all that speaks it: the config, the DNS cache, the checks,
//! the signer, guidance (ARCHITECTURE.md, "Module graph").

use mail_auth::{dkim::DomainKey, dns::TxtRecordParser};
use openssl::{pkey::PKey, rsa::Rsa};
use std::{collections::HashSet, sync::Arc};

/// The selector of every mailkey signature (`s=mailkey`).
pub const SELECTOR: &str = "mailkey";

/// Where the keys of `domain` are published: `mailkey.D`.
pub(crate) fn owner_name(domain: &str) -> String {
    format!("{SELECTOR}.{domain}")
}

/// Where ordinary DKIM verifiers look for the key of a mailkey signature:
/// `mailkey._domainkey.D`, best a CNAME to [`owner_name`].
pub(crate) fn dkim_name(domain: &str) -> String {
    format!("{SELECTOR}._domainkey.{domain}")
}

/// The most records tried per domain (rotation needs two; more is abuse).
pub const MAX_KEYS: usize = 4;
/// The longest key record read, in octets. An RSA-4096 record is about
/// 750 octets, RSA-8192 (the largest key verified) about 1,450: four times
/// that leaves room for any tags, and a record made to be expensive to
/// parse is refused unread (docs/decisions.md).
pub(crate) const MAX_RECORD_BYTES: usize = 4096;
/// The most octets of TXT records at `mailkey.D` read at all: four records
/// of the largest size. A larger answer is refused as a whole (which
/// records of it would count depends on the order DNS sends them in).
pub(crate) const MAX_ANSWER_BYTES: usize = MAX_KEYS * MAX_RECORD_BYTES;
/// The shortest RSA key accepted (RFC 8301 §3.2).
pub(crate) const MIN_RSA_BITS: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Rsa { bits: u32 },
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ed25519 => f.write_str("ed25519"),
            Self::Rsa { bits } => write!(f, "rsa-{bits}"),
        }
    }
}

/// One usable published key.
#[derive(Clone)]
pub struct MailkeyRecord {
    pub key: Arc<DomainKey>,
    pub key_type: KeyType,
    /// The decoded `p=`: the raw 32 bytes of an Ed25519 key, DER for RSA.
    pub public: Vec<u8>,
    /// `t=y`: the domain is testing; failures are reported, never rejected.
    pub testing: bool,
}

impl std::fmt::Debug for MailkeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MailkeyRecord({}, testing={})",
            self.key_type, self.testing
        )
    }
}

/// Why one record is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a DKIM key record")]
    NotAKey,
    #[error("key revoked (empty p=)")]
    Revoked,
    #[error("unsupported key type k={0}")]
    UnsupportedKeyType(String),
    #[error("RSA key of {0} bits is shorter than 1024")]
    RsaTooShort(u32),
    #[error("key does not parse: {0}")]
    Malformed(String),
    #[error("record of {0} octets is longer than {MAX_RECORD_BYTES}")]
    TooLong(usize),
    #[error("TXT records of {0} octets in all, more than {MAX_ANSWER_BYTES} are read")]
    AnswerTooLarge(usize),
}

/// Everything found at `mailkey.D`.
#[derive(Clone, Debug)]
pub enum KeyLookup {
    /// At least one key record (usable or not) is published.
    Published {
        keys: Vec<MailkeyRecord>,
        /// Reasons for the records that could not be used.
        errors: Vec<RecordError>,
        /// Any record says `t=y`.
        testing: bool,
        /// Every TXT record at the name, in the order received, with what
        /// it is (for `check-domain`, which reports record by record).
        records: Vec<PublishedRecord>,
    },
    /// NXDOMAIN, NODATA, or only TXT records that are not keys.
    NoKey,
    TempError(String),
}

/// One TXT record at `mailkey.D`, as published, and what it is.
#[derive(Clone, Debug)]
pub struct PublishedRecord {
    pub raw: Vec<u8>,
    pub parsed: Result<MailkeyRecord, RecordError>,
}

impl KeyLookup {
    /// The TXT records found at `mailkey.D` (an answer with records; the
    /// DNS layer makes the others: `Dns::key_records`), read as keys.
    pub fn from_records(records: Vec<Vec<u8>>) -> Self {
        let total: usize = records.iter().map(Vec::len).sum();
        if total > MAX_ANSWER_BYTES {
            // Not one is read; check-domain still lists them.
            let error = RecordError::AnswerTooLarge(total);
            let records = records
                .into_iter()
                .map(|raw| PublishedRecord {
                    raw,
                    parsed: Err(error.clone()),
                })
                .collect();
            return Self::Published {
                keys: Vec::new(),
                errors: vec![error],
                testing: false,
                records,
            };
        }
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        let mut testing = false;
        let mut published = Vec::with_capacity(records.len());
        for raw in records {
            if raw.len() > MAX_RECORD_BYTES {
                let parsed = Err(RecordError::TooLong(raw.len()));
                errors.push(RecordError::TooLong(raw.len()));
                published.push(PublishedRecord { raw, parsed });
                continue;
            }
            let tags = Tags::parse(&raw);
            testing |= tags.testing();
            let parsed = parse_record(&raw, &tags);
            match &parsed {
                Ok(k) if keys.len() < MAX_KEYS => keys.push(k.clone()),
                Ok(_) => {}
                Err(RecordError::NotAKey) => {}
                Err(e) => errors.push(e.clone()),
            }
            published.push(PublishedRecord { raw, parsed });
        }
        if keys.is_empty() && errors.is_empty() {
            Self::NoKey
        } else {
            Self::Published {
                keys,
                errors,
                testing,
                records: published,
            }
        }
    }
}

/// Parses one TXT record into a usable key.
pub fn parse_record(raw: &[u8], tags: &Tags) -> Result<MailkeyRecord, RecordError> {
    let Some(p) = tags.get("p") else {
        return Err(RecordError::NotAKey);
    };
    // RFC 6376 §3.2: a tag twice makes the record invalid. We check the
    // first `p=` and mail-auth would verify with the last: a second, short
    // key must not slip past the size rule.
    if let Some(tag) = tags.duplicate() {
        return Err(RecordError::Malformed(format!("tag {tag}= appears twice")));
    }
    if tags.get("v").is_some_and(|v| v != "DKIM1") {
        return Err(RecordError::NotAKey);
    }
    let p: String = p.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if p.is_empty() {
        return Err(RecordError::Revoked);
    }
    let der = openssl::base64::decode_block(&p)
        .map_err(|_| RecordError::Malformed("p= is not base64".into()))?;
    let key_type = match tags.get("k").unwrap_or("rsa").to_ascii_lowercase().as_str() {
        "ed25519" if der.len() == 32 => KeyType::Ed25519,
        "ed25519" => return Err(RecordError::Malformed("ed25519 key is not 32 bytes".into())),
        "rsa" => KeyType::Rsa {
            bits: rsa_bits(&der)?,
        },
        other => return Err(RecordError::UnsupportedKeyType(other.into())),
    };
    if let KeyType::Rsa { bits } = key_type {
        if bits < MIN_RSA_BITS {
            return Err(RecordError::RsaTooShort(bits));
        }
    }
    let key = DomainKey::parse(raw).map_err(|e| RecordError::Malformed(e.to_string()))?;
    Ok(MailkeyRecord {
        key: Arc::new(key),
        key_type,
        public: der,
        testing: tags.testing(),
    })
}

/// RSA keys are published as SubjectPublicKeyInfo, some as bare PKCS#1.
/// OpenSSL 3's key decoder costs more than the signature verification
/// (perf: 40% of the daemon's CPU with RSA keys when this ran for every
/// message, before the parsed lookup was cached), so the usual encodings
/// are read directly and only others go to OpenSSL.
fn rsa_bits(der: &[u8]) -> Result<u32, RecordError> {
    if let Some(bits) = der_rsa_bits(der) {
        return Ok(bits);
    }
    if let Ok(pkey) = PKey::public_key_from_der(der) {
        return Ok(pkey.bits());
    }
    Rsa::public_key_from_der_pkcs1(der)
        .map(|rsa| rsa.n().num_bits().max(0) as u32)
        .map_err(|_| RecordError::Malformed("p= is not an RSA public key".into()))
}

/// The modulus length of an RSA SubjectPublicKeyInfo (rsaEncryption) or
/// PKCS#1 RSAPublicKey in DER; `None` for anything else.
fn der_rsa_bits(der: &[u8]) -> Option<u32> {
    /// rsaEncryption (1.2.840.113549.1.1.1) as a DER OID.
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, outer, _) = der_tlv(der)? else {
        return None;
    };
    let modulus = match der_tlv(outer)? {
        // PKCS#1: SEQUENCE { INTEGER n, INTEGER e }.
        (0x02, n, rest) => {
            der_tlv(rest).filter(|(tag, ..)| *tag == 0x02)?;
            n
        }
        // SPKI: SEQUENCE { SEQUENCE { OID, NULL }, BIT STRING { RSAPublicKey } }.
        (0x30, algorithm, rest) => {
            let (0x06, oid, _) = der_tlv(algorithm)? else {
                return None;
            };
            let (0x03, [0, key @ ..], _) = der_tlv(rest)? else {
                return None;
            };
            if oid != RSA_OID {
                return None;
            }
            let (0x30, seq, _) = der_tlv(key)? else {
                return None;
            };
            let (0x02, n, rest) = der_tlv(seq)? else {
                return None;
            };
            der_tlv(rest).filter(|(tag, ..)| *tag == 0x02)?;
            n
        }
        _ => return None,
    };
    let start = modulus.iter().position(|&b| b != 0)?;
    let n = &modulus[start..];
    Some((n.len() as u32 - 1) * 8 + (8 - n[0].leading_zeros()))
}

/// One DER tag-length-value: (tag, value, what follows). Lengths up to
/// four octets; indefinite lengths are not DER.
fn der_tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (len, rest) = rest.split_at(octets);
        (
            len.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A DKIM tag-list (`tag=value; tag=value`), whitespace trimmed.
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        Self(
            text.split(';')
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A tag name that appears more than once (one pass: a record of
    /// thousands of distinct tags must not cost their square).
    fn duplicate(&self) -> Option<&str> {
        let mut seen = HashSet::with_capacity(self.0.len());
        self.0
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !seen.insert(*k))
    }

    fn testing(&self) -> bool {
        self.get("t")
            .is_some_and(|t| t.split(':').any(|f| f.trim().eq_ignore_ascii_case("y")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_tag_makes_the_record_malformed() {
        let raw = b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=; \
                    p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        let tags = Tags::parse(raw);
        assert!(matches!(
            parse_record(raw, &tags),
            Err(RecordError::Malformed(why)) if why == "tag p= appears twice"
        ));
        let single = b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        assert!(parse_record(single, &Tags::parse(single)).is_ok());
    }

    #[test]
    fn rsa_bits_read_directly_agree_with_openssl() {
        for bits in [1024, 1536, 2048] {
            let rsa = Rsa::generate(bits).expect("rsa");
            let spki = PKey::from_rsa(rsa.clone())
                .and_then(|k| k.public_key_to_der())
                .expect("spki");
            let pkcs1 = rsa.public_key_to_der_pkcs1().expect("pkcs1");
            assert_eq!(der_rsa_bits(&spki), Some(bits));
            assert_eq!(der_rsa_bits(&pkcs1), Some(bits));
            assert_eq!(rsa_bits(&spki), Ok(bits));
        }
        // Not RSA: left to OpenSSL, which says what is wrong.
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group"),
        )
        .and_then(PKey::from_ec_key)
        .and_then(|k| k.public_key_to_der())
        .expect("ec spki");
        assert_eq!(der_rsa_bits(&ec), None);
        assert_eq!(der_rsa_bits(&[0x30, 0x82, 0xff]), None);
    }

    const ED: &str = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    fn lookup(records: &[&str]) -> KeyLookup {
        KeyLookup::from_records(records.iter().map(|r| r.as_bytes().to_vec()).collect())
    }

    #[test]
    fn ed25519_record() {
        let KeyLookup::Published {
            keys,
            errors,
            testing,
            ..
        } = lookup(&[ED])
        else {
            panic!()
        };
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_type, KeyType::Ed25519);
        assert!(errors.is_empty() && !testing);
    }

    #[test]
    fn testing_flag_and_revoked_key() {
        let KeyLookup::Published {
            keys,
            errors,
            testing,
            ..
        } = lookup(&["v=DKIM1; k=ed25519; t=y; p=", ED])
        else {
            panic!()
        };
        assert!(testing);
        assert_eq!(keys.len(), 1);
        assert_eq!(errors, vec![RecordError::Revoked]);
    }

    #[test]
    fn not_keys_mean_no_key() {
        assert!(matches!(
            lookup(&["v=spf1 -all", "hello"]),
            KeyLookup::NoKey
        ));
    }

    #[test]
    fn broken_records_are_errors() {
        let KeyLookup::Published { keys, errors, .. } = lookup(&[
            "v=DKIM1; k=rsa; p=!!!",
            "v=DKIM1; k=dsa; p=AAAA",
            "k=ed25519; p=AAAA",
        ]) else {
            panic!()
        };
        assert!(keys.is_empty());
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[1], RecordError::UnsupportedKeyType("dsa".into()));
    }

    #[test]
    fn short_rsa_key_refused() {
        let rsa = Rsa::generate(512).unwrap();
        let der = PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap();
        let rec = format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&der));
        let KeyLookup::Published { errors, .. } = lookup(&[&rec]) else {
            panic!()
        };
        assert_eq!(errors, vec![RecordError::RsaTooShort(512)]);
    }

    #[test]
    fn records_beyond_the_size_caps_are_not_read() {
        let long = format!("v=DKIM1; n={}; {}", "x".repeat(MAX_RECORD_BYTES), &ED[9..]);
        let KeyLookup::Published { keys, errors, .. } = lookup(&[&long, ED]) else {
            panic!()
        };
        assert_eq!(keys.len(), 1, "the short record is still a key");
        assert_eq!(errors, vec![RecordError::TooLong(long.len())]);
        let records = vec![ED; MAX_ANSWER_BYTES / ED.len() + 1];
        let KeyLookup::Published {
            keys,
            errors,
            records,
            ..
        } = lookup(&records)
        else {
            panic!()
        };
        assert!(keys.is_empty());
        assert!(matches!(errors[..], [RecordError::AnswerTooLarge(_)]));
        assert_eq!(records.len(), MAX_ANSWER_BYTES / ED.len() + 1);
    }

    #[test]
    fn at_most_four_keys() {
        let KeyLookup::Published { keys, .. } = lookup(&[ED, ED, ED, ED, ED, ED]) else {
            panic!()
        };
        assert_eq!(keys.len(), MAX_KEYS);
    }
}
