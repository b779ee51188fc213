//! CPU-bound work of a check (hashing a body, checking signatures) off the
//! async workers, on the message as it is borrowed: no copy, no `'static`
//! buffer for `spawn_blocking`. docs/decisions.md "Resource bounds".

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` where it may block: through `block_in_place` on the
/// daemon's multi-threaded runtime (the worker's other tasks move to
/// another thread meanwhile), inline on a current-thread runtime (tests,
/// one-shot commands) or outside any runtime.
pub fn cpu_bound<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
