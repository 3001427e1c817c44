#!/usr/bin/env bash
# README.md is the crate's docs on docs.rs, its page on the package registry
# and its repository's front page: a link there must work in all three. Only
# rustdoc resolves an intra-doc link (`[Bridge]`, `(crate::guide)`), and a
# registry page has no repository to resolve a relative path against, so
# every link must be an absolute URL (or an anchor of the README itself).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - README.md <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
# Code is not markdown: drop fenced blocks, keep line numbers.
text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
defs = {}
for m in re.finditer(r"^\[([^\]]+)\]:\s*(\S+)", text, flags=re.M):
    defs[m.group(1).lower()] = m.group(2)
body = re.sub(r"^\[([^\]]+)\]:.*$", "", text, flags=re.M)
ok = lambda url: url.startswith(("https://", "http://", "#"))
bad = []
def line(pos):
    return body.count("\n", 0, pos) + 1
# [text](target)
for m in re.finditer(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)", body):
    if not ok(m.group(2)):
        bad.append(f"{path}:{line(m.start())}: ({m.group(2)}) is not an absolute URL")
# [text][label], [label][], [label]
for m in re.finditer(r"\[((?:[^\[\]]|\[[^\]]*\])*)\](?:\[([^\]]*)\])?(?!\()", body):
    label = (m.group(2) or m.group(1)).lower()
    if m.group(2) is None and not (m.group(1).startswith("`") or label in defs):
        continue  # plain brackets, not a link
    target = defs.get(label)
    if target is None:
        bad.append(f"{path}:{line(m.start())}: [{label}] has no definition (only rustdoc could resolve it)")
    elif not ok(target):
        bad.append(f"{path}:{line(m.start())}: [{label}] points at {target}, not an absolute URL")
for b in bad:
    print(b)
if bad:
    sys.exit(1)
print(f"{path}: {len(defs)} link definitions, every link absolute")
PY
