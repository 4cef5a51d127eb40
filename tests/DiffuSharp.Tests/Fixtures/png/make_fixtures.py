#!/usr/bin/env python3
# Writes the PNG fixtures for PngDecoderFixtureTests: small images encoded by Pillow and ImageMagick (never by
# DiffuSharp), plus for each one a .bin holding the pixels DiffuSharp's decoder must return (8-bit, interleaved
# rows; 16-bit samples reduced to their high byte; palette expanded; tRNS turned into an alpha channel) and
# manifest.json describing them. Run from anywhere: /usr/bin/python3 make_fixtures.py (needs Pillow, numpy and
# ImageMagick's `convert`). The tests never run Python; they read the committed outputs.
import json, os, struct, subprocess, sys, zlib

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240607)
manifest = []


def chunks(path):
    """(type, data) of every chunk, checking the signature and CRCs."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", path
    i, out = 8, []
    while i < len(b):
        n, = struct.unpack(">I", b[i:i + 4])
        t, d = b[i + 4:i + 8], b[i + 8:i + 8 + n]
        assert struct.unpack(">I", b[i + 8 + n:i + 12 + n])[0] == zlib.crc32(t + d) & 0xFFFFFFFF
        out.append((t.decode("ascii"), d))
        i += 12 + n
    return out


def record(name, expected, color_type, bit_depth, interlace=0, min_idat=1, tool="Pillow " + PIL.__version__):
    """Checks the file's IHDR is what the test means to cover, then writes NAME.bin and a manifest entry."""
    path = os.path.join(HERE, name)
    cs = chunks(path)
    w, h, bd, ct, _, _, il = struct.unpack(">IIBBBBB", cs[0][1])
    exp = np.ascontiguousarray(expected, dtype=np.uint8)
    if exp.ndim == 2:
        exp = exp[:, :, None]
    assert (w, h) == (exp.shape[1], exp.shape[0]), (name, w, h, exp.shape)
    assert (ct, bd, il) == (color_type, bit_depth, interlace), (name, ct, bd, il)
    idats = sum(1 for t, _ in cs if t == "IDAT")
    assert idats >= min_idat, (name, idats)
    open(os.path.join(HERE, name[:-4] + ".bin"), "wb").write(exp.tobytes())
    manifest.append(dict(file=name, expected=name[:-4] + ".bin", width=w, height=h, channels=int(exp.shape[2]),
                         colorType=ct, bitDepth=bd, interlaced=bool(il), idatChunks=idats, tool=tool))


def u8(h, w, c=None):
    return rng.integers(0, 256, size=(h, w) if c is None else (h, w, c), dtype=np.uint8)


def u16(h, w, c):
    return rng.integers(0, 65536, size=(h, w, c), dtype=np.uint16)


# --- Pillow ---
g = u8(5, 7)
Image.fromarray(g, "L").save(os.path.join(HERE, "gray8_7x5.png"))
record("gray8_7x5.png", g, 0, 8)

bits = rng.integers(0, 2, size=(3, 13), dtype=np.uint8) * 255
Image.fromarray(bits, "L").convert("1").save(os.path.join(HERE, "gray1_13x3.png"))
record("gray1_13x3.png", bits, 0, 1)

g16 = u16(4, 6, 1)[:, :, 0]
Image.fromarray(g16.astype(np.uint16), "I;16").save(os.path.join(HERE, "gray16_6x4.png"))
record("gray16_6x4.png", g16 >> 8, 0, 16)

la = u8(4, 5, 2)
Image.fromarray(la, "LA").save(os.path.join(HERE, "ga8_5x4.png"))
record("ga8_5x4.png", la, 4, 8)

rgb = u8(9, 17, 3)
Image.fromarray(rgb, "RGB").save(os.path.join(HERE, "rgb8_17x9.png"))
record("rgb8_17x9.png", rgb, 2, 8)

rgba = u8(6, 5, 4)
Image.fromarray(rgba, "RGBA").save(os.path.join(HERE, "rgba8_5x6.png"))
record("rgba8_5x6.png", rgba, 6, 8)

