//! The message in progress, from MAIL FROM to end of message: its envelope,
//! the checks started for it, and its bytes as they travel in SMTP.

use crate::spool::{Bytes, Spool, SpoolError};
use crate::{auth_results, envelope::Envelope, push_crlf, transaction::Pending};
use std::path::Path;

/// Why a client's mail is not checked (and may be signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The client authenticated (`{auth_authen}`).
    SmtpAuth,
    /// The client address is in `trusted_networks`.
    TrustedNetwork,
}

impl Trust {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmtpAuth => "smtp-auth",
            Self::TrustedNetwork => "trusted-network",
        }
    }
}

pub struct Message {
    pub envelope: Envelope,
    /// `Some`: not checked (and signed when `[signing]` has the domain).
    pub trust: Option<Trust>,
    /// The checks under way (`None` for trusted clients); dropping the
    /// message (RSET, abort, close) cancels them.
    pub pending: Option<Pending>,
    /// RCPT TO addresses without angle brackets (bounce guidance).
    pub rcpt_to: Vec<String>,
    /// Occurrence numbers (1-based) of `Authentication-Results` headers that
    /// claim our authserv-id.
    pub forged_ar: Vec<usize>,
    /// The header block, then (once the body started) the empty line and
    /// the body, with CRLF line ends: in memory while small, in a file in
    /// `limits.spool_dir` beyond that (src/spool.rs).
    raw: Spool,
    /// Where the body starts in `raw`, once it has.
    body_start: Option<u64>,
    /// Why the bytes could not be kept (spool file): from then on nothing
    /// more is kept, and the message cannot be checked or signed.
    failed: Option<SpoolError>,
    ar_seen: usize,
    /// Bytes kept at most (`limits.max_message_size`); `None` for trusted
    /// clients, whose mail is signed whole (the MTA's own size limit bounds
    /// it, and they are accountable).
    limit: Option<u64>,
    /// Bytes received (header fields and body as buffered), kept or not.
    size: u64,
}

impl Message {
    /// `max_size`: `limits.max_message_size`, applied to checked mail;
    /// `spool_dir`: `limits.spool_dir`, where a large message goes.
    pub fn new(
        envelope: Envelope,
        trust: Option<Trust>,
        pending: Option<Pending>,
        max_size: u64,
        spool_dir: &Path,
    ) -> Self {
        Self {
            limit: trust.is_none().then_some(max_size),
            size: 0,
            envelope,
            trust,
            pending,
            rcpt_to: Vec::new(),
            forged_ar: Vec::new(),
            raw: Spool::new(spool_dir),
            body_start: None,
            failed: None,
            ar_seen: 0,
        }
    }

    pub fn header(&mut self, name: &[u8], value: &[u8], authserv_id: &str) {
        if name.eq_ignore_ascii_case(auth_results::HEADER.as_bytes()) {
            self.ar_seen += 1;
            if auth_results::claims(&String::from_utf8_lossy(value), authserv_id) {
                self.forged_ar.push(self.ar_seen);
            }
        }
        let mut field = Vec::with_capacity(name.len() + value.len() + 3);
        field.extend_from_slice(name);
        field.push(b':');
        push_crlf(&mut field, value);
        field.extend_from_slice(b"\r\n");
        self.keep(&field);
    }

    /// Appends `bytes` unless the message is over its limit or could not be
    /// kept: from then on nothing more is buffered, only counted.
    fn keep(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.too_big().is_none() && self.failed.is_none() {
            if let Err(e) = self.raw.append(bytes) {
                self.failed = Some(e);
                self.raw.clear();
            }
        } else if !self.raw.is_empty() {
            self.raw.clear(); // what was kept is of no use any more
        }
    }

    /// `Some(size)` once more than the limit arrived.
    pub(crate) fn too_big(&self) -> Option<u64> {
        self.limit
            .is_some_and(|limit| self.size > limit)
            .then_some(self.size)
    }

    /// The client announced the message's size (`SIZE=` at MAIL FROM, RFC
    /// 1870): room for it at once instead of growing step by step (each
    /// step a copy). The hint comes from the network, so it buys at most
    /// [`spool::MEMORY_MAX`](super::spool::MEMORY_MAX); a larger message
    /// goes to the spool file anyway.
    pub(crate) fn expect_size(&mut self, size: usize) {
        self.raw.reserve(size);
    }

    /// RCPT TO: `arg` as the MTA passes it, with angle brackets.
    pub fn rcpt(&mut self, arg: &str) {
        let address = arg.trim().trim_start_matches('<').trim_end_matches('>');
        self.rcpt_to.push(address.to_string());
    }

    pub fn body(&mut self, chunk: &[u8]) {
        self.end_headers();
        self.keep(chunk);
    }

    /// The blank line between header and body, once.
    fn end_headers(&mut self) {
        if self.body_start.is_none() {
            self.keep(b"\r\n");
            self.body_start = Some(self.raw.len());
        }
    }

