//! Organisations: the registrable domain of a name by the Public Suffix
//! List (`smtp.gmail.com` → `gmail.com`, `mail.example.co.uk` →
//! `example.co.uk`), used for the name rule of MTA-verified certificates
//! (the certificate's CN of the big senders never equals their HELO or
//! PTR name, but shares their organisation) and to label the sending
//! organisation in the log and the report.

use crate::envelope::domain_name;

/// The organisation of a message when nothing names one.
pub(crate) const UNKNOWN: &str = "unknown";

/// The registrable domain of `name` (lower case, no trailing dot); `None`
/// for an address literal, a single label or a bare public suffix. A name
/// under a suffix the list does not know (`.test`) counts its last two
/// labels, the list's default rule.
pub(crate) fn registrable(name: &str) -> Option<String> {
    let name = domain_name(name)?;
    psl::domain_str(&name).map(str::to_string)
}

/// The host name a certificate subject names: Postfix passes the CN
/// (`smtp.gmail.com`), Sendmail a whole DN (`/C=US/O=Google LLC/CN=smtp.gmail.com`).
pub fn subject_name(subject: &str) -> &str {
    let subject = subject.trim();
    if !subject.contains('=') {
        return subject;
    }
    subject
        .split(['/', ','])
        .filter_map(|part| part.trim().split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("CN"))
        .map(|(_, v)| v.trim())
        .next_back()
        .unwrap_or("")
}

/// Who sent the message: the organisation of a verified certificate, else
/// of the first confirmed PTR name, else of the HELO name; [`UNKNOWN`]
/// when none names one.
pub fn organisation(certificate: Option<&str>, ptr_names: &[String], helo: &str) -> String {
    certificate
        .and_then(registrable)
        .or_else(|| ptr_names.iter().find_map(|p| registrable(p)))
        .or_else(|| registrable(helo))
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// Do `a` and `b` belong to one organisation?
pub fn aligned(a: &str, b: &str) -> bool {
    matches!((registrable(a), registrable(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("smtp.gmail.com").as_deref(), Some("gmail.com"));
        assert_eq!(
            registrable("Mail-WR1-F54.Google.COM.").as_deref(),
            Some("google.com")
        );
        assert_eq!(
            registrable("a.b.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable("mx.sender.test").as_deref(),
            Some("sender.test")
        );
        assert_eq!(registrable("co.uk"), None);
        assert_eq!(registrable("127.0.0.1"), None);
        assert_eq!(registrable("[192.0.2.1]"), None);
        assert_eq!(registrable("localhost"), None);
    }

    #[test]
    fn the_big_senders_align_by_organisation_not_by_name() {
        // Microsoft: the CN and the HELO name share outlook.com.
        assert!(aligned(
            "mail.protection.outlook.com",
            "mail-db5eur02on2101.outbound.protection.outlook.com"
        ));
        // Gmail: the CN is gmail.com's, the HELO google.com's.
        assert!(!aligned("smtp.gmail.com", "mail-wr1-f54.google.com"));
        assert!(aligned("smtp.gmail.com", "gmail.com"));
    }

    #[test]
    fn subjects_and_organisations() {
        assert_eq!(subject_name("smtp.gmail.com"), "smtp.gmail.com");
        assert_eq!(
            subject_name("/C=US/O=Google LLC/CN=smtp.gmail.com"),
            "smtp.gmail.com"
        );
        assert_eq!(subject_name("CN=a.test, O=X"), "a.test");
        assert_eq!(
            organisation(Some("smtp.gmail.com"), &[], "mail.google.com"),
            "gmail.com"
        );
        assert_eq!(
            organisation(None, &["a.mx.example.org".into()], "x.test"),
            "example.org"
        );
        assert_eq!(organisation(None, &[], "[127.0.0.1]"), UNKNOWN);
    }
}
