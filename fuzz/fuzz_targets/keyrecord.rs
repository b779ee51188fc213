//! The TXT records at `mailkey.D`, as any DNS server can answer them: the
//! tag-list, the key checks (base64, RSA DER, Ed25519 length) and mail-auth's
//! own key parse. Each input line is one TXT record of the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailkey_milter::{
    protocol::{parse_record, KeyLookup, Tags, MAX_KEYS},
    dns::TxtAnswer,
};

fuzz_target!(|data: &[u8]| {
    let tags = Tags::parse(data);
    let _ = parse_record(data, &tags);
    let records: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let n = records.len();
    if let KeyLookup::Published { keys, records, .. } =
        KeyLookup::from_answer(TxtAnswer::Records(records))
    {
        assert!(keys.len() <= MAX_KEYS);
        assert_eq!(records.len(), n);
    }
});
