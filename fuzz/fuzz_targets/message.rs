//! A message as a hostile SMTP client sends it, through the session's
//! message buffer: the MAIL FROM argument (first line), the header fields
//! as the MTA passes them (`name:value` lines up to an empty line, with
//! `Authentication-Results` claims read on the way), the body in chunks,
//! then the parse the mailkey check runs over the complete message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_auth::AuthenticatedMessage;
use mailkey_milter::{
    auth_results,
    envelope::{parse_mail_from, Envelope},
    fuzzing::Message,
};

const AUTHSERV_ID: &str = "mx.example.test";

fuzz_target!(|data: &[u8]| {
    let (first, rest) = split_line(data);
    let mail_from = parse_mail_from(&String::from_utf8_lossy(first));
    let envelope = Envelope {
        helo: "mail.example.test".into(),
        mail_from,
        ..Envelope::default()
    };
    let _ = envelope.sender_domain().name();
    // Past 32 KiB (folded values grow on the way) the message goes to a
    // spool file there, and is read back through its map.
    let spool_dir = std::env::temp_dir();
    let mut msg = Message::new(envelope, None, None, 1 << 20, &spool_dir);

    let mut rest = rest;
    loop {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        // As the MTA passes them: the name, and the value after the colon
        // with folded lines joined by LF.
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &b""[..]),
        };
        let value = fold(value);
        let _ = auth_results::claims(&String::from_utf8_lossy(&value), AUTHSERV_ID);
        msg.header(name, &value, AUTHSERV_ID);
    }
    // Body chunks of varying size (the MTA sends up to 64 KiB each).
    let mut chunk = 1 + rest.first().copied().unwrap_or(0) as usize;
    while !rest.is_empty() {
        let (c, after) = rest.split_at(chunk.min(rest.len()));
        msg.body(c);
        rest = after;
        chunk = chunk * 3 + 1;
    }
    let (header, body) = msg.parts().expect("kept in memory or spooled");
    let (hl, bl) = (header.len(), body.len());
    let complete = msg.complete().expect("kept in memory or spooled");
    assert_eq!(complete.len(), hl + 2 + bl);
    if let Some(parsed) = AuthenticatedMessage::parse_with_opts(complete, None, false) {
        for sig in parsed.dkim_signatures() {
            let _ = (&sig.header.d, &sig.header.s);
        }
    }
    // What the mailkey verifier does with it (vendor/mail-auth PATCHED.md
    // 3): no body hash while parsing, then per signature its header hash
    // input (the signed-field selection) and its body hash.
    if let Some(parsed) = AuthenticatedMessage::parse_without_body_hashes(complete, false) {
        for sig in parsed.dkim_signatures().iter().take(5) {
            let _ = parsed.dkim_header_data(sig);
            let hash = mail_auth::crypto::HashAlgorithm::from(sig.header.a);
            let _ = parsed.body_hash(sig.header.cb, hash, sig.header.l);
        }
    }
});

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (
            data[..at].strip_suffix(b"\r").unwrap_or(&data[..at]),
            &data[at + 1..],
        ),
        None => (data, &[]),
    }
}

/// A tab in the input stands for a folded line: LF, then the tab.
fn fold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    for &b in value {
        if b == b'\t' {
            out.push(b'\n');
        }
        out.push(b);
    }
    out
}
