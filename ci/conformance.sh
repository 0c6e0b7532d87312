#!/usr/bin/env bash
# Runs the conformance harness against a server, for a CI job: builds the harness
# when needed, writes a JUnit report, and exits with the harness's exit code.
#
# Usage: ci/conformance.sh [-h] [--] [SERVER [ARGS...]]
#
#   SERVER ARGS...   the server command, run from the current directory. It gets HOST
#                    and PORT in its environment; {port}, {host} and {addr} (host:port)
#                    in its arguments are replaced by the harness. Without SERVER, the
#                    built-in reference server is checked.
#
# Environment:
#   JUNIT            where the JUnit XML report goes (default: conformance.junit.xml,
#                    relative to the current directory)
#   HARNESS_ARGS     extra options for `harness run`, separated by spaces, no quoting
#                    (for example: HARNESS_ARGS="--skip fds/child-listener --strict")
#   CARGO_TARGET_DIR where cargo builds (default: target/ in the repository root)
#
# Exit codes are the harness's: 0 no check failed, 1 a check failed or could not
# run, 2 usage error or the server could not be started, 130 interrupted.
#
# Examples:
#   ci/conformance.sh ./my-server --port {port}
#   HARNESS_ARGS="--only process --only fds" ci/conformance.sh gunicorn -b {addr} app:app
set -euo pipefail

# The repository root is the parent of this script's directory, wherever the
# script is called from; the server itself runs from the caller's directory.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

usage() {
    # Prints the comment block at the top of this file, without its leading "# ".
    sed -n '2,/^set -euo pipefail/{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

if [[ $# -gt 0 ]]; then
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        ;;
    -*)
        echo "conformance.sh: unknown option $1 (harness options go in HARNESS_ARGS)" >&2
        echo "usage: ci/conformance.sh [-h] [--] [SERVER [ARGS...]]" >&2
        exit 2
        ;;
    esac
fi

# CARGO_TARGET_DIR, when relative, is relative to where cargo runs: the repository root.
target_dir="${CARGO_TARGET_DIR:-target}"
if [[ $target_dir != /* ]]; then
    target_dir="$REPO_ROOT/$target_dir"
fi
harness="$target_dir/release/harness"

# The harness embeds the case files and links the reference server, so any of
# these being newer than the binary means it is stale.
stale_sources() {
    local sources=()
    local path
    for path in harness reference-server cases Cargo.toml Cargo.lock; do
        if [[ -e $REPO_ROOT/$path ]]; then
            sources+=("$REPO_ROOT/$path")
        fi
    done
    [[ -n $(find "${sources[@]}" -newer "$harness" -print -quit) ]]
}

if [[ ! -x $harness ]] || stale_sources; then
    echo "conformance.sh: building the harness (cargo build --release -p harness)" >&2
    (cd "$REPO_ROOT" && cargo build --release -p harness) >&2
fi

junit="${JUNIT:-conformance.junit.xml}"
if [[ $junit != /* ]]; then
    junit="$PWD/$junit"
fi
mkdir -p "$(dirname "$junit")"
# A report left over from an earlier run must not pass for this run's.
rm -f "$junit"

extra_args=()
if [[ -n ${HARNESS_ARGS:-} ]]; then
    # Word splitting only: read -a does no glob expansion, so "--skip fds/*" stays as is.
    read -r -a extra_args <<<"$HARNESS_ARGS"
fi

command=("$harness" run --junit "$junit" "${extra_args[@]}")
if [[ $# -gt 0 ]]; then
    command+=(-- "$@")
fi

status=0
"${command[@]}" || status=$?

if [[ -s $junit ]]; then
    echo "conformance.sh: JUnit report: $junit" >&2
else
    echo "conformance.sh: no JUnit report was written (harness exit code $status)" >&2
fi
exit "$status"
