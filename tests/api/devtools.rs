//! A headless Chromium driven over the DevTools protocol, for tests of what a real browser
//! does with Board's pages (its `EventSource` above all).
//!
//! The protocol runs over a pair of pipes (`--remote-debugging-pipe`: Chromium reads
//! commands on its descriptor 3 and writes answers and events on 4, each message a JSON
//! text ended by a NUL byte), so no port is opened and no WebSocket client is needed. A
//! shell hands it our pipes to its standard input and output as 3 and 4.
//! Chromium is installed by `scripts/services.sh tools` (`make test` runs it); `CHROMIUM`
//! names another binary.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex as AsyncMutex};

/// How long one protocol call may take before the test calls it a hang; not a measurement.
const HANG: Duration = Duration::from_secs(60);

/// How every test starts Chromium: no window, no sandbox (tests may run as root), and
/// nothing it would fetch for itself on this machine's closed network.
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// A headless browser with one page.
pub struct Browser {
    child: Child,
    commands: Mutex<ChildStdin>,
    answers: AsyncMutex<mpsc::UnboundedReceiver<Value>>,
    next_id: AtomicU64,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts Chromium and opens `url` in a page.
    pub async fn open(url: &str) -> Self {
        let profile = std::env::temp_dir().join(format!("board-devtools-{}", uuid::Uuid::now_v7()));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(chromium())
            .args(HEADLESS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let commands = child.stdin.take().unwrap();
        let answers_pipe = child.stdout.take().unwrap();

        let (sender, answers) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers_pipe);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message) {
                    if sender.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Self {
            child,
            commands: Mutex::new(commands),
            answers: AsyncMutex::new(answers),
            next_id: AtomicU64::new(1),
            session: String::new(),
            profile,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": url }), None)
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
                None,
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// The value of a JavaScript expression in the page (JSON-serialisable).
    pub async fn evaluate(&self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
                Some(&self.session),
            )
            .await;
        assert!(
            answer.get("exceptionDetails").is_none(),
            "{expression}: {answer}"
        );
        answer["result"]["value"].clone()
    }

    /// Sends one command and waits for its answer, passing over the events in between.
    async fn call(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.lock().unwrap().write_all(&bytes).unwrap();
        let mut answers = self.answers.lock().await;
        loop {
            let answer = tokio::time::timeout(HANG, answers.recv())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in {HANG:?}"))
                .unwrap_or_else(|| {
                    panic!(
                        "{method}: {} closed the protocol (not installed? `scripts/services.sh tools`)",
                        chromium()
                    )
                });
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
