// Kernel-level tests for Im2Col.cs and Pool.cs: each fast kernel against its plain-loop reference over odd
// geometries (padding wider than the kernel, strides that skip the last column, widths that end in a vector
// tail), col2im as the exact adjoint of im2col, and fold/unfold as inverses.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public unsafe class Im2ColTests
{
    public static IEnumerable<object[]> Geometries()
    {
        foreach (var (kh, kw) in new[] { (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (1, 3), (3, 1), (2, 5) })
            foreach (int s in new[] { 1, 2, 3 })
                foreach (int p in new[] { 0, 1, 2, 5 })
                    foreach (var (h, w) in new[] { (1, 1), (3, 5), (5, 3), (17, 9) })
                        if (h + 2 * p >= kh && w + 2 * p >= kw)
                            yield return [2, h, w, kh, kw, s, p];
    }

    static float[] Random(Rng rng, int n)
    {
        var a = new float[n];
        rng.FillNormal(a);
        return a;
    }

    [Theory, MemberData(nameof(Geometries))]
    public void Folded_im2col_matches_reference_for_every_image(int c, int h, int w, int kh, int kw, int s, int p)
    {
        var g = new ConvGeometry(c, h, w, kh, kw, s, p);
        const int count = 3;
        int hw = g.Ho * g.Wo, ld = count * hw;
        var x = Random(new Rng(1), count * c * h * w);
        var col = new float[g.Ckk * ld];
        col.AsSpan().Fill(float.NaN);                          // every element must be written
        fixed (float* px = x, pc = col) Im2Col.FoldedIm2Col(px, count, g, pc);
        var expect = new float[g.Ckk * ld];
        for (int b = 0; b < count; b++)
            Im2Col.Im2ColReference(x.AsSpan(b * c * h * w, c * h * w), g, expect.AsSpan(b * hw), ld);
        Assert.Equal(expect, col);
    }

    [Theory, MemberData(nameof(Geometries))]
    public void Col2im_is_the_adjoint_of_im2col(int c, int h, int w, int kh, int kw, int s, int p)
    {
        // <im2col(x), d> = <x, col2im(d)> for every x, d; checked on random ones in double
        var g = new ConvGeometry(c, h, w, kh, kw, s, p);
        const int count = 2;
        int ld = count * g.Ho * g.Wo;
        var rng = new Rng(2);
        var x = Random(rng, count * c * h * w);
        var d = Random(rng, g.Ckk * ld);
        var col = new float[g.Ckk * ld];
        var dx = Random(rng, x.Length);                        // col2im accumulates: start from a known value
        var dx0 = (float[])dx.Clone();
        fixed (float* px = x, pc = col, pd = d, pdx = dx)
        {
            Im2Col.FoldedIm2Col(px, count, g, pc);
            Im2Col.FoldedCol2Im(pd, count, g, pdx);
        }
        double lhs = 0, rhs = 0;
        for (int i = 0; i < col.Length; i++) lhs += (double)col[i] * d[i];
        for (int i = 0; i < x.Length; i++) rhs += (double)x[i] * ((double)dx[i] - dx0[i]);
        Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * (1 + Math.Abs(lhs)), $"<im2col x, d> = {lhs}, <x, col2im d> = {rhs}");
    }

    [Fact]
    public void Fold_and_unfold_with_bias_are_inverse()
    {
        const int count = 3, rows = 5, n = 13;
        var rng = new Rng(3);
        var y = Random(rng, count * rows * n);
        var bias = Random(rng, rows);
        var f = new float[y.Length];
        var back = new float[y.Length];
        fixed (float* py = y, pf = f, pb = back, pbias = bias)
        {
            Im2Col.Fold(py, count, rows, n, pf);
            Im2Col.Unfold(pf, count, rows, n, null, pb);
            Assert.Equal(y, back);
            Assert.Equal(y[(2 * rows + 4) * n + 7], f[4 * count * n + 2 * n + 7]);   // yF[r, b·n + q] = y[b, r, q]
            Im2Col.Unfold(pf, count, rows, n, pbias, pb);
        }
        for (int i = 0; i < y.Length; i++) Assert.Equal(y[i] + bias[i / n % rows], back[i]);
    }

    [Fact]
    public void Bias_grad_sums_over_batch_and_positions()
    {
        const int count = 3, rows = 4, n = 21;
        var dy = Random(new Rng(4), count * rows * n);
        var db = new float[] { 1, 2, 3, 4 };
        fixed (float* pd = dy, pdb = db) Im2Col.BiasGrad(pd, count, rows, n, pdb);
        for (int r = 0; r < rows; r++)
        {
            double s = r + 1;
            for (int b = 0; b < count; b++)
                for (int q = 0; q < n; q++) s += dy[(b * rows + r) * n + q];
            Assert.Equal(s, db[r], 4);
        }
    }

    public static IEnumerable<object[]> PlaneSizes()
    {
        foreach (int h in new[] { 2, 3, 5 })
            foreach (int w in new[] { 2, 3, 7, 15, 16, 17, 33, 40 })
                yield return [h, w];
    }

    [Theory, MemberData(nameof(PlaneSizes))]
    public void Pool2x2_matches_reference_and_accumulates(int h, int w)
    {
        const int planes = 3;
        var rng = new Rng(5);
        var x = Random(rng, planes * h * w);
        int n = planes * (h / 2) * (w / 2);
        var y = Random(rng, n);
        var y0 = (float[])y.Clone();
        var expect = new float[n];
        Pool.Pool2x2Reference(x, planes, h, w, expect, 0.25f);
        fixed (float* px = x, py = y)
        {
            Pool.Pool2x2(px, planes, h, w, py, 0.25f, accumulate: true);
            for (int i = 0; i < n; i++) Assert.Equal(y0[i] + expect[i], y[i], 5);
            Pool.Pool2x2(px, planes, h, w, py, 0.25f, accumulate: false);
        }
        GradCheck.AssertClose(expect, y, 1e-6, 1e-6, "pool");
    }

    [Theory, MemberData(nameof(PlaneSizes))]
    public void Dup2x2_matches_reference_and_leaves_odd_edges_alone(int h, int w)
    {
        const int planes = 2;
        var rng = new Rng(6);
        var x = Random(rng, planes * h * w);
        var expect = new float[planes * 4 * h * w];
        Pool.Dup2x2Reference(x, planes, h, w, expect, 0.5f);
        var y = new float[expect.Length];
        fixed (float* px = x, py = y) Pool.Dup2x2(px, planes, h, w, py, 2 * h, 2 * w, 0.5f, accumulate: false);
        Assert.Equal(expect, y);

        // into a (2h+1, 2w+1) plane, accumulating: the extra row and column keep their values
        int dh = 2 * h + 1, dw = 2 * w + 1;
        var z = Random(rng, planes * dh * dw);
        var z0 = (float[])z.Clone();
        fixed (float* px = x, pz = z) Pool.Dup2x2(px, planes, h, w, pz, dh, dw, 0.5f, accumulate: true);
        for (int p = 0; p < planes; p++)
            for (int r = 0; r < dh; r++)
                for (int c = 0; c < dw; c++)
                {
                    int i = (p * dh + r) * dw + c;
                    float add = r < 2 * h && c < 2 * w ? expect[(p * 2 * h + r) * 2 * w + c] : 0f;
                    Assert.Equal(z0[i] + add, z[i]);
                }
    }
}

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
        {
            bool old = ConvDirect.ForceVector256;
            try
            {
                ConvDirect.ForceVector256 = narrow;
                Check(k, h, w, cin, cout);
            }
            finally { ConvDirect.ForceVector256 = old; }
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
        var expect = new double[dw.Length];
        for (int i = 0; i < dw.Length; i++) expect[i] = dw[i];
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < cout; o++)
                for (int c = 0; c < cin; c++)
                    for (int t = 0; t < 9; t++)
                    {
                        double s = 0;
                        for (int oy = 0; oy < h; oy++)
                            for (int ox = 0; ox < w; ox++)
                            {
                                int iy = oy + t / 3 - 1, ix = ox + t % 3 - 1;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += (double)dy[((b * cout + o) * h + oy) * w + ox] * x[((b * cin + c) * h + iy) * w + ix];
                            }
                        expect[(o * cin + c) * 9 + t] += s;
                    }
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
