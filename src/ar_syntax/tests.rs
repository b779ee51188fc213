use super::*;

fn one(value: &str) -> Vec<ResInfo> {
    parse(value).expect("parses").results
}

#[test]
fn results_are_read_without_comments() {
    let r = one(
        " lists.example.org;\r\n\tmailkey=pass (good (nested)) header.d=Sender.test \
         header.s=mailkey;\r\n\tspf=fail smtp.mailfrom=\"a@sender.test\"; garbage",
    );
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].method.as_str(), r[0].result.as_str()),
        ("mailkey", "pass")
    );
    assert_eq!(r[0].prop("header.d"), Some("Sender.test"));
    assert_eq!(r[0].prop("header.s"), Some("mailkey"));
    assert_eq!(
        (r[1].method.as_str(), r[1].result.as_str()),
        ("spf", "fail")
    );
    assert_eq!(r[1].prop("smtp.mailfrom"), Some("a@sender.test"));
}

#[test]
fn a_semicolon_in_a_comment_or_quoted_string_does_not_split() {
    let r = one("id (x; y); spf=pass smtp.mailfrom=a@b.test (c; mailkey=pass)");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].method, "spf");
    // Issue #21: the quoted local part of a forged MAIL FROM, as our writer
    // records it and as an address-form writer would.
    let forged = "\"x;mailkey=pass header.d=victim.test;spf=pass smtp.mailfrom=a@victim.test;\"";
    for written in [
        format!(
            "mx.test; spf=fail smtp.mailfrom={}",
            value(&format!("{forged}@victim.test"))
        ),
        format!("mx.test; spf=fail smtp.mailfrom={forged}@victim.test"),
    ] {
        let r = one(&written);
        assert_eq!(r.len(), 1, "{written}: {r:?}");
        assert_eq!(r[0].result, "fail");
        assert_eq!(
            r[0].prop("smtp.mailfrom"),
            Some(format!("{forged}@victim.test").as_str())
        );
    }
}

#[test]
fn what_does_not_parse_is_dropped_without_reading_into_it() {
    // A result without `=`, a property without a ptype (Microsoft's
    // `action=none`), a value that is neither token nor address
    // (`header.b=` with `/`), a stray `)`.
    let r = one(
        "mx.test; garbage; dmarc=pass action=none header.from=a.test; \
         dkim=pass header.b=ab/cd header.d=a.test ) header.s=s1; spf=pass \"x; dkim=pass\" \
         smtp.mailfrom=a.test",
    );
    let methods: Vec<&str> = r.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["dmarc", "dkim", "spf"]);
    assert_eq!(r[0].props, [("header.from".into(), "a.test".into())]);
    assert_eq!(r[1].prop("header.b"), None);
    assert_eq!(r[1].prop("header.d"), Some("a.test"));
    assert_eq!(r[1].prop("header.s"), Some("s1"));
    assert_eq!(r[2].prop("smtp.mailfrom"), Some("a.test"));
}

#[test]
fn an_unterminated_quote_or_comment_ends_the_reading() {
    let r = one("mx.test; spf=pass smtp.mailfrom=\"a; mailkey=pass header.d=v.test");
    assert!(r.is_empty(), "{r:?}");
    let r = one("mx.test; spf=pass (a; mailkey=pass header.d=v.test");
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn version_reason_none_and_method_version() {
    let r = one("mx.test 1; dkim/1=pass reason=\"good; sig\" header.d=a.test; none");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].method, "dkim");
    assert_eq!(r[0].prop("header.d"), Some("a.test"));
    assert_eq!(one("mx.test; none"), []);
}

#[test]
fn authserv_id_is_unquoted() {
    assert_eq!(authserv_id(" mx.test; x").as_deref(), Some("mx.test"));
    assert_eq!(
        authserv_id("(c) \"mx\\.test\"; x").as_deref(),
        Some("mx.test")
    );
    assert_eq!(authserv_id("\"\\mx.test\"").as_deref(), Some("mx.test"));
    assert_eq!(authserv_id("mx.test(c);").as_deref(), Some("mx.test"));
    assert_eq!(authserv_id("; spf=pass"), None);
    assert_eq!(authserv_id("(unterminated mx.test"), None);
}

#[test]
fn arc_instance_prefix() {
    let (i, r) = parse_arc(" i=2; lists.test; spf=pass smtp.mailfrom=a@b.test").expect("aar");
    assert_eq!(i, 2);
    assert_eq!(r.authserv_id, "lists.test");
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        parse_arc("i = 12 (c) ; x.test; none").map(|(i, _)| i),
        Some(12)
    );
    assert_eq!(parse_arc("i=123; x.test"), None);
    assert_eq!(parse_arc("x.test; spf=pass"), None);
}

#[test]
fn values_are_bare_only_when_they_read_back_bare() {
    assert_eq!(value("user@example.com"), "user@example.com");
    assert_eq!(value("@example.com"), "@example.com");
    assert_eq!(value("example.com"), "example.com");
    assert_eq!(value("a b\"c"), "\"a b\\\"c\"");
    assert_eq!(value(""), "\"\"");
    assert_eq!(value("a=b"), "\"a=b\"");
    assert_eq!(value("\"q\"@example.com"), "\"\\\"q\\\"@example.com\"");
    assert_eq!(value("a@b@c.test"), "\"a@b@c.test\"");
}

#[test]
fn addresses_and_domains() {
    assert_eq!(addr_spec("a.b+c@x.test"), Some(("a.b+c", "x.test")));
    assert_eq!(
        addr_spec("\"a@b; c\"@x.test"),
        Some(("\"a@b; c\"", "x.test"))
    );
    assert_eq!(addr_spec("@x.test"), Some(("", "x.test")));
    assert_eq!(addr_spec("x.test"), None);
    assert_eq!(addr_spec("a..b@x.test"), None);
    assert_eq!(addr_spec("a@x.test."), None);
    assert_eq!(addr_spec("a@-x.test"), None);
    assert!(is_domain_name("Sub.Example-1.test"));
    assert!(!is_domain_name("x.test;"));
    assert!(!is_domain_name(""));
}

#[test]
fn comments_carry_no_structure() {
    assert_eq!(comment("a (b) \\c"), "(a  b   c)");
    assert_eq!(comment("é"), "(?)");
    assert_eq!(comment(&"x".repeat(400)).len(), COMMENT_MAX + 2);
}

#[test]
fn an_authserv_id_in_address_form_is_written_quoted_and_reads_back() {
    // Found by tests/properties.rs: `@a` is a bare property value, but an
    // authserv-id is a token or a quoted-string.
    for id in ["@a", "a@b.test", "mx.test"] {
        let written = format!("{}; spf=pass smtp.mailfrom=a@b.test", authserv_id_value(id));
        assert_eq!(authserv_id(&written).as_deref(), Some(id), "{written}");
    }
    assert_eq!(authserv_id_value("@a"), "\"@a\"");
}
