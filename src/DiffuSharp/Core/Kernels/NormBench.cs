// Timings of the fused normalisation and attention primitives for `diffusharp bench ops`, on the shapes of
// scripts/bench_ops_torch.py (pyref branch) so the numbers compare one to one with PyTorch:
//   group norm + SiLU: x (32, 64, 14, 14), 32 groups, with weight and bias;
//   attention: q, k, v (32, 196, 64), scale 1/√64.
// Forward runs under NoGrad; forward+backward makes every input require grad, clears the gradients, runs the
// forward and Backward(g) with a fixed random upstream g, every call in its own TensorScope. Each figure is the median of the timed samples (one
// call each) after at least 0.3 s and 2 calls of warm-up. Unlike the kernels in this folder this class drives
// the public Tensor API: it is a measurement harness, not a kernel.
using System.Diagnostics;

namespace DiffuSharp.Kernels;

/// <summary>The <c>diffusharp bench ops</c> timings of the fused group-norm + SiLU and attention primitives through the
/// public Tensor API, on the shapes of scripts/bench_ops_torch.py so they compare one to one with PyTorch.</summary>
public static class NormBench
{
    /// <summary>Median milliseconds of silu(group_norm(x)) forward and forward+backward, x (32, 64, 14, 14), 32 groups.</summary>
    public static (double FwdMs, double FwdBwdMs) GroupNormSilu(int samples = 15, double warmupSeconds = 1.0)
    {
        var rng = new Rng(0);
        var x = Tensor.RandN([32, 64, 14, 14], rng);
        var w = Tensor.RandN([64], rng, mean: 1f, std: 0.1f);
        var b = Tensor.RandN([64], rng, std: 0.1f);
        var g = Tensor.RandN([32, 64, 14, 14], rng);
        return Measure([x, w, b], g, () => Tensor.GroupNormSilu(x, 32, w, b), samples, warmupSeconds);
    }

    /// <summary>Median milliseconds of softmax(q·kᵀ/8)·v forward and forward+backward, q, k, v (32, 196, 64).</summary>
    public static (double FwdMs, double FwdBwdMs) Attention(int samples = 15, double warmupSeconds = 1.0)
    {
        var rng = new Rng(0);
        var q = Tensor.RandN([32, 196, 64], rng);
        var k = Tensor.RandN([32, 196, 64], rng);
        var v = Tensor.RandN([32, 196, 64], rng);
        var g = Tensor.RandN([32, 196, 64], rng);
        return Measure([q, k, v], g, () => Tensor.Attention(q, k, v, 0.125f), samples, warmupSeconds);
    }

    /// <summary>Median ms of forward (no grad) and of forward + Backward(g) with the leaves requiring grad.</summary>
    public static (double FwdMs, double FwdBwdMs) Measure(Tensor[] leaves, Tensor g, Func<Tensor> forward, int samples, double warmupSeconds = 1.0)
    {
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), $"need at least one sample, got {samples}");
        double fwd;
        using (Tensor.NoGrad()) fwd = Median(() => forward(), samples, warmupSeconds);
        foreach (var t in leaves) t.RequireGrad();
        double fwdBwd = Median(() =>
        {
            // zeroed in place, as a training loop's zero_grad does: a fresh leaf gradient is a new GC array each call
            foreach (var t in leaves) t.Grad?.Data.Clear();
            forward().Backward(g);
        }, samples, warmupSeconds);
        foreach (var t in leaves) { t.RequireGrad(false); t.Grad = null; }
        return (fwd, fwdBwd);
    }

    /// <summary>The timing protocol of scripts/bench_ops_torch.py: calls for at least warmupSeconds (and 2 calls), then
    /// the median of <paramref name="samples"/> samples, each the mean of k back-to-back calls with k chosen from the
    /// warm-up so that a sample lasts at least 5 ms. Each call runs in its own <see cref="TensorScope"/>, as a training
    /// or sampling step does, so its activations come from the pool rather than from fresh pages.</summary>
    static double Median(Action body, int samples, double warmupSeconds)
    {
        void run()
        {
            using var scope = TensorScope.Begin();
            body();
        }

        var warm = Stopwatch.StartNew();
        int calls = 0;
        for (; calls < 2 || warm.Elapsed.TotalSeconds < warmupSeconds; calls++) run();
        int k = (int)Math.Clamp(Math.Ceiling(0.005 / (warm.Elapsed.TotalSeconds / calls)), 1, 1_000_000);
        var ms = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int r = 0; r < k; r++) run();
            ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / k;
        }
        Array.Sort(ms);
        return samples % 2 == 1 ? ms[samples / 2] : 0.5 * (ms[samples / 2 - 1] + ms[samples / 2]);
    }
}
