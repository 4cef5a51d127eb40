#!/usr/bin/env bash
# Times a UNet training step and sampling step per preset with `diffusharp bench train --json` and
# scripts/bench_train_torch.py (improved-diffusion's UNetModel in PyTorch 1.13) back to back, repeats that R times,
# and prints a Markdown table: the median over repeats of each side's per-run median, the spread (min–max over
# repeats), and the ratio DiffuSharp / PyTorch (time or memory: < 1 means DiffuSharp is faster or smaller), taken
# per repeat from the two runs made side by side, then its median and spread over repeats.
# The two sides alternate which runs first in each repeat, so drift in the machine's load falls on both.
#
# Usage: scripts/compare_train.sh [--repeats R] [--steps N] [--sample-steps N] [--warmup N] [PRESET ...]
#        (defaults: 3 repeats, 6 training and 6 sampling steps after 2 warm-up steps, presets mnist-s cifar-s)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/torch_blas_check.sh"
repeats=3 steps=6 sample_steps=6 warmup=2 presets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --sample-steps) sample_steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    --*) echo "error: compare_train.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) presets+=("$1"); shift ;;
  esac
done
for v in "$repeats" "$steps" "$sample_steps" "$warmup"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "error: compare_train.sh: expected a non-negative integer, got '$v'" >&2; exit 2; }
done
[ "$repeats" -ge 1 ] && [ "$steps" -ge 1 ] && [ "$sample_steps" -ge 1 ] || { echo "error: compare_train.sh: --repeats, --steps and --sample-steps must be at least 1" >&2; exit 2; }
[ ${#presets[@]} -gt 0 ] || presets=(mnist-s cifar-s)

"$root/diffusharp" --help > /dev/null           # build once, outside the timings
rows=$(mktemp); trap 'rm -f "$rows"' EXIT
ours() {
  "$root/diffusharp" bench train --preset "$1" --json --steps "$steps" --sample-steps "$sample_steps" --warmup "$warmup" \
    | sed "s/^{/{\"side\": \"ours\", \"repeat\": $2, /" >> "$rows"
}
theirs() {
  /usr/bin/python3 "$root/scripts/bench_train_torch.py" --preset "$1" --json --quiet --steps "$steps" \
    --sample-steps "$sample_steps" --warmup "$warmup" 2> /dev/null \
    | sed "s/^{/{\"side\": \"torch\", \"repeat\": $2, /" >> "$rows"
}
for r in $(seq 1 "$repeats"); do
  for p in "${presets[@]}"; do
    echo "# repeat $r/$repeats, $p" >&2
    if [ $((r % 2)) -eq 1 ]; then ours "$p" "$r"; theirs "$p" "$r"; else theirs "$p" "$r"; ours "$p" "$r"; fi
  done
done

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?")
/usr/bin/python3 - "$rows" "$commit" "$repeats" "$steps" "$sample_steps" "$warmup" "${presets[@]}" <<'PY'
import json, statistics, sys, time
path, commit, repeats, steps, sample_steps, warmup, *presets = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
def per_repeat(side, preset, name):
    return {r["repeat"]: r["value"] for r in rows if (r["side"], r["preset"], r["name"]) == (side, preset, name)}
def spread(vals):
    return "%.1f [%.1f–%.1f]" % (statistics.median(vals), min(vals), max(vals)) if vals else "—"
targets = {"train_step_ms": ("≤ 0.8×", lambda q, o: q <= 0.8), "sample_step_ms": ("≤ 0.7×", lambda q, o: q <= 0.7),
           "peak_rss_mb": ("≤ 1×", lambda q, o: q <= 1.0), "gen2_per_100_steps": ("0", lambda q, o: max(o) == 0),
           "alloc_mb_per_step": ("—", None)}
units = {"train_step_ms": "ms", "sample_step_ms": "ms", "peak_rss_mb": "MB", "gen2_per_100_steps": "per 100 steps",
         "alloc_mb_per_step": "MB per step"}
print("Run of %s, commit %s: %s repeats; each run %s warm-up + %s training steps, %s warm-up + %s sampling steps."
      % (time.strftime("%Y-%m-%d"), commit, repeats, warmup, steps, warmup, sample_steps))
print("Values: median over repeats of each run's median [min–max over repeats]. Ratio = DiffuSharp / PyTorch per repeat"
      " (< 1: DiffuSharp faster or smaller), median [min–max] over repeats.")
print()
print("| preset | measure | unit | DiffuSharp | PyTorch 1.13 | ratio DiffuSharp / PyTorch | target | met |")
print("|---|---|---|---|---|---|---|---|")
for p in presets:
    for name, (target, ok) in targets.items():
        o, t = per_repeat("ours", p, name), per_repeat("torch", p, name)
        ratios = [o[r] / t[r] for r in o if r in t and t[r] > 0]
        q = "%.2f× [%.2f–%.2f]" % (statistics.median(ratios), min(ratios), max(ratios)) if ratios else "—"
        met = "—"
        if ok is not None and o and (ratios or name == "gen2_per_100_steps"):
            met = "yes" if ok(statistics.median(ratios) if ratios else 0, list(o.values())) else "**no**"
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (p, name, units[name], spread(list(o.values())),
              spread(list(t.values())), q, target, met))
PY
