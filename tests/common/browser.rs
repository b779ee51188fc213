//! A real headless browser (Debian's chromium, installed by tests/setup.sh)
//! for pages the binary writes: a screenshot, and the DOM after rendering.

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, or `None` (with a one-line note) when it is missing
/// outside CI; under `CI=true` a missing browser fails the test.
pub fn chromium() -> Option<&'static str> {
    super::require_for("the browser checks", &[super::Need::Chromium]).then_some(CHROMIUM)
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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A behaviour bound (a browser that hangs), not a timing assertion.
    let out = super::process::run_within(Duration::from_secs(120), browser, &args, b"").await;
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
