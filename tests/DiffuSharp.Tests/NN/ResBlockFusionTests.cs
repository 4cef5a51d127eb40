// A ResBlock's forward without gradients runs fused on the lane kernels (Autograd/Ops.ResBlock.cs): it must equal
// the single ops (group norm + SiLU, conv, embedding add, group norm + SiLU, conv, skip) to float rounding, for every
// kind of block the UNet has, on the Winograd and the direct lane kernels, with spare lanes and with the batch split
// into groups of images; and it must step aside wherever it does not apply.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using DiffuSharp.NN;
using Xunit;

namespace DiffuSharp.Tests.NN;

[Collection("Parallelism")]
public class ResBlockFusionTests
{
    /// <summary>Every test runs in this scope: on a CPU without AVX-512 the lane kernels run with .NET's two-halves
    /// Vector512 (same bits, slower), so the fused path is tested on every machine.</summary>
    static KernelSwitches.Scope Emulated512() => KernelSwitches.With(s => s with { LanesEmulated512 = true });

    static float[] Run(ResBlock block, int cout, Tensor x, Tensor emb, bool fused, out bool tookFusedPath)
    {
        using (KernelSwitches.With(s => s with { ResBlockFusionDisabled = !fused }))
        using (Tensor.NoGrad())
        {
            tookFusedPath = Ops.ResBlockFuses(x, cout);
            return block.Forward(x, emb, new ForwardContext(Training: false, Rng: null)).ToArray();
        }
    }

