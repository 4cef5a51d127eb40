// The Fréchet distance and its eigen-solver: zero for identical sets, the closed form for diagonal covariances,
// symmetric, equal to a direct computation through the matrix square root of Σ₁Σ₂ (Denman–Beavers iteration,
// no eigenvalues) on random full covariances, and the eigen-decomposition reconstructs its matrix.
using DiffuSharp.Evaluation;
using Xunit;

namespace DiffuSharp.Tests.Evaluation;

public sealed class FrechetDistanceTests
{
    static float[] Features(int n, int d, ulong seed, double shift = 0, double scale = 1)
    {
        var rng = new Rng(seed);
        // Correlated features: x = L z + shift with a random mixing L, so covariances are full.
        var mix = new double[d * d];
        for (int i = 0; i < mix.Length; i++) mix[i] = rng.NextNormal() * 0.5 + (i % (d + 1) == 0 ? 1 : 0);
        var f = new float[n * d];
        var z = new double[d];
        for (int s = 0; s < n; s++)
        {
            for (int j = 0; j < d; j++) z[j] = rng.NextNormal();
            for (int i = 0; i < d; i++)
            {
                double acc = 0;
                for (int j = 0; j < d; j++) acc += mix[i * d + j] * z[j];
                f[s * d + i] = (float)(scale * acc + shift);
            }
        }
        return f;
    }

    [Fact]
    public void Identical_sets_are_at_distance_zero()
    {
        var a = Features(500, 16, 1);
        double fd = FrechetDistance.Compute(a, 500, a, 500, 16);
        double trace = 0;
        var s = FeatureStatistics.Of(a, 500, 16);
        for (int i = 0; i < 16; i++) trace += s.Covariance[i * 16 + i];
        Assert.InRange(fd, -1e-9 * trace, 1e-9 * trace);
    }

    [Fact]
    public void Diagonal_covariances_give_the_closed_form()
    {
        // FD = Σ (μ₁ − μ₂)² + Σ (σ₁ − σ₂)² when both covariances are diagonal.
        double[] m1 = [0.5, -1, 2, 0], m2 = [1, 1, 2, -3], v1 = [1, 4, 0.25, 9], v2 = [2, 1, 0.25, 0.5];
        var s1 = new FeatureStatistics(m1, Diag(v1), 4, 100);
        var s2 = new FeatureStatistics(m2, Diag(v2), 4, 100);
        double expected = 0;
        for (int i = 0; i < 4; i++) expected += Math.Pow(m1[i] - m2[i], 2) + Math.Pow(Math.Sqrt(v1[i]) - Math.Sqrt(v2[i]), 2);
        Assert.Equal(expected, FrechetDistance.Compute(s1, s2), 10);
    }

    [Fact]
    public void Distance_is_symmetric_and_a_shift_adds_its_squared_length()
    {
        var a = Features(400, 12, 2);
        var b = Features(300, 12, 3, scale: 1.5);
        double ab = FrechetDistance.Compute(a, 400, b, 300, 12), ba = FrechetDistance.Compute(b, 300, a, 400, 12);
        Assert.True(ab > 0.1, $"FD {ab}");
        Assert.Equal(ab, ba, 1e-9 * ab);
        // Shifting every feature of a by 0.5 moves the mean by 0.5 in each of 12 dimensions: + 12 · 0.25.
        var shifted = a.Select(v => v + 0.5f).ToArray();
        Assert.Equal(3.0, FrechetDistance.Compute(shifted, 400, a, 400, 12), 3);
    }

