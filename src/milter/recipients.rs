//! Recipients' controls in the milter (docs/decisions.md, "Letting
//! wanted senders through"):
//!
//! - at RCPT, each recipient is classed: addressed with a valid token
//!   (`alice+mk-TAG@`), allowlisted for this sender by a solved challenge,
//!   or checked as usual. An invalid token is refused there, for that
//!   recipient only (`550 5.7.1`, saying why).
//! - one transaction holds recipients of one class only: a recipient of
//!   another class gets `452 4.5.3` and the client sends it in a separate
//!   transaction (RFC 5321 §4.5.3.1.10), so a token for alice never lets
//!   the same message through to bob, and nobody's copy is dropped.
//! - at the end of message, a token's use is counted (atomically, once per
//!   message) and the verdict lifted (`Verdict::exempt`: still checked,
//!   A-R written); a challenge-allowlisted pair is lifted when the sender
//!   proves its address again; a refusal to a sender that proved its
//!   address carries a challenge URL per recipient.
//! - the store unreachable: what needs its answer is deferred (`451
//!   4.3.0`), never guessed; nothing else changes.

use super::message::Message;
use crate::{
    challenge,
    config::{ChallengeWhen, Mode},
    controls::Controls,
    exempt::Reason,
    metrics,
    reply::{Code, Outcome, Reply},
    state::{Use, MAX_ADDRESS},
    tokens::{self, Tagged},
    transaction::Evaluation,
    verdict::Verdict,
    Shared,
};
use std::time::SystemTime;
use tracing::{error, info};

/// How one recipient is treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Checked and decided as usual.
    Checked,
    /// Addressed with a token that is valid for this sender.
    Token(Tagged),
    /// A challenge this sender solved for this recipient.
    Allowed,
}

