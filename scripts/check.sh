#!/usr/bin/env bash
# The test command: everything CI checks, runnable on a fresh machine.
#   scripts/check.sh
# Formatting, clippy (-D warnings), the test matrix (no feature, each feature
# alone, all features), doctests, rustdoc (warnings denied), benches and
# examples compiled, and the packaged crate's file list.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# A hung test binary fails the run instead of stalling it (each test that can
# hang also has its own watchdog).
run() { echo "+ $*"; timeout 900 "$@"; }

step() { echo; echo "==== $*"; }

step "rustfmt"
run cargo fmt --all -- --check

step "clippy, all targets, all features"
run cargo clippy --all-targets --all-features -- -D warnings
for f in "" tokio smol async-std tracing; do
  step "clippy, library, features: ${f:-none}"
  run cargo clippy --lib --no-default-features ${f:+--features "$f"} -- -D warnings
done

for f in "" tokio smol async-std tracing; do
  step "tests, features: ${f:-none}"
  run cargo test --no-default-features ${f:+--features "$f"} --lib --bins --tests --examples
done

step "tests and doctests, all features"
run cargo test --all-features

step "doctests, no features"
run cargo test --no-default-features --doc

step "rustdoc, warnings denied"
RUSTDOCFLAGS="-D warnings" run cargo doc --all-features --no-deps

step "benches compile"
run cargo bench --all-features --no-run

step "package contents"
run cargo package --list --allow-dirty --all-features > target/package-list.txt
for f in src/lib.rs adapters/mod.rs adapters/tokio.rs adapters/smol.rs adapters/async_std.rs adapters/pollster.rs README.md LICENSE; do
  grep -qx "$f" target/package-list.txt || { echo "missing from the package: $f"; exit 1; }
done

echo
echo "all checks passed"
