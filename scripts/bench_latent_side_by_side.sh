#!/usr/bin/env bash
# One text-to-image latent training step (UNet + text encoder, train-latent's default models, batch 64), DiffuSharp
# and PyTorch diffusers alternately on this machine: ROUNDS rounds of `diffusharp bench latent --json` then
# scripts/bench_latent_torch.py on the same configs. Prints every JSON line prefixed by "ours" / "torch", then the
# median of each side's medians and their ratio.
#     scripts/bench_latent_side_by_side.sh [ROUNDS] [BATCH]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/torch_blas_check.sh"
rounds=${1:-3}; batch=${2:-64}
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$root/diffusharp" bench latent --write-configs "$tmp/configs" >/dev/null
. "$root/../shared/diffusers/env.sh"
for r in $(seq "$rounds"); do
  "$root/diffusharp" bench latent --json --batch "$batch" | sed 's/^/ours /' | tee -a "$tmp/all"
  OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 OMP_WAIT_POLICY=PASSIVE \
    /usr/bin/python3 "$root/scripts/bench_latent_torch.py" --configs "$tmp/configs" --batch "$batch" 2>/dev/null | sed 's/^/torch /' | tee -a "$tmp/all"
done
python3 - "$tmp/all" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, js = line.split(" ", 1)
    r = json.loads(js)
    rows.setdefault(r["name"], {}).setdefault(side, []).append(r["value"])
for name, sides in rows.items():
    o, t = statistics.median(sides["ours"]), statistics.median(sides["torch"])
    print(f"{name}: ours {o:.1f} {'' if name.endswith('mb') else 'ms'}, torch {t:.1f}, ratio ours/torch {o / t:.2f}")
PY
