//! Servers private to one test, so that it can stop them without disturbing the tests that
//! share the machine's PostgreSQL, MariaDB and broker: a Tansu broker and a MariaDB server,
//! each on a free port with its data in the test's own folder. Stopping one kills its
//! process; starting it again reuses the port and the data, as a restarted server would.
//!
//! [`Daemon`] runs any such process (the `board` components too): start, wait until it
//! listens, stop (SIGTERM) or kill (SIGKILL), start again, its output appended to a log.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, MySqlConnection};
use uuid::Uuid;

use crate::pipeline::send_signal;

/// How long a start may go without the process listening before the test gives up.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a process may take to exit on SIGTERM before it gets SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A folder for one test's servers and logs. Removed when the test passes; kept (and
/// named on stderr) when it fails, for the logs.
pub struct Workdir(PathBuf);

impl Workdir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create the test's work folder");
        Self(path)
    }

    /// A sub-folder, created.
    pub fn dir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path).expect("create a folder in the work folder");
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (logs of every process)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `board` processes the tests that start many may run at once, over all of them.
///
/// Each process holds PostgreSQL connections of its own besides its pool (the relay's
/// LISTEN and its leader lock, the live feed's LISTEN, the rate limiters' pool), and the
/// tests running side by side share the server's `max_connections` (100 by default).
/// Three clusters of six processes beside the fault suite's three held 95 of them at once
/// (99 in another run; most idle, smaller pools barely changed it): past the limit
/// PostgreSQL refuses the next connection, and whichever test asked for it fails. With
/// this budget a cluster and the fault suite may run together, two clusters wait for
/// each other; the peak of a whole `make test` fell to 60 and it took 47 s longer.
const BOARD_PROCESSES_AT_ONCE: u32 = 9;

/// Waits until `processes` more `board` processes fit in the budget above, and holds
/// their place until dropped (after the processes are gone).
pub async fn room_for_board_processes(processes: u32) -> tokio::sync::SemaphorePermit<'static> {
    static BUDGET: tokio::sync::Semaphore =
        tokio::sync::Semaphore::const_new(BOARD_PROCESSES_AT_ONCE as usize);
    BUDGET
        .acquire_many(processes.min(BOARD_PROCESSES_AT_ONCE))
        .await
        .expect("the budget is never closed")
}

/// A port nothing listens on right now, for a process the test starts later.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` different ports nothing uses now, for processes the test starts later.
///
/// Not the kernel's pick (`bind` to port 0): that comes from the ephemeral range, where
/// every outgoing connection on the machine (to PostgreSQL, MySQL, the broker) also takes
/// its local port, so between the probe and the server's own bind another connection
/// could take it, and the server fails to start, or a test talks to somebody else's
/// server on it. These come from below that range, and no port is handed out twice in
/// this test process (its tests run side by side and would otherwise race for the same
/// one); each is probed with a bind, so one some other program holds is skipped.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| unused_port())
}

fn unused_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let (first, last) = ports_outside_ephemeral_range();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    // Start at a random place, so that two test processes run one after the other (or
    // by hand, side by side) do not walk the same sequence.
    let span = u32::from(last - first) + 1;
    let start = (Uuid::new_v4().as_u128() % u128::from(span)) as u32;
    for step in 0..span {
        let port = first + ((start + step) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port from {first} to {last}");
}

/// The larger of the stretches below and above the kernel's ephemeral range
/// (`ip_local_port_range`, 32768-60999 by default), starting above the well-known ports
/// and the services' own (5432, 3306, 9092, ...).
fn ports_outside_ephemeral_range() -> (u16, u16) {
    const FIRST: u16 = 20_000;
    let (start, end) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut bounds = range.split_whitespace().map(|b| b.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999));
    let below = (FIRST, start.saturating_sub(1).max(FIRST));
    let above = (end.saturating_add(1).max(FIRST), u16::MAX);
    if below.1 - below.0 >= above.1 - above.0 {
        below
    } else {
        above
    }
}

