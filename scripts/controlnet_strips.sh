#!/usr/bin/env bash
# The README's ControlNet strips: the first eight Fashion-MNIST test images padded to 32×32 (top row), their control
# images (middle: `diffusharp edges`, or `edges --silhouette`), and the pipeline's output for "a photo of a {class}"
# steered by each through the folder's ControlNet of that name (bottom): 25 steps of the folder's scheduler,
# guidance 3, seed i for test image i. Drawn at twice the size.
#   scripts/controlnet_strips.sh [MODEL] [OUTDIR]      (default: models/fashion-mnist-ldm, docs: writes
#                                                      OUTDIR/controlnet-edges.png and OUTDIR/controlnet-silhouette.png)
# Needs /usr/bin/python3 with numpy and PIL (Debian's python3-numpy, python3-pil).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$root/models/fashion-mnist-ldm}"
outdir="${2:-$root/docs}"
data="${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$data" "$tmp" <<'PY'
import gzip, sys
import numpy as np
from PIL import Image
data, tmp = sys.argv[1], sys.argv[2]
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
with gzip.open(f"{data}/t10k-images-idx3-ubyte.gz") as f: x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open(f"{data}/t10k-labels-idx1-ubyte.gz") as f: y = np.frombuffer(f.read(), np.uint8, offset=8)
with open(f"{tmp}/classes.txt", "w") as f:
    for i in range(8):
        Image.fromarray(np.pad(x[i], 2)).save(f"{tmp}/{i}.png")
        f.write(names[y[i]] + "\n")
PY
for kind in edges silhouette; do
  flag=$([ "$kind" = silhouette ] && echo --silhouette || true)
  i=0
  while read -r cls; do
    article=$(case "$cls" in [aeiou]*) echo an;; *) echo a;; esac)
    "$root/diffusharp" edges "$tmp/$i.png" $flag --out "$tmp/$kind-$i.png" >/dev/null
    "$root/diffusharp" txt2img --model "$model" --prompt "a photo of $article $cls" --controlnet "$kind" \
        --control-image "$tmp/$kind-$i.png" --steps 25 --guidance 3 --seed "$i" --out "$tmp/$kind-out-$i.png" >/dev/null 2>"$tmp/err" \
        || { cat "$tmp/err" >&2; exit 1; }
    i=$((i + 1))
  done < "$tmp/classes.txt"
  /usr/bin/python3 - "$tmp" "$kind" "$outdir/controlnet-$kind.png" <<'PY'
import sys
import numpy as np
from PIL import Image
tmp, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name): return np.asarray(Image.open(f"{tmp}/{name}.png").convert("L"))
def row(prefix):
    ims = [load(f"{prefix}{i}") for i in range(8)]
    gap = np.zeros((32, 4), np.uint8)
    return np.concatenate(sum([[im, gap] for im in ims], [])[:-1], 1)
rows = [row(""), row(f"{kind}-"), row(f"{kind}-out-")]
gap = np.zeros((4, rows[0].shape[1]), np.uint8)
grid = np.concatenate([rows[0], gap, rows[1], gap, rows[2]], 0)
Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
PY
  echo "wrote $outdir/controlnet-$kind.png"
done
