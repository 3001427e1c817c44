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
# The tests mostly wait (timers, sockets, other threads): eight at a time on
# two cores take a third of the time two do, and load is what they must
# stand anyway.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
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

# The suite is built once per feature set (none, each alone, all). Building
# is what takes the time, and the tests mostly wait: each set's tests run in
# the background while the next set builds, their output kept in a log that
# is printed when they end.
logs=target/check
mkdir -p "$logs"
pids=()
names=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
tests_in_background() { # name, then cargo's "Executable" lines on stdin
  local name=$1 exes
  exes=$(sed -n 's/^ *Executable .*(\(.*\))$/\1/p')
  [ -n "$exes" ] || { echo "no test executable for $name"; exit 1; }
  (
    for exe in $exes; do
      echo "+ $exe"
      timeout 900 "$exe" || exit 1
    done
  ) > "$logs/tests-$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}
for f in "" tokio smol async-std tracing; do
  step "tests, features: ${f:-none}: build (they run while the next set builds)"
  echo "+ cargo test --no-default-features ${f:+--features $f} --lib --tests --no-run"
  timeout 900 cargo test --no-default-features ${f:+--features "$f"} --lib --tests --no-run 2>&1 \
    | tee "$logs/build.log"
  tests_in_background "${f:-none}" < "$logs/build.log"
done

step "tests, examples and doctests, all features"
run cargo test --all-features

step "tests, features: none and each alone: their results"
failed=()
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    grep -h '^test result' "$logs/tests-${names[$i]}.log" | sed "s/^/${names[$i]}: /"
  else
    cat "$logs/tests-${names[$i]}.log"
    failed+=("${names[$i]}")
  fi
done
if ((${#failed[@]})); then
  echo "tests failed with features: ${failed[*]}"
  exit 1
fi

step "doctests, no features"
run cargo test --no-default-features --doc

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
