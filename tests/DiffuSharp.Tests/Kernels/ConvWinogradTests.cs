// ConvWinograd.cs, the F(2×2, 3×3) Winograd convolution on lane tensors: forward and transpose against the
// double-precision reference (odd sides read only the tensor's own padding), and the Conv2d op on it (at least 8
// channels in and out, where ConvWinograd.Pays) against the direct lane kernel, finite differences and 1 vs 2 threads.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class ConvWinogradTests
{
    public static IEnumerable<object[]> Cases() =>
    [
        [1, 1, 1, 1, 1], [3, 5, 13, 7, 7], [17, 3, 8, 2, 3], [16, 8, 9, 14, 14], [33, 2, 5, 5, 17], [32, 16, 16, 7, 7],
        [32, 40, 24, 8, 8], [20, 7, 17, 28, 28], [2, 130, 3, 3, 4],
    ];

    /// <summary>Floats after the lane tensor, filled with NaN: reading them would poison an output.</summary>
    const int Guard = 256;

    /// <summary>conv(x, w) through the kernel: x (batch, cin, h, w) → y (batch, outC, h, w), or with
    /// flipTranspose the transposed convolution of x (batch, cout, h, w) → (batch, cin, h, w).</summary>
    static float[] Run(float[] x, float[] wt, int batch, int cin, int cout, int h, int w, bool flipTranspose)
    {
        int lanes = ConvLanes.Lanes(batch), hw = h * w;
        int inC = flipTranspose ? cout : cin, outC = flipTranspose ? cin : cout;
        var g = new ConvGeometry(inC, h, w, 3, 3, 1, 1);
        int hp = ConvWinograd.PaddedSize(h), wp = ConvWinograd.PaddedSize(w);
        var xl = new float[inC * hp * wp * lanes + Guard];
        xl.AsSpan().Fill(float.NaN);                                     // the padding must be written, the guard never read
        var yl = new float[ConvLanes.Floats(outC, h, w, 0, lanes)];
        yl.AsSpan().Fill(float.NaN);                                     // every output must be written
        var wtf = new float[ConvWinograd.TransformedWeightFloats(outC, inC)];
        var y = new float[batch * outC * hw];
        fixed (float* px = x, pw = wt, pxl = xl, pyl = yl, pk = wtf, py = y)
        {
            ConvLanes.ToLanes(px, batch, inC, h, w, 1, hp, wp, lanes, pxl);
            ConvWinograd.TransformWeights(pw, cout, cin, flipTranspose, pk);
            ConvWinograd.Forward(pxl, g, lanes, pk, outC, pyl);
            ConvLanes.FromLanes(pyl, batch, outC, hw, lanes, null, py, accumulate: false);
        }
        return y;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Forward_and_its_transpose_match_the_reference(int batch, int cin, int cout, int h, int w)
    {
        var g = new ConvGeometry(cin, h, w, 3, 3, 1, 1);
        if (!ConvWinograd.IsSupported(g)) return;                    // AVX-512 only; the other paths cover the rest
        var rng = new Rng(21);
        var x = new float[batch * cin * h * w]; rng.FillNormal(x);
        var wt = new float[cout * cin * 9]; rng.FillNormal(wt);
        var expect = new float[batch * cout * h * w];
        Im2Col.Conv2dReference(x, wt, default, batch, cout, g, expect);
        var y = Run(x, wt, batch, cin, cout, h, w, flipTranspose: false);
        // error against the double-precision reference, relative to the outputs' scale √(9·cin) (unit normals): float
        // rounding of products and sums over up to 9·130 terms; measured at most 1.3e-6 here (F(4×4, 3×3), dropped,
        // reached 2e-5)
        double scale = Math.Sqrt(9.0 * cin), worst = 0;
        for (int i = 0; i < y.Length; i++) worst = Math.Max(worst, Math.Abs(y[i] - expect[i]) / scale);
        Assert.True(worst <= 4e-6, $"largest error {worst:G3} of the output scale");

        // the transpose: Σ conv(x)·dy = Σ x·convᵀ(dy)
        var dy = new float[expect.Length]; rng.FillNormal(dy);
        var dx = Run(dy, wt, batch, cin, cout, h, w, flipTranspose: true);
        double lhs = 0, rhs = 0;
        for (int i = 0; i < expect.Length; i++) lhs += (double)expect[i] * dy[i];
        for (int i = 0; i < x.Length; i++) rhs += (double)x[i] * dx[i];
        Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * (1 + Math.Abs(lhs)), $"<conv x, dy> = {lhs}, <x, convT dy> = {rhs}");
    }

    [Fact]
    public void Each_output_is_its_3x3_neighbourhood_only()
    {
        // one input pixel at a time, next to each border of images of odd sides: the output is the
        // mirrored kernel around it and zero elsewhere, so no tile mixes pixels of different rows, columns, planes or images
        int batch = 17, h = 5, w = 7;
        var g = new ConvGeometry(1, h, w, 3, 3, 1, 1);
        if (!ConvWinograd.IsSupported(g)) return;
        var wt = new float[9];
        for (int t = 0; t < 9; t++) wt[t] = t + 1;
        foreach (var (b, py, px) in new[] { (0, 0, 0), (16, 4, 6), (3, 4, 0), (9, 0, 6), (5, 2, 3) })
        {
            var x = new float[batch * h * w];
            x[(b * h + py) * w + px] = 1f;
            var y = Run(x, wt, batch, 1, 1, h, w, flipTranspose: false);
            for (int bb = 0; bb < batch; bb++)
                for (int yy = 0; yy < h; yy++)
                    for (int xx = 0; xx < w; xx++)
                    {
                        int i = py - yy + 1, j = px - xx + 1;
                        float expect = bb == b && i is >= 0 and < 3 && j is >= 0 and < 3 ? wt[i * 3 + j] : 0f;
                        Assert.Equal(expect, y[(bb * h + yy) * w + xx], 1e-5f);
                    }
        }
    }

    /// <summary>y, dx, dW and db of Conv2d (3×3, pad 1) on the lane path, with the Winograd kernel or the direct one.</summary>
    static float[][] RunConv(bool winograd, int threads, int batch, int cin, int cout, int h, int w) =>
        ConvLanesTests.RunConv(true, threads, batch, cin, cout, h, w, winograd: winograd);

    [Theory]
    [InlineData(32, 16, 24, 7, 7)]
    [InlineData(20, 8, 11, 14, 14)]
    [InlineData(2, 9, 8, 4, 5)]
    [InlineData(16, 33, 8, 28, 28)]
    public void Conv2d_with_winograd_matches_the_direct_lane_kernel(int batch, int cin, int cout, int h, int w)
    {
        if (!ConvWinograd.IsSupported(new ConvGeometry(cin, h, w, 3, 3, 1, 1))) return;
        var wino = RunConv(true, Parallelism.MaxThreads, batch, cin, cout, h, w);
        var direct = RunConv(false, Parallelism.MaxThreads, batch, cin, cout, h, w);
        string[] names = ["y", "dx", "dW", "db"];
        for (int i = 0; i < 4; i++) GradCheck.AssertClose(direct[i], wino[i], 2e-5, 1e-4, names[i]);
    }

    [Fact]
    public void Conv2d_with_winograd_gives_bit_identical_results_on_one_and_two_threads()
    {
        if (!ConvWinograd.IsSupported(new ConvGeometry(8, 9, 9, 3, 3, 1, 1))) return;
        var one = RunConv(true, 1, 19, 8, 10, 9, 9);
        var two = RunConv(true, 2, 19, 8, 10, 9, 9);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void Conv2d_with_winograd_matches_finite_differences()
    {
        if (!ConvWinograd.IsSupported(new ConvGeometry(8, 3, 5, 3, 3, 1, 1))) return;
        using (KernelSwitches.With(s => s with { LanesForced = true }))
        {
            var rng = new Rng(24);
            var x = GradCheck.Randn(rng, 16, 8, 3, 5);                  // 8 channels in and out: where Winograd pays
            var wt = GradCheck.Randn(rng, 8, 8, 3, 3);
            var b = GradCheck.Randn(rng, 8);
            GradCheck.Check(t => Tensor.Conv2d(t[0], t[1], t[2], 1, 1), [x, wt, b], rng);
        }
    }
}
