// The VAE decoder's inference path that keeps few full-size activations alive (Stable Diffusion 1.5's decode to
// 512×512 would otherwise hold 128-256 MiB per temporary): the nearest ×2 upsample folded into the NCHW Winograd
// convolution's tile reads, the GroupNorm + SiLU done in place, conv2 added into the residual's storage, and each
// temporary released once consumed. Each piece must give the bits of the plain ops, the whole decode the bits of the
// graph path, and the decode must hold no more live storage than its design says.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using DiffuSharp.NN.Diffusers;
using Xunit;

namespace DiffuSharp.Tests.NN.Diffusers;

public class VaeDecodeMemoryTests
{
    /// <summary>NCHW Winograd from 16 channels, so small tensors take the kernels the SD 1.5 VAE takes at 128-512.</summary>
    static IDisposable SmallWinograd() => KernelSwitches.With(s => s with { WinogradNchwMinChannels = 16 });

    [Theory]
    [InlineData(1, 16, 16, 8, 8)]        // 8×8 → 16×16, whole rows of eight tiles
    [InlineData(2, 24, 32, 9, 11)]       // two images, tile rows with a tail of single tiles
    [InlineData(1, 32, 16, 12, 8)]       // fewer output than input channels, a taller image
    public void Winograd_upsampled_convolution_has_the_bits_of_upsampling_then_convolving(int batch, int c, int cout, int h, int w)
    {
        var rng = new Rng(31);
        var x = Tensor.RandN([batch, c, h, w], rng);
        var wt = Tensor.RandN([cout, c, 3, 3], rng);
        var b = Tensor.RandN([cout], rng);
        using (SmallWinograd())
        using (Tensor.NoGrad())
        {
            Assert.True(Ops.UpsampleConvFuses(x, cout));
            var expected = Tensor.Conv2d(x.UpsampleNearest2x(), wt, b, 1, 1).ToArray();
            var fused = Ops.UpsampleConv2dNoGrad(x, wt, b).ToArray();
            Assert.True(expected.AsSpan().SequenceEqual(fused), "upsample + conv differs from the fused Winograd result");
        }
    }

    [Fact]
    public void The_fused_upsample_applies_only_where_its_kernels_run()
    {
        var x = Tensor.RandN([1, 8, 8, 8], new Rng(32));
        using (Tensor.NoGrad()) Assert.False(Ops.UpsampleConvFuses(x, 8));   // 8 channels: neither lanes nor Winograd
        using (SmallWinograd()) Assert.False(Ops.UpsampleConvFuses(Tensor.RandN([1, 16, 8, 8], new Rng(33)), 16));   // gradients on
    }

    [Theory]
    [InlineData(1, 16, 16, 16, 16, true)]   // NCHW Winograd: added into the residual's storage
    [InlineData(2, 16, 24, 18, 20, true)]
    [InlineData(1, 8, 8, 16, 16, false)]    // too few channels: made in a new tensor
    public void Conv2d_added_into_the_residual_has_the_bits_of_conv2d_with_residual(int batch, int c, int cout, int h, int w, bool inPlace)
    {
        var rng = new Rng(34);
        var x = Tensor.RandN([batch, c, h, w], rng);
        var wt = Tensor.RandN([cout, c, 3, 3], rng);
        var b = Tensor.RandN([cout], rng);
        var r = Tensor.RandN([batch, cout, h, w], rng);
        using (SmallWinograd())
        using (Tensor.NoGrad())
        {
            var expected = Tensor.Conv2d(x, wt, b, 1, 1, r).ToArray();
            var residual = Tensor.FromArray(r.ToArray(), r.Shape);
            Assert.Equal(inPlace, Ops.Conv2dAddsInPlace(x, cout, 1));
            var y = Ops.Conv2dAddIntoNoGrad(x, wt, b, 1, residual);
            Assert.Equal(inPlace, ReferenceEquals(y, residual));
            Assert.True(expected.AsSpan().SequenceEqual(y.ToArray()), "conv2 added into the residual differs from Conv2d(x, w, b, residual)");
        }
        Assert.Throws<InvalidOperationException>(() => Ops.Conv2dAddIntoNoGrad(x, wt, b, 1, r));   // gradients on
    }

    [Theory]
    [InlineData(1, 16, 16, 16, 16, 0)]      // no residual
    [InlineData(2, 32, 16, 18, 22, 1)]      // a residual added in a new tensor; tile rows with single tiles
    [InlineData(2, 16, 24, 14, 16, 2)]      // added into the residual's storage
    public void GroupNorm_silu_fused_into_the_convolution_has_the_bits_of_the_two_ops(int batch, int c, int cout, int h, int w, int residualMode)
    {
        var rng = new Rng(39);
        var x = Tensor.RandN([batch, c, h, w], rng) * 2.0 + 0.5;
        var gamma = Tensor.RandN([c], rng);
        var beta = Tensor.RandN([c], rng);
        var wt = Tensor.RandN([cout, c, 3, 3], rng);
        var b = Tensor.RandN([cout], rng);
        var r = residualMode == 0 ? null : Tensor.RandN([batch, cout, h, w], rng);
        using (SmallWinograd())
        using (Tensor.NoGrad())
        {
            Assert.True(Ops.NormConvFuses(x, cout, 1));
            var normed = Tensor.GroupNormSilu(x, 8, gamma, beta, 1e-6f);
            var expected = (r is null ? Tensor.Conv2d(normed, wt, b, 1, 1) : Tensor.Conv2d(normed, wt, b, 1, 1, r)).ToArray();
            var residual = r is null ? null : Tensor.FromArray(r.ToArray(), r.Shape);
            var y = Ops.GroupNormSiluConv2dNoGrad(x, 8, gamma, beta, 1e-6f, wt, b, residual, intoResidual: residualMode == 2);
            Assert.Equal(residualMode == 2, ReferenceEquals(y, residual));
            Assert.True(expected.AsSpan().SequenceEqual(y.ToArray()), "the fused norm + convolution differs from GroupNormSilu then Conv2d");
            if (residualMode == 1) Assert.True(r!.ToArray().AsSpan().SequenceEqual(residual!.ToArray()), "the residual was written");
        }
    }

