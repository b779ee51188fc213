//! A real headless browser (Debian's chromium, installed by tests/setup.sh)
//! for pages the binary writes: a screenshot, and the DOM after rendering.

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, or `None` (with a note) when it is missing outside CI;
/// under `CI=true` a missing browser fails the test.
pub fn chromium() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{CHROMIUM} is missing: tests/setup.sh installs it");
    }
    eprintln!("note: {CHROMIUM} is missing (tests/setup.sh installs it); browser checks skipped");
    None
}

async fn run(browser: &str, profile: &Path, extra: &[String], page: &Path) -> Output {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().cloned());
    args.push(format!("file://{}", page.display()));
    let child = tokio::process::Command::new(browser)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {browser}: {e}"));
    // A behaviour bound (a browser that hangs), not a timing assertion.
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{browser} {args:?} did not exit within 120 s"))
        .expect("browser output");
    assert!(
        out.status.success(),
        "{browser} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Renders `page` and writes a PNG screenshot (1200×900) to `png`.
pub async fn screenshot(browser: &str, profile: &Path, page: &Path, png: &Path) {
    run(
        browser,
        profile,
        &[format!("--screenshot={}", png.display())],
        page,
    )
    .await;
}

/// The DOM of `page` after rendering, serialised.
pub async fn dom(browser: &str, profile: &Path, page: &Path) -> String {
    let out = run(browser, profile, &["--dump-dom".to_string()], page).await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh browser profile directory below `dir`.
pub fn profile(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("profile dir");
    p
}
