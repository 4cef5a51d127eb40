// diffusharp bench sd15 --kernels: the engine's throughput on the largest operator shapes of a Stable Diffusion 1.5
// UNet step (batch 2, 64×64 latents) and VAE decode (512×512), on one thread, in GFLOP/s per second of process CPU
// time (the fastest of a few calls: CPU time rather than wall time, so that other work on a shared machine changes the
// numbers little; 3×3 convolutions both on the direct kernel and as Conv2d chooses, Winograd where it is preferred,
// counted in the direct algorithm's FLOPs), beside the FMA ceiling of one core measured the same way (a loop of independent fused
// multiply-adds on the widest vectors the machine accelerates); the text encoder's Linear shapes (154 rows) both on
// Sgemm, as Gemm.Linear chooses, and with the weight packed at load as a pipeline's text encoder holds it
// (Gemm.LinearPrepacked). scripts/sd15_kernels_torch.py times the same shapes on PyTorch.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;

namespace DiffuSharp.Cli;

public static class BenchSd15Kernels
{
    /// <summary>One benchmark: a name, the floating-point operations of one call, and the call.</summary>
    sealed record Case(string Name, double Flops, Func<Tensor> Call, int N = 0, int K = 0, Func<Tensor>? Packed = null);

    public static void Run(TextWriter stdout, bool json, int repeats, string? only = null)
    {
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = 1;
        try
        {
            double peak = FmaPeakGflops();
            Write(stdout, json, "fma_peak_1core", peak, "GFLOP/s", null);
            using (Tensor.NoGrad())
                foreach (var c in Cases().Where(c => only is null || c.Name.StartsWith(only, StringComparison.Ordinal)))
                {
                    if (c.Name.StartsWith("conv", StringComparison.Ordinal))
                    {
                        var direct = KernelSwitches.Current with { WinogradNchwDisabled = true };
                        float[] ya;
                        using (KernelSwitches.Use(direct)) ya = c.Call().ToArray();
                        var yb = c.Call().ToArray();
                        double err = 0, scale = 0;
                        for (int i = 0; i < ya.Length; i++) { err = Math.Max(err, Math.Abs(ya[i] - yb[i])); scale = Math.Max(scale, Math.Abs(ya[i])); }
                        var (sa, sb) = Interleaved(repeats, direct, c.Call);
                        Write(stdout, json, c.Name + "_direct", c.Flops / sa / 1e9, "GFLOP/s", $"{sa * 1000:F1} ms/call  {100 * c.Flops / sa / 1e9 / peak:F0} % of peak");
                        Write(stdout, json, c.Name, c.Flops / sb / 1e9, "GFLOP/s", $"{sb * 1000:F1} ms/call  as chosen (Winograd where preferred: direct-equivalent GFLOP/s), max |diff| {err / scale:E1} of the largest output");
                        continue;
                    }
                    if (c.Name.StartsWith("clip", StringComparison.Ordinal))
                    {
                        // the weight-rows path as chosen beside Sgemm + bias (the path for many rows), interleaved, and
                        // the weight packed at load as a pipeline's text encoder holds it (Linear.PackWeightForInference)
                        var (sa, sb) = Interleaved(repeats, KernelSwitches.Current with { LinearKernel = Gemm.KernelKind.Portable }, c.Call);
                        Write(stdout, json, c.Name + "_sgemm", c.Flops / sa / 1e9, "GFLOP/s", $"{sa * 1000:F2} ms/call  {100 * c.Flops / sa / 1e9 / peak:F0} % of peak (Sgemm, W packed per call)");
                        Write(stdout, json, c.Name, c.Flops / sb / 1e9, "GFLOP/s", $"{sb * 1000:F2} ms/call  {100 * c.Flops / sb / 1e9 / peak:F0} % of peak (as chosen: {Gemm.PickLinear(154, c.N, c.K)})");
                        if (c.Packed is { } packed)
                        {
                            var (_, sp) = Interleaved(repeats, KernelSwitches.Current, packed);
                            Write(stdout, json, c.Name + "_prepacked", c.Flops / sp / 1e9, "GFLOP/s", $"{sp * 1000:F2} ms/call  {100 * c.Flops / sp / 1e9 / peak:F0} % of peak (W packed at load: Gemm.LinearPrepacked)");
                        }
                        continue;
                    }
                    double s = MinCpuSeconds(repeats, c.Call);
                    Write(stdout, json, c.Name, c.Flops / s / 1e9, "GFLOP/s", $"{s * 1000:F1} ms/call  {100 * c.Flops / s / 1e9 / peak:F0} % of peak");
                }
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    static void Write(TextWriter stdout, bool json, string name, double v, string unit, string? note) =>
        stdout.WriteLine(json
            ? $"{{\"name\": \"sd15k_{name}\", \"value\": {v.ToString("R", CultureInfo.InvariantCulture)}, \"unit\": \"{unit}\"}}"
            : $"{name,-34} {v.ToString("F1", CultureInfo.InvariantCulture),8} {unit}  {note}");

    static IEnumerable<Case> Cases()
    {
        var rng = new Rng(7);
        Tensor R(params int[] shape) => Tensor.RandN(shape, rng, std: 0.5f);   // made lazily, one case at a time
        // Linear: rows = 2 images × 4096 tokens; the feed-forward's two products and an attention projection
        foreach (var (rows, inF, outF) in new[] { (8192, 320, 320), (8192, 320, 2560), (8192, 1280, 320), (2048, 640, 640), (512, 1280, 1280) })
        {
            var x = R(rows, inF); var w = R(outF, inF); var b = R(outF);
            yield return new($"linear_{rows}x{inF}->{outF}", 2.0 * rows * inF * outF, () => Tensor.Linear(x, w, b));
        }
        // the text encoder's Linear layers: 2 × 77 tokens; q/k/v/out, fc1, fc2, and q, k and v as one product
        foreach (var (inF, outF) in new[] { (768, 768), (768, 3072), (3072, 768), (768, 2304) })
        {
            var x = R(154, inF); var w = R(outF, inF); var b = R(outF);
            var layer = new DiffuSharp.NN.Linear(inF, outF, rng: null);
            w.Data.CopyTo(layer.Weight.Data);
            b.Data.CopyTo(layer.Bias!.Data);
            Func<Tensor>? packed = layer.PackWeightForInference() ? () => layer.Forward(x) : null;
            yield return new($"clip_linear_154x{inF}->{outF}", 2.0 * 154 * inF * outF, () => Tensor.Linear(x, w, b), outF, inF, packed);
        }
        // self-attention at 64×64 and 32×32: (2 images · 8 heads, L, 40 or 80)
        foreach (var (l, d) in new[] { (4096, 40), (1024, 80) })
        {
            var q = R(16, l, d); var k = R(16, l, d); var v = R(16, l, d);
            yield return new($"attention_16x{l}x{d}", 16 * 2.0 * 2 * l * l * d, () => Tensor.Attention(q, k, v, 1f / MathF.Sqrt(d)));
        }
        // 3×3 convolutions of the UNet (batch 2) and the VAE decoder (batch 1)
        foreach (var (n, cin, cout, hw) in new[] { (2, 320, 320, 64), (2, 640, 640, 32), (2, 1280, 1280, 16), (2, 1280, 1280, 8),
                     (1, 512, 512, 64), (1, 512, 512, 128), (1, 256, 256, 256), (1, 128, 128, 512) })
        {
            var x = R(n, cin, hw, hw); var w = R(cout, cin, 3, 3); var b = R(cout);
            yield return new($"conv3x3_b{n}_{cin}->{cout}_{hw}x{hw}", 2.0 * n * cout * cin * 9 * hw * hw, () => Tensor.Conv2d(x, w, b, 1, 1));
        }
        var g = R(8192, 1280);
        yield return new("gelu_8192x1280 (GFLOP = Gelem)", 8192.0 * 1280, () => g.Gelu());
    }

    /// <summary>The best CPU seconds of one call with <paramref name="alternative"/> switches and one as chosen, the two
    /// alternated <paramref name="repeats"/> times so that both see the same load.</summary>
    static (double Alternative, double AsChosen) Interleaved(int repeats, KernelSwitches alternative, Func<Tensor> call)
    {
        double sa = double.MaxValue, sb = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            using (KernelSwitches.Use(alternative)) sa = Math.Min(sa, MinCpuSeconds(1, call));
            sb = Math.Min(sb, MinCpuSeconds(1, call));
        }
        return (sa, sb);
    }

    static double MinCpuSeconds(int repeats, Func<Tensor> call)
    {
        var self = Process.GetCurrentProcess();
        double best = double.MaxValue;
        for (int i = -1; i < repeats; i++)
        {
            self.Refresh();
            var start = self.TotalProcessorTime;
            using (TensorScope.Begin()) call();
            self.Refresh();
            if (i >= 0) best = Math.Min(best, (self.TotalProcessorTime - start).TotalSeconds);
        }
        return best;
    }

    /// <summary>GFLOP/s of one thread running 12 independent FMA chains on Vector512 (Vector256 without AVX-512), per
    /// second of process CPU time.</summary>
    static double FmaPeakGflops()
    {
        const long iters = 100_000_000;
        var self = Process.GetCurrentProcess();
        double best = double.MaxValue;
        float sink = 0;
        for (int rep = 0; rep < 3; rep++)
        {
            self.Refresh();
            var start = self.TotalProcessorTime;
            sink += Vector512.IsHardwareAccelerated ? Loop512(iters / 2) : Loop256(iters);
            self.Refresh();
            best = Math.Min(best, (self.TotalProcessorTime - start).TotalSeconds);
        }
        if (sink == 12345) Console.Write("");
        // 12 FMAs × lanes × 2 flops per iteration
        return (Vector512.IsHardwareAccelerated ? iters / 2 * 12 * 16 * 2.0 : iters * 12 * 8 * 2.0) / best / 1e9;
    }

    static float Loop512(long n)
    {
        var m = Vector512.Create(0.999999f); var a = Vector512.Create(1e-7f);
        Vector512<float> v0 = a, v1 = a, v2 = a, v3 = a, v4 = a, v5 = a, v6 = a, v7 = a, v8 = a, v9 = a, v10 = a, v11 = a;
        for (long i = 0; i < n; i++)
        {
            v0 = Vector512.FusedMultiplyAdd(v0, m, a); v1 = Vector512.FusedMultiplyAdd(v1, m, a); v2 = Vector512.FusedMultiplyAdd(v2, m, a);
            v3 = Vector512.FusedMultiplyAdd(v3, m, a); v4 = Vector512.FusedMultiplyAdd(v4, m, a); v5 = Vector512.FusedMultiplyAdd(v5, m, a);
            v6 = Vector512.FusedMultiplyAdd(v6, m, a); v7 = Vector512.FusedMultiplyAdd(v7, m, a); v8 = Vector512.FusedMultiplyAdd(v8, m, a);
            v9 = Vector512.FusedMultiplyAdd(v9, m, a); v10 = Vector512.FusedMultiplyAdd(v10, m, a); v11 = Vector512.FusedMultiplyAdd(v11, m, a);
        }
        return Vector512.Sum(v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10 + v11);
    }

    static float Loop256(long n)
    {
        var m = Vector256.Create(0.999999f); var a = Vector256.Create(1e-7f);
        Vector256<float> v0 = a, v1 = a, v2 = a, v3 = a, v4 = a, v5 = a, v6 = a, v7 = a, v8 = a, v9 = a, v10 = a, v11 = a;
        for (long i = 0; i < n; i++)
        {
            v0 = Vector256.FusedMultiplyAdd(v0, m, a); v1 = Vector256.FusedMultiplyAdd(v1, m, a); v2 = Vector256.FusedMultiplyAdd(v2, m, a);
            v3 = Vector256.FusedMultiplyAdd(v3, m, a); v4 = Vector256.FusedMultiplyAdd(v4, m, a); v5 = Vector256.FusedMultiplyAdd(v5, m, a);
            v6 = Vector256.FusedMultiplyAdd(v6, m, a); v7 = Vector256.FusedMultiplyAdd(v7, m, a); v8 = Vector256.FusedMultiplyAdd(v8, m, a);
            v9 = Vector256.FusedMultiplyAdd(v9, m, a); v10 = Vector256.FusedMultiplyAdd(v10, m, a); v11 = Vector256.FusedMultiplyAdd(v11, m, a);
        }
        return Vector256.Sum(v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10 + v11);
    }
}
