//! `board` processes of their own for a benchmark, on a stack's databases: API replicas,
//! relays and projectors as they are deployed, so that each one's CPU and memory can be
//! read alone and the benchmark's process is only the load.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::KeepAlive;
use super::Stack;

/// The `board` binary of this build (the Makefile's benchmark targets build it first).
fn board_binary() -> std::path::PathBuf {
    std::env::var_os("BOARD_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/board"),
        std::path::PathBuf::from,
    )
}

/// One `board serve` process; killed when dropped.
pub struct BoardProcess {
    child: Child,
    /// Where it serves HTTP, for an API process.
    pub address: Option<SocketAddr>,
}

impl BoardProcess {
    /// `board <connection to the stack> <args> serve --components <components>`, on the
    /// stack's read models unless `read_url` names others.
    fn spawn(
        stack: &Stack,
        read_url: Option<&str>,
        args: &[&str],
        components: &str,
    ) -> anyhow::Result<Child> {
        let binary = board_binary();
        Command::new(&binary)
            .args(["--database-url", &stack.database_url])
            .args(["--read-database-url", read_url.unwrap_or(&stack.read_url)])
            .args(["--kafka-topic", &stack.topic])
            .args(args)
            .args(["serve", "--components", components])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{} did not start ({e}): `cargo build --release --bin board` first",
                    binary.display()
                )
            })
    }

    /// An API process on a port of its own, once it answers `/health/live`.
    pub async fn api(stack: &Stack, args: &[&str]) -> anyhow::Result<Self> {
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let listen = address.to_string();
        let mut all = vec!["--listen", listen.as_str()];
        all.extend_from_slice(args);
        let process = Self {
            child: Self::spawn(stack, None, &all, "api")?,
            address: Some(address),
        };
        for _ in 0..600 {
            if let Ok(mut connection) = KeepAlive::connect(address).await {
                if let Ok((200, _)) = connection.request("GET", "/health/live", None, None).await {
                    return Ok(process);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the API process never answered on {address}")
    }

    /// A relay or projector process (`component`), with `args` such as its consumer
    /// group.
    pub fn background(
        stack: &Stack,
        component: &str,
        read_url: Option<&str>,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            child: Self::spawn(stack, read_url, args, component)?,
            address: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }
}

impl Drop for BoardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
