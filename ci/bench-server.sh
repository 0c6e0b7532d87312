#!/usr/bin/env bash
# Throughput benchmark of the reference server (or any server, see SERVER_CMD).
#
# Builds `cargo build --release -p reference-server`, starts
# `target/release/server --listen 127.0.0.1:0` in its own process group, reads the
# port from its one stdout line `listening on http://HOST:PORT`, and runs wrk against
# `/` in two modes: with `Connection: close` (one fork per request) and with
# keep-alive, in ROUNDS rounds alternating with a plain C forking server. Prints
# req/s against the targets, the ratio to the C server, and a verdict per mode. The server's process group
# is always killed on exit, interrupts included.
#
# Usage (from anywhere):  ci/bench-server.sh
#
# Environment:
#   DURATION          seconds per wrk run (default 5)
#   THREADS, CONNECTIONS   wrk -t / -c (default 2 / 16)
#   CLOSE_TARGET      connection-close target in req/s (default 6000)
#   KEEPALIVE_TARGET  keep-alive target in req/s (default 30000)
#   BENCH_ENFORCE=1   exit 1 when a mode is below its target (default: report only);
#                     a mode with any non-2xx/3xx response counts as below target
#   SERVER_CMD        benchmark this command instead of building and running the
#                     reference server; run with bash from the repository root, it
#                     must print `listening on http://HOST:PORT` on stdout, e.g.
#                     SERVER_CMD='python3 apps/conformance_app.py --port 0'
#   STARTUP_TIMEOUT   seconds to wait for the listening line (default 30)
#   CARGO_TARGET_DIR  honoured as by cargo, to find the built binary
#   BASELINE=0        skip the C baseline: by default ci/bench/fork_server.c (a plain C
#                     fork-per-connection server that answers keep-alive too) is built
#                     with gcc and measured in both modes in rounds alternating with the
#                     server's, and the ratios server/C are printed for both modes
#   ROUNDS            alternating rounds (default 3); each mode's figure is its best round
#   RATIO_TARGET      least server/C ratio per mode (default 0.95; with BENCH_ENFORCE=1 a
#                     lower ratio fails)
#
# Exit status: 0 done (targets only reported), 1 below target with BENCH_ENFORCE=1,
# 2 the benchmark could not run (no wrk, build failed, server did not start, ...).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly DURATION="${DURATION:-5}"
readonly THREADS="${THREADS:-2}"
readonly CONNECTIONS="${CONNECTIONS:-16}"
readonly CLOSE_TARGET="${CLOSE_TARGET:-6000}"
readonly KEEPALIVE_TARGET="${KEEPALIVE_TARGET:-30000}"
readonly STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-30}"
readonly BENCH_ENFORCE="${BENCH_ENFORCE:-0}"
readonly SERVER_CMD="${SERVER_CMD:-}"
readonly BASELINE="${BASELINE:-1}"
readonly ROUNDS="${ROUNDS:-3}"
readonly RATIO_TARGET="${RATIO_TARGET:-0.95}"

die() {
    echo "bench-server: error: $*" >&2
    exit 2
}

for name in DURATION THREADS CONNECTIONS CLOSE_TARGET KEEPALIVE_TARGET STARTUP_TIMEOUT ROUNDS; do
    [[ "${!name}" =~ ^[0-9]+$ && "${!name}" -gt 0 ]] || die "$name must be a positive integer, got '${!name}'"
done

[[ "$RATIO_TARGET" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RATIO_TARGET must be a number such as 0.95, got '$RATIO_TARGET'"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/bench-server.XXXXXX")"
SERVER_PGID=""
WRK_PID=""

# Kill the server's whole process group: a fork-per-connection server leaves children
# serving keep-alive connections that would outlive a kill of the parent alone.
# shellcheck disable=SC2317  # Reached through the traps below.
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$WRK_PID" ]]; then
        # `timeout` passes the signal on to wrk.
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PGID" ]] && kill -0 -- "-$SERVER_PGID" 2>/dev/null; then
        kill -TERM -- "-$SERVER_PGID" 2>/dev/null || true
        # Up to ~3 s for a graceful exit, then SIGKILL.
        local i
        for ((i = 0; i < 30; i++)); do
            kill -0 -- "-$SERVER_PGID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    echo "bench-server: wrk not found; installing it with apt-get" >&2
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "wrk is missing and we are neither root nor have sudo"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q wrk >&2 || die "apt-get install wrk failed"
    command -v wrk >/dev/null 2>&1 || die "wrk still not found after installing it"
}

