#!/usr/bin/env python3
"""bench_ops_torch.py -- PyTorch (CPU) timings of the ops that `diffusharp bench ops --json` times.

Comparison tool only: PyTorch is never a runtime dependency of DiffuSharp.

Run (from the repository root):
    python3 scripts/bench_ops_torch.py                 # JSON lines on stdout, table on stderr
    python3 scripts/bench_ops_torch.py --quick         # fewer samples / shorter warm-up
    python3 scripts/bench_ops_torch.py --only conv3x3  # only names starting with the prefix
    python3 scripts/bench_ops_torch.py --table         # table on stdout instead of JSON lines

Output: one JSON object per line, {"name": ..., "value": ..., "unit": ...}, names:
    sgemm_{256,1024,2048}_gflops                  torch.mm, float32 NxN @ NxN, GFLOP/s = 2N^3/t
    conv3x3_c32_28_{fwd,fwdbwd}_ms                F.conv2d 3x3 pad 1 stride 1 + bias, batch 32, 32->32 ch, 28x28
    conv3x3_c64_14_{fwd,fwdbwd}_ms                same, 64->64 ch, 14x14
    conv3x3_c64_7_{fwd,fwdbwd}_ms                 same, 64->64 ch, 7x7
    groupnorm_silu_{fwd,fwdbwd}_ms                F.silu(F.group_norm(x, 32, w, b)), x (32, 64, 14, 14)
    attention_{fwd,fwdbwd}_ms                     softmax(q @ k^T / sqrt(64), -1) @ v, q/k/v (32, 196, 64)
  fwdbwd = forward + y.backward(g) with a fixed random upstream gradient g, to every input that
  requires grad (conv: input, weight, bias; groupnorm: x, w, b; attention: q, k, v); .grad is
  set to None before every repetition.

Threading (read this before comparing numbers):
  * torch.set_num_threads(2) everywhere (ATen/OpenMP intra-op pool: conv via oneDNN, elementwise,
    group_norm, softmax, ...).
  * OpenBLAS (Debian libopenblas0-pthread, which torch.mm/bmm/addmm call) reads
    OPENBLAS_NUM_THREADS once, when the library is loaded, so it cannot be changed after
    `import torch`. This script therefore never imports torch in the parent process: it runs two
    worker subprocesses of itself,
        - the sgemm part with OPENBLAS_NUM_THREADS=2 (2-thread GEMM),
        - everything else with OPENBLAS_NUM_THREADS=1 (so that BLAS threads do not fight the
          2 OpenMP threads; note this makes torch's bmm inside `attention_*` single-threaded
          per GEMM call),
    and relays their JSON lines. Each worker prints a header line on stderr with the torch
    version, the CPU, torch.get_num_threads() and the OpenBLAS thread count and kernel set it
    actually sees (openblas_get_num_threads()/openblas_get_corename() through ctypes).
  * OpenBLAS kernel set: Debian's OpenBLAS 0.3.21 does not recognise recent CPUs (here Intel
    family 6 model 207, which has AVX-512) and silently uses its generic SSE3 'Prescott'
    kernels, ~8x slower for sgemm. When the loaded OpenBLAS reports such a generic core on a
    CPU with AVX2, the worker re-executes itself with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or
    Haswell (AVX2+FMA), which is what a correctly detected install would use. An explicit
    OPENBLAS_CORETYPE in the environment is respected; --native-openblas-coretype disables
    the fix (to see what a plain `import torch` gets on this machine).

Timing: per op, run it for >= warm-up seconds (0.3 s with --quick, 1.0 s otherwise, at least
2 calls), then take >= 7 samples (7 with --quick, 15 otherwise) and report the median. A sample
is the mean over k back-to-back calls, k chosen from the warm-up so that a sample lasts
>= ~5 ms (k = 1 for everything that takes longer than that, i.e. all but sgemm_256 and the
smallest fwd ops). Wall-clock time.perf_counter().

The machine is shared: numbers are indicative only.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

SGEMM_SIZES = (256, 1024, 2048)
CONV_CASES = (("c32_28", 32, 28), ("c64_14", 64, 14), ("c64_7", 64, 7))
BATCH = 32


def all_names():
    names = ["sgemm_%d_gflops" % n for n in SGEMM_SIZES]
    for tag, _, _ in CONV_CASES:
        names += ["conv3x3_%s_fwd_ms" % tag, "conv3x3_%s_fwdbwd_ms" % tag]
    names += ["groupnorm_silu_fwd_ms", "groupnorm_silu_fwdbwd_ms",
              "attention_fwd_ms", "attention_fwdbwd_ms"]
    return names


# --------------------------------------------------------------------------- worker side

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def openblas_threads():
    """Thread count of the OpenBLAS that this process has loaded, or '?'."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({l.split()[-1] for l in f if "libopenblas" in l.split()[-1]})
    except OSError:
        return "?"
    for p in paths:
        try:
            fn = ctypes.CDLL(p).openblas_get_num_threads
            fn.restype = ctypes.c_int
            return fn()
        except (OSError, AttributeError):
            continue
    return "?"


