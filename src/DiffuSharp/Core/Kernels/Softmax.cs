// Softmax and log-softmax kernels over rows (unit stride) or strided columns, forward and backward.
// Each row subtracts its maximum before exp (no overflow) and sums in double (no loss for long rows).
namespace DiffuSharp.Kernels;

internal static class Softmax
{
    public static void Rows(ReadOnlySpan<float> x, Span<float> y, int rows, int n, bool log)
    {
        for (int r = 0; r < rows; r++) Row(x.Slice(r * n, n), y.Slice(r * n, n), log);
    }

    static void Row(ReadOnlySpan<float> x, Span<float> y, bool log)
    {
        if (x.Length == 0) return;
        float m = float.NegativeInfinity;
        foreach (float v in x) m = Math.Max(m, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { float e = MathF.Exp(x[i] - m); y[i] = e; sum += e; }
        if (log)
        {
            float lse = m + (float)Math.Log(sum);
            for (int i = 0; i < x.Length; i++) y[i] = x[i] - lse;
        }
        else
        {
            float inv = (float)(1.0 / sum);
            for (int i = 0; i < x.Length; i++) y[i] *= inv;
        }
    }

    public static void Strided(ReadOnlySpan<float> x, Span<float> y, int outer, int n, int inner, bool log)
    {
        var col = new float[n]; var res = new float[n];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                for (int r = 0; r < n; r++) col[r] = x[(o * n + r) * inner + i];
                Row(col, res, log);
                for (int r = 0; r < n; r++) y[(o * n + r) * inner + i] = res[r];
            }
    }

    public static void BackwardRows(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int n, bool log)
    {
        for (int r = 0; r < rows; r++) BackwardRow(y.Slice(r * n, n), dy.Slice(r * n, n), dx.Slice(r * n, n), log);
    }

    static void BackwardRow(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, bool log)
    {
        if (log)
        {
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += dy[i];
            for (int i = 0; i < y.Length; i++) dx[i] += dy[i] - MathF.Exp(y[i]) * (float)s;
        }
        else
        {
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += dy[i] * y[i];
            for (int i = 0; i < y.Length; i++) dx[i] += y[i] * (dy[i] - (float)s);
        }
    }

    public static void BackwardStrided(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int outer, int n, int inner, bool log)
    {
        var cy = new float[n]; var cd = new float[n]; var cx = new float[n];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                for (int r = 0; r < n; r++) { int k = (o * n + r) * inner + i; cy[r] = y[k]; cd[r] = dy[k]; cx[r] = 0; }
                BackwardRow(cy, cd, cx, log);
                for (int r = 0; r < n; r++) dx[(o * n + r) * inner + i] += cx[r];
            }
    }
}
