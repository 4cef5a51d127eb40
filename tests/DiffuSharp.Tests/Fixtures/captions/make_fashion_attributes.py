# Reference values for DiffuSharp's FashionAttributes (brightness, size, texture of a garment image), computed
# independently with scipy.ndimage on the first 50 Fashion-MNIST test images.
# Run from the repository root:  /usr/bin/python3 tests/DiffuSharp.Tests/Fixtures/captions/make_fashion_attributes.py
# (Debian 12: numpy 1.24, scipy 1.10; the dataset from Debian's dataset-fashion-mnist). Writes fashion_attributes.json:
# {"images": [[784 bytes] ...], "labels": [...], "brightness": [...], "size": [...], "texture": [...]}
#   gray       = byte / 255 (the C# side gets the dataset's [-1, 1] floats, byte / 127.5 - 1, and maps them back)
#   silhouette = binary_fill_holes(gray > 0.05)              (4-connected background, as scipy's default)
#   brightness = mean(gray[silhouette]);  size = mean(silhouette)
#   inner      = binary_erosion(silhouette, iterations=2)    (the 4-neighbour cross, outside = background)
#   texture    = mean(|gray - uniform_filter(gray, 3, mode='nearest')|[inner])
import gzip, json, os
import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
N = 50
raw = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()
X = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:N]
Y = np.frombuffer(gzip.open('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz').read(), np.uint8, offset=8)[:N]
out = {'images': [], 'labels': [int(y) for y in Y], 'brightness': [], 'size': [], 'texture': []}
for im8 in X:
    # the float32 the C# loader makes (byte / 127.5 - 1), mapped back as FashionAttributes does: clamp((v + 1) * 0.5)
    v = (im8.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)
    g = np.clip((v + np.float32(1)) * np.float32(0.5), 0, 1).astype(np.float32).astype(np.float64)
    sil = ndi.binary_fill_holes(g > 0.05)
    inner = ndi.binary_erosion(sil, iterations=2)
    dev = np.abs(g - ndi.uniform_filter(g, 3, mode='nearest'))
    out['images'].append([int(b) for b in im8.ravel()])
    out['brightness'].append(float(g[sil].mean()) if sil.any() else 0.0)
    out['size'].append(float(sil.mean()))
    out['texture'].append(float(dev[inner].mean()) if inner.any() else 0.0)
with open(os.path.join(HERE, 'fashion_attributes.json'), 'w') as f:
    json.dump(out, f)
print(N, 'images; mean texture', np.mean(out['texture']))
