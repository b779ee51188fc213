//! The plain table `report` prints by default.

use super::{
    aggregate::{Count, Summary},
    evidence::{setting_name, EvidenceSummary, KINDS},
};
use std::fmt::Write;

/// `a 3, b 2` — or `-` when empty.
fn list(counts: &[Count]) -> String {
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|c| format!("{} {}", c.name, c.messages))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The label of a scope in tables: `spf alone`, `all four`.
pub fn label(check: &str) -> String {
    if check == "all" {
        all_checks()
    } else {
        format!("{check} alone")
    }
}

/// `all four`: all of the report's checks, counted in words.
pub(crate) fn all_checks() -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let n = super::parse::checks().count();
    format!(
        "all {}",
        WORDS.get(n).map_or(n.to_string(), |w| w.to_string())
    )
}

pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    let period = match (&s.first, &s.last) {
        (Some(first), Some(last)) => format!("{first} to {last}"),
        _ => "no messages".into(),
    };
    let _ = writeln!(
        out,
        "mailkey-milter report: {period} ({} file{})",
        s.files.len(),
        if s.files.len() == 1 { "" } else { "s" }
    );
    if s.since.is_some() || s.until.is_some() {
        let _ = writeln!(
            out,
            "Period asked: since {} until {}",
            s.since.as_deref().unwrap_or("the start"),
            s.until.as_deref().unwrap_or("the end")
        );
    }
    let _ = writeln!(
        out,
        "Messages: {} = {} checked + {} trusted + {} exempt\n",
        s.messages, s.checked, s.trusted, s.exempt
    );
    if s.invalid_srs_recipients > 0 {
        let _ = writeln!(
            out,
            "Invalid SRS recipients: {} (bounces to forged or expired SRS addresses; \
             refused at RCPT with 550 5.1.1 in enforce mode)\n",
            s.invalid_srs_recipients
        );
    }
    let _ = writeln!(
        out,
        "{:<16}{:>14}{:>15}",
        "Enforcing", "would reject", "would defer"
    );
    for i in &s.impact {
        let _ = writeln!(
            out,
            "{:<16}{:>7} {:>5.1}%{:>8} {:>5.1}%",
            label(i.check),
            i.reject,
            i.reject_percent,
            i.tempfail,
            i.tempfail_percent
        );
    }
    let _ = writeln!(out, "(shares are of the {} checked messages)", s.checked);
    if !s.dkim2.results.is_empty() {
        let results: Vec<String> = s
            .dkim2
            .results
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "DKIM2 chains: {}; failures that make mailkey reject: {}",
            results.join(", "),
            s.dkim2.mailkey_rejects
        );
    }
    for i in s.impact.iter().filter(|i| i.reject > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} would-reject{}",
            label(i.check),
            i.reject,
            if i.reject == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "  sender domains   {}", list(&i.top_domains));
        let _ = writeln!(out, "  client networks  {}", list(&i.top_networks));
    }
    let l = &s.let_through;
    if !l.is_empty() {
        let _ = writeln!(out, "\nLetting wanted senders through");
        let _ = writeln!(
            out,
            "challenges offered in refusals {:>7}",
            l.challenges_offered
        );
        let _ = writeln!(
            out,
            "let through by a challenge     {:>7}  ({} would have been refused)",
            l.challenge_messages, l.challenge_recovered
        );
        let _ = writeln!(
            out,
            "let through by a token         {:>7}  ({} would have been refused)",
            l.token_messages, l.token_recovered
        );
    }
    if !s.days.is_empty() {
        let _ = writeln!(out, "\nWould reject per day (UTC)");
        let names: Vec<&str> = s.impact.iter().map(|i| i.check).collect();
        let _ = write!(out, "{:<12}{:>9}", "day", "checked");
        for n in &names {
            let _ = write!(out, "{n:>9}");
        }
        out.push('\n');
        for d in &s.days {
            let _ = write!(out, "{:<12}{:>9}", d.day, d.checked);
            for n in &names {
                let _ = write!(out, "{:>9}", d.reject.get(n).copied().unwrap_or(0));
            }
            out.push('\n');
        }
    }
    evidence(&mut out, &s.tls_evidence, s.checked);
    if let Some(lookups) = &s.lookup {
        let _ = writeln!(out, "\nWhat the domains publish now");
        let _ = writeln!(
            out,
            "{:<32}{:>11}{:>12}{:>10}",
            "domain", "mailkey", "spf", "mx"
        );
        for l in lookups {
            let _ = writeln!(
                out,
                "{:<32}{:>11}{:>12}{:>10}",
                l.domain, l.mailkey, l.spf, l.mx
            );
        }
    }
    out
}

/// The certificate check per sender and per candidate setting.
fn evidence(out: &mut String, e: &EvidenceSummary, checked: u64) {
    if e.organisations_total == 0 {
        return;
    }
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    let _ = writeln!(
        out,
        "\nTLS evidence per sending organisation ({} measured message{}; {} of {} listed)",
        e.measured,
        if e.measured == 1 { "" } else { "s" },
        e.organisations.len(),
        e.organisations_total
    );
    let _ = write!(
        out,
        "{:<24}{:<22}{:>6}{:>7}",
        "organisation", "sender domain", "msgs", "plain"
    );
    for k in &kinds {
        let _ = write!(out, "{:>15}", k);
    }
    let _ = writeln!(out, "{:>6}{:>11}  probe outcomes", "none", "untrusted");
    for r in &e.organisations {
        let _ = write!(
            out,
            "{:<24}{:<22}{:>6}{:>7}",
            r.organisation, r.sender_domain, r.messages, r.plaintext
        );
        for k in &kinds {
            let _ = write!(out, "{:>15}", r.passed.get(k).copied().unwrap_or(0));
        }
        let probe: Vec<Count> = r
            .probe
            .iter()
            .map(|(name, n)| Count {
                name: name.clone(),
                messages: *n,
            })
            .collect();
        let _ = writeln!(
            out,
            "{:>6}{:>11}  {}",
            r.decided_by.get("none").copied().unwrap_or(0),
            r.untrusted_certificate,
            list(&probe)
        );
    }
    let _ = writeln!(
        out,
        "(per kind: messages on which it passed; none: no accepted kind passed; untrusted: \
         a certificate the MTA did not verify was shown)"
    );
    let _ = writeln!(
        out,
        "\n{:<46}{:>14}{:>15}{:>14}",
        "Enforcing [tls] evidence =", "would refuse", "would defer", "not measured"
    );
    for i in &e.settings {
        let _ = writeln!(
            out,
            "{:<46}{:>7} {:>5.1}%{:>8} {:>5.1}%{:>14}",
            setting_name(&i.evidence),
            i.refuse,
            i.refuse_percent,
            i.defer,
            i.defer_percent,
            i.unmeasured
        );
    }
    let _ = writeln!(out, "(shares are of the {checked} checked messages)");
    for i in e.settings.iter().filter(|i| i.refuse > 0) {
        let _ = writeln!(
            out,
            "  refused under {}: {}",
            setting_name(&i.evidence),
            list(&i.top_organisations)
        );
    }
}