    /// The header block and the body (empty before any body arrived; both
    /// empty once the message is over its limit).
    pub fn parts(&mut self) -> Result<(&[u8], &[u8]), SpoolError> {
        let body_start = self.body_start;
        let raw = self.bytes()?;
        Ok(match body_start.and_then(|at| usize::try_from(at).ok()) {
            Some(at) => (
                raw.get(..at.saturating_sub(2)).unwrap_or_default(),
                raw.get(at..).unwrap_or_default(),
            ),
            None => (raw, &[]),
        })
    }

    /// The body was replaced (bounce guidance): what is signed or checked
    /// afterwards is the new one. A failure to keep it is kept too, so that
    /// nothing is ever signed over half a body.
    pub fn replace_body(&mut self, body: &[u8]) -> Result<(), SpoolError> {
        self.end_headers();
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(at) = self.body_start {
            let replaced = self.raw.truncate(at).and_then(|()| self.raw.append(body));
            if let Err(e) = replaced {
                self.failed = Some(e.clone());
                self.raw.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The whole message as it travels in SMTP (header block, empty line,
    /// body), for signing and verifying.
    pub fn complete(&mut self) -> Result<&[u8], SpoolError> {
        self.end_headers();
        self.bytes()
    }

    /// Like [`Message::complete`], handing the bytes over (the verifier
    /// runs in a task of its own and needs them owned): the buffer itself,
    /// or the spool file's map, never a copy. The message is left empty.
    pub(crate) fn take_complete(&mut self) -> Result<Bytes, SpoolError> {
        self.end_headers();
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.raw.take().into_bytes()
    }

    fn bytes(&mut self) -> Result<&[u8], SpoolError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => self.raw.view(),
        }
    }

    /// Bytes of the message held in the heap (for tests: at most
    /// [`spool::MEMORY_MAX`](super::spool::MEMORY_MAX), whatever its size).
    pub fn resident(&self) -> usize {
        self.raw.resident()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::MEMORY_MAX;

    fn message(trust: Option<Trust>, max_size: u64) -> Message {
        let dir = std::env::temp_dir();
        Message::new(Envelope::default(), trust, None, max_size, &dir)
    }

    #[test]
    fn checked_mail_is_not_buffered_past_the_limit() {
        let mut m = message(None, 70_000);
        m.header(b"From", b" a@sender.test", "mx.test");
        let chunk = vec![b'x'; 65_535];
        m.body(&chunk);
        assert_eq!(m.too_big(), None);
        for _ in 0..100 {
            m.body(&chunk);
        }
        assert_eq!(m.too_big(), Some(23 + 101 * 65_535));
        assert_eq!(m.resident(), 0);
        assert!(!m.raw.is_spooled());
        assert_eq!(m.parts().unwrap(), (&b""[..], &b""[..]));
    }

    #[test]
    fn buffers_grow_by_a_quarter_not_double() {
        let mut m = message(None, 1 << 30);
        // Just past 16 KiB: doubling would hold 32 KiB.
        while m.raw.len() <= 17_000 {
            m.header(b"X-Filler", b" hostile header", "mx.test");
        }
        let len = m.raw.len() as usize;
        assert!(
            m.resident() <= len + len / 4 + 64,
            "{} for {len}",
            m.resident()
        );
    }

    #[test]
    fn a_large_message_is_spooled_and_read_back_whole() {
        let mut m = message(None, 64 << 20);
        m.header(b"From", b" a@sender.test", "mx.test");
        let chunk = vec![b'x'; 65_535];
        for _ in 0..320 {
            m.body(&chunk);
            assert!(m.resident() <= MEMORY_MAX, "{}", m.resident());
        }
        assert!(m.raw.is_spooled());
        let (head, body) = m.parts().unwrap();
        assert_eq!(head, b"From: a@sender.test\r\n");
        assert_eq!(body.len(), 320 * 65_535);
        let whole = m.take_complete().unwrap();
        assert_eq!(whole.len(), 23 + 320 * 65_535);
        assert!(whole.ends_with(&chunk));
    }

    #[test]
    fn trusted_mail_is_kept_whole_for_signing() {
        let mut m = message(Some(Trust::SmtpAuth), 70_000);
        m.body(&vec![b'x'; 100_000]);
        assert_eq!(m.too_big(), None);
        assert_eq!(m.complete().unwrap().len(), 100_002);
        // A bounce's new body replaces the spooled one.
        m.replace_body(b"new body\r\n").unwrap();
        assert_eq!(m.complete().unwrap(), b"\r\nnew body\r\n");
    }

    #[test]
    fn a_spool_failure_is_kept_and_reported() {
        let dir = Path::new("/nonexistent/mailkey-spool");
        let mut m = Message::new(Envelope::default(), None, None, 64 << 20, dir);
        m.header(b"From", b" a@sender.test", "mx.test");
        m.body(&vec![b'x'; 100_000]);
        m.body(b"more");
        assert_eq!(m.too_big(), None);
        assert_eq!(m.resident(), 0);
        let e = m.take_complete().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/mailkey-spool"), "{e}");
        assert!(m.complete().is_err() && m.parts().is_err());
    }
}
