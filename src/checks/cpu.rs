//! CPU-bound work of a check (hashing a body, checking signatures, an ARC
//! validation) off the async workers, on data it borrows: no copy, no
//! `'static` buffer for `spawn_blocking`. docs/decisions.md "Resource
//! bounds".

use std::future::Future;
use tokio::runtime::{Handle, RuntimeFlavor};

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
