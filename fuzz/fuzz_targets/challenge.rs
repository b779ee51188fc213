//! The challenge page's parsers of what anyone on the Internet sends: the
//! HTTP request head, the form body, and the signed part of a URL. None
//! may panic; a URL verifies only if it is exactly what we signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::challenge::{http, Challenges};
use std::sync::LazyLock;

static CHALLENGES: LazyLock<Challenges> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("mk-fuzz-challenge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "a fuzzing secret of enough length\n").expect("secret");
    let config = mailkey_milter::config::ChallengeConfig {
        when: mailkey_milter::config::ChallengeWhen::Refused,
        url: Some("https://mx.example.org/c".into()),
        secret_file: Some(secret),
        ..Default::default()
    };
    Challenges::load(&config).expect("load").expect("on")
});

fuzz_target!(|data: &[u8]| {
    let _ = http::parse_head(data);
    let _ = http::form_fields(data);
    let text = String::from_utf8_lossy(data);
    if let Some(c) = CHALLENGES.verify(&text) {
        // Only our own signature verifies, and it signs exactly this.
        assert_eq!(CHALLENGES.sign(&c).as_deref(), Some(&*text));
    }
});
