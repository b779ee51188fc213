//! Reply sanitising: whatever a hostile sender gets into a reason (its
//! domain, an SPF `exp=` text, a DNS answer), the reply line that comes out
//! is printable ASCII without line breaks, with every `%` doubled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::reply::sanitize;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = sanitize(&text);
    assert!(out.bytes().all(|b| (b' '..=b'~').contains(&b)), "{out:?}");
    // Every % comes in pairs: no format directive survives.
    assert!(out.split("%%").all(|s| !s.contains('%')), "{out:?}");
});
