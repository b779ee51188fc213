//! CPU-bound work of a check (hashing a body, checking signatures, an ARC
//! validation) off the async workers, on data it borrows: no copy, no
//! `'static` buffer for `spawn_blocking`. docs/decisions.md "Resource
//! bounds".

use std::future::Future;
use tokio::runtime::{Handle, RuntimeFlavor};

/// A message up to this size (the milter keeps it in memory,
/// `spool::MEMORY_MAX`) is copied for verification (mailkey, DKIM2) into a
/// task of the blocking pool: microseconds, and bounded. A larger one (a
/// spool file's map) is verified in place, on the worker thread handed over
/// to the blocking side ([`off_the_workers`]), which costs more per message
/// (about 40 µs of CPU, and a thread's memory) but copies nothing.
/// docs/decisions.md, "Resource bounds".
pub(crate) const COPY_BYTES: usize = crate::spool::MEMORY_MAX;

/// Verification stopped at its deadline: the check did not finish in time.
#[derive(Debug)]
pub struct Stopped;

/// Runs CPU-bound `work` (it never waits on I/O: its keys are at hand) on a
/// thread that is not an async worker: `block_in_place` hands this
/// worker's other tasks to a new one for as long as it runs, and `work` may
/// borrow (the message is not copied). A current-thread runtime (tools,
/// tests) has no other worker: there it runs in place.
pub(crate) async fn off_the_workers<T>(work: impl Future<Output = T>) -> T {
    match Handle::current().runtime_flavor() {
        RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| Handle::current().block_on(work))
        }
        _ => work.await,
    }
}