GENERIC_OPENBLAS_CORES = {"prescott", "katmai", "coppermine", "northwood", "banias", "core2",
                          "penryn", "dunnington", "nehalem", "atom", "opteron", "opteron_sse3",
                          "barcelona", "unknown"}


def openblas_corename():
    """Kernel set chosen by the loaded OpenBLAS (DYNAMIC_ARCH builds), or None."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({l.split()[-1] for l in f if "libopenblas" in l.split()[-1]})
    except OSError:
        return None
    for p in paths:
        try:
            fn = ctypes.CDLL(p).openblas_get_corename
            fn.restype = ctypes.c_char_p
            return fn().decode()
        except (OSError, AttributeError):
            continue
    return None


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fix_openblas_coretype():
    """OpenBLAS 0.3.21 (Debian 12) does not know recent CPUs (e.g. Intel family 6 model 207) and
    then falls back to its generic 'Prescott' SSE3 kernels, which makes torch.mm ~8x slower than
    it should be (measured here: 37 vs 290 GFLOP/s at N=1024). OPENBLAS_CORETYPE is read at load
    time, so when the loaded OpenBLAS reports a generic core on a CPU that has AVX2, re-exec this
    process with OPENBLAS_CORETYPE=SkylakeX (AVX-512 F/BW/VL/DQ) or Haswell (AVX2+FMA)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    core = openblas_corename()
    if core is None or core.lower() not in GENERIC_OPENBLAS_CORES:
        return
    flags = cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        coretype = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        coretype = "Haswell"
    else:
        return
    print("# OpenBLAS chose generic kernels (%s) on an %s CPU: re-running with OPENBLAS_CORETYPE=%s"
          % (core, "AVX-512" if coretype == "SkylakeX" else "AVX2", coretype), file=sys.stderr, flush=True)
    env = dict(os.environ, OPENBLAS_CORETYPE=coretype)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def measure(fn, warmup_s, samples, min_sample_s=0.005):
    """Median seconds per call of fn()."""
    t0 = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        el = time.perf_counter() - t0
        if calls >= 2 and el >= warmup_s:
            break
    per_call = el / calls
    k = max(1, int(math.ceil(min_sample_s / max(per_call, 1e-9))))
    ts = []
    for _ in range(samples):
        s = time.perf_counter()
        for _ in range(k):
            fn()
        ts.append((time.perf_counter() - s) / k)
    return statistics.median(ts)


