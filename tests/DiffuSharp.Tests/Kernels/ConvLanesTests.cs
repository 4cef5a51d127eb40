// ConvLanes.cs, the 3×3 convolution with the batch in the vector lanes: the lane layout round trip, the forward (stride
// 1 and 2) and its transpose against the scalar reference and the adjoint identity, the weight gradient against its definition,
// and the whole Conv2d op on the lane path against the other paths, finite differences and 1 vs 2 threads.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class ConvLanesTests
{
    public static IEnumerable<object[]> Cases() =>
    [
        [1, 1, 1, 1, 1], [3, 5, 13, 7, 7], [17, 3, 8, 2, 3], [16, 8, 9, 14, 14], [33, 2, 5, 5, 17], [32, 16, 16, 7, 7],
    ];

    [Theory]
    [InlineData(1, 3, 1, 1)]
    [InlineData(8, 2, 7, 7)]
    [InlineData(17, 3, 3, 5)]
    [InlineData(32, 5, 14, 14)]
    [InlineData(41, 1, 2, 9)]
    public void Blocked_layout_changes_equal_the_scalar_reference(int batch, int channels, int h, int w)
    {
        var rng = new Rng(15);
        int lanes = ConvLanes.Lanes(batch), hw = h * w;
        var x = new float[batch * channels * hw]; rng.FillNormal(x);
        var bias = new float[channels]; rng.FillNormal(bias);
        var yBase = new float[x.Length]; rng.FillNormal(yBase);
        var yl = new float[channels * hw * lanes]; rng.FillNormal(yl);
        (float[] Xl, float[] Y, float[] YAcc) Run(bool scalar)
        {
            using (KernelSwitches.With(s => s with { LanesScalarTransposes = scalar }))
            {
                var xl = new float[ConvLanes.Floats(channels, h, w, 1, lanes)];
                xl.AsSpan().Fill(float.NaN);
                var y = new float[x.Length];
                var yAcc = (float[])yBase.Clone();
                fixed (float* px = x, pxl = xl, pyl = yl, pb = bias, py = y, pa = yAcc)
                {
                    ConvLanes.ToLanes(px, batch, channels, h, w, 1, lanes, pxl);
                    ConvLanes.FromLanes(pyl, batch, channels, hw, lanes, pb, py, accumulate: false);
                    ConvLanes.FromLanes(pyl, batch, channels, hw, lanes, null, pa, accumulate: true);
                }
                return (xl, y, yAcc);
            }
        }
        var blocked = Run(false);
        var scalar = Run(true);
        Assert.Equal(scalar.Xl, blocked.Xl);
        Assert.Equal(scalar.Y, blocked.Y);
        Assert.Equal(scalar.YAcc, blocked.YAcc);
        // and the reference itself: every image's value at its padded position, zero elsewhere
        int wp = w + 2;
        for (int b = 0; b < lanes; b++)
            for (int c = 0; c < channels; c++)
                for (int yy = 0; yy < h + 2; yy++)
                    for (int xx = 0; xx < w + 2; xx++)
                    {
                        bool inside = b < batch && yy >= 1 && yy <= h && xx >= 1 && xx <= w;
                        float expect = inside ? x[((b * channels + c) * h + yy - 1) * w + xx - 1] : 0f;
                        Assert.Equal(expect, scalar.Xl[((c * (h + 2) + yy) * wp + xx) * lanes + b]);
                    }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Forward_and_its_transpose_match_the_reference(int batch, int cin, int cout, int h, int w)
    {
        var g = new ConvGeometry(cin, h, w, 3, 3, 1, 1);
        if (!ConvLanes.IsSupported(g)) return;                       // AVX-512 only; the other paths cover the rest
        var rng = new Rng(11);
        int lanes = ConvLanes.Lanes(batch), hw = h * w;
        var x = new float[batch * cin * hw]; rng.FillNormal(x);
        var wt = new float[cout * cin * 9]; rng.FillNormal(wt);
        var bias = new float[cout]; rng.FillNormal(bias);
        var expect = new float[batch * cout * hw];
        Im2Col.Conv2dReference(x, wt, bias, batch, cout, g, expect);

        var y = LaneForward(x, wt, bias, batch, cout, g);
        GradCheck.AssertClose(expect, y, 1e-5, 1e-4, "y");

        // the transpose with accumulate: Σ conv(x)·dy = Σ x·(dx − dx0) for the bias-free convolution
        var dy = new float[expect.Length]; rng.FillNormal(dy);
        var dx = new float[x.Length]; rng.FillNormal(dx);
        var dx0 = (float[])dx.Clone();
        var gT = g with { C = cout };
        var dyl = new float[ConvLanes.Floats(cout, h, w, 1, lanes)];
        var dxl = new float[ConvLanes.Floats(cin, h, w, 0, lanes)];
        var wpkT = new float[ConvDirect.PackedWeightFloats(cin, cout, 3)];
        fixed (float* pw = wt, pdy = dy, pdx = dx, pdyl = dyl, pdxl = dxl, pk = wpkT)
        {
            ConvLanes.ToLanes(pdy, batch, cout, h, w, 1, lanes, pdyl);
            ConvDirect.PackWeights(pw, cout, cin, 3, flipTranspose: true, pk);
            ConvLanes.Forward(pdyl, gT, lanes, pk, cin, pdxl);
            ConvLanes.FromLanes(pdxl, batch, cin, hw, lanes, null, pdx, accumulate: true);
        }
        Im2Col.Conv2dReference(x, wt, default, batch, cout, g, expect);
        double lhs = 0, rhs = 0;
        for (int i = 0; i < expect.Length; i++) lhs += (double)expect[i] * dy[i];
        for (int i = 0; i < x.Length; i++) rhs += (double)x[i] * ((double)dx[i] - dx0[i]);
        Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * (1 + Math.Abs(lhs)), $"<conv x, dy> = {lhs}, <x, dx> = {rhs}");
    }

    [Theory]
    [InlineData(1, 1, 1, 2, 2)]
    [InlineData(17, 3, 9, 7, 7)]
    [InlineData(32, 16, 8, 14, 14)]
    [InlineData(20, 5, 11, 9, 6)]
    public void Strided_forward_matches_the_reference(int batch, int cin, int cout, int h, int w)
    {
        var g = new ConvGeometry(cin, h, w, 3, 3, 2, 1);
        if (!ConvLanes.IsStrided(g)) return;                         // AVX-512 only
        var rng = new Rng(17);
        int ohw = g.Ho * g.Wo;
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var wt = new float[cout * cin * 9]; rng.FillNormal(wt);
        var bias = new float[cout]; rng.FillNormal(bias);
        var expect = new float[batch * cout * ohw];
        Im2Col.Conv2dReference(x, wt, bias, batch, cout, g, expect);
        GradCheck.AssertClose(expect, LaneForward(x, wt, bias, batch, cout, g), 1e-5, 1e-4, "y");
    }

    /// <summary>y (batch, cout, Ho, Wo) = the lane forward of x (batch, g.C, H, W) with w and bias; the lane tensors
    /// start as NaN, so a border, spare lane or output left unwritten shows.</summary>
    static float[] LaneForward(float[] x, float[] wt, float[] bias, int batch, int cout, ConvGeometry g)
    {
        int lanes = ConvLanes.Lanes(batch), ohw = g.Ho * g.Wo;
        var xl = new float[ConvLanes.Floats(g.C, g.H, g.W, 1, lanes)];
        var yl = new float[ConvLanes.Floats(cout, g.Ho, g.Wo, 0, lanes)];
        xl.AsSpan().Fill(float.NaN);
        yl.AsSpan().Fill(float.NaN);
        var wpk = new float[ConvDirect.PackedWeightFloats(cout, g.C, 3)];
        var y = new float[batch * cout * ohw];
        fixed (float* px = x, pw = wt, pb = bias, pxl = xl, pyl = yl, pk = wpk, py = y)
        {
            ConvLanes.ToLanes(px, batch, g.C, g.H, g.W, 1, lanes, pxl);
            ConvDirect.PackWeights(pw, cout, g.C, 3, flipTranspose: false, pk);
            ConvLanes.Forward(pxl, g, lanes, pk, cout, pyl);
            ConvLanes.FromLanes(pyl, batch, cout, ohw, lanes, pb, py, accumulate: false);
        }
        for (int i = 0; i < xl.Length; i++) Assert.False(float.IsNaN(xl[i]), $"lane tensor element {i} not written");
        return y;
    }

    [Fact]
    public void Strided_conv2d_on_the_lane_path_matches_the_other_paths_and_finite_differences()
    {
        if (!ConvLanes.IsStrided(new ConvGeometry(5, 9, 9, 3, 3, 2, 1))) return;
        var lanesPath = RunConv(true, Parallelism.MaxThreads, 18, 5, 7, 9, 9, stride: 2);
        var other = RunConv(false, Parallelism.MaxThreads, 18, 5, 7, 9, 9, stride: 2);
        Assert.Equal(18 * 7 * 5 * 5, lanesPath[0].Length);                     // (18, 7, 5, 5)
        string[] names = ["y", "dx", "dW", "db"];
        for (int i = 0; i < 4; i++) GradCheck.AssertClose(other[i], lanesPath[i], 1e-5, 1e-4, names[i]);

        using (KernelSwitches.With(s => s with { LanesForced = true }))
        {
            var rng = new Rng(19);
            GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], 2, 1), [GradCheck.Randn(rng, 16, 3, 6, 5), GradCheck.Randn(rng, 4, 3, 3, 3), GradCheck.Randn(rng, 4)], rng);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Weight_grad_adds_the_definition(int batch, int cin, int cout, int h, int w)
    {
        var g = new ConvGeometry(cin, h, w, 3, 3, 1, 1);
        if (!ConvLanes.IsSupported(g)) return;
        var rng = new Rng(12);
        int lanes = ConvLanes.Lanes(batch);
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var dy = new float[batch * cout * h * w]; rng.FillNormal(dy);
        var dw = new float[cout * cin * 9]; rng.FillNormal(dw);
        var expect = ConvReference.WeightGrad3x3(dw, x, dy, batch, cin, cout, h, w);
        var xl = new float[ConvLanes.Floats(cin, h, w, 1, lanes)];
        var dyl = new float[ConvLanes.Floats(cout, h, w, 1, lanes)];
        fixed (float* px = x, pdy = dy, pdw = dw, pxl = xl, pdyl = dyl)
        {
            ConvLanes.ToLanes(px, batch, cin, h, w, 1, lanes, pxl);
            ConvLanes.ToLanes(pdy, batch, cout, h, w, 1, lanes, pdyl);
            ConvLanes.WeightGrad(pxl, pdyl, g, lanes, cout, pdw);
        }
        for (int i = 0; i < dw.Length; i++)
            Assert.True(Math.Abs(dw[i] - expect[i]) <= 1e-4 * (1 + Math.Abs(expect[i])), $"dW[{i}]: expected {expect[i]}, got {dw[i]}");
    }

    /// <summary>y, dx, dW and db of Conv2d (3×3, pad 1, stride 1 or 2) with the lane path forced on or turned off,
    /// and with or without the Winograd kernel on it.</summary>
    internal static float[][] RunConv(bool lanes, int threads, int batch, int cin, int cout, int h, int w, int groupBytes = 16 << 20,
        bool winograd = true, int stride = 1)
    {
        int oldThreads = Parallelism.MaxThreads;
        using var switches = KernelSwitches.With(s => s with
        {
            LanesGroupBytes = groupBytes, LanesForced = lanes, LanesDisabled = !lanes, WinogradDisabled = !winograd,
        });
        try
        {
            Parallelism.MaxThreads = threads;
            var rng = new Rng(13);
            var x = GradCheck.Randn(rng, batch, cin, h, w).RequireGrad();
            var wt = GradCheck.Randn(rng, cout, cin, 3, 3).RequireGrad();
            var b = GradCheck.Randn(rng, cout).RequireGrad();
            var y = Tensor.Conv2d(x, wt, b, stride, 1);
            var up = GradCheck.Randn(rng, y.Shape);
            (y * up).Sum().Backward();
            return [y.ToArray(), x.Grad!.ToArray(), wt.Grad!.ToArray(), b.Grad!.ToArray()];
        }
        finally { Parallelism.MaxThreads = oldThreads; }
    }

    [Theory]
    [InlineData(32, 16, 24, 7, 7)]
    [InlineData(20, 5, 3, 14, 14)]
    [InlineData(2, 3, 9, 4, 5)]
    public void Conv2d_on_the_lane_path_matches_the_other_paths(int batch, int cin, int cout, int h, int w)
    {
        if (!ConvLanes.IsSupported(new ConvGeometry(cin, h, w, 3, 3, 1, 1))) return;
        var lanes = RunConv(true, Parallelism.MaxThreads, batch, cin, cout, h, w);
        var other = RunConv(false, Parallelism.MaxThreads, batch, cin, cout, h, w);
        string[] names = ["y", "dx", "dW", "db"];
        for (int i = 0; i < 4; i++) GradCheck.AssertClose(other[i], lanes[i], 1e-5, 1e-4, names[i]);
    }

    [Theory]
    [InlineData(16 << 20)]      // the batch in one group
    [InlineData(1)]             // groups of 16 images: 16 + 3
    public void Conv2d_on_the_lane_path_gives_bit_identical_results_on_one_and_two_threads(int groupBytes)
    {
        if (!ConvLanes.IsSupported(new ConvGeometry(6, 7, 7, 3, 3, 1, 1))) return;
        var one = RunConv(true, 1, 19, 6, 10, 7, 7, groupBytes);
        var two = RunConv(true, 2, 19, 6, 10, 7, 7, groupBytes);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }

    [Theory]
    [InlineData(64, 7, 7, 32, 32)]      // 331 KB per 16 images: the whole batch
    [InlineData(64, 14, 14, 300, 256)]  // 1 MiB per 16 images: 16 vectors of images fill 16 MiB
    [InlineData(32, 28, 28, 64, 64)]
    [InlineData(8, 7, 7, 5, 5)]
    [InlineData(4, 5, 5, 100, 100)]
    public void Groups_are_the_whole_batch_or_whole_vectors_of_images_that_fit(int channels, int h, int w, int batch, int expect) =>
        Assert.Equal(expect, ConvLanes.GroupImages(channels, h, w, batch));

    [Theory]
    [InlineData(35, 4, 6, 7, 7)]
    [InlineData(33, 3, 5, 14, 14)]
    public void Conv2d_on_the_lane_path_in_groups_of_images_matches_the_other_paths(int batch, int cin, int cout, int h, int w)
    {
        if (!ConvLanes.IsSupported(new ConvGeometry(cin, h, w, 3, 3, 1, 1))) return;
        var grouped = RunConv(true, Parallelism.MaxThreads, batch, cin, cout, h, w, groupBytes: 1);   // 16 + 16 + rest
        var other = RunConv(false, Parallelism.MaxThreads, batch, cin, cout, h, w);
        string[] names = ["y", "dx", "dW", "db"];
        for (int i = 0; i < 4; i++) GradCheck.AssertClose(other[i], grouped[i], 1e-5, 1e-4, names[i]);
    }

    [Fact]
    public void Conv2d_on_the_lane_path_writes_a_fresh_input_gradient_and_adds_to_an_existing_one()
    {
        if (!ConvLanes.IsSupported(new ConvGeometry(3, 7, 7, 3, 3, 1, 1))) return;
        using (KernelSwitches.With(s => s with { LanesForced = true }))
        {
            var rng = new Rng(16);
            var x = GradCheck.Randn(rng, 18, 3, 7, 7).RequireGrad();
            var wt = GradCheck.Randn(rng, 4, 3, 3, 3).RequireGrad();
            var up = GradCheck.Randn(rng, 18, 4, 7, 7);
            (Tensor.Conv2d(x, wt, null, 1, 1) * up).Sum().Backward();          // x.Grad written fresh
            var once = x.Grad!.ToArray();
            (Tensor.Conv2d(x, wt, null, 1, 1) * up).Sum().Backward();          // and then added to
            var twice = x.Grad!.ToArray();
            for (int i = 0; i < once.Length; i++) Assert.Equal(2 * once[i], twice[i], 1e-4f * (1 + Math.Abs(2 * once[i])));
            // a non-leaf input: its gradient flows on into x through the fresh buffer
            x.Grad = null;
            var h = x * 2f;
            (Tensor.Conv2d(h, wt, null, 1, 1) * up).Sum().Backward();
            for (int i = 0; i < once.Length; i++) Assert.Equal(2 * once[i], x.Grad!.Data[i], 1e-4f * (1 + Math.Abs(2 * once[i])));
        }
    }

    [Fact]
    public void Conv2d_on_the_lane_path_matches_finite_differences()
    {
        if (!ConvLanes.IsSupported(new ConvGeometry(3, 5, 4, 3, 3, 1, 1))) return;
        using (KernelSwitches.With(s => s with { LanesForced = true }))
        {
            var rng = new Rng(14);
            var x = GradCheck.Randn(rng, 17, 3, 5, 4);
            var wt = GradCheck.Randn(rng, 2, 3, 3, 3);
            var b = GradCheck.Randn(rng, 2);
            GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], 1, 1), [x, wt, b], rng);
        }
    }

    [Theory]
    [InlineData(16, 8, 8, 7, 7, false, false)]     // 7×7 → 14×14 on Winograd
    [InlineData(32, 16, 16, 14, 14, false, false)] // 14×14 → 28×28, the mnist-s decoder's
    [InlineData(24, 4, 6, 5, 3, false, false)]     // spare lanes, a wide image
    [InlineData(17, 3, 8, 3, 4, true, false)]      // the direct lane kernel, one image past the blocks of eight
    [InlineData(16, 8, 8, 7, 7, false, true)]      // the one-float-at-a-time layout change
    public void Upsampled_convolution_has_the_bits_of_upsampling_then_convolving(int batch, int c, int cout, int h, int w, bool noWinograd, bool scalar)
    {
        var rng = new Rng(16);
        var x = Tensor.RandN([batch, c, h, w], rng);
        var wt = Tensor.RandN([cout, c, 3, 3], rng);
        var b = Tensor.RandN([cout], rng);
        // the lanes forced, and on two-halves Vector512 where the CPU has no AVX-512
        using (KernelSwitches.With(s => s with { LanesForced = true, WinogradDisabled = noWinograd, LanesScalarTransposes = scalar, LanesEmulated512 = true }))
        {
            using (Tensor.NoGrad())
            {
                Assert.True(Ops.UpsampleConvFuses(x, cout));
                var expected = Tensor.Conv2d(x.UpsampleNearest2x(), wt, b, 1, 1).ToArray();
                var fused = Ops.UpsampleConv2dNoGrad(x, wt, b).ToArray();
                Assert.True(expected.AsSpan().SequenceEqual(fused), "upsample + conv differs from the fused result");
            }
            Assert.False(Ops.UpsampleConvFuses(x, cout));                    // gradients on: the two ops run
            Assert.Throws<InvalidOperationException>(() => Ops.UpsampleConv2dNoGrad(x, wt, b));
        }
    }
}
