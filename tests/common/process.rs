//! Programs the tests run: the real `mailkey-milter` binary as a daemon
//! with its log lines ([`Process`]), and any program run to its end with
//! its output ([`run`], [`run_blocking`]); free ports and temp dirs.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_mailkey-milter");

pub struct Process {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts the binary with `args`, collecting what it logs to stderr.
    pub fn start(args: &[&str]) -> Process {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start mailkey-milter");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().expect("lock").push(line);
            }
        });
        Process { child, lines }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Waits until a log line contains every one of `parts`, and returns it.
    /// Panics with the whole log after 20 s (a behaviour wait, not a timing
    /// assertion).
    pub async fn wait_for(&self, parts: &[&str]) -> String {
        for _ in 0..400 {
            if let Some(line) = self
                .log()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no log line with {parts:?}; log:\n{}",
            self.log().join("\n")
        );
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// How long a program run to its end may take: a behaviour bound (a
/// command that should exit but runs on), not a timing assertion.
pub const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// Runs `program` with `args`, feeding it `stdin`, and returns what it
/// wrote and how it exited; panics when it cannot be started or has not
/// exited within [`EXIT_WITHIN`]. Does not block the runtime, so an
/// in-process DNS server or daemon on it goes on answering the program.
pub async fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_within(EXIT_WITHIN, program, args, stdin).await
}

/// [`run`] with another bound than [`EXIT_WITHIN`].
pub async fn run_within(limit: Duration, program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Fed on the side: a program may write more than a pipe holds before
    // it has read all of its input.
    let feeder = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
    });
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not exit within {limit:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let _ = feeder.await;
    out
}

/// [`run`] for tests without a runtime: blocks the calling thread (from an
/// async test, only where nothing on its runtime must answer meanwhile).
pub fn run_blocking(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let pid = child.id();
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    std::thread::spawn(move || input.write_all(&data));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(EXIT_WITHIN) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{program}: {e}")),
        Err(_) => {
            // Its own pid: the child has not been reaped, so not reused.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{program} {args:?} did not exit within {EXIT_WITHIN:?}")
        }
    }
}

/// `mailkey-milter ARGS` run to its end, no input.
pub async fn mailkey(args: &[&str]) -> Output {
    run(BIN, args, b"").await
}

/// [`mailkey`] for tests without a runtime.
pub fn mailkey_blocking(args: &[&str]) -> Output {
    run_blocking(BIN, args, b"")
}

/// What the program wrote to standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the program wrote to standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `o`'s standard output; panics with both outputs unless it exited 0.
pub fn succeeded(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// The port of [`free_addr`]. Something may take it before the program
/// the test starts binds it; on a test machine nothing does.
pub fn free_port() -> u16 {
    free_addr().port()
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory, removed when dropped. Unique per call: tests of one
/// binary run at once, and two asking for the same `name` (tests/dkim2.rs's
/// signers) must not remove or overwrite each other's files.
pub fn temp_dir(name: &str) -> TempDir {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mailkey-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}
