//! The milter socket: TCP, or a unix socket created with the configured
//! permissions (a stale socket file from a previous run is replaced).

use crate::config::{Config, Listen};
use indymilter::EitherListener;
use std::task::{Context, Poll};
use std::{
    fs,
    future::Future,
    io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    pin::Pin,
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream, UnixListener},
    time::Sleep,
};
use tracing::{error, info};

pub type Listener = EitherListener<NoDelay, UnixListener>;

/// A listener that outlives failed accepts. indymilter stops serving at the
/// first error from `accept`; but running out of file descriptors (EMFILE,
/// ENFILE) or buffers passes, and a connection the client aborted before
/// it was accepted (ECONNABORTED) concerns that connection only. On those
/// it waits [`ACCEPT_RETRY`] and tries again (logging once per streak), so
/// that a flood of connections cannot end the daemon. [`crate::run`] wraps
/// every listener in it.
pub(crate) struct Resilient<L> {
    inner: L,
    pause: Option<Pin<Box<Sleep>>>,
    failing: bool,
}

/// How long to wait after a transient accept error.
pub(crate) const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl<L> Resilient<L> {
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            pause: None,
            failing: false,
        }
    }
}

impl<L: indymilter::Listener> indymilter::Listener for Resilient<L> {
    type Io = L::Io;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<L::Io>> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            match self.inner.poll_accept(cx) {
                Poll::Ready(Ok(io)) => {
                    if std::mem::take(&mut self.failing) {
                        info!("accepting milter connections again");
                    }
                    return Poll::Ready(Ok(io));
                }
                Poll::Ready(Err(e)) if transient(&e) => {
                    if !self.failing {
                        error!(
                            "cannot accept a milter connection: {e}; retrying every {} ms \
                             (raise LimitNOFILE if this is EMFILE)",
                            ACCEPT_RETRY.as_millis()
                        );
                        self.failing = true;
                    }
                    if e.kind() != io::ErrorKind::ConnectionAborted {
                        self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_RETRY)));
                    }
                }
                other => return other,
            }
        }
    }
}

/// Accept errors that pass: the listener itself is fine.
fn transient(e: &io::Error) -> bool {
    // Linux errno values of EMFILE, ENFILE, ENOBUFS, ENOMEM.
    const RESOURCES: [i32; 4] = [24, 23, 105, 12];
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::OutOfMemory
    ) || e.raw_os_error().is_some_and(|n| RESOURCES.contains(&n))
}

/// A TCP listener whose connections send small writes at once. A milter
/// conversation is many small request/reply pairs; with Nagle's algorithm
/// each reply can wait for the peer's delayed ACK (tens of milliseconds).
pub struct NoDelay(pub TcpListener);

impl indymilter::Listener for NoDelay {
    type Io = TcpStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        self.0.poll_accept(cx).map_ok(|(stream, _)| {
            // Best effort: a socket without the option still works.
            let _ = stream.set_nodelay(true);
            stream
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot listen on {listen}: {source}")]
    Bind { listen: String, source: io::Error },
    #[error("cannot set up socket {path}: {message}")]
    Setup { path: PathBuf, message: String },
}

pub async fn bind(config: &Config) -> Result<Listener, SocketError> {
    bind_to(&config.listen, config).await
}

/// Binds `listen` (the milter's, or the policy companion's) with the
/// configured unix socket permissions.
pub(crate) async fn bind_to(listen: &Listen, config: &Config) -> Result<Listener, SocketError> {
    let bind_err = |source| SocketError::Bind {
        listen: listen.to_string(),
        source,
    };
    match listen {
        Listen::Inet(addr) => {
            let listener = TcpListener::bind(addr.as_str()).await.map_err(bind_err)?;
            Ok(EitherListener::Tcp(NoDelay(listener)))
        }
        Listen::Unix(path) => {
            remove_stale(path)?;
            let listener = UnixListener::bind(path).map_err(bind_err)?;
            set_permissions(path, config)?;
            Ok(EitherListener::Unix(listener))
        }
    }
}

/// Removes the unix socket file at exit.
pub fn cleanup(config: &Config) {
    for listen in std::iter::once(&config.listen).chain(&config.policy.listen) {
        if let Listen::Unix(path) = listen {
            let _ = fs::remove_file(path);
        }
    }
}

fn remove_stale(path: &Path) -> Result<(), SocketError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path).map_err(|e| SocketError::Setup {
                path: path.into(),
                message: format!("cannot remove stale socket: {e}"),
            })
        }
        Ok(_) => Err(SocketError::Setup {
            path: path.into(),
            message: "a file that is not a socket is in the way".into(),
        }),
        Err(_) => Ok(()),
    }
}

fn set_permissions(path: &Path, config: &Config) -> Result<(), SocketError> {
    let err = |message: String| SocketError::Setup {
        path: path.into(),
        message,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(config.socket_mode.0))
        .map_err(|e| err(format!("cannot set mode {:04o}: {e}", config.socket_mode.0)))?;
    let (uid, gid) = owner_ids(config).map_err(|e| err(e.to_string()))?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| err(format!("cannot change owner: {e}")))?;
    }
    Ok(())
}

/// A `socket_owner` or `socket_group` that is not a user or group here.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct OwnerError {
    /// The configuration key.
    pub key: &'static str,
    what: &'static str,
    name: String,
}

/// The numeric user and group the unix socket is given (`socket_owner`,
/// `socket_group`), looked up at start (and by `check-config`) before any
/// socket exists.
pub(crate) fn owner_ids(config: &Config) -> Result<(Option<u32>, Option<u32>), OwnerError> {
    let id = |name: &Option<String>, file, key, what| match name {
        Some(name) => lookup_id(file, name).map(Some).ok_or_else(|| OwnerError {
            key,
            what,
            name: name.clone(),
        }),
        None => Ok(None),
    };
    Ok((
        id(&config.socket_owner, "/etc/passwd", "socket_owner", "user")?,
        id(&config.socket_group, "/etc/group", "socket_group", "group")?,
    ))
}

/// The numeric id of `name` in a passwd/group style file (or `name` itself
/// when numeric).
fn lookup_id(file: &str, name: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    let text = fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
}
