//! Configuration: every address, secret and knob, from flags or environment variables.
//! `.env.example` at the repository root lists them with their defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::http::client_address::TrustedProxies;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `production` refuses to start with development defaults such as the JWT secret.
    #[arg(long, env = "BOARD_ENV", value_enum, default_value_t = Environment::Development)]
    pub environment: Environment,

    /// Address the HTTP API listens on.
    #[arg(long, env = "BOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address `/metrics` is served on, alone, for the scraper; the API's port then answers
    /// 404 for it. Unset: `/metrics` is on the API's port in development, and on
    /// [`PRODUCTION_METRICS_ADDR`] in production (see [`Config::metrics_address`]).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// How long `/metrics` and `/health/ready` reuse what they read from the stores and
    /// the broker: whatever the number of scrapes and probes, each reads at most once per
    /// period. Readiness turns 503 within this (plus its checks' own time limits) after
    /// a dependency goes down. `0s` reads at each call.
    #[arg(long, env = "STATUS_CACHE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub status_cache_ttl: Duration,

    /// Base URL clients reach the API at; verification links point here.
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub public_base_url: String,

    /// A connection must send a request's headers within this, counted from when it was
    /// opened or from the first byte of its next request; it is closed otherwise.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A request body must arrive within this once the handler reads it (408 otherwise).
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// A kept-alive connection with no request being handled is closed after this.
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections served at once; past it, new ones get 503 with `Retry-After`.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Connections one client address may hold at once (of `MAX_CONNECTIONS`); past it,
    /// 429. 0 for no such limit: behind a proxy every connection has the proxy's address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,

    /// Proxies in front of this server (addresses or networks, comma-separated, e.g.
    /// `127.0.0.1` or `10.0.0.0/8`): a request from one is counted, for every per-address
    /// limit, against the client its `X-Forwarded-For` names, and its connections are not
    /// limited per address (they carry many clients). Empty: no proxy is believed.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,

    /// On SIGTERM, how long requests in flight may take to finish before the connections
    /// still open are closed and the process exits.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// PostgreSQL event store.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://board:board@127.0.0.1:5432/board"
    )]
    pub database_url: Secret,

    /// MySQL (or MariaDB) read models.
    #[arg(
        long,
        env = "READ_DATABASE_URL",
        default_value = "mysql://board:board@127.0.0.1:3306/board_read"
    )]
    pub read_database_url: Secret,

    /// Kafka bootstrap servers, comma-separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// The topic every event is published to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "board.events")]
    pub kafka_topic: String,

    /// Partitions of the events topic when the relay creates it.
    #[arg(long, env = "KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,

    /// Replication factor of the events topic when the relay creates it.
    #[arg(long, env = "KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,

    /// Group of projector processes: the processes of one group split the partitions
    /// between them (by leases in the read database, see `projector::leases`).
    #[arg(long, env = "PROJECTOR_GROUP", default_value = "board-projector")]
    pub projector_group: String,

    /// Connections to the event store each process may open (commands, the relay).
    #[arg(long, env = "EVENT_STORE_POOL_SIZE", default_value_t = 16)]
    pub event_store_pool_size: u32,

    /// Connections to the read models each process may open for queries.
    #[arg(long, env = "READ_POOL_SIZE", default_value_t = 16)]
    pub read_pool_size: u32,

    /// Connections to the read models the projector opens (apart from the queries', so
    /// that queries waiting on `Event-Position` cannot starve it).
    #[arg(long, env = "PROJECTOR_POOL_SIZE", default_value_t = 4)]
    pub projector_pool_size: u32,

    /// How long a query carrying `Event-Position` waits for the read models.
    #[arg(long, env = "READ_WAIT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub read_wait_timeout: Duration,

    /// Commands one account may have in flight at once; past it, 429 at once.
    #[arg(long, env = "COMMANDS_PER_ACCOUNT", default_value_t = 8)]
    pub commands_per_account: usize,

    /// Queries that may wait on `Event-Position` at once in this process; past it, one
    /// more gets 503 with `Retry-After` at once (one shared poll serves them all).
    #[arg(long, env = "MAX_READ_WAITERS", default_value_t = 1024)]
    pub max_read_waiters: usize,

    /// Live updates (`GET /board/live`): how many of the latest messages each process
    /// keeps for clients that resume with `Last-Event-ID`; an older one gets
    /// `event: reset` (reload through the query API).
    #[arg(long, env = "LIVE_REPLAY_EVENTS", default_value_t = 10_000)]
    pub live_replay_events: usize,

    /// Messages a live subscriber may fall behind before it is disconnected (it resumes
    /// with `Last-Event-ID`).
    #[arg(long, env = "LIVE_SUBSCRIBER_BUFFER", default_value_t = 256)]
    pub live_subscriber_buffer: usize,

    /// The longest silence on a live stream before a keep-alive comment (at most 15s, so
    /// proxies keep the connection open).
    #[arg(long, env = "LIVE_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub live_keepalive: Duration,

    /// How long a browser waits before reconnecting a live stream (`retry:`).
    #[arg(long, env = "LIVE_RETRY", default_value = "3s", value_parser = parse_duration)]
    pub live_retry: Duration,

    /// Live streams open at once in this process; past it, 503 with `Retry-After`.
    #[arg(long, env = "MAX_LIVE_STREAMS", default_value_t = 512)]
    pub max_live_streams: usize,

    /// Live streams open at once from one client address; past it, 429 with `Retry-After`.
    #[arg(long, env = "LIVE_STREAMS_PER_ADDRESS", default_value_t = 8)]
    pub live_streams_per_address: usize,

    /// Requests a minute (and burst) each client address may make to /auth, /signup and the
    /// password-reset endpoints.
    #[arg(long, env = "AUTH_RATE_PER_MINUTE", default_value_t = 20)]
    pub auth_rate_per_minute: u32,

    /// Requests a minute (and burst) each client address may make to the other routes that
    /// take no access token and use the event store: `/check-duplicate/email`, `/verify`,
    /// `/refresh` and `/logout`; past it, 429 with `Retry-After`. Without it one address
    /// could keep the commands' connections busy (replaying a spent refresh token, say)
    /// until everyone else's requests waited them out.
    #[arg(long, env = "ANONYMOUS_RATE_PER_MINUTE", default_value_t = 120)]
    pub anonymous_rate_per_minute: u32,

    /// Failed log-ins an hour (and burst) per account, whatever addresses they come from;
    /// past it, 429 with `Retry-After`. Successful log-ins do not count; wrong passwords
    /// to `DELETE /account` do.
    #[arg(
        long,
        env = "FAILED_LOG_INS_PER_ACCOUNT_PER_HOUR",
        default_value_t = 20
    )]
    pub failed_log_ins_per_account_per_hour: u32,

    /// Passwords hashed or checked at once (Argon2id, 19 MiB each); unset, two per core.
    #[arg(long, env = "PASSWORD_HASHING_SLOTS")]
    pub password_hashing_slots: Option<usize>,

    /// How long a password waits for a hashing slot; past it, 503 with `Retry-After`, so
    /// a flood of log-ins is turned away instead of queueing without bound.
    #[arg(long, env = "PASSWORD_HASHING_WAIT", default_value = "3s", value_parser = parse_duration)]
    pub password_hashing_wait: Duration,

    /// Key that signs access and refresh tokens (HMAC-SHA256); at least 32 bytes. Required
    /// in production; unset in development, each process makes up a random one (tokens
    /// then die with the process).
    #[arg(long, env = "JWT_SECRET")]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of access tokens (`30s`, `15m`, `2h`, `14d`).
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,

    /// Lifetime of refresh tokens.
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value = "14d", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,

    /// How long an email verification link stays valid.
    #[arg(long, env = "VERIFICATION_TTL", default_value = "48h", value_parser = parse_duration)]
    pub verification_ttl: Duration,

    /// How long an `Idempotency-Key` is kept after its first request; the purge removes
    /// it after that.
    #[arg(long, env = "IDEMPOTENCY_KEY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_key_ttl: Duration,

    /// How often the purge of stored helpers (old idempotency keys, expired links) runs,
    /// in one API process at a time across all replicas.
    #[arg(long, env = "PURGE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub purge_interval: Duration,

    /// How long a periodic job's lease lasts unrenewed: a replica that dies holding it
    /// hands the job over after this.
    #[arg(long, env = "JOB_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub job_lease_ttl: Duration,

    /// Emails of accounts that are admins, comma-separated (compared case-insensitively).
    #[arg(long, env = "ADMIN_EMAILS", value_delimiter = ',', default_value = "")]
    pub admin_emails: Vec<String>,

    /// `file` writes each mail into MAIL_DIR; `smtp` sends it through SMTP_URL.
    #[arg(long, env = "MAIL_TRANSPORT", value_enum, default_value_t = MailTransport::File)]
    pub mail_transport: MailTransport,

    /// Where the `file` transport writes messages.
    #[arg(long, env = "MAIL_DIR", default_value = ".local/mail")]
    pub mail_dir: PathBuf,

    /// SMTP server for the `smtp` transport, e.g. `smtps://user:pass@smtp.example.com:465`.
    #[arg(long, env = "SMTP_URL")]
    pub smtp_url: Option<Secret>,

    /// The longest one mail may take to send through SMTP, connection included; past it
    /// the mail is given up (and logged). A sign-up sends its mail before it answers, so
    /// this bounds how long a stalled SMTP server can hold one.
    #[arg(long, env = "MAIL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub mail_timeout: Duration,

    /// Password-reset mails being sent at once in this process (they go out in the
    /// background); past it, a new one is dropped and logged. The answer is the same
    /// either way, so a flood of reset requests cannot pile up sending tasks.
    #[arg(long, env = "RESET_MAILS_IN_FLIGHT", default_value_t = 32)]
    pub reset_mails_in_flight: usize,

    /// Sender of outgoing mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Board <no-reply@board.local>"
    )]
    pub mail_from: String,

    /// `text` for people, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where `/metrics` goes in production unless METRICS_ADDR says otherwise: loopback, so
