// Timing of the conv2d op at UNet shapes (3×3, padding 1, Cin = Cout), forward alone and forward + backward
// with x, weight and bias all requiring grad: the same protocol as timing torch.nn.functional.conv2d and
// y.backward(dy) in PyTorch. Called by the `bench ops` command. Deviation from the Kernels layer's rule: this
// file drives the public Tensor API (a benchmark of the op, not a kernel), so it is the one Kernels file that
// sees a Tensor.
using System.Diagnostics;

namespace DiffuSharp.Kernels;

public static class ConvBench
{
    /// <summary>Median milliseconds of conv2d (B, C, S, S) * (C, C, 3, 3) + b, padding 1: forward under NoGrad, and
    /// forward + backward (dx, dW, db). Each is warmed up for at least 0.4 s before <paramref name="samples"/> timed runs.</summary>
    public static (double FwdMs, double FwdBwdMs) Measure(int batch, int channels, int size, int samples = 7)
    {
        if (batch < 1 || channels < 1 || size < 1 || samples < 1)
            throw new ArgumentException($"ConvBench.Measure needs positive sizes, got batch {batch}, channels {channels}, size {size}, samples {samples}");
        var rng = new Rng(1234);
        var x = Tensor.RandN([batch, channels, size, size], rng).RequireGrad();
        var w = Tensor.RandN([channels, channels, 3, 3], rng, 0f, 0.05f).RequireGrad();
        var b = Tensor.RandN([channels], rng).RequireGrad();
        var dy = Tensor.RandN([batch, channels, size, size], rng);

        double fwd = Median(new Forward(x, w, b), samples);
        double fwdBwd = Median(new ForwardBackward(x, w, b, dy), samples);
        return (fwd, fwdBwd);
    }

    interface IStep { void Run(); }

    readonly struct Forward(Tensor x, Tensor w, Tensor b) : IStep
    {
        public void Run()
        {
            using var _ = Tensor.NoGrad();
            Tensor.Conv2d(x, w, b, stride: 1, padding: 1);
        }
    }

    readonly struct ForwardBackward(Tensor x, Tensor w, Tensor b, Tensor dy) : IStep
    {
        public void Run() => Tensor.Conv2d(x, w, b, stride: 1, padding: 1).Backward(dy);
    }

    static double Median<T>(T step, int samples) where T : struct, IStep
    {
        var sw = Stopwatch.StartNew();
        int warm = 0;
        while (warm < 2 || sw.Elapsed.TotalSeconds < 0.4) { step.Run(); warm++; }
        var ms = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            step.Run();
            ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(ms);
        return samples % 2 == 1 ? ms[samples / 2] : 0.5 * (ms[samples / 2 - 1] + ms[samples / 2]);
    }
}
