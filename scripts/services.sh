#!/usr/bin/env bash
# Local services for Board: PostgreSQL (event store), MariaDB (read models) and a
# Kafka-protocol broker (Tansu).
#
#   scripts/services.sh [up]    reuse what already answers, install/start what does not,
#                               then make sure the application roles and databases exist
#   scripts/services.sh down    stop the broker this script started (never the databases)
#   scripts/services.sh status  one line per service
#   scripts/services.sh prune PREFIX...
#                               delete the broker's topics named PREFIX… (the scratch
#                               topics tests and benchmarks leave once they have ended)
#   scripts/services.sh tools   the tools the tests drive: Chromium and nginx (Debian's
#                               packages, for the browser and cluster tests) and
#                               schemathesis (PyPI, pinned, kept in .local/schemathesis);
#                               reused when already there
#
# Addresses (environment, or .env at the repo root; defaults in brackets):
#   PGHOST [127.0.0.1]  PGPORT [5432]  MYSQL_HOST [127.0.0.1]  MYSQL_PORT [3306]
#   KAFKA_BROKERS [127.0.0.1:9092]  (the first entry of the list is used)
#   MYSQL_SOCKET [client default]    socket for root's unix_socket login
#   SERVICES_START_TIMEOUT [30]      seconds to wait for a started server to answer
#   TANSU_BUILD_WAIT_TIMEOUT [2400]  seconds to wait for someone else's `cargo install tansu`
#   TANSU_RUST_LOG [warn]            the broker's log filter; not RUST_LOG, which is Board's
#
# Servers are installed or started only when their address is on this machine.
# Installing needs root (apt-get); the Tansu broker is built with `cargo install`.
# Idempotent: running `up` twice changes nothing the second time.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

SCRIPT=services.sh
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
load_dotenv

PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}"
MYSQL_PORT="${MYSQL_PORT:-3306}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"

# First broker of a comma-separated list, without any scheme.
KAFKA_ADDR="${KAFKA_BROKERS%%,*}"
KAFKA_ADDR="${KAFKA_ADDR#*://}"
KAFKA_HOST="${KAFKA_ADDR%:*}"
KAFKA_PORT="${KAFKA_ADDR##*:}"
if [[ "$KAFKA_HOST" == "$KAFKA_ADDR" ]]; then   # no port given
    KAFKA_PORT=9092
fi

# What the application uses (see .env.example).
APP_DB_USER=board
APP_DB_PASSWORD=board
APP_PG_DATABASE=board
APP_MYSQL_DATABASE=board_read

# Tansu broker: version, where it keeps its data, log and pid.
TANSU_VERSION=0.6.0
TANSU_DIR="$REPO_ROOT/.local/tansu"
TANSU_LOG="$TANSU_DIR/broker.log"
TANSU_PID="$TANSU_DIR/broker.pid"
TANSU_DB=tansu.db   # relative: Tansu puts sqlite://NAME in its working directory
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

# Bounds for waiting.
START_TIMEOUT="${SERVICES_START_TIMEOUT:-30}"      # seconds for a server to answer
BUILD_WAIT_TIMEOUT="${TANSU_BUILD_WAIT_TIMEOUT:-2400}"   # another cargo install tansu
TANSU_RUST_LOG="${TANSU_RUST_LOG:-warn}"

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

pg_answers() {
    if have pg_isready; then
        pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2
    else
        tcp_open "$PGHOST" "$PGPORT"
    fi
}

# The cluster that serves $PGPORT ("15 main"), else the newest one.
pg_cluster() {
    local cluster
    if have pg_lsclusters; then
        cluster="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p { print $1, $2; exit }')"
        [[ -n "$cluster" ]] && { say "$cluster"; return; }
    fi
    # shellcheck disable=SC2012
    cluster="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$cluster" ]] && say "$cluster main"
}

