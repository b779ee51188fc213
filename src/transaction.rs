//! One transaction's checks, from MAIL FROM to the verdict: every
//! registered check starts as soon as the sender is known
//! ([`Pending::start`]) and runs while the MTA streams the message;
//! [`Pending::finish`] waits for them, gives the message to the checks that
//! read it, and decides.

use crate::{
    checks::{CheckName, CheckResult, Code, Effect, Inputs, Stage, Status, CHECKS},
    config::OnError,
    envelope::{Envelope, SenderDomain},
    forwarding, metrics,
    verdict::{self, Verdict},
    Shared,
};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::task::JoinHandle;

/// Checks under way for one transaction. Dropping it (RSET, abort, a
/// closed connection) cancels what is still running.
pub struct Pending {
    inputs: Arc<Inputs>,
    tasks: Vec<(CheckName, JoinHandle<Stage>)>,
}

/// Everything decided about one message.
#[derive(Debug)]
pub struct Evaluation {
    pub sender: SenderDomain,
    pub results: Vec<CheckResult>,
    pub verdict: Verdict,
}

impl Pending {
    /// Starts every check for `envelope` at once (call at MAIL FROM): the
    /// end of message then waits for the slowest, not for the sum.
    pub fn start(shared: &Arc<Shared>, envelope: Envelope) -> Self {
        let inputs = Arc::new(Inputs {
            shared: shared.clone(),
            envelope,
        });
        let tasks = CHECKS
            .iter()
            .map(|check| {
                let work = (check.start)(inputs.clone());
                (check.name, tokio::spawn(timed(check.name, work)))
            })
            .collect();
        Self { inputs, tasks }
    }

    /// Waits for the checks, runs those that read `message`, and decides.
    pub async fn finish(mut self, message: &[u8]) -> Evaluation {
        let on_error = self.inputs.shared.config.on_error;
        let mut results = Vec::with_capacity(self.tasks.len());
        for (check, task) in std::mem::take(&mut self.tasks) {
            let result = match task.await {
                Ok(Stage::Done(result)) => result,
                Ok(Stage::NeedsMessage(step)) => step.finish(&self.inputs, message, now()).await,
                Err(e) => internal_error(check, &e.to_string(), on_error),
            };
            results.push(result);
        }
        let sender = self.inputs.envelope.sender_domain();
        let trusted = &self.inputs.shared.config.forwarding.trusted_arc_sealers;
        forwarding::apply(&mut results, trusted, sender.name(), message);
        let verdict = verdict::decide(&results, &self.inputs.shared.config, sender.name());
        Evaluation {
            sender,
            results,
            verdict,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// Runs `work`, recording in the metrics how long it took.
async fn timed<T>(check: CheckName, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    metrics::observe_latency(check, started.elapsed());
    out
}

/// Seconds since the epoch, for signature expiry (`x=`).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The result reported for a check that could not run because the milter
/// itself failed (a bug, a panic): never a pass, and what it does to the
/// message is `on_error`'s choice.
pub fn internal_error(check: CheckName, why: &str, on_error: OnError) -> CheckResult {
    let effect = match on_error {
        OnError::Tempfail => Effect::Tempfail(Code::INTERNAL),
        OnError::Accept => Effect::Accept,
    };
    CheckResult::new(check, Status::TempError, effect).reason(format!("internal error: {why}"))
}
