// Row kernels of the fused scaled-dot-product attention (Autograd/Ops.Attention.cs): the scaled softmax
// forward, P = softmax(scale·S) row by row, and its backward dS = scale·P⊙(dP − rowsum(dP⊙P)), both in place
// over (rows, n) row-major buffers. Rows are independent, so they are split over threads; each row is summed in a
// fixed order, so results do not depend on the thread count.
namespace DiffuSharp.Kernels;

internal static unsafe class AttentionSoftmax
{
    /// <summary>s ← softmax(scale·s) per row of n, in place.</summary>
    public static void Forward(float* s, int rows, int n, float scale)
        => ParallelFor.RunRange(rows, new ForwardWork(s, n, scale), Math.Max(1, Norm.MinElementsPerThread / Math.Max(1, n)));

    /// <summary>dp ← scale·p⊙(dp − Σ_j dp_j·p_j) per row of n, in place (p is the forward's output).</summary>
    public static void Backward(float* p, float* dp, int rows, int n, float scale)
        => ParallelFor.RunRange(rows, new BackwardWork(p, dp, n, scale), Math.Max(1, Norm.MinElementsPerThread / Math.Max(1, n)));

    readonly struct ForwardWork(float* s, int n, float scale) : IRangeWorkItem
    {
        public void Invoke(int begin, int end) => ForwardRows(s, begin, end, n, scale);
    }

    readonly struct BackwardWork(float* p, float* dp, int n, float scale) : IRangeWorkItem
    {
        public void Invoke(int begin, int end) => BackwardRows(p, dp, begin, end, n, scale);
    }

    /// <summary>Rows [begin, end) of <see cref="Forward"/> on the calling thread. Each value is scaled first, then the
    /// row maximum subtracted so exp never overflows (a negative scale is fine too): p = e^(scale·s − max) / Σ, with Σ in
    /// double so the normaliser of a long row keeps full float precision. Sixteen lanes at a time where the machine has
    /// them, else eight; the last few of a row through the same vector exp on a padded copy, so every element's
    /// exponential has the same bits wherever it sits.</summary>
    internal static void ForwardRows(float* s, int begin, int end, int n, float scale)
    {
        bool wide = Vector512.IsHardwareAccelerated;
        int step = wide ? 16 : 8, body = n / step * step;
        float* tail = stackalloc float[16];
        for (int r = begin; r < end; r++)
        {
            float* row = s + (long)r * n;
            float max = wide ? ScaledMax512(row, body, scale) : ScaledMax256(row, body, scale);
            for (int i = body; i < n; i++) max = Math.Max(max, row[i] * scale);
            double sum = wide ? Exp512(row, body, scale, max) : Exp256(row, body, scale, max);
            if (body < n)
            {
                // the rest (fewer than a vector) through the vector exp, padded; only the real ones stored and summed
                new Span<float>(tail, 16).Clear();
                for (int i = body; i < n; i++) tail[i - body] = row[i];
                Exp256(tail, 8, scale, max);
                if (n - body > 8) Exp256(tail + 8, 8, scale, max);
                for (int i = body; i < n; i++) { row[i] = tail[i - body]; sum += tail[i - body]; }
            }
            float inv = (float)(1.0 / sum);
            int j = 0;
            if (wide)
            {
                var w = Vector512.Create(inv);
                for (; j + 16 <= n; j += 16) (Vector512.Load(row + j) * w).Store(row + j);
            }
            var v = Vector256.Create(inv);
            for (; j + 8 <= n; j += 8) (Vector256.Load(row + j) * v).Store(row + j);
            for (; j < n; j++) row[j] *= inv;
        }
    }

    /// <summary>max(scale·row[i]) over the first len (a multiple of 16; −∞ for none), nothing stored.</summary>
    static float ScaledMax512(float* row, int len, float scale)
    {
        var vs = Vector512.Create(scale); var m = Vector512.Create(float.NegativeInfinity);
        for (int i = 0; i < len; i += 16) m = Vector512.Max(m, Vector512.Load(row + i) * vs);
        return HorizontalMax(Vector256.Max(m.GetLower(), m.GetUpper()));
    }

