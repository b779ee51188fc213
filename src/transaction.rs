//! One transaction's checks, from MAIL FROM to the verdict: DNS lookups
//! start as soon as the sender is known ([`Pending::start`]) and run while
//! the MTA streams the message; [`Pending::finish`] waits for them, runs the
//! checks on the complete message and decides.

use crate::{
    checks::{
        keyrecord::KeyLookup, mailkey, mx, spf, tls, CheckName, CheckResult, Code, Effect, Status,
    },
    config::Config,
    dns::Dns,
    envelope::{Envelope, SenderDomain},
    metrics,
    tls::Prober,
    verdict::{self, Verdict},
};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::task::JoinHandle;

/// Lookups under way for one transaction.
pub struct Pending {
    sender: SenderDomain,
    mailkey: Option<JoinHandle<KeyLookup>>,
    spf: JoinHandle<CheckResult>,
    tls: JoinHandle<CheckResult>,
    mx: JoinHandle<CheckResult>,
}

/// Everything decided about one message.
#[derive(Debug)]
pub struct Evaluation {
    pub sender: SenderDomain,
    pub results: Vec<CheckResult>,
    pub verdict: Verdict,
}

impl Pending {
    /// Starts every lookup for `envelope` at once (call at MAIL FROM): the
    /// end of message then waits for the slowest, not for the sum.
    pub fn start(dns: &Dns, prober: &Arc<Prober>, config: &Config, envelope: &Envelope) -> Self {
        let sender = envelope.sender_domain();
        let mailkey = sender.name().map(|domain| {
            let (dns, domain) = (dns.clone(), domain.to_string());
            tokio::spawn(timed(CheckName::Mailkey, async move {
                mailkey::lookup(&dns, &domain).await
            }))
        });
        let spf = {
            let (dns, env, cfg) = (dns.clone(), envelope.clone(), config.spf.clone());
            let host = config.authserv_id.clone();
            tokio::spawn(timed(CheckName::Spf, async move {
                spf::check(&dns, &cfg, &env, &host).await
            }))
        };
        // The certificate probe, if one is needed, runs while the message
        // streams, like the DNS lookups.
        let tls = {
            let (dns, env, cfg) = (dns.clone(), envelope.clone(), config.tls.clone());
            let prober = prober.clone();
            tokio::spawn(timed(CheckName::Tls, async move {
                tls::check(&dns, &prober, &cfg, &env).await
            }))
        };
        let mx = {
            let (dns, env) = (dns.clone(), envelope.clone());
            tokio::spawn(timed(
                CheckName::Mx,
                async move { mx::check(&dns, &env).await },
            ))
        };
        Self {
            sender,
            mailkey,
            spf,
            tls,
            mx,
        }
    }

    /// Waits for the lookups, runs the checks on `message` and decides.
    pub async fn finish(self, dns: &Dns, config: &Config, message: &[u8]) -> Evaluation {
        let keys = match self.mailkey {
            Some(task) => match task.await {
                Ok(keys) => keys,
                Err(e) => KeyLookup::TempError(format!("lookup task failed: {e}")),
            },
            None => KeyLookup::NoKey,
        };
        let mailkey =
            mailkey::check(dns, &config.mailkey, &self.sender, keys, message, now()).await;
        let spf = joined(CheckName::Spf, self.spf.await);
        let tls = joined(CheckName::Tls, self.tls.await);
        let mx = joined(CheckName::Mx, self.mx.await);
        let results = vec![mailkey, spf, tls, mx];
        let verdict = verdict::decide(&results, config, self.sender.name());
        Evaluation {
            sender: self.sender,
            results,
            verdict,
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

/// A check task's result; a panic in it becomes a temporary error.
fn joined(check: CheckName, r: Result<CheckResult, tokio::task::JoinError>) -> CheckResult {
    r.unwrap_or_else(|e| internal_error(check, &e.to_string()))
}

/// Seconds since the epoch, for signature expiry (`x=`).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The result reported for a check that could not run because the milter
/// itself failed (a bug, a panic): it must never look like a pass.
pub fn internal_error(check: CheckName, why: &str) -> CheckResult {
    CheckResult::new(check, Status::TempError, Effect::Tempfail(Code::INTERNAL))
        .reason(format!("internal error: {why}"))
}
