#!/usr/bin/env bash
# How fast the harness is, whatever the server does. For every server below it
# times the full suite (every case file and every process check) and the
# process checks alone, and prints each figure against its target:
#   full     < 30 s for every server, and < 3 s for the reference server
#   process  < 20 s for every server, and < 5 s for the reference server
#   fuzz     >= 2000 requests/s of `harness fuzz` against the reference server
# The servers: the built-in reference server; ci/bench/hostile_server.py in each
# of its modes (silent: answers nothing; never-read; never-close: answers and keeps
# every connection open; trickle: one byte a second; die: exits after one request;
# slow-first: answers its first request after 4 s; endless, endless-chunked,
# endless-length: every answer's body never ends);
# each learner fixture of harness/tests/fixtures (the tutorial's iterative server,
# its 60 s-sleep variant, the forking ones, socketserver's forking and threading
# servers, ...); and wsgiref serving apps/conformance_app.py.
# Usage: ci/bench-harness.sh [NAME...]   (only the servers named; BENCH_ENFORCE=1 to
#        exit 1 when a target is missed)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
readonly FULL_TARGET_MS="${FULL_TARGET_MS:-30000}"
readonly PROCESS_TARGET_MS="${PROCESS_TARGET_MS:-20000}"
readonly REFERENCE_FULL_TARGET_MS="${REFERENCE_FULL_TARGET_MS:-3000}"
readonly REFERENCE_PROCESS_TARGET_MS="${REFERENCE_PROCESS_TARGET_MS:-5000}"
readonly FUZZ_TARGET_RPS="${FUZZ_TARGET_RPS:-2000}"
readonly BENCH_ENFORCE="${BENCH_ENFORCE:-0}"
# The process checks; the case files (http/*, gateway/*) are the rest of the suite.
readonly PROCESS_CHECKS=(--only concurrency --only process --only fds --only signals --only lifecycle)
readonly FIXTURES=harness/tests/fixtures

echo "bench-harness: cargo build --release -p harness" >&2
cargo build --release -p harness >&2
target_dir="${CARGO_TARGET_DIR:-target}"
harness="$target_dir/release/harness"

# NAME|COMMAND (empty: the built-in reference server)
servers=("reference|")
for mode in silent never-read never-close trickle die slow-first endless endless-chunked endless-length; do
    servers+=("$mode|python3 ci/bench/hostile_server.py $mode")
done
for fixture in "$FIXTURES"/tutorial_*.py "$FIXTURES"/fake_sleep.py "$FIXTURES"/late_fds.py "$FIXTURES"/prefork_leak.py; do
    name=$(basename "$fixture" .py)
    servers+=("${name//_/-}|python3 $fixture")
done
servers+=("socketserver-forking|python3 $FIXTURES/socketserver_server.py forking")
servers+=("socketserver-threading|python3 $FIXTURES/socketserver_server.py threading")
servers+=("wsgiref|python3 apps/conformance_app.py")

wanted=("$@")
selected() {
    ((${#wanted[@]} == 0)) && return 0
    local w
    for w in "${wanted[@]}"; do [[ $w == "$1" ]] && return 0; done
    return 1
}

# time_run LABEL ARGS...: runs the harness, prints the wall time in ms.
time_run() {
    local label="$1"
    shift
    local start end status=0
    start=$(date +%s%N)
    timeout --kill-after=10 300 "$harness" run "$@" >"/tmp/bench-harness-$label.txt" 2>&1 || status=$?
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
    echo "  $label (exit $status): $(tail -n 1 "/tmp/bench-harness-$label.txt")" >&2
}

missed=0
report=()
for entry in "${servers[@]}"; do
    name="${entry%%|*}"
    command="${entry#*|}"
    selected "$name" || continue
    # shellcheck disable=SC2206 # the command is split into words on purpose
    args=(${command:+-- $command})
    full_ms=$(time_run "$name-full" "${args[@]}")
    process_ms=$(time_run "$name-process" "${PROCESS_CHECKS[@]}" "${args[@]}")
    full_target=$FULL_TARGET_MS
    process_target=$PROCESS_TARGET_MS
    if [[ $name == reference ]]; then
        full_target=$REFERENCE_FULL_TARGET_MS
        process_target=$REFERENCE_PROCESS_TARGET_MS
    fi
    verdict=PASS
    if ((full_ms >= full_target || process_ms >= process_target)); then
        verdict="ABOVE TARGET"
        missed=1
    fi
    report+=("$(printf '%-26s full %6d ms (< %5d)   process %6d ms (< %5d)   %s' \
        "$name" "$full_ms" "$full_target" "$process_ms" "$process_target" "$verdict")")
done

fuzz_line=""
if selected fuzz || ((${#wanted[@]} == 0)); then
    fuzz_out=/tmp/bench-harness-fuzz.txt
    "$harness" fuzz --cases 40000 --time 10s --seed 1 --save /tmp/bench-harness-fuzz-regressions >"$fuzz_out" 2>&1 || true
    fuzz_rps=$(sed -n 's/.*(\([0-9]*\) req\/s).*/\1/p' "$fuzz_out" | tail -n 1)
    if [[ -n $fuzz_rps ]] && ((fuzz_rps >= FUZZ_TARGET_RPS)); then
        fuzz_line="fuzz: $fuzz_rps req/s (target >= $FUZZ_TARGET_RPS req/s): PASS"
    else
        fuzz_line="fuzz: ${fuzz_rps:-?} req/s (target >= $FUZZ_TARGET_RPS req/s): BELOW TARGET"
        missed=1
    fi
fi

echo
printf '%s\n' "${report[@]}"
[[ -n $fuzz_line ]] && echo "$fuzz_line"
if ((missed)) && [[ $BENCH_ENFORCE == 1 ]]; then exit 1; fi
exit 0
