//! mailkey-milter: a milter for Postfix and Sendmail that checks whether the
//! envelope sender of each message is accountable — a mailkey signature,
//! strict SPF, a CA-signed peer certificate, a real MX — and tells every
//! rejected sender how to set up a mailkey.
//!
//! The binary is a thin layer over [`run`], so that the integration tests
//! start the very same daemon in-process.

// Lints: Cargo.toml's `[lints]` (no unwrap/expect outside tests).

pub mod ar_syntax;
pub(crate) mod arc_seal;
pub mod auth_results;
pub mod challenge;
pub mod check_domain;
pub mod checks;
pub mod config;
pub mod controls;
pub(crate) mod cpu;
pub mod dkim2;
pub mod dns;
pub mod dsn;
pub mod envelope;
pub(crate) mod exempt;
pub(crate) mod forwarding;
pub mod guidance;
pub(crate) mod key_overlay;
pub mod keygen;
pub mod logging;
pub mod metrics;
pub mod milter;
pub(crate) mod netmask;
pub(crate) mod policy;
pub mod protocol;
pub mod reply;
pub mod report;
pub(crate) mod rfc3339;
pub(crate) mod secrets;
pub mod sign;
pub mod socket;
pub mod spool;
pub mod srs;
pub mod state;
pub mod tls;
pub mod tokens;
pub mod transaction;
pub mod verdict;

/// Crate-private parsers of untrusted input, re-exported for the fuzz
/// targets in fuzz/ (a separate crate); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::milter::message::Message;
}

use config::Config;
use dns::Dns;
use std::{
    future::Future,
    io,
    sync::{Arc, RwLock},
};
use tls::Prober;
use tokio::sync::mpsc;
use tracing::{error, info};

/// The configuration and what is built from it — the resolver, the
/// certificate prober, the signing keys — replaced as a whole on reload.
pub struct Shared {
    pub config: Config,
    pub dns: Dns,
    /// The certificate prober, with its cache of probed hosts.
    pub probe: Arc<Prober>,
    /// Sender domains' servers (MX certificates, MTA-STS), with their cache.
    pub servers: Arc<tls::Servers>,
    /// What the Postfix policy companion recorded (kept across reloads).
    pub policy: Arc<policy::Store>,
    pub signers: sign::Signers,
    /// `[arc] seal`: the key that seals; `None` when sealing is off.
    pub sealer: Option<arc_seal::Sealer>,
    /// `[srs]`, with its secrets; `None` when SRS is off.
    pub srs: Option<srs::Srs>,
    /// `[exempt]` with its file, read when the configuration is loaded.
    pub exempt: exempt::Exemptions,
    /// Tokens and challenges with their store; `None` when both are off.
    pub controls: Option<Arc<controls::Controls>>,
    /// DKIM2 signers and the forwarding host's door-verified messages.
    pub dkim2: dkim2::State,
}

