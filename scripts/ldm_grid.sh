#!/usr/bin/env bash
# The README's text-to-image grid: one row per prompt, eight seeds per row, and the same eight initial latents in
# every row, so that "a dark t-shirt" and "a light t-shirt" differ only by their words. 25 steps of the folder's
# scheduler (DPM-Solver++ 2M), guidance 3.
#   scripts/ldm_grid.sh [MODEL] [OUT]      (default: models/fashion-mnist-ldm, docs/ldm-grid.png)
# Needs /usr/bin/python3 with numpy and PIL (Debian's python3-numpy, python3-pil) to lay out the rows.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$root/models/fashion-mnist-ldm}"
out="${2:-$root/docs/ldm-grid.png}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prompts=("a photo of a t-shirt" "a dark t-shirt" "a light t-shirt" "a pair of trousers" "a small bag" "a large bag"
         "a plain dress" "a patterned dress" "a photo of a sandal" "a sneaker" "a dark ankle boot" "a light ankle boot")
i=0
for p in "${prompts[@]}"; do
  "$root/diffusharp" txt2img --model "$model" --prompt "$p" --n 8 --steps 25 --guidance 3 --seed 1 \
      --out "$tmp/$i.png" --save-npy "$tmp/$i.npy" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  i=$((i + 1))
done
/usr/bin/python3 - "$tmp" "$out" "${#prompts[@]}" <<'PY'
import sys
import numpy as np
from PIL import Image
tmp, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = []
for i in range(n):
    x = np.load(f"{tmp}/{i}.npy")                                    # (8, 1, 32, 32) in [-1, 1]
    x = ((x[:, 0] + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    pad = np.full((x.shape[1], 2), 255, np.uint8)
    rows.append(np.concatenate([np.concatenate([im, pad], 1) for im in x], 1)[:, :-2])
sep = np.full((2, rows[0].shape[1]), 255, np.uint8)
grid = np.concatenate([np.concatenate([r, sep], 0) for r in rows], 0)[:-2]
Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
PY
echo "wrote $out"
