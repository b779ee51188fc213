//! A private redis-server for one test (Debian's package, installed by
//! tests/setup.sh): a free port on 127.0.0.1, its directory under the temp
//! dir, no persistence, stopped (by its own pid) when dropped. A test
//! checks `require(&[Need::Redis])` first (tests/common/require.rs).
#![allow(dead_code)]

use super::process::{free_port, temp_dir, TempDir};
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Starts it and waits until it answers PING.
    pub fn start() -> Redis {
        let port = free_port();
        let dir = temp_dir("redis");
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&*dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Redis {
            child: Some(child),
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !redis.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One PING over a plain socket.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Stops the server (SIGKILL to its own pid) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Before the directory goes (with the field, after this).
        self.stop();
    }
}
