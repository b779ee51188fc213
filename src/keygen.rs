//! `keygen`: a new signing key for a domain, and exactly what to publish
//! and configure for it.

use crate::{
    protocol::{dkim_name, owner_name},
    sign::{normalise_domain, DomainKey},
};
use openssl::pkey::{PKey, Private};
use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// The RSA key sizes keygen makes: RFC 8301 asks signers for at least 2048
/// bits; above 4096 the record no longer fits comfortably in one UDP answer.
pub(crate) const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;
/// TTL of the records printed (one hour: quick to correct a mistake).
const TTL: u32 = 3600;
/// The longest character-string of a TXT record (RFC 1035 §3.3).
const TXT_STRING_MAX: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

/// What keygen was asked for.
pub struct Request {
    pub domain: String,
    /// An ARC sealing key (`[arc] key_file`, RSA only) instead of a mailkey.
    pub arc: bool,
    pub algorithm: Algorithm,
    pub bits: Option<u32>,
    pub out: PathBuf,
    pub testing: bool,
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0:?} is not a domain name")]
    BadDomain(String),
    #[error("--bits applies to RSA keys only")]
    BitsForEd25519,
    #[error("--bits {0}: allowed are 2048 to 4096")]
    BadBits(u32),
    #[error("--arc makes RSA keys only: ARC verifiers (dkimpy, Microsoft, Gmail) refuse ed25519-sha256 seals")]
    ArcNotRsa,
    #[error("--testing applies to mailkeys only (ARC key records have no t=y)")]
    TestingForArc,
    #[error("{0}: the key file exists; keep it, or pass --force to replace it (the old key stops working once its record is gone)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key generation failed: {0}")]
    Crypto(String),
}

/// The key written and the records that publish it.
pub struct Generated {
    pub key_file: PathBuf,
    pub domain: String,
    /// An ARC sealing key.
    pub arc: bool,
    /// The TXT record value (`v=DKIM1; k=…; p=…`), unsplit.
    pub record: String,
}

pub fn run(req: &Request) -> Result<Generated, KeygenError> {
    let domain =
        normalise_domain(&req.domain).map_err(|_| KeygenError::BadDomain(req.domain.clone()))?;
    if req.arc && req.algorithm != Algorithm::Rsa {
        return Err(KeygenError::ArcNotRsa);
    }
    if req.arc && req.testing {
        return Err(KeygenError::TestingForArc);
    }
    let pkey = generate(req)?;
    // Check the new key the way the daemon will load it.
    let key = DomainKey::from_pkey(&domain, Path::new("-"), &pkey).map_err(KeygenError::Crypto)?;
    let pem = pkey
        .private_key_to_pem_pkcs8()
        .map_err(|e| KeygenError::Crypto(e.to_string()))?;
    let kind = if req.arc {
        "arc"
    } else {
        req.algorithm.as_str()
    };
    let key_file = req.out.join(format!("{domain}.{kind}.pem"));
    write_private(&req.out, &key_file, &pem, req.force)?;
    // The configuration snippet needs a path that works from anywhere.
    let key_file = fs::canonicalize(&key_file).unwrap_or(key_file);
    let mut record = format!("v=DKIM1; k={}; ", req.algorithm.as_str());
    if req.testing {
        record.push_str("t=y; ");
    }
    record.push_str("p=");
    record.push_str(&openssl::base64::encode_block(&key.public));
    Ok(Generated {
        key_file,
        domain,
        arc: req.arc,
        record,
    })
}

fn generate(req: &Request) -> Result<PKey<Private>, KeygenError> {
    let crypto = |e: openssl::error::ErrorStack| KeygenError::Crypto(e.to_string());
    match (req.algorithm, req.bits) {
        (Algorithm::Ed25519, Some(_)) => Err(KeygenError::BitsForEd25519),
        (Algorithm::Ed25519, None) => PKey::generate_ed25519().map_err(crypto),
        (Algorithm::Rsa, bits) => {
            let bits = bits.unwrap_or(*RSA_BITS.start());
            if !RSA_BITS.contains(&bits) {
                return Err(KeygenError::BadBits(bits));
            }
            let rsa = openssl::rsa::Rsa::generate(bits).map_err(crypto)?;
            PKey::from_rsa(rsa).map_err(crypto)
        }
    }
}

