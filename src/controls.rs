//! The recipients' controls put to work (`[state]`, `[tokens]`,
//! `[challenge]`): the store and the keys, built with the configuration
//! and replaced with it on reload (the store is kept when `[state]` did
//! not change). `None` in [`crate::Shared`] when tokens and challenges are
//! both off: then no store is opened and nothing here runs.

use crate::{
    challenge::Challenges,
    config::Config,
    secrets::SecretError,
    state::{self, StateError, Store},
    tokens::Tokens,
};
use std::sync::Arc;

/// What the recipients' controls did to one message, for its log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Note {
    /// The token the message was addressed to (its ID).
    pub token: Option<String>,
    /// Why that token did not let it through.
    pub token_refused: Option<&'static str>,
    /// `offered` (the refusal carried a challenge URL) or `passed` (let
    /// through by a solved challenge).
    pub challenge: Option<&'static str>,
}

pub struct Controls {
    pub store: Arc<dyn Store>,
    pub tokens: Option<Tokens>,
    pub challenges: Option<Challenges>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("[state]: {0}")]
    State(#[from] StateError),
}

impl ControlsError {
    /// The configuration key to blame, and what it allows
    /// ([`crate::SetupError::key`]).
    pub fn key(&self) -> (&'static str, &'static str) {
        const SECRET: &str = "a readable file with at least one secret line of at least 16 \
                              characters (blank lines and # comments do not count)";
        match self {
            Self::Secret(e) if e.what() == "challenge" => ("challenge.secret_file", SECRET),
            Self::Secret(_) => ("tokens.secret_file", SECRET),
            Self::State(_) => (
                "state.path",
                "a file the daemon may create and write in an existing directory \
                 (or state.url, a Redis URL)",
            ),
        }
    }
}

impl Controls {
    /// Builds them from `config`, reusing `old`'s store when `[state]` is
    /// the same (`old_config` is the configuration `old` was built from).
    pub fn load(
        config: &Config,
        old: Option<(&Controls, &Config)>,
    ) -> Result<Option<Arc<Self>>, ControlsError> {
        let tokens = Tokens::load(&config.tokens)?;
        let challenges = Challenges::load(&config.challenge)?;
        if tokens.is_none() && challenges.is_none() {
            return Ok(None);
        }
        let store = match old {
            Some((controls, old_config)) if old_config.state == config.state => {
                controls.store.clone()
            }
            _ => state::open(&config.state)?,
        };
        Ok(Some(Arc::new(Self {
            store,
            tokens,
            challenges,
        })))
    }
}

/// Removes expired state now and every hour (the embedded file; Redis
/// expires its keys by itself). A failure is logged and tried again.
pub async fn purge_every_hour(shared: crate::SharedHandle) {
    loop {
        if let Some(controls) = shared.current().controls.clone() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Err(e) = controls.store.purge(now).await {
                tracing::warn!("cannot remove expired state: {e}");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
