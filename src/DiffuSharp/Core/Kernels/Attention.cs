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

    /// <summary>Rows [begin, end) of <see cref="Forward"/> on the calling thread.</summary>
    internal static void ForwardRows(float* s, int begin, int end, int n, float scale)
    {
        var vs = Vector256.Create(scale);
        for (int r = begin; r < end; r++)
        {
            float* row = s + (long)r * n;
            // Scale first, then subtract the row maximum so exp never overflows (a negative scale is fine too).
            var vmax = Vector256.Create(float.NegativeInfinity);
            int i = 0;
            for (; i + 8 <= n; i += 8)
            {
                var t = Vector256.Load(row + i) * vs;
                t.Store(row + i);
                vmax = Vector256.Max(vmax, t);
            }
            float max = float.NegativeInfinity;
            for (int k = 0; k < 8; k++) max = Math.Max(max, vmax.GetElement(k));
            for (; i < n; i++) { row[i] *= scale; max = Math.Max(max, row[i]); }
            // Σ exp in double: the normaliser of a long row keeps full float precision.
            var vm = Vector256.Create(max);
            var a0 = Vector256<double>.Zero; var a1 = Vector256<double>.Zero;
            i = 0;
            for (; i + 8 <= n; i += 8)
            {
                var e = ExpF.Exp(Vector256.Load(row + i) - vm);
                e.Store(row + i);
                a0 += Vector256.WidenLower(e); a1 += Vector256.WidenUpper(e);
            }
            double sum = Vector256.Sum(a0 + a1);
            for (; i < n; i++) { float e = MathF.Exp(row[i] - max); row[i] = e; sum += e; }
            var vinv = Vector256.Create((float)(1.0 / sum));
            i = 0;
            for (; i + 8 <= n; i += 8) (Vector256.Load(row + i) * vinv).Store(row + i);
            float inv = (float)(1.0 / sum);
            for (; i < n; i++) row[i] *= inv;
        }
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
