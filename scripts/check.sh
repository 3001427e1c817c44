#!/usr/bin/env bash
# The test command: everything CI checks, runnable on a fresh machine.
#   scripts/check.sh
# Formatting, clippy (-D warnings), every feature combination compiled, the
# test suite with no feature, each feature alone and all of them, doctests,
# rustdoc (warnings denied; the docs.rs build too), MSRV checks, benches and
# examples compiled (by clippy), and the packaged crate's file list.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# The tests mostly wait (timers, sockets, other threads): eight at a time on
# two cores take a third of the time two do, and load is what they must
# stand anyway.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
# A hung test binary fails the run instead of stalling it (each test that can
# hang also has a watchdog of its own).
run() { echo "+ $*"; timeout 900 "$@"; }
step() { echo; echo "==== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

step "tools"
if ! cargo hack --version >/dev/null 2>&1; then
  # A prebuilt binary when the release host is reachable, else from source.
  run cargo install cargo-hack --locked --quiet
fi
cargo hack --version

step "rustfmt"
run cargo fmt --all -- --check

step "clippy: all targets (benches and examples too), all features"
run cargo clippy --all-targets --all-features -- -D warnings

step "every feature combination compiles (library, clippy)"
run cargo hack clippy --feature-powerset --no-dev-deps --lib -- -D warnings

for f in "" tokio smol async-std tracing; do
  step "tests, features: ${f:-none}"
  run cargo test --no-default-features ${f:+--features "$f"} --lib --tests
done

step "tests, examples and doctests, all features"
run cargo test --all-features

step "doctests, no features"
run cargo test --no-default-features --doc

step "rustdoc, warnings denied"
RUSTDOCFLAGS="-D warnings" run cargo doc --all-features --no-deps
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  step "rustdoc as docs.rs builds it (nightly, --cfg docsrs)"
  RUSTDOCFLAGS="-D warnings --cfg docsrs" run cargo +nightly doc --all-features --no-deps
fi

step "MSRV: no dependency needs a newer Rust than ours"
bash scripts/msrv.sh

step "package contents"
run cargo package --list --allow-dirty --all-features > target/package-list.txt
for f in src/lib.rs src/guide.md adapters/mod.rs adapters/tokio.rs adapters/smol.rs \
  adapters/async_std.rs adapters/pollster.rs README.md LICENSE; do
  grep -qx "$f" target/package-list.txt || { echo "missing from the package: $f"; exit 1; }
done

echo
echo "all checks passed in $((SECONDS / 60))m$((SECONDS % 60))s"
