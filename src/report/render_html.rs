//! `--html FILE`: one self-contained page (inline CSS, inline SVG chart, no
//! scripts, fonts or other external resources), to mail or archive. Every
//! number carries a `data-` attribute so tests read it back from the DOM.

use super::{
    aggregate::{Count, Summary},
    evidence::{setting_name, EvidenceSummary, KINDS},
    parse,
    render_text::label,
};
use std::fmt::Write;

/// One colour per check, in registry order, distinguishable in print and
/// for colour-blind readers (Okabe–Ito palette; repeats after seven checks).
const COLOURS: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
];

/// The colour of the `i`-th check.
fn nth_colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

const CSS: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2933;background:#f5f7fa;margin:0}
main{max-width:1080px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 10px;color:#323f4b}
.sub{color:#616e7c;margin:0 0 20px}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:12px 18px;min-width:130px}
.card b{display:block;font-size:26px;font-variant-numeric:tabular-nums}.card span{color:#616e7c;font-size:13px}
table{border-collapse:collapse;background:#fff;border:1px solid #e4e7eb;border-radius:8px;width:100%}
th,td{padding:7px 12px;border-bottom:1px solid #eef0f3;text-align:left}
th{background:#f0f4f8;font-weight:600;font-size:13px;color:#3e4c59}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.all td{font-weight:600;background:#fafbfc}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:7px;vertical-align:-1px}
.chart{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.muted{color:#9aa5b1}footer{margin-top:28px;color:#9aa5b1;font-size:12px}
";

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn colour(check: &str) -> &'static str {
    parse::checks()
        .position(|c| c == check)
        .map_or("#52606d", nth_colour)
}

fn top_table(title: &str, check: &str, kind: &str, counts: &[Count]) -> String {
    let mut t = format!(
        "<table><tr><th>{}</th><th class=\"n\">would reject</th></tr>",
        esc(title)
    );
    if counts.is_empty() {
        t.push_str("<tr><td class=\"muted\" colspan=\"2\">none</td></tr>");
    }
    for c in counts {
        let _ = write!(
            t,
            "<tr data-top=\"{kind}\" data-check=\"{check}\"><td data-field=\"name\">{}</td>\
             <td class=\"n\" data-field=\"messages\">{}</td></tr>",
            esc(&c.name),
            c.messages
        );
    }
    t.push_str("</table>");
    t
}

/// A step of 1, 2 or 5 times a power of ten giving at most 5 grid lines.
fn nice_step(max: u64) -> f64 {
    let raw = (max as f64 / 5.0).max(1.0);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// Grouped bars: per day, the would-rejects of each check alone.
fn chart(s: &Summary) -> String {
    let (w, h, left, bottom, top) = (1000.0, 300.0, 48.0, 40.0, 16.0);
    let checks: Vec<&str> = parse::checks().collect();
    let max = s
        .days
        .iter()
        .flat_map(|d| checks.iter().map(|c| d.reject.get(c).copied().unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let step = nice_step(max);
    let axis = step * (max as f64 / step).ceil();
    let steps = (axis / step).round() as usize;
    let plot_h = h - bottom - top;
    let y = |v: f64| top + plot_h - v / axis * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" \
         role=\"img\" aria-label=\"Would-rejects per day by check\" \
         font-family=\"system-ui,sans-serif\" font-size=\"12\">"
    );
    for i in 0..=steps {
        let v = step * i as f64;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{w}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#616e7c\">{v}</text>",
            y = y(v),
            tx = left - 8.0,
            ty = y(v) + 4.0
        );
    }
    let days = s.days.len().max(1) as f64;
    let group = (w - left) / days;
    let bar = (group * 0.8 / checks.len() as f64).min(40.0);
    for (di, d) in s.days.iter().enumerate() {
        let x0 = left + group * di as f64 + (group - bar * checks.len() as f64) / 2.0;
        for (ci, check) in checks.iter().enumerate() {
            let n = d.reject.get(check).copied().unwrap_or(0);
            let _ = write!(
                svg,
                "<rect data-day=\"{day}\" data-check=\"{check}\" data-value=\"{n}\" x=\"{x:.1}\" \
                 y=\"{ry:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{fill}\" rx=\"2\">\
                 <title>{day} {check}: {n} would-rejects</title></rect>",
                day = esc(&d.day),
                x = x0 + bar * ci as f64,
                ry = y(n as f64),
                bw = (bar - 2.0).max(1.0),
                bh = plot_h - (y(n as f64) - top),
                fill = nth_colour(ci)
            );
        }
        // Whole dates while they fit, else `MM-DD`; and only every n-th
        // day when even those would overlap.
        let (text, width) = if s.days.len() <= 8 {
            (d.day.as_str(), 80.0)
        } else {
            (d.day.get(5..).unwrap_or(&d.day), 44.0)
        };
        let every = ((width / group).ceil() as usize).max(1);
        if di % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"#3e4c59\">{}</text>",
                esc(text),
                x = left + group * (di as f64 + 0.5),
                ty = h - bottom + 18.0
            );
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::from("<p>");
    for (i, c) in checks.iter().enumerate() {
        let _ = write!(
            legend,
            "<span class=\"swatch\" style=\"background:{}\"></span>{c} alone &nbsp; ",
            nth_colour(i)
        );
    }
    legend.push_str("</p>");
    format!("<div class=\"chart\">{svg}{legend}</div>")
}

pub fn page(s: &Summary) -> String {
    let human = |t: &str| esc(&t.replacen('T', " ", 1).replace('Z', " UTC"));
    let mut period = match (&s.first, &s.last) {
        (Some(f), Some(l)) => format!("{} to {}", human(f), human(l)),
        _ => "no messages in the period".into(),
    };
    if s.since.is_some() || s.until.is_some() {
        period.push_str(&format!(
            " (asked: since {} until {})",
            s.since.as_deref().map_or("the start".into(), human),
            s.until.as_deref().map_or("the end".into(), human)
        ));
    }
    let mut p = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>mailkey-milter report</title><style>{CSS}</style></head><body><main>\
         <h1>What enforcing would do</h1><p class=\"sub\">mailkey-milter report, {period} \
         &middot; {} log file{}</p><div class=\"cards\">",
        s.files.len(),
        if s.files.len() == 1 { "" } else { "s" }
    );
    for (field, n, what) in [
        ("messages", s.messages, "messages"),
        ("checked", s.checked, "checked"),
        ("trusted", s.trusted, "trusted (not checked)"),
        ("exempt", s.exempt, "exempt (not checked)"),
        (
            "invalid_srs_recipients",
            s.invalid_srs_recipients,
            "invalid SRS recipients (not messages)",
        ),
        (
            "challenge_recovered",
            s.let_through.challenge_recovered,
            "recovered by a challenge",
        ),
        (
            "token_recovered",
            s.let_through.token_recovered,
            "recovered by a token",
        ),
    ]
    .into_iter()
    .filter(|(field, n, _)| {
        *n > 0
            || ![
                "invalid_srs_recipients",
                "challenge_recovered",
                "token_recovered",
            ]
            .contains(field)
    }) {
        let _ = write!(
            p,
            "<div class=\"card\"><b data-field=\"{field}\">{n}</b><span>{what}</span></div>"
        );
    }
    p.push_str(
        "</div><h2>If enforced</h2><table><tr><th>Enforcing</th><th class=\"n\">would reject</th>\
         <th class=\"n\">share</th><th class=\"n\">would defer</th><th class=\"n\">share</th></tr>",
    );
    for i in &s.impact {
        let _ = write!(
            p,
            "<tr data-check=\"{c}\"{cls}><td><span class=\"swatch\" style=\"background:{col}\"></span>{l}</td>\
             <td class=\"n\" data-field=\"reject\">{}</td><td class=\"n\" data-field=\"reject_percent\">{:.1}%</td>\
             <td class=\"n\" data-field=\"tempfail\">{}</td><td class=\"n\" data-field=\"tempfail_percent\">{:.1}%</td></tr>",
            i.reject,
            i.reject_percent,
            i.tempfail,
            i.tempfail_percent,
            c = i.check,
            cls = if i.check == "all" { " class=\"all\"" } else { "" },
            col = colour(i.check),
            l = esc(&label(i.check)),
        );
    }
    let _ = write!(
        p,
        "</table><p class=\"sub\">Shares are of the {} checked messages.</p>\
         <h2>Would-rejects per day (UTC)</h2>{}",
        s.checked,
        chart(s)
    );
    p.push_str("<h2>Would-rejects per day, table</h2><table><tr><th>day (UTC)</th><th class=\"n\">checked</th>");
    for i in &s.impact {
        let _ = write!(p, "<th class=\"n\">{}</th>", esc(&label(i.check)));
    }
    p.push_str("</tr>");
    for d in &s.days {
        let _ = write!(
            p,
            "<tr><td>{day}</td><td class=\"n\" data-day=\"{day}\" data-field=\"checked\">{}</td>",
            d.checked,
            day = esc(&d.day)
        );
        for i in &s.impact {
            let _ = write!(
                p,
                "<td class=\"n\" data-day=\"{}\" data-check=\"{}\">{}</td>",
                esc(&d.day),
                i.check,
                d.reject.get(i.check).copied().unwrap_or(0)
            );
        }
        p.push_str("</tr>");
    }
    p.push_str("</table>");
    for i in &s.impact {
        let _ = write!(
            p,
            "<h2>Behind the would-rejects of {}</h2><div class=\"grid\">{}{}</div>",
            esc(&label(i.check)),
            top_table("sender domain", i.check, "domain", &i.top_domains),
            top_table("client network", i.check, "network", &i.top_networks)
        );
    }
    p.push_str(&evidence(&s.tls_evidence, s.checked));
    if let Some(lookups) = &s.lookup {
        p.push_str(
            "<h2>What the domains publish now</h2><table><tr><th>domain</th><th>mailkey</th>\
             <th>SPF</th><th>MX</th></tr>",
        );
        for l in lookups {
            let _ = write!(
                p,
                "<tr data-lookup=\"{d}\"><td>{d}</td><td data-field=\"mailkey\">{}</td>\
                 <td data-field=\"spf\">{}</td><td data-field=\"mx\">{}</td></tr>",
                l.mailkey,
                l.spf,
                l.mx,
                d = esc(&l.domain)
            );
        }
        p.push_str("</table>");
    }
    let _ = writeln!(
        p,
        "<footer>Generated by mailkey-milter report from log_version {} lines. \
         A check's would-rejects are the messages it alone would have refused; \
         &ldquo;{}&rdquo; counts each message once.</footer></main></body></html>",
        s.log_version,
        super::render_text::all_checks()
    );
    p
}

/// The certificate check per sender and per candidate setting: two
/// tables, every number in a `data-field` of a row that names its
/// organisation (`data-org`, `data-domain`) or setting (`data-setting`).
fn evidence(e: &EvidenceSummary, checked: u64) -> String {
    if e.organisations_total == 0 {
        return String::new();
    }
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    let mut p = format!(
        "<h2>TLS evidence per sending organisation</h2><p class=\"sub\">{} measured messages; \
         {} of {} organisation and sender domain pairs listed. Per kind of evidence: the \
         messages on which it passed.</p><table><tr><th>organisation</th><th>sender domain</th>\
         <th class=\"n\">messages</th><th class=\"n\">plaintext</th>",
        e.measured,
        e.organisations.len(),
        e.organisations_total
    );
    for k in &kinds {
        let _ = write!(p, "<th class=\"n\">{}</th>", esc(k));
    }
    p.push_str(
        "<th class=\"n\">none</th><th class=\"n\">untrusted certificate</th>\
         <th>probe outcomes</th></tr>",
    );
    for r in &e.organisations {
        let _ = write!(
            p,
            "<tr data-org=\"{}\" data-domain=\"{}\"><td>{}</td><td>{}</td>\
             <td class=\"n\" data-field=\"messages\">{}</td>\
             <td class=\"n\" data-field=\"plaintext\">{}</td>",
            esc(&r.organisation),
            esc(&r.sender_domain),
            esc(&r.organisation),
            esc(&r.sender_domain),
            r.messages,
            r.plaintext
        );
        for k in &kinds {
            let _ = write!(
                p,
                "<td class=\"n\" data-field=\"passed-{}\">{}</td>",
                esc(k),
                r.passed.get(k).copied().unwrap_or(0)
            );
        }
        let probe: Vec<String> = r
            .probe
            .iter()
            .map(|(w, n)| format!("<span data-probe=\"{}\">{} {n}</span>", esc(w), esc(w)))
            .collect();
        let _ = write!(
            p,
            "<td class=\"n\" data-field=\"none\">{}</td>\
             <td class=\"n\" data-field=\"untrusted\">{}</td><td>{}</td></tr>",
            r.decided_by.get("none").copied().unwrap_or(0),
            r.untrusted_certificate,
            probe.join(", ")
        );
    }
    p.push_str(
        "</table><h2>If <code>[tls] evidence</code> were</h2><table><tr><th>setting</th>\
         <th class=\"n\">would refuse</th><th class=\"n\">share</th>\
         <th class=\"n\">would defer</th><th class=\"n\">share</th>\
         <th class=\"n\">not measured</th><th>refused organisations</th></tr>",
    );
    for i in &e.settings {
        let name = setting_name(&i.evidence);
        let orgs: Vec<String> = i
            .top_organisations
            .iter()
            .map(|c| format!("{} {}", esc(&c.name), c.messages))
            .collect();
        let _ = write!(
            p,
            "<tr data-setting=\"{s}\"><td><code>{s}</code></td>\
             <td class=\"n\" data-field=\"refuse\">{}</td><td class=\"n\">{:.1}%</td>\
             <td class=\"n\" data-field=\"defer\">{}</td><td class=\"n\">{:.1}%</td>\
             <td class=\"n\" data-field=\"unmeasured\">{}</td><td>{}</td></tr>",
            i.refuse,
            i.refuse_percent,
            i.defer,
            i.defer_percent,
            i.unmeasured,
            orgs.join(", "),
            s = esc(&name)
        );
    }
    let _ = write!(
        p,
        "</table><p class=\"sub\">Shares are of the {checked} checked messages.</p>"
    );
    p
}