pg_up() {
    if pg_answers; then
        say "postgresql: already running on $PGHOST:$PGPORT"
        return
    fi
    is_local "$PGHOST" || die "postgresql: nothing answers on $PGHOST:$PGPORT (not this machine, so not starting one)"
    if ! have pg_ctlcluster || [[ -z "$(pg_cluster)" ]]; then
        apt_install postgresql postgresql-client
    fi
    local cluster
    cluster="$(pg_cluster)"
    [[ -n "$cluster" ]] || die "postgresql: installed, but no cluster under /etc/postgresql"
    if ! pg_answers; then   # apt's postinst may have started it already
        say "postgresql: starting cluster $cluster"
        # shellcheck disable=SC2086
        (close_extra_fds && pg_ctlcluster --skip-systemctl-redirect $cluster start) ||
            pg_answers || die "postgresql: pg_ctlcluster $cluster start failed"
    fi
    wait_for postgresql "$START_TIMEOUT" pg_answers ||
        die "postgresql: cluster $cluster started but $PGHOST:$PGPORT does not answer (check its port in /etc/postgresql/${cluster// //}/postgresql.conf)"
    say "postgresql: running on $PGHOST:$PGPORT"
}

# pg_admin ARGS...: psql as a superuser. Trust auth over TCP as postgres (this
# kind of dev machine), else peer auth over the local socket (fresh Debian).
PG_ADMIN=""
pg_admin() {
    case "$PG_ADMIN" in
        tcp) PGCONNECT_TIMEOUT=5 psql -X -w -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres "$@" ;;
        peer) (cd / && runuser -u postgres -- psql -X -w -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PGPORT" -U postgres -d postgres "$@") ;;
        *) return 1 ;;
    esac
}
pg_find_admin() {
    for PG_ADMIN in tcp peer; do
        if [[ $PG_ADMIN == peer ]] && ! { is_local "$PGHOST" && have runuser && id postgres >/dev/null 2>&1; }; then
            continue
        fi
        pg_admin -Atc 'select 1' >/dev/null 2>&1 && return 0
    done
    PG_ADMIN=""
    return 1
}

pg_app_login() {
    PGPASSWORD="$APP_DB_PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -w -q -Atc 'select 1' \
        -h "$PGHOST" -p "$PGPORT" -U "$APP_DB_USER" -d "$APP_PG_DATABASE" >/dev/null 2>&1
}

pg_roles() {
    have psql || apt_install postgresql-client
    if ! pg_find_admin; then
        pg_app_login || die "postgresql: no superuser access (trust as postgres on $PGHOST, or peer via runuser) and role $APP_DB_USER cannot log in; create it by hand"
        say "postgresql: no superuser access; role $APP_DB_USER can log in to $APP_PG_DATABASE, leaving it as is"
        return
    fi
    local role_existed db_existed
    role_existed="$(pg_admin -Atc "select count(*) from pg_roles where rolname = '$APP_DB_USER'")"
    # Create or (re)align the role: LOGIN CREATEDB with the known password.
    pg_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_DB_USER') THEN
        CREATE ROLE $APP_DB_USER LOGIN CREATEDB PASSWORD '$APP_DB_PASSWORD';
    ELSE
        ALTER ROLE $APP_DB_USER LOGIN CREATEDB PASSWORD '$APP_DB_PASSWORD';
    END IF;
END
\$\$;
SQL
    db_existed="$(pg_admin -Atc "select count(*) from pg_database where datname = '$APP_PG_DATABASE'")"
    if [[ "$db_existed" == 0 ]]; then
        # CREATE DATABASE cannot run inside DO/transactions, hence the check above.
        pg_admin -c "CREATE DATABASE $APP_PG_DATABASE OWNER $APP_DB_USER"
    else
        pg_admin -c "ALTER DATABASE $APP_PG_DATABASE OWNER TO $APP_DB_USER"
    fi
    pg_app_login || die "postgresql: role $APP_DB_USER still cannot log in to $APP_PG_DATABASE on $PGHOST:$PGPORT (check pg_hba.conf)"
    say "postgresql: role $APP_DB_USER $([[ $role_existed == 0 ]] && echo created || echo ok)," \
        "database $APP_PG_DATABASE $([[ $db_existed == 0 ]] && echo created || echo ok)" \
        "(admin via $PG_ADMIN, login as $APP_DB_USER checked)"
}

pg_status() {
    if pg_answers; then say "postgresql: up on $PGHOST:$PGPORT"; else say "postgresql: DOWN on $PGHOST:$PGPORT"; return 1; fi
}

# ---------------------------------------------------------------------------
# MariaDB (MySQL protocol)
# ---------------------------------------------------------------------------

MARIADBD=/usr/sbin/mariadbd

my_answers() {
    if have mariadb-admin; then
        # ping exits 0 whenever the server answers, even with "access denied".
        mariadb-admin --no-defaults --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
            --connect-timeout=2 -uping ping >/dev/null 2>&1
    else
        tcp_open "$MYSQL_HOST" "$MYSQL_PORT"
    fi
}

