//! CPU-bound work of a check (hashing a body, checking signatures, an ARC
//! validation) off the async workers, on data it borrows: no copy, no
//! `'static` buffer for `spawn_blocking`. docs/decisions.md "Resource
//! bounds".

use std::{future::Future, pin::Pin};
use tokio::{
    runtime::{Handle, RuntimeFlavor},
    task::JoinError,
};

/// A message up to this size (the milter keeps it in memory,
/// `spool::MEMORY_MAX`) is copied for verification (mailkey, DKIM2) into a
/// task of the blocking pool: microseconds, and bounded. A larger one (a
/// spool file's map) is verified in place, on the worker thread handed over
/// to the blocking side ([`off_the_workers`]), which costs more per message
/// (about 40 µs of CPU, and a thread's memory) but copies nothing.
/// docs/decisions.md, "Resource bounds".
pub(crate) const COPY_BYTES: usize = crate::spool::MEMORY_MAX;

/// The CPU work [`on_message`] runs: a future over the message's bytes.
pub(crate) type Work<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs CPU-bound `work` on `message` off the async workers (mailkey and
/// DKIM2 verification): a message of at most [`COPY_BYTES`] is copied into
/// a task of the blocking pool, which costs less than handing over the
/// async worker; a larger one (a spool file's map) is worked on in place
/// ([`off_the_workers`]), never copied (#21 item 8). `Err` when the
/// blocking task failed (a panic in the work).
pub(crate) async fn on_message<T, W>(message: &[u8], work: W) -> Result<T, JoinError>
where
    T: Send + 'static,
    W: for<'a> FnOnce(&'a [u8]) -> Work<'a, T> + Send + 'static,
{
    if message.len() > COPY_BYTES {
        return Ok(off_the_workers(work(message)).await);
    }
    let copy = message.to_vec();
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work(&copy))).await
}

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
