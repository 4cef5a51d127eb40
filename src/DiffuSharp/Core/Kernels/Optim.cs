// Optimizer kernels over flat float spans: the AdamW update (SIMD, with its scalar reference beside it), the EMA
// update, and the sum of squares behind global-norm clipping. The AdamW and EMA element updates reproduce
// PyTorch 1.13's CPU float32 kernels operation for operation, including where ATen fuses a multiply-add (checked
// bit for bit against torch: `add_(g, alpha=a)` is fma(g, a, self), `addcmul_(g, g, value=c)` is
// fma(c·g, g, self), `addcdiv_(m, d, value=c)` is self + (c·m)/d, and a division by a Python float is a true
// division, not a multiplication by its reciprocal). All elementwise work is split over threads; the sum of
// squares is split into fixed blocks, so every result is independent of the thread count.
namespace DiffuSharp.Kernels;

/// <summary>The float32 scalars of one AdamW step, each rounded once from the double the optimizer computed
/// (as PyTorch converts its Python-float scalars).</summary>
internal readonly record struct AdamWScalars(
    float Decay,            // 1 − lr·wd
    float Beta1, float OneMinusBeta1,
    float Beta2, float OneMinusBeta2,
    float Bc2Sqrt,          // √(1 − β2^t)
    float Eps,
    float NegStepSize);     // −lr / (1 − β1^t)

internal static unsafe class Optim
{
    const int ParallelThreshold = 1 << 15;
    /// <summary>Block size of the sum-of-squares partials: fixed, so the summation order never depends on threads.</summary>
    const int SumBlock = 1 << 14;

    /// <summary>One AdamW step in place (torch _single_tensor_adamw): p ← p·decay; m ← fma(g, 1−β1, m·β1);
    /// v ← fma((1−β2)·g, g, v·β2); p ← p + (−stepSize·m) / (√v / √bc2 + eps).</summary>
    public static void AdamWStep(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWScalars s)
    {
        if (g.Length != p.Length || m.Length != p.Length || v.Length != p.Length) throw new ArgumentException("Optim.AdamWStep: length mismatch.");
        fixed (float* pp = p, pg = g, pm = m, pv = v)
        {
            var work = new AdamWWork(pp, pg, pm, pv, s);
            if (p.Length < ParallelThreshold) work.Invoke(0, p.Length);
            else ParallelFor.RunRange(p.Length, work, ParallelThreshold / 2);
        }
    }

    /// <summary>Scalar loop, for tests: the same operations in the same order as the vector body.</summary>
    internal static void AdamWReference(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWScalars s)
    {
        for (int i = 0; i < p.Length; i++)
        {
            float pi = p[i] * s.Decay;
            float mi = MathF.FusedMultiplyAdd(g[i], s.OneMinusBeta1, m[i] * s.Beta1);
            float vi = MathF.FusedMultiplyAdd(s.OneMinusBeta2 * g[i], g[i], v[i] * s.Beta2);
            float denom = MathF.Sqrt(vi) / s.Bc2Sqrt + s.Eps;
            p[i] = pi + s.NegStepSize * mi / denom;
            m[i] = mi; v[i] = vi;
        }
    }

    readonly struct AdamWWork(float* p, float* g, float* m, float* v, AdamWScalars s) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            var decay = Vector256.Create(s.Decay);
            var b1 = Vector256.Create(s.Beta1); var omb1 = Vector256.Create(s.OneMinusBeta1);
            var b2 = Vector256.Create(s.Beta2); var omb2 = Vector256.Create(s.OneMinusBeta2);
            var bc2 = Vector256.Create(s.Bc2Sqrt); var eps = Vector256.Create(s.Eps); var step = Vector256.Create(s.NegStepSize);
            int i = begin;
            for (; i + 8 <= end; i += 8)
            {
                var gi = Vector256.Load(g + i);
                var pi = Vector256.Load(p + i) * decay;
                var mi = Vector256.FusedMultiplyAdd(gi, omb1, Vector256.Load(m + i) * b1);
                var vi = Vector256.FusedMultiplyAdd(omb2 * gi, gi, Vector256.Load(v + i) * b2);
                var denom = Vector256.Sqrt(vi) / bc2 + eps;
                (pi + step * mi / denom).Store(p + i);
                mi.Store(m + i); vi.Store(v + i);
            }
            for (; i < end; i++)
            {
                float pi = p[i] * s.Decay;
                float mi = MathF.FusedMultiplyAdd(g[i], s.OneMinusBeta1, m[i] * s.Beta1);
                float vi = MathF.FusedMultiplyAdd(s.OneMinusBeta2 * g[i], g[i], v[i] * s.Beta2);
                float denom = MathF.Sqrt(vi) / s.Bc2Sqrt + s.Eps;
                p[i] = pi + s.NegStepSize * mi / denom;
                m[i] = mi; v[i] = vi;
            }
        }
    }

    /// <summary>target ← fma(src, 1 − rate, target·rate), as torch's targ.mul_(rate).add_(src, alpha=1 − rate).</summary>
    public static void EmaUpdate(Span<float> target, ReadOnlySpan<float> src, float rate, float oneMinusRate)
    {
        if (src.Length != target.Length) throw new ArgumentException("Optim.EmaUpdate: length mismatch.");
        fixed (float* pt = target, ps = src)
        {
            var work = new EmaWork(pt, ps, rate, oneMinusRate);
            if (target.Length < ParallelThreshold) work.Invoke(0, target.Length);
            else ParallelFor.RunRange(target.Length, work, ParallelThreshold / 2);
        }
    }

    readonly struct EmaWork(float* t, float* s, float rate, float oneMinusRate) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            var r = Vector256.Create(rate); var omr = Vector256.Create(oneMinusRate);
            int i = begin;
            for (; i + 8 <= end; i += 8)
                Vector256.FusedMultiplyAdd(Vector256.Load(s + i), omr, Vector256.Load(t + i) * r).Store(t + i);
            for (; i < end; i++) t[i] = MathF.FusedMultiplyAdd(s[i], oneMinusRate, t[i] * rate);
        }
    }

    /// <summary>Σ x², squares and sums in double (a float accumulator over millions of gradients would lose digits),
    /// over fixed blocks summed in order.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        int blocks = (x.Length + SumBlock - 1) / SumBlock;
        if (blocks <= 1) { fixed (float* px = x) return BlockSumOfSquares(px, x.Length); }
        var partial = new double[blocks];
        fixed (float* px = x)
        fixed (double* pp = partial)
            ParallelFor.RunRange(blocks, new SumOfSquaresWork(px, x.Length, pp), 2);
        double total = 0;
        foreach (double b in partial) total += b;
        return total;
    }

    readonly struct SumOfSquaresWork(float* x, int n, double* partial) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int b = begin; b < end; b++)
                partial[b] = BlockSumOfSquares(x + (long)b * SumBlock, Math.Min(SumBlock, n - b * SumBlock));
        }
    }

    static double BlockSumOfSquares(float* x, int n)
    {
        var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector256.Load(x + i);
            var lo = Vector256.WidenLower(v); var hi = Vector256.WidenUpper(v);
            a0 = Vector256.FusedMultiplyAdd(lo, lo, a0); a1 = Vector256.FusedMultiplyAdd(hi, hi, a1);
        }
        double s = Vector256.Sum(a0 + a1);
        for (; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
}
