//! The guidance a bounced sender reads: what a mailkey is and how to set
//! one up. It ends every reject reply, so that the bounce the sender's own
//! MTA writes teaches them how to stop others forging their address, and it
//! is appended to the bounces our own MTA generates ([`crate::dsn`]).
//!
//! One text, two renderings: short reply lines (each fits an SMTP reply
//! line, RFC 5321 §4.5.3.1.5) and a paragraph wrapped for a mail body. The
//! text is plain ASCII, so it can be appended to a text part of any
//! ASCII-compatible charset without re-encoding the rest.

use crate::{
    checks::{self, Failure, CHECKS},
    config::GuidanceConfig,
    protocol::{owner_name, SELECTOR},
};

/// Who the guidance is for; the checks fill their texts from it.
pub use crate::checks::Sender;

/// Body lines are wrapped at this width (RFC 5322 §2.1.1 recommends 78).
const BODY_WIDTH: usize = 72;

/// `url` and `contact`, each on a line of its own.
fn links(config: &GuidanceConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(url) = &config.url {
        lines.push(format!("Details: {url}"));
    }
    if let Some(contact) = &config.contact {
        lines.push(format!("Contact: {contact}"));
    }
    lines
}

/// The check whose failure kind `failure` is, with the kind's
/// `[guidance.text_for]` key.
fn owner(failure: Failure) -> Option<(&'static checks::Guidance, &'static str)> {
    CHECKS
        .iter()
        .filter_map(|c| c.guidance)
        .find_map(|g| (g.key)(failure).map(|key| (g, key)))
}

/// The operator's text for `failure`: its `text_for` entry, else the
/// general `text_file`.
fn custom_text(config: &GuidanceConfig, failure: Option<Failure>) -> Option<&String> {
    let (_, key) = owner(failure?)?;
    config.text_for.get(key)
}

/// The guidance for one failure: the operator's text (blank lines dropped:
/// a reply line cannot be empty in every MTA) or the built-in one. A
/// failure of unknown kind gets only the general `text_file`, if any.
fn block(config: &GuidanceConfig, failure: Option<Failure>, sender: &Sender<'_>) -> Vec<String> {
    match custom_text(config, failure).or(config.text.as_ref()) {
        Some(text) => text
            .lines()
            .map(|l| sender.fill(l.trim_end()))
            .filter(|l| !l.trim().is_empty())
            .collect(),
        None => failure
            .and_then(|f| owner(f).map(|(g, _)| (g.text)(f, sender)))
            .unwrap_or_default(),
    }
}

/// Guidance lines for an SMTP reply to `sender`, one block per failure (in
/// order, each block once), then the links. The caller sanitises and
/// bounds each line.
pub(crate) fn reply_lines(
    config: &GuidanceConfig,
    sender: &Sender<'_>,
    failures: &[Option<Failure>],
) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for failure in failures {
        let lines = block(config, *failure, sender);
        if !lines.is_empty() && !blocks.contains(&lines) {
            blocks.push(lines);
        }
    }
    let mut lines = blocks.concat();
    lines.extend(links(config));
    lines
}

/// The operator's bounce text (`text_for.no_key`, else `text_file`) with
/// `{domain}` filled in; a bounce knows no client, so `{ip}` and `{helo}`
/// are left empty.
fn bounce_text(text: &str, d: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            l.trim_end()
                .replace("{domain}", d)
                .replace("{ip}", "")
                .replace("{helo}", "")
        })
        .collect()
}

/// The paragraph appended to a bounce (a DSN our MTA generated) for the
/// bounced sender at `domain`, which publishes no mailkey: lines without
/// line ends, at most [`BODY_WIDTH`] columns where words allow.
pub fn bounce_paragraph(config: &GuidanceConfig, domain: &str) -> Vec<String> {
    let intro = format!(
        "About your domain {domain}: it publishes no mailkey, so receivers cannot \
         tell mail that really comes from {domain} from mail that only claims to. \
         If you did not send the message above, someone forged your address."
    );
    paragraph(config, &intro, domain, domain)
}

/// The same paragraph for bounces whose sender is not known when it is
/// written: Sendmail's `ErrorHeader` file (`confERROR_MESSAGE`), which
/// Sendmail puts into every bounce it writes itself; `{domain}` of an
/// operator's text becomes "your domain". Plain ASCII without `$`
/// (Sendmail expands macros in that file).
pub fn static_bounce_paragraph(config: &GuidanceConfig) -> Vec<String> {
    let intro = "About your domain: if it publishes no mailkey, receivers cannot tell \
                 mail that really comes from it from mail that only claims to. If you did \
                 not send the message in this report, someone may have forged your address.";
    paragraph(config, intro, "your domain", "YOUR-DOMAIN")
        .into_iter()
        .map(|l| l.replace('$', "?"))
        .collect()
}

