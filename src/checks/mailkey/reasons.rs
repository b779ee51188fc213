//! Why a signature does not count, and which reason the reply gives.

use mail_auth::{dkim::DkimError, Error};

/// Why a signature did not verify with a key, and how telling that is
/// (lower is more specific; 1, the body hash, is decided before any key).
pub(super) fn describe(error: &Error) -> (u8, String) {
    match error {
        Error::Crypto(_) => (
            2,
            "bad signature: signed headers were changed or the key does not match".into(),
        ),
        Error::Dkim(DkimError::AuidMismatch) => (4, "i= is not in the signing domain".into()),
        other => (6, format!("signature does not verify: {other}")),
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
            // The rules of docs/protocol.md §4.3 (`rules::allowed`).
            Some((5, why)) => (why, Fix::RefusedSignature),
            Some((_, why)) => (why, Fix::NoSignature),
        }
    }
}
