//! A whole Board for one test or benchmark: a scratch event store, read database and
//! topic as asked, the application assembled from `board`'s own flags by
//! [`App::assemble`], its router, and the relay and projector started as tasks on demand.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use clap::Parser;
use sqlx::MySqlPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use board::app::{self, App};
use board::cli::Cli;

use crate::scratch;

/// The admin of every stack (in `ADMIN_EMAILS`) unless the builder names another.
pub const ADMIN_EMAIL: &str = "admin@example.com";

/// Where the read models are.
enum ReadModels {
    /// Wherever the environment says (`READ_DATABASE_URL`): for stacks that never read.
    Configured,
    /// A scratch database, migrated.
    Fresh,
    /// `url`, reached by the application through `through` when given (a proxy).
    At {
        url: String,
        through: Option<String>,
    },
}

pub struct StackBuilder {
    /// Of scratch databases (`board_test`) and topics (`board-test`).
    prefix: &'static str,
    event_store: Option<String>,
    migrate: bool,
    read_models: ReadModels,
    /// A scratch topic on these brokers, with this many partitions.
    topic: Option<(String, u32)>,
    admin_email: String,
    args: Vec<String>,
}

#[derive(Clone)]
pub struct Stack {
    pub app: App,
    /// The whole API, called without a socket.
    pub router: Router,
    pub database_url: String,
    /// The read database, as checks reach it (not through the application's proxy).
    pub read_url: String,
    pub brokers: String,
    /// The scratch topic (the configured one when the builder asked for none).
    pub topic: String,
    /// The projector group; named after the topic.
    pub group: String,
    /// Where the `file` mail transport writes.
    pub mail_dir: PathBuf,
}

impl Stack {
    /// Scratch names start `board_test` / `board-test-` (`make test` prunes those topics).
    pub fn for_tests() -> StackBuilder {
        StackBuilder::new("board_test")
    }

    /// Scratch names start `board_bench` / `board-bench-`.
    pub fn for_benchmarks() -> StackBuilder {
        StackBuilder::new("board_bench")
    }

    /// A pool on the read database, for checks.
    pub async fn read_pool(&self) -> anyhow::Result<MySqlPool> {
        Ok(MySqlPool::connect(&self.read_url).await?)
    }

    /// The relay, as `board serve` runs it.
    pub fn start_relay(&self) -> Running {
        let relay = self.app.relay();
        Running::spawn(|stopped| relay.run(stopped))
    }

    /// A projector of this stack's group, as `board serve` runs it (with its own pool).
    pub fn start_projector(&self) -> anyhow::Result<Running> {
        let projector = self.app.projector()?;
        Ok(Running::spawn(|stopped| projector.run(stopped)))
    }

    /// A projector of another group, on the same topic.
    pub fn start_projector_in_group(&self, group: &str) -> anyhow::Result<Running> {
        let projector = self.app.projector()?.with_group(group);
        Ok(Running::spawn(|stopped| projector.run(stopped)))
    }
}

