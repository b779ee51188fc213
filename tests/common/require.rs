//! What a test needs of the machine beyond Rust: root, and the real
//! components tests/setup.sh installs (Postfix, Sendmail, Redis, Chromium,
//! dkimpy, libopendkim, ...). A test names its needs in its first line:
//!
//! ```ignore
//! if !require(&[Need::Root, Need::Postfix, Need::Swaks]) {
//!     return;
//! }
//! ```
//!
//! When something is missing the test says so in one line on stderr and
//! is skipped, so plain `cargo test` on a developer machine runs the rest;
//! under `CI=true` (tests/run.sh on CI) it fails instead, since a suite
//! that skipped its end-to-end tests proves nothing.
//!
//! `MAILKEY_TESTS_WITHOUT=postfix,redis` (or `all`) makes components count
//! as missing without uninstalling them, to check the skip path; the names
//! are those of [`Need::name`].
#![allow(dead_code)]

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

/// Something a test needs that `cargo test` does not bring along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: a private Postfix (its master starts daemons as
    /// user postfix), Sendmail in its own namespaces, mounting a tmpfs,
    /// dpkg -i.
    Root,
    /// Debian's postfix package (/usr/sbin/postfix).
    Postfix,
    /// The SMTP client swaks, on PATH.
    Swaks,
    /// Sendmail unpacked under [`super::sendmail::ROOT`], with m4 and
    /// unshare on PATH.
    Sendmail,
    /// /usr/bin/redis-server.
    Redis,
    /// /usr/bin/chromium, the headless browser.
    Chromium,
    /// python3 on PATH with dkimpy, pynacl, dnspython, cryptography.
    Dkimpy,
    /// A C compiler (`cc` on PATH), for tools compiled by a test.
    CCompiler,
    /// libopendkim with its headers (libopendkim-dev).
    Libopendkim,
    /// The Debian package built by `cargo deb` (target/debian/*.deb), and
    /// dpkg to install it.
    DebianPackage,
    /// man-db's `man`, to render the man pages.
    Man,
}

impl Need {
    /// The name in messages and in `MAILKEY_TESTS_WITHOUT`.
    pub fn name(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Postfix => "postfix",
            Need::Swaks => "swaks",
            Need::Sendmail => "sendmail",
            Need::Redis => "redis",
            Need::Chromium => "chromium",
            Need::Dkimpy => "dkimpy",
            Need::CCompiler => "cc",
            Need::Libopendkim => "libopendkim",
            Need::DebianPackage => "deb",
            Need::Man => "man",
        }
    }

    /// Why it is missing, or `None` when it is there.
    pub fn missing(self) -> Option<String> {
        if forced_missing(self) {
            return Some(format!("{} (MAILKEY_TESTS_WITHOUT)", self.name()));
        }
        let file = |path: &str| (!Path::new(path).exists()).then(|| format!("{path} missing"));
        let command = |name: &str| {
            on_path(name)
                .is_none()
                .then(|| format!("{name} not on PATH"))
        };
        match self {
            Need::Root => (!is_root()).then(|| "not running as root".to_string()),
            Need::Postfix => file("/usr/sbin/postfix"),
            Need::Swaks => command("swaks"),
            Need::Sendmail => {
                let binary = format!("{}/usr/libexec/sendmail/sendmail", super::sendmail::ROOT);
                let missing: Vec<String> = [file(&binary), command("m4"), command("unshare")]
                    .into_iter()
                    .flatten()
                    .collect();
                (!missing.is_empty()).then(|| missing.join(", "))
            }
            Need::Redis => file(super::redis::REDIS_SERVER),
            Need::Chromium => file(super::browser::CHROMIUM),
            Need::Dkimpy => dkimpy_missing(),
            Need::CCompiler => command("cc"),
            Need::Libopendkim => file("/usr/include/opendkim/dkim.h"),
            Need::DebianPackage => match (deb_package(), command("dpkg")) {
                (_, Some(why)) => Some(why),
                (None, None) => Some(
                    "no .deb in target/debian (`cargo deb` builds it; tests/run.sh does)".into(),
                ),
                (Some(_), None) => None,
            },
            Need::Man => command("man"),
        }
    }
}

/// What a test with a private Postfix and swaks in front needs.
pub const WITH_POSTFIX: &[Need] = &[Need::Root, Need::Postfix, Need::Swaks];

/// What a test with a private Sendmail and swaks in front needs.
pub const WITH_SENDMAIL: &[Need] = &[Need::Root, Need::Sendmail, Need::Swaks];

/// Whether the test may go on: everything in `needs` is there. Otherwise
/// one line says what is missing and the test is skipped (`false`), or,
/// under `CI=true`, the test fails with that line.
pub fn require(needs: &[Need]) -> bool {
    check(None, needs)
}

/// [`require`] for one `part` of a test (e.g. "the dkimpy verification"):
/// the rest of the test runs whatever the answer.
pub fn require_for(part: &str, needs: &[Need]) -> bool {
    check(Some(part), needs)
}

fn check(part: Option<&str>, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    let wanted: Vec<&str> = needs.iter().map(|n| n.name()).collect();
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let what = match part {
        Some(part) => format!("{test}: {part}"),
        None => test,
    };
    let line = format!(
        "{what} needs {}: {} (bash tests/setup.sh installs what is missing)",
        wanted.join(", "),
        missing.join("; ")
    );
    if ci() {
        panic!("{line}; under CI=true a missing component fails the test");
    }
    eprintln!("skipped: {line}");
    false
}

/// Under `CI=true` (`.ci/run`): a missing component fails, never skips.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The newest `.deb` in target/debian, if `cargo deb` made one.
pub fn deb_package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// Where `name` is on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // /proc/self belongs to our effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn forced_missing(need: Need) -> bool {
    std::env::var("MAILKEY_TESTS_WITHOUT").is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|n| n == "all" || n == need.name())
    })
}

/// The modules tests/tools/dkimpy_tool.py imports; asked once per test
/// binary (a python3 start costs a tenth of a second or more).
fn dkimpy_missing() -> Option<String> {
    static ANSWER: OnceLock<Option<String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let Some(python) = on_path("python3") else {
                return Some("python3 not on PATH".into());
            };
            let ok = Command::new(python)
                .args(["-c", "import dkim, nacl, dns.resolver, cryptography"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            (!ok).then(|| "python3 cannot import dkim, nacl, dns.resolver, cryptography".into())
        })
        .clone()
}