for bd, (w, h) in [(8, (9, 7)), (4, (10, 3)), (2, (11, 3)), (1, (13, 2))]:
    ncol = min(1 << bd, 200)
    pal = u8(ncol, 1, 3)[:, 0, :]
    idx = rng.integers(0, ncol, size=(h, w), dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(pal.flatten().tolist())
    name = f"palette{bd}_{w}x{h}.png"
    im.save(os.path.join(HERE, name), bits=bd)
    record(name, pal[idx], 3, bd)

pal = u8(6, 1, 3)[:, 0, :]
alpha = np.array([0, 64, 128, 255], dtype=np.uint8)           # tRNS shorter than PLTE: entries 4, 5 opaque
idx = rng.integers(0, 6, size=(5, 6), dtype=np.uint8)
im = Image.fromarray(idx, "P")
im.putpalette(pal.flatten().tolist())
im.save(os.path.join(HERE, "palette_trns_6x5.png"), transparency=alpha.tobytes())
full_alpha = np.concatenate([alpha, [255, 255]]).astype(np.uint8)
record("palette_trns_6x5.png", np.concatenate([pal[idx], full_alpha[idx][:, :, None]], axis=2), 3, 4)

g = rng.integers(0, 4, size=(3, 5), dtype=np.uint8) * 60   # key 120 occurs
Image.fromarray(g, "L").save(os.path.join(HERE, "gray_trns_5x3.png"), transparency=120)
record("gray_trns_5x3.png", np.stack([g, np.where(g == 120, 0, 255)], axis=2), 0, 8)

rgb = rng.integers(0, 2, size=(3, 5, 3), dtype=np.uint8) * 200
rgb[0, 0] = (200, 0, 200)
Image.fromarray(rgb, "RGB").save(os.path.join(HERE, "rgb_trns_5x3.png"), transparency=(200, 0, 200))
key = np.all(rgb == np.array([200, 0, 200], dtype=np.uint8), axis=2)
record("rgb_trns_5x3.png", np.concatenate([rgb, np.where(key, 0, 255)[:, :, None]], axis=2), 2, 8)

# --- ImageMagick (16-bit RGB/RGBA, low-bit gray, Adam7 interlacing, several IDAT chunks) ---
im_version = subprocess.run(["convert", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
tmp = os.path.join(HERE, "_tmp.pam")


def pam(arr, maxval):
    h, w, c = arr.shape
    tt = {1: "GRAYSCALE", 3: "RGB", 4: "RGB_ALPHA"}[c]
    hdr = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {c}\nMAXVAL {maxval}\nTUPLTYPE {tt}\nENDHDR\n".encode()
    open(tmp, "wb").write(hdr + arr.astype(">u2" if maxval > 255 else np.uint8).tobytes())


rgb16 = u16(5, 7, 3)
pam(rgb16, 65535)
subprocess.run(["convert", tmp, "PNG48:" + os.path.join(HERE, "rgb16_7x5.png")], check=True)
record("rgb16_7x5.png", rgb16 >> 8, 2, 16, tool=im_version)

rgba16 = u16(4, 5, 4)
pam(rgba16, 65535)
subprocess.run(["convert", tmp, "PNG64:" + os.path.join(HERE, "rgba16_5x4.png")], check=True)
record("rgba16_5x4.png", rgba16 >> 8, 6, 16, tool=im_version)

for bd, (w, h) in [(2, (11, 3)), (4, (9, 3))]:
    levels = rng.integers(0, 1 << bd, size=(h, w, 1), dtype=np.uint8)
    pam(levels * (255 // ((1 << bd) - 1)), 255)
    name = f"gray{bd}_{w}x{h}.png"
    subprocess.run(["convert", tmp, "-define", "png:color-type=0", "-define", f"png:bit-depth={bd}",
                    os.path.join(HERE, name)], check=True)
    record(name, levels[:, :, 0] * (255 // ((1 << bd) - 1)), 0, bd, tool=im_version)

for (w, h) in [(19, 13), (3, 2), (1, 1)]:
    rgb = u8(h, w, 3)
    pam(rgb, 255)
    name = f"interlaced_rgb8_{w}x{h}.png"
    subprocess.run(["convert", tmp, "-interlace", "PNG", "PNG24:" + os.path.join(HERE, name)], check=True)
    record(name, rgb, 2, 8, interlace=1, tool=im_version)

levels = rng.integers(0, 2, size=(10, 9, 1), dtype=np.uint8)
pam(levels * 255, 255)
subprocess.run(["convert", tmp, "-interlace", "PNG", "-define", "png:color-type=0", "-define", "png:bit-depth=1",
                os.path.join(HERE, "interlaced_gray1_9x10.png")], check=True)
record("interlaced_gray1_9x10.png", levels[:, :, 0] * 255, 0, 1, interlace=1, tool=im_version)

rgba16 = u16(7, 6, 4)
pam(rgba16, 65535)
subprocess.run(["convert", tmp, "-interlace", "PNG", "PNG64:" + os.path.join(HERE, "interlaced_rgba16_6x7.png")],
               check=True)
record("interlaced_rgba16_6x7.png", rgba16 >> 8, 6, 16, interlace=1, tool=im_version)

os.remove(tmp)

# Several IDAT chunks: Pillow only splits IDAT past 64 KiB, so re-chunk a Pillow file's zlib stream into pieces
# of 1..97 bytes (one of them empty, which the PNG spec allows) and rewrite it with fresh CRCs.
noise = u8(24, 31, 3)
Image.fromarray(noise, "RGB").save(os.path.join(HERE, "_tmp.png"))
cs = chunks(os.path.join(HERE, "_tmp.png"))
os.remove(os.path.join(HERE, "_tmp.png"))
stream = b"".join(d for t, d in cs if t == "IDAT")
pieces, i = [b""], 0
for n in [1, 5, 97, 2, 64, 13, 40, 97, 3]:
    pieces.append(stream[i:i + n]); i += n
pieces.append(stream[i:])


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


body = chunk(b"IHDR", cs[0][1]) + b"".join(chunk(b"IDAT", p) for p in pieces) + chunk(b"IEND", b"")
open(os.path.join(HERE, "multi_idat_rgb8_31x24.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + body)
record("multi_idat_rgb8_31x24.png", noise, 2, 8, min_idat=len(pieces), tool="Pillow " + PIL.__version__ + ", re-chunked")

with open(os.path.join(HERE, "manifest.json"), "w") as f:
    json.dump(dict(generator="make_fixtures.py", python=sys.version.split()[0], pillow=PIL.__version__,
                   numpy=np.__version__, imagemagick=im_version, fixtures=manifest), f, indent=1)
print(f"wrote {len(manifest)} fixtures to {HERE}")
