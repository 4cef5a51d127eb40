#!/usr/bin/env bash
# Runs `diffusharp bench ops --json` and scripts/bench_ops_torch.py back to back (one run, same machine) and prints
# a Markdown table of both columns with the speed ratio (>1 means DiffuSharp is faster).
# Usage: scripts/compare_ops.sh [--quick]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/torch_blas_check.sh"
ours=$(mktemp); theirs=$(mktemp)
"$root/diffusharp" bench ops --json "$@" > "$ours"
/usr/bin/python3 "$root/scripts/bench_ops_torch.py" "$@" > "$theirs" 2>/dev/null
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
def load(p):
    return {d["name"]: d for d in (json.loads(l) for l in open(p) if l.strip().startswith("{"))}
ours, theirs = load(sys.argv[1]), load(sys.argv[2])
print("| benchmark | DiffuSharp | PyTorch 1.13 | unit | speed ratio (DiffuSharp / PyTorch) |")
print("|---|---|---|---|---|")
for name, o in ours.items():
    t = theirs.get(name)
    if t is None: continue
    ratio = o["value"] / t["value"] if o["unit"] == "GFLOP/s" else t["value"] / o["value"]
    print(f"| {name} | {o['value']:.2f} | {t['value']:.2f} | {o['unit']} | {ratio:.2f}× |")
PY
rm -f "$ours" "$theirs"
