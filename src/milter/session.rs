//! Per-connection state: what the MTA told us about the client and the
//! message in progress. The configuration is snapshotted when the MTA
//! connects, so a reload never changes a transaction mid-flight.

use crate::{
    auth_results,
    envelope::{parse_mail_from, Envelope, TlsEvidence},
    push_crlf,
    transaction::{Evaluation, Pending},
    Shared,
};
use std::{net::IpAddr, sync::Arc};

pub struct Session {
    pub shared: Arc<Shared>,
    /// Header values pass with their leading space (SMFIP_HDR_LEADSPC), both
    /// ways: values we add must then bring their own.
    pub leading_space: bool,
    pub client_ip: Option<IpAddr>,
    pub helo: String,
    pub message: Option<Message>,
}

/// The message in progress, from MAIL FROM to end of message.
pub struct Message {
    pub envelope: Envelope,
    /// Not checked: a trusted network or an SMTP-AUTH session.
    pub trusted: Option<&'static str>,
    pub pending: Option<Pending>,
    /// The header block as it travels in SMTP: CRLF line ends.
    pub raw: Vec<u8>,
    /// Where the body starts in `raw` (after the blank line), once it has.
    pub body_start: Option<usize>,
    /// RCPT TO addresses without angle brackets (bounce guidance).
    pub rcpt_to: Vec<String>,
    /// Occurrence numbers (1-based) of `Authentication-Results` headers that
    /// claim our authserv-id.
    pub forged_ar: Vec<usize>,
    ar_seen: usize,
    body_started: bool,
}

impl Session {
    pub fn new(shared: Arc<Shared>, leading_space: bool) -> Self {
        Self {
            shared,
            leading_space,
            client_ip: None,
            helo: String::new(),
            message: None,
        }
    }

    /// MAIL FROM: a new message starts (a previous one, if any, was reset).
    pub fn mail(&mut self, arg: &str, authenticated: bool, tls: TlsEvidence) {
        let envelope = Envelope {
            client_ip: self.client_ip,
            helo: self.helo.clone(),
            mail_from: parse_mail_from(arg),
            tls,
        };
        let config = &self.shared.config;
        let trusted = if authenticated {
            Some("smtp-auth")
        } else if self
            .client_ip
            .is_none_or(|ip| config.trusted_networks.iter().any(|n| n.contains(ip)))
        {
            Some("trusted-network")
        } else {
            None
        };
        let pending = trusted
            .is_none()
            .then(|| Pending::start(&self.shared.dns, &self.shared.probe, config, &envelope));
        self.message = Some(Message {
            envelope,
            trusted,
            pending,
            raw: Vec::with_capacity(8 * 1024),
            body_start: None,
            rcpt_to: Vec::new(),
            forged_ar: Vec::new(),
            ar_seen: 0,
            body_started: false,
        });
    }
}

impl Message {
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
        if !self.body_started {
            self.raw.extend_from_slice(b"\r\n");
            self.body_started = true;
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

    /// The whole message as it travels in SMTP (header block, empty line,
    /// body), for signing.
    pub fn complete(&mut self) -> &[u8] {
        if !self.body_started {
            self.raw.extend_from_slice(b"\r\n");
            self.body_started = true;
        }
        &self.raw
    }

    /// Runs the checks in a task of their own: a panic there (a bug) is
    /// caught and reported as `Err`, and the message gets `on_error`.
    pub async fn evaluate(&mut self, shared: &Arc<Shared>) -> Result<Evaluation, String> {
        self.end_headers();
        let Some(pending) = self.pending.take() else {
            return Err("no lookups were started for this message".into());
        };
        let shared = shared.clone();
        let raw = std::mem::take(&mut self.raw);
        tokio::spawn(async move { pending.finish(&shared.dns, &shared.config, &raw).await })
            .await
            .map_err(|e| format!("check task failed: {e}"))
    }
}
