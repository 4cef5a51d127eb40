# Reference edges for DiffuSharp's Canny detector, from scikit-image's feature.canny.
# Run from the repository root:  /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/canny/make_canny.py
# Needs Debian 12's python3-skimage (0.19.3, numpy 1.24) and the Fashion-MNIST test images
# (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist). Writes canny_ref.safetensors beside this file:
#   img.{i}       U8 (H, W)   the gray image (0..255; the detector sees value / 255)
#   edges.{i}.{p} U8 (H, W)   skimage.feature.canny(img / 255, sigma, low_threshold, high_threshold) as 0/1
# with metadata "params" = JSON list of [sigma, low, high] per p and "source" per image. The safetensors file is
# written by hand (header + raw bytes), so no safetensors package is needed.
import gzip, json, os, struct
import numpy as np
import skimage
from skimage.feature import canny

HERE = os.path.dirname(os.path.abspath(__file__))
PARAMS = [(1.0, 0.2, 0.4), (1.5, 0.1, 0.3), (0.5, 0.3, 0.6), (2.0, 0.05, 0.1)]

def fashion_test(n):
    with gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz') as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)[:n]

images, sources = [], []
for k, im in enumerate(fashion_test(12)):
    images.append(im.copy()); sources.append(f'fashion-mnist test image {k}')
sq = np.zeros((30, 40), np.uint8); sq[8:22, 10:30] = 200
images.append(sq); sources.append('a 20x14 square of 200 on 0 in a 40x30 image')
yy, xx = np.mgrid[0:33, 0:33]
disk = (np.clip(14.5 - np.hypot(yy - 16.3, xx - 15.8), 0, 1) * 180 + 30).astype(np.uint8)
images.append(disk); sources.append('an anti-aliased disk of radius 14.5 (30 -> 210) in 33x33')
rng = np.random.default_rng(7)
noise = rng.integers(0, 256, (40, 48)).astype(np.uint8)
images.append(noise); sources.append('uniform random bytes 48x40, seed 7')
ramp = np.tile(np.linspace(0, 255, 37).astype(np.uint8), (21, 1))
images.append(ramp); sources.append('a horizontal ramp 37x21')

tensors = {}
for i, im in enumerate(images):
    tensors[f'img.{i}'] = im
    for p, (s, lo, hi) in enumerate(PARAMS):
        e = canny(im.astype(np.float64) / 255.0, sigma=s, low_threshold=lo, high_threshold=hi)
        tensors[f'edges.{i}.{p}'] = e.astype(np.uint8)

header, offset, blobs = {}, 0, []
for name in sorted(tensors):
    b = np.ascontiguousarray(tensors[name]).tobytes()
    header[name] = {'dtype': 'U8', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(b)]}
    offset += len(b); blobs.append(b)
header['__metadata__'] = {'params': json.dumps(PARAMS), 'sources': json.dumps(sources),
                          'skimage': skimage.__version__, 'numpy': np.__version__}
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * (-len(h) % 8)
with open(os.path.join(HERE, 'canny_ref.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h))); f.write(h)
    for b in blobs: f.write(b)
print(len(images), 'images,', len(PARAMS), 'parameter sets; edge pixels:',
      sum(int(v.sum()) for k, v in tensors.items() if k.startswith('edges')))
