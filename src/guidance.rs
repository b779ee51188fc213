//! The guidance a rejected sender reads: what a mailkey is and how to set
//! one up. It ends every reject reply, so that the bounce the sender's own
//! MTA writes teaches them how to stop others forging their address.

use crate::config::GuidanceConfig;

/// Guidance lines for an SMTP reply, for sender domain `domain`.
pub fn reply_lines(config: &GuidanceConfig, domain: Option<&str>) -> Vec<String> {
    let d = domain.unwrap_or("your-domain.example");
    let mut lines = vec![
        format!("To prove that mail from {d} is really yours, publish a mailkey:"),
        format!("1. run: mailkey-milter keygen --domain {d} --out /etc/mailkey"),
        "   (or use any DKIM signer with selector \"mailkey\")".to_string(),
        format!("2. publish the printed TXT record at mailkey.{d} and sign outgoing mail."),
    ];
    if let Some(url) = &config.url {
        lines.push(format!("Details: {url}"));
    }
    lines
}
