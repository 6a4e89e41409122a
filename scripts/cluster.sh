#!/usr/bin/env bash
# Board as a cluster on this machine: nginx on one address in front of API replicas, two
# relays (one publishes, one waits for the lease) and two projectors in one group, every
# part the same `board` binary with one shared configuration.
#
#   scripts/cluster.sh up       start what is not running (nginx installed with apt-get
#                               when missing); reuses what is
#   scripts/cluster.sh down     stop everything `up` started
#   scripts/cluster.sh status   one line per part
#   scripts/cluster.sh roll     restart every part one at a time, as a deploy does: an API
#                               replica leaves nginx's rotation, finishes what it is
#                               serving, exits, comes back ready, rejoins; then the next;
#                               then the relays and the projectors
#   scripts/cluster.sh kill NAME
#                               kill -9 one part (api-1, relay-2, ...): what a crash does
#
# The databases and the broker are those of `scripts/services.sh` (`make cluster` brings
# them up first). Settings (environment, or .env; defaults in brackets):
#   CLUSTER_DIR [.local/cluster]   pids, logs, nginx's configuration and the shared secret
#   CLUSTER_LISTEN [127.0.0.1:8080] where nginx serves Board
#   CLUSTER_API_PORTS ["8081 8082"] one API replica per port, on 127.0.0.1
#   CLUSTER_METRICS_PORTS ["9081 9082"] each replica's /metrics (never behind nginx)
#   BOARD_BIN [target/release/board]
#   CLUSTER_READY_TIMEOUT [60]      seconds for a part to become ready
#   CLUSTER_OWNER_PID [unset]       when set, `up` leaves a watchdog that runs `down` once
#                                   that process is gone (a test run that was killed)
# Board's own settings (DATABASE_URL, KAFKA_BROKERS, ...) are read by every part from the
# same environment. JWT_SECRET, when unset, is generated once into CLUSTER_DIR/jwt-secret
# so that a token one replica issued is accepted by every other. TRUSTED_PROXIES defaults
# to nginx's address here (127.0.0.1): the replicas count each client by the address
# nginx forwards, not all of them as nginx.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
SCRIPT=cluster.sh
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
load_dotenv

CLUSTER_DIR="${CLUSTER_DIR:-$REPO_ROOT/.local/cluster}"
CLUSTER_LISTEN="${CLUSTER_LISTEN:-127.0.0.1:8080}"
read -r -a API_PORTS <<<"${CLUSTER_API_PORTS:-8081 8082}"
read -r -a METRICS_PORTS <<<"${CLUSTER_METRICS_PORTS:-9081 9082}"
[[ ${#METRICS_PORTS[@]} -eq ${#API_PORTS[@]} ]] || die "CLUSTER_METRICS_PORTS needs one port per API replica"
BOARD_BIN="${BOARD_BIN:-$REPO_ROOT/target/release/board}"
READY_TIMEOUT="${CLUSTER_READY_TIMEOUT:-60}"
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1}"
NGINX_DIR="$CLUSTER_DIR/nginx"
NGINX_CONF="$NGINX_DIR/nginx.conf"
NGINX_PID="$NGINX_DIR/nginx.pid"

# Every part: its name and the arguments after `board`.
parts() {
    local i
    for i in "${!API_PORTS[@]}"; do
        printf 'api-%d\t--listen 127.0.0.1:%s --metrics-addr 127.0.0.1:%s serve --components api\n' \
            "$((i + 1))" "${API_PORTS[$i]}" "${METRICS_PORTS[$i]}"
    done
    printf 'relay-1\tserve --components relay\nrelay-2\tserve --components relay\n'
    printf 'projector-1\tserve --components projector\nprojector-2\tserve --components projector\n'
}

part_args() { parts | awk -F'\t' -v n="$1" '$1 == n { print $2 }'; }
part_names() { parts | cut -f1; }
api_port() { local i="${1#api-}"; printf '%s' "${API_PORTS[$((i - 1))]}"; }

# The pid of part $1 while it runs. A pid file outlives its process (a crash, a reboot)
# and the number may belong to another process since: it counts only if that process
# is our binary with the part's arguments.
pid_of() {
    local file="$CLUSTER_DIR/$1.pid" pid cmdline
    [[ -f "$file" ]] || return 1
    pid="$(<"$file")"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == "$BOARD_BIN $(part_args "$1")"* ]] || return 1
    printf '%s' "$pid"
}

