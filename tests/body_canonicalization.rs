//! DKIM body canonicalisation (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) as
//! mail-auth does it for our signer and verifier, against a line-based
//! reference written from the RFC: every short body made of `a`, SP, HTAB,
//! CRLF, a bare CR and a bare LF, whole and cut into chunks (the streaming
//! signer's hasher keeps state across them). A bare CR is text — it used
//! to be dropped (issue #21 item 11; vendor/mail-auth/PATCHED.md 1); a
//! bare LF ends a line, as the MTA would have made it CRLF.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_auth::{
    crypto::Ed25519Key,
    dkim::{Canonicalization, DkimSigner},
};

const HEAD: &[u8] = b"From: a@sender.test\r\n\r\n";

/// The canonical body by the RFC, line by line.
fn reference(c: Canonicalization, body: &[u8]) -> Vec<u8> {
    let mut pieces: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    // A CR before LF is part of the line end; any other CR is text.
    let mut lines: Vec<&[u8]> = pieces
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if !last.is_empty() {
        lines.push(last);
    }
    let mut out = Vec::new();
    for line in lines {
        match c {
            Canonicalization::Simple => out.extend_from_slice(line),
            Canonicalization::Relaxed => {
                // Trailing WSP removed, runs of WSP (SP, HTAB only) made one SP.
                let end = line
                    .iter()
                    .rposition(|&b| b != b' ' && b != b'\t')
                    .map_or(0, |p| p + 1);
                let mut in_wsp = false;
                for &b in &line[..end] {
                    if b == b' ' || b == b'\t' {
                        in_wsp = true;
                    } else {
                        if in_wsp {
                            out.push(b' ');
                        }
                        in_wsp = false;
                        out.push(b);
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    match c {
        Canonicalization::Simple if out.is_empty() => b"\r\n".to_vec(),
        Canonicalization::Relaxed if out == b"\r\n" => Vec::new(),
        _ => out,
    }
}

/// The `bh=` our signer computes for `body`, fed in chunks of `chunk`.
fn body_hash(key: &[u8], c: Canonicalization, body: &[u8], chunk: usize) -> Vec<u8> {
    let key = Ed25519Key::from_pkcs8_der(key).expect("key");
    let signer = DkimSigner::from_key(key)
        .domain("sender.test")
        .selector("mailkey")
        .headers(["From"])
        .header_canonicalization(c)
        .body_canonicalization(c);
    let mut stream = signer.sign_streaming();
    let message = [HEAD, body].concat();
    for piece in message.chunks(chunk.max(1)) {
        stream.write(piece);
    }
    stream.finish().expect("sign").bh
}

#[test]
fn bodies_hash_as_the_rfc_canonicalises_them() {
    const TOKENS: [&[u8]; 6] = [b"a", b" ", b"\t", b"\r\n", b"\r", b"\n"];
    let pkcs8 = openssl::pkey::PKey::generate_ed25519()
        .and_then(|k| k.private_key_to_pkcs8())
        .expect("ed25519");
    let mut bodies: Vec<Vec<u8>> = vec![b"Hel\rlo\r\n".to_vec(), b"a \r b \r\n\r\r\n".to_vec()];
    for len in 0..=4u32 {
        for mut index in 0..TOKENS.len().pow(len) {
            let mut body = Vec::new();
            for _ in 0..len {
                body.extend_from_slice(TOKENS[index % TOKENS.len()]);
                index /= TOKENS.len();
            }
            bodies.push(body);
        }
    }
    for body in &bodies {
        for c in [Canonicalization::Simple, Canonicalization::Relaxed] {
            let expected = openssl::sha::sha256(&reference(c, body)).to_vec();
            // Whole, and cut so that every CR/LF pair is split somewhere.
            for chunk in [usize::MAX, 1, 2, 3] {
                assert_eq!(
                    body_hash(&pkcs8, c, body, chunk),
                    expected,
                    "{c:?} body {:?} in chunks of {chunk}: canonical form should be {:?}",
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(&reference(c, body)),
                );
            }
        }
    }
}