/// The first of `candidates` that is an executable file, or else a clear failure.
fn find_program(what: &str, env_var: &str, candidates: &[PathBuf], hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let on_path = |name: &str| -> Vec<PathBuf> {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut searched = Vec::new();
    for candidate in candidates {
        let paths = if candidate.components().count() == 1 {
            on_path(&candidate.to_string_lossy())
        } else {
            vec![candidate.clone()]
        };
        for path in paths {
            if path
                .metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
            {
                return path;
            }
            searched.push(path);
        }
    }
    panic!(
        "{what} not found (looked in {}); {hint}, or set {env_var} to its path",
        searched
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// What starts a process, kept so that it can be started again after a kill.
struct Launch {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
}

impl Launch {
    fn of(command: &Command) -> Self {
        Self {
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            envs: command
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect(),
            cwd: command.get_current_dir().map(Path::to_path_buf),
        }
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command
    }
}

/// A process the test starts, kills and starts again.
pub struct Daemon {
    name: String,
    launch: Launch,
    /// Appended to by every run of the process (stdout and stderr).
    log: PathBuf,
    /// The port it listens on once ready, if any.
    port: Option<u16>,
    child: Option<tokio::process::Child>,
}

impl Daemon {
    /// `command` as a daemon named `name`, logging to `log`; when `port` is given, a start
    /// returns only once something accepts connections there.
    pub fn new(name: &str, command: &Command, log: PathBuf, port: Option<u16>) -> Self {
        Self {
            name: name.to_string(),
            launch: Launch::of(command),
            log,
            port,
            child: None,
        }
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Starts the process and waits until it listens (when it has a port).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log");
        let child = self
            .launch
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        self.child = Some(child);
        if let Some(port) = self.port {
            self.wait_until_listening(port).await;
        }
    }

    async fn wait_until_listening(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                panic!(
                    "{} exited ({status}) before listening on {addr}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let probe = tokio::task::spawn_blocking(move || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            });
            if probe.await.unwrap() {
                return;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "{} did not listen on {addr} after {START_LIMIT:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// kill -9: the process gets no chance to finish anything.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("kill a running process");
        child.kill().await.expect("kill -9 the process");
    }

    /// A clean stop: SIGTERM, and SIGKILL only if it ignores that for STOP_LIMIT. Returns
    /// how it exited.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("stop a running process");
        send_signal(child.id().expect("a running process has a pid"), "TERM");
        match tokio::time::timeout(STOP_LIMIT, child.wait()).await {
            Ok(status) => status.expect("reap the stopped process"),
            Err(_) => {
                eprintln!(
                    "{} ignored SIGTERM for {STOP_LIMIT:?}; killing it",
                    self.name
                );
                child.kill().await.expect("kill the process");
                child.wait().await.expect("reap the killed process")
            }
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A Tansu broker of the test's own, the same binary `make services` runs.
pub struct PrivateBroker {
    pub daemon: Daemon,
    pub brokers: String,
}

impl PrivateBroker {
    pub async fn start(work: &Workdir) -> Self {
        let tansu = find_program(
            "the Tansu broker",
            "TANSU_BIN",
            &[
                PathBuf::from("tansu"),
                cargo_home().join("bin").join("tansu"),
            ],
            "run `make services` (it builds Tansu 0.6.0)",
        );
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(tansu);
        // The sqlite path is taken relative to the working directory.
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(work.dir("tansu"))
            .env("RUST_LOG", "warn");
        let log = work.path().join("tansu.log");
        let mut daemon = Daemon::new("broker", &command, log, Some(port));
        daemon.start().await;
        repair_store(&work.dir("tansu").join("tansu.db"));
        Self {
            daemon,
            brokers: format!("127.0.0.1:{port}"),
        }
    }
}

/// The repairs `scripts/services.sh` applies to the shared broker's store (indexes, and
/// the guard that makes deleting one topic delete only that one; see docs/BROKER.md).
fn repair_store(db: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tansu-store.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(db)
        .status()
        .expect("run scripts/tansu-store.py (python3)");
    assert!(
        status.success(),
        "{} {} failed",
        script.display(),
        db.display()
    );
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// A MariaDB server of the test's own, with a `board` user like the shared one's.
pub struct PrivateMysql {
    pub daemon: Daemon,
    /// `mysql://board:board@127.0.0.1:<port>`, without a database.
    pub server_url: String,
}

impl PrivateMysql {
    pub async fn start(work: &Workdir) -> Self {
        let mariadbd = mariadb_program("MARIADBD", &["mariadbd"]);
        let install_db = mariadb_program(
            "MARIADB_INSTALL_DB",
            &["mariadb-install-db", "mysql_install_db"],
        );
        let folder = work.dir("mysql");
        let datadir = folder.join("data");
        install_data_directory(
            &install_db,
            &datadir,
            &work.path().join("mysql-install.log"),
        )
        .await;

        let port = free_port();
        let mut command = Command::new(mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", folder.join("mysqld.sock").display()))
            .arg(format!(
                "--pid-file={}",
                folder.join("mysqld.pid").display()
            ))
            .args(["--skip-log-bin", "--skip-name-resolve"])
            .arg("--innodb-buffer-pool-size=64M");
        if running_as_root() {
            command.arg("--user=root");
        }
        let log = work.path().join("mysql.log");
        let mut daemon = Daemon::new("mysql", &command, log, Some(port));
        daemon.start().await;
        create_board_user(port).await;
        Self {
            daemon,
            server_url: format!("mysql://board:board@127.0.0.1:{port}"),
        }
    }
}

/// A MariaDB program: `env_var` when set, else the first of `names` on PATH or in the
/// usual folders (mariadbd lives in /usr/sbin, outside most users' PATH).
fn mariadb_program(env_var: &str, names: &[&str]) -> PathBuf {
    let folders = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];
    let candidates: Vec<PathBuf> = names
        .iter()
        .flat_map(|name| {
            std::iter::once(PathBuf::from(name)).chain(
                folders
                    .iter()
                    .map(move |folder| Path::new(folder).join(name)),
            )
        })
        .collect();
    find_program(
        names[0],
        env_var,
        &candidates,
        "install Debian's mariadb-server (scripts/services.sh does)",
    )
}

/// Initializes an empty data directory whose root logs in without a password.
async fn install_data_directory(install_db: &Path, datadir: &Path, log: &Path) {
    let mut command = tokio::process::Command::new(install_db);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    if running_as_root() {
        command.arg("--user=root");
    }
    let output = command.output().await.expect("run mariadb-install-db");
    std::fs::write(log, [output.stdout, output.stderr].concat()).unwrap();
    assert!(
        output.status.success(),
        "mariadb-install-db failed ({}); see {}",
        output.status,
        log.display()
    );
}

/// The same `board` user `make services` makes on the shared server (all privileges:
/// verify and rebuild create databases beside the live one).
async fn create_board_user(port: u16) {
    let mut root = MySqlConnection::connect(&format!("mysql://root@127.0.0.1:{port}"))
        .await
        .expect("log in to the private MariaDB as root");
    for statement in [
        "CREATE USER 'board'@'127.0.0.1' IDENTIFIED BY 'board'",
        "GRANT ALL PRIVILEGES ON *.* TO 'board'@'127.0.0.1'",
    ] {
        sqlx::raw_sql(statement).execute(&mut root).await.unwrap();
    }
    root.close().await.unwrap();
}
