#!/usr/bin/env bash
# The test command: everything CI checks, runnable on a fresh machine.
#   scripts/check.sh
# Formatting, clippy (-D warnings) on every target and on every feature
# combination of the library, the test suite with no feature, each feature
# alone and all of them, examples and doctests, rustdoc (warnings denied; the
# docs.rs build too), the README's links, MSRV, and the packaged crate's file
# list. Each step prints when it started; the last line the total.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# A fresh clone has nothing to reuse: incremental bookkeeping only costs.
# (Set CARGO_INCREMENTAL=1 for repeated local runs.)
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The tests mostly wait (timers, sockets, other threads): sixteen at a time
# on two cores take a quarter of the time two do (65 s with eight, 49 s with
# sixteen, 52 s with 32, for the all-features suite), and load is what they
# must stand anyway (scripts/stress.sh runs them so, with a core kept busy).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-16}"
# A hung test binary fails the run instead of stalling it (each test that can
# hang also has a watchdog of its own).
run() { echo "+ $*"; timeout 900 "$@"; }
step() { echo; echo "==== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

step "rustfmt"
run cargo fmt --all -- --check

step "clippy: all targets (benches and examples too), all features"
run cargo clippy --all-targets --all-features -- -D warnings

step "every feature combination of the library compiles, clippy-clean"
features=(tokio smol async-std tracing)
for ((mask = 0; mask < 1 << ${#features[@]}; mask++)); do
  set_=()
  for i in "${!features[@]}"; do
    if ((mask >> i & 1)); then set_+=("${features[$i]}"); fi
  done
  list=$(IFS=,; echo "${set_[*]}")
  echo "+ features: [${list}]"
  timeout 900 cargo clippy --quiet --lib --no-default-features ${list:+--features "$list"} -- -D warnings
done

for f in "" tokio smol async-std tracing; do
  step "tests, features: ${f:-none}"
  run cargo test --no-default-features ${f:+--features "$f"} --lib --tests
done

step "tests and doctests, all features (the examples compiled under clippy above)"
run cargo test --all-features --lib --tests
run cargo test --all-features --doc

step "rustdoc, warnings denied; and as docs.rs builds it (--cfg docsrs)"
RUSTDOCFLAGS="-D warnings" run cargo doc --all-features --no-deps
# docs.rs builds with a nightly compiler; stable accepts the same with
# RUSTC_BOOTSTRAP, so the `doc(cfg)` path is checked on every machine.
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-D warnings --cfg docsrs" \
  run cargo doc --all-features --no-deps --target-dir target/docsrs

step "README links work wherever it is read"
bash scripts/links.sh

step "MSRV: no dependency needs a newer Rust than ours"
bash scripts/msrv.sh

step "package contents"
run cargo package --list --allow-dirty --all-features > target/package-list.txt
for f in src/lib.rs src/guide.md adapters/mod.rs adapters/tokio.rs adapters/smol.rs \
  adapters/async_std.rs adapters/pollster.rs README.md CHANGELOG.md LICENSE; do
  grep -qx "$f" target/package-list.txt || { echo "missing from the package: $f"; exit 1; }
done

echo
echo "all checks passed in $((SECONDS / 60))m$((SECONDS % 60))s"
