#!/usr/bin/env bash
# Run every fuzz target for FUZZ_SECONDS (default 60) each, one after the
# other, and print a summary (runs, exec/s, coverage, new inputs, crashes).
# Exits 1 if any target crashed, timed out or ran out of memory; the input
# that did it is in fuzz/artifacts/<target>/.
#
#   fuzz/run-all.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 FUZZ_TARGETS="config encoders" fuzz/run-all.sh
#   FUZZ_MERGE=1 fuzz/run-all.sh             # also merge new coverage into corpus/
#   FUZZ_ARGS="-fork=1 -ignore_crashes=1" …  # extra libFuzzer flags: here, go on past crashes
#
# The committed corpus (fuzz/corpus/<target>/) is read, never written: new
# inputs go to a scratch directory, unless FUZZ_MERGE=1 asks to merge those
# that add coverage into the corpus (then run `cargo test --test
# integration no_panic_corpus::` and keep the corpus small before committing).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++
# compiler for libFuzzer. Only a stable toolchain is installed, so the
# nightly-only `-Z sanitizer` flag is enabled with RUSTC_BOOTSTRAP=1.
set -euo pipefail

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
cargo fuzz build

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
summary=()
for t in $targets; do
    mkdir -p "$scratch/$t" "corpus/$t"
    log="$scratch/$t.log"
    echo "== $t: ${seconds}s"
    status=0
    # -timeout: an input running this long is a hang, reported like a crash.
    cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=25 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    grep -E -A1 '^(INFO: seed corpus|#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" | grep -v '^--' || true
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    summary+=("$(printf '%-20s runs=%-9s exec/s=%-6s %-18s new=%s' "$t" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "${cov:-cov: ?}" "$(stat new_units_added)")")
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        echo "!! $t failed (exit $status); last lines of its log:" >&2
        tail -40 "$log" >&2
    elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
        cargo fuzz run "$t" "corpus/$t" "$scratch/$t" -- -merge=1 >>"$log" 2>&1
    fi
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/; reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>)" >&2
    exit 1
fi
