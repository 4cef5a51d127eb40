// Tests for Gemm.LinearPrepacked (a Linear weight packed once into panels of 32 output features): the bits of Sgemm
// followed by the bias on ragged row counts (m not a multiple of the 14-row tile), one and several K blocks, no bias,
// 1 and 2 threads; packing and unpacking in place give back W exactly; and the machines and sizes it refuses.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class GemmPrepackedLinearTests
{
    static bool Supported => Vector512.IsHardwareAccelerated && Fma.IsSupported;

    public static IEnumerable<object[]> Shapes() =>
        from shape in new[]
        {
            (1, 32, 1), (5, 64, 7), (14, 32, 16), (15, 96, 9),  // tiny: one row, one tile, one past a tile
            (154, 768, 96),                                     // the text encoder's 2 × 77 rows: 11 whole tiles
            (77, 160, 300),                                     // two K blocks (150 + 150), 5½ tiles
            (33, 64, 1024),                                     // four K blocks
            (154, 128, 3072),                                   // twelve, rows 12 KiB apart in x
            (600, 96, 40),                                      // more rows than Gemm.Linear's path takes
        }
        select new object[] { shape.Item1, shape.Item2, shape.Item3 };

    [Theory, MemberData(nameof(Shapes))]
    public void Prepacked_weight_gives_the_bits_of_sgemm_then_bias(int m, int n, int k)
    {
        Assert.Equal(Supported, Gemm.CanPrepackLinear(n, k));
        if (!Supported) return;                      // AVX2 and portable machines keep Gemm.Linear (GemmLinearTests)
        var rng = new Random(m * 31 + n * 7 + k);
        float R() => (float)(rng.NextDouble() * 2 - 1);
        var x = new float[m * k]; var w = new float[n * k]; var b = new float[n];
        for (int i = 0; i < x.Length; i++) x[i] = R();
        for (int i = 0; i < w.Length; i++) w[i] = R();
        for (int i = 0; i < b.Length; i++) b[i] = R();
        var packed = (float[])w.Clone();
        fixed (float* pp = packed) Gemm.PrepackLinearWeight(n, k, pp);
        if (k > 1) Assert.False(packed.AsSpan().SequenceEqual(w), "packing left W as it was");

        foreach (bool withBias in new[] { true, false })
        {
            var expected = new float[m * n];
            fixed (float* px = x, pw = w, pe = expected)
            {
                Gemm.Sgemm(false, true, m, n, k, px, k, pw, k, 0f, pe, n);
                if (withBias)
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) pe[i * n + j] += b[j];
            }
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[m * n];
                Array.Fill(y, float.NaN);
                int saved = Parallelism.MaxThreads;
                Parallelism.MaxThreads = threads;
                try
                {
                    fixed (float* px = x, pp = packed, pb = withBias ? b : null, py = y)
                        Gemm.LinearPrepacked(m, n, k, px, pp, pb, py);
                }
                finally { Parallelism.MaxThreads = saved; }
                Assert.True(expected.AsSpan().SequenceEqual(y), $"m={m} n={n} k={k} bias={withBias} on {threads} thread(s): differs from Sgemm + bias at {FirstDiff(expected, y)}");
            }
        }

        fixed (float* pp = packed) Gemm.UnpackLinearWeight(n, k, pp);
        Assert.True(w.AsSpan().SequenceEqual(packed), "unpacking did not give W back");
    }

    [Fact]
    public void Several_products_sharing_x_give_each_one_its_own_bits()
    {
        if (!Supported) return;
        int m = 45, k = 300;
        int[] widths = [64, 32, 96];                        // 2 + 1 + 3 panels, handed out across the products
        var rng = new Random(8);
        float R() => (float)(rng.NextDouble() * 2 - 1);
        var x = new float[m * k];
        for (int i = 0; i < x.Length; i++) x[i] = R();
        var ws = widths.Select(n => Enumerable.Range(0, n * k).Select(_ => R()).ToArray()).ToArray();
        var bs = widths.Select(n => Enumerable.Range(0, n).Select(_ => R()).ToArray()).ToArray();
        var alone = new float[widths.Length][];
        var together = widths.Select(n => new float[m * n]).ToArray();
        for (int i = 0; i < widths.Length; i++)
        {
            fixed (float* pw = ws[i]) Gemm.PrepackLinearWeight(widths[i], k, pw);
            alone[i] = new float[m * widths[i]];
            fixed (float* px = x, pw = ws[i], pb = bs[i], py = alone[i]) Gemm.LinearPrepacked(m, widths[i], k, px, pw, i == 1 ? null : pb, py);
        }
        fixed (float* px = x, w0 = ws[0], w1 = ws[1], w2 = ws[2], b0 = bs[0], b2 = bs[2], y0 = together[0], y1 = together[1], y2 = together[2])
        {
            Gemm.PrepackedProduct[] products = [new(64, w0, b0, y0), new(32, w1, null, y1), new(96, w2, b2, y2)];
            Gemm.LinearPrepacked(m, k, px, products);
        }
        for (int i = 0; i < widths.Length; i++)
            Assert.True(alone[i].AsSpan().SequenceEqual(together[i]), $"product {i} differs when computed with the others at {FirstDiff(alone[i], together[i])}");
    }

    [Fact]
    public void Packed_layout_puts_each_weight_where_the_kernel_reads_it()
    {
        // a 64 × 300 weight has two K blocks of 150 (Sgemm's cuts); panel 1 (features 32..63) of K block 1 starts at
        // p0·n + 1·kc·32 = 150·64 + 150·32
        int n = 64, k = 300;
        var w = new float[n * k];
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++) w[j * k + p] = j * 1000 + p;
        fixed (float* pw = w) Gemm.PrepackLinearWeight(n, k, pw);
        Assert.Equal(0 * 1000 + 0, w[0]);
        Assert.Equal(1 * 1000 + 0, w[1]);                       // the next output feature, same p
        Assert.Equal(0 * 1000 + 1, w[32]);                      // the next p, first feature of the panel
        Assert.Equal(32 * 1000 + 0, w[150 * 32]);               // panel 1 of K block 0
        Assert.Equal(0 * 1000 + 150, w[150 * 64]);              // K block 1
        Assert.Equal(33 * 1000 + 257, w[150 * 64 + 150 * 32 + (257 - 150) * 32 + 1]);
    }

    [Fact]
    public void Sizes_and_machines_it_refuses()
    {
        Assert.False(Gemm.CanPrepackLinear(100, 768));          // n not a multiple of 32
        Assert.False(Gemm.CanPrepackLinear(768, 0));
        using (KernelSwitches.With(s => s with { PrepackedLinearDisabled = true }))
            Assert.False(Gemm.CanPrepackLinear(768, 768));
        Assert.Throws<ArgumentException>(() => { fixed (float* p = new float[100]) Gemm.PrepackLinearWeight(10, 10, p); });
        if (!Supported) Assert.Throws<ArgumentException>(() => Gemm.LinearPrepacked(1, 32, 1, null, null, null, null));
    }

    static string FirstDiff(float[] a, float[] b)
    {
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i])) return $"element {i}: {a[i]:R} vs {b[i]:R}";
        return "nowhere";
    }
}
