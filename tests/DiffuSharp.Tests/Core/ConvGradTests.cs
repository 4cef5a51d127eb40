// Conv2d, Conv1d, AvgPool2x2 and UpsampleNearest2x: forward against the direct scalar convolution (and a few
// values from PyTorch 1.13), backward against central finite differences, shape errors, and bit-identical
// results for 1 and 2 threads and for any chunking of the batch.
using DiffuSharp;
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class ConvGradTests
{
    public static IEnumerable<object[]> ForwardCases()
    {
        (int, int)[] sizes = [(1, 1), (3, 3), (5, 5), (17, 17), (3, 17), (5, 1)];
        (int, int)[] channels = [(1, 3), (3, 4), (4, 1)];
        int n = 0;
        foreach (int k in new[] { 1, 2, 3, 4 })
            foreach (int s in new[] { 1, 2 })
                foreach (int p in new[] { 0, 1, 2 })
                    foreach (var (h, w) in sizes)
                    {
                        if (h + 2 * p < k || w + 2 * p < k) continue;
                        var (cin, cout) = channels[n % 3];
                        yield return [n++ % 2 == 0 ? 1 : 3, cin, cout, h, w, k, s, p];
                    }
    }

    [Theory, MemberData(nameof(ForwardCases))]
    public void Conv2d_forward_matches_direct_convolution(int batch, int cin, int cout, int h, int w, int k, int s, int p)
    {
        var rng = new Rng(30);
        var x = GradCheck.Randn(rng, batch, cin, h, w);
        var wt = GradCheck.Randn(rng, cout, cin, k, k);
        var b = GradCheck.Randn(rng, cout);
        var g = new ConvGeometry(cin, h, w, k, k, s, p);
        var y = Tensor.Conv2d(x, wt, b, s, p);
        Assert.Equal(new[] { batch, cout, g.Ho, g.Wo }, y.Shape);
        var expect = new float[y.Count];
        Im2Col.Conv2dReference(x.Data, wt.Data, b.Data, batch, cout, g, expect);
        GradCheck.AssertClose(expect, y.ToArray(), 1e-5, 1e-5, "y");

        var yNoBias = Tensor.Conv2d(x, wt, null, s, p);
        Im2Col.Conv2dReference(x.Data, wt.Data, default, batch, cout, g, expect);
        GradCheck.AssertClose(expect, yNoBias.ToArray(), 1e-5, 1e-5, "y without bias");
    }

    /// <summary>The residual is added as the output is written, with the bits of adding it afterwards, on every
    /// forward path: Winograd lanes (16 images, 8+ channels), direct lanes, the NCHW direct kernel, im2col + GEMM, 1×1.</summary>
    [Theory]
    [InlineData(16, 8, 8, 9, 3, 1)]      // Winograd on the lane tensors
    [InlineData(16, 4, 3, 7, 3, 1)]      // direct lane kernel
    [InlineData(32, 16, 16, 6, 3, 1)]    // two lane groups
    [InlineData(2, 3, 5, 9, 3, 1)]       // NCHW direct / im2col
    [InlineData(3, 4, 6, 5, 1, 0)]       // 1×1 through GEMM
    [InlineData(2, 3, 4, 8, 4, 1)]       // 4×4 kernel through im2col + GEMM
    public void Conv2d_with_residual_equals_conv_plus_residual_bit_for_bit(int batch, int cin, int cout, int size, int k, int p)
    {
        var rng = new Rng(44);
        var x = GradCheck.Randn(rng, batch, cin, size, size);
        var wt = GradCheck.Randn(rng, cout, cin, k, k);
        var b = GradCheck.Randn(rng, cout);
        int o = size + 2 * p - k + 1;
        var r = GradCheck.Randn(rng, batch, cout, o, o);
        var fused = Tensor.Conv2d(x, wt, b, 1, p, r).ToArray();
        var apart = (r + Tensor.Conv2d(x, wt, b, 1, p)).ToArray();
        Assert.True(fused.AsSpan().SequenceEqual(apart), "residual + conv differs from the fused result");
    }

    [Fact]
    public void Conv2d_with_residual_passes_finite_differences_on_the_lane_kernel()
    {
        var rng = new Rng(45);
        var x = GradCheck.Randn(rng, 16, 8, 5, 5).RequireGrad();
        var wt = GradCheck.Randn(rng, 8, 8, 3, 3).RequireGrad();
        var b = GradCheck.Randn(rng, 8).RequireGrad();
        var r = GradCheck.Randn(rng, 16, 8, 5, 5).RequireGrad();
        GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], 1, 1, t[3]), [x, wt, b, r], rng);
    }

    [Theory]
    [InlineData(3, 5, 7, 11, true)]     // per image: bias, product, residual
    [InlineData(4, 64, 64, 196, true)]  // an attention block's proj_out, images split between threads
    [InlineData(2, 6, 4, 9, false)]     // without a bias
    public void Conv1d_with_residual_equals_conv_plus_residual_bit_for_bit_and_passes_finite_differences(int batch, int cin, int cout, int len, bool withBias)
    {
        var rng = new Rng(47);
        var x = GradCheck.Randn(rng, batch, cin, len);
        var wt = GradCheck.Randn(rng, cout, cin, 1);
        var b = withBias ? GradCheck.Randn(rng, cout) : null;
        var r = GradCheck.Randn(rng, batch, cout, len);
        var fused = Tensor.Conv1d(x, wt, b, r).ToArray();
        var apart = (r + Tensor.Conv1d(x, wt, b)).ToArray();
        Assert.True(fused.AsSpan().SequenceEqual(apart), "residual + conv1d differs from the fused result");
        if (len > 20) return;
        Tensor[] leaves = withBias ? [x.RequireGrad(), wt.RequireGrad(), b!.RequireGrad(), r.RequireGrad()] : [x.RequireGrad(), wt.RequireGrad(), r.RequireGrad()];
        GradCheck.Check(t => withBias ? Tensor.Conv1d(t[0], t[1], t[2], t[3]) : Tensor.Conv1d(t[0], t[1], null, t[2]), leaves, rng);
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Conv1d(x, wt, b, GradCheck.Randn(rng, batch, cout, len + 1)));
        Assert.Contains($"residual must have the output's shape ({batch}, {cout}, {len})", ex.Message);
    }

    [Fact]
    public void Conv2d_residual_of_the_wrong_shape_is_a_clear_error()
    {
        var rng = new Rng(46);
        var x = GradCheck.Randn(rng, 2, 3, 6, 6);
        var wt = GradCheck.Randn(rng, 4, 3, 3, 3);
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, wt, null, 1, 1, GradCheck.Randn(rng, 2, 4, 5, 6)));
        Assert.Contains("residual must have the output's shape (2, 4, 6, 6)", ex.Message);
    }

    [Theory]
    [InlineData(1, 3, 1, 1)]
    [InlineData(3, 1, 1, 0)]
    [InlineData(2, 5, 1, 2)]
    [InlineData(5, 3, 2, 1)]
    public void Conv2d_rectangular_kernels_match_direct_convolution(int kh, int kw, int s, int p)
    {
        var rng = new Rng(36);
        var x = GradCheck.Randn(rng, 2, 3, 7, 6);
        var wt = GradCheck.Randn(rng, 4, 3, kh, kw);
        var b = GradCheck.Randn(rng, 4);
        var g = new ConvGeometry(3, 7, 6, kh, kw, s, p);
        var y = Tensor.Conv2d(x, wt, b, s, p);
        Assert.Equal(new[] { 2, 4, g.Ho, g.Wo }, y.Shape);
        var expect = new float[y.Count];
        Im2Col.Conv2dReference(x.Data, wt.Data, b.Data, 2, 4, g, expect);
        GradCheck.AssertClose(expect, y.ToArray(), 1e-5, 1e-5, "y");
        GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], s, p), [x, wt, b], rng);
    }

    [Fact]
    public void Conv2d_matches_pytorch_values_stride2_pad1()
    {
        // torch 1.13: x = arange(50).reshape(1,2,5,5)/10, w = arange(54).reshape(3,2,3,3)/100 − 0.2,
        // b = [0.1, −0.2, 0.3], F.conv2d(x, w, b, stride=2, padding=1)
        var x = Tensor.Arange(0, 50).Reshape(1, 2, 5, 5) / 10.0;
        var w = Tensor.Arange(0, 54).Reshape(3, 2, 3, 3) / 100.0 - 0.2;
        var b = Tensor.FromArray([0.1f, -0.2f, 0.3f]);
        float[] expect = [-0.596f, -1.212f, -0.972f, -2.138f, -3.767f, -2.846f, -2.468f, -4.164f, -3.036f,
            1.336f, 2.160f, 1.392f, 2.530f, 3.871f, 2.470f, 1.624f, 2.448f, 1.488f,
            4.068f, 6.332f, 4.556f, 7.998f, 12.309f, 8.586f, 6.516f, 9.860f, 6.812f];
        GradCheck.AssertClose(expect, Tensor.Conv2d(x, w, b, stride: 2, padding: 1).ToArray(), 1e-5, 1e-5, "y");
    }

    [Fact]
    public void Conv2d_accepts_non_contiguous_input()
    {
        var rng = new Rng(31);
        var xt = GradCheck.Randn(rng, 2, 5, 5, 3);                 // (B, H, W, C)
        var x = xt.Permute(0, 3, 1, 2);                            // (B, C, H, W) view
        var w = GradCheck.Randn(rng, 4, 3, 3, 3);
        var expect = Tensor.Conv2d(x.Contiguous(), w, null, 1, 1).ToArray();
        Assert.Equal(expect, Tensor.Conv2d(x, w, null, 1, 1).ToArray());
    }

    [Theory]
    [InlineData(2, 3, 4, 5, 5, 3, 1, 1)]   // "same": dx through the flipped-kernel convolution
    [InlineData(2, 2, 3, 6, 7, 5, 1, 2)]   // "same" 5×5
    [InlineData(2, 3, 2, 2, 1, 3, 1, 1)]   // "same" on images smaller than the kernel
    [InlineData(3, 2, 3, 7, 5, 3, 2, 1)]
    [InlineData(2, 4, 3, 5, 3, 1, 1, 0)]   // pointwise: no im2col
    [InlineData(1, 3, 2, 3, 5, 1, 2, 1)]   // 1×1 with stride and padding goes through im2col
    [InlineData(2, 2, 3, 6, 5, 2, 2, 0)]
    [InlineData(2, 1, 2, 5, 5, 4, 1, 2)]
    [InlineData(3, 3, 2, 1, 3, 3, 2, 2)]
    public void Conv2d_backward_matches_finite_differences(int batch, int cin, int cout, int h, int w, int k, int s, int p)
    {
        var rng = new Rng(32);
        GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], s, p),
            [GradCheck.Randn(rng, batch, cin, h, w), GradCheck.Randn(rng, cout, cin, k, k), GradCheck.Randn(rng, cout)], rng);
        GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], null, s, p),
            [GradCheck.Randn(rng, batch, cin, h, w), GradCheck.Randn(rng, cout, cin, k, k)], rng);
    }

    [Fact]
    public void Conv2d_gradient_reaches_only_inputs_that_require_it_and_accumulates()
    {
        var rng = new Rng(33);
        var x = GradCheck.Randn(rng, 2, 3, 5, 5).RequireGrad();
        var w = GradCheck.Randn(rng, 4, 3, 3, 3);
        var b = GradCheck.Randn(rng, 4);
        var up = GradCheck.Randn(rng, 2, 4, 5, 5);
        (Tensor.Conv2d(x, w, b, 1, 1) * up).Sum().Backward();
        Assert.Null(w.Grad);
        Assert.Null(b.Grad);
        var once = x.Grad!.ToArray();
        (Tensor.Conv2d(x, w, b, 1, 1) * up).Sum().Backward();     // gradients add up over backward calls
        var twice = x.Grad!.ToArray();
        for (int i = 0; i < once.Length; i++) Assert.Equal(2 * once[i], twice[i], 4);
    }

    [Fact]
    public void Conv1d_matches_pointwise_conv2d_and_finite_differences()
    {
        var rng = new Rng(34);
        var x = GradCheck.Randn(rng, 3, 5, 7);
        var w = GradCheck.Randn(rng, 4, 5, 1);
        var b = GradCheck.Randn(rng, 4);
        var y = Tensor.Conv1d(x, w, b);
        Assert.Equal(new[] { 3, 4, 7 }, y.Shape);
        var expect = new float[y.Count];
        Im2Col.Conv2dReference(x.Data, w.Data, b.Data, 3, 4, new ConvGeometry(5, 1, 7, 1, 1, 1, 0), expect);
        GradCheck.AssertClose(expect, y.ToArray(), 1e-5, 1e-5, "y");
        GradCheck.Check(t => Tensor.Conv1d(t[0], t[1], t[2]), [x, w, b], rng);
        GradCheck.Check(t => Tensor.Conv1d(t[0], t[1]), [GradCheck.Randn(rng, 2, 3, 1), GradCheck.Randn(rng, 5, 3, 1)], rng);
    }

    [Fact]
    public void Pointwise_convs_sharing_an_intermediate_input_match_finite_differences()
    {
        // The first pointwise backward writes the intermediate's fresh gradient, the second adds to it; dW sums the
        // images in place. Batch 5, odd sizes, 2-D and 1-D.
        var rng = new Rng(37);
        GradCheck.Check(t =>
        {
            var a = t[0] * 1.5;                                   // (5, 3, 4, 7), non-leaf
            return Tensor.Conv2d(a, t[1], t[3], 1, 0) + Tensor.Conv2d(a, t[2], null, 1, 0);
        }, [GradCheck.Randn(rng, 5, 3, 4, 7), GradCheck.Randn(rng, 6, 3, 1, 1), GradCheck.Randn(rng, 6, 3, 1, 1), GradCheck.Randn(rng, 6)], rng);
        GradCheck.Check(t =>
        {
            var a = t[0] * 0.5;                                   // (5, 9, 13)
            return Tensor.Conv1d(a, t[1], null) - Tensor.Conv1d(a, t[2], null);
        }, [GradCheck.Randn(rng, 5, 9, 13), GradCheck.Randn(rng, 17, 9, 1), GradCheck.Randn(rng, 17, 9, 1)], rng);
    }

    [Fact]
    public void AvgPool2x2_matches_pytorch_and_floors_odd_sizes()
    {
        var x = Tensor.Arange(0, 16).Reshape(1, 1, 4, 4);
        Assert.Equal(new float[] { 2.5f, 4.5f, 10.5f, 12.5f }, x.AvgPool2x2().ToArray());
        var odd = Tensor.Arange(0, 2 * 5 * 7).Reshape(1, 2, 5, 7).AvgPool2x2();   // F.avg_pool2d floors: (1, 2, 2, 3)
        Assert.Equal(new[] { 1, 2, 2, 3 }, odd.Shape);
        Assert.Equal(new float[] { 4, 6, 8, 18, 20, 22, 39, 41, 43, 53, 55, 57 }, odd.ToArray());
    }

    [Fact]
    public void UpsampleNearest2x_repeats_each_value_into_a_2x2_block()
    {
        var y = Tensor.Arange(0, 6).Reshape(1, 1, 2, 3).UpsampleNearest2x();
        Assert.Equal(new[] { 1, 1, 4, 6 }, y.Shape);
        Assert.Equal(new float[] { 0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5 }, y.ToArray());
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(5, 7)]
    [InlineData(3, 19)]
    [InlineData(2, 34)]
    public void Pool_and_upsample_backward_match_finite_differences(int h, int w)
    {
        var rng = new Rng(35);
        GradCheck.Check(t => t[0].AvgPool2x2(), [GradCheck.Randn(rng, 2, 3, h, w)], rng);
        GradCheck.Check(t => t[0].UpsampleNearest2x(), [GradCheck.Randn(rng, 2, 3, h, w)], rng);
    }

    [Fact]
    public void Shape_errors_name_the_shapes()
    {
        var w = Tensor.Zeros(8, 3, 3, 3);
        var e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(2, 4, 5, 5), w));
        Assert.Contains("(B, 3, H, W)", e.Message);
        Assert.Contains("(2, 4, 5, 5)", e.Message);
        Assert.Contains("(8, 3, 3, 3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(4, 5, 5), w));
        Assert.Contains("(4, 5, 5)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(1, 3, 5, 5), Tensor.Zeros(8, 3, 3)));
        Assert.Contains("(8, 3, 3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(1, 3, 5, 5), w, Tensor.Zeros(7)));
        Assert.Contains("(8)", e.Message);
        Assert.Contains("(7)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(1, 3, 2, 5), w));
        Assert.Contains("(1, 3, 2, 5)", e.Message);
        Assert.ThrowsAny<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(1, 3, 5, 5), w, null, stride: 0));
        Assert.ThrowsAny<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(1, 3, 5, 5), w, null, padding: -1));

        e = Assert.Throws<ArgumentException>(() => Tensor.Conv1d(Tensor.Zeros(2, 3, 7), Tensor.Zeros(4, 3, 3)));
        Assert.Contains("(4, 3, 3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Conv1d(Tensor.Zeros(2, 5, 7), Tensor.Zeros(4, 3, 1)));
        Assert.Contains("(B, 3, L)", e.Message);
        Assert.Contains("(2, 5, 7)", e.Message);

        e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3, 4).AvgPool2x2());
        Assert.Contains("(2, 3, 4)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3, 1, 4).AvgPool2x2());
        Assert.Contains("(2, 3, 1, 4)", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3, 4).UpsampleNearest2x());
        Assert.Contains("(3, 4)", e.Message);
    }
}

