// Eigen-decomposition of a real symmetric matrix by the cyclic Jacobi method (Golub & Van Loan, "Matrix
// Computations", §8.5): plane rotations annihilate each off-diagonal entry in turn until the off-diagonal norm is
// negligible. Slower than Householder + QL, but short, unconditionally stable and accurate to a few ulps relative
// to the largest eigenvalue, which is what a Fréchet distance over 128 features needs. Double precision throughout.
namespace DiffuSharp.Evaluation;

/// <summary>Eigen-decomposition of real symmetric matrices by the cyclic Jacobi method (Golub &amp; Van Loan §8.5), in
/// double precision.</summary>
public static class SymmetricEigen
{
    /// <summary>
    /// A = V diag(λ) Vᵀ for symmetric A (n×n, row-major; only its symmetric part is used). Returns the eigenvalues
    /// ascending and V (n×n, row-major, eigenvector k in column k).
    /// </summary>
    public static (double[] Values, double[] Vectors) Decompose(ReadOnlySpan<double> a, int n)
    {
        if (n < 0 || a.Length != n * n) throw new ArgumentException($"SymmetricEigen: expected {n}×{n} = {n * n} values, got {a.Length}");
        var m = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double v = 0.5 * (a[i * n + j] + a[j * n + i]);
                if (!double.IsFinite(v)) throw new ArgumentException($"SymmetricEigen: entry ({i}, {j}) is {a[i * n + j]}");
                m[i * n + j] = v;
            }
        var v2 = new double[n * n];
        for (int i = 0; i < n; i++) v2[i * n + i] = 1;

        double scale = 0;
        foreach (double x in m) scale += x * x;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
            if (off <= 1e-30 * scale || off == 0) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = m[p * n + q];
                    if (apq == 0) continue;
                    // 1. The rotation (c, s) that zeroes A[p, q]: θ = (A_qq − A_pp) / (2 A_pq), t = sgn θ / (|θ| + √(θ² + 1)),
                    //    the smaller root, so |angle| ≤ π/4 (keeps the iteration convergent).
                    double theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    // 2. A ← Jᵀ A J on rows and columns p, q; V ← V J.
                    for (int k = 0; k < n; k++)
                    {
                        double akp = m[k * n + p], akq = m[k * n + q];
                        m[k * n + p] = c * akp - s * akq;
                        m[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = m[p * n + k], aqk = m[q * n + k];
                        m[p * n + k] = c * apk - s * aqk;
                        m[q * n + k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v2[k * n + p], vkq = v2[k * n + q];
                        v2[k * n + p] = c * vkp - s * vkq;
                        v2[k * n + q] = s * vkp + c * vkq;
                    }
                }
        }

        // 3. Sort ascending, carrying the columns of V.
        var order = Enumerable.Range(0, n).OrderBy(i => m[i * n + i]).ToArray();
        var values = new double[n];
        var vectors = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            values[k] = m[order[k] * n + order[k]];
            for (int i = 0; i < n; i++) vectors[i * n + k] = v2[i * n + order[k]];
        }
        return (values, vectors);
    }
}
