//! The DSN rewrite over a whole message as it reaches the milter: the
//! header block is classified, and the body of anything that classifies as
//! a DSN gets the guidance paragraph. The rewrite is also tried with the
//! boundary named on the first line, so that the MIME walk is reached
//! without the fuzzer first having to find a matching Content-Type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::dsn::{append_guidance, classify, Kind};

fuzz_target!(|data: &[u8]| {
    let paragraph = vec![
        "Please ask the sender to publish a mailkey:".to_string(),
        "https://mailkey.example.test/setup (100% free)".to_string(),
    ];
    let at = find(data, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(data, b"\n\n").map(|i| (i, 2)));
    let (header, body) = match at {
        Some((i, n)) => (&data[..i], &data[i + n..]),
        None => (data, &b""[..]),
    };
    if let Kind::Dsn { boundary } = classify(header) {
        check(body, boundary.as_deref(), &paragraph);
    }
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    if let Ok(boundary) = std::str::from_utf8(first) {
        check(body, Some(boundary.trim_end_matches('\r')), &paragraph);
    }
});

fn check(body: &[u8], boundary: Option<&str>, paragraph: &[String]) {
    if let Ok(out) = append_guidance(body, boundary, paragraph) {
        // A splice into one part: nothing is lost.
        assert!(out.len() >= body.len());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
