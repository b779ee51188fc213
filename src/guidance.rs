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
    checks::keyrecord::{owner_name, SELECTOR},
    config::GuidanceConfig,
};

/// Used when the sender has no domain (an IP literal, `<postmaster>`).
const NO_DOMAIN: &str = "your-domain.example";
/// Body lines are wrapped at this width (RFC 5322 §2.1.1 recommends 78).
const BODY_WIDTH: usize = 72;

/// The explanation in the reply: what a mailkey is and the two steps.
fn builtin_steps(d: &str) -> Vec<String> {
    vec![
        format!("To prove that mail from {d} is really yours, publish a mailkey"),
        "(a signing key in DNS that receivers check each message against):".into(),
        format!("1. run: mailkey-milter keygen --domain {d} --out /etc/mailkey"),
        format!("   (or use any DKIM signer with selector \"{SELECTOR}\")"),
        format!(
            "2. publish the printed TXT record at {} and sign outgoing mail.",
            owner_name(d)
        ),
    ]
}

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

/// The operator's own text (`text_file`) with `{domain}` filled in.
fn custom_lines(text: &str, d: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end().replace("{domain}", d))
        .collect()
}

/// Guidance lines for an SMTP reply, for sender domain `domain`. Blank
/// lines of a custom text are dropped (a reply line cannot be empty in
/// every MTA); the caller sanitises and bounds each line.
pub fn reply_lines(config: &GuidanceConfig, domain: Option<&str>) -> Vec<String> {
    let d = domain.unwrap_or(NO_DOMAIN);
    let mut lines = match &config.text {
        Some(text) => custom_lines(text, d)
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect(),
        None => builtin_steps(d),
    };
    lines.extend(links(config));
    lines
}

/// The paragraph appended to a bounce (a DSN our MTA generated) for the
/// bounced sender at `domain`, which publishes no mailkey: lines without
/// line ends, at most [`BODY_WIDTH`] columns where words allow.
pub fn bounce_paragraph(config: &GuidanceConfig, domain: &str) -> Vec<String> {
    let mut lines = Vec::new();
    match &config.text {
        Some(text) => lines.extend(custom_lines(text, domain)),
        None => {
            let intro = format!(
                "About your domain {domain}: it publishes no mailkey, so receivers cannot \
                 tell mail that really comes from {domain} from mail that only claims to. \
                 If you did not send the message above, someone forged your address."
            );
            let what = "A mailkey is a signing key published in DNS: your mail server signs \
                        each outgoing message (a standard DKIM signature with selector \
                        \"mailkey\") and receivers check the signature against the key.";
            lines.extend(wrap(&intro, BODY_WIDTH));
            lines.push(String::new());
            lines.extend(wrap(what, BODY_WIDTH));
            lines.push(String::new());
            lines.push(format!("To set one up for {domain}:"));
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

    #[test]
    fn reply_names_the_domain_both_steps_and_the_links() {
        let c = config(
            Some("https://example.org/mk"),
            Some("postmaster@example.org"),
            None,
        );
        let lines = reply_lines(&c, Some("a.test"));
        let text = lines.join("\n");
        assert!(
            text.contains("mailkey-milter keygen --domain a.test"),
            "{text}"
        );
        assert!(text.contains("selector \"mailkey\""), "{text}");
        assert!(text.contains("TXT record at mailkey.a.test"), "{text}");
        assert_eq!(lines[lines.len() - 2], "Details: https://example.org/mk");
        assert_eq!(lines[lines.len() - 1], "Contact: postmaster@example.org");
    }

    #[test]
    fn custom_text_replaces_the_explanation() {
        let c = config(None, None, Some("Ask us.\n\nSign mail from {domain}.\n"));
        assert_eq!(
            reply_lines(&c, Some("a.test")),
            ["Ask us.", "Sign mail from a.test."]
        );
        assert_eq!(
            bounce_paragraph(&c, "a.test"),
            ["Ask us.", "", "Sign mail from a.test."]
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
    fn wrap_keeps_long_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("aaaaaaa b", 5), ["aaaaaaa", "b"]);
    }
}
