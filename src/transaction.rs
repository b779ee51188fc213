//! One transaction's checks, from MAIL FROM to the verdict: every
//! registered check starts as soon as the sender is known
//! ([`Pending::start`]) and runs while the MTA streams the message;
//! [`Pending::finish`] waits for them, gives the message to the checks that
//! read it, and decides.

use crate::{
    checks::{CheckName, CheckResult, Code, Effect, Inputs, Stage, Status, CHECKS},
    config::OnError,
    envelope::{Envelope, SenderDomain},
    guidance, metrics,
    verdict::{self, Verdict},
    Shared,
};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    task::JoinHandle,
    time::{timeout_at, Instant},
};

/// Checks under way for one transaction. Dropping it (RSET, abort, a
/// closed connection) cancels what is still running.
pub struct Pending {
    inputs: Arc<Inputs>,
    tasks: Vec<(CheckName, JoinHandle<Stage>)>,
}

/// The message as end of message has it.
#[derive(Clone, Copy)]
enum Received<'a> {
    Whole(&'a [u8]),
    /// Over `limits.max_message_size`: only its size is known.
    TooBig(u64),
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
    /// All of it within `limits.eom_timeout_ms` from now: a check still
    /// running then is abandoned and its result is `on_error`'s.
    pub async fn finish(self, message: &[u8]) -> Evaluation {
        self.finish_with(Received::Whole(message)).await
    }

    /// Like [`finish`](Self::finish) for a message larger than
    /// `limits.max_message_size` (`size` bytes by the end), which was not
    /// kept: the checks that read the message say what that means.
    pub async fn finish_too_big(self, size: u64) -> Evaluation {
        self.finish_with(Received::TooBig(size)).await
    }

    async fn finish_with(mut self, message: Received<'_>) -> Evaluation {
        let config = &self.inputs.shared.config;
        let on_error = config.on_error;
        let timeout = Duration::from_millis(config.limits.eom_timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut results = Vec::with_capacity(self.tasks.len());
        for (check, mut task) in std::mem::take(&mut self.tasks) {
            let finished = match timeout_at(deadline, &mut task).await {
                Ok(Ok(Stage::Done(result))) => Some(result),
                Ok(Ok(Stage::NeedsMessage(step))) => match message {
                    Received::Whole(message) => {
                        timeout_at(deadline, step.finish(&self.inputs, message, now()))
                            .await
                            .ok()
                    }
                    Received::TooBig(size) => {
                        Some(step.too_big(check, size, config.limits.max_message_size))
                    }
                },
                Ok(Err(e)) => Some(internal_error(check, &e.to_string(), on_error)),
                Err(_) => None,
            };
            task.abort();
            results.push(finished.unwrap_or_else(|| timed_out(check, timeout, on_error)));
        }
        let sender = self.inputs.envelope.sender_domain();
        let who = guidance::Sender::of(&self.inputs.envelope, sender.name());
        let verdict = verdict::decide(&results, &self.inputs.shared.config, &who);
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
    CheckResult::new(check, Status::TempError, on_error_effect(on_error))
        .reason(format!("internal error: {why}"))
}

/// The result of a check that did not finish within `eom_timeout_ms`:
/// like an internal error, `on_error` decides.
fn timed_out(check: CheckName, timeout: Duration, on_error: OnError) -> CheckResult {
    CheckResult::new(check, Status::TempError, on_error_effect(on_error)).reason(format!(
        "not finished within the end-of-message deadline of {} ms",
        timeout.as_millis()
    ))
}

fn on_error_effect(on_error: OnError) -> Effect {
    match on_error {
        OnError::Tempfail => Effect::Tempfail(Code::INTERNAL),
        OnError::Accept => Effect::Accept,
    }
}