# ---------------------------------------------------------------------------
# The shared configuration
# ---------------------------------------------------------------------------

shared_secret() {
    if [[ -n "${JWT_SECRET:-}" ]]; then
        return
    fi
    local file="$CLUSTER_DIR/jwt-secret"
    if [[ ! -s "$file" ]]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
        say "cluster: generated the cluster's JWT secret into $file"
    fi
    JWT_SECRET="$(<"$file")"
    export JWT_SECRET
}

# ---------------------------------------------------------------------------
# Board's parts
# ---------------------------------------------------------------------------

start_part() {
    local name="$1" args
    if pid_of "$name" >/dev/null; then
        say "$name: already running (pid $(pid_of "$name"))"
        return
    fi
    args="$(part_args "$name")"
    [[ -n "$args" ]] || die "no part named $name"
    # shellcheck disable=SC2086 # the arguments are words
    (close_extra_fds && exec setsid "$BOARD_BIN" $args </dev/null >>"$CLUSTER_DIR/$name.log" 2>&1) &
    printf '%s' "$!" >"$CLUSTER_DIR/$name.pid"
    say "$name: started (pid $!, log $CLUSTER_DIR/$name.log)"
}

# An API replica is ready when its readiness answers 200. A relay is ready once the event
# store sees it in the relays' election (active, or waiting to take over), and a
# projector once MySQL counts it in its group's split: `board projections status` lists
# both by process (host:pid:nonce), as the stores know them.
api_ready() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$(api_port "$1")/health/ready"
}

in_the_pipeline() {
    local pid
    pid="$(pid_of "$1")" || return 1
    "$BOARD_BIN" projections status --json 2>/dev/null | tr -d ' \n' | grep -Eq "\"[^\"]*:$pid:[0-9a-f]+\""
}

# Ready, or else (the part exited, or is still not ready after READY_TIMEOUT) it fails
# with the end of the part's log, so that a failed start says why where it is reported.
wait_ready() {
    local name="$1" ready=in_the_pipeline
    [[ "$name" == api-* ]] && ready=api_ready
    local why="not ready after ${READY_TIMEOUT}s"
    if wait_for "$name" "$READY_TIMEOUT" ready_or_gone "$name" "$ready"; then
        exited "$name" || return 0
        why="exited"
    fi
    die "$name: $why; the end of $CLUSTER_DIR/$name.log:
$(tail -n 20 "$CLUSTER_DIR/$name.log" 2>/dev/null)"
}

# Succeeds when part $1 passes check $2, or has exited (there is nothing left to wait for).
ready_or_gone() {
    exited "$1" || "$2" "$1"
}

# The process start_part started for part $1 has ended: gone, or a zombie (this script is
# its parent until it exits, and reaps it only then). Not `pid_of`, which also fails for a
# moment after the start, before the subshell has become the part's program.
exited() {
    local file="$CLUSTER_DIR/$1.pid" state
    [[ -f "$file" ]] || return 1
    # The state follows the program's name in parentheses, which may hold spaces.
    state="$(sed 's/.*) //; s/ .*//' "/proc/$(<"$file")/stat" 2>/dev/null)"
    [[ -z "$state" || "$state" == Z ]]
}

