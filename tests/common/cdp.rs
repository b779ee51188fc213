//! Drives a real headless Chromium over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on fd 3, answers on fd 4, each a
//! JSON message ended by NUL), as a person would use a page: it reads the
//! accessibility tree (what a screen reader announces), focuses fields,
//! types, presses keys, and takes screenshots. No WebDriver, no JavaScript
//! in the page under test. Blocking: run it with `spawn_blocking`.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::{
    fs::File,
    io::{Read, Write},
    os::{fd::FromRawFd, unix::process::CommandExt},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::Duration,
};

pub struct Page {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    /// Events that arrived while waiting for an answer.
    events: Vec<Value>,
    session: String,
    next_id: u64,
}

/// A node of the accessibility tree: its role and accessible name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxNode {
    pub role: String,
    pub name: String,
}

/// A pipe as (read end, write end).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills two new descriptors we then own (close-on-exec:
    // only the browser gets them, as 3 and 4, through dup2).
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe"
    );
    // SAFETY: both are fresh, open and owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

impl Page {
    /// Starts `browser` with a fresh profile under `profile`, on a blank page.
    pub fn open(browser: &str, profile: &Path) -> Page {
        use std::os::fd::AsRawFd;
        let (cmd_read, cmd_write) = pipe();
        let (out_read, out_write) = pipe();
        let (r, w) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut command = Command::new(browser);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,800",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only dup2 (async-signal-safe) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {browser}: {e}"));
        drop((cmd_read, out_write));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = out_read;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice(&message[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut page = Page {
            child,
            to_browser: cmd_write,
            from_browser: rx,
            events: Vec::new(),
            session: String::new(),
            next_id: 0,
        };
        let target = page.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = page.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        page.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        page.call("Page.enable", json!({}));
        page.call("Accessibility.enable", json!({}));
        page
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> u64 {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("write to the browser");
        self.next_id
    }

    fn wait_for(&mut self, id: u64) -> Value {
        loop {
            let message = self
                .from_browser
                .recv_timeout(Duration::from_secs(60))
                .expect("the browser answered within 60 s");
            if message["id"].as_u64() == Some(id) {
                assert!(message.get("error").is_none(), "browser error: {message}");
                return message["result"].clone();
            }
            self.events.push(message);
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params, None);
        self.wait_for(id)
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        let id = self.send(method, params, Some(&session));
        self.wait_for(id)
    }

    /// Waits for the event `method` (one that came already counts).
    pub fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i);
        }
        loop {
            let message = self
                .from_browser
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {method} within 60 s"));
            if message["method"] == method {
                return message;
            }
            self.events.push(message);
        }
    }

    /// Forgets the events so far (before an action whose event to await).
    pub fn events_clear(&mut self) {
        while self
            .from_browser
            .try_recv()
            .is_ok_and(|m| m.get("id").is_none())
        {}
        self.events.clear();
    }

    /// Opens `url` and waits until it has loaded.
    pub fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired");
    }

    /// The accessibility tree's nodes that a screen reader would announce.
    pub fn ax_nodes(&mut self) -> Vec<AxNode> {
        let tree = self.call("Accessibility.getFullAXTree", json!({}));
        tree["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|n| n["ignored"] != json!(true))
                    .map(|n| AxNode {
                        role: n["role"]["value"].as_str().unwrap_or_default().to_string(),
                        name: n["name"]["value"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves the keyboard focus to the element `selector` names.
    pub fn focus(&mut self, selector: &str) {
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let found = self.call(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        );
        let node = found["nodeId"].clone();
        assert_ne!(node, json!(0), "no element {selector}");
        self.call("DOM.focus", json!({"nodeId": node}));
    }

    /// Types `text` into the focused field.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Presses a key on the focused element: `" "` (Space) or `"Enter"`.
    pub fn press(&mut self, key: &str) {
        let (code, vk, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            _ => ("Space", 32, " "),
        };
        for kind in ["keyDown", "keyUp"] {
            let mut event = json!({
                "type": kind, "key": key, "code": code,
                "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk
            });
            if kind == "keyDown" {
                event["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", event);
        }
    }

    /// The page's HTML as rendered.
    pub fn html(&mut self) -> String {
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let html = self.call("DOM.getOuterHTML", json!({"nodeId": root}));
        html["outerHTML"].as_str().unwrap_or_default().to_string()
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = shot["data"].as_str().expect("screenshot data");
        let png = openssl::base64::decode_block(data).expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