impl StackBuilder {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            event_store: None,
            migrate: true,
            read_models: ReadModels::Configured,
            topic: None,
            admin_email: ADMIN_EMAIL.to_string(),
            args: Vec::new(),
        }
    }

    /// Uses the event store at `url` (which may be unreachable) instead of a scratch one.
    pub fn event_store(mut self, url: &str) -> Self {
        self.event_store = Some(url.to_string());
        self
    }

    /// Whether to apply the migrations (default: yes).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// A scratch read database, migrated.
    pub fn fresh_read_models(mut self) -> Self {
        self.read_models = ReadModels::Fresh;
        self
    }

    /// The read database at `url`, which the application reaches through `through` when
    /// given (a proxy a test can cut).
    pub fn read_models_at(mut self, url: &str, through: Option<&str>) -> Self {
        self.read_models = ReadModels::At {
            url: url.to_string(),
            through: through.map(str::to_string),
        };
        self
    }

    /// A scratch topic of `partitions` on `brokers`, and a projector group named after it.
    pub fn scratch_topic(mut self, brokers: &str, partitions: u32) -> Self {
        self.topic = Some((brokers.to_string(), partitions));
        self
    }

    pub fn admin_email(mut self, email: &str) -> Self {
        self.admin_email = email.to_string();
        self
    }

    /// More of `board`'s flags; they come last, so they win.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub async fn build(self) -> anyhow::Result<Stack> {
        let database_url = match self.event_store {
            Some(url) => url,
            None => scratch::scratch_postgres(&crate::postgres_server(), self.prefix).await?,
        };
        let (read_url, app_read_url) = match self.read_models {
            ReadModels::Configured => (None, None),
            ReadModels::Fresh => {
                let url = scratch::migrated_mysql(&crate::mysql_server(), self.prefix).await?;
                (Some(url.clone()), Some(url))
            }
            ReadModels::At { url, through } => {
                let app_url = through.unwrap_or_else(|| url.clone());
                (Some(url), Some(app_url))
            }
        };
        let mail_dir = std::env::temp_dir().join(format!("board-mail-{}", Uuid::new_v4()));
        let mut args: Vec<String> = [
            "board",
            "--database-url",
            &database_url,
            "--mail-dir",
            &mail_dir.display().to_string(),
            "--admin-emails",
            &self.admin_email,
            "--public-base-url",
            "http://board.test",
        ]
        .map(str::to_string)
        .to_vec();
        // Settings for tests and benchmarks, each unless the caller sets it (a test about
        // that very setting):
        // - mail goes to files a test reads;
        // - calls through the router share one client address, so the per-address rate
        //   limits are out of the way;
        // - debug builds hash slowly (a good part of a second each) and some tests race
        //   many sign-ups at once, so a password waits for a hashing slot as long as it
        //   takes.
        for (flag, value) in [
            ("--mail-transport", "file"),
            ("--auth-rate-per-minute", "100000"),
            ("--anonymous-rate-per-minute", "100000"),
            ("--password-hashing-wait", "10m"),
        ] {
            if !self.args.iter().any(|a| a == flag) {
                args.extend([flag.into(), value.into()]);
            }
        }
        if let Some(url) = &app_read_url {
            args.extend(["--read-database-url".into(), url.clone()]);
        }
        if let Some((brokers, partitions)) = &self.topic {
            let topic = format!(
                "{}-{}",
                self.prefix.replace('_', "-"),
                Uuid::new_v4().simple()
            );
            args.extend([
                "--kafka-brokers".into(),
                brokers.clone(),
                "--kafka-topic".into(),
                topic.clone(),
                "--kafka-partitions".into(),
                partitions.to_string(),
                "--projector-group".into(),
                topic,
            ]);
        }
        args.extend(self.args);
        args.push("serve".into());
        let cli = Cli::try_parse_from(&args)?;
        cli.config
            .validate()
            .map_err(|problem| anyhow::anyhow!("invalid configuration: {problem}"))?;
        let app = App::assemble(Arc::new(cli.config))?;
        if self.migrate {
            app::migrate_event_store(&app.pool).await?;
        }
        let config = &app.config;
        Ok(Stack {
            router: board::http::app(app.clone()),
            read_url: read_url.unwrap_or_else(|| config.read_database_url.expose().to_string()),
            brokers: config.kafka_brokers.clone(),
            topic: config.kafka_topic.clone(),
            group: config.projector_group.clone(),
            database_url,
            mail_dir,
            app,
        })
    }
}

/// A part running as a task; asked to stop when dropped.
pub struct Running {
    stop: watch::Sender<bool>,
    /// Taken by [`Running::stop`].
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub fn spawn<F, Fut>(part: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Self {
            task: Some(tokio::spawn(part(stopped))),
            stop,
        }
    }

    /// Asks it to stop and waits until it has.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
