// Kernel-level tests for ConvWinogradNchw.cs: the Winograd F(2×2, 3×3) forward on NCHW images against the
// double-precision reference convolution, across chunkings (one tile row per chunk up to all of them), tile rows whose
// tiles fill whole vectors or leave a scalar tail, and thread counts; and that Conv2d takes it where it is preferred.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class ConvWinogradNchwTests
{
    static float[] Forward(float[] x, float[] w, float[] b, int batch, int cin, int cout, int h, int wd)
    {
        var y = new float[batch * cout * h * wd];
        y.AsSpan().Fill(float.NaN);                                  // every output must be written
        var g = new ConvGeometry(cin, h, wd, 3, 3, 1, 1);
        fixed (float* px = x, pw = w, pb = b, py = y) ConvWinogradNchw.Forward(px, batch, g, pw, cout, b.Length == 0 ? null : pb, py);
        return y;
    }

    [Theory]
    [InlineData(2, 5, 9, 6, 18)]      // 9 tiles a row: one vector of 8 and a scalar one
    [InlineData(1, 3, 4, 2, 16)]      // one tile row, one whole vector
    [InlineData(3, 7, 2, 8, 36)]      // 18 tiles a row
    [InlineData(2, 1, 1, 4, 6)]       // scalar tiles only
    public void Winograd_forward_matches_the_reference_for_every_chunking_and_thread_count(int batch, int cin, int cout, int h, int wd)
    {
        var rng = new Rng(31);
        var x = new float[batch * cin * h * wd]; rng.FillNormal(x);
        var w = new float[cout * cin * 9]; rng.FillNormal(w);
        var b = new float[cout]; rng.FillNormal(b);
        var g = new ConvGeometry(cin, h, wd, 3, 3, 1, 1);
        var expect = new float[batch * cout * h * wd];
        Im2Col.Conv2dReference(x, w, b, batch, cout, g, expect);
        int oldThreads = Parallelism.MaxThreads;
        try
        {
            float[] whole, rows;
            using (KernelSwitches.With(s => s with { WinogradNchwChunkFloats = 1 << 30 }))
                whole = Forward(x, w, b, batch, cin, cout, h, wd);
            GradCheck.AssertClose(expect, whole, 1e-5, 1e-5, "y");
            using var oneRow = KernelSwitches.With(s => s with { WinogradNchwChunkFloats = 1 });   // one tile row per chunk
            Assert.Equal(1, ConvWinogradNchw.ChunkRows(g, cout, batch * h / 2));
            rows = Forward(x, w, b, batch, cin, cout, h, wd);
            Assert.True(whole.AsSpan().SequenceEqual(rows), "one tile row per chunk differs from one chunk");
            Parallelism.MaxThreads = 1;
            var one = Forward(x, w, b, batch, cin, cout, h, wd);
            Assert.True(whole.AsSpan().SequenceEqual(one), "one thread differs from two");
            var noBias = Forward(x, w, [], batch, cin, cout, h, wd);
            Im2Col.Conv2dReference(x, w, default, batch, cout, g, expect);
            GradCheck.AssertClose(expect, noBias, 1e-5, 1e-5, "y without bias");
        }
        finally { Parallelism.MaxThreads = oldThreads; }
    }

    [Fact]
    public void Conv2d_takes_winograd_for_many_channels_and_stays_within_rounding_of_the_direct_kernel()
    {
        var g = new ConvGeometry(128, 16, 16, 3, 3, 1, 1);
        Assert.True(ConvWinogradNchw.Prefer(g, 128));
        Assert.False(ConvWinogradNchw.Prefer(g with { W = 15 }, 128));
        Assert.False(ConvWinogradNchw.Prefer(g, 64));
        var rng = new Rng(32);
        var x = Tensor.RandN([1, 128, 16, 16], rng); var w = Tensor.RandN([128, 128, 3, 3], rng, std: 0.05f); var b = Tensor.RandN([128], rng);
        float[] wino, direct;
        using (Tensor.NoGrad())
        {
            wino = Tensor.Conv2d(x, w, b, 1, 1).ToArray();
            using (KernelSwitches.With(s => s with { WinogradNchwDisabled = true }))
                direct = Tensor.Conv2d(x, w, b, 1, 1).ToArray();
        }
        Assert.False(wino.AsSpan().SequenceEqual(direct), "expected the Winograd path to round differently from the direct one");
        GradCheck.AssertClose(direct, wino, 1e-4, 1e-5, "winograd vs direct");
    }
}
