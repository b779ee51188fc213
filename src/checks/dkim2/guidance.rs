//! The DKIM2 check's guidance: how a sender or forwarder signs a chain
//! that verifies.

use crate::checks::{Failure, Guidance, Sender};

pub(super) const GUIDANCE: Guidance = Guidance {
    keys: &["dkim2"],
    key: |failure| match failure {
        Failure::Dkim2Replay | Failure::Dkim2Changed | Failure::Dkim2Broken | Failure::Dkim2Dsn => {
            Some("dkim2")
        }
        _ => None,
    },
    text: lines,
};

/// The built-in guidance for a DKIM2 failure.
fn lines(failure: Failure, s: &Sender<'_>) -> Vec<String> {
    let d = s.domain_or_placeholder();
    match failure {
        Failure::Dkim2Replay => vec![
            format!(
                "The DKIM2 signature of {d} on this message names another sender or other \
                 recipients, or is over 14 days old: it was resent without a DKIM2 hop."
            ),
            "A forwarder adds its own DKIM2 hop (mailkey-milter: [dkim2] forward = true); \
             a sender signs each message for the recipients it sends it to."
                .into(),
        ],
        Failure::Dkim2Changed => vec![
            "The message was changed after its newest DKIM2 signature (a footer, a subject \
             tag) and no hop recorded how."
                .into(),
            "The hop that changes it must add a Message-Instance with a recipe and its own \
             DKIM2 signature (mailkey-milter: [dkim2] forward = true), or sign after the change."
                .into(),
        ],
        Failure::Dkim2Broken => vec![
            format!("The DKIM2 chain of {d} does not verify (the finding is above)."),
            format!(
                "Publish each selector's key as one TXT record at SELECTOR._domainkey.{d}, \
                 and check: mailkey-milter check-domain {d} --key FILE"
            ),
        ],
        Failure::Dkim2Dsn => vec![
            "This bounce is about a message DKIM2-signed by us. We take such bounces only \
             DKIM2-signed by a domain the message was sent to,"
                .into(),
            "returning the message as it was sent (draft-ietf-dkim-dkim2-spec, DSNs): \
             sign your bounces with DKIM2, or do not send any for mail you did not get."
                .into(),
        ],
        _ => Vec::new(),
    }
}