    [Theory]
    [InlineData(16, 32, 32, 7, 7, false, 0)]       // identity skip
    [InlineData(24, 32, 64, 14, 14, false, 0)]     // 1×1 skip, 8 spare lanes
    [InlineData(40, 64, 32, 9, 9, false, 0)]       // odd size: Winograd's plane is larger than the image
    [InlineData(32, 96, 32, 28, 28, false, 0)]     // the largest mnist-s block
    [InlineData(16, 32, 32, 7, 7, true, 0)]        // the direct lane kernel (no Winograd)
    [InlineData(48, 32, 32, 20, 20, false, 1 << 18)] // the batch in groups of 16 images, each step on every thread
    [InlineData(48, 32, 32, 6, 6, false, 0)]       // 16 images per thread, each through the whole block
    public void Fused_forward_equals_the_single_ops(int batch, int cin, int cout, int h, int w, bool noWinograd, int groupBytes)
    {
        using var emulated = Emulated512();
        var rng = new Rng(12);
        var block = new ResBlock(cin, 40, dropout: 0.1f, cout, useScaleShiftNorm: false, useConvSkip: false, rng);
        foreach (var (_, p) in block.NamedParameters())                   // out_layers' conv starts at zero: give it weights
            (Tensor.RandN(p.Shape, rng) * 0.2f).Data.CopyTo(p.Data);
        var x = Tensor.RandN([batch, cin, h, w], rng) + 0.3f;
        var emb = Tensor.RandN([batch, 40], rng);
        using (KernelSwitches.With(s => s with { WinogradDisabled = noWinograd, LanesGroupBytes = groupBytes > 0 ? groupBytes : s.LanesGroupBytes }))
        {
            var single = Run(block, cout, x, emb, fused: false, out bool singleFused);
            var fused = Run(block, cout, x, emb, fused: true, out bool tookFused);
            Assert.False(singleFused);
            Assert.True(tookFused, "the fused path was not taken");
            if (groupBytes > 0) Assert.True(ConvLanes.GroupImages(Math.Max(cin, cout), h, w, batch) < batch, "the batch was not split");
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < single.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(single[i] - fused[i]));
                maxRef = Math.Max(maxRef, Math.Abs(single[i]));
            }
            // The second group norm's statistics are summed in another order (μ, rstd within an ulp of their float
            // forms); the convolution after it adds Cout·9 such terms. Float rounding of the block is ~1e-7 of its scale.
            Assert.True(maxDiff <= 2e-6 * maxRef, $"max |fused − single| = {maxDiff:G3} at scale {maxRef:G3}");
        }
    }

    [Theory]
    [InlineData(40, 32, 64, 7, 7)]    // split between the threads 16 images at a time on 2 threads, not on 1
    [InlineData(32, 32, 32, 28, 28)]  // every step on every thread
    public void Fused_forward_gives_the_same_bits_on_1_and_2_threads(int batch, int cin, int cout, int h, int w)
    {
        using var emulated = Emulated512();
        var rng = new Rng(30);
        var block = new ResBlock(cin, 16, dropout: 0f, cout, useScaleShiftNorm: false, useConvSkip: false, rng);
        foreach (var (_, p) in block.NamedParameters()) (Tensor.RandN(p.Shape, rng) * 0.2f).Data.CopyTo(p.Data);
        var x = Tensor.RandN([batch, cin, h, w], rng);
        var emb = Tensor.RandN([batch, 16], rng);
        int old = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 1;
            var one = Run(block, cout, x, emb, fused: true, out bool fused1);
            Parallelism.MaxThreads = 2;
            var two = Run(block, cout, x, emb, fused: true, out bool fused2);
            Assert.True(fused1 && fused2);
            for (int i = 0; i < one.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(one[i]) == BitConverter.SingleToInt32Bits(two[i]), $"y[{i}]: {two[i]:G9} on 2 threads, {one[i]:G9} on 1");
        }
        finally { Parallelism.MaxThreads = old; }
    }

    [Theory]
    [InlineData(32, 64, 32, 32, 14, 14)]   // 96 channels in 32 groups of 3: a group across the seam
    [InlineData(16, 64, 64, 64, 7, 7)]     // 128 in groups of 4: the seam between groups
    [InlineData(40, 32, 32, 32, 9, 9)]     // 16 images per thread, spare lanes in the last group
    public void Fused_forward_of_two_parts_equals_the_single_ops_on_their_concatenation(int batch, int ca, int cb, int cout, int h, int w)
    {
        using var emulated = Emulated512();
        var rng = new Rng(31);
        var block = new ResBlock(ca + cb, 24, dropout: 0.1f, cout, useScaleShiftNorm: false, useConvSkip: false, rng);
        foreach (var (_, p) in block.NamedParameters()) (Tensor.RandN(p.Shape, rng) * 0.2f).Data.CopyTo(p.Data);
        var a = Tensor.RandN([batch, ca, h, w], rng) + 0.5f;
        var b = Tensor.RandN([batch, cb, h, w], rng) * 2f;
        var emb = Tensor.RandN([batch, 24], rng);
        var ctx = new ForwardContext(Training: false, Rng: null);
        float[] single, pair;
        using (Tensor.NoGrad())
        {
            using (KernelSwitches.With(s => s with { ResBlockFusionDisabled = true }))
                single = block.Forward(Tensor.Concat([a, b], 1), emb, ctx).ToArray();
            Assert.True(Ops.ResBlockFuses(batch, ca + cb, h, w, cout), "the fused path was not taken");
            pair = block.Forward(a, b, emb, ctx).ToArray();
        }
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < single.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(single[i] - pair[i]));
            maxRef = Math.Max(maxRef, Math.Abs(single[i]));
        }
        Assert.True(maxDiff <= 2e-6 * maxRef, $"max |pair − single| = {maxDiff:G3} at scale {maxRef:G3}");
    }

    [Fact]
    public void Pointwise_convolution_of_two_parts_matches_the_convolution_of_their_concatenation()
    {
        var rng = new Rng(32);
        var a = Tensor.RandN([5, 6, 4, 3], rng); var b = Tensor.RandN([5, 3, 4, 3], rng);
        var wt = Tensor.RandN([7, 9, 1, 1], rng); var bias = Tensor.RandN([7], rng);
        using (Tensor.NoGrad())
        {
            foreach (var bb in new Tensor?[] { bias, null })
            {
                var expected = Tensor.Conv2d(Tensor.Concat([a, b], 1), wt, bb).ToArray();
                GradCheck.AssertClose(expected, Ops.PointwiseConvPair(a, b, wt, bb).ToArray(), 1e-5, 1e-6, "pointwise pair");
            }
            var ex = Assert.Throws<ArgumentException>(() => Ops.PointwiseConvPair(a, Tensor.RandN([5, 4, 4, 3], rng), wt, bias));
            Assert.Contains("do not fit weight (7, 9, 1, 1)", ex.Message);
        }
        Assert.Throws<InvalidOperationException>(() => Ops.PointwiseConvPair(a, b, wt, bias));   // gradients on
    }

    [Fact]
    public void Not_fused_with_gradients_with_dropout_in_training_or_with_a_small_batch()
    {
        using var emulated = Emulated512();
        var x = Tensor.Zeros(16, 32, 7, 7);
        Assert.False(Ops.ResBlockFuses(x, 32));                            // gradients recorded
        using (Tensor.NoGrad())
        {
            Assert.True(Ops.ResBlockFuses(x, 32));
            Assert.False(Ops.ResBlockFuses(Tensor.Zeros(8, 32, 7, 7), 32));  // too few images for the lanes
            Assert.False(Ops.ResBlockFuses(Tensor.Zeros(16, 32, 40, 40), 32)); // too wide for the lane forward
        }
        // in training mode with dropout the block runs the single ops (dropout sits between the norm and the conv):
        // its output then differs between two rng seeds, which the fused path could not do
        var rng = new Rng(1);
        var block = new ResBlock(32, 8, dropout: 0.5f, 32, useScaleShiftNorm: false, useConvSkip: false, rng);
        foreach (var (_, p) in block.NamedParameters()) (Tensor.RandN(p.Shape, rng) * 0.2f).Data.CopyTo(p.Data);
        var xr = Tensor.RandN([16, 32, 7, 7], rng); var emb = Tensor.RandN([16, 8], rng);
        using (Tensor.NoGrad())
        {
            var a = block.Forward(xr, emb, new ForwardContext(Training: true, Rng: new Rng(2))).ToArray();
            var b = block.Forward(xr, emb, new ForwardContext(Training: true, Rng: new Rng(3))).ToArray();
            Assert.NotEqual(a, b);
        }
    }
}