/// The recipients of one transaction.
#[derive(Debug, Default)]
pub struct Recipients {
    /// The class of the recipients accepted so far (all the same).
    pub accepted: Option<Class>,
    /// The accepted recipients, as given.
    addresses: Vec<String>,
    /// A lookup of the allowlist failed: a refusal becomes a deferral.
    pub store_down: bool,
    /// The refusal at RCPT was logged.
    pub logged: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bare(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

fn store_down() -> Reply {
    Reply::new(
        Code::INTERNAL,
        ["Temporary local problem checking the recipient; please try again later".to_string()],
    )
}

impl Recipients {
    /// Classes `address` for the sender of `message`. `Err`: the reply that
    /// refuses this recipient (an invalid token, or the store down when
    /// the token needs it).
    pub async fn classify(
        &mut self,
        shared: &Shared,
        message: &Message,
        address: &str,
        queue_id: &str,
    ) -> Result<Class, Reply> {
        let Some(controls) = shared.controls.as_deref() else {
            return Ok(Class::Checked);
        };
        let sender = &message.envelope.mail_from;
        if let Some(tagged) = controls.tokens.as_ref().and_then(|t| t.parse(address)) {
            return token(shared, controls, &tagged, sender, queue_id).await;
        }
        if controls.challenges.is_none() {
            return Ok(Class::Checked);
        }
        let (sender, recipient) = (bare(sender), bare(address));
        if sender.is_empty() || sender.len() > MAX_ADDRESS || recipient.len() > MAX_ADDRESS {
            return Ok(Class::Checked);
        }
        match controls.store.allowed(&sender, &recipient, now()).await {
            Ok(true) => Ok(Class::Allowed),
            Ok(false) => Ok(Class::Checked),
            Err(e) => {
                error!("{queue_id}: failed to look up the challenge allowlist: {e}");
                metrics::state_error();
                self.store_down = true;
                Ok(Class::Checked)
            }
        }
    }

    /// `Some(452)` when `class` differs from the recipients accepted so
    /// far; else the recipient is taken.
    pub fn take(&mut self, class: Class, address: &str) -> Option<Reply> {
        if self.accepted.as_ref().is_some_and(|c| *c != class) {
            return Some(Reply::new(
                Code::SPLIT,
                ["Please send to this recipient in a separate transaction".to_string()],
            ));
        }
        self.accepted = Some(class);
        self.addresses.push(bare(address));
        None
    }

    /// The refusal at RCPT (`early`'s evaluation) for `address`: with a
    /// challenge URL for it when one is offered; a deferral instead when
    /// the allowlist could not be read. Logged once per transaction.
    pub fn refusal(
        &mut self,
        shared: &Shared,
        message: &Message,
        evaluation: &mut Evaluation,
        address: &str,
        queue_id: &str,
    ) -> Reply {
        if self.store_down {
            evaluation.verdict = deferred(&evaluation.verdict);
        }
        let reply = evaluation
            .verdict
            .outcome
            .refusal()
            .cloned()
            .unwrap_or_else(store_down);
        let reply = match offer(shared, message, evaluation, &[bare(address)]) {
            Some(with_url) => {
                evaluation.controls.challenge = Some("offered");
                with_url
            }
            None => reply,
        };
        if !self.logged {
            super::early::record(queue_id, &message.envelope, evaluation);
            self.logged = true;
        }
        reply
    }

    /// The message key for counting a token use once, when the message is
    /// addressed with a token (call before the message is handed on).
    pub(crate) fn message_key(&self, message: &mut Message) -> Option<String> {
        if !matches!(self.accepted, Some(Class::Token(_))) {
            return None;
        }
        // A message that could not be kept is deferred before any token
        // counts (src/milter/inbound.rs).
        let (head, body) = message.parts().ok()?;
        let message_id = head.split(|&b| b == b'\n').find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"message-id")
                .then(|| value.get(1..).unwrap_or_default().trim_ascii())
        });
        Some(tokens::message_key(message_id, body))
    }

    /// End of message: applies the class of the recipients to the
    /// evaluation (`key`: [`Self::message_key`]).
    pub async fn decide(
        &self,
        shared: &Shared,
        message: &Message,
        evaluation: &mut Evaluation,
        key: Option<&str>,
        queue_id: &str,
    ) {
        let Some(controls) = shared.controls.as_deref() else {
            return;
        };
        let monitor = shared.config.mode == Mode::Monitor;
        match &self.accepted {
            Some(Class::Token(tagged)) => {
                evaluation.controls.token = Some(tagged.tag.clone());
                let counted = controls
                    .store
                    .use_token(&tagged.tag, key.unwrap_or_default())
                    .await;
                match counted {
                    Ok(Use::Counted(_) | Use::Again(_)) => {
                        if matches!(counted, Ok(Use::Counted(_))) {
                            metrics::token_used();
                        }
                        lift(evaluation, Reason::Token(tagged.tag.clone()));
                    }
                    Ok(other) => {
                        // Used up or revoked since RCPT (another message,
                        // another MX host took the last use).
                        let refusal = match other {
                            Use::UsedUp(n) => tokens::Refusal::UsedUp(n),
                            Use::Revoked => tokens::Refusal::Revoked,
                            _ => tokens::Refusal::Unknown,
                        };
                        metrics::token_refused(refusal.word());
                        evaluation.controls.token_refused = Some(refusal.word());
                        if !monitor {
                            evaluation.verdict = refused(refusal.reply(tagged));
                        }
                    }
                    Err(e) => {
                        error!(
                            "{queue_id}: failed to count the use of token {}: {e}",
                            tagged.tag
                        );
                        metrics::state_error();
                        if !monitor {
                            evaluation.verdict = deferred(&evaluation.verdict);
                        }
                    }
                }
            }
            Some(Class::Allowed) => {
                // Only a sender that proves its address again: a forger of
                // an allowlisted address is refused as ever.
                if challenge::proven(&message.envelope.mail_from, &evaluation.results).is_some() {
                    evaluation.controls.challenge = Some("passed");
                    metrics::challenge("let_through");
                    lift(evaluation, Reason::Challenge);
                }
            }
            Some(Class::Checked) | None => {
                let first_contact = controls
                    .challenges
                    .as_ref()
                    .is_some_and(|c| c.when == ChallengeWhen::FirstContact);
                let would_ask = first_contact
                    && !monitor
                    && evaluation.verdict.applied().is_accept()
                    && evaluation.verdict.exempt.is_none()
                    && challenge::proven(&message.envelope.mail_from, &evaluation.results)
                        .is_some();
                // The pair may have solved a challenge: neither refuse it
                // nor ask it again while the store cannot say.
                if self.store_down && (would_ask || evaluation.verdict.applied().is_reject()) {
                    evaluation.verdict = deferred(&evaluation.verdict);
                    return;
                }
                if would_ask {
                    let ask = Reply::new(
                        Code::NOT_AUTHORISED,
                        [format!(
                            "{} accepts mail from new senders after a one-time check",
                            self.addresses
                                .first()
                                .map_or("The recipient", String::as_str)
                        )],
                    );
                    let mut trial = evaluation.verdict.clone();
                    trial.outcome = Outcome::Reject(ask);
                    let saved = std::mem::replace(&mut evaluation.verdict, trial);
                    match offer(shared, message, evaluation, &self.addresses) {
                        Some(reply) => {
                            evaluation.verdict.outcome = Outcome::Reject(reply);
                            evaluation.controls.challenge = Some("offered");
                        }
                        None => evaluation.verdict = saved,
                    }
                } else if let Some(reply) = offer(shared, message, evaluation, &self.addresses) {
                    evaluation.verdict.outcome = Outcome::Reject(reply);
                    evaluation.controls.challenge = Some("offered");
                }
            }
        }
        if let Some(word) = evaluation.controls.token_refused {
            info!(
                "{queue_id}: token {} refused at end of message: {word}",
                evaluation.controls.token.as_deref().unwrap_or("-")
            );
        }
    }
}