my_up() {
    if my_answers; then
        say "mariadb: already running on $MYSQL_HOST:$MYSQL_PORT"
        return
    fi
    is_local "$MYSQL_HOST" || die "mariadb: nothing answers on $MYSQL_HOST:$MYSQL_PORT (not this machine, so not starting one)"
    if [[ ! -x "$MARIADBD" ]]; then
        apt_install mariadb-server mariadb-client
        # apt's postinst starts it where init scripts may run; otherwise we do.
        wait_for mariadb 5 my_answers 2>/dev/null && { say "mariadb: running on $MYSQL_HOST:$MYSQL_PORT (started by apt)"; return; }
    fi
    say "mariadb: starting $MARIADBD"
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    mkdir -p "$REPO_ROOT/.local"
    # --user: Debian's packaged config leaves `user = mysql` to systemd.
    (close_extra_fds && start-stop-daemon --start --oknodo --background --output "$REPO_ROOT/.local/mariadbd.out" \
        --exec "$MARIADBD" -- --user=mysql)
    wait_for mariadb "$START_TIMEOUT" my_answers || {
        tail -n 20 "$REPO_ROOT/.local/mariadbd.out" /var/log/mysql/error.log 2>/dev/null >&2 || true
        die "mariadb: started but $MYSQL_HOST:$MYSQL_PORT does not answer (bind-address/port in /etc/mysql?)"
    }
    say "mariadb: running on $MYSQL_HOST:$MYSQL_PORT"
}

# my_admin ARGS...: the client as root. Empty password over TCP (this kind of
# dev machine), else unix_socket auth over the local socket (fresh Debian).
MY_ADMIN=""
my_admin() {
    case "$MY_ADMIN" in
        tcp) mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" --connect-timeout=5 -uroot --password= "$@" ;;
        socket) mariadb --protocol=socket ${MYSQL_SOCKET:+"--socket=$MYSQL_SOCKET"} -uroot "$@" ;;
        *) return 1 ;;
    esac
}
my_find_admin() {
    for MY_ADMIN in tcp socket; do
        if [[ $MY_ADMIN == socket ]] && ! is_local "$MYSQL_HOST"; then
            continue
        fi
        my_admin -N -e 'select 1' >/dev/null 2>&1 && return 0
    done
    MY_ADMIN=""
    return 1
}

my_app_login() {
    MYSQL_PWD="$APP_DB_PASSWORD" mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
        --connect-timeout=5 -u"$APP_DB_USER" -N -e "select 1" "$APP_MYSQL_DATABASE" >/dev/null 2>&1
}