/// Why a configuration cannot be put to work.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Dns(#[from] dns::ResolverSetupError),
    #[error(transparent)]
    Tls(#[from] tls::TrustStoreError),
    #[error(transparent)]
    Signing(#[from] sign::SignError),
    #[error(transparent)]
    Seal(#[from] arc_seal::SealKeyError),
    #[error(transparent)]
    Srs(#[from] srs::SrsLoadError),
    #[error(transparent)]
    Exempt(#[from] exempt::ExemptError),
    #[error(transparent)]
    Socket(#[from] socket::OwnerError),
    #[error(transparent)]
    Controls(#[from] controls::ControlsError),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
}

impl SetupError {
    /// The configuration key whose value could not be put to work, and
    /// what it allows; `None` when no key is to blame.
    pub fn key(&self) -> Option<(&'static str, &'static str)> {
        use tls::TrustStoreError as T;
        Some(match self {
            Self::Dns(_) | Self::Tls(T::OpenSsl(_)) => return None,
            Self::Tls(T::Read { .. } | T::NoCertificates { .. }) => {
                ("tls.ca_file", "a readable PEM file of CA certificates")
            }
            Self::Tls(T::ReadCrl { .. } | T::BadCrl { .. }) => {
                ("tls.crl_files", "readable PEM CRL files")
            }
            Self::Signing(_) => (
                "signing.domains",
                "a domain name and a readable PEM private key (Ed25519, or RSA of at least \
                 2048 bits) per entry",
            ),
            Self::Seal(_) => (
                "arc.key_file",
                "a readable PEM private key, RSA of 2048 to 4096 bits (ARC verifiers such as \
                 dkimpy, Microsoft and Gmail accept rsa-sha256 seals only; `mailkey-milter \
                 keygen --arc` makes one)",
            ),
            Self::Srs(_) => (
                "srs.secret_file",
                "a readable file with at least one secret line (blank lines and # comments \
                 do not count)",
            ),
            Self::Exempt(_) => (
                "exempt.file",
                "a readable file of at most 1 MiB, one domain or network per line",
            ),
            Self::Socket(e) => (e.key, "a user or group name of this host, or a number"),
            Self::Controls(e) => e.key(),
            Self::Spool(_) => (
                "limits.spool_dir",
                "an absolute path to a directory where the daemon can create files",
            ),
        })
    }
}

impl Shared {
    pub fn new(config: Config) -> Result<Self, SetupError> {
        let dns = Dns::new(&config.dns)?;
        let probe = Arc::new(Prober::new(&config.tls, &config.authserv_id)?);
        let servers = Arc::new(tls::Servers::new(&config.tls, &config.authserv_id)?);
        let signers = sign::Signers::load(&config.signing)?;
        let sealer = arc_seal::Sealer::load(&config.arc)?;
        let srs = srs::load(&config.srs)?;
        let exempt = exempt::Exemptions::load(&config.exempt)?;
        let controls = controls::Controls::load(&config, None)?;
        let dkim2 = dkim2::State::load(&config)?;
        spool::check_dir(&config.limits.spool_dir)?;
        Ok(Self {
            config,
            dns,
            probe,
            servers,
            policy: Arc::default(),
            signers,
            sealer,
            srs,
            exempt,
            controls,
            dkim2,
        })
    }
}

/// Everything the daemon's start does with a configuration before it binds
/// its socket: [`Shared::new`] (resolver, trust store, signing keys, SRS
/// secrets, exemption file) and the socket's owner and group looked up.
/// `check-config` runs exactly this, so it refuses what the start would.
/// For a configuration read from `file`, an error names the file, the line
/// and the key, and what the key allows.
pub fn setup(
    config: Config,
    file: Option<&std::path::Path>,
) -> Result<Shared, Box<dyn std::error::Error + Send + Sync>> {
    let checked = socket::owner_ids(&config)
        .map_err(SetupError::from)
        .and_then(|_| Shared::new(config));
    checked.map_err(|e| match (file, e.key()) {
        (Some(path), Some((key, allowed))) => {
            config::ConfigError::at_key(path, key, format!("{e}: allowed is {allowed}")).into()
        }
        _ => e.into(),
    })
}

/// The current [`Shared`], swapped atomically by a reload; each milter
/// connection takes a snapshot when it starts.
#[derive(Clone)]
pub struct SharedHandle(Arc<RwLock<Arc<Shared>>>);

impl SharedHandle {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(shared))))
    }

    pub fn current(&self) -> Arc<Shared> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies a reload, logging what happened.
    pub fn reload(&self, reload: Reload) {
        let config = match reload {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, keeping the running configuration: {e}");
                return;
            }
        };
        let old = self.current();
        if config.listen != old.config.listen
            || config.log_format != old.config.log_format
            || config.limits.max_connections != old.config.limits.max_connections
            || config.challenge.listen != old.config.challenge.listen
        {
            info!(
                "reload: changes to listen, log_format, limits.max_connections and \
                 challenge.listen take effect only after a restart"
            );
        }
        match self.replace(config) {
            Ok(()) => info!("configuration reloaded"),
            Err(e) => error!("reload refused, keeping the running configuration: {e}"),
        }
    }

    /// Installs a new configuration. The resolver and the prober keep their
    /// caches when their settings did not change (and the probe slots
    /// always); the signing keys are read
    /// again (a key file may have changed under the same name), and so is
    /// the exemption file. Any error
    /// leaves the running configuration in place.
    pub fn replace(&self, config: Config) -> Result<(), SetupError> {
        let signers = sign::Signers::load(&config.signing)?;
        let sealer = arc_seal::Sealer::load(&config.arc)?;
        let srs = srs::load(&config.srs)?;
        let exempt = exempt::Exemptions::load(&config.exempt)?;
        spool::check_dir(&config.limits.spool_dir)?;
        let old = self.current();
        let controls =
            controls::Controls::load(&config, old.controls.as_deref().map(|c| (c, &old.config)))?;
        let mut dkim2 = dkim2::State::load(&config)?;
        // The door-verified messages wait for their second pass.
        if old.config.dkim2 == config.dkim2 {
            dkim2.custody = old.dkim2.custody.clone();
        }
        let dns = if old.config.dns == config.dns {
            old.dns.clone()
        } else {
            Dns::new(&config.dns)?
        };
        // A changed trust store (or CRL list) must take effect: rebuilt,
        // with the same probe slots (the old prober still probes for the
        // connections opened before: the budget is one).
        let probe = if old.config.tls == config.tls && old.config.authserv_id == config.authserv_id
        {
            old.probe.clone()
        } else {
            let slots = old.probe.slots().clone();
            Arc::new(Prober::with_slots(&config.tls, &config.authserv_id, slots)?)
        };
        let servers =
            if old.config.tls == config.tls && old.config.authserv_id == config.authserv_id {
                old.servers.clone()
            } else {
                Arc::new(tls::Servers::new(&config.tls, &config.authserv_id)?)
            };
        let new = Arc::new(Shared {
            config,
            dns,
            probe,
            servers,
            policy: old.policy.clone(),
            signers,
            sealer,
            srs,
            exempt,
            controls,
            dkim2,
        });
        match self.0.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }
}

/// Appends `input` with every bare LF turned into CRLF: milters receive
/// folded header values with LF, and files on disk use LF, but signatures
/// are computed over the CRLF form that travels in SMTP.
pub fn push_crlf(out: &mut Vec<u8>, input: &[u8]) {
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

/// A configuration read again on request (SIGHUP), or why it could not be.
pub type Reload = Result<Config, Box<dyn std::error::Error + Send + Sync>>;

/// Serves milter connections on `listener` until `shutdown` completes.
/// Each item from `reloads` replaces the running configuration, unless it
/// is an error or cannot be set up: then the running one stays, and the
/// log says why.
pub async fn run(
    listener: impl indymilter::Listener,
    shared: SharedHandle,
    mut reloads: mpsc::Receiver<Reload>,
    shutdown: impl Future,
) -> io::Result<()> {
    // The policy companion (off by default) shares the process, not the
    // configuration snapshot: its socket is bound at start only.
    let current = shared.current();
    let companion = policy::start(&current.config, current.policy.clone())
        .await
        .map_err(io::Error::other)?;
    drop(current);
    let reloader = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(reload) = reloads.recv().await {
                shared.reload(reload);
            }
        })
    };
    // Connections beyond the limit wait in the listen backlog (and the
    // MTA's milter timeouts apply) instead of costing memory here.
    let config = indymilter::Config {
        max_connections: shared.current().config.limits.max_connections,
        ..Default::default()
    };
    let callbacks = milter::callbacks(shared);
    let listener = socket::Resilient::new(listener);
    let result = indymilter::run(listener, callbacks, config, shutdown).await;
    reloader.abort();
    if let Some(companion) = companion {
        companion.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn bare_lf_becomes_crlf() {
        let mut out = Vec::new();
        super::push_crlf(&mut out, b" a\n\tb\r\n\tc\n");
        assert_eq!(out, b" a\r\n\tb\r\n\tc\r\n");
    }
}