# Prints the shell command line that starts the server (building it first if needed).
server_command() {
    if [[ -n "$SERVER_CMD" ]]; then
        printf '%s' "$SERVER_CMD"
        return 0
    fi
    echo "bench-server: cargo build --release -p reference-server" >&2
    (cd "$REPO_ROOT" && cargo build --release -p reference-server >&2) \
        || die "cargo build --release -p reference-server failed"
    local target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    [[ "$target_dir" = /* ]] || target_dir="$REPO_ROOT/$target_dir"
    local bin="$target_dir/release/server"
    [[ -x "$bin" ]] || die "built binary not found at $bin"
    printf '%q --listen 127.0.0.1:0' "$bin"
}

# Starts the server in its own session (so its own process group) and sets
# SERVER_PGID and SERVER_URL once it prints its listening line.
start_server() {
    local cmd="$1"
    echo "bench-server: starting: $cmd" >&2
    # setsid makes the server a session (and process group) leader. The shell it
    # runs writes its own pid, i.e. the group id, before exec'ing the server, so the
    # id is right whether or not setsid had to fork to get there.
    local pid_file="$WORK_DIR/server.pid"
    rm -f -- "$pid_file" "$WORK_DIR/server.out" "$WORK_DIR/server.err"
    (cd "$REPO_ROOT" && exec setsid bash -c "echo \$\$ >$(printf '%q' "$pid_file"); exec $cmd") \
        >"$WORK_DIR/server.out" 2>"$WORK_DIR/server.err" </dev/null &
    local launcher=$! pid="" i
    # Not a job of ours: killing its group later must not make bash report it.
    disown "$launcher" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid="$(cat "$pid_file" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] && break
        pid=""
        sleep 0.05
    done
    [[ -n "$pid" ]] || die "the server launcher (pid $launcher) never reported the server's pid"
    SERVER_PGID="$pid"

    local deadline=$((SECONDS + STARTUP_TIMEOUT)) line=""
    while ((SECONDS <= deadline)); do
        line="$(head -n 1 "$WORK_DIR/server.out" 2>/dev/null || true)"
        if [[ "$line" =~ ^listening\ on\ (http://[^[:space:]]+:[0-9]+)$ ]]; then
            SERVER_URL="${BASH_REMATCH[1]}"
            echo "bench-server: server listening at $SERVER_URL (process group $SERVER_PGID)" >&2
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- server stderr ---" >&2
            cat "$WORK_DIR/server.err" >&2 || true
            die "server exited before printing 'listening on http://HOST:PORT' (stdout: '$line')"
        fi
        sleep 0.1
    done
    echo "--- server stderr ---" >&2
    cat "$WORK_DIR/server.err" >&2 || true
    die "no 'listening on http://HOST:PORT' line within ${STARTUP_TIMEOUT}s (stdout: '$line')"
}

# run_wrk MODE [wrk args...]: runs wrk, shows its output, records req/s and errors.
declare -A RPS=() ERRORS=() NON_2XX=()
run_wrk() {
    local mode="$1"
    shift
    local out="$WORK_DIR/wrk-$mode.txt"
    echo "=== wrk ($mode): -t$THREADS -c$CONNECTIONS -d${DURATION}s $* $SERVER_URL/"
    # wrk stops by itself after DURATION; `timeout` bounds it should it hang. It runs
    # in the background and we `wait` for it because bash runs a signal trap only after
    # a foreground command ends, and an interrupt should stop the benchmark at once.
    timeout --kill-after=10 $((DURATION + 60)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$SERVER_URL/" >"$out" 2>&1 &
    WRK_PID=$!
    local status=0
    wait "$WRK_PID" || status=$?
    WRK_PID=""
    ((status == 0)) || { cat "$out"; die "wrk ($mode) failed with status $status"; }
    sed 's/^/  /' "$out"
    local rps
    rps="$(awk '/^Requests\/sec:/ { printf "%d", $2 + 0.5 }' "$out")"
    [[ -n "$rps" ]] || die "could not find Requests/sec in wrk output ($mode)"
    RPS[$mode]="$rps"
    local errors=""
    errors="$(grep -E '^[[:space:]]*(Non-2xx or 3xx responses|Socket errors):' "$out" \
        | sed -E 's/^[[:space:]]+//' | paste -sd ';' - || true)"
    ERRORS[$mode]="$errors"
    NON_2XX[$mode]="$(awk -F: '/Non-2xx or 3xx responses:/ { gsub(/ /, "", $2); print $2 }' "$out")"
}

# Stops the running server's whole process group, at once.
stop_server() {
    [[ -n "$SERVER_PGID" ]] || return 0
    kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
    SERVER_PGID=""
}

# best PREFIX: the highest req/s of the rounds of PREFIX (noise only ever slows a
# round down, so the best round is the machine's figure).
best() {
    local prefix="$1" round value top=0
    for ((round = 1; round <= ROUNDS; round++)); do
        value="${RPS[$prefix#$round]:-0}"
        ((value > top)) && top="$value"
    done
    echo "$top"
}

# non_2xx PREFIX: the non-2xx/3xx responses of all rounds of PREFIX.
non_2xx() {
    local prefix="$1" round total=0
    for ((round = 1; round <= ROUNDS; round++)); do
        total=$((total + ${NON_2XX[$prefix#$round]:-0}))
    done
    echo "$total"
}

ensure_wrk
# An assignment, so that a failure inside the command substitution stops the script.
command_line="$(server_command)"
baseline_line=""
if [[ "$BASELINE" == 1 ]]; then
    command -v gcc >/dev/null 2>&1 || die "gcc is needed for the C baseline (BASELINE=0 skips it)"
    gcc -O2 -o "$WORK_DIR/fork_server" "$REPO_ROOT/ci/bench/fork_server.c" \
        || die "gcc failed on ci/bench/fork_server.c"
    baseline_line="$(printf '%q' "$WORK_DIR/fork_server")"
fi

# Rounds alternate between the server and the C yardstick, so that both see the
# same machine: a noisy minute slows both, not one.
for ((round = 1; round <= ROUNDS; round++)); do
    start_server "$command_line"
    run_wrk "connection-close#$round" -H "Connection: close"
    run_wrk "keep-alive#$round"
    kill -0 -- "-$SERVER_PGID" 2>/dev/null || die "the server died during the benchmark"
    stop_server
    if [[ -n "$baseline_line" ]]; then
        start_server "$baseline_line"
        run_wrk "c-connection-close#$round" -H "Connection: close"
        run_wrk "c-keep-alive#$round"
        stop_server
    fi
done

echo
echo "=== results (best of $ROUNDS rounds, ${DURATION}s each, -t$THREADS -c$CONNECTIONS, GET /)"
below=0
for mode in connection-close keep-alive; do
    if [[ "$mode" == connection-close ]]; then target="$CLOSE_TARGET"; else target="$KEEPALIVE_TARGET"; fi
    rps="$(best "$mode")"
    non_2xx="$(non_2xx "$mode")"
    echo "$mode: $rps req/s (target >= $target)"
    # Fast error responses are not throughput: any non-2xx/3xx answer fails the mode.
    if ((non_2xx != 0)); then
        echo "$mode: BELOW TARGET ($non_2xx non-2xx/3xx responses)"
        below=1
    elif ((rps >= target)); then
        echo "$mode: PASS"
    else
        echo "$mode: BELOW TARGET ($rps < $target)"
        below=1
    fi
    if [[ -n "$baseline_line" ]]; then
        c_rps="$(best "c-$mode")"
        ratio="$(awk -v a="$rps" -v b="$c_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
        echo "$mode: C fork-per-connection server $c_rps req/s; reference/C = $ratio (target >= $RATIO_TARGET)"
        if awk -v r="$ratio" -v t="$RATIO_TARGET" 'BEGIN { exit !(r >= t) }'; then
            echo "$mode ratio: PASS"
        else
            echo "$mode ratio: BELOW TARGET ($ratio < $RATIO_TARGET)"
            below=1
        fi
    fi
done

if ((below)) && [[ "$BENCH_ENFORCE" == 1 ]]; then
    echo "bench-server: below target and BENCH_ENFORCE=1: failing" >&2
    exit 1
fi
exit 0
