#!/usr/bin/env bash
# Runs the whole test suite (all features) N times in a row while one core
# is kept busy by a spinning process, and reports the failures per test: a
# test that fails once in N runs is a defect, of the code under it or of the
# test.
#   scripts/stress.sh [N]        (N = 20 by default)
# Environment: STRESS_FILTER (a test name filter), RUST_TEST_THREADS (16, as
# scripts/check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-16}"
export RUST_BACKTRACE=0

# The two test binaries (see tests/suite/main.rs).
bins=$(cargo test --all-features --tests --no-run --message-format json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
[ "$(echo "$bins" | wc -w)" = 2 ] || { echo "could not build the two test binaries: $bins"; exit 1; }

# The busy core: a process that spins until this script ends.
sh -c 'while :; do :; done' &
busy=$!
trap 'kill $busy 2>/dev/null || true' EXIT

log=target/stress
mkdir -p "$log"
rm -f "$log"/run-*.txt
clean=0
for ((i = 1; i <= runs; i++)); do
  start=$SECONDS
  if (for bin in $bins; do
    timeout 900 "$bin" ${STRESS_FILTER:+"$STRESS_FILTER"} || exit 1
  done) > "$log/run-$i.txt" 2>&1; then
    clean=$((clean + 1))
    echo "run $i/$runs: clean ($((SECONDS - start)) s)"
  else
    echo "run $i/$runs: FAILED ($((SECONDS - start)) s): $(grep -c '\.\.\. FAILED$' "$log/run-$i.txt" || true) test(s), log in $log/run-$i.txt"
  fi
done

echo
echo "$clean of $runs runs clean, one core busy, $RUST_TEST_THREADS test threads"
failures=$(grep -h '\.\.\. FAILED$' "$log"/run-*.txt | sed 's/^test \(.*\) \.\.\. FAILED$/\1/' | sort | uniq -c | sort -rn || true)
if [ -n "$failures" ]; then
  echo "failures per test (count, name):"
  echo "$failures"
  exit 1
fi