/// Writes the key readable by its owner only; an existing file is replaced
/// only with `force`.
fn write_private(dir: &Path, path: &Path, pem: &[u8], force: bool) -> Result<(), KeygenError> {
    let io = |source| KeygenError::Io {
        path: path.into(),
        source,
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeygenError::Io {
                path: dir.into(),
                source,
            })?;
    }
    if path.exists() || path.is_symlink() {
        if !force {
            return Err(KeygenError::Exists(path.into()));
        }
        fs::remove_file(path).map_err(io)?;
    }
    // create_new: never write through a symlink or into a file someone
    // else just created.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(pem).map_err(io)?;
    file.sync_all().map_err(io)
}

/// `value` as the character-strings of one TXT record, each at most 255
/// octets, in zone-file syntax.
pub fn txt_strings(value: &str) -> Vec<String> {
    value
        .as_bytes()
        .chunks(TXT_STRING_MAX)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect()
}

/// The instructions keygen prints: the records in zone-file syntax and the
/// configuration snippet.
pub fn instructions(g: &Generated) -> String {
    let d = &g.domain;
    let (owner, alias) = (owner_name(d), dkim_name(d));
    let key_file = g.key_file.display();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Wrote the private key to {key_file} (mode 0600; keep it secret)."
    );
    let _ = writeln!(out);
    if g.arc {
        arc_instructions(&mut out, g);
        return out;
    }
    let txt = txt_record(&owner, &g.record);
    let _ = writeln!(out, "1. Publish the mailkey record in the DNS zone of {d}:");
    let _ = writeln!(out);
    let _ = writeln!(out, "{txt}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "2. Optional: let ordinary DKIM verifiers check the same signatures:"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{alias}. {TTL} IN CNAME {owner}.");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "3. Sign outgoing mail: add to /etc/mailkey-milter.toml, then reload\n   \
         (systemctl reload mailkey-milter):"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "[[signing.domains]]");
    let _ = writeln!(out, "domain = \"{d}\"");
    let _ = writeln!(out, "key_file = \"{key_file}\"");
    let _ = writeln!(out);
    let _ = writeln!(out, "4. Check the published records:");
    let _ = writeln!(out);
    let _ = writeln!(out, "mailkey-milter check-domain {d} --key {key_file}");
    out
}

/// The record and the `[arc]` snippet of an ARC sealing key (selector
/// `arc`, `[arc] selector`'s default).
fn arc_instructions(out: &mut String, g: &Generated) {
    let d = &g.domain;
    let owner = format!("arc._domainkey.{d}");
    let _ = writeln!(out, "1. Publish the ARC key record in the DNS zone of {d}:");
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", txt_record(&owner, &g.record));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "2. Seal the mail you check and pass on: add to /etc/mailkey-milter.toml,\n   \
         then reload (systemctl reload mailkey-milter):"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "[arc]");
    let _ = writeln!(out, "seal = true");
    let _ = writeln!(out, "seal_domain = \"{d}\"");
    let _ = writeln!(out, "key_file = \"{}\"", g.key_file.display());
}

/// `owner`'s TXT record in zone-file syntax, split into strings.
fn txt_record(owner: &str, record: &str) -> String {
    let strings = txt_strings(record);
    if strings.len() == 1 {
        format!("{owner}. {TTL} IN TXT {}", strings[0])
    } else {
        format!("{owner}. {TTL} IN TXT (\n    {} )", strings.join("\n    "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_split_into_255_octet_strings() {
        let value = "x".repeat(600);
        let s = txt_strings(&value);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].len(), 257);
        assert_eq!(s[2].len(), 92);
    }
}