    /// <summary>The same eight at a time (len a multiple of 8).</summary>
    static float ScaledMax256(float* row, int len, float scale)
    {
        var vs = Vector256.Create(scale); var m = Vector256.Create(float.NegativeInfinity);
        for (int i = 0; i < len; i += 8) m = Vector256.Max(m, Vector256.Load(row + i) * vs);
        return HorizontalMax(m);
    }

    static float HorizontalMax(Vector256<float> m)
    {
        float max = float.NegativeInfinity;
        for (int k = 0; k < 8; k++) max = Math.Max(max, m.GetElement(k));
        return max;
    }

    /// <summary>row[i] = e^(scale·row[i] − max) over the first len (a multiple of 16), returning their sum in double.</summary>
    static double Exp512(float* row, int len, float scale, float max)
    {
        var vs = Vector512.Create(scale); var vm = Vector512.Create(max);
        var a0 = Vector512<double>.Zero; var a1 = Vector512<double>.Zero;
        int i = 0;
        for (; i + 64 <= len; i += 64)
        {
            // four vectors at a time, added in float first (each lane four values in (0, 1]: within an ulp or two)
            var e0 = ExpF.Exp(Vector512.Load(row + i) * vs - vm);
            var e1 = ExpF.Exp(Vector512.Load(row + i + 16) * vs - vm);
            var e2 = ExpF.Exp(Vector512.Load(row + i + 32) * vs - vm);
            var e3 = ExpF.Exp(Vector512.Load(row + i + 48) * vs - vm);
            e0.Store(row + i); e1.Store(row + i + 16); e2.Store(row + i + 32); e3.Store(row + i + 48);
            var f = (e0 + e1) + (e2 + e3);
            a0 += Vector512.WidenLower(f); a1 += Vector512.WidenUpper(f);
        }
        for (; i < len; i += 16)
        {
            var e = ExpF.Exp(Vector512.Load(row + i) * vs - vm);
            e.Store(row + i);
            a0 += Vector512.WidenLower(e); a1 += Vector512.WidenUpper(e);
        }
        return Vector512.Sum(a0 + a1);
    }

    /// <summary>The same eight at a time (len a multiple of 8).</summary>
    static double Exp256(float* row, int len, float scale, float max)
    {
        var vs = Vector256.Create(scale); var vm = Vector256.Create(max);
        var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
        for (int i = 0; i < len; i += 8)
        {
            var e = ExpF.Exp(Vector256.Load(row + i) * vs - vm);
            e.Store(row + i);
            a0 += Vector256.WidenLower(e); a1 += Vector256.WidenUpper(e);
        }
        return Vector256.Sum(a0 + a1);
    }

    /// <summary>Rows [begin, end) of <see cref="Backward"/> on the calling thread.</summary>
    internal static void BackwardRows(float* p, float* dp, int begin, int end, int n, float scale)
    {
        for (int r = begin; r < end; r++)
        {
            float* pr = p + (long)r * n, dr = dp + (long)r * n;
            var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
            int i = 0;
            for (; i + 8 <= n; i += 8)
            {
                var t = Vector256.Load(dr + i) * Vector256.Load(pr + i);
                a0 += Vector256.WidenLower(t); a1 += Vector256.WidenUpper(t);
            }
            double dot = Vector256.Sum(a0 + a1);
            for (; i < n; i++) dot += dr[i] * pr[i];
            var vd = Vector256.Create((float)dot); var vs = Vector256.Create(scale);
            i = 0;
            for (; i + 8 <= n; i += 8)
                ((Vector256.Load(dr + i) - vd) * Vector256.Load(pr + i) * vs).Store(dr + i);
            float fd = (float)dot;
            for (; i < n; i++) dr[i] = (dr[i] - fd) * pr[i] * scale;
        }
    }

    /// <summary>Scalar double-precision softmax(scale·s) per row, for tests.</summary>
    internal static void Reference(ReadOnlySpan<float> s, Span<float> p, int rows, int n, float scale)
    {
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < n; j++) max = Math.Max(max, (double)scale * s[r * n + j]);
            double sum = 0;
            for (int j = 0; j < n; j++) sum += Math.Exp((double)scale * s[r * n + j] - max);
            for (int j = 0; j < n; j++) p[r * n + j] = (float)(Math.Exp((double)scale * s[r * n + j] - max) / sum);
        }
    }
}
