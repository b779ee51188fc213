#!/bin/sh
# mailkey-milter beside OpenDKIM: installs OpenDKIM and gnuplot (Debian),
# builds the release daemon, runs both milters under the same load and
# writes BENCHMARKS.md and bench/compare.png. Takes 2-4 minutes with the
# defaults; a shorter run: BENCH_SECONDS=1 BENCH_CONNECTIONS=1,8,64 bench/compare.sh
set -eu
cd "$(dirname "$0")/.."
bench/setup.sh
# The last point opens 1,000 milter connections to each milter
# (BENCH_THOUSAND=0 leaves it out).
ulimit -n 8192 2>/dev/null || true
export MAILKEY_COMPARE=1
export BENCH_COMMAND="${BENCH_COMMAND:-bench/compare.sh}"
exec cargo bench --ignore-rust-version --bench compare -- --bench
