//! Secret files: one secret per line, blank lines and `#` comments
//! skipped; the first signs, all verify (rotation). `[srs]`, `[tokens]` and
//! `[challenge]` read theirs this way.

use std::path::{Path, PathBuf};

/// A secret shorter than this is refused: HMAC keys that can be guessed
/// make every tag and URL forgeable.
pub(crate) const MIN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: cannot read the {what} secret file: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the {what} secret file holds no secret")]
    Empty { what: &'static str, path: PathBuf },
    #[error("{path}, line {line}: a {what} secret must have at least {MIN_LEN} characters")]
    Short {
        what: &'static str,
        path: PathBuf,
        line: usize,
    },
}

impl SecretError {
    /// What the file is for (`SRS`, `token`, `challenge`).
    pub fn what(&self) -> &'static str {
        match self {
            Self::Read { what, .. } | Self::Empty { what, .. } | Self::Short { what, .. } => what,
        }
    }
}

/// The secrets of `path`, first (signing) first. `what` names the file's
/// use in errors; `min_len` is [`MIN_LEN`] for new uses (SRS keeps
/// accepting the shorter secrets postsrsd setups have).
pub fn read(path: &Path, what: &'static str, min_len: usize) -> Result<Vec<Vec<u8>>, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        what,
        path: path.into(),
        source,
    })?;
    let mut secrets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() < min_len {
            return Err(SecretError::Short {
                what,
                path: path.into(),
                line: n + 1,
            });
        }
        secrets.push(line.as_bytes().to_vec());
    }
    if secrets.is_empty() {
        return Err(SecretError::Empty {
            what,
            path: path.into(),
        });
    }
    Ok(secrets)
}

/// HMAC-SHA256 of `parts`, each length-prefixed (so that `("ab", "c")` and
/// `("a", "bc")` differ), under `key`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let pkey = PKey::hmac(key).ok()?;
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).ok()?;
    for p in parts {
        let len = u32::try_from(p.len()).ok()?;
        signer.update(&len.to_be_bytes()).ok()?;
        signer.update(p).ok()?;
    }
    signer.sign_to_vec().ok()
}

/// Compares two MACs in constant time.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_short_secrets() {
        let dir = std::env::temp_dir().join(format!("mk-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(
            &path,
            "# rotation\n\nnew-secret-0123456789\nold-secret-0123456789\n",
        )
        .unwrap();
        let s = read(&path, "token", MIN_LEN).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], b"new-secret-0123456789");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            read(&path, "token", MIN_LEN),
            Err(SecretError::Short { line: 1, .. })
        ));
        std::fs::write(&path, "# none\n").unwrap();
        assert!(matches!(
            read(&path, "token", MIN_LEN),
            Err(SecretError::Empty { .. })
        ));
        assert!(hmac(b"k", &[b"ab", b"c"]) != hmac(b"k", &[b"a", b"bc"]));
        let _ = std::fs::remove_dir_all(dir);
    }
}
