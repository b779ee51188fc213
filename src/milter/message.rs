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
}

impl Message {
    pub fn new(envelope: Envelope, trust: Option<Trust>, pending: Option<Pending>) -> Self {
        Self {
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
        self.raw.extend_from_slice(name);
        self.raw.push(b':');
        push_crlf(&mut self.raw, value);
        self.raw.extend_from_slice(b"\r\n");
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
        self.raw.extend_from_slice(chunk);
    }

    /// The blank line between header and body, once.
    fn end_headers(&mut self) {
        if self.body_start.is_none() {
            self.raw.extend_from_slice(b"\r\n");
            self.body_start = Some(self.raw.len());
        }
    }

    /// The header block and the body (empty before any body arrived).
    pub fn parts(&self) -> (&[u8], &[u8]) {
        match self.body_start {
            Some(at) => (&self.raw[..at - 2], &self.raw[at..]),
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
