//! Where the machine's CPU went during a measurement, read from /proc: each process's
//! user and system time, summed by what the process is (an API replica, PostgreSQL,
//! MySQL, the broker, this benchmark), beside the machine's idle and I/O-wait time.
//! Shares are in cores: 1.0 is one core busy for the whole window.

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks a process has spent on a CPU (user + system), from /proc/PID/stat.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(ticks, _)| ticks)
}

/// A process's CPU ticks (user + system) and its start time (in ticks since boot), which
/// together with the pid names one process: a pid can be reused.
fn process_stat(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    let started: u64 = fields.get(19)?.parse().ok()?;
    Some((user + system, started))
}

/// The kernel's clock ticks per second: 100 on Linux for every architecture we run.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The share of one core `pid` used over `window`.
pub async fn cpu_share(pid: u32, window: Duration) -> Option<f64> {
    let before = cpu_ticks(pid)?;
    let started = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let after = cpu_ticks(pid)?;
    Some((after - before) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64())
}

/// One process at a snapshot: its group name, CPU ticks and start time.
struct Sample {
    name: String,
    ticks: u64,
    started: u64,
}

/// Every process's CPU ticks and the machine's, at one moment.
pub struct CpuSnapshot {
    processes: HashMap<u32, Sample>,
    /// All ticks of all CPUs, the idle ones and those waiting for I/O.
    total: u64,
    idle: u64,
    iowait: u64,
    cores: usize,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let machine: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // Kernel threads have no command line; their names change with their work.
            let kernel = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty());
            let name = if kernel {
                "kernel".to_string()
            } else {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                comm.trim().to_string()
            };
            if let Some((ticks, started)) = process_stat(pid) {
                processes.insert(
                    pid,
                    Sample {
                        name,
                        ticks,
                        started,
                    },
                );
            }
        }
        Self {
            processes,
            // user nice system idle iowait irq softirq steal: guests are inside user.
            total: machine.iter().take(8).sum(),
            idle: machine.get(3).copied().unwrap_or(0),
            iowait: machine.get(4).copied().unwrap_or(0),
            cores: cores.max(1),
        }
    }

    /// What the machine did between `before` and this snapshot. `role` names the
    /// processes the caller started (by pid); the rest are named by [`role_by_name`].
    pub fn since(&self, before: &CpuSnapshot, role: impl Fn(u32) -> Option<String>) -> CpuUse {
        let window = self.total.saturating_sub(before.total).max(1) as f64;
        let cores = |ticks: u64| ticks as f64 / window * self.cores as f64;
        let mut groups: HashMap<String, u64> = HashMap::new();
        for (pid, sample) in &self.processes {
            // A process that began during the window spent all its ticks in it.
            let earlier = before
                .processes
                .get(pid)
                .filter(|was| was.started == sample.started)
                .map_or(0, |was| was.ticks);
            let spent = sample.ticks.saturating_sub(earlier);
            if spent == 0 {
                continue;
            }
            let group = role(*pid).unwrap_or_else(|| role_by_name(*pid, &sample.name));
            *groups.entry(group).or_default() += spent;
        }
        let mut groups: Vec<(String, f64)> = groups
            .into_iter()
            .map(|(group, ticks)| (group, cores(ticks)))
            .collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse {
            groups,
            seconds: window / self.cores as f64 / TICKS_PER_SECOND,
            idle: cores(self.idle.saturating_sub(before.idle)),
            iowait: cores(self.iowait.saturating_sub(before.iowait)),
            cores: self.cores,
        }
    }
}

/// The group of a process the caller did not start, by its name; any other process is
/// shown under its own name, so that nothing that took a share goes unnamed.
fn role_by_name(pid: u32, name: &str) -> String {
    if pid == std::process::id() {
        return "load (this benchmark)".into();
    }
    match name {
        "postgres" => "PostgreSQL".into(),
        "mariadbd" | "mysqld" => "MySQL".into(),
        "tansu" => "broker".into(),
        other => other.into(),
    }
}

/// CPU used over a window, by group, in cores.
pub struct CpuUse {
    pub groups: Vec<(String, f64)>,
    /// The window's length.
    pub seconds: f64,
    pub idle: f64,
    pub iowait: f64,
    pub cores: usize,
}

impl CpuUse {
    pub fn of(&self, group: &str) -> f64 {
        self.groups
            .iter()
            .find(|(g, _)| g == group)
            .map_or(0.0, |(_, c)| *c)
    }

    /// The CPU time `group` spent in the window, in seconds.
    pub fn seconds_of(&self, group: &str) -> f64 {
        self.of(group) * self.seconds
    }

    /// One line: each group's cores, largest first, then idle and I/O wait.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, c)| *c >= 0.01)
            .map(|(g, c)| format!("{g} {c:.2}"))
            .collect();
        parts.push(format!("idle {:.2}", self.idle));
        parts.push(format!("I/O wait {:.2}", self.iowait));
        format!("{} (of {} cores)", parts.join(", "), self.cores)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let groups: serde_json::Map<String, serde_json::Value> = self
            .groups
            .iter()
            .map(|(g, c)| (g.clone(), serde_json::json!(c)))
            .collect();
        serde_json::json!({
            "groups": groups, "idle": self.idle, "iowait": self.iowait, "cores": self.cores,
        })
    }
}