    [Fact]
    public void GroupNorm_silu_in_place_has_the_bits_of_the_op()
    {
        var rng = new Rng(35);
        var x = Tensor.RandN([2, 32, 7, 9], rng) * 3.0 + 1.0;
        var gamma = Tensor.RandN([32], rng);
        var beta = Tensor.RandN([32], rng);
        using (Tensor.NoGrad())
        {
            var expected = Tensor.GroupNormSilu(x, 8, gamma, beta, 1e-6f).ToArray();
            var copy = Tensor.FromArray(x.ToArray(), x.Shape);
            var y = Ops.GroupNormInPlaceNoGrad(copy, 8, gamma, beta, 1e-6f, silu: true);
            Assert.Same(copy, y);
            Assert.True(expected.AsSpan().SequenceEqual(y.ToArray()), "in-place GroupNorm + SiLU differs from the op");
        }
        Assert.Throws<InvalidOperationException>(() => Ops.GroupNormInPlaceNoGrad(x, 8, gamma, beta, 1e-6f, silu: true));
    }

    /// <summary>Decoder levels 32 → 16 channels with a shortcut resnet at the top level, 8×8 latents to 32×32 images.</summary>
    internal static AutoencoderKL SmallVae() => new(new AutoencoderKLConfig
    {
        BlockOutChannels = [16, 32, 32], LayersPerBlock = 1, NormNumGroups = 8, LatentChannels = 4,
    }, new Rng(36));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_lean_decode_has_the_bits_of_the_graph_path(bool winograd)
    {
        var vae = SmallVae();
        var z = Tensor.RandN([2, 4, 8, 8], new Rng(37));
        using var _ = winograd ? SmallWinograd() : null;
        var expected = vae.Decode(z).ToArray();                              // gradients on: every op recorded, nothing freed early
        float[] lean;
        using (Tensor.NoGrad())
        using (TensorScope.Begin())                                          // released storage is NaN-poisoned in tests
            lean = vae.Decode(z).ToArray();
        Assert.True(expected.AsSpan().SequenceEqual(lean), "the inference decode differs from the graph path");
        float[] unscoped;
        using (Tensor.NoGrad()) unscoped = vae.Decode(z).ToArray();           // GC storage: nothing released, the same values
        Assert.True(expected.AsSpan().SequenceEqual(unscoped));
    }
}

[Collection(nameof(SerialCollection))]
public class VaeDecodeLiveMemoryTests
{
    [Fact]
    public void The_decode_holds_at_most_the_input_the_shortcut_and_one_temporary_of_a_level()
    {
        // The top level (16 channels at 32×32, batch 2) opens with a 32 → 16 resnet whose input is the 32-channel
        // upsampled tensor X (256 KiB): X, the shortcut's output S (128 KiB) and conv1's output C (128 KiB) are alive
        // at once, 512 KiB. The graph-free path without releases also held X's norm (256 KiB), the second norm and
        // conv2's output (128 KiB each): 1 MiB; norm1 not in place, 768 KiB; the upsample made before its convolution,
        // 576 KiB (its input, the upsampled tensor and the output). Counted after every op by MemoryTrace (the pool's
        // rented bytes).
        var vae = VaeDecodeMemoryTests.SmallVae();
        var z = Tensor.RandN([2, 4, 8, 8], new Rng(38));
        const double x = 2 * 32 * 32 * 32 * 4, s = 2 * 16 * 32 * 32 * 4;
        MemoryTrace.Row[] rows;
        using (KernelSwitches.With(k => k with { WinogradNchwMinChannels = 16 }))
        using (Tensor.NoGrad())
        {
            using (TensorScope.Begin()) vae.Decode(z);                       // warm-up: the pool holds every size
            double before = TensorPool.OutstandingBytes;
            MemoryTrace.Start();
            try
            {
                using (TensorScope.Begin()) vae.Decode(z);
            }
            finally
            {
                rows = MemoryTrace.Stop();
            }
            double peak = rows.Max(r => r.LiveMiB) * 1024 * 1024 - before;
            Assert.True(peak <= x + 2 * s + 32 * 1024, $"the decode held {peak / 1024:F0} KiB of pooled storage at once; its design holds {(x + 2 * s) / 1024:F0} KiB");
            Assert.True(peak >= x + 2 * s, $"peak {peak / 1024:F0} KiB: below the three tensors of the top level's first resnet, so the trace missed them");
        }
    }
}
