//! The Sender Rewriting Scheme (SRS), as libsrs2 and postsrsd write it, so
//! that addresses we make are understood by the same tools:
//!
//! - `SRS0=HHHH=TT=orig.domain=local@srs.domain` for a sender we forward;
//! - `SRS1=HHHH=first.hop==HHHH=TT=orig.domain=local@srs.domain` for a
//!   sender that is already an `SRS0` address of `first.hop` (the inner
//!   part is kept opaque, only the first hop is recorded).
//!
//! `HHHH`: the first 4 characters of base64(HMAC-SHA1(secret, the rest
//! lower-cased)) — libsrs2's hash (base64, not base32, for
//! compatibility). `TT`: days since the epoch mod 1024 in two base32
//! characters. Several secrets: the first signs, all verify (rotation).

mod codec;
mod load;

pub(crate) use codec::claimed_original;
pub use codec::SrsError;
pub use codec::{Decoded, Srs};
pub use load::load;
pub(crate) use load::SrsLoadError;
