#!/usr/bin/env bash
# The whole test suite: installs what the tests need (tests/setup.sh), then
# runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
# mail-auth's dependency mail-parser declares rust-version 1.98 but builds on
# the 1.95 toolchain here; see README "Building".
# The Debian package that tests/package.rs installs and runs.
cargo deb --locked -- --ignore-rust-version
cargo test --locked --ignore-rust-version --all-targets --no-fail-fast
# Bounded coverage-guided fuzzing of every parser of untrusted input, from
# the committed seeds (SECURITY.md "Fuzzing"); a crash fails the suite.
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash fuzz/run.sh
