//! One transaction's checks, from MAIL FROM to the verdict: every
//! registered check starts as soon as the sender is known
//! ([`Pending::start`]) and runs while the MTA streams the message;
//! [`Pending::finish`] waits for them, gives the message to the checks that
//! read it, and decides. [`Pending::envelope_results`] lets the RCPT stage
//! look at the checks that need no message before the body is sent.

use crate::{
    checks::{CheckName, CheckResult, Inputs, Stage, CHECKS},
    envelope::{Envelope, SenderDomain},
    forwarding, guidance,
    verdict::{self, Verdict},
    Shared,
};
use prometheus_client::metrics::{family::Family, histogram::Histogram};
use std::{
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    task::{AbortHandle, JoinError, JoinHandle},
    time::{timeout_at, Instant},
};

/// Checks under way for one transaction. Dropping it (RSET, abort, a
/// closed connection) cancels what is still running.
pub struct Pending {
    inputs: Arc<Inputs>,
    tasks: Vec<(CheckName, Task)>,
}

/// A check's envelope work: running, or ended (kept so that a look at the
/// RCPT stage does not consume it).
enum Task {
    Running(JoinHandle<Stage>),
    Ended(Result<Stage, JoinError>),
}

impl Task {
    /// Waits for the envelope work. Cancel-safe: dropped mid-way, the task
    /// stays `Running`.
    async fn settle(&mut self) {
        if let Self::Running(handle) = self {
            let ended = handle.await;
            *self = Self::Ended(ended);
        }
    }

    async fn ended(self) -> Result<Stage, JoinError> {
        match self {
            Self::Running(handle) => handle.await,
            Self::Ended(ended) => ended,
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Self::Running(handle) => handle.is_finished(),
            Self::Ended(_) => true,
        }
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        match self {
            Self::Running(handle) => Some(handle.abort_handle()),
            Self::Ended(_) => None,
        }
    }
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
    /// Tokens and challenges (src/milter/recipients.rs).
    pub controls: crate::controls::Note,
}

impl Pending {
    /// Starts every check for `envelope` at once (call at MAIL FROM): the
    /// end of message then waits for the slowest, not for the sum.
    pub fn start(shared: &Arc<Shared>, envelope: Envelope) -> Self {
        let inputs = Arc::new(Inputs::new(shared.clone(), envelope));
        let tasks = CHECKS
            .iter()
            .map(|check| {
                let work = (check.start)(inputs.clone());
                let task = tokio::spawn(timed(check.name, work));
                (check.name, Task::Running(task))
            })
            .collect();
        Self { inputs, tasks }
    }

    /// The results that need no message, for a decision before the body
    /// (RCPT stage). Waits at most `limit` for the enforced checks (an
    /// unenforced one cannot change the verdict and is only taken if
    /// already done); `None` when an enforced check is still running then.
    /// A check that reads the message is left for [`Pending::finish`].
    pub(crate) async fn envelope_results(&mut self, limit: Duration) -> Option<Vec<CheckResult>> {
        let config = &self.inputs.shared.config;
        let enforced = self
            .tasks
            .iter_mut()
            .filter(|(name, _)| verdict::check_enforced(config, *name));
        let wait = async {
            for (_, task) in enforced {
                task.settle().await;
            }
        };
        tokio::time::timeout(limit, wait).await.ok()?;
        let mut results = Vec::with_capacity(self.tasks.len());
        for (check, task) in &mut self.tasks {
            if !task.is_finished() {
                continue;
            }
            task.settle().await;
            match task {
                Task::Ended(Ok(Stage::Done(result))) => results.push(result.clone()),
                Task::Ended(Err(e)) => results.push(CheckResult::internal_error(
                    *check,
                    &e.to_string(),
                    config.on_error,
                )),
                _ => {}
            }
        }
        crate::checks::tls::with_session_record(&mut results, &self.inputs);
        Some(results)
    }

    /// Every RCPT TO of the transaction, for the checks that read the
    /// message (call before [`finish`](Self::finish)).
    pub fn recipients(&self, rcpt_to: Vec<String>) {
        let _ = self.inputs.rcpt_to.set(rcpt_to);
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
    pub(crate) async fn finish_too_big(self, size: u64) -> Evaluation {
        self.finish_with(Received::TooBig(size)).await
    }

    async fn finish_with(mut self, message: Received<'_>) -> Evaluation {
        let config = &self.inputs.shared.config;
        let on_error = config.on_error;
        let timeout = Duration::from_millis(config.limits.eom_timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut results = Vec::with_capacity(self.tasks.len());
        for (check, task) in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            let finished = match timeout_at(deadline, task.ended()).await {
                Ok(Ok(Stage::Done(result))) => Some(result),
                Ok(Ok(Stage::NeedsMessage(step))) => match message {
                    Received::Whole(message) => {
                        let work = step.finish(&self.inputs, message, now(), deadline.into_std());
                        timeout_at(deadline, work).await.ok()
                    }
                    Received::TooBig(size) => {
                        Some(step.too_big(check, size, config.limits.max_message_size))
                    }
                },
                Ok(Err(e)) => Some(CheckResult::internal_error(check, &e.to_string(), on_error)),
                Err(_) => None,
            };
            if let Some(abort) = abort {
                abort.abort();
            }
            results
                .push(finished.unwrap_or_else(|| CheckResult::timed_out(check, timeout, on_error)));
        }
        crate::checks::tls::with_session_record(&mut results, &self.inputs);
        let sender = self.inputs.envelope.sender_domain();
        let trusted = &config.forwarding.trusted_arc_sealers;
        let whole: &[u8] = match message {
            Received::Whole(message) => message,
            Received::TooBig(_) => &[],
        };
        crate::checks::dkim2::apply(&mut results, sender.name(), config.mailkey.alignment);
        forwarding::apply(&mut results, trusted, sender.name(), whole);
        let who = guidance::Sender::of(&self.inputs.envelope, sender.name());
        let verdict = verdict::decide(&results, config, &who);
        Evaluation {
            sender,
            results,
            verdict,
            controls: Default::default(),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            if let Task::Running(handle) = task {
                handle.abort();
            }
        }
    }
}

/// Runs `work`, recording in [`CHECK_LATENCY`] how long it took.
async fn timed<T>(check: CheckName, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    CHECK_LATENCY
        .get_or_create(&[("check", check.as_str())])
        .observe(started.elapsed().as_secs_f64());
    out
}

/// Seconds since the epoch, for signature expiry (`x=`).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Time from MAIL FROM until each check's lookups were done, by `check`:
/// kept here; src/metrics.rs registers this same family and so reads it at
/// scrape time (ARCHITECTURE.md, "Module graph").
pub type Latency = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

/// Upper bounds of [`CHECK_LATENCY`]'s buckets, in seconds.
const CHECK_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The check latencies of every transaction in the process, a series for
/// each registered check from the start.
pub(crate) static CHECK_LATENCY: LazyLock<Latency> = LazyLock::new(|| {
    let latency: Latency = Family::new_with_constructor(|| Histogram::new(CHECK_BUCKETS));
    for c in CHECKS {
        let _ = latency.get_or_create(&[("check", c.name.as_str())]);
    }
    latency
});
