//! The configuration file: parse and validate must refuse with an error
//! (line, column, offending text), never panic, whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = Config::parse(text, Path::new("fuzz.toml")) {
            // What `--print-config` writes must read back.
            let _ = Config::parse(&config.to_toml(), Path::new("fuzz.toml"));
        }
    }
});