/// that it is never public by default, on the port of OpenTelemetry's Prometheus
/// exporter (9464), which scrapers and their examples expect.
pub const PRODUCTION_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Config {
    /// The address `/metrics` is served on apart from the API, if any: METRICS_ADDR, or in
    /// production [`PRODUCTION_METRICS_ADDR`]. `None`: on the API's own port (development,
    /// so that `make run` serves everything on one port).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        match (self.metrics_addr, self.environment) {
            (Some(address), _) => Some(address),
            (None, Environment::Production) => Some(PRODUCTION_METRICS_ADDR),
            (None, Environment::Development) => None,
        }
    }

    /// Refuses settings that would be unsafe or cannot work.
    pub fn validate(&self) -> Result<(), String> {
        match &self.jwt_secret {
            None if self.environment == Environment::Production => {
                return Err("JWT_SECRET must be set in production".into());
            }
            Some(secret) if secret.expose().len() < 32 => {
                return Err("JWT_SECRET must be at least 32 bytes".into());
            }
            _ => {}
        }
        if self.mail_transport == MailTransport::Smtp && self.smtp_url.is_none() {
            return Err("MAIL_TRANSPORT=smtp needs SMTP_URL".into());
        }
        if self.event_store_pool_size < 1 || self.read_pool_size < 1 || self.projector_pool_size < 1
        {
            return Err(
                "EVENT_STORE_POOL_SIZE, READ_POOL_SIZE and PROJECTOR_POOL_SIZE must be at least 1"
                    .into(),
            );
        }
        if self.kafka_partitions < 1 || self.kafka_replication < 1 {
            return Err("KAFKA_PARTITIONS and KAFKA_REPLICATION must be at least 1".into());
        }
        // Port 0 picks a free port, for each listener its own.
        if self.metrics_address() == Some(self.listen) && self.listen.port() != 0 {
            return Err("METRICS_ADDR must differ from BOARD_LISTEN".into());
        }
        if self.max_connections < 1 || self.max_read_waiters < 1 {
            return Err("MAX_CONNECTIONS and MAX_READ_WAITERS must be at least 1".into());
        }
        if self.live_replay_events < 1
            || self.live_subscriber_buffer < 1
            || self.max_live_streams < 1
            || self.live_streams_per_address < 1
        {
            return Err(
                "LIVE_REPLAY_EVENTS, LIVE_SUBSCRIBER_BUFFER, MAX_LIVE_STREAMS and \
                 LIVE_STREAMS_PER_ADDRESS must be at least 1"
                    .into(),
            );
        }
        if self.live_keepalive.is_zero() || self.live_keepalive > Duration::from_secs(15) {
            return Err("LIVE_KEEPALIVE must be longer than 0 and at most 15s".into());
        }
        if [
            self.header_read_timeout,
            self.body_read_timeout,
            self.idle_timeout,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return Err(
                "HEADER_READ_TIMEOUT, BODY_READ_TIMEOUT and IDLE_TIMEOUT must be longer than 0"
                    .into(),
            );
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl <= self.access_token_ttl {
            return Err("REFRESH_TOKEN_TTL must be longer than ACCESS_TOKEN_TTL (> 0)".into());
        }
        if self.mail_timeout.is_zero() || self.reset_mails_in_flight < 1 {
            return Err(
                "MAIL_TIMEOUT must be longer than 0 and RESET_MAILS_IN_FLIGHT at least 1".into(),
            );
        }
        if self.idempotency_key_ttl.is_zero() || self.purge_interval.is_zero() {
            return Err("IDEMPOTENCY_KEY_TTL and PURGE_INTERVAL must be longer than 0".into());
        }
        // Renewed every third of it: shorter, and one slow query would hand a job over.
        if self.job_lease_ttl < Duration::from_secs(1) {
            return Err("JOB_LEASE_TTL must be at least 1s".into());
        }
        Ok(())
    }

    /// The key that signs tokens (and keys idempotency fingerprints): JWT_SECRET, or in
    /// development a random key made once per process.
    pub fn signing_secret(&self) -> &[u8] {
        static GENERATED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        match &self.jwt_secret {
            Some(secret) => secret.expose().as_bytes(),
            None => GENERATED
                .get_or_init(|| {
                    use rand::RngCore;
                    let mut key = [0u8; 48];
                    rand::thread_rng().fill_bytes(&mut key);
                    key.iter().map(|b| format!("{b:02x}")).collect()
                })
                .as_bytes(),
        }
    }

    pub fn kafka(&self) -> crate::kafka::KafkaSettings {
        crate::kafka::KafkaSettings {
            brokers: self.kafka_brokers.clone(),
            topic: self.kafka_topic.clone(),
            partitions: self.kafka_partitions,
            replication: self.kafka_replication,
        }
    }

    pub fn purge(&self) -> crate::jobs::purge::PurgeSettings {
        crate::jobs::purge::PurgeSettings {
            interval: self.purge_interval,
            lease_ttl: self.job_lease_ttl,
            idempotency_key_ttl: self.idempotency_key_ttl,
        }
    }

    pub fn live(&self) -> crate::live::LiveSettings {
        crate::live::LiveSettings {
            replay: self.live_replay_events,
            subscriber_buffer: self.live_subscriber_buffer,
            keep_alive: self.live_keepalive,
            retry: self.live_retry,
            max_streams: self.max_live_streams,
            streams_per_address: self.live_streams_per_address,
        }
    }

    pub fn is_admin_email(&self, normalized_email: &str) -> bool {
        self.admin_emails
            .iter()
            .any(|admin| aggregates::rules::normalize_email(admin) == normalized_email)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailTransport {
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A value that must never be printed: `Debug` shows `***`, and there is deliberately no
/// `Display`, so a secret cannot slip into a message; read it with [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Parses `250ms`, `90s`, `15m`, `2h`, `14d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 15m"))?;
    let millis = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(number * millis))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    fn parse(args: &[&str]) -> Config {
        let args = ["board"].iter().chain(args).chain(&["serve"]);
        crate::cli::Cli::try_parse_from(args).unwrap().config
    }

    #[test]
    fn metrics_leave_the_public_port_in_production_only() {
        assert_eq!(parse(&[]).metrics_address(), None);
        assert_eq!(
            parse(&["--environment", "production"]).metrics_address(),
            Some(PRODUCTION_METRICS_ADDR)
        );
        let chosen: SocketAddr = "10.0.0.5:9100".parse().unwrap();
        for environment in ["development", "production"] {
            let config = parse(&[
                "--environment",
                environment,
                "--metrics-addr",
                "10.0.0.5:9100",
            ]);
            assert_eq!(config.metrics_address(), Some(chosen));
        }
    }

    #[test]
    fn metrics_cannot_share_the_api_address() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:9100",
            "--metrics-addr",
            "127.0.0.1:9100",
        ]);
        let problem = config.validate().unwrap_err();
        assert!(problem.contains("METRICS_ADDR"), "{problem}");
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
