//! `Authentication-Results` and `ARC-Authentication-Results` as a trusted
//! sealer or a forger writes them (RFC 8601, `ar_syntax`): the
//! parser never panics, whatever it reads as a property value reads back
//! the same once our writer has written it, and the claim check never
//! panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::{ar_syntax as syntax, auth_results::claims};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = claims(&text, "mx.example.org");
    let parsed = syntax::parse(&text).into_iter().map(|r| r.results);
    let arc = syntax::parse_arc(&text).into_iter().map(|(_, r)| r.results);
    for result in parsed.chain(arc).flatten() {
        for (name, value) in &result.props {
            let written = format!("x; m=pass {name}={}", syntax::value(value));
            let again = syntax::parse(&written).map(|r| r.results);
            let back = again.as_ref().and_then(|r| r.first()).and_then(|r| r.prop(name));
            let want: String = value.chars().filter(|c| !c.is_control()).collect();
            assert_eq!(back, Some(want.as_str()), "{written:?}");
        }
    }
});
