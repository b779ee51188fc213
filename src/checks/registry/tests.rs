//! The registry's `refuses_with` against the code: every reply code a
//! check's results can carry is one its entry declares.

use super::{find, Check, CHECKS};
use crate::reply::Code;
use std::{fs, path::Path};

/// Every reply code by the name the source uses for it; as long as
/// [`Code::TABLE`] (checked below), so a new code must be added here.
const NAMED: [(&str, Code); 16] = [
    ("MAILKEY_FAIL", Code::MAILKEY_FAIL),
    ("SPF_FAIL", Code::SPF_FAIL),
    ("SPF_TEMPFAIL", Code::SPF_TEMPFAIL),
    ("NO_TLS", Code::NO_TLS),
    ("BAD_CERTIFICATE", Code::BAD_CERTIFICATE),
    ("TLS_TEMPFAIL", Code::TLS_TEMPFAIL),
    ("IP_LITERAL", Code::IP_LITERAL),
    ("NO_MX", Code::NO_MX),
    ("NULL_MX", Code::NULL_MX),
    ("SEVERAL", Code::SEVERAL),
    ("DNS_TEMPFAIL", Code::DNS_TEMPFAIL),
    ("INTERNAL", Code::INTERNAL),
    ("TOO_BIG", Code::TOO_BIG),
    ("INVALID_SRS", Code::INVALID_SRS),
    ("SPLIT", Code::SPLIT),
    ("NOT_AUTHORISED", Code::NOT_AUTHORISED),
];

/// The codes named (`Code::NAME`) in the non-test source of a check: its
/// module file and the files of its directory, each cut at a top-level
/// `#[cfg(test)]`.
fn codes_in_source(check: &Check) -> Vec<(&'static str, Code)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/checks");
    let name = check.name.as_str();
    let mut files = vec![dir.join(format!("{name}.rs"))];
    if let Ok(entries) = fs::read_dir(dir.join(name)) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = fs::read_to_string(file).unwrap();
        let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
        for (i, _) in code.match_indices("Code::") {
            if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `ResponseCode::…`, DNS rather than a reply.
            }
            let rest = &code[i + "Code::".len()..];
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if let Some(&named) = NAMED.iter().find(|(n, _)| *n == ident) {
                found.push(named);
            }
        }
    }
    found
}

#[test]
fn the_named_codes_are_the_reply_table() {
    for (code, what) in Code::TABLE {
        assert!(
            NAMED.iter().any(|(_, c)| *c == code),
            "{code} ({what}) is not in NAMED"
        );
    }
}

#[test]
fn every_code_a_check_gives_is_declared_in_refuses_with() {
    // DKIM2 refuses through mailkey (its entry declares none): its
    // results carry mailkey's codes, which `checks::dkim2::apply` moves
    // onto the mailkey result.
    let through = |check: &Check| match check.name.as_str() {
        "dkim2" => find(super::super::mailkey::NAME).map_or(&[][..], |m| m.refuses_with),
        _ => check.refuses_with,
    };
    let mut checked = 0;
    for check in CHECKS {
        for (name, code) in codes_in_source(check) {
            checked += 1;
            assert!(
                through(check).contains(&code) || [Code::INTERNAL, Code::TOO_BIG].contains(&code),
                "{}: its source gives Code::{name} ({code}), its registry entry's \
                 refuses_with does not declare it",
                check.name
            );
        }
        for code in check.refuses_with {
            assert!(
                Code::TABLE.iter().any(|(c, _)| c == code),
                "{}: {code} is not in reply::Code::TABLE",
                check.name
            );
        }
    }
    assert!(checked > 10, "found only {checked} codes in src/checks");
}
