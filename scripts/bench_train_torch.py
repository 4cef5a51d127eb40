#!/usr/bin/env python3
"""bench_train_torch.py -- PyTorch (CPU) reference timings of one DDPM training step and one
sampling step of improved-diffusion's UNetModel, for comparison with DiffuSharp.

Comparison tool only: PyTorch is never a runtime dependency of DiffuSharp. The UNet below is
written from scratch in plain PyTorch; its state_dict has the same parameter names and shapes as
improved-diffusion's UNetModel (openai/improved-diffusion, improved_diffusion/unet.py), which
`--check-parity` verifies against /work/shared/parity (see the README there).

Run (from the repository root):
    python3 scripts/bench_train_torch.py --preset mnist-s            # readable table
    python3 scripts/bench_train_torch.py --preset mnist-s --json     # JSON lines
    python3 scripts/bench_train_torch.py --preset all --json --steps 10
    python3 scripts/bench_train_torch.py --check-parity              # exits 1 on mismatch

Presets (UNetModel arguments; everything else at UNetModel defaults: conv_resample=True,
use_scale_shift_norm=False, num_heads_upsample=-1, dims=2, no classes, no checkpointing):
    mnist-s  1x28x28, model_channels 32, channel_mult (1,2,2),   num_res_blocks 2,
             attention_resolutions (2,), num_heads 1, dropout 0.1, batch 32
    mnist-m  as mnist-s with model_channels 64, batch 64
    cifar-s  3x32x32, model_channels 64, channel_mult (1,2,2,2), num_res_blocks 2,
             attention_resolutions (2,), num_heads 1, dropout 0.1, batch 32
  (attention also in the middle block, as always in UNetModel.)

Training step (model.train(), dropout active): x0 = a fixed random batch in [-1, 1],
t ~ U{0..999}, noise ~ N(0,1), x_t = q_sample(x0, t, noise) with improved-diffusion's
get_named_beta_schedule("linear", 1000) (betas linspace(1e-4, 0.02) in float64, coefficients
gathered in float64 then cast to float32), eps-prediction loss = mean((model(x_t, t) - noise)^2),
backward, torch.optim.AdamW(lr=2e-4) step (other AdamW arguments at torch defaults,
weight_decay=0.01; `diffusharp bench train` uses the same), zero_grad(set_to_none=True). The model
gets the raw timestep t (rescale_timesteps=False). Sampling step: one forward of a noise batch at
random t under torch.no_grad() in model.eval() mode.

Output (JSON lines with --json; a table otherwise), per preset:
    {"name": "train_step_ms",  "value": ..., "unit": "ms", "preset": ..., "min", "max", "samples"}
    {"name": "sample_step_ms", "value": ..., "unit": "ms", "preset": ..., "min", "max", "samples"}
    {"name": "peak_rss_mb",    "value": ..., "unit": "MB", "preset": ...}   getrusage ru_maxrss / 1024
  The same names and units as `diffusharp bench train --json` (which adds gen2_per_100_steps and
  alloc_mb_per_step, .NET GC measures with no PyTorch counterpart). Timings are medians (with min and
  max) of --steps training steps (default 10) and --sample-steps sampling steps (default: --steps),
  each after --warmup untimed steps (default 3). Every preset is measured in
  a fresh process (the script re-runs itself per preset for `--preset all`), so peak RSS is per
  preset. Progress and a header line go to stderr.

Threads: this script sets OPENBLAS_NUM_THREADS=1 in os.environ *before* importing torch (OpenBLAS
reads it at load time) and calls torch.set_num_threads(2) (--threads). Debian's OpenBLAS 0.3.21
does not recognise recent CPUs (here Intel family 6 model 207) and falls back to generic SSE3
'Prescott' kernels (~8x slower GEMM); when that happens on a CPU with AVX2, the script re-executes
itself with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) -- see bench_ops_torch.py.
An explicit OPENBLAS_CORETYPE is respected; --native-openblas-coretype disables the fix.
The machine is shared: numbers are indicative only.
"""
import os
import sys

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # must precede `import torch`

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PARITY_DIR = "/work/shared/parity"

