#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of every parser of untrusted input
# (SECURITY.md, "Fuzzing"); tests/run.sh calls it after the cargo tests.
#
#   bash fuzz/run.sh                 # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=600 bash fuzz/run.sh message dsn
#
# The targets are libFuzzer binaries built exactly as `cargo fuzz build
# --sanitizer none` builds them (same sanitizer-coverage flags, release,
# debug assertions, several codegen units for a quicker CI build), but by cargo itself: cargo-fuzz has no
# way to pass --ignore-rust-version, which this toolchain needs (see README
# "Building"). No nightly features are used, so no nightly toolchain either.
# The fuzzer starts from the committed seeds in fuzz/corpus/<target>/ and
# writes what it finds to a scratch directory, so a run never changes the
# repository. A crash (panic, failed assertion, timeout, out of memory)
# fails the run and leaves the input in fuzz/artifacts/<target>/; add it
# as a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(keyrecord message dsn sanitize config auth_results challenge)
(($#)) && TARGETS=("$@")
SECONDS_EACH=${FUZZ_SECONDS:-20}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')

# cargo-fuzz 0.13's flags for --sanitizer none on Linux.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-sanitizer-coverage-stack-depth -Cdebug-assertions"
# Incremental artifacts are useless here and large.
export CARGO_INCREMENTAL=0
echo "fuzz/run.sh: building ${TARGETS[*]}"
# --target keeps RUSTFLAGS away from build scripts and proc macros.
cargo build --ignore-rust-version --release --target "$TRIPLE" \
    --config 'profile.release.debug="line-tables-only"' \
    $(printf -- '--bin %s ' "${TARGETS[@]}")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="$scratch/$t.log"
    # -rss_limit_mb: a parser that needs more than this for one input is a
    # finding. -timeout: one input taking 10 s is a finding too.
    if "target/$TRIPLE/release/$t" "$scratch/$t" "corpus/$t" \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -timeout=10 \
        -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
        echo "fuzz/run.sh: $t: ${execs:-?} runs in ${SECONDS_EACH}s, $cov, no crash"
    else
        tail -n 40 "$log" >&2
        echo "fuzz/run.sh: $t: CRASH, input in fuzz/artifacts/$t/" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz/run.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
