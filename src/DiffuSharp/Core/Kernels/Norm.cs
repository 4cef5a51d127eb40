// Group-norm kernels over raw float pointers (layer norm is in Norm.LayerNorm.cs, the dropout mask in
// Dropout.cs), forward and backward, optionally fused with SiLU. Semantics follow
// torch.nn.functional.group_norm / layer_norm: per-group (per-row) mean and *biased* variance, eps added inside
// the square root, then a per-channel (per-position) affine map. improved-diffusion's GroupNorm32 upcasts to
// float32 for this; we compute the statistics from float32 data with double accumulators — group norm in one pass of
// Σd, Σd² shifted by the group's first value (ShiftedMoments), layer norm in two (mean, then Σ(x − mean)²) — so they
// stay exact to float precision even for long groups or inputs whose mean is large against their spread, where a
// one-pass E[x²] − E[x]² in float would cancel.
//
// Determinism: every (batch, group) pair or row is summed by one thread in a fixed order; per-channel weight
// and bias gradients are written per (batch, channel) or per fixed-size row chunk and reduced afterwards in
// index order, so results never depend on Parallelism.MaxThreads.
using System.Buffers;

namespace DiffuSharp.Kernels;

/// <summary>The activation fused after the normalisation: its value and its derivative in terms of z.</summary>
internal interface INormActivation
{
    static abstract bool IsIdentity { get; }
    static abstract float Forward(float z);
    static abstract Vector256<float> Forward(Vector256<float> z);
    static abstract Vector512<float> Forward(Vector512<float> z);
    /// <summary>dz from dy, given the pre-activation z and the forward's output y = act(z).</summary>
    static abstract float Backward(float dy, float z, float y);
    static abstract Vector256<float> Backward(Vector256<float> dy, Vector256<float> z, Vector256<float> y);
}

/// <summary>y = z</summary>
internal readonly struct IdentityActivation : INormActivation
{
    public static bool IsIdentity => true;
    public static float Forward(float z) => z;
    public static Vector256<float> Forward(Vector256<float> z) => z;
    public static Vector512<float> Forward(Vector512<float> z) => z;
    public static float Backward(float dy, float z, float y) => dy;
    public static Vector256<float> Backward(Vector256<float> dy, Vector256<float> z, Vector256<float> y) => dy;
}

/// <summary>y = z·σ(z), dz = dy·(σ + z·σ·(1 − σ)) = dy·(σ + y·(1 − σ)) with σ = y/z read back from the forward's
/// output: one division instead of an exponential. y = fl(z·σ), so y/z is σ to within an ulp or two for any z not
/// within 2⁻⁶⁰ of 0, where σ = ½ to far better than float precision.</summary>
internal readonly struct SiluActivation : INormActivation
{
    const float Tiny = 8.6736174e-19f;                    // 2⁻⁶⁰

    public static bool IsIdentity => false;
    public static float Forward(float z) => SiluOp.Invoke(z);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Forward(Vector256<float> z) => SiluOp.Invoke(z);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Forward(Vector512<float> z) => SiluOp.Invoke(z);
    public static float Backward(float dy, float z, float y)
    {
        float s = Math.Abs(z) > Tiny ? y / z : 0.5f;
        return dy * MathF.FusedMultiplyAdd(y, 1f - s, s);
    }
    public static Vector256<float> Backward(Vector256<float> dy, Vector256<float> z, Vector256<float> y)
    {
        var s = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Abs(z), Vector256.Create(Tiny)), y / z, Vector256.Create(0.5f));
        return dy * Vector256.FusedMultiplyAdd(y, Vector256<float>.One - s, s);
    }

    /// <summary>dz from z alone, σ by its definition: the reference for <see cref="Backward(float, float, float)"/>.</summary>
    internal static float BackwardReference(float dy, float z)
    {
        double sg = 1.0 / (1.0 + Math.Exp(-(double)z));
        return (float)(dy * sg * (1.0 + z * (1.0 - sg)));
    }
}

internal static unsafe partial class Norm
{
    /// <summary>Work smaller than this many elements per thread runs on fewer threads.</summary>
    internal const int MinElementsPerThread = 1 << 14;

    // ---- group norm ---------------------------------------------------------------------------------------