PRESETS = {
    "mnist-s": dict(in_channels=1, image_size=28, model_channels=32, channel_mult=(1, 2, 2),
                    num_res_blocks=2, attention_resolutions=(2,), num_heads=1, dropout=0.1, batch=32),
    "mnist-m": dict(in_channels=1, image_size=28, model_channels=64, channel_mult=(1, 2, 2),
                    num_res_blocks=2, attention_resolutions=(2,), num_heads=1, dropout=0.1, batch=64),
    "cifar-s": dict(in_channels=3, image_size=32, model_channels=64, channel_mult=(1, 2, 2, 2),
                    num_res_blocks=2, attention_resolutions=(2,), num_heads=1, dropout=0.1, batch=32),
}


# =========================================================================== OpenBLAS kernel fix

_GENERIC_CORES = {"prescott", "katmai", "coppermine", "northwood", "banias", "core2", "penryn",
                  "dunnington", "nehalem", "atom", "opteron", "opteron_sse3", "barcelona", "unknown"}


def openblas_info():
    """(corename, num_threads) of the OpenBLAS loaded into this process, or (None, None)."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({l.split()[-1] for l in f if "libopenblas" in l.split()[-1]})
    except OSError:
        return None, None
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
        except (OSError, AttributeError):
            continue
    return None, None


def fix_openblas_coretype():
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    core, _ = openblas_info()
    if core is None or core.lower() not in _GENERIC_CORES:
        return
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        coretype = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        coretype = "Haswell"
    else:
        return
    print("# OpenBLAS chose generic kernels (%s): re-running with OPENBLAS_CORETYPE=%s" % (core, coretype),
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, OPENBLAS_CORETYPE=coretype))


# =========================================================================== the UNet
#
# Layout (= improved-diffusion's UNetModel state_dict):
#   time_embed.{0,2}                 Linear(C, 4C), SiLU, Linear(4C, 4C)
#   input_blocks.0.0                 Conv2d(in, C, 3, padding 1)
#   input_blocks.i.0                 ResBlock  or  Downsample (.op = Conv2d stride 2)
#   input_blocks.i.1                 AttentionBlock (at the listed downsample rates)
#   middle_block.{0,1,2}             ResBlock, AttentionBlock, ResBlock
#   output_blocks.i.{0,1,2}          ResBlock [, AttentionBlock] [, Upsample (.conv)]
#   out.{0,2}                        GroupNorm32, SiLU, Conv2d(C, out, 3, padding 1)
#   ResBlock: in_layers.{0,2} (GN, SiLU, conv3x3), emb_layers.1 (SiLU, Linear),
#             out_layers.{0,3} (GN, SiLU, Dropout, conv3x3), skip_connection (Identity | conv1x1)
#   AttentionBlock: norm (GN), qkv (Conv1d C->3C, k=1), proj_out (Conv1d C->C, k=1)


class GroupNorm32(nn.GroupNorm):
    """32-group GroupNorm evaluated in float32 whatever the input dtype."""

    def __init__(self, channels):
        super().__init__(32, channels, eps=1e-5)

    def forward(self, x):
        y = F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)
        return y.to(x.dtype)


def sinusoid(t, dim, max_period=10000.0):
    """[N] timesteps -> [N, dim] = [cos(t f), sin(t f)], f_i = max_period^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(max_period) / half))
    ang = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat((torch.cos(ang), torch.sin(ang)), dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    def __init__(self, cin, emb_dim, dropout, cout):
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))
        self.out_layers = nn.Sequential(GroupNorm32(cout), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        seq = x.reshape(n, c, hh * ww)
        # qkv channels are grouped per head: [head0: q k v][head1: q k v]...
        qkv = self.qkv(self.norm(seq)).reshape(n * self.heads, 3 * c // self.heads, hh * ww)
        d = c // self.heads
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        s = 1.0 / math.sqrt(math.sqrt(d))  # applied to q and to k, as improved-diffusion does
        att = torch.bmm((q * s).transpose(1, 2), k * s)          # [B, T(query), S(key)]
        att = torch.softmax(att.float(), dim=-1).to(att.dtype)
        a = torch.bmm(v, att.transpose(1, 2))                     # [B, d, T]
        a = self.proj_out(a.reshape(n, c, hh * ww))
        return (seq + a).reshape(n, c, hh, ww)


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """A list of layers applied in order; ResBlocks also receive the time embedding."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    def __init__(self, in_channels, model_channels, out_channels, num_res_blocks,
                 attention_resolutions, dropout=0.0, channel_mult=(1, 2, 4, 8), num_heads=1,
                 zero_init=True):
        super().__init__()
        mc = model_channels
        ed = 4 * mc
        self.model_channels = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, ed), nn.SiLU(), nn.Linear(ed, ed))

        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(in_channels, mc, 3, padding=1)])])
        skip_ch = [mc]
        ch, rate = mc, 1
        for lvl, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, ed, dropout, mult * mc)]
                ch = mult * mc
                if rate in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads))
                self.input_blocks.append(Stage(layers))
                skip_ch.append(ch)
            if lvl < len(channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch)]))
                skip_ch.append(ch)
                rate *= 2

        self.middle_block = Stage([ResBlock(ch, ed, dropout, ch), AttentionBlock(ch, num_heads),
                                   ResBlock(ch, ed, dropout, ch)])

        self.output_blocks = nn.ModuleList()
        for lvl in reversed(range(len(channel_mult))):
            mult = channel_mult[lvl]
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skip_ch.pop(), ed, dropout, mult * mc)]
                ch = mult * mc
                if rate in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads))
                if lvl > 0 and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    rate //= 2
                self.output_blocks.append(Stage(layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(mc, out_channels, 3, padding=1))

        if zero_init:  # improved-diffusion zero-initialises the last conv of each residual branch
            for m in self.modules():
                if isinstance(m, ResBlock):
                    nn.init.zeros_(m.out_layers[3].weight)
                    nn.init.zeros_(m.out_layers[3].bias)
                elif isinstance(m, AttentionBlock):
                    nn.init.zeros_(m.proj_out.weight)
                    nn.init.zeros_(m.proj_out.bias)
            nn.init.zeros_(self.out[2].weight)
            nn.init.zeros_(self.out[2].bias)

    def forward(self, x, t, feats=None):
        emb = self.time_embed(sinusoid(t, self.model_channels))
        skips = []
        h = x
        for blk in self.input_blocks:
            h = blk(h, emb)
            skips.append(h)
            if feats is not None:
                feats.append(("feat.down.%d" % (len(skips) - 1), h))
        h = self.middle_block(h, emb)
        if feats is not None:
            feats.append(("feat.middle", h))
        for i, blk in enumerate(self.output_blocks):
            h = blk(torch.cat((h, skips.pop()), dim=1), emb)
            if feats is not None:
                feats.append(("feat.up.%d" % i, h))
        return self.out(h)


def build_model(p):
    return UNet(p["in_channels"], p["model_channels"], p["in_channels"], p["num_res_blocks"],
                p["attention_resolutions"], p["dropout"], p["channel_mult"], p["num_heads"])


# =========================================================================== safetensors (numpy)

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
              "F16": np.float16, "U8": np.uint8}


def read_safetensors(path):
    """{name: np.ndarray} from a .safetensors file (8-byte LE header size, JSON header, raw data)."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(buf, dtype=dt, count=(e - b) // dt.itemsize, offset=base + b) \
            .reshape(info["shape"]).copy()
    return out


# =========================================================================== parity check

def check_parity(tol=1e-5):
    p = PRESETS["mnist-s"]
    model = build_model(p)
    weights = read_safetensors(os.path.join(PARITY_DIR, "mnist_s_weights.safetensors"))
    io = read_safetensors(os.path.join(PARITY_DIR, "mnist_s_io.safetensors"))
    grads = read_safetensors(os.path.join(PARITY_DIR, "mnist_s_grads.safetensors"))
    sd = model.state_dict()
    extra, missing = sorted(set(weights) - set(sd)), sorted(set(sd) - set(weights))
    bad_shape = [k for k in sd if k in weights and tuple(sd[k].shape) != tuple(weights[k].shape)]
    ok = not extra and not missing and not bad_shape
    print("state_dict: %d tensors, %d parameters; file: %d tensors; missing %s, unexpected %s, shape mismatch %s"
          % (len(sd), sum(v.numel() for v in sd.values()), len(weights), missing[:5], extra[:5], bad_shape[:5]))
    if not ok:
        print("PARITY FAIL: state_dict layout differs")
        return False
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    model.eval()

    x = torch.from_numpy(io["x"]).requires_grad_(True)
    t = torch.from_numpy(io["t"])
    feats = []
    out = model(x, t, feats)
    ref = io["out"]
    diff = float(np.abs(out.detach().numpy() - ref).max())
    print("forward:  max|out - ref| = %.3e  (|ref|max %.3f; torch's own f32-vs-f64 error %.2e)"
          % (diff, np.abs(ref).max(), np.abs(io["out_f64"] - ref).max()))
    emb_diff = float(np.abs(sinusoid(t, 32).numpy() - io["feat.timestep_embedding"]).max())
    print("          max|timestep_embedding - ref| = %.3e" % emb_diff)
    worst_feat = max((float(np.abs(h.detach().numpy() - io[k]).max()), k) for k, h in feats)
    print("          worst intermediate feature: %s, max abs diff %.3e" % (worst_feat[1], worst_feat[0]))

    loss = (out ** 2).sum()
    loss.backward()
    print("loss:     %.6f vs ref %.6f" % (loss.item(), float(io["loss"][0])))
    # Some gradients are ~0 in exact arithmetic (e.g. biases feeding a GroupNorm with one
    # channel per group, whose per-channel shift the norm removes), so a per-tensor relative
    # error is meaningless for them: judge per tensor only where max|ref| >= 1e-3 * global max,
    # and every tensor by max|diff| / global max.
    gmax = max(float(np.abs(g).max()) for g in grads.values())
    worst_rel, worst_abs, skipped = (0.0, ""), (0.0, ""), 0
    for name, prm in model.named_parameters():
        g = grads["grad." + name]
        d = float(np.abs(prm.grad.numpy() - g).max())
        worst_abs = max(worst_abs, (d / gmax, name))
        if np.abs(g).max() >= 1e-3 * gmax:
            worst_rel = max(worst_rel, (d / float(np.abs(g).max()), name))
        else:
            skipped += 1
    gx = io["grad.x"]
    relx = float(np.abs(x.grad.numpy() - gx).max() / np.abs(gx).max())
    print("backward: all %d param grads: worst max|grad - ref| / max|ref| = %.3e (%s; %d near-zero "
          "tensors not judged this way); worst max|grad - ref| / global max|ref| = %.3e (%s); d/dx: %.3e"
          % (len(grads), worst_rel[0], worst_rel[1], skipped, worst_abs[0], worst_abs[1], relx))
    passed = diff <= tol and worst_rel[0] <= 1e-4 and worst_abs[0] <= 1e-5 and relx <= 1e-4
    print("PARITY %s (forward max abs diff <= %.0e; gradients: relative <= 1e-4, vs global max <= 1e-5)"
          % ("OK" if passed else "FAIL", tol))
    return passed


# =========================================================================== benchmark

def linear_alphas_cumprod(T=1000):
    """improved-diffusion get_named_beta_schedule('linear', T) -> alphas_cumprod (float64)."""
    scale = 1000.0 / T
    betas = np.linspace(scale * 0.0001, scale * 0.02, T, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def bench_preset(name, steps, sample_steps, warmup, quiet):
    p = PRESETS[name]
    torch.manual_seed(0)
    model = build_model(p)
    nparams = sum(q.numel() for q in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    B, C, S = p["batch"], p["in_channels"], p["image_size"]
    x0 = torch.rand(B, C, S, S) * 2 - 1
    acp = linear_alphas_cumprod(1000)
    sqrt_acp = torch.from_numpy(np.sqrt(acp))
    sqrt_1macp = torch.from_numpy(np.sqrt(1.0 - acp))

    def train_step():
        t = torch.randint(0, 1000, (B,))
        noise = torch.randn_like(x0)
        a = sqrt_acp[t].float().view(B, 1, 1, 1)
        s = sqrt_1macp[t].float().view(B, 1, 1, 1)
        xt = a * x0 + s * noise
        loss = F.mse_loss(model(xt, t), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    xs = torch.randn(B, C, S, S)

    def sample_step():
        ts = torch.randint(0, 1000, (B,))
        with torch.no_grad():
            model(xs, ts)

    def timed(fn, warm, n, label):
        for _ in range(warm):
            fn()
        ts_ = []
        for i in range(n):
            t0 = time.perf_counter()
            fn()
            ts_.append((time.perf_counter() - t0) * 1e3)
            if not quiet:
                print("  %s %s %d/%d: %.1f ms" % (name, label, i + 1, n, ts_[-1]), file=sys.stderr, flush=True)
        return ts_

    def timing(metric, ms):
        return {"name": metric, "value": round(statistics.median(ms), 3), "unit": "ms", "preset": name,
                "min": round(min(ms), 3), "max": round(max(ms), 3), "samples": len(ms)}

    model.train()
    train_ms = timed(train_step, warmup, steps, "train")
    model.eval()
    sample_ms = timed(sample_step, warmup, sample_steps, "sample")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return [
        timing("train_step_ms", train_ms),
        timing("sample_step_ms", sample_ms),
        {"name": "peak_rss_mb", "value": round(rss_mb, 1), "unit": "MB", "preset": name},
    ], nparams


def header():
    core, nthr = openblas_info()
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return ("# torch %s | cpu %s | torch.get_num_threads()=%d | OPENBLAS_NUM_THREADS=%s "
            "openblas_get_num_threads()=%s | OpenBLAS core %s (OPENBLAS_CORETYPE=%s)"
            % (torch.__version__, cpu, torch.get_num_threads(), os.environ.get("OPENBLAS_NUM_THREADS"),
               nthr, core, os.environ.get("OPENBLAS_CORETYPE")))


def print_table(rows):
    for r in rows:
        print("%-8s  %-15s %10.2f %s" % (r["preset"], r["name"], r["value"], r["unit"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=list(PRESETS) + ["all"], help="preset to time, or all")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (default 10)")
    ap.add_argument("--sample-steps", type=int, help="timed sampling steps (default: --steps)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps of each kind first (default 3)")
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout instead of a table")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--check-parity", action="store_true",
                    help="load %s/mnist_s_weights.safetensors and compare with mnist_s_io 'out'" % PARITY_DIR)
    ap.add_argument("--native-openblas-coretype", action="store_true",
                    help="keep OpenBLAS's own CPU detection even if it picks generic kernels")
    ap.add_argument("--quiet", action="store_true", help="no per-step progress on stderr")
    args = ap.parse_args()
    if not args.preset and not args.check_parity:
        ap.error("give --preset NAME|all and/or --check-parity")
    if args.sample_steps is None:
        args.sample_steps = args.steps
    if args.steps < 1 or args.sample_steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--steps and --sample-steps must be at least 1, --warmup at least 0, --threads at least 1")

    if not args.native_openblas_coretype:
        fix_openblas_coretype()
    torch.set_num_threads(args.threads)

    if args.check_parity:
        print(header(), file=sys.stderr)
        if not check_parity():
            sys.exit(1)
        if not args.preset:
            return
        # a preset timed after the parity run goes to a subprocess (RSS free of the parity run)

    names = list(PRESETS) if args.preset == "all" else [args.preset]
    if args.preset == "all" or args.check_parity:
        rows = []
        for name in names:  # a fresh process per preset: ru_maxrss is per process
            cmd = [sys.executable, os.path.abspath(__file__), "--preset", name, "--json",
                   "--steps", str(args.steps), "--sample-steps", str(args.sample_steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads)]
            if args.quiet:
                cmd.append("--quiet")
            if args.native_openblas_coretype:
                cmd.append("--native-openblas-coretype")
            r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit("preset %s failed (exit code %d)" % (name, r.returncode))
            for line in r.stdout.splitlines():
                if line.strip():
                    rows.append(json.loads(line))
                    if args.json:
                        print(line, flush=True)
        if not args.json:
            print_table(rows)
        return

    print(header(), file=sys.stderr)
    rows, nparams = bench_preset(args.preset, args.steps, args.sample_steps, args.warmup, args.quiet)
    print("# %s: %d parameters, batch %d, %d warm-up + %d training steps, %d sampling steps"
          % (args.preset, nparams, PRESETS[args.preset]["batch"], args.warmup, args.steps, args.sample_steps),
          file=sys.stderr)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
