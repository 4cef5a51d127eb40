// ExpF.Exp, the float exponential behind SiLU, sigmoid and the attention softmax: within 2 ulp of e^x (computed in
// double) across its whole range, clamped to finite non-zero values outside it, and NaN in, NaN out.
using System.Runtime.Intrinsics;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public class ExpFTests
{
    static float[] Exp(float[] x)
    {
        var y = new float[x.Length];
        for (int i = 0; i + 8 <= x.Length; i += 8)
            ExpF.Exp(Vector256.Create(x.AsSpan(i, 8))).CopyTo(y.AsSpan(i, 8));
        return y;
    }

    [Fact]
    public void Is_within_two_ulp_of_the_exponential_across_its_range()
    {
        // every 1/4096 from −87 to 88 (and the integers' neighbours, where n·ln 2 splits), against e^x in double
        var xs = new List<float>();
        for (double v = -87; v <= 88; v += 1.0 / 4096) xs.Add((float)v);
        for (int k = -87; k <= 88; k++) { xs.Add(MathF.BitDecrement(k)); xs.Add(k); xs.Add(MathF.BitIncrement(k)); }
        while (xs.Count % 8 != 0) xs.Add(0f);
        var x = xs.ToArray();
        var y = Exp(x);
        double worst = 0; float at = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double exact = Math.Exp(x[i]);
            double ulp = (double)MathF.BitIncrement((float)exact) - (float)exact;   // float spacing at e^x
            double e = Math.Abs(y[i] - exact) / ulp;
            if (e > worst) { worst = e; at = x[i]; }
        }
        Assert.True(worst <= 2.0, $"largest error {worst:F2} ulp, at x = {at:G9}");
    }

    [Fact]
    public void Sixteen_lanes_give_the_bits_of_eight()
    {
        if (!Vector512.IsHardwareAccelerated) return;                  // (the Vector512 form runs only where it is)
        var rng = new Rng(3);
        var x = new float[4096]; rng.FillNormal(x);
        for (int i = 0; i < x.Length; i++) x[i] *= i % 3 == 0 ? 40f : 4f;
        x[0] = float.NaN; x[1] = -1000f; x[2] = 1000f; x[3] = 0f;
        for (int i = 0; i < x.Length; i += 16)
        {
            var v = Vector512.Create(x.AsSpan(i, 16));
            var wide = ExpF.Exp(v);
            var silu = SiluOp.Invoke(v);
            for (int h = 0; h < 2; h++)
            {
                var half = Vector256.Create(x.AsSpan(i + 8 * h, 8));
                var e8 = ExpF.Exp(half); var s8 = SiluOp.Invoke(half);
                for (int k = 0; k < 8; k++)
                {
                    Assert.Equal(BitConverter.SingleToInt32Bits(e8[k]), BitConverter.SingleToInt32Bits(wide[8 * h + k]));
                    Assert.Equal(BitConverter.SingleToInt32Bits(s8[k]), BitConverter.SingleToInt32Bits(silu[8 * h + k]));
                }
            }
        }
    }

    [Fact]
    public void Clamps_outside_the_range_and_passes_nan_through()
    {
        var y = Exp([-1000f, -104f, -88f, 89f, 1000f, float.NegativeInfinity, float.PositiveInfinity, float.NaN]);
        for (int i = 0; i < 3; i++) Assert.InRange(y[i], 1e-38f, 1.3e-38f);              // e^−87.3: never 0
        for (int i = 3; i < 5; i++) Assert.InRange(y[i], 2.0e38f, 2.3e38f);              // e^88.3: never ∞
        Assert.InRange(y[5], 1e-38f, 1.3e-38f);
        Assert.InRange(y[6], 2.0e38f, 2.3e38f);
        Assert.True(float.IsNaN(y[7]), $"e^NaN gave {y[7]}");
        Assert.Equal(1f, Exp([0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f])[0]);
    }
}