# Waits up to $2 tenths of a second for process $1 to be gone.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM, then wait for the exit: the part finishes what it serves (SHUTDOWN_TIMEOUT).
stop_part() {
    local name="$1" pid
    pid="$(pid_of "$name")" || { rm -f "$CLUSTER_DIR/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true   # it may have exited meanwhile
    if ! wait_gone "$pid" 600; then
        say "$name: still running 60 s after SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 100 || die "$name: pid $pid survives SIGKILL"
    fi
    rm -f "$CLUSTER_DIR/$name.pid"
    say "$name: stopped"
}

# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

# The configuration, with the API replicas named in $1 (space-separated) out of the
# rotation.
write_nginx_conf() {
    local out=" $1 " i upstreams=""
    for i in "${!API_PORTS[@]}"; do
        local name="api-$((i + 1))" mark=""
        [[ "$out" == *" $name "* ]] && mark=" down"
        upstreams+="        server 127.0.0.1:${API_PORTS[$i]} max_fails=1 fail_timeout=2s${mark};  # $name"$'\n'
    done
    mkdir -p "$NGINX_DIR/temp"
    cat >"$NGINX_CONF.new" <<EOF
# Written by scripts/cluster.sh; rewritten at every change of the rotation.
worker_processes 2;
pid $NGINX_PID;
error_log $NGINX_DIR/error.log warn;
# A reload lets old workers finish their requests; live streams on them end after this,
# and their browsers reconnect (with Last-Event-ID) to the new workers.
worker_shutdown_timeout 10s;

events { worker_connections 4096; }

http {
    # The path without its query (which may hold a link's token), an email address in it
    # replaced, as Board logs it: no address or link token reaches the access log.
    map \$uri \$logged_uri {
        "~^(?<head>[^@]*/)[^/]*@" "\${head}{email}";
        default \$uri;
    }
    log_format board '\$remote_addr [\$time_local] "\$request_method \$logged_uri" '
                     '\$status \$body_bytes_sent \$request_time';
    access_log $NGINX_DIR/access.log board;
    client_body_temp_path $NGINX_DIR/temp/body;
    proxy_temp_path $NGINX_DIR/temp/proxy;
    fastcgi_temp_path $NGINX_DIR/temp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/temp/uwsgi;
    scgi_temp_path $NGINX_DIR/temp/scgi;
    # Board refuses bodies over 256 KiB (MAX_BODY_BYTES) itself, with its own problem
    # document. Bodies and answers stay in memory: the workers (nobody, when nginx runs as
    # root) may not be able to reach temp files under this directory, so the buffer holds
    # the largest body Board accepts.
    client_max_body_size 1m;
    client_body_buffer_size 256k;
    proxy_max_temp_file_size 0;

    upstream board {
$upstreams    }

    server {
        listen $CLUSTER_LISTEN;

        proxy_http_version 1.1;
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        # A replica that refuses the connection (stopping, crashed) never saw the request:
        # nginx sends it to the next one, a POST too. One that fails after receiving a
        # request is not retried for a POST: the client retries with its Idempotency-Key.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_connect_timeout 2s;

        location / {
            proxy_pass http://board;
        }

        # Live updates: passed on as they come, held open between keep-alives.
        location = /board/live {
            proxy_pass http://board;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }
    }
}
EOF
    mv "$NGINX_CONF.new" "$NGINX_CONF"
}

# Running, and nginx (its pid file may name another process after a crash or reboot).
nginx_running() {
    [[ -f "$NGINX_PID" ]] && [[ "$(cat "/proc/$(<"$NGINX_PID")/comm" 2>/dev/null)" == nginx ]]
}

nginx_up() {
    have nginx || apt_install nginx
    write_nginx_conf ""
    nginx -t -q -p "$NGINX_DIR" -c "$NGINX_CONF" || die "nginx: the configuration does not load"
    if nginx_running; then
        nginx -p "$NGINX_DIR" -c "$NGINX_CONF" -s reload
        say "nginx: reloaded on $CLUSTER_LISTEN"
    else
        (close_extra_fds && nginx -p "$NGINX_DIR" -c "$NGINX_CONF")
        say "nginx: serving Board on $CLUSTER_LISTEN"
    fi
}

# Rewrites the rotation and reloads. A reload is graceful: new workers take new requests
# under the new rotation at once, old ones finish theirs first.
rotation_without() {
    write_nginx_conf "$1"
    nginx -p "$NGINX_DIR" -c "$NGINX_CONF" -s reload
    # New workers are up once the old master's children changed; a short wait covers it.
    sleep 1
}

nginx_down() {
    if nginx_running; then
        nginx -p "$NGINX_DIR" -c "$NGINX_CONF" -s quit
        say "nginx: stopped"
    fi
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

# With CLUSTER_OWNER_PID set: a process that runs `down` once the owner is gone, so that a
# test run killed before its own clean-up leaves nothing running. Its pid file lets
# `down` stop it when the owner stops the cluster itself.
start_watchdog() {
    local owner="${CLUSTER_OWNER_PID:-}" file="$CLUSTER_DIR/watchdog.pid"
    [[ -n "$owner" ]] || return 0
    if [[ -f "$file" ]] && kill -0 "$(<"$file")" 2>/dev/null; then
        return 0
    fi
    (close_extra_fds && exec setsid bash -c '
        while kill -0 "$1" 2>/dev/null; do sleep 2; done
        exec "$2" down' watchdog "$owner" "$REPO_ROOT/scripts/$SCRIPT" \
        </dev/null >>"$CLUSTER_DIR/watchdog.log" 2>&1) &
    printf '%s' "$!" >"$file"
}

stop_watchdog() {
    local file="$CLUSTER_DIR/watchdog.pid" pid
    [[ -f "$file" ]] || return 0
    pid="$(<"$file")"
    rm -f "$file"
    # The watchdog itself runs `down` as its last act: it does not stop itself.
    [[ "$pid" == "$$" ]] || kill "$pid" 2>/dev/null || true
}

cluster_up() {
    [[ -x "$BOARD_BIN" ]] || die "$BOARD_BIN not found: cargo build --release --bin board"
    mkdir -p "$CLUSTER_DIR"
    start_watchdog
    shared_secret
    # Migrate once, before the replicas start (each would otherwise race to).
    "$BOARD_BIN" migrate >>"$CLUSTER_DIR/migrate.log" 2>&1 || die "migration failed; see $CLUSTER_DIR/migrate.log"
    local name
    for name in $(part_names); do
        start_part "$name"
    done
    for name in $(part_names); do
        wait_ready "$name"
    done
    nginx_up
}

cluster_down() {
    stop_watchdog
    nginx_down
    local name
    for name in $(part_names); do
        stop_part "$name"
    done
}

cluster_status() {
    local name
    for name in $(part_names); do
        if pid_of "$name" >/dev/null; then
            say "$name: running (pid $(pid_of "$name"))"
        else
            say "$name: not running"
        fi
    done
    if nginx_running; then say "nginx: serving on $CLUSTER_LISTEN"; else say "nginx: not running"; fi
}

# One part at a time; an API replica leaves the rotation first and rejoins once ready.
# Leaving the rotation is a reload, which also ends the live streams nginx holds on both
# replicas (after worker_shutdown_timeout): their browsers reconnect with Last-Event-ID
# and miss nothing. Without it, requests queued on a stopping replica's listener would be
# reset after nginx sent them, and a POST is not retried then.
cluster_roll() {
    shared_secret
    nginx_running || die "nginx is not running: scripts/cluster.sh up"
    # A deploy's new migrations, once, before any new process starts.
    "$BOARD_BIN" migrate >>"$CLUSTER_DIR/migrate.log" 2>&1 || die "migration failed; see $CLUSTER_DIR/migrate.log"
    # Whatever happens, the replica out of the rotation goes back in.
    OUT_OF_ROTATION=""
    trap '[[ -z "$OUT_OF_ROTATION" ]] || rotation_without ""' EXIT
    local name
    for name in $(part_names); do
        if [[ "$name" == api-* ]]; then
            OUT_OF_ROTATION="$name"
            rotation_without "$name"
        fi
        stop_part "$name"
        start_part "$name"
        wait_ready "$name"
        if [[ "$name" == api-* ]]; then
            rotation_without ""
            OUT_OF_ROTATION=""
        fi
        say "$name: restarted"
    done
}

cluster_kill() {
    local pid
    pid="$(pid_of "$1")" || die "$1 is not running"
    kill -KILL "$pid"
    say "$1: killed (pid $pid)"
}

cmd="${1:-up}"
case "$cmd" in
    up) cluster_up ;;
    down) cluster_down ;;
    status) cluster_status ;;
    roll) cluster_roll ;;
    kill) cluster_kill "${2:?kill which part?}" ;;
    *) die "unknown command '$cmd' (use up, down, status, roll or kill NAME)" ;;
esac