/// A token recipient at RCPT: valid for this sender, or its refusal.
async fn token(
    shared: &Shared,
    controls: &Controls,
    tagged: &Tagged,
    sender: &str,
    queue_id: &str,
) -> Result<Class, Reply> {
    let tokens = controls.tokens.as_ref().ok_or_else(store_down)?;
    let state = match controls.store.token(&tagged.tag).await {
        Ok(state) => state,
        Err(e) => {
            error!("{queue_id}: failed to look up token {}: {e}", tagged.tag);
            metrics::state_error();
            return Err(store_down());
        }
    };
    match tokens.judge(tagged, state.as_ref(), sender, now()) {
        Ok(()) => Ok(Class::Token(tagged.clone())),
        Err(refusal) => {
            metrics::token_refused(refusal.word());
            let monitor = shared.config.mode == Mode::Monitor;
            info!(
                queue_id = %queue_id,
                mail_from = format!("<{sender}>").as_str(),
                rcpt = format!("<{}>", tagged.recipient).as_str(),
                token = %tagged.tag,
                token_refused = %refusal.word(),
                verdict = %if monitor { "accept" } else { "reject" },
                "recipient refused"
            );
            // Monitor mode never refuses: the recipient is checked as any.
            if monitor {
                Ok(Class::Checked)
            } else {
                Err(refusal.reply(tagged))
            }
        }
    }
}

/// Accepted whatever the checks say, as an exemption; an operator's
/// `[exempt]` entry, if one matched, stays the reason shown.
fn lift(evaluation: &mut Evaluation, reason: Reason) {
    if evaluation.verdict.exempt.is_none() {
        evaluation.verdict = evaluation.verdict.clone().exempt(reason);
    }
}

fn refused(reply: Reply) -> Verdict {
    Verdict::refuse(Outcome::Reject(reply))
}

/// A refusal turned into a deferral: the store could not say whether
/// this sender may pass.
fn deferred(v: &Verdict) -> Verdict {
    Verdict {
        exempt: v.exempt.clone(),
        ..Verdict::refuse(Outcome::Tempfail(store_down()))
    }
}

/// The refusal in `evaluation` with challenge URLs, when `[challenge]` is
/// on and one is offered ([`challenge::offer`]).
fn offer(
    shared: &Shared,
    message: &Message,
    evaluation: &Evaluation,
    recipients: &[String],
) -> Option<Reply> {
    let challenges = shared.controls.as_deref()?.challenges.as_ref()?;
    let offered = challenges.offer(
        &message.envelope.mail_from,
        &evaluation.verdict,
        &evaluation.results,
        recipients,
        now(),
    )?;
    for _ in 0..offered.1 {
        metrics::challenge("offered");
    }
    Some(offered.0)
}
