#!/usr/bin/env bash
# The README's guidance grid: one row per guidance scale W (0 = unconditional, 1 = the plain conditional model, 3, 5),
# one column per class, the same seed (the same x_T) in every row, 50 DDIM steps.
#   scripts/guidance_grid.sh [MODEL] [OUT]      (default: models/fashion-mnist-cfg, docs/guidance-grid.png)
# Needs /usr/bin/python3 with numpy and PIL (Debian's python3-numpy, python3-pil) to lay out the rows.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$root/models/fashion-mnist-cfg}"
out="${2:-$root/docs/guidance-grid.png}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for w in 0 1 3 5; do
  "$root/diffusharp" sample --model "$model" --n 10 --steps 50 --seed 1 --guidance "$w" --out "$tmp/w$w.png" --save-npy "$tmp/w$w.npy" >/dev/null
done
/usr/bin/python3 - "$tmp" "$out" <<'PY'
import sys
import numpy as np
from PIL import Image
tmp, out = sys.argv[1], sys.argv[2]
rows = []
for w in (0, 1, 3, 5):
    x = np.load(f"{tmp}/w{w}.npy")                                   # (10, 1, 28, 28) in [-1, 1], classes 0..9
    x = ((x[:, 0] + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    pad = np.full((28, 2), 255, np.uint8)
    rows.append(np.concatenate([np.concatenate([im, pad], 1) for im in x], 1)[:, :-2])
sep = np.full((4, rows[0].shape[1]), 255, np.uint8)
grid = np.concatenate([np.concatenate([r, sep], 0) for r in rows], 0)[:-4]
Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
PY
echo "wrote $out"