/// <summary>Tests that change the process-wide Parallelism.MaxThreads or the conv chunk size run one at a time.</summary>
[Collection("Parallelism")]
public class ConvDeterminismTests
{
    /// <summary>Runs conv (3×3 pad 1 or 1×1) + pool + upsample forward and backward; returns y and every gradient.</summary>
    static float[][] Run(int k, int pad, int stride)
    {
        var rng = new Rng(40);
        // big enough (≥ 4M multiply-adds per GEMM for 3×3) that the GEMM and the im2col/col2im splits really run on 2 threads
        var x = GradCheck.Randn(rng, 3, 16, 17, 17).RequireGrad();
        var w = GradCheck.Randn(rng, 40, 16, k, k).RequireGrad();
        var b = GradCheck.Randn(rng, 40).RequireGrad();
        var y = Tensor.Conv2d(x, w, b, stride, pad);
        var z = y.AvgPool2x2().UpsampleNearest2x();
        (z * GradCheck.Randn(rng, z.Shape)).Sum().Backward();
        return [y.ToArray(), z.ToArray(), x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray()];
    }

    static float[][] With(int threads, int chunkFloats, int k, int pad, int stride, int saveColFloats = 1 << 22)
    {
        int oldThreads = Parallelism.MaxThreads;
        using var switches = KernelSwitches.With(s => s with { ConvChunkFloats = chunkFloats, ConvSaveColFloats = saveColFloats });
        try
        {
            Parallelism.MaxThreads = threads;
            return Run(k, pad, stride);
        }
        finally { Parallelism.MaxThreads = oldThreads; }
    }