    /// <summary>y = act((x − μ)·rstd·γ + β) per (batch, group). x, y: (N, C, S); gamma, beta: (C);
    /// mean: (N·G, 2) as <see cref="Centre"/> (hi, lo) pairs and rstd: (N·G), written for the backward.</summary>
    public static void GroupNormForward<TAct>(float* x, float* gamma, float* beta, float* y, float* mean, float* rstd,
        int n, int c, int s, int groups, float eps) where TAct : struct, INormActivation
    {
        int block = c / groups * s;
        var work = new GroupNormForwardWork<TAct>(x, gamma, beta, y, mean, rstd, c, s, groups, eps);
        ParallelFor.RunRange(n * groups, work, Math.Max(1, MinElementsPerThread / Math.Max(1, block)));
    }

    /// <summary>The statistics of <see cref="GroupNormForward{TAct}"/> alone: mean (N·G, 2) as <see cref="Centre"/>
    /// (hi, lo) pairs and rstd (N·G), the same bits. x: (N, C, S).</summary>
    public static void GroupNormStatistics(float* x, float* mean, float* rstd, int n, int c, int s, int groups, float eps) =>
        GroupNormStatistics(new ChannelPair(x, c, null, 0), mean, rstd, n, s, groups, eps);

    /// <summary>The same for the channels of two tensors side by side (their concatenation, not made). A group inside
    /// one of them is summed as above (the same bits); a group across the seam is summed in its two parts and the
    /// moments combined (Chan et al.), which agrees with the one-pass sum to far below float precision.</summary>
    public static void GroupNormStatistics(in ChannelPair x, float* mean, float* rstd, int n, int s, int groups, float eps)
    {
        int block = x.Channels / groups * s;
        var work = new GroupStatisticsWork(x, mean, rstd, s, groups, eps);
        ParallelFor.RunRange(n * groups, work, Math.Max(1, MinElementsPerThread / Math.Max(1, block)));
    }

    /// <summary>μ and 1/√(σ² + eps) of one group of len contiguous floats (see the file header).</summary>
    internal static (Centre Mean, float Rstd) GroupStatistics(float* xb, int len, float eps)
    {
        var (mu, var) = ShiftedMoments(xb, len);
        return (new Centre(mu), (float)(1.0 / Math.Sqrt(var + eps)));
    }

