//! Running `mpcformer` commands as processes: spawn, wait for a server's address, collect output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mpcformer");

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mpcformer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA and the role certificates in a fresh directory.
pub fn certs(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let out = Command::new(BIN).args(["certs", "--out", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    dir
}

pub fn spawn(args: &[&str]) -> Child {
    Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn mpcformer")
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A server process (dealer, serve, or P0) that printed its address.
pub struct Listening {
    pub child: Child,
    pub address: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Listening {
    /// Spawns `args` (listening on port 0) and waits for its `listening` line.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = spawn(args);
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let Ok(first) = lines.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{args:?} printed no address: {}", text(&out))
        };
        let value: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(value["event"], "listening", "{first}");
        let address = value["address"].as_str().unwrap().to_string();
        Self { child, address, lines }
    }

    /// The next line printed, within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line)))
    }

    /// Lines printed until one satisfies `until` (returned last) or `timeout` passes.
    pub fn lines_until(&self, timeout: Duration, until: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(line) = self.next_line(deadline.saturating_duration_since(Instant::now())) {
            let done = until(&line);
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    }

    /// Sends `signal` (by the `kill` command).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns it with the rest of stdout (as lines) and stderr.
    pub fn wait(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        // The process is gone: its stdout ends, and the reader hands over every line first.
        let rest = self.lines.iter().collect();
        (status, rest, stderr)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` at most `timeout`; kills it past that. Returns its output, and whether it
/// ended by itself.
pub fn wait_within(mut child: Child, timeout: Duration) -> (Output, bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    (child.wait_with_output().unwrap(), false)
}

/// A path as a string argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}
