#!/usr/bin/env bash
# MSRV check without the old toolchain (this machine cannot download one):
# every crate the library pulls in (normal dependencies, all features) must
# declare a `rust-version` no newer than ours. The other half of the check is
# clippy's `incompatible_msrv` lint, which reads our `rust-version` and, under
# `-D warnings` in check.sh, fails on any use of a newer std API.
set -euo pipefail
cd "$(dirname "$0")/.."
ours=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
# Normal (non-dev) dependencies of the library with every feature on.
cargo tree -e normal --all-features --prefix none --format '{p}' \
  | sed 's/ (.*//; s/ v/ /' | sort -u > target/msrv-deps.txt
host=$(rustc -vV | sed -n "s/^host: //p")
cargo metadata --format-version 1 --all-features --filter-platform "$host" > target/msrv-metadata.json
python3 - "$ours" <<'PY'
import json, sys
ours = tuple(int(x) for x in sys.argv[1].split("."))
deps = set()
for line in open("target/msrv-deps.txt"):
    parts = line.split()
    if len(parts) == 2:
        deps.add((parts[0], parts[1]))
meta = json.load(open("target/msrv-metadata.json"))
bad, unknown = [], []
for p in meta["packages"]:
    if (p["name"], p["version"]) not in deps or p["name"] == "executor-bridge":
        continue
    rv = p.get("rust_version")
    if rv is None:
        unknown.append(f'{p["name"]} {p["version"]}')
        continue
    v = tuple(int(x) for x in rv.split(".")[:3])
    if v[: len(ours)] > ours:
        bad.append(f'{p["name"]} {p["version"]} needs {rv}')
print(f"MSRV {sys.argv[1]}: {len(deps) - 1} dependencies checked; no rust-version declared: {', '.join(unknown) or 'none'}")
if bad:
    print("dependencies newer than our MSRV:\n  " + "\n  ".join(bad))
    sys.exit(1)
PY