    [Theory]
    [InlineData(3, 1, 1)]
    [InlineData(3, 1, 2)]
    public void Saved_and_recomputed_column_matrices_give_identical_gradients(int k, int pad, int stride)
    {
        foreach (int chunk in new[] { 1 << 21, 1 })
        {
            var saved = With(Parallelism.MaxThreads, chunk, k, pad, stride, saveColFloats: int.MaxValue);
            var recomputed = With(Parallelism.MaxThreads, chunk, k, pad, stride, saveColFloats: 0);
            for (int i = 0; i < saved.Length; i++) Assert.Equal(saved[i], recomputed[i]);
        }
    }

    [Theory]
    [InlineData(3, 1, 1)]
    [InlineData(3, 1, 2)]
    [InlineData(1, 0, 1)]
    public void One_and_two_threads_give_bit_identical_outputs_and_gradients(int k, int pad, int stride)
    {
        foreach (int chunk in new[] { 1 << 21, 1 })   // whole batch in one chunk; one image per chunk
            foreach (int save in new[] { 0, int.MaxValue })
            {
                var one = With(1, chunk, k, pad, stride, save);
                var two = With(2, chunk, k, pad, stride, save);
                for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
            }
    }

    [Fact]
    public void Chunking_the_batch_changes_nothing_but_rounding()
    {
        var whole = With(Parallelism.MaxThreads, 1 << 21, 3, 1, 1);
        var single = With(Parallelism.MaxThreads, 1, 3, 1, 1);
        for (int i = 0; i < whole.Length; i++) GradCheck.AssertClose(whole[i], single[i], 1e-5, 1e-4, $"tensor {i}");
    }
}
