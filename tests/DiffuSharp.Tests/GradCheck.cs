// Central finite-difference gradient checks for float32 ops.
//
// Loss L = Σ w ⊙ f(x) with a random upstream weight w (never Σ y, which hides transposition errors), evaluated
// in double from the float32 outputs. With eps = 1e-2 the truncation error of the central difference is
// O(eps²·f''') ≈ 1e-4 for the smooth ops here, and float32 rounding of the outputs contributes about
// √n · 2⁻²⁴ · |w| / (2·eps) ≈ 1e-4 for n ≈ 10⁴ outputs, so |numeric − analytic| ≤ atol + rtol·max(|·|) with
// atol = 1e-3, rtol = 1e-2 fails only on a real gradient error, not on float32 noise.
using DiffuSharp;
using Xunit;

namespace DiffuSharp.Tests;

internal static class GradCheck
{
    public static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, Rng rng, double eps = 1e-2, double rtol = 1e-2, double atol = 1e-3, int samples = 64)
    {
        foreach (var x in inputs) { x.RequireGrad(); x.Grad = null; }
        var y = f(inputs);
        var w = Tensor.RandN(y.Shape, rng);
        (y * w).Sum().Backward();
        var wv = w.ToArray();

        double Loss()
        {
            using var _ = Tensor.NoGrad();
            var v = f(inputs).ToArray();
            double s = 0;
            for (int i = 0; i < v.Length; i++) s += (double)v[i] * wv[i];
            return s;
        }

        for (int k = 0; k < inputs.Length; k++)
        {
            var x = inputs[k];
            Assert.True(x.IsContiguous, "GradCheck inputs must be contiguous");
            var analytic = x.Grad?.ToArray() ?? new float[x.Count];
            var data = x.Data;
            int n = x.Count;
            var coords = n <= samples ? Enumerable.Range(0, n) : Enumerable.Range(0, samples).Select(_ => rng.NextInt(n));
            foreach (int i in coords)
            {
                float orig = data[i];
                data[i] = orig + (float)eps; double lp = Loss();
                data[i] = orig - (float)eps; double lm = Loss();
                data[i] = orig;
                double numeric = (lp - lm) / (2 * eps);
                double diff = Math.Abs(numeric - analytic[i]);
                double tol = atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(analytic[i]));
                Assert.True(diff <= tol, $"input {k} element {i}: analytic {analytic[i]:G6}, numeric {numeric:G6} (|diff| {diff:G3} > tol {tol:G3})");
            }
        }
    }

    public static Tensor Randn(Rng rng, params int[] shape) => Tensor.RandN(shape, rng);

    /// <summary>Uniform in [lo, hi), for ops with restricted domains (log, sqrt, pow).</summary>
    public static Tensor Uniform(Rng rng, float lo, float hi, params int[] shape) => Tensor.Rand(shape, rng, lo, hi);

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rtol, double atol, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs(expected[i] - actual[i]);
            Assert.True(diff <= atol + rtol * Math.Abs(expected[i]), $"{what}[{i}]: expected {expected[i]:G9}, got {actual[i]:G9} (|diff| {diff:G3})");
        }
    }
}
