//! What a DKIM2 verification found, in the terms the check, the header,
//! the log and the guidance need: the result word, the chain of custody,
//! and — for a failure — what the sender has to fix.

use crate::ar_syntax::Status;
use mail_auth::{dkim2::Dkim2Error, Dkim2Result, Error};

/// Why a chain does not verify, as what the sender must fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The newest signature binds another envelope (MAIL FROM, a RCPT TO),
    /// or is more than 14 days old: the message was forwarded without a
    /// DKIM2 hop, or replayed.
    Replay,
    /// The message changed after the newest signature (a hash of the newest
    /// `Message-Instance` does not match) and no hop recorded a recipe.
    Changed,
    /// Any other failure: a signature, key, recipe or the chain of custody.
    Broken,
    /// A DSN about a message of ours that does not verify (§16.4).
    Dsn,
}

/// One hop of the chain: its sequence number and signing domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub i: u32,
    pub d: String,
    /// The selector of its first signature value.
    pub selector: String,
}

/// The outcome of verifying one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `pass`, `fail`, `permerror`, `temperror` or `none` (no DKIM2 fields).
    pub status: Status,
    /// The hops, by `i=`, as their signatures say (verified only on a pass).
    pub chain: Vec<Hop>,
    /// For a failure: what to fix, and the draft's text for it.
    pub failure: Option<(Kind, String)>,
    /// The signature a failure is attributed to (`header.i`).
    pub failed_i: Option<u32>,
    /// The newest signature's key says `t=y`: failures count as unsigned.
    pub testing: bool,
}

impl Outcome {
    pub fn none() -> Self {
        Self {
            status: Status::None,
            chain: Vec::new(),
            failure: None,
            failed_i: None,
            testing: false,
        }
    }

    /// A failure found before mail-auth's verification (a bound).
    /// Verification stopped at its deadline: a temporary error.
    pub fn stopped() -> Self {
        Self::refused(
            Status::TempError,
            Kind::Broken,
            "verification stopped at its deadline".into(),
            Vec::new(),
        )
    }

    pub fn refused(status: Status, kind: Kind, why: String, chain: Vec<Hop>) -> Self {
        Self {
            status,
            chain,
            failure: Some((kind, why)),
            failed_i: None,
            testing: false,
        }
    }

    /// mail-auth's result for a chain of `chain`, whose newest
    /// `Message-Instance` has `m=` `highest_m`; `m_to_i` holds (`m=`, `i=`)
    /// of each signature in `i=` order, to attribute an instance's failure
    /// to the signature that added it.
    pub(crate) fn from_result(
        result: &Dkim2Result,
        chain: Vec<Hop>,
        highest_m: u32,
        m_to_i: &[(u32, u32)],
    ) -> Self {
        let (status, error) = match result {
            Dkim2Result::Pass => (Status::Pass, None),
            Dkim2Result::None => (Status::None, None),
            Dkim2Result::Fail(e) => (Status::Fail, Some(e)),
            Dkim2Result::PermError(e) => (Status::PermError, Some(e)),
            Dkim2Result::TempError(e) => (Status::TempError, Some(e)),
        };
        let (failure, failed_i) = match error {
            Some(Error::Dkim2(e)) => {
                let i = signature_of(e, m_to_i);
                (Some((classify(e, highest_m), e.to_string())), i)
            }
            Some(other) => (Some((Kind::Broken, other.to_string())), None),
            None => (None, None),
        };
        Self {
            status,
            chain,
            failure,
            failed_i,
            testing: false,
        }
    }

    /// The originator's signing domain (`i=1`): `header.d` of the result.
    pub fn originator(&self) -> Option<&str> {
        self.chain.iter().find(|h| h.i == 1).map(|h| h.d.as_str())
    }

    /// The newest hop: the one that delivered to us.
    pub fn newest(&self) -> Option<&Hop> {
        self.chain.iter().max_by_key(|h| h.i)
    }