my_roles() {
    have mariadb || apt_install mariadb-client
    if ! my_find_admin; then
        my_app_login || die "mariadb: no root access (empty password on $MYSQL_HOST:$MYSQL_PORT, or the local socket) and user $APP_DB_USER cannot log in; create it by hand"
        say "mariadb: no root access; user $APP_DB_USER can log in to $APP_MYSQL_DATABASE, leaving it as is"
        return
    fi
    local users_existed db_existed
    users_existed="$(my_admin -N -e "select count(*) from mysql.user where user = '$APP_DB_USER' and host in ('localhost', '127.0.0.1')")"
    db_existed="$(my_admin -N -e "select count(*) from information_schema.schemata where schema_name = '$APP_MYSQL_DATABASE'")"
    # board@localhost is used over the socket, board@127.0.0.1 over TCP (with
    # skip-name-resolve 127.0.0.1 does not match 'localhost'). Global privileges:
    # the tests create one database per test.
    my_admin <<SQL
CREATE USER IF NOT EXISTS '$APP_DB_USER'@'localhost' IDENTIFIED BY '$APP_DB_PASSWORD';
CREATE USER IF NOT EXISTS '$APP_DB_USER'@'127.0.0.1' IDENTIFIED BY '$APP_DB_PASSWORD';
ALTER USER '$APP_DB_USER'@'localhost' IDENTIFIED BY '$APP_DB_PASSWORD';
ALTER USER '$APP_DB_USER'@'127.0.0.1' IDENTIFIED BY '$APP_DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$APP_DB_USER'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO '$APP_DB_USER'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS \`$APP_MYSQL_DATABASE\` CHARACTER SET utf8mb4;
SQL
    my_app_login || die "mariadb: user $APP_DB_USER still cannot log in to $APP_MYSQL_DATABASE on $MYSQL_HOST:$MYSQL_PORT"
    say "mariadb: users $APP_DB_USER@localhost,$APP_DB_USER@127.0.0.1 $([[ $users_existed == 2 ]] && echo ok || echo created)," \
        "database $APP_MYSQL_DATABASE $([[ $db_existed == 0 ]] && echo created || echo ok)" \
        "(admin via $MY_ADMIN, login as $APP_DB_USER checked)"
}

my_status() {
    if my_answers; then say "mariadb: up on $MYSQL_HOST:$MYSQL_PORT"; else say "mariadb: DOWN on $MYSQL_HOST:$MYSQL_PORT"; return 1; fi
}

# ---------------------------------------------------------------------------
# Kafka protocol broker: Tansu
# ---------------------------------------------------------------------------

kafka_answers() { tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; }

# Whether our broker serves requests, not only accepts connections: Tansu 0.6.0 can lose
# its storage task to a panic (a produce whose producer epoch its store does not know, see
# docs/BROKER.md) and then keeps its port open while failing every request. A metadata
# request (listing topics) tells; tried twice, as a busy broker can take seconds to answer.
kafka_serves() {
    local bin try
    bin="$(tansu_bin)" || return 1
    for try in 1 2; do
        timeout 15 "$bin" topic list --broker "tcp://$KAFKA_HOST:$KAFKA_PORT" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

tansu_bin() {
    if have tansu; then command -v tansu
    elif [[ -x "$CARGO_BIN/tansu" ]]; then say "$CARGO_BIN/tansu"
    else return 1
    fi
}

# The pid in our pid file, if that process is alive and is a tansu.
tansu_running_pid() {
    local pid
    [[ -f "$TANSU_PID" ]] || return 1
    pid="$(<"$TANSU_PID")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'tansu' || return 1
    say "$pid"
}

# Find tansu, or wait for a build someone else started, or build it ourselves.
tansu_ensure_installed() {
    local pids waited=0
    tansu_bin >/dev/null && [[ -z "$(pgrep -f 'cargo install tansu' || true)" ]] && return 0
    pids="$(pgrep -f 'cargo install tansu' || true)"
    if [[ -n "$pids" ]]; then
        say "kafka: waiting for a running 'cargo install tansu' (pid ${pids//$'\n'/ }) to finish"
        while [[ -n "$(pgrep -f 'cargo install tansu' || true)" ]]; do
            ((waited += 10))
            ((waited <= BUILD_WAIT_TIMEOUT)) || die "kafka: 'cargo install tansu' still running after ${BUILD_WAIT_TIMEOUT}s"
            sleep 10
        done
        tansu_bin >/dev/null && return 0
        say "kafka: that build ended without a tansu binary; building it here"
    fi
    have cargo || [[ -x "$CARGO_BIN/cargo" ]] || die "kafka: tansu is not installed and cargo is not available (install Rust via rustup)"
    local cargo_cmd
    cargo_cmd="$(command -v cargo || echo "$CARGO_BIN/cargo")"
    mkdir -p "$TANSU_DIR"
    say "kafka: building tansu $TANSU_VERSION with cargo install (about 15-20 minutes on two cores; log: .local/tansu/install.log)"
    if ! "$cargo_cmd" install tansu --version "$TANSU_VERSION" --locked --features libsql \
        >"$TANSU_DIR/install.log" 2>&1 9>&-; then
        tail -n 30 "$TANSU_DIR/install.log" >&2
        die "kafka: cargo install tansu failed (full log: $TANSU_DIR/install.log)"
    fi
    tansu_bin >/dev/null || die "kafka: cargo install finished but no tansu in PATH or $CARGO_BIN"
}

# Applies scripts/tansu-store.sql to our broker's SQLite store: indexes the broker lacks,
# and a guard for its topic deletion (see docs/BROKER.md).
tansu_repair_store() {
    have python3 || apt_install python3
    python3 "$REPO_ROOT/scripts/tansu-store.py" "$TANSU_DIR/$TANSU_DB" ||
        die "kafka: could not repair the broker's store $TANSU_DIR/$TANSU_DB"
    say "kafka: store repairs applied (scripts/tansu-store.sql)"
}

# Whether our running broker was started with another log filter than TANSU_RUST_LOG
# (false when its environment cannot be read: then it is left alone).
tansu_log_filter_differs() {
    [[ -r "/proc/$1/environ" ]] || return 1
    [[ "$(tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^RUST_LOG=//p')" != "$TANSU_RUST_LOG" ]]
}

kafka_up() {
    local running
    running="$(tansu_running_pid || true)"
    if kafka_answers && [[ -n "$running" ]] && ! kafka_serves; then
        say "kafka: our tansu (pid $running) accepts connections but fails requests; restarting it (last errors in .local/tansu/broker.log)"
        tansu_stop
    elif [[ -n "$running" ]] && tansu_log_filter_differs "$running"; then
        # Started before the broker had a filter of its own, it may be logging every
        # request (docs/BROKER.md): start it again with TANSU_RUST_LOG. (A run using it
        # meanwhile sees a broker restart, which every part of Board recovers from.)
        say "kafka: our tansu (pid $running) runs with another log filter; restarting it with '$TANSU_RUST_LOG'"
        tansu_stop
    fi
    if kafka_answers; then
        local pid note="not started by this script"
        pid="$(tansu_running_pid || true)"
        [[ -n "$pid" ]] && note="tansu pid $pid, started by this script"
        say "kafka: already running on $KAFKA_HOST:$KAFKA_PORT ($note)"
        # (an `if`: a bare `[[ ]] &&` would make the function's status 1 for a broker
        # that is not ours, and stop `up` under `set -e`)
        if [[ -n "$pid" ]]; then
            tansu_repair_store
        fi
        return 0
    fi
    is_local "$KAFKA_HOST" || die "kafka: nothing answers on $KAFKA_HOST:$KAFKA_PORT (not this machine, so not starting one)"
    tansu_ensure_installed
    local bin url pid
    bin="$(tansu_bin)"
    url="tcp://$KAFKA_HOST:$KAFKA_PORT"
    mkdir -p "$TANSU_DIR"
    # A broker of ours that is alive but not answering: restart it.
    if pid="$(tansu_running_pid)"; then
        say "kafka: our tansu (pid $pid) does not answer; restarting it"
        tansu_stop
    fi
    say "kafka: starting $bin broker on $url (data: .local/tansu/$TANSU_DB)"
    # The sqlite path in --storage-engine is resolved against the working
    # directory, so run it from the data folder. setsid + nohup detach it from
    # this shell and its terminal; it outlives the script.
    (
        cd "$TANSU_DIR"
        close_extra_fds
        {
            printf '\n==== %s: %s broker --listener-url %s --advertised-listener-url %s --storage-engine sqlite://%s\n' \
                "$(date -Is)" "$bin" "$url" "$url" "$TANSU_DB"
        } >>"$TANSU_LOG"
        # Board's RUST_LOG (info in .env.example) would reach the broker too, and Tansu
        # logs every span's new/enter/exit/close at info: gigabytes an hour, written from
        # its request path (docs/BROKER.md).
        RUST_LOG="$TANSU_RUST_LOG" setsid nohup "$bin" broker \
            --listener-url "$url" \
            --advertised-listener-url "$url" \
            --storage-engine "sqlite://$TANSU_DB" \
            </dev/null >>"$TANSU_LOG" 2>&1 &
        echo $! >"$TANSU_PID"
    )
    # Wait (bounded) until it answers; give up early if it exits.
    local i problem="did not answer within ${START_TIMEOUT}s"
    pid="$(<"$TANSU_PID")"
    for ((i = 0; i <= START_TIMEOUT * 4; i++)); do
        kafka_answers && { problem=""; break; }
        kill -0 "$pid" 2>/dev/null || { problem="exited"; break; }
        sleep 0.25
    done
    if [[ -n "$problem" ]]; then
        say "---- last lines of $TANSU_LOG ----" >&2
        tail -n 30 "$TANSU_LOG" >&2 || true
        tansu_stop >/dev/null
        die "kafka: tansu $problem on $KAFKA_HOST:$KAFKA_PORT"
    fi
    say "kafka: tansu running on $KAFKA_HOST:$KAFKA_PORT (pid $(<"$TANSU_PID"), log: .local/tansu/broker.log)"
    # The broker creates its tables as it starts, before it listens.
    tansu_repair_store
}

# Deletes the topics whose names begin with one of the given prefixes: the scratch topics
# of tests and benchmarks, once their processes have ended. Only on our own broker, whose
# store has the guard that makes deleting one topic delete only that one (see
# docs/BROKER.md); run it while no client of those topics is alive, since a client that
# reads a topic deleted under it crashes (librdkafka, also in docs/BROKER.md).
kafka_prune() {
    (($# > 0)) || die "prune: name at least one topic prefix"
    if ! kafka_answers || ! tansu_running_pid >/dev/null; then
        say "kafka: no broker of ours is running; no topics to prune"
        return 0
    fi
    tansu_repair_store >/dev/null
    local bin broker names name prefix deleted=0
    bin="$(tansu_bin)"
    broker="tcp://$KAFKA_HOST:$KAFKA_PORT"
    # The CLI writes its log to standard output, before the JSON, at whatever level
    # RUST_LOG asks for (`make` exports it from .env): silenced, the output is the listing.
    names="$(RUST_LOG=off "$bin" topic list --broker "$broker" |
        python3 -c 'import json, sys; print("\n".join(t["name"] for t in json.load(sys.stdin)))')" ||
        die "kafka: could not list the broker's topics"
    while IFS= read -r name; do
        [[ -n "$name" ]] || continue
        for prefix in "$@"; do
            if [[ "$name" == "$prefix"* ]]; then
                RUST_LOG=off "$bin" topic delete "$name" --broker "$broker" >/dev/null ||
                    die "kafka: could not delete topic $name"
                deleted=$((deleted + 1))
                break
            fi
        done
    done <<<"$names"
    say "kafka: deleted $deleted topics named $* …"
}

tansu_stop() {
    local pid i
    if ! pid="$(tansu_running_pid)"; then
        rm -f "$TANSU_PID"
        say "kafka: no broker started by this script is running"
        return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "kafka: tansu (pid $pid) ignored SIGTERM for 10s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$TANSU_PID"
    say "kafka: stopped tansu (pid $pid)"
}

kafka_status() {
    local pid note=""
    pid="$(tansu_running_pid || true)"
    [[ -n "$pid" ]] && note=" (tansu pid $pid, started by this script)"
    if kafka_answers && [[ -n "$pid" ]] && ! kafka_serves; then
        say "kafka: WEDGED on $KAFKA_HOST:$KAFKA_PORT$note: it accepts connections but fails requests; \`scripts/services.sh up\` restarts it"
        return 1
    elif kafka_answers; then
        say "kafka: up on $KAFKA_HOST:$KAFKA_PORT${note:- (not started by this script)}"
    else
        say "kafka: DOWN on $KAFKA_HOST:$KAFKA_PORT${note}"
        return 1
    fi
}

# ---------------------------------------------------------------------------
# Test tools
# ---------------------------------------------------------------------------

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_DIR="$REPO_ROOT/.local/schemathesis"

tools_up() {
    if have chromium; then
        say "chromium: $(command -v chromium) already installed"
    else
        apt_install chromium
    fi
    if have nginx; then
        say "nginx: $(command -v nginx) already installed"
    else
        apt_install nginx
    fi
    local st="$SCHEMATHESIS_DIR/bin/st"
    if [[ -x "$st" ]] && "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        say "schemathesis: $SCHEMATHESIS_VERSION already in .local/schemathesis"
    else
        say "schemathesis: installing $SCHEMATHESIS_VERSION from PyPI into .local/schemathesis"
        rm -rf "$SCHEMATHESIS_DIR"
        python3 -m venv "$SCHEMATHESIS_DIR"
        "$SCHEMATHESIS_DIR/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION"
        "$st" --version >/dev/null || die "schemathesis: installed, but $st does not run"
    fi
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

# One `up` at a time (e.g. two make targets in parallel).
take_lock() {
    have flock || return 0
    mkdir -p "$REPO_ROOT/.local"
    exec 9>"$REPO_ROOT/.local/services.lock"
    flock -w 3600 9 || die "another services.sh holds .local/services.lock"
}

cmd="${1:-up}"
case "$cmd" in
    up)
        take_lock
        pg_up
        pg_roles
        my_up
        my_roles
        kafka_up
        ;;
    down)
        take_lock
        tansu_stop
        ;;
    prune)
        shift
        take_lock
        kafka_prune "$@"
        ;;
    tools)
        take_lock
        tools_up
        ;;
    status)
        rc=0
        pg_status || rc=1
        my_status || rc=1
        kafka_status || rc=1
        exit "$rc"
        ;;
    -h | --help | help)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$cmd' (use up, down, status, prune or tools)"
        ;;
esac
