"""PyTorch's side of `diffusharp bench sd15 --kernels`: the same operator shapes (the largest of a Stable Diffusion 1.5
UNet step at batch 2 and of a VAE decode at 512x512, the text encoder's Linear layers at 2 x 77 tokens) on one thread, GFLOP/s per second of process CPU time, the
fastest of a few calls. Run with the timing settings of ../shared/diffusers/sd15/README.md:
  OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 \
    /usr/bin/python3 scripts/sd15_kernels_torch.py
"""
import math
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(7)
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def best(call):
    call()
    t = float("inf")
    for _ in range(repeats):
        s = time.process_time()
        call()
        t = min(t, time.process_time() - s)
    return t


def report(name, flops, call):
    s = best(call)
    print(f"{name:<34} {flops / s / 1e9:8.1f} GFLOP/s  {s * 1000:.1f} ms/call", flush=True)


with torch.no_grad():
    for rows, i, o in [(8192, 320, 320), (8192, 320, 2560), (8192, 1280, 320), (2048, 640, 640), (512, 1280, 1280)]:
        x, w, b = torch.randn(rows, i) * 0.5, torch.randn(o, i) * 0.5, torch.randn(o) * 0.5
        report(f"linear_{rows}x{i}->{o}", 2.0 * rows * i * o, lambda: F.linear(x, w, b))
    for i, o in [(768, 768), (768, 3072), (3072, 768), (768, 2304)]:   # the text encoder's, 2 x 77 tokens
        x, w, b = torch.randn(154, i) * 0.5, torch.randn(o, i) * 0.5, torch.randn(o) * 0.5
        report(f"clip_linear_154x{i}->{o}", 2.0 * 154 * i * o, lambda: F.linear(x, w, b))
    for l, d in [(4096, 40), (1024, 80)]:
        q, k, v = (torch.randn(16, l, d) * 0.5 for _ in range(3))
        # diffusers 0.27 on torch 1.13 (AttnProcessor): baddbmm, softmax, bmm
        def attn():
            s = torch.baddbmm(torch.empty(16, l, l), q, k.transpose(1, 2), beta=0, alpha=1 / math.sqrt(d))
            return torch.bmm(s.softmax(-1), v)
        report(f"attention_16x{l}x{d}", 16 * 2.0 * 2 * l * l * d, attn)
    for n, ci, co, hw in [(2, 320, 320, 64), (2, 640, 640, 32), (2, 1280, 1280, 16), (2, 1280, 1280, 8),
                          (1, 512, 512, 64), (1, 512, 512, 128), (1, 256, 256, 256), (1, 128, 128, 512)]:
        x, w, b = torch.randn(n, ci, hw, hw) * 0.5, torch.randn(co, ci, 3, 3) * 0.5, torch.randn(co) * 0.5
        report(f"conv3x3_b{n}_{ci}->{co}_{hw}x{hw}", 2.0 * n * co * ci * 9 * hw * hw, lambda: F.conv2d(x, w, b, padding=1))
    g = torch.randn(8192, 1280)
    report("gelu_8192x1280 (GFLOP = Gelem)", 8192.0 * 1280, lambda: F.gelu(g))
