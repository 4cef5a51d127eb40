// LaneNorm.cs, group norm + SiLU on the lane layout: applied on the way into the lanes (the same bits as the NCHW op
// followed by the plain layout change), and with statistics taken on a lane tensor (within float rounding of the NCHW
// op, zero on the border and in spare lanes).
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class LaneNormTests
{
    [Theory]
    [InlineData(8, 4, 2, 7, 7, false)]
    [InlineData(17, 6, 3, 3, 5, false)]
    [InlineData(32, 8, 4, 14, 14, false)]
    [InlineData(41, 4, 4, 2, 9, false)]
    [InlineData(17, 6, 3, 3, 5, true)]
    public void Norm_table_on_the_way_into_lanes_equals_GroupNormSilu_then_ToLanes(int batch, int channels, int groups, int h, int w, bool scalar)
    {
        var rng = new Rng(21);
        int lanes = ConvLanes.Lanes(batch), hw = h * w, hp = h + 3, wp = w + 3;   // a plane larger than the image, as Winograd's
        var x = Tensor.RandN([batch, channels, h, w], rng) * 2f + 0.5f;
        var gamma = Tensor.RandN([channels], rng);
        var beta = Tensor.RandN([channels], rng);
        var reference = Tensor.GroupNormSilu(x, groups, gamma, beta).ToArray();
        var expected = new float[channels * hp * wp * lanes];
        var actual = new float[expected.Length];
        actual.AsSpan().Fill(float.NaN);
        var mean = new float[2 * batch * groups];
        var rstd = new float[batch * groups];
        var table = new float[LaneNorm.TableFloats(channels, lanes)];
        using (KernelSwitches.With(s => s with { LanesScalarTransposes = scalar }))
        {
            fixed (float* pref = reference, pe = expected, pa = actual, px = x.ToArray(), pm = mean, pr = rstd, pt = table,
                   pg = gamma.ToArray(), pb = beta.ToArray())
            {
                ConvLanes.ToLanes(pref, batch, channels, h, w, 1, hp, wp, lanes, pe);
                Norm.GroupNormStatistics(px, pm, pr, batch, channels, hw, groups, 1e-5f);
                LaneNorm.Table(pm, pr, pg, pb, 0, batch, channels, groups, lanes, pt);
                ConvLanes.ToLanes(px, batch, channels, h, w, 1, hp, wp, lanes, pt, pa);
            }
        }
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"xl[{i}]: {actual[i]:G9}, expected {expected[i]:G9}");
    }

    [Theory]
    [InlineData(3, 6, 2, 4, 7)]    // groups of 2: the seam between groups
    [InlineData(3, 5, 4, 3, 7)]    // groups of 3: a group across the seam
    public void Two_parts_side_by_side_give_what_their_concatenation_gives(int n, int ca, int cb, int groups, int s)
    {
        var rng = new Rng(6);
        int c = ca + cb;
        var a = new float[n * ca * s]; var b = new float[n * cb * s];
        rng.FillNormal(a); rng.FillNormal(b);
        for (int i = 0; i < b.Length; i++) b[i] = 3f * b[i] + 20f;       // a different mean and spread on each side
        var cat = new float[n * c * s];
        for (int im = 0; im < n; im++)
        {
            Array.Copy(a, im * ca * s, cat, im * c * s, ca * s);
            Array.Copy(b, im * cb * s, cat, (im * c + ca) * s, cb * s);
        }
        float[] m1 = new float[2 * n * groups], r1 = new float[n * groups], m2 = new float[2 * n * groups], r2 = new float[n * groups];
        int lanes = ConvLanes.Lanes(n), hp = 3, wp = s + 2;
        float[] xl1 = new float[c * hp * wp * lanes], xl2 = new float[xl1.Length];
        fixed (float* pa = a, pb = b, pc = cat, pm1 = m1, pr1 = r1, pm2 = m2, pr2 = r2, pl1 = xl1, pl2 = xl2)
        {
            Norm.GroupNormStatistics(pc, pm1, pr1, n, c, s, groups, 1e-5f);
            var pair = new ChannelPair(pa, ca, pb, cb);
            Norm.GroupNormStatistics(pair, pm2, pr2, n, s, groups, 1e-5f);
            ConvLanes.ToLanes(pc, n, c, 1, s, 1, hp, wp, lanes, pl1);
            ConvLanes.ToLanes(pair, n, 1, s, 1, hp, wp, lanes, null, pl2);
        }
        Assert.Equal(xl1, xl2);                                               // the layout change reads both in place
        int cg = c / groups;
        for (int pairIndex = 0; pairIndex < n * groups; pairIndex++)
        {
            int g0 = pairIndex % groups * cg;
            bool across = g0 < ca && g0 + cg > ca;
            double mu1 = (double)m1[2 * pairIndex] + m1[2 * pairIndex + 1], mu2 = (double)m2[2 * pairIndex] + m2[2 * pairIndex + 1];
            if (!across)
            {
                Assert.Equal(m1[2 * pairIndex], m2[2 * pairIndex]);           // a group inside one part: the same bits
                Assert.Equal(m1[2 * pairIndex + 1], m2[2 * pairIndex + 1]);
                Assert.Equal(r1[pairIndex], r2[pairIndex]);
            }
            Assert.True(Math.Abs(mu1 - mu2) <= 1e-12 * (1 + Math.Abs(mu1)), $"mean of pair {pairIndex}: {mu2} vs {mu1}");
            Assert.True(Math.Abs(r1[pairIndex] - r2[pairIndex]) <= 2e-7f * r1[pairIndex], $"rstd of pair {pairIndex}: {r2[pairIndex]} vs {r1[pairIndex]}");
        }
    }

    [Fact]
    public void Statistics_alone_are_the_bits_of_the_forward()
    {
        var rng = new Rng(4);
        int n = 3, c = 8, s = 37, groups = 4;
        var x = new float[n * c * s]; rng.FillNormal(x);
        var gamma = Enumerable.Repeat(1f, c).ToArray(); var beta = new float[c];
        var y = new float[x.Length];
        float[] m1 = new float[2 * n * groups], r1 = new float[n * groups], m2 = new float[2 * n * groups], r2 = new float[n * groups];
        fixed (float* px = x, py = y, pg = gamma, pb = beta, pm1 = m1, pr1 = r1, pm2 = m2, pr2 = r2)
        {
            Norm.GroupNormForward<SiluActivation>(px, pg, pb, py, pm1, pr1, n, c, s, groups, 1e-5f);
            Norm.GroupNormStatistics(px, pm2, pr2, n, c, s, groups, 1e-5f);
        }
        Assert.Equal(m1, m2);
        Assert.Equal(r1, r2);
    }

    public static IEnumerable<object[]> LaneCases() =>
    [
        // images, lanes, channels, groups, h, w, offset of the data (tests the hi + lo centre)
        [16, 16, 8, 4, 7, 7, 0f], [20, 32, 4, 2, 5, 6, 0f], [32, 32, 32, 32, 14, 14, 0f], [9, 16, 6, 3, 3, 3, 1000f], [40, 48, 8, 8, 4, 4, -50f],
    ];

    [Theory]
    [MemberData(nameof(LaneCases))]
    public void GroupNormSiluLanes_matches_the_NCHW_ops_after_the_bias_and_the_per_image_add(int n, int lanes, int channels, int groups, int h, int w, float offset)
    {
        var rng = new Rng(8);
        int hw = h * w, hp = h + 3, wp = w + 2;
        var yl = new float[channels * hw * lanes]; rng.FillNormal(yl);
        for (int i = 0; i < yl.Length; i++) yl[i] = 3f * yl[i] + offset;
        var bias = new float[channels]; rng.FillNormal(bias);
        var add = new float[n * channels]; rng.FillNormal(add);
        var gamma = new float[channels]; rng.FillNormal(gamma);
        var beta = new float[channels]; rng.FillNormal(beta);
        // reference: h = (v + bias) + add in NCHW, then the NCHW op
        var hNchw = new float[n * channels * hw];
        for (int b = 0; b < n; b++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < hw; p++)
                    hNchw[(b * channels + c) * hw + p] = yl[((long)c * hw + p) * lanes + b] + bias[c] + add[b * channels + c];
        var reference = Tensor.GroupNormSilu(Tensor.FromArray(hNchw, n, channels, h, w), groups,
            Tensor.FromArray(gamma, channels), Tensor.FromArray(beta, channels)).ToArray();

        var xl = new float[channels * hp * wp * lanes];
        xl.AsSpan().Fill(float.NaN);
        var ylCopy = (float[])yl.Clone();
        fixed (float* pyl = ylCopy, pb = bias, pa = add, pg = gamma, pbe = beta, pxl = xl)
            LaneNorm.GroupNormSiluLanes(pyl, n, channels, h, w, lanes, pb, pa, pg, pbe, groups, 1e-5f, hp, wp, pxl);

        float worst = 0;
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < hp; y++)
                for (int x = 0; x < wp; x++)
                    for (int b = 0; b < lanes; b++)
                    {
                        float got = xl[(((long)c * hp + y) * wp + x) * lanes + b];
                        bool inside = y >= 1 && y <= h && x >= 1 && x <= w && b < n;
                        if (!inside) { Assert.True(got == 0f, $"xl[c {c}, y {y}, x {x}, lane {b}] = {got}, expected 0 outside the images"); continue; }
                        float want = reference[(b * channels + c) * hw + (y - 1) * w + (x - 1)];
                        float err = MathF.Abs(got - want) / (1f + MathF.Abs(want));
                        worst = MathF.Max(worst, err);
                    }
        // The statistics differ from the NCHW op's only in the order of double sums: μ and rstd within an ulp of
        // their float forms, so z = x̂·γ + β within a few ulps of |x̂·γ| (|x̂| ≤ ~5 here, |γ| ≤ ~3).
        Assert.True(worst <= 4e-6f, $"worst relative error {worst:G3}");
        Assert.Equal(yl, ylCopy);                                         // the input is not changed
    }
}