/// The bounce paragraph: the operator's text (with `{domain}` as `named`)
/// or the built-in one after `intro`, with the commands for `domain`.
fn paragraph(config: &GuidanceConfig, intro: &str, named: &str, domain: &str) -> Vec<String> {
    let mut lines = Vec::new();
    match config.text_for.no_key.as_ref().or(config.text.as_ref()) {
        Some(text) => lines.extend(bounce_text(text, named)),
        None => {
            let what = "A mailkey is a signing key published in DNS: your mail server signs \
                        each outgoing message (a standard DKIM signature with selector \
                        \"mailkey\") and receivers check the signature against the key.";
            lines.extend(wrap(intro, BODY_WIDTH));
            lines.push(String::new());
            lines.extend(wrap(what, BODY_WIDTH));
            lines.push(String::new());
            lines.push(format!("To set one up for {named}:"));
            lines.push(format!(
                "1. Run: mailkey-milter keygen --domain {domain} --out /etc/mailkey"
            ));
            lines.push(format!(
                "   (or configure any DKIM signer with selector \"{SELECTOR}\")."
            ));
            lines.push(format!(
                "2. Publish the printed TXT record at {}",
                owner_name(domain)
            ));
            lines.push("   and sign your outgoing mail with the key.".into());
        }
    }
    let links = links(config);
    if !links.is_empty() {
        lines.push(String::new());
        lines.extend(links);
    }
    lines
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: Option<&str>, contact: Option<&str>, text: Option<&str>) -> GuidanceConfig {
        GuidanceConfig {
            url: url.map(Into::into),
            contact: contact.map(Into::into),
            text: text.map(Into::into),
            ..GuidanceConfig::default()
        }
    }

    fn sender(domain: &str) -> Sender<'_> {
        Sender {
            domain: Some(domain),
            ip: "192.0.2.7".parse().ok(),
            helo: "mail.a.test",
        }
    }

    #[test]
    fn reply_names_the_fix_for_each_failure_then_the_links() {
        let c = config(
            Some("https://example.org/mk"),
            Some("postmaster@example.org"),
            None,
        );
        let lines = reply_lines(&c, &sender("a.test"), &[Some(Failure::NoKey)]);
        let text = lines.join("\n");
        assert!(
            text.contains("mailkey-milter keygen --domain a.test"),
            "{text}"
        );
        assert!(text.contains("TXT record at mailkey.a.test"), "{text}");
        assert_eq!(lines[lines.len() - 2], "Details: https://example.org/mk");
        assert_eq!(lines[lines.len() - 1], "Contact: postmaster@example.org");
        let spf = reply_lines(&c, &sender("a.test"), &[Some(Failure::Spf)]).join("\n");
        assert!(
            spf.contains("Add ip4:192.0.2.7 to the SPF record of a.test"),
            "{spf}"
        );
        assert!(!spf.contains("keygen"), "{spf}");
    }

    #[test]
    fn each_failure_kind_once() {
        let c = config(None, None, None);
        let once = reply_lines(&c, &sender("a.test"), &[Some(Failure::NoMx)]);
        let twice = reply_lines(
            &c,
            &sender("a.test"),
            &[Some(Failure::NoMx), None, Some(Failure::NoMx)],
        );
        assert_eq!(once, twice);
    }

    #[test]
    fn custom_text_replaces_the_explanation() {
        let c = config(None, None, Some("Ask us.\n\nSign mail from {domain}.\n"));
        assert_eq!(
            reply_lines(&c, &sender("a.test"), &[Some(Failure::NoKey)]),
            ["Ask us.", "Sign mail from a.test."]
        );
        assert_eq!(
            bounce_paragraph(&c, "a.test"),
            ["Ask us.", "", "Sign mail from a.test."]
        );
    }

    #[test]
    fn text_for_a_kind_fills_the_placeholders() {
        let mut c = config(None, None, Some("General."));
        c.text_for.spf = Some("Allow {ip} ({helo}) for {domain}.".into());
        let s = sender("a.test");
        assert_eq!(
            reply_lines(&c, &s, &[Some(Failure::Spf), Some(Failure::NoKey)]),
            ["Allow 192.0.2.7 (mail.a.test) for a.test.", "General."]
        );
    }

    #[test]
    fn bounce_paragraph_is_wrapped_ascii() {
        let c = config(Some("https://example.org/mk"), None, None);
        let lines = bounce_paragraph(&c, "a.test");
        assert!(
            lines[0].starts_with("About your domain a.test:"),
            "{lines:?}"
        );
        assert_eq!(lines.last().unwrap(), "Details: https://example.org/mk");
        for l in &lines {
            assert!(l.len() <= BODY_WIDTH, "{l:?}");
            assert!(l.is_ascii(), "{l:?}");
        }
        let text = lines.join("\n");
        assert!(text.contains("publishes no mailkey"), "{text}");
        assert!(
            text.contains("mailkey-milter keygen --domain a.test"),
            "{text}"
        );
        assert!(text.contains("TXT record at mailkey.a.test"), "{text}");
    }

    #[test]
    fn the_static_paragraph_names_no_domain_and_no_macro() {
        let c = config(Some("https://example.org/$x"), None, None);
        let lines = static_bounce_paragraph(&c);
        let text = lines.join("\n");
        assert!(
            text.starts_with("About your domain: if it publishes no mailkey"),
            "{text}"
        );
        assert!(text.contains("keygen --domain YOUR-DOMAIN"), "{text}");
        assert!(text.contains("TXT record at mailkey.YOUR-DOMAIN"), "{text}");
        assert!(!text.contains('$'), "{text}");
        let mut c = config(None, None, None);
        c.text_for.no_key = Some("Sign mail from {domain}.".into());
        assert_eq!(static_bounce_paragraph(&c), ["Sign mail from your domain."]);
    }

    /// Every failure kind, one of each (the match stops compiling when a
    /// kind is added and not listed here).
    fn kinds() -> [Failure; 18] {
        let _listed = |f: Failure| match f {
            Failure::NoKey
            | Failure::BadKey
            | Failure::NoSignature
            | Failure::RefusedSignature
            | Failure::BodyChanged
            | Failure::BadSignature
            | Failure::Spf
            | Failure::NoTls
            | Failure::NoStartTls
            | Failure::BadCertificate
            | Failure::NoEvidence(_)
            | Failure::NoMx
            | Failure::NullMx
            | Failure::IpLiteral
            | Failure::Dkim2Replay
            | Failure::Dkim2Changed
            | Failure::Dkim2Broken
            | Failure::Dkim2Dsn => (),
        };
        [
            Failure::NoKey,
            Failure::BadKey,
            Failure::NoSignature,
            Failure::RefusedSignature,
            Failure::BodyChanged,
            Failure::BadSignature,
            Failure::Spf,
            Failure::NoTls,
            Failure::NoStartTls,
            Failure::BadCertificate,
            Failure::NoEvidence(crate::checks::tls::evidence::EvidenceSet::default()),
            Failure::NoMx,
            Failure::NullMx,
            Failure::IpLiteral,
            Failure::Dkim2Replay,
            Failure::Dkim2Changed,
            Failure::Dkim2Broken,
            Failure::Dkim2Dsn,
        ]
    }

    #[test]
    fn each_failure_kind_is_one_checks_with_a_declared_key_and_a_text() {
        for failure in kinds() {
            let owners: Vec<_> = CHECKS
                .iter()
                .filter_map(|c| c.guidance.and_then(|g| (g.key)(failure).map(|k| (c, g, k))))
                .collect();
            assert_eq!(owners.len(), 1, "{failure:?}: claimed by {}", owners.len());
            let (check, g, key) = owners[0];
            assert!(
                g.keys.contains(&key),
                "{}: {key} not in its keys",
                check.name
            );
            let lines = (g.text)(failure, &sender("a.test"));
            assert!(
                !lines.is_empty() && lines.len() <= 4,
                "{failure:?}: {lines:?}"
            );
        }
    }

    #[test]
    fn the_checks_keys_are_the_text_for_table() {
        let mut declared: Vec<&str> = CHECKS
            .iter()
            .filter_map(|c| c.guidance)
            .flat_map(|g| g.keys.iter().copied())
            .collect();
        declared.sort_unstable();
        let mut config: Vec<&str> = GuidanceConfig::default()
            .text_for
            .all()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        config.sort_unstable();
        assert_eq!(declared, config);
    }

    #[test]
    fn wrap_keeps_long_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("aaaaaaa b", 5), ["aaaaaaa", "b"]);
    }
}
