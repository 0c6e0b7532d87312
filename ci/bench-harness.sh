#!/usr/bin/env bash
# How fast the harness is. Prints four figures against their targets:
#   clean:    the process checks against the clean built-in reference server (target < 5 s)
#   failing:  the same checks against ci/bench/silent_server.py, a server that accepts
#             connections and never answers, so every check fails; the run must not wait
#             out its timeouts one after another (target < 30 s)
#   full:     every case file and every process check against the reference server
#             (target < 10 s)
#   fuzz:     requests per second of `harness fuzz` against the reference server
#             (target >= 2000 req/s)
# Usage: ci/bench-harness.sh            (BENCH_ENFORCE=1 to exit 1 when a target is missed)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
readonly CLEAN_TARGET_MS="${CLEAN_TARGET_MS:-5000}"
readonly FAILING_TARGET_MS="${FAILING_TARGET_MS:-30000}"
readonly FULL_TARGET_MS="${FULL_TARGET_MS:-10000}"
readonly FUZZ_TARGET_RPS="${FUZZ_TARGET_RPS:-2000}"
readonly BENCH_ENFORCE="${BENCH_ENFORCE:-0}"
# The process checks; the HTTP case files (http/*, gateway/*) are timed separately.
readonly PROCESS_CHECKS=(--only concurrency --only process --only fds --only signals --only lifecycle)

echo "bench-harness: cargo build --release -p harness" >&2
cargo build --release -p harness >&2
target_dir="${CARGO_TARGET_DIR:-target}"
harness="$target_dir/release/harness"

# time_run LABEL ARGS...: runs the harness, prints its summary line and the wall time.
declare -A WALL=()
time_run() {
    local label="$1"
    shift
    local start end status=0
    start=$(date +%s%N)
    timeout --kill-after=10 300 "$harness" run "$@" >"/tmp/bench-harness-$label.txt" 2>&1 || status=$?
    end=$(date +%s%N)
    WALL[$label]=$(((end - start) / 1000000))
    echo "=== $label (exit $status): $(tail -n 1 "/tmp/bench-harness-$label.txt")"
}

time_run clean "${PROCESS_CHECKS[@]}"
time_run failing "${PROCESS_CHECKS[@]}" -- python3 ci/bench/silent_server.py
time_run full

fuzz_out=/tmp/bench-harness-fuzz.txt
"$harness" fuzz --cases 40000 --time 10s --seed 1 --save /tmp/bench-harness-fuzz-regressions >"$fuzz_out" 2>&1 || true
fuzz_rps=$(sed -n 's/.*(\([0-9]*\) req\/s).*/\1/p' "$fuzz_out" | tail -n 1)
echo "=== fuzz: $(tail -n 1 "$fuzz_out")"

echo
below=0
for label in clean failing full; do
    case $label in
        clean) target=$CLEAN_TARGET_MS ;;
        failing) target=$FAILING_TARGET_MS ;;
        full) target=$FULL_TARGET_MS ;;
    esac
    verdict=PASS
    if ((WALL[$label] >= target)); then verdict="ABOVE TARGET"; below=1; fi
    echo "$label: ${WALL[$label]} ms wall (target < $target ms): $verdict"
done
if [[ -n $fuzz_rps ]] && ((fuzz_rps >= FUZZ_TARGET_RPS)); then
    echo "fuzz: $fuzz_rps req/s (target >= $FUZZ_TARGET_RPS req/s): PASS"
else
    echo "fuzz: ${fuzz_rps:-?} req/s (target >= $FUZZ_TARGET_RPS req/s): BELOW TARGET"
    below=1
fi
if ((below)) && [[ $BENCH_ENFORCE == 1 ]]; then exit 1; fi
