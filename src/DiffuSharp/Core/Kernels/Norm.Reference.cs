// Scalar double-precision references for the normalisation kernels in Norm.cs (llm.c's habit of a plain loop
// beside every fast kernel). Tests compare the SIMD/parallel kernels against these; production code never calls them.
namespace DiffuSharp.Kernels;

internal static partial class Norm
{
    /// <summary>group_norm (+ optional SiLU) in double. x, y: (N, C, S); gamma, beta: (C).</summary>
    internal static void GroupNormReference(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        int n, int c, int s, int groups, double eps, bool silu)
    {
        int cg = c / groups, len = cg * s;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++)
            {
                int at = (b * c + g * cg) * s;
                double mu = 0, var = 0;
                for (int i = 0; i < len; i++) mu += x[at + i];
                mu /= len;
                for (int i = 0; i < len; i++) var += (x[at + i] - mu) * (x[at + i] - mu);
                var /= len;
                double rs = 1.0 / Math.Sqrt(var + eps);
                for (int k = 0; k < cg; k++)
                    for (int i = 0; i < s; i++)
                    {
                        int j = at + k * s + i, ch = g * cg + k;
                        double z = (x[j] - mu) * rs * gamma[ch] + beta[ch];
                        y[j] = (float)(silu ? z / (1.0 + Math.Exp(-z)) : z);
                    }
            }
    }

    /// <summary>layer_norm over rows of d in double. x, y: (R, D); gamma, beta: (D).</summary>
    internal static void LayerNormReference(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        int rows, int d, double eps)
    {
        for (int r = 0; r < rows; r++)
        {
            double mu = 0, var = 0;
            for (int i = 0; i < d; i++) mu += x[r * d + i];
            mu /= d;
            for (int i = 0; i < d; i++) var += (x[r * d + i] - mu) * (x[r * d + i] - mu);
            var /= d;
            double rs = 1.0 / Math.Sqrt(var + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = (float)((x[r * d + i] - mu) * rs * gamma[i] + beta[i]);
        }
    }
}
