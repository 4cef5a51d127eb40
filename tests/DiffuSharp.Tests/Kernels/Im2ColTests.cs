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
