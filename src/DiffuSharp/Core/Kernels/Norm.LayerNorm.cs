// Layer-norm kernels (torch.nn.functional.layer_norm over the trailing D elements of each row), forward and
// backward; statistics in double in two passes (the mean, then Σ(x − μ)²), μ kept as a hi + lo pair as in Norm.cs.
// The per-position weight and bias gradients are summed per fixed chunk of rows and then over the chunks in index
// order, so they do not depend on the thread count.
using System.Buffers;

namespace DiffuSharp.Kernels;

internal static unsafe partial class Norm
{
    /// <summary>Rows per chunk of the layer-norm weight-gradient partial sums: fixed, so the reduction order does
    /// not depend on the thread count.</summary>
    internal const int LayerNormRowsPerChunk = 32;

    /// <summary>y = (x − μ)·rstd·γ + β per row. x, y: (R, D); gamma, beta: (D); mean: (R, 2) (hi, lo); rstd: (R).</summary>
    public static void LayerNormForward(float* x, float* gamma, float* beta, float* y, float* mean, float* rstd, int rows, int d, float eps)
    {
        var work = new LayerNormForwardWork(x, gamma, beta, y, mean, rstd, d, eps);
        ParallelFor.RunRange(rows, work, Math.Max(1, MinElementsPerThread / Math.Max(1, d)));
    }

    /// <summary>Backward of <see cref="LayerNormForward"/>: dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with
    /// dx̂ = dy·γ (when dx is not null); dGamma += Σ_rows dy·x̂, dBeta += Σ_rows dy (when not null).</summary>
    public static void LayerNormBackward(float* x, float* dy, float* gamma, float* mean, float* rstd,
        float* dx, float* dGamma, float* dBeta, int rows, int d)
    {
        int chunks = (rows + LayerNormRowsPerChunk - 1) / LayerNormRowsPerChunk;
        bool partials = dGamma is not null || dBeta is not null;
        // Per-chunk partial sums of dγ and dβ (float within a chunk of 32 rows, double across chunks).
        float[]? part = partials ? ArrayPool<float>.Shared.Rent(2 * chunks * d) : null;
        try
        {
            fixed (float* pp = part)
            {
                var work = new LayerNormBackwardWork(x, dy, gamma, mean, rstd, dx, pp, rows, d);
                int perThread = Math.Max(1, MinElementsPerThread / Math.Max(1, d * LayerNormRowsPerChunk));
                ParallelFor.RunRange(chunks, work, perThread);
                if (!partials) return;
                for (int i = 0; i < d; i++)
                {
                    double gAcc = 0, bAcc = 0;
                    for (int ck = 0; ck < chunks; ck++) { gAcc += pp[(2L * ck) * d + i]; bAcc += pp[(2L * ck + 1) * d + i]; }
                    if (dGamma is not null) dGamma[i] += (float)gAcc;
                    if (dBeta is not null) dBeta[i] += (float)bAcc;
                }
            }
        }
        finally
        {
            if (part is not null) ArrayPool<float>.Shared.Return(part);
        }
    }

    readonly struct LayerNormForwardWork(float* x, float* gamma, float* beta, float* y, float* mean, float* rstd, int d, float eps) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int r = begin; r < end; r++)
            {
                float* xr = x + (long)r * d, yr = y + (long)r * d;
                double mu = Sum(xr, d) / d;
                double rs = 1.0 / Math.Sqrt(SumSquaredDeviation(xr, d, mu) / d + eps);
                var m = new Centre(mu);
                float rsf = (float)rs;
                m.Store(mean + 2 * r); rstd[r] = rsf;
                var vr = Vector256.Create(rsf);
                int i = 0;
                for (; i + 8 <= d; i += 8)
                {
                    var xh = m.Sub(Vector256.Load(xr + i)) * vr;
                    Vector256.FusedMultiplyAdd(xh, Vector256.Load(gamma + i), Vector256.Load(beta + i)).Store(yr + i);
                }
                for (; i < d; i++) yr[i] = MathF.FusedMultiplyAdd(m.Sub(xr[i]) * rsf, gamma[i], beta[i]);
            }
        }
    }

    readonly struct LayerNormBackwardWork(float* x, float* dy, float* gamma, float* mean, float* rstd, float* dx, float* part, int rows, int d) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int ck = begin; ck < end; ck++)
            {
                float* pg = part is null ? null : part + 2L * ck * d, pb = pg is null ? null : pg + d;
                if (pg is not null) { new Span<float>(pg, 2 * d).Clear(); }
                int r1 = Math.Min(rows, (ck + 1) * LayerNormRowsPerChunk);
                for (int r = ck * LayerNormRowsPerChunk; r < r1; r++) Row(r, pg, pb);
            }
        }

        void Row(int r, float* pg, float* pb)
        {
            float* xr = x + (long)r * d, dyr = dy + (long)r * d;
            var m = Centre.Load(mean + 2 * r);
            float rs = rstd[r];
            var vr = Vector256.Create(rs);
            // Pass 1: Σ dx̂ and Σ dx̂·x̂ in double; the per-chunk dγ, dβ partials.
            var s1 = Vector256<double>.Zero; var s2 = Vector256<double>.Zero;
            int i = 0;
            for (; i + 8 <= d; i += 8)
            {
                var xh = m.Sub(Vector256.Load(xr + i)) * vr;
                var g = Vector256.Load(dyr + i);
                var dxh = g * Vector256.Load(gamma + i);
                var prod = dxh * xh;
                s1 += Vector256.WidenLower(dxh) + Vector256.WidenUpper(dxh);
                s2 += Vector256.WidenLower(prod) + Vector256.WidenUpper(prod);
                if (pg is not null)
                {
                    Vector256.FusedMultiplyAdd(g, xh, Vector256.Load(pg + i)).Store(pg + i);
                    (Vector256.Load(pb + i) + g).Store(pb + i);
                }
            }
            double m1 = Vector256.Sum(s1), m2 = Vector256.Sum(s2);
            for (; i < d; i++)
            {
                float xh = m.Sub(xr[i]) * rs, g = dyr[i], dxh = g * gamma[i];
                m1 += dxh; m2 += dxh * xh;
                if (pg is not null) { pg[i] = MathF.FusedMultiplyAdd(g, xh, pg[i]); pb[i] += g; }
            }
            if (dx is null) return;
            m1 /= d; m2 /= d;
            // Pass 2: dx += rstd·(dx̂ − m1 − x̂·m2)
            float* dxr = dx + (long)r * d;
            float fm1 = (float)m1, fm2 = (float)m2;
            var v1 = Vector256.Create(fm1); var v2 = Vector256.Create(fm2);
            i = 0;
            for (; i + 8 <= d; i += 8)
            {
                var xh = m.Sub(Vector256.Load(xr + i)) * vr;
                var dxh = Vector256.Load(dyr + i) * Vector256.Load(gamma + i);
                var t = dxh - v1 - xh * v2;
                Vector256.FusedMultiplyAdd(t, vr, Vector256.Load(dxr + i)).Store(dxr + i);
            }
            for (; i < d; i++)
            {
                float xh = m.Sub(xr[i]) * rs, dxh = dyr[i] * gamma[i];
                dxr[i] = MathF.FusedMultiplyAdd(dxh - fm1 - xh * fm2, rs, dxr[i]);
            }
        }
    }
}
