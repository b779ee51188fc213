#!/bin/sh
# Installs what bench/compare.sh needs: OpenDKIM (the comparison) and
# gnuplot (the plot). Benchmarks never gate CI, so tests/setup.sh does not
# call this.
set -eu
if ! command -v opendkim >/dev/null || ! command -v gnuplot >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        opendkim gnuplot-nox
fi
# The package starts a system instance; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet opendkim 2>/dev/null; then
    systemctl stop opendkim || true
fi
opendkim -V | head -1
gnuplot --version
