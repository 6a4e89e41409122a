#!/usr/bin/env bash
# What the scripts share: .env, messages, waiting, daemons and apt. Sourced, never run;
# the sourcing script sets SCRIPT (its name, for messages) and REPO_ROOT first.

# .env holds plain KEY=value lines (the Makefile includes the same file, so no
# shell syntax is relied on). Values in it win over the environment, as in make.
# DOTENV_FILE names another file (tests point it at none: their settings are their own).
load_dotenv() {
    local file="${DOTENV_FILE:-$REPO_ROOT/.env}" line key value
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]] || continue
        key="${BASH_REMATCH[2]}"
        value="${BASH_REMATCH[3]}"
        value="${value#"${value%%[![:space:]]*}"}"   # trim leading blanks
        value="${value%"${value##*[![:space:]]}"}"   # trim trailing blanks
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"               # tolerate one pair of quotes
        fi
        export "$key=$value"
    done <"$file"
}

say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

is_local() {
    case "$1" in
        127.0.0.1 | localhost | ::1 | '[::1]' | 0.0.0.0 | "$(hostname 2>/dev/null || echo localhost)") return 0 ;;
        *) return 1 ;;
    esac
}

# tcp_open HOST PORT: does something accept TCP connections there?
tcp_open() {
    local host="${1#[}"
    host="${host%]}"
    # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$2" 2>/dev/null
}

# wait_for NAME SECONDS COMMAND...: retry COMMAND once a second, bounded.
wait_for() {
    local name="$1" seconds="$2" i
    shift 2
    for ((i = 0; i < seconds; i++)); do
        "$@" && return 0
        sleep 1
    done
    say "$name: did not answer within ${seconds}s" >&2
    return 1
}

# Close every inherited descriptor above stderr (our lock, a caller's pipes).
# Call it in a subshell before starting a daemon: a daemon holding a pipe open
# keeps `$(make services)` or a CI log reader waiting for EOF forever.
close_extra_fds() {
    local fd
    [[ -d /proc/$BASHPID/fd ]] || return 0
    for fd in /proc/"$BASHPID"/fd/*; do
        fd="${fd##*/}"
        if ((fd > 2)); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}

APT_UPDATED=0
apt_install() {
    have apt-get || die "apt-get not found; install $* yourself"
    [[ $EUID -eq 0 ]] || die "installing $* needs root (run with sudo)"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt: apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt: installing $*"
    # In a subshell without our descriptors: package scripts may start daemons.
    (close_extra_fds && apt-get install -y -qq --no-install-recommends "$@" >/dev/null)
}