    /// <summary>Mean and biased variance of p[0 .. len) in one pass: Σd and Σd² in double with d = p[i] − p[0]. The
    /// shift keeps Σd² − (Σd)²/len free of cancellation however large |μ| is against σ: its rounding error is ~1e-16
    /// of Σd², below float precision unless p[0] lies ~10⁴ σ from the mean. Sixteen at a time where the machine has
    /// them, in an order fixed by len (and the machine's vector width).</summary>
    internal static (double Mean, double Variance) ShiftedMoments(float* p, int len)
    {
        if (len <= 0) return (0, 0);
        double k = p[0], s = 0, q = 0;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var vk = Vector512.Create(k);
            var s0 = Vector512<double>.Zero; var s1 = s0; var q0 = s0; var q1 = s0;
            for (; i + 16 <= len; i += 16)
            {
                var v = Vector512.Load(p + i);
                var d0 = Vector512.WidenLower(v) - vk; var d1 = Vector512.WidenUpper(v) - vk;
                s0 += d0; s1 += d1;
                q0 = Vector512.FusedMultiplyAdd(d0, d0, q0); q1 = Vector512.FusedMultiplyAdd(d1, d1, q1);
            }
            s = Vector512.Sum(s0 + s1); q = Vector512.Sum(q0 + q1);
        }
        else
        {
            var vk = Vector256.Create(k);
            var s0 = Vector256<double>.Zero; var s1 = s0; var q0 = s0; var q1 = s0;
            for (; i + 8 <= len; i += 8)
            {
                var v = Vector256.Load(p + i);
                var d0 = Vector256.WidenLower(v) - vk; var d1 = Vector256.WidenUpper(v) - vk;
                s0 += d0; s1 += d1;
                q0 = Vector256.FusedMultiplyAdd(d0, d0, q0); q1 = Vector256.FusedMultiplyAdd(d1, d1, q1);
            }
            s = Vector256.Sum(s0 + s1); q = Vector256.Sum(q0 + q1);
        }
        for (; i < len; i++) { double d = p[i] - k; s += d; q += d * d; }
        double dm = s / len;
        return (k + dm, Math.Max(0, q / len - dm * dm));
    }

    readonly struct GroupStatisticsWork(ChannelPair x, float* mean, float* rstd, int s, int groups, float eps) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            int cg = x.Channels / groups;
            for (int pair = begin; pair < end; pair++)
            {
                int b = pair / groups, c0 = pair % groups * cg, c1 = c0 + cg, seam = x.First;
                Centre m; float rs;
                if (c1 <= seam || c0 >= seam)
                    (m, rs) = GroupStatistics(x.Plane(c0, s, out long stride) + b * stride, cg * s, eps);
                else
                {
                    int n1 = (seam - c0) * s, n2 = (c1 - seam) * s;
                    var (m1, v1) = ShiftedMoments(x.Plane(c0, s, out long stride1) + b * stride1, n1);
                    var (m2, v2) = ShiftedMoments(x.Plane(seam, s, out long stride2) + b * stride2, n2);
                    double nn = (double)n1 + n2, delta = m2 - m1;
                    double mu = m1 + delta * n2 / nn, var = (v1 * n1 + v2 * n2 + delta * delta * n1 * n2 / nn) / nn;
                    (m, rs) = (new Centre(mu), (float)(1.0 / Math.Sqrt(var + eps)));
                }
                m.Store(mean + 2 * pair);
                rstd[pair] = rs;
            }
        }
    }

    /// <summary>Backward of <see cref="GroupNormForward{TAct}"/>. With dz = dy·act'(z) and x̂ = (x − μ)·rstd:
    /// writes sumDzXhat[n, c] = Σ_s dz·x̂ and sumDz[n, c] = Σ_s dz (the weight and bias gradients before the
    /// reduction over the batch) and, when dx is not null, adds dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
    /// with dx̂ = dz·γ (or writes dx = … when not <paramref name="accumulate"/>).</summary>
    public static void GroupNormBackward<TAct>(float* x, float* y, float* dy, float* gamma, float* beta, float* mean, float* rstd,
        float* dx, double* sumDzXhat, double* sumDz, int n, int c, int s, int groups, bool accumulate = true) where TAct : struct, INormActivation
    {
        int block = c / groups * s;
        var work = new GroupNormBackwardWork<TAct>(x, y, dy, gamma, beta, mean, rstd, dx, sumDzXhat, sumDz, c, s, groups, accumulate);
        ParallelFor.RunRange(n * groups, work, Math.Max(1, MinElementsPerThread / Math.Max(1, block)));
    }

    /// <summary>dst[ch] += Σ_b part[b, ch], summed over b in index order (deterministic).</summary>
    public static void ReduceOverBatch(double* part, int n, int c, Span<float> dst)
    {
        for (int ch = 0; ch < c; ch++)
        {
            double acc = 0;
            for (int b = 0; b < n; b++) acc += part[(long)b * c + ch];
            dst[ch] += (float)acc;
        }
    }

    readonly struct GroupNormForwardWork<TAct>(float* x, float* gamma, float* beta, float* y, float* mean, float* rstd,
        int c, int s, int groups, float eps) : IRangeWorkItem where TAct : struct, INormActivation
    {
        public void Invoke(int begin, int end)
        {
            int cg = c / groups, len = cg * s;
            for (int pair = begin; pair < end; pair++)
            {
                int b = pair / groups, g = pair % groups;
                long at = ((long)b * c + g * cg) * s;
                float* xb = x + at, yb = y + at;
                var (m, rsf) = GroupStatistics(xb, len, eps);
                m.Store(mean + 2 * pair);
                rstd[pair] = rsf;
                // a = rstd·γ in float, exactly as the backward recomputes it, so both see the same z.
                for (int k = 0; k < cg; k++)
                {
                    int ch = g * cg + k;
                    AffineRow<TAct>(xb + (long)k * s, yb + (long)k * s, s, m, rsf * gamma[ch], beta[ch]);
                }
            }
        }
    }

    readonly struct GroupNormBackwardWork<TAct>(float* x, float* y, float* dy, float* gamma, float* beta, float* mean, float* rstd,
        float* dx, double* sumDzXhat, double* sumDz, int c, int s, int groups, bool accumulate) : IRangeWorkItem where TAct : struct, INormActivation
    {
        public void Invoke(int begin, int end)
        {
            int cg = c / groups, len = cg * s;
            // dz = dy·act'(z) is needed twice (sums, then dx); for SiLU it is kept in scratch rather than recomputed.
            float[]? scratch = TAct.IsIdentity ? null : ArrayPool<float>.Shared.Rent(len);
            try
            {
                fixed (float* dzScratch = scratch)
                    for (int pair = begin; pair < end; pair++) Pair(pair, cg, len, dzScratch);
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }

        void Pair(int pair, int cg, int len, float* dzScratch)
        {
            int b = pair / groups, g = pair % groups;
            long at = ((long)b * c + g * cg) * s;
            float* xb = x + at, yb = y + at, dyb = dy + at;
            float* dz = TAct.IsIdentity ? dyb : dzScratch;
            var m = Centre.Load(mean + 2 * pair);
            float rs = rstd[pair];
            // Pass 1: per channel, Σ dz and Σ dz·(x − μ) (double), giving the sums for dγ, dβ and the group means.
            double m1 = 0, m2 = 0;
            for (int k = 0; k < cg; k++)
            {
                int ch = g * cg + k;
                float* xc = xb + (long)k * s, dzc = dz + (long)k * s;
                GradSumsRow<TAct>(xc, yb + (long)k * s, dyb + (long)k * s, dzc, s, m, rs * gamma[ch], beta[ch], out double sDz, out double sDzXc);
                long nc = (long)b * c + ch;
                sumDz[nc] = sDz;
                sumDzXhat[nc] = sDzXc * rs;
                m1 += gamma[ch] * sDz;                 // Σ dx̂
                m2 += gamma[ch] * sDzXc * rs;          // Σ dx̂·x̂
            }
            if (dx is null) return;
            m1 /= len; m2 /= len;
            // Pass 2: dx += rstd·γ·dz − rstd²·m2·(x − μ) − rstd·m1, one row per channel.
            float k2 = (float)(-(double)rs * rs * m2), k0 = (float)(-(double)rs * m1);
            for (int k = 0; k < cg; k++)
            {
                int ch = g * cg + k;
                long off = (long)k * s;
                if (accumulate) InputGradRow<Accumulating>(xb + off, dz + off, dx + at + off, s, m, rs * gamma[ch], k2, k0);
                else InputGradRow<Writing>(xb + off, dz + off, dx + at + off, s, m, rs * gamma[ch], k2, k0);
            }
        }
    }

    // ---- row helpers ----------------------------------------------------------------------------------------

    /// <summary>Σ p[i], accumulated in double (fixed order: two 4-wide double lanes, then the tail).</summary>
    internal static double Sum(float* p, int len)
    {
        var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
        int i = 0;
        for (; i + 8 <= len; i += 8)
        {
            var v = Vector256.Load(p + i);
            a0 += Vector256.WidenLower(v); a1 += Vector256.WidenUpper(v);
        }
        double sum = Vector256.Sum(a0 + a1);
        for (; i < len; i++) sum += p[i];
        return sum;
    }

    /// <summary>Σ (p[i] − mu)², differences and squares in double.</summary>
    internal static double SumSquaredDeviation(float* p, int len, double mu)
    {
        var vm = Vector256.Create(mu);
        var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
        int i = 0;
        for (; i + 8 <= len; i += 8)
        {
            var v = Vector256.Load(p + i);
            var d0 = Vector256.WidenLower(v) - vm; var d1 = Vector256.WidenUpper(v) - vm;
            a0 = Vector256.FusedMultiplyAdd(d0, d0, a0); a1 = Vector256.FusedMultiplyAdd(d1, d1, a1);
        }
        double sum = Vector256.Sum(a0 + a1);
        for (; i < len; i++) { double d = p[i] - mu; sum += d * d; }
        return sum;
    }

    /// <summary>y = act((x − μ)·a + b) over one channel row.</summary>
    internal static void AffineRow<TAct>(float* x, float* y, int len, Centre m, float a, float b) where TAct : struct, INormActivation
    {
        var va = Vector256.Create(a); var vb = Vector256.Create(b);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            // sixteen at a time where the machine has them: the same operations, the same bits
            var wa = Vector512.Create(a); var wb = Vector512.Create(b);
            var hi = Vector512.Create(m.Hi); var lo = Vector512.Create(m.Lo);
            for (; i + 16 <= len; i += 16)
                TAct.Forward(Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - hi - lo, wa, wb)).Store(y + i);
        }
        for (; i + 8 <= len; i += 8)
            TAct.Forward(Vector256.FusedMultiplyAdd(m.Sub(Vector256.Load(x + i)), va, vb)).Store(y + i);
        if (i < len)
        {
            // the tail through the vector code too, so every element gets the same bits whatever its position
            // (the lane layout of ConvLanes.ToLanes applies this map along the batch instead)
            var t = stackalloc float[8];
            new Span<float>(t, 8).Clear();
            for (int j = i; j < len; j++) t[j - i] = x[j];
            TAct.Forward(Vector256.FusedMultiplyAdd(m.Sub(Vector256.Load(t)), va, vb)).Store(t);
            for (int j = i; j < len; j++) y[j] = t[j - i];
        }
    }

    /// <summary>Over one channel row: dz = act'(z)·dy with z = (x − μ)·a + b recomputed and y the forward's output
    /// (stored to dz unless the activation is the identity, when dz is dy and y is not read), and Σ dz, Σ dz·(x − μ)
    /// with products and sums in double.</summary>
    static void GradSumsRow<TAct>(float* x, float* y, float* dy, float* dz, int len, Centre m, float a, float b,
        out double sumDz, out double sumDzXc) where TAct : struct, INormActivation
    {
        var va = Vector256.Create(a); var vb = Vector256.Create(b);
        var s0 = Vector256<double>.Zero; var s1 = Vector256<double>.Zero;
        var p0 = Vector256<double>.Zero; var p1 = Vector256<double>.Zero;
        int i = 0;
        for (; i + 8 <= len; i += 8)
        {
            var xc = m.Sub(Vector256.Load(x + i));
            var g = Vector256.Load(dy + i);
            if (!TAct.IsIdentity)
            {
                g = TAct.Backward(g, Vector256.FusedMultiplyAdd(xc, va, vb), Vector256.Load(y + i));
                g.Store(dz + i);
            }
            var g0 = Vector256.WidenLower(g); var g1 = Vector256.WidenUpper(g);
            s0 += g0; s1 += g1;
            p0 = Vector256.FusedMultiplyAdd(g0, Vector256.WidenLower(xc), p0);
            p1 = Vector256.FusedMultiplyAdd(g1, Vector256.WidenUpper(xc), p1);
        }
        sumDz = Vector256.Sum(s0 + s1);
        sumDzXc = Vector256.Sum(p0 + p1);
        for (; i < len; i++)
        {
            float xc = m.Sub(x[i]), g = dy[i];
            if (!TAct.IsIdentity) dz[i] = g = TAct.Backward(g, MathF.FusedMultiplyAdd(xc, a, b), y[i]);
            sumDz += g; sumDzXc += (double)g * xc;
        }
    }

    /// <summary>dx (+)= a·dz + k2·(x − μ) + k0 over one channel row.</summary>
    static void InputGradRow<TStore>(float* x, float* dz, float* dx, int len, Centre m, float a, float k2, float k0) where TStore : struct, IGradStore
    {
        var va = Vector256.Create(a);
        var v2 = Vector256.Create(k2); var v0 = Vector256.Create(k0);
        int i = 0;
        for (; i + 8 <= len; i += 8)
        {
            var t = Vector256.FusedMultiplyAdd(m.Sub(Vector256.Load(x + i)), v2, v0);
            TStore.Store(dx + i, Vector256.FusedMultiplyAdd(Vector256.Load(dz + i), va, t));
        }
        for (; i < len; i++) TStore.Store(dx + i, MathF.FusedMultiplyAdd(dz[i], a, MathF.FusedMultiplyAdd(m.Sub(x[i]), k2, k0)));
    }

    /// <summary>How a backward row lands in a gradient: added to it, or written into a fresh one.</summary>
    internal interface IGradStore { static abstract void Store(float* dst, Vector256<float> v); static abstract void Store(float* dst, float v); }

    /// <summary>dst += v</summary>
    internal readonly struct Accumulating : IGradStore
    {
        public static void Store(float* dst, Vector256<float> v) => (Vector256.Load(dst) + v).Store(dst);
        public static void Store(float* dst, float v) => *dst += v;
    }

    /// <summary>dst = v</summary>
    internal readonly struct Writing : IGradStore
    {
        public static void Store(float* dst, Vector256<float> v) => v.Store(dst);
        public static void Store(float* dst, float v) => *dst = v;
    }

    /// <summary>μ as an unevaluated float sum hi + lo. x − μ is computed as (x − hi) − lo: x − hi is exact for x within a
    /// factor 2 of hi (Sterbenz), so x̂ keeps full float precision even when |μ| ≫ σ, where a float μ alone would
    /// already be off by ½ulp(μ). One extra subtraction per element, in kernels bound by memory traffic.</summary>
    internal readonly struct Centre
    {
        readonly float _hi, _lo;
        readonly Vector256<float> _vHi, _vLo;

        public Centre(double mu) : this((float)mu, (float)(mu - (float)mu)) { }

        Centre(float hi, float lo)
        {
            _hi = hi; _lo = lo;
            _vHi = Vector256.Create(hi); _vLo = Vector256.Create(lo);
        }

        public float Hi => _hi;
        public float Lo => _lo;
        public static Centre Load(float* p) => new(p[0], p[1]);
        public void Store(float* p) { p[0] = _hi; p[1] = _lo; }
        public float Sub(float x) => x - _hi - _lo;
        public Vector256<float> Sub(Vector256<float> x) => x - _vHi - _vLo;
    }
}
