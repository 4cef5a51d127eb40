// The Fréchet distance between two Gaussians fitted to feature sets (Dowson & Landau 1982; as FID, Heusel et al.
// 2017, computes it on Inception features):
//   FD = |μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}).
// Σ₁Σ₂ is not symmetric, so its square root is taken through a symmetric matrix with the same eigenvalues:
// Σ₁Σ₂ is similar to √Σ₁ Σ₂ √Σ₁ (PSD), hence Tr((Σ₁Σ₂)^{1/2}) = Σ_k √λ_k(√Σ₁ Σ₂ √Σ₁), each λ clamped at 0 against
// round-off. Means and covariances (unbiased, divided by N − 1) are accumulated in double.
namespace DiffuSharp.Evaluation;

/// <summary>Mean (D) and covariance (D×D, row-major) of N feature vectors.</summary>
public sealed record FeatureStatistics(double[] Mean, double[] Covariance, int Dim, int Count)
{
    /// <summary>Statistics of features (N × D, row-major); needs N ≥ 2.</summary>
    public static FeatureStatistics Of(ReadOnlySpan<float> features, int count, int dim)
    {
        if (dim < 1 || count < 2 || features.Length != count * dim)
            throw new ArgumentException($"feature statistics need N ≥ 2 vectors of D ≥ 1 values: got {features.Length} values for N = {count}, D = {dim}");
        var mean = new double[dim];
        for (int i = 0; i < count; i++)
            for (int d = 0; d < dim; d++) mean[d] += features[i * dim + d];
        for (int d = 0; d < dim; d++) mean[d] /= count;
        var cov = new double[dim * dim];
        var centred = new double[dim];
        for (int i = 0; i < count; i++)
        {
            for (int d = 0; d < dim; d++) centred[d] = features[i * dim + d] - mean[d];
            for (int a = 0; a < dim; a++)
            {
                double ca = centred[a];
                for (int b = a; b < dim; b++) cov[a * dim + b] += ca * centred[b];
            }
        }
        for (int a = 0; a < dim; a++)
            for (int b = a; b < dim; b++) cov[b * dim + a] = cov[a * dim + b] /= count - 1;
        return new FeatureStatistics(mean, cov, dim, count);
    }
}

/// <summary>The Fréchet distance between Gaussians fitted to two feature sets, |μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ −
/// 2(Σ₁Σ₂)^{1/2}), as FID computes it (here on <see cref="FashionClassifier"/> features), in double
/// precision.</summary>
public static class FrechetDistance
{
    /// <summary>FD between two feature sets (N₁ × D and N₂ × D, row-major).</summary>
    public static double Compute(ReadOnlySpan<float> a, int countA, ReadOnlySpan<float> b, int countB, int dim)
        => Compute(FeatureStatistics.Of(a, countA, dim), FeatureStatistics.Of(b, countB, dim));

    /// <summary>FD between two Gaussians: |μ₁ − μ₂|² + Tr Σ₁ + Tr Σ₂ − 2 Σ_k √λ_k(√Σ₁ Σ₂ √Σ₁).</summary>
    public static double Compute(FeatureStatistics s1, FeatureStatistics s2)
    {
        if (s1.Dim != s2.Dim) throw new ArgumentException($"Fréchet distance: feature sizes differ ({s1.Dim} and {s2.Dim})");
        int n = s1.Dim;
        double meanTerm = 0, trace = 0;
        for (int d = 0; d < n; d++)
        {
            double diff = s1.Mean[d] - s2.Mean[d];
            meanTerm += diff * diff;
            trace += s1.Covariance[d * n + d] + s2.Covariance[d * n + d];
        }
        double crossTrace = TraceSqrtProduct(s1.Covariance, s2.Covariance, n);
        return meanTerm + trace - 2 * crossTrace;
    }

    /// <summary>Tr((A B)^{1/2}) for symmetric PSD A, B (n×n, row-major).</summary>
    public static double TraceSqrtProduct(double[] a, double[] b, int n)
    {
        // 1. √A = V diag(√max(λ, 0)) Vᵀ.
        var sqrtA = SqrtPsd(a, n);
        // 2. M = √A B √A (symmetric PSD, similar to A B).
        var m = Multiply(Multiply(sqrtA, b, n), sqrtA, n);
        // 3. Σ √λ(M), negative round-off clamped.
        var (values, _) = SymmetricEigen.Decompose(m, n);
        double sum = 0;
        foreach (double l in values) sum += Math.Sqrt(Math.Max(l, 0));
        return sum;
    }

    /// <summary>The symmetric square root of a symmetric PSD matrix (negative eigenvalues from round-off clamped at 0).</summary>
    public static double[] SqrtPsd(double[] a, int n)
    {
        var (values, v) = SymmetricEigen.Decompose(a, n);
        var r = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            double s = Math.Sqrt(Math.Max(values[k], 0));
            if (s == 0) continue;
            for (int i = 0; i < n; i++)
            {
                double vik = v[i * n + k] * s;
                for (int j = 0; j < n; j++) r[i * n + j] += vik * v[j * n + k];
            }
        }
        return r;
    }

    static double[] Multiply(double[] x, double[] y, int n)
    {
        var r = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
            {
                double xik = x[i * n + k];
                if (xik == 0) continue;
                for (int j = 0; j < n; j++) r[i * n + j] += xik * y[k * n + j];
            }
        return r;
    }
}
