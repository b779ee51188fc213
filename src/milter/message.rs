//! The message in progress, from MAIL FROM to end of message: its envelope,
//! the checks started for it, and its bytes as they travel in SMTP.

use crate::{auth_results, envelope::Envelope, push_crlf, transaction::Pending};

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

/// The most a client's `SIZE=` hint reserves for a message buffer.
pub const SIZE_HINT_MAX: usize = 1024 * 1024;

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
    /// the body, with CRLF line ends.
    raw: Vec<u8>,
    /// Where the body starts in `raw`, once it has.
    body_start: Option<usize>,
    ar_seen: usize,
    /// Bytes kept at most (`limits.max_message_size`); `None` for trusted
    /// clients, whose mail is signed whole (the MTA's own size limit bounds
    /// it, and they are accountable).
    limit: Option<u64>,
    /// Bytes received (header fields and body as buffered), kept or not.
    size: u64,
}

impl Message {
    /// `max_size`: `limits.max_message_size`, applied to checked mail.
    pub fn new(
        envelope: Envelope,
        trust: Option<Trust>,
        pending: Option<Pending>,
        max_size: u64,
    ) -> Self {
        Self {
            limit: trust.is_none().then_some(max_size),
            size: 0,
            envelope,
            trust,
            pending,
            rcpt_to: Vec::new(),
            forged_ar: Vec::new(),
            raw: Vec::with_capacity(8 * 1024),
            body_start: None,
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

    /// Appends `bytes` unless the message is over its limit: from then on
    /// nothing more is buffered, only counted.
    fn keep(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.too_big().is_none() {
            grow(&mut self.raw, bytes.len());
            self.raw.extend_from_slice(bytes);
        } else if !self.raw.is_empty() {
            self.raw = Vec::new(); // what was kept is of no use any more
        }
    }

    /// `Some(size)` once more than the limit arrived.
    pub fn too_big(&self) -> Option<u64> {
        self.limit
            .is_some_and(|limit| self.size > limit)
            .then_some(self.size)
    }

    /// The client announced the message's size (`SIZE=` at MAIL FROM, RFC
    /// 1870): room for it at once instead of growing by doubling (each step
    /// a copy). The hint comes from the network, so it buys at most
    /// [`SIZE_HINT_MAX`]; a larger message grows from there.
    pub fn expect_size(&mut self, size: usize) {
        let wanted = size.min(SIZE_HINT_MAX);
        self.raw.reserve(wanted.saturating_sub(self.raw.len()));
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
    pub fn parts(&self) -> (&[u8], &[u8]) {
        match self.body_start {
            Some(at) => (
                self.raw.get(..at.saturating_sub(2)).unwrap_or_default(),
                self.raw.get(at..).unwrap_or_default(),
            ),
            None => (&self.raw, &[]),
        }
    }

    /// The body was replaced (bounce guidance): what is signed or checked
    /// afterwards is the new one.
    pub fn replace_body(&mut self, body: &[u8]) {
        self.end_headers();
        if let Some(at) = self.body_start {
            self.raw.truncate(at);
            self.raw.extend_from_slice(body);
        }
    }

    /// The whole message as it travels in SMTP (header block, empty line,
    /// body), for signing and verifying.
    pub fn complete(&mut self) -> &[u8] {
        self.end_headers();
        &self.raw
    }

    /// Like [`Message::complete`], handing the buffer over (the verifier
    /// runs in a task of its own and needs it owned): no copy of the
    /// message. The buffer is left empty.
    pub fn take_complete(&mut self) -> Vec<u8> {
        self.end_headers();
        std::mem::take(&mut self.raw)
    }
}

/// Room for `more` bytes, growing by a quarter instead of doubling: the
/// messages in flight are most of the daemon's memory under load (a
/// thousand connections each holding one, SECURITY.md "Soak"), and doubling
/// leaves up to half of each buffer unused. Large buffers grow in place
/// (mremap), so the extra steps cost little.
fn grow(buf: &mut Vec<u8>, more: usize) {
    if buf.capacity() - buf.len() < more {
        buf.reserve_exact(more.max(buf.len() / 4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_mail_is_not_buffered_past_the_limit() {
        let mut m = Message::new(Envelope::default(), None, None, 70_000);
        m.header(b"From", b" a@sender.test", "mx.test");
        let chunk = vec![b'x'; 65_535];
        m.body(&chunk);
        assert_eq!(m.too_big(), None);
        for _ in 0..100 {
            m.body(&chunk);
        }
        assert_eq!(m.too_big(), Some(23 + 101 * 65_535));
        assert!(m.raw.capacity() <= 70_000 * 2, "kept {}", m.raw.capacity());
        assert_eq!(m.parts(), (&b""[..], &b""[..]));
    }

    #[test]
    fn buffers_grow_by_a_quarter_not_double() {
        let mut m = Message::new(Envelope::default(), None, None, 1 << 30);
        // Just past 16 KiB: doubling would hold 32 KiB.
        while m.raw.len() <= 17_000 {
            m.header(b"X-Filler", b" hostile header", "mx.test");
        }
        let len = m.raw.len();
        assert!(
            m.raw.capacity() <= len + len / 4 + 64,
            "{} for {len}",
            m.raw.capacity()
        );
    }

    #[test]
    fn trusted_mail_is_kept_whole_for_signing() {
        let trust = Some(Trust::SmtpAuth);
        let mut m = Message::new(Envelope::default(), trust, None, 70_000);
        m.body(&vec![b'x'; 100_000]);
        assert_eq!(m.too_big(), None);
        assert_eq!(m.complete().len(), 100_002);
    }
}
