// The vector GELU and its gradient (SpecialFunctions.GeluCdf, erf's Chebyshev fit in float) against their scalar
// references (the same fit in double) on a dense grid over [−12, 12], the tails included, and against exact values.
using System.Runtime.Intrinsics;
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public class GeluKernelTests
{
    static float[] Grid()
    {
        var x = new float[24008];                 // a multiple of 8: every point goes through the vector form
        for (int i = 0; i < x.Length; i++) x[i] = -12f + i * 1e-3f;
        return x;
    }

    [Fact]
    public void Vector_gelu_is_within_4e_6_relative_of_the_scalar_reference_over_minus_12_to_12()
    {
        var x = Grid();
        float worst = 0;
        for (int i = 0; i < x.Length; i += 8)
        {
            var v = GeluOp.Invoke(Vector256.Create(x, i));
            for (int j = 0; j < 8; j++)
            {
                float e = GeluOp.Invoke(x[i + j]), a = v[j];
                float err = Math.Abs(e - a) / (Math.Abs(e) + 1e-10f);
                worst = Math.Max(worst, err);
                Assert.True(Math.Abs(e - a) <= 4e-6f * Math.Abs(e) + 1e-10f, $"gelu({x[i + j]:G9}): reference {e:G9}, vector {a:G9}");
            }
        }
        Assert.True(worst > 0, "the vector form is expected to round differently from the double reference somewhere");
    }

    [Fact]
    public void Vector_gelu_gradient_is_within_4e_6_of_the_scalar_reference_over_minus_12_to_12()
    {
        var x = Grid();
        for (int i = 0; i < x.Length; i += 8)
        {
            var dy = Vector256.Create(1.5f, -0.5f, 1f, 2f, -1f, 0.25f, 3f, -2f);
            var v = GeluGradOp.Invoke(dy, Vector256.Create(x, i));
            for (int j = 0; j < 8; j++)
            {
                float e = GeluGradOp.Invoke(dy[j], x[i + j]), a = v[j];
                Assert.True(Math.Abs(e - a) <= 4e-6f * Math.Max(1f, Math.Abs(e)), $"gelu'({x[i + j]:G9}) · {dy[j]}: reference {e:G9}, vector {a:G9}");
            }
        }
    }

    [Fact]
    public void Vector_gelu_matches_exact_values()
    {
        // x·Φ(x) from erfc to 17 digits: Φ(−1) = 0.15865525393145705, Φ(−3) = 0.0013498980316300946, Φ(−8) = 6.2209605742717841e-16
        var x = Vector256.Create(-8f, -3f, -1f, 0f, 1f, 3f, 8f, 0.5f);
        double[] exact = [-8 * 6.2209605742717841e-16, -3 * 0.0013498980316300946, -0.15865525393145705, 0,
            1 - 0.15865525393145705, 3 * (1 - 0.0013498980316300946), 8 * (1 - 6.2209605742717841e-16), 0.5 * 0.69146246127401310];
        var y = GeluOp.Invoke(x);
        for (int j = 0; j < 8; j++)
            Assert.True(Math.Abs(y[j] - exact[j]) <= 2e-6 * Math.Abs(exact[j]), $"gelu({x[j]}) = {y[j]:G9}, exact {exact[j]:G17}");
    }
}
