// Tests for Gemm.Linear (y = x·Wᵀ + b with W's rows read in place): the bits of Sgemm followed by the bias for every
// kernel, ragged sizes (m not a multiple of the xᵀ sliver, n not a multiple of the W panel or of a unit), row strides
// that alias in L1 (the copied-panel path), no bias, 1 and 2 threads; and the double-precision reference.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class GemmLinearTests
{
    public static IEnumerable<object[]> Shapes() =>
        from kernel in new[] { nameof(Gemm.KernelKind.K12x32), nameof(Gemm.KernelKind.K6x32), nameof(Gemm.KernelKind.K6x16) }
        from shape in new[]
        {
            (5, 7, 3), (13, 50, 9), (154, 768, 96),     // tiny, ragged panel and unit, a CLIP-like row count
            (33, 61, 300),                               // two K blocks, m one past a 32-row sliver
            (154, 100, 1024),                            // W rows 4 KiB apart (the 6-row kernel's case), 4 K blocks
            (40, 13, 2048),                              // the same, ragged
            (512, 97, 40),                               // the most rows the path takes
            (100, 300, 1024),                            // split over the threads
        }
        select new object[] { kernel, shape.Item1, shape.Item2, shape.Item3 };

    [Theory, MemberData(nameof(Shapes))]
    public void Weight_rows_path_gives_the_bits_of_sgemm_then_bias(string kernelName, int m, int n, int k)
    {
        var kernel = Enum.Parse<Gemm.KernelKind>(kernelName);
        var (x, w, b) = Inputs(m, n, k, seed: m * 31 + n * 7 + k);
        var expected = Run(Gemm.KernelKind.Portable, m, n, k, x, w, b, threads: 1);   // Sgemm, then the bias
        foreach (int threads in new[] { 1, 2 })
        {
            var got = Run(kernel, m, n, k, x, w, b, threads);
            Assert.True(expected.AsSpan().SequenceEqual(got), $"{kernel} m={m} n={n} k={k} on {threads} thread(s): differs from Sgemm + bias at {FirstDiff(expected, got)}");
        }
        var noBias = Run(kernel, m, n, k, x, w, null, threads: 2);
        Assert.True(Run(Gemm.KernelKind.Portable, m, n, k, x, w, null, 1).AsSpan().SequenceEqual(noBias), $"{kernel} m={m} n={n} k={k}: differs without a bias");
    }

    [Theory]
    [InlineData(154, 768, 768)]
    [InlineData(77, 130, 3072)]
    public void Default_choice_matches_the_reference(int m, int n, int k)
    {
        var (x, w, b) = Inputs(m, n, k, seed: 5);
        var got = Run(Gemm.KernelKind.Auto, m, n, k, x, w, b, threads: 2);
        var expected = new float[m * n];
        fixed (float* px = x, pw = w, pe = expected)
            Gemm.Reference(false, true, m, n, k, px, k, pw, k, 0f, pe, n);
        double err = 0, norm = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double e = expected[i * n + j] + (double)b[j], d = got[i * n + j] - e;
                err += d * d;
                norm += e * e;
            }
        Assert.True(Math.Sqrt(err / norm) < 1e-5, $"relative error {Math.Sqrt(err / norm):E2}");
    }

    [Fact]
    public void Aliasing_row_strides_pick_the_six_row_kernel()
    {
        Assert.True(Gemm.SharesL1Sets(3072, 12));   // 12 KiB apart: one set
        Assert.True(Gemm.SharesL1Sets(1024, 12));
        Assert.False(Gemm.SharesL1Sets(768, 12));   // 3 KiB: four sets, 3 rows each
        Assert.False(Gemm.SharesL1Sets(3056, 12));
        Assert.False(Gemm.SharesL1Sets(3072, 6));      // six rows fit the eight ways
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported)
        {
            Assert.Equal(Gemm.KernelKind.K6x32, Gemm.PickLinear(154, 768, 3072));
            Assert.Equal(Gemm.KernelKind.K12x32, Gemm.PickLinear(154, 3072, 768));
        }
        Assert.Equal(Gemm.KernelKind.Auto, Gemm.PickLinear(4, 768, 768));        // the direct path's rows
        Assert.Equal(Gemm.KernelKind.Auto, Gemm.PickLinear(513, 768, 768));      // Sgemm's taller tiles
    }

    static (float[] X, float[] W, float[] B) Inputs(int m, int n, int k, int seed)
    {
        var rng = new Random(seed);
        float R() => (float)(rng.NextDouble() * 2 - 1);
        var x = new float[m * k]; var w = new float[n * k]; var b = new float[n];
        for (int i = 0; i < x.Length; i++) x[i] = R();
        for (int i = 0; i < w.Length; i++) w[i] = R();
        for (int i = 0; i < b.Length; i++) b[i] = R();
        return (x, w, b);
    }

    static float[] Run(Gemm.KernelKind kernel, int m, int n, int k, float[] x, float[] w, float[]? b, int threads)
    {
        var y = new float[m * n];
        Array.Fill(y, float.NaN);
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = threads;
        try
        {
            using (KernelSwitches.With(s => s with { LinearKernel = kernel }))
                fixed (float* px = x, pw = w, pb = b, py = y)
                    Gemm.Linear(m, n, k, px, pw, pb, py);
        }
        finally { Parallelism.MaxThreads = saved; }
        return y;
    }

    static string FirstDiff(float[] a, float[] b)
    {
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i])) return $"element {i}: {a[i]:R} vs {b[i]:R}";
        return "nowhere";
    }
}
