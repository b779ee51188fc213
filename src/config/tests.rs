use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
}

#[test]
fn empty_file_gives_safe_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.mode, Mode::Monitor);
    assert_eq!(c.listen, Listen::Inet("127.0.0.1:8895".into()));
    assert!(c.dns.nameservers.is_empty());
    assert_eq!(c, Config::default());
}

#[test]
fn bad_value_names_file_line_key_and_allowed_values() {
    let e = parse("listen = \"inet:127.0.0.1:1\"\nmode = \"maybe\"\n").unwrap_err();
    assert!(e.contains("test.toml"), "{e}");
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("mode"), "{e}");
    assert!(e.contains("\"monitor\", \"enforce\""), "{e}");
}

#[test]
fn validation_errors_name_file_and_line() {
    let e = Config::parse(
        "mode = \"monitor\"\n\n[dns]\ncache_size = 10\ntimeout_ms = 0\n",
        Path::new("/etc/mk.toml"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "/etc/mk.toml, line 5: key `dns.timeout_ms`: invalid value 0: allowed is 1 to 60000"
    );
}

#[test]
fn unknown_key_is_an_error() {
    let e = parse("[mailkey]\nenfrce = true\n").unwrap_err();
    assert!(e.contains("unknown field `enfrce`"), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn values_with_rules() {
    assert!(parse("listen = \"unix:/run/m.sock\"").is_ok());
    assert!(parse("listen = \"tcp:1\"")
        .unwrap_err()
        .contains("inet:HOST:PORT"));
    assert!(parse("trusted_networks = [\"10.0.0.0/33\"]").is_err());
    assert!(parse("socket_mode = \"0999\"").is_err());
    let c = parse("[dns]\nnameservers = [\"127.0.0.1:5353\", \"::1\"]").unwrap();
    assert_eq!(c.dns.nameservers[1].0.port(), 53);
    assert!(parse("[dns]\ntimeout_ms = 0")
        .unwrap_err()
        .contains("dns.timeout_ms"));
}

#[test]
fn shipped_example_shows_the_defaults() {
    // contrib/mailkey-milter.toml documents every key with its default.
    let text = include_str!("../../contrib/mailkey-milter.toml");
    assert_eq!(parse(text).unwrap(), Config::default());
}

#[test]
fn guidance_values_are_checked() {
    let c =
        parse("[guidance]\nurl = \"https://example.org/mk\"\ncontact = \"postmaster@example.org\"")
            .unwrap();
    assert_eq!(
        c.guidance.contact.as_deref(),
        Some("postmaster@example.org")
    );
    let e = parse("[guidance]\ncontact = \"a\\nb\"").unwrap_err();
    assert!(e.contains("guidance.contact"), "{e}");
    let e = parse("[guidance]\nurl = \"https://example.org/\u{e9}\"").unwrap_err();
    assert!(e.contains("printable ASCII"), "{e}");
    let e = parse("[guidance]\ntext_file = \"/nonexistent/guidance.txt\"").unwrap_err();
    assert!(
        e.contains("guidance.text_file") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn guidance_text_file_is_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("mk-config-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.txt");
    fs::write(&good, "Ask {domain}'s postmaster.\nThen publish a key.\n").unwrap();
    let c = parse(&format!("[guidance]\ntext_file = {:?}", good)).unwrap();
    assert_eq!(
        c.guidance.text.as_deref(),
        Some("Ask {domain}'s postmaster.\nThen publish a key.\n")
    );
    for (name, text, why) in [
        ("empty.txt", " \n", "empty"),
        ("utf8.txt", "caf\u{e9}\n", "printable ASCII"),
        ("long.txt", &"x".repeat(301), "at most 300"),
        ("many.txt", &"x\n".repeat(21), "at most 20"),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let e = parse(&format!("[guidance]\ntext_file = {:?}", path)).unwrap_err();
        assert!(e.contains(why), "{name}: {e}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn guidance_text_for_is_checked_per_kind() {
    let c = parse("[guidance.text_for]\nspf = \"Allow {ip} ({helo}) for {domain}.\"").unwrap();
    assert_eq!(
        c.guidance.text_for.spf.as_deref(),
        Some("Allow {ip} ({helo}) for {domain}.")
    );
    for (toml, why) in [
        ("nokey = \"x\"", "unknown field"),
        ("tls = \"{user}\"", "unknown placeholder \"{user}\""),
        ("mx = \"caf\u{e9}\"", "printable ASCII"),
        ("mx = \" \"", "empty"),
        (&format!("mx = {:?}", "x\n".repeat(7)), "at most 6"),
    ] {
        let e = parse(&format!("[guidance.text_for]\n{toml}")).unwrap_err();
        assert!(e.contains(why), "{toml}: {e}");
    }
    let e = parse("[guidance.text_for]\nspf = \"{ip\"").unwrap_err();
    assert!(e.contains("guidance.text_for.spf"), "{e}");
}

#[test]
fn rollout_stages_are_valid_and_do_what_they_say() {
    let stage = |t: &str| parse(t).unwrap();
    let monitor = stage(include_str!("../../contrib/rollout/1-monitor.toml"));
    assert_eq!(monitor.mode, Mode::Monitor);
    let mailkey = stage(include_str!("../../contrib/rollout/2-enforce-mailkey.toml"));
    assert_eq!(mailkey.mode, Mode::Enforce);
    assert!(
        mailkey.mailkey.enforce
            && !mailkey.spf.enforce
            && !mailkey.mx.enforce
            && !mailkey.tls.enforce
    );
    let all = stage(include_str!("../../contrib/rollout/3-enforce-all.toml"));
    assert!(
        all.mode == Mode::Enforce
            && all.mailkey.enforce
            && all.spf.enforce
            && all.mx.enforce
            && all.tls.enforce
    );
}

#[test]
fn effective_config_round_trips() {
    let c = parse("mode = \"enforce\"\n[mailkey]\nno_key = \"reject\"").unwrap();
    assert_eq!(parse(&c.to_toml()).unwrap(), c);
}

#[test]
fn forwarding_sections_are_checked() {
    let e = parse("[arc]\nseal = true").unwrap_err();
    assert!(e.contains("arc.seal") && e.contains("seal_domain"), "{e}");
    let e = parse("[arc]\nseal = true\nseal_domain = \"example.org\"").unwrap_err();
    assert!(e.contains("arc.seal") && e.contains("key_file"), "{e}");
    let e = parse("[arc]\nseal_domain = \"exa mple.org\"").unwrap_err();
    assert!(e.contains("arc.seal_domain"), "{e}");
    let e = parse("[arc]\nselector = \"a;b\"").unwrap_err();
    assert!(e.contains("arc.selector"), "{e}");
    let c = parse("[arc]\nseal = true\nseal_domain = \"example.org\"\nkey_file = \"/k.pem\"");
    assert_eq!(c.unwrap().arc.selector, "arc");
    let e = parse("[srs]\ndomain = \"fwd.example.org\"").unwrap_err();
    assert!(e.contains("srs.domain") && e.contains("secret_file"), "{e}");
    let e = parse("[srs]\nmax_age_days = 0").unwrap_err();
    assert!(e.contains("srs.max_age_days"), "{e}");
    let c = parse("[forwarding]\ntrusted_arc_sealers = [\"lists.example.org\"]").unwrap();
    assert_eq!(c.forwarding.trusted_arc_sealers, ["lists.example.org"]);
}

#[test]
fn limits_are_validated_with_their_line() {
    let err = Config::parse(
        "mode = \"monitor\"\n[limits]\neom_timeout_ms = 0\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("limits.eom_timeout_ms"), "{err}");
    let err = Config::parse("[limits]\nmax_message_size = 1000\n", Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("allowed is 65536 or more"), "{err}");
    let ok = Config::parse("[limits]\nmax_connections = 5\n", Path::new("t.toml")).unwrap();
    assert_eq!(ok.limits.max_connections, 5);
    assert_eq!(ok.limits.eom_timeout_ms, 10_000);
    assert_eq!(ok.limits.spool_dir, Path::new("/var/tmp"));
    let err = Config::parse(
        "mode = \"monitor\"\n\n[limits]\nspool_dir = \"spool\"\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(
        err.contains(
            "key `limits.spool_dir`: invalid value \"spool\": allowed is an absolute path"
        ),
        "{err}"
    );
}

#[test]
fn tls_evidence_is_validated_with_its_line() {
    let parse = |t: &str| Config::parse(t, Path::new("t.toml")).map_err(|e| e.to_string());
    let e = parse("[tls]\nevidence = [\"mta-presented\"]\n").unwrap_err();
    assert!(
        e.contains("line 2") && e.contains("\"mta-verified\""),
        "{e}"
    );
    let e = parse("mode = \"monitor\"\n[tls]\nevidence = []\n").unwrap_err();
    assert!(e.contains("line 3") && e.contains("tls.evidence"), "{e}");
    // Nothing is required without require = "certificate".
    let c = parse("[tls]\nrequire = \"encryption\"\nevidence = []\n").unwrap();
    assert!(c.tls.evidence.is_empty());
    let c = parse("[tls]\nprobe = false\nmta_verified_alignment = [\"helo\", \"ptr\"]\n").unwrap();
    assert_eq!(
        c.tls.accepted(),
        [Evidence::MtaVerified, Evidence::SenderDomain]
    );
    assert!(parse("[tls]\nmta_verified_alignment = [\"cn\"]\n").is_err());
    let c = parse("[policy]\nlisten = \"inet:127.0.0.1:8896\"\n").unwrap();
    assert_eq!(c.policy.listen, Some(Listen::Inet("127.0.0.1:8896".into())));
}
