#!/usr/bin/env bash
# Interleaved sgemm comparison: ROUNDS times, `diffusharp bench ops --json --quick --only sgemm` then
# scripts/bench_ops_torch.py --quick --only sgemm (torch.mm, OpenBLAS at 2 threads), so that both sides see the
# same stretch of a noisy host in every round. Prints a Markdown row per round and the median ratio per size with
# its range (ratio > 1 means DiffuSharp is faster).
# Usage: scripts/compare_sgemm.sh [--rounds N]   (default 10; about 15 s per round)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/torch_blas_check.sh"
rounds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="${2:?--rounds needs a number}"; shift 2 ;;
    *) echo "compare_sgemm.sh: unknown option '$1' (expected --rounds N)" >&2; exit 2 ;;
  esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "compare_sgemm.sh: --rounds needs a positive whole number, got '$rounds'" >&2; exit 2 ;; esac
"$root/diffusharp" bench ops --help > /dev/null            # build once, outside the timed rounds
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for ((r = 1; r <= rounds; r++)); do
  echo "ours $("$root/diffusharp" bench ops --json --quick --only sgemm | tr '\n' ' ')" >> "$lines"
  echo "torch $(/usr/bin/python3 "$root/scripts/bench_ops_torch.py" --quick --only sgemm 2>/dev/null | tr '\n' ' ')" >> "$lines"
done
/usr/bin/python3 - "$lines" <<'PY'
import json, re, statistics, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1]) if l.strip()]
def parse(text):
    return {d["name"]: d["value"] for d in map(json.loads, re.findall(r"\{[^}]*\}", text))}
sizes = (256, 1024, 2048)
pairs = [(parse(rows[i][1]), parse(rows[i + 1][1])) for i in range(0, len(rows) - 1, 2)]
print("| round | ours " + " / ".join(f"{n}³" for n in sizes) + " GFLOP/s | PyTorch " + " / ".join(f"{n}³" for n in sizes)
      + " GFLOP/s | ratio " + " / ".join(f"{n}³" for n in sizes) + " |")
print("|---|---|---|---|")
ratios = {n: [] for n in sizes}
for r, (o, t) in enumerate(pairs, 1):
    key = lambda n: f"sgemm_{n}_gflops"
    for n in sizes:
        ratios[n].append(o[key(n)] / t[key(n)])
    print(f"| {r} | " + " / ".join(f"{o[key(n)]:.1f}" for n in sizes) + " | " + " / ".join(f"{t[key(n)]:.1f}" for n in sizes)
          + " | " + " / ".join(f"{o[key(n)] / t[key(n)]:.2f}×" for n in sizes) + " |")
print()
print("median ratio [min–max] over %d rounds: " % len(pairs) + ", ".join(
    f"{n}³ {statistics.median(ratios[n]):.2f}× [{min(ratios[n]):.2f}–{max(ratios[n]):.2f}]" for n in sizes))
PY
