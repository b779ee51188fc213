//! `--lookup`, refusals and the HTML page (in a real browser).

use super::{
    common::{browser, process::write},
    expect::{json, report},
    SCOPES,
};
use serde_json::Value;
use std::path::Path;

/// `--lookup` asks the name servers of the configuration now.
pub async fn lookups(config: &Path, a: &str, b: &str) {
    let v = json(&["--config", config.to_str().unwrap(), "--lookup", a, b]).await;
    let found: Vec<(String, String, String, String)> = v["lookup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |f: &str| l[f].as_str().unwrap().to_string();
            (s("domain"), s("mailkey"), s("spf"), s("mx"))
        })
        .collect();
    let want = [
        ("good.test", "published", "strict", "real"),
        ("nomx.test", "published", "strict", "none"),
        ("softspf.test", "published", "not-strict", "real"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(d, k, s, m)| (d.to_string(), k.to_string(), s.to_string(), m.to_string()))
        .collect();
    assert_eq!(found, want);
    // The table says the same.
    let out = report(
        &["--config", config.to_str().unwrap(), "--lookup", a, b],
        b"",
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    let table = text.split("What the domains publish now\n").nth(1).unwrap();
    println!("What the domains publish now\n{table}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let want: Vec<Vec<&str>> = want
        .iter()
        .map(|(d, k, s, m)| vec![d.as_str(), k.as_str(), s.as_str(), m.as_str()])
        .collect();
    assert_eq!(rows, want);
}

/// Lines of an unknown version are refused, naming file and line.
pub async fn refusals(dir: &Path, log: &[String]) {
    let mut lines = log.to_vec();
    let at = lines
        .iter()
        .position(|l| l.contains("\"queue_id\""))
        .unwrap();
    lines[at] = lines[at].replace("\"log_version\":2", "\"log_version\":3");
    let file = dir.join("future.log");
    write(&file, &(lines.join("\n") + "\n"));
    let out = report(&[file.to_str().unwrap()], b"").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "future.log, line {}: log_version 3 is unknown",
            at + 1
        )),
        "{err}"
    );

    // A text-format line is skipped, and said so; the JSON lines still count.
    let mut lines = log.to_vec();
    lines.insert(
        0,
        "2026-11-23T09:56:14Z  INFO message queue_id=Q client=192.0.2.1".into(),
    );
    write(&file, &(lines.join("\n") + "\n"));
    let out = report(&[file.to_str().unwrap(), "--json"], b"").await;
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped 1 line that is not JSON"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checked"], 11);
}

/// The page in a real browser: a screenshot, and its numbers read back
/// from the rendered DOM equal the JSON's.
pub async fn html(dir: &Path, a: &str, b: &str, v: &Value) {
    let page = dir.join("report.html");
    let out = report(&[a, b, "--html", page.to_str().unwrap()], b"").await;
    assert!(out.status.success());
    let source = std::fs::read_to_string(&page).unwrap();
    for external in ["src=", "href=", "url(", "@import", "<script"] {
        assert!(!source.contains(external), "{external} in the page");
    }
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // Kept under target/ to be looked at after the run.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&png);
    browser::screenshot(chromium, &browser::profile(dir, "p1"), &page, &png).await;
    let image = std::fs::read(&png).expect("screenshot written");
    assert!(image.starts_with(b"\x89PNG"), "not a PNG");
    assert!(image.len() > 20_000, "screenshot of {} bytes", image.len());
    println!("screenshot: {}", png.display());

    let dom = browser::dom(chromium, &browser::profile(dir, "p2"), &page).await;
    let after = |anchor: &str, field: &str| -> String {
        let from = dom
            .find(anchor)
            .unwrap_or_else(|| panic!("{anchor} not in DOM"));
        let marker = format!("data-field=\"{field}\">");
        let at = from + dom[from..].find(&marker).unwrap() + marker.len();
        dom[at..at + dom[at..].find('<').unwrap()].to_string()
    };
    for field in ["messages", "checked", "trusted", "exempt"] {
        assert_eq!(
            after("class=\"cards\"", field),
            v[field].to_string(),
            "{field}"
        );
    }
    for imp in v["impact"].as_array().unwrap() {
        let row = format!("<tr data-check=\"{}\"", imp["check"].as_str().unwrap());
        assert_eq!(after(&row, "reject"), imp["reject"].to_string());
        assert_eq!(after(&row, "tempfail"), imp["tempfail"].to_string());
        let pct = format!("{:.1}%", imp["reject_percent"].as_f64().unwrap());
        assert_eq!(after(&row, "reject_percent"), pct);
        for (kind, list) in [("domain", "top_domains"), ("network", "top_networks")] {
            for c in imp[list].as_array().unwrap() {
                let entry = format!(
                    "data-top=\"{kind}\" data-check=\"{}\"><td data-field=\"name\">{}</td>",
                    imp["check"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                );
                assert_eq!(after(&entry, "messages"), c["messages"].to_string());
            }
        }
    }
    for d in v["days"].as_array().unwrap() {
        let day = d["day"].as_str().unwrap();
        for scope in SCOPES {
            let n = &d["reject"][scope];
            let cell = format!("data-day=\"{day}\" data-check=\"{scope}\">{n}<");
            assert!(dom.contains(&cell), "{cell}");
            if scope != "all" {
                let bar =
                    format!("<rect data-day=\"{day}\" data-check=\"{scope}\" data-value=\"{n}\"");
                assert!(dom.contains(&bar), "{bar}");
            }
        }
    }
}