    /// The comment of the `dkim2` result, in the form the draft on DKIM2 in
    /// Authentication-Results recommends: `i=1 a.example pass, i=2
    /// b.example pass`, or for a failure the hops and the reason, e.g.
    /// `i=1 a.example, i=2 b.example; FAIL: DKIM2-Signature i=2 …`.
    pub fn comment(&self) -> Option<String> {
        let pass = self.status == Status::Pass;
        let hops = self
            .chain
            .iter()
            .map(|h| {
                let outcome = if pass { " pass" } else { "" };
                format!("i={} {}{outcome}", h.i, h.d)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let why = self
            .failure
            .as_ref()
            .map(|(_, why)| format!("{}: {why}", self.status.as_str().to_ascii_uppercase()));
        match (hops.is_empty(), why) {
            (true, None) => None,
            (false, None) => Some(hops),
            (true, Some(why)) => Some(why),
            (false, Some(why)) => Some(format!("{hops}; {why}")),
        }
    }
}

/// Which kind of failure `e` is. A hash mismatch of the newest instance is
/// a change after signing; of an older one, a recipe that does not
/// recreate what was signed (broken).
fn classify(e: &Dkim2Error, highest_m: u32) -> Kind {
    use Dkim2Error::*;
    match e {
        MailFromMismatch { .. } | RcptToMismatch { .. } | SignatureExpired(_) => Kind::Replay,
        HeaderHashMismatch { m, .. } | BodyHashMismatch { m, .. } | NoHashGroupPassed(m)
            if *m == highest_m =>
        {
            Kind::Changed
        }
        NullBodyRecipe(_) => Kind::Changed,
        _ => Kind::Broken,
    }
}

/// The `i=` a failure is attributed to: the signature named, or the one
/// whose `m=` references the instance named.
fn signature_of(e: &Dkim2Error, m_to_i: &[(u32, u32)]) -> Option<u32> {
    use Dkim2Error::*;
    let by_m = |m: &u32| m_to_i.iter().find(|(sm, _)| sm == m).map(|(_, i)| *i);
    match e {
        SignatureSyntax(i)
        | SignatureMissing(i)
        | SequenceGap(i)
        | DuplicateSelector(i)
        | TooManySelectors(i)
        | SignatureExpired(i)
        | SignatureFromFuture(i)
        | MailFromDomainMismatch(i)
        | NextDomainMismatch(i)
        | NoSignatureGroupPassed(i)
        | FromNotAuthentic(i) => Some(*i),
        SignatureTagMissing { i, .. }
        | SignatureTagUnexpected { i, .. }
        | MailFromMismatch { i, .. }
        | RcptToMismatch { i, .. }
        | CustodyMailFromMismatch { i, .. }
        | CustodyDomainMismatch { i, .. }
        | PublicKeyFetch { i, .. }
        | PublicKeyMissing { i, .. }
        | PublicKeyMultiple { i, .. }
        | PublicKeySyntax { i, .. }
        | PublicKeyMalformed { i, .. }
        | PublicKeyAlgorithmMismatch { i, .. }
        | PublicKeyRevoked { i, .. }
        | IncorrectSignature { i, .. }
        | UnknownAlgorithm { i, .. } => Some(*i),
        InstanceMissing(m)
        | InstanceSyntax(m)
        | InstanceNotSigned(m)
        | InstanceDuplicateHash(m)
        | InvalidJson(m)
        | NoHashGroupPassed(m)
        | NullBodyRecipe(m) => by_m(m),
        InstanceTagMissing { m, .. }
        | InvalidRecipe { m, .. }
        | UnknownHash { m, .. }
        | HeaderHashMismatch { m, .. }
        | BodyHashMismatch { m, .. } => by_m(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(i: u32, d: &str) -> Hop {
        Hop {
            i,
            d: d.into(),
            selector: "mailkey".into(),
        }
    }

    #[test]
    fn comments_follow_the_authres_draft() {
        let chain = vec![hop(1, "a.example"), hop(2, "b.example")];
        let pass = Outcome::from_result(&Dkim2Result::Pass, chain.clone(), 2, &[]);
        assert_eq!(
            pass.comment().as_deref(),
            Some("i=1 a.example pass, i=2 b.example pass")
        );
        assert_eq!(pass.originator(), Some("a.example"));
        let replay = Dkim2Result::Fail(Error::Dkim2(Dkim2Error::RcptToMismatch {
            i: 2,
            value: "<x@c.example>".into(),
        }));
        let fail = Outcome::from_result(&replay, chain, 2, &[]);
        assert_eq!(
            fail.comment().as_deref(),
            Some(
                "i=1 a.example, i=2 b.example; \
                 FAIL: DKIM2-Signature i=2 RCPT TO <x@c.example> did not match"
            )
        );
        assert_eq!(fail.failed_i, Some(2));
        assert_eq!(fail.failure.map(|(k, _)| k), Some(Kind::Replay));
    }

    #[test]
    fn a_change_after_the_newest_instance_is_not_a_broken_recipe() {
        let body = |m| Dkim2Error::BodyHashMismatch {
            m,
            hash: mail_auth::dkim2::Dkim2Hash::Sha256,
        };
        assert_eq!(classify(&body(2), 2), Kind::Changed);
        assert_eq!(classify(&body(1), 2), Kind::Broken);
        assert_eq!(signature_of(&body(1), &[(1, 1), (2, 3)]), Some(1));
        assert_eq!(signature_of(&body(2), &[(1, 1), (2, 3)]), Some(3));
    }
}
