//! The messages both milters verify: distinct ~5 KB plain-text messages,
//! each signed with the algorithm's key (selector `mailkey`, so the same
//! signature is a mailkey for us and an ordinary DKIM signature for
//! OpenDKIM).

use crate::common::TestKey;

/// Words for the bodies: enough variety that no two messages are alike.
const WORDS: [&str; 16] = [
    "quarterly",
    "report",
    "figures",
    "attached",
    "meeting",
    "tuesday",
    "budget",
    "review",
    "invoice",
    "shipment",
    "delivery",
    "schedule",
    "please",
    "confirm",
    "regards",
    "thanks",
];

/// Body size to aim for, in octets.
const BODY_OCTETS: usize = 5000;

/// Message `n` from `from`, unsigned, CRLF line ends.
fn message(from: &str, n: usize) -> String {
    let mut body = String::with_capacity(BODY_OCTETS + 100);
    let mut line = String::new();
    let mut k = n;
    while body.len() < BODY_OCTETS {
        // A small linear congruential walk through the words.
        k = k.wrapping_mul(1103515245).wrapping_add(12345);
        line.push_str(WORDS[(k >> 16) % WORDS.len()]);
        if line.len() > 66 {
            body.push_str(&line);
            body.push_str("\r\n");
            line.clear();
        } else {
            line.push(' ');
        }
    }
    format!(
        "From: Sender <{from}>\r\nTo: bob@receiver.test\r\nSubject: Report number {n}\r\n\
         Date: Mon, 23 Nov 2026 10:{:02}:{:02} +0000\r\nMessage-ID: <{n}.bench@{}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        n / 60 % 60,
        n % 60,
        from.rsplit('@').next().unwrap_or("sender.test"),
    )
}

/// `count` distinct messages from `from`, signed by `key` for `domain`.
pub fn signed(key: &TestKey, from: &str, domain: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| key.sign(&message(from, n), domain, "mailkey"))
        .collect()
}
