//! Why a signature does not count, and which reason the reply gives.

use mail_auth::{dkim::DkimError, DkimResult, Error};

/// A reason and how telling it is (lower is more specific).
pub(super) fn describe(result: &DkimResult) -> (u8, String) {
    match result {
        DkimResult::Neutral(Error::Dkim(DkimError::BodyHashMismatch)) => (
            1,
            "body hash mismatch: the body was changed after signing".into(),
        ),
        DkimResult::Fail(Error::Crypto(_)) => (
            2,
            "bad signature: signed headers were changed or the key does not match".into(),
        ),
        DkimResult::Neutral(Error::Dkim(DkimError::SignatureExpired)) => {
            (3, "signature expired (x=)".into())
        }
        DkimResult::PermError(Error::Dkim(DkimError::PublicKeyRevoked)) => {
            (4, "key revoked".into())
        }
        DkimResult::Fail(Error::Dkim(DkimError::AuidMismatch)) => {
            (4, "i= is not in the signing domain".into())
        }
        other => (
            6,
            format!("signature does not verify: {}", result_error(other)),
        ),
    }
}

fn result_error(r: &DkimResult) -> String {
    match r {
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => e.to_string(),
        DkimResult::Pass | DkimResult::None => "no result".into(),
    }
}

/// The most specific failure reason seen.
#[derive(Default)]
pub(super) struct Reasons(Option<(u8, String)>);

impl Reasons {
    pub(super) fn add(&mut self, rank: u8, why: String) {
        if self.0.as_ref().is_none_or(|(r, _)| rank < *r) {
            self.0 = Some((rank, why));
        }
    }

    #[cfg(test)]
    pub(super) fn best(self) -> Option<String> {
        self.0.map(|(_, why)| why)
    }

    /// The most specific reason, and what the sender must fix: its rank
    /// (from [`describe`] and the verifier) says which.
    pub(super) fn fail(self) -> (String, crate::checks::Failure) {
        use crate::checks::Failure as Fix;
        match self.0 {
            None => ("no mailkey signature".into(), Fix::NoSignature),
            Some((1, why)) => (why, Fix::BodyChanged),
            Some((2..=4 | 6, why)) => (why, Fix::BadSignature),
            Some((_, why)) => (why, Fix::NoSignature),
        }
    }
}
