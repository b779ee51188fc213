//! The `[srs]` table put to work: the secrets read from `secret_file` (one
//! per line, blank lines and `#` comments skipped; the first signs).

use super::Srs;
use crate::config::SrsConfig;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SrsLoadError {
    #[error("{path}: cannot read the SRS secret file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: the SRS secret file holds no secret")]
    Empty(PathBuf),
}

/// `None` when `[srs] domain` is not set.
pub fn load(config: &SrsConfig) -> Result<Option<Srs>, SrsLoadError> {
    let (Some(domain), Some(path)) = (&config.domain, &config.secret_file) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| SrsLoadError::Read {
        path: path.clone(),
        source,
    })?;
    let secrets: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if secrets.is_empty() {
        return Err(SrsLoadError::Empty(path.clone()));
    }
    Ok(Some(Srs::new(domain, secrets, config.max_age_days)))
}