def worker(part, names, quick, native_coretype):
    import torch
    import torch.nn.functional as F

    if not native_coretype:
        fix_openblas_coretype()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    warmup_s = 0.3 if quick else 1.0
    samples = 7 if quick else 15
    print("# torch %s | cpu %s | part=%s | torch.get_num_threads()=%d interop=%d | "
          "OPENBLAS_NUM_THREADS=%s openblas_get_num_threads()=%s | OpenBLAS core %s (OPENBLAS_CORETYPE=%s) | "
          "warm-up %.1f s, %d samples (median)"
          % (torch.__version__, cpu_model(), part, torch.get_num_threads(),
             torch.get_num_interop_threads(), os.environ.get("OPENBLAS_NUM_THREADS"),
             openblas_threads(), openblas_corename(), os.environ.get("OPENBLAS_CORETYPE"),
             warmup_s, samples), file=sys.stderr, flush=True)

    def emit(name, value, unit):
        print(json.dumps({"name": name, "value": round(value, 4), "unit": unit}), flush=True)

    def fwdbwd(fwd, leaves, g):
        def step():
            for p in leaves:
                p.grad = None
            fwd().backward(g)
        return step

    for name in names:
        if name.startswith("sgemm_"):
            n = int(name.split("_")[1])
            a = torch.randn(n, n)
            b = torch.randn(n, n)
            out = torch.empty(n, n)
            t = measure(lambda: torch.mm(a, b, out=out), warmup_s, samples)
            emit(name, 2.0 * n ** 3 / t / 1e9, "GFLOP/s")
            continue

        mode = "fwdbwd" if "_fwdbwd_" in name else "fwd"
        if name.startswith("conv3x3_"):
            tag = name.split("_")[1] + "_" + name.split("_")[2]
            _, c, hw = next(cc for cc in CONV_CASES if cc[0] == tag)
            x = torch.randn(BATCH, c, hw, hw)
            w = torch.randn(c, c, 3, 3) * (1.0 / math.sqrt(9 * c))
            bias = torch.randn(c) * 0.1
            f = lambda: F.conv2d(x, w, bias, stride=1, padding=1)
            leaves = [x, w, bias]
            gshape = (BATCH, c, hw, hw)
        elif name.startswith("groupnorm_silu_"):
            x = torch.randn(BATCH, 64, 14, 14)
            w = 1.0 + 0.1 * torch.randn(64)
            bias = 0.1 * torch.randn(64)
            f = lambda: F.silu(F.group_norm(x, 32, w, bias))
            leaves = [x, w, bias]
            gshape = (BATCH, 64, 14, 14)
        elif name.startswith("attention_"):
            q = torch.randn(32, 196, 64)
            k = torch.randn(32, 196, 64)
            v = torch.randn(32, 196, 64)
            scale = 1.0 / math.sqrt(64)
            f = lambda: torch.softmax(torch.matmul(q, k.transpose(1, 2)) * scale, dim=-1) @ v
            leaves = [q, k, v]
            gshape = (32, 196, 64)
        else:
            raise SystemExit("unknown op %s" % name)

        if mode == "fwd":
            with torch.no_grad():
                t = measure(f, warmup_s, samples)
        else:
            for p in leaves:
                p.requires_grad_(True)
            g = torch.randn(*gshape)
            t = measure(fwdbwd(f, leaves, g), warmup_s, samples)
            for p in leaves:
                p.requires_grad_(False)
                p.grad = None
        emit(name, t * 1e3, "ms")


# --------------------------------------------------------------------------- driver side

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="7 samples after 0.3 s warm-up (default 15 after 1 s)")
    ap.add_argument("--only", metavar="PREFIX", default="", help="only ops whose name starts with PREFIX")
    ap.add_argument("--table", action="store_true", help="print a table on stdout instead of JSON lines")
    ap.add_argument("--native-openblas-coretype", action="store_true",
                    help="keep OpenBLAS's own CPU detection even if it picks generic kernels")
    ap.add_argument("--worker", choices=("sgemm", "rest"), help=argparse.SUPPRESS)
    ap.add_argument("--names", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(args.worker, [n for n in args.names.split(",") if n], args.quick, args.native_openblas_coretype)
        return

    names = [n for n in all_names() if n.startswith(args.only)]
    if not names:
        raise SystemExit("no op name starts with %r; names: %s" % (args.only, ", ".join(all_names())))
    parts = [("sgemm", "2", [n for n in names if n.startswith("sgemm_")]),
             ("rest", "1", [n for n in names if not n.startswith("sgemm_")])]
    results = []
    for part, blas_threads, part_names in parts:
        if not part_names:
            continue
        env = dict(os.environ, OPENBLAS_NUM_THREADS=blas_threads)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", part, "--names", ",".join(part_names)]
        if args.quick:
            cmd.append("--quick")
        if args.native_openblas_coretype:
            cmd.append("--native-openblas-coretype")
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            results.append(rec)
            if not args.table:
                print(line, flush=True)
        if p.wait() != 0:
            raise SystemExit("worker %s failed with exit code %d" % (part, p.returncode))

    out = sys.stdout if args.table else sys.stderr
    w = max(len(r["name"]) for r in results)
    print("%-*s  %12s  %s" % (w, "name", "value", "unit"), file=out)
    for r in results:
        print("%-*s  %12.3f  %s" % (w, r["name"], r["value"], r["unit"]), file=out)


if __name__ == "__main__":
    main()
