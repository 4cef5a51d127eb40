// Kernel-level tests for ConvDirect.cs: the direct same convolution (both vector widths) and its transpose against
// the scalar reference and the adjoint identity, and the 3×3 weight gradient against its definition.
using System.Runtime.Intrinsics;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

/// <summary>The direct same-convolution kernel against the scalar reference, with both vector widths.</summary>
[Collection("Parallelism")]
public unsafe class ConvDirectTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (int k in new[] { 3, 5 })
            foreach (var (h, w) in new[] { (1, 1), (2, 3), (7, 7), (5, 17), (14, 14), (3, 40) })
                foreach (var (cin, cout) in new[] { (1, 1), (3, 8), (5, 13) })
                    yield return [k, h, w, cin, cout];
    }

    [Theory, MemberData(nameof(Cases))]
    public void Direct_conv_and_its_transpose_match_the_reference(int k, int h, int w, int cin, int cout)
    {
        foreach (bool narrow in new[] { false, true })
            using (KernelSwitches.With(s => s with { DirectVector256 = narrow }))
                Check(k, h, w, cin, cout);
    }

    [Theory]
    [InlineData(3, 28, 28, 32, 1)]   // mnist-s's last convolution: tiles of 128 pixels and single vectors after them
    [InlineData(3, 32, 32, 64, 3)]   // cifar-s's
    [InlineData(5, 14, 15, 4, 4)]   // 5×5
    public void Few_output_channels_one_at_a_time_give_the_bits_of_a_block_of_eight(int k, int h, int w, int cin, int cout)
    {
        if (!Vector512.IsHardwareAccelerated) return;                     // (the narrow tiles are AVX-512 only)
        var rng = new Rng(9);
        var x = Tensor.RandN([3, cin, h, w], rng);
        var wt = Tensor.RandN([cout, cin, k, k], rng);
        var b = Tensor.RandN([cout], rng);
        float[] narrow, block;
        using (KernelSwitches.With(s => s with { DirectNarrowOutputs = 4 }))
            narrow = Tensor.Conv2d(x, wt, b, 1, k / 2).ToArray();
        using (KernelSwitches.With(s => s with { DirectNarrowOutputs = 0 }))
            block = Tensor.Conv2d(x, wt, b, 1, k / 2).ToArray();
        Assert.True(narrow.AsSpan().SequenceEqual(block), "one output channel at a time differs from the block of 8");
    }

    [Theory]
    [InlineData(3, 20, 37, 5, 11)]   // bands of one 48-pixel tile: every band ends inside a row, some inside the padding
    [InlineData(3, 9, 50, 3, 2)]     // two output channels: the narrow tiles
    [InlineData(5, 12, 21, 4, 9)]
    public void Bands_of_output_pixels_give_the_bits_of_the_whole_image(int k, int h, int w, int cin, int cout)
    {
        const int batch = 2;
        var rng = new Rng(11);
        var g = new ConvGeometry(cin, h, w, k, k, 1, k / 2);
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var wt = new float[cout * cin * k * k]; rng.FillNormal(wt);
        var bias = new float[cout]; rng.FillNormal(bias);
        var y0 = new float[batch * cout * h * w]; rng.FillNormal(y0);
        var expect = new float[y0.Length];
        Im2Col.Conv2dReference(x, wt, bias, batch, cout, g, expect);
        foreach (bool narrow in new[] { false, true })
            foreach (bool accumulate in new[] { false, true })
            {
                float[] whole, banded;
                using (KernelSwitches.With(s => s with { DirectVector256 = narrow, DirectBandFloats = 1 << 30 }))
                    whole = Run(accumulate);
                using (KernelSwitches.With(s => s with { DirectVector256 = narrow, DirectBandFloats = 1 }))
                {
                    Assert.Equal(48, ConvDirect.BandPixels(g));
                    banded = Run(accumulate);
                }
                Assert.True(whole.AsSpan().SequenceEqual(banded), $"banded differs from whole (Vector256 {narrow}, accumulate {accumulate})");
                if (!accumulate) GradCheck.AssertClose(expect, banded, 1e-5, 1e-4, "y");
            }

        float[] Run(bool accumulate)
        {
            var y = (float[])y0.Clone();
            var xp = new float[ConvDirect.PaddedFloats(g, batch)];
            var wpk = new float[ConvDirect.PackedWeightFloats(cout, cin, k)];
            fixed (float* px = x, pw = wt, pb = bias, py = y, pxp = xp, pk = wpk)
            {
                ConvDirect.Pad(px, batch, g, pxp);
                ConvDirect.PackWeights(pw, cout, cin, k, flipTranspose: false, pk);
                ConvDirect.Forward(pxp, batch, g, pk, cout, pb, py, accumulate);
            }
            return y;
        }
    }

    [Theory]
    [InlineData(2, 1, 1, 1, 1)]
    [InlineData(2, 3, 13, 7, 7)]
    [InlineData(3, 5, 8, 17, 5)]
    [InlineData(4, 8, 9, 64, 64)]   // several image blocks
    public void Direct_weight_grad_matches_the_definition(int batch, int cin, int cout, int h, int w)
    {
        var g = new ConvGeometry(cin, h, w, 3, 3, 1, 1);
        if (!ConvDirect.WeightGradSupported(g)) return;              // AVX-512 only; the GEMM path covers the rest
        var rng = new Rng(8);
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var dy = new float[batch * cout * h * w]; rng.FillNormal(dy);
        var dw = new float[cout * cin * 9]; rng.FillNormal(dw);
        var expect = ConvReference.WeightGrad3x3(dw, x, dy, batch, cin, cout, h, w);
        var xp = new float[ConvDirect.PaddedFloats(g, batch)];
        var dyz = new float[ConvDirect.PaddedRowsFloats(g, batch, cout)];
        dyz.AsSpan().Fill(float.NaN);
        fixed (float* px = x, pdy = dy, pdw = dw, pxp = xp, pz = dyz)
        {
            ConvDirect.Pad(px, batch, g, pxp);
            ConvDirect.PadRows(pdy, batch, cout, g, pz);
            ConvDirect.WeightGrad(pxp, pz, batch, g, cout, pdw);
        }
        for (int i = 0; i < dw.Length; i++)
            Assert.True(Math.Abs(dw[i] - expect[i]) <= 1e-4 * (1 + Math.Abs(expect[i])), $"dW[{i}]: expected {expect[i]}, got {dw[i]}");
    }

    static void Check(int k, int h, int w, int cin, int cout)
    {
        const int batch = 2;
        var rng = new Rng(7);
        var g = new ConvGeometry(cin, h, w, k, k, 1, k / 2);
        Assert.True(ConvDirect.IsSupported(g));
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var wt = new float[cout * cin * k * k]; rng.FillNormal(wt);
        var bias = new float[cout]; rng.FillNormal(bias);
        var expect = new float[batch * cout * h * w];
        Im2Col.Conv2dReference(x, wt, bias, batch, cout, g, expect);
        var y = new float[expect.Length];
        var xp = new float[ConvDirect.PaddedFloats(g, batch)];
        xp.AsSpan().Fill(float.NaN);                                   // padding and slack must be written
        var wpk = new float[ConvDirect.PackedWeightFloats(cout, cin, k)];
        fixed (float* px = x, pw = wt, pb = bias, py = y, pxp = xp, pk = wpk)
        {
            ConvDirect.Pad(px, batch, g, pxp);
            ConvDirect.PackWeights(pw, cout, cin, k, flipTranspose: false, pk);
            ConvDirect.Forward(pxp, batch, g, pk, cout, pb, py, accumulate: false);
        }
        GradCheck.AssertClose(expect, y, 1e-5, 1e-4, "y");

        // transpose: dx = conv(dy, flipped Wᵀ) must equal the adjoint, <conv(x), dy> = <x, dx>; checked against
        // the reference by the identity Σ y·dy = Σ x·dx for the bias-free convolution
        var dy = new float[expect.Length]; rng.FillNormal(dy);
        var dx = new float[x.Length]; rng.FillNormal(dx);
        var dx0 = (float[])dx.Clone();
        var gT = new ConvGeometry(cout, h, w, k, k, 1, k / 2);
        var dyp = new float[ConvDirect.PaddedFloats(gT, batch)];
        var wpkT = new float[ConvDirect.PackedWeightFloats(cin, cout, k)];
        fixed (float* pw = wt, pdy = dy, pdx = dx, pp = dyp, pk = wpkT)
        {
            ConvDirect.Pad(pdy, batch, gT, pp);
            ConvDirect.PackWeights(pw, cout, cin, k, flipTranspose: true, pk);
            ConvDirect.Forward(pp, batch, gT, pk, cin, null, pdx, accumulate: true);
        }
        Im2Col.Conv2dReference(x, wt, default, batch, cout, g, expect);
        double lhs = 0, rhs = 0;
        for (int i = 0; i < expect.Length; i++) lhs += (double)expect[i] * dy[i];
        for (int i = 0; i < x.Length; i++) rhs += (double)x[i] * ((double)dx[i] - dx0[i]);
        Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * (1 + Math.Abs(lhs)), $"<conv x, dy> = {lhs}, <x, dx> = {rhs}");
    }
}
