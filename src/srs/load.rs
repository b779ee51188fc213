//! The `[srs]` table put to work: the secrets read from `secret_file` (one
//! per line, blank lines and `#` comments skipped; the first signs).

use super::Srs;
use crate::{config::SrsConfig, secrets};

pub(crate) use crate::secrets::SecretError as SrsLoadError;

/// `None` when `[srs] domain` is not set. Any secret length is taken, as
/// postsrsd's setups have them.
pub fn load(config: &SrsConfig) -> Result<Option<Srs>, SrsLoadError> {
    let (Some(domain), Some(path)) = (&config.domain, &config.secret_file) else {
        return Ok(None);
    };
    let secrets = secrets::read(path, "SRS", 1)?;
    Ok(Some(Srs::new(domain, secrets, config.max_age_days)))
}
