#!/usr/bin/env bash
# Soak test of the real daemon (benches/soak.rs): builds in release and
# pushes messages over a unix socket from many concurrent milter
# connections, printing msg/s, the daemon's CPU per message and its largest
# RSS and RssAnon (SECURITY.md "Soak").
#
#   bash bench/soak.sh                                  # 1,000,000 messages, 1,000 connections
#   bash bench/soak.sh --messages 100000 --connections 1000
#   bash bench/soak.sh --burst                          # 100 concurrent 50 MB messages
#   bash bench/soak.sh --burst --connections 1000 --size 31000
#
# Not part of the test suite (a benchmark never gates CI); under
# `cargo test` the same program runs a few dozen messages and a small burst
# as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
# 1,000 connections on the client side plus the daemon's sockets.
ulimit -n 8192 2>/dev/null || true
exec cargo bench --locked --ignore-rust-version --bench soak -- "$@"
