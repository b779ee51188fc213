//! What the report must say, computed from the traffic tables, and the
//! checks of its JSON and text outputs against it.

use super::common::process::{self, BIN};
use super::{all_four, Msg, SCOPES};
use serde_json::Value;
use std::process::Output;

/// What the report must say about `days` (day, traffic, exempt lines).
pub struct Expect {
    pub messages: u64,
    pub checked: u64,
    pub trusted: u64,
    pub exempt: u64,
    pub reject: [u64; 5],
    pub tempfail: [u64; 5],
    /// (day, checked, would-rejects per scope)
    pub days: Vec<(String, u64, [u64; 5])>,
}

pub fn expect(days: &[(&str, &[Msg], u64)]) -> Expect {
    let mut e = Expect {
        messages: 0,
        checked: 0,
        trusted: 0,
        exempt: 0,
        reject: [0; 5],
        tempfail: [0; 5],
        days: Vec::new(),
    };
    for (day, traffic, exempt) in days {
        let mut day_reject = [0; 5];
        let mut checked = 0;
        e.exempt += exempt;
        e.messages += traffic.len() as u64 + exempt;
        for msg in *traffic {
            let Some(x) = msg.expect else {
                e.trusted += 1;
                continue;
            };
            checked += 1;
            let all = [x[0], x[1], x[2], x[3], all_four(x)];
            for (i, w) in all.iter().enumerate() {
                match w {
                    'r' => {
                        e.reject[i] += 1;
                        day_reject[i] += 1;
                    }
                    't' => e.tempfail[i] += 1,
                    _ => {}
                }
            }
        }
        e.checked += checked;
        e.days.push((day.to_string(), checked, day_reject));
    }
    e.days.sort();
    e
}

pub fn percent(n: u64, of: u64) -> f64 {
    (n as f64 * 1000.0 / of as f64).round() / 10.0
}

pub async fn report(args: &[&str], stdin: &[u8]) -> Output {
    let all = [&["report"][..], args].concat();
    process::run(BIN, &all, stdin).await
}

pub async fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = report(&all, b"").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json is JSON")
}

pub fn check_json(v: &Value, e: &Expect) {
    for (field, n) in [
        ("messages", e.messages),
        ("checked", e.checked),
        ("trusted", e.trusted),
        ("exempt", e.exempt),
    ] {
        assert_eq!(v[field], n, "{field}: {v:#}");
    }
    for (i, scope) in SCOPES.iter().enumerate() {
        let imp = &v["impact"][i];
        assert_eq!(imp["check"], *scope);
        assert_eq!(imp["reject"], e.reject[i], "{scope}");
        assert_eq!(imp["tempfail"], e.tempfail[i], "{scope}");
        assert_eq!(imp["reject_percent"], percent(e.reject[i], e.checked));
        assert_eq!(imp["tempfail_percent"], percent(e.tempfail[i], e.checked));
    }
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), e.days.len(), "{v:#}");
    for (d, (day, checked, reject)) in days.iter().zip(&e.days) {
        assert_eq!(d["day"], day.as_str());
        assert_eq!(d["checked"], *checked);
        for (i, scope) in SCOPES.iter().enumerate() {
            assert_eq!(d["reject"][scope], reject[i], "{day} {scope}");
        }
    }
}

/// `[(name, messages)]` of a top list.
pub fn top(v: &Value, scope: usize, list: &str) -> Vec<(String, u64)> {
    v["impact"][scope][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["messages"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
    p.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// The table says the same numbers.
pub async fn text_output(a: &str, b: &str, e: &Expect) {
    let out = report(&[a, b], b"").await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains(&format!(
        "Messages: {} = {} checked + {} trusted + {} exempt",
        e.messages, e.checked, e.trusted, e.exempt
    )));
    for (i, scope) in SCOPES.iter().enumerate() {
        let label = if *scope == "all" {
            "all four".to_string()
        } else {
            format!("{scope} alone")
        };
        let row = text
            .lines()
            .find(|l| l.starts_with(&label))
            .unwrap_or_else(|| panic!("no row {label}"));
        let words: Vec<&str> = row[label.len()..].split_whitespace().collect();
        let want = [
            e.reject[i].to_string(),
            format!("{:.1}%", percent(e.reject[i], e.checked)),
            e.tempfail[i].to_string(),
            format!("{:.1}%", percent(e.tempfail[i], e.checked)),
        ];
        assert_eq!(words, want, "{row}");
    }
    for (day, checked, reject) in &e.days {
        let row = text.lines().find(|l| l.starts_with(day.as_str())).unwrap();
        let mut want = vec![day.clone(), checked.to_string()];
        want.extend(reject.iter().map(|n| n.to_string()));
        assert_eq!(row.split_whitespace().collect::<Vec<_>>(), want);
    }
    assert!(text.contains("mailkey alone: 5 would-rejects\n  sender domains   good.test 5\n  client networks  127.0.1.0/24 2, 127.0.3.0/24 2, ::/48 1"), "{text}");
}
