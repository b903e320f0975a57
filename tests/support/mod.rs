//! Spawns the real `tenantry` binary and talks HTTP to it.
#![allow(dead_code, reason = "each test file uses part of the support module")]

pub mod graphql;
pub mod receiver;
pub mod ws;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// A `tenantry` command with no `TENANTRY_*` configuration inherited from the environment.
pub fn tenantry(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd);
    for (key, _) in std::env::vars() {
        if key.starts_with("TENANTRY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// A new empty directory to run the server in.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-e2e-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A running `tenantry serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub logs: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `tenantry serve --listen 127.0.0.1:0` and waits until it says where it listens.
    pub fn start(mut cmd: Command) -> Self {
        cmd.arg("serve");
        Self::start_configured(cmd)
    }

    /// Starts a command that already holds `serve` and its flags, on a free port.
    pub fn start_configured(mut cmd: Command) -> Self {
        cmd.args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tenantry serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // From here on, Drop kills the child if the start-up fails.
        let mut server = Self {
            child,
            base: String::new(),
            logs,
        };
        let mut seen = Vec::new();
        loop {
            let line = server
                .logs
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("server did not start; logs: {seen:#?}"));
            if let Some(at) = line.find("listening on http://") {
                server.base = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .expect("address")
                    .to_owned();
                return server;
            }
            seen.push(line);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit; returns its status and the remaining logs.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let child = &mut self.child;
        let exit = wait_until(
            "the server to stop after SIGTERM",
            Duration::from_secs(15),
            || child.try_wait().expect("wait"),
        );
        let mut logs = Vec::new();
        while let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
            logs.push(line);
        }
        (exit, logs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("HTTP request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, json)
}

/// How often the polling helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it gives a value; panics, naming `what`, once `timeout` has passed.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async checks: polls `check` until it gives a value, with a deadline.
pub async fn eventually<T, F>(what: &str, timeout: Duration, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}