    [Fact]
    public void Matches_a_direct_computation_through_the_square_root_of_the_product()
    {
        int d = 6;
        var s1 = FeatureStatistics.Of(Features(200, d, 4), 200, d);
        var s2 = FeatureStatistics.Of(Features(150, d, 5, shift: 0.3, scale: 0.7), 150, d);
        // Direct: Tr((Σ₁Σ₂)^{1/2}) with the principal square root from the Denman–Beavers iteration.
        var root = DenmanBeavers(Multiply(s1.Covariance, s2.Covariance, d), d);
        double direct = 0;
        for (int i = 0; i < d; i++)
            direct += Math.Pow(s1.Mean[i] - s2.Mean[i], 2) + s1.Covariance[i * d + i] + s2.Covariance[i * d + i] - 2 * root[i * d + i];
        // The root squares back to the product (so the check is not vacuous).
        var back = Multiply(root, root, d);
        var product = Multiply(s1.Covariance, s2.Covariance, d);
        for (int i = 0; i < d * d; i++) Assert.Equal(product[i], back[i], 1e-9);
        Assert.Equal(direct, FrechetDistance.Compute(s1, s2), 1e-8);
    }

    [Theory, InlineData(1), InlineData(5), InlineData(40)]
    public void Eigen_decomposition_reconstructs_the_matrix_with_orthonormal_vectors(int n)
    {
        var rng = new Rng((ulong)n);
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.NextNormal();
        var (values, v) = SymmetricEigen.Decompose(a, n);
        for (int k = 1; k < n; k++) Assert.True(values[k - 1] <= values[k]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double recon = 0, dot = 0;
                for (int k = 0; k < n; k++) { recon += v[i * n + k] * values[k] * v[j * n + k]; dot += v[k * n + i] * v[k * n + j]; }
                Assert.Equal(a[i * n + j], recon, 1e-10);
                Assert.Equal(i == j ? 1.0 : 0.0, dot, 1e-10);
            }
    }

    [Fact]
    public void Statistics_are_the_mean_and_unbiased_covariance()
    {
        float[] f = [1, 2, 3, 6, 5, 4];                    // three 2-d vectors
        var s = FeatureStatistics.Of(f, 3, 2);
        Assert.Equal([3.0, 4.0], s.Mean);
        // x: 1, 3, 5 (var 4); y: 2, 6, 4 (var 4); cov: ((−2)(−2) + 0·2 + 2·0) / 2 = 2.
        Assert.Equal([4.0, 2.0, 2.0, 4.0], s.Covariance);
        Assert.Throws<ArgumentException>(() => FeatureStatistics.Of(f.AsSpan(0, 2), 1, 2));
    }

    static double[] Diag(double[] v)
    {
        var m = new double[v.Length * v.Length];
        for (int i = 0; i < v.Length; i++) m[i * v.Length + i] = v[i];
        return m;
    }

    static double[] Multiply(double[] x, double[] y, int n)
    {
        var r = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
                for (int j = 0; j < n; j++) r[i * n + j] += x[i * n + k] * y[k * n + j];
        return r;
    }

    /// <summary>Y ← (Y + Z⁻¹)/2, Z ← (Z + Y⁻¹)/2 from Y = A, Z = I: Y → A^{1/2} for A with positive real eigenvalues.</summary>
    static double[] DenmanBeavers(double[] a, int n)
    {
        var y = (double[])a.Clone();
        var z = new double[n * n];
        for (int i = 0; i < n; i++) z[i * n + i] = 1;
        for (int it = 0; it < 60; it++)
        {
            var yi = Inverse(y, n);
            var zi = Inverse(z, n);
            for (int i = 0; i < n * n; i++) { y[i] = 0.5 * (y[i] + zi[i]); z[i] = 0.5 * (z[i] + yi[i]); }
        }
        return y;
    }

    static double[] Inverse(double[] a, int n)
    {
        var m = (double[])a.Clone();
        var inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++)
        {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.Abs(m[r * n + c]) > Math.Abs(m[p * n + c])) p = r;
            for (int j = 0; j < n; j++) { (m[c * n + j], m[p * n + j]) = (m[p * n + j], m[c * n + j]); (inv[c * n + j], inv[p * n + j]) = (inv[p * n + j], inv[c * n + j]); }
            double d = m[c * n + c];
            for (int j = 0; j < n; j++) { m[c * n + j] /= d; inv[c * n + j] /= d; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = m[r * n + c];
                for (int j = 0; j < n; j++) { m[r * n + j] -= f * m[c * n + j]; inv[r * n + j] -= f * inv[c * n + j]; }
            }
        }
        return inv;
    }
}
