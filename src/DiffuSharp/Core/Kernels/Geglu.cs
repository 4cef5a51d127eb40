// GEGLU (Shazeer 2020) in one pass: each row of x holds [h | gate], F values each, and y = h · gelu(gate), exact GELU
// (GeluOp's vector form for every element, the last few of a row through a padded vector, so an element's bits do not
// depend on where it sits), and the backward dh = dy · gelu(gate), dgate = dy · h · gelu'(gate) (the vector form of
// Autograd's GeluGradOp, the same operations). Stable
// Diffusion's feed-forward at 64×64 makes 8192 rows of 2 × 1280: split, copied contiguous, mapped and multiplied as
// separate ops it read and wrote the tensor four times.
namespace DiffuSharp.Kernels;

internal static unsafe class Geglu
{
    /// <summary>y (rows, f) = x[:, :f] · gelu(x[:, f:]) for x (rows, 2f).</summary>
    public static void Forward(float* x, int rows, int f, float* y) =>
        ParallelFor.RunRange(rows, new ForwardWork(x, f, y), Math.Max(1, Unary.ParallelThreshold / Math.Max(1, 2 * f)));

    /// <summary>dx (rows, 2f) += the gradient of <see cref="Forward"/> for dy (rows, f).</summary>
    public static void Backward(float* x, float* dy, int rows, int f, float* dx) =>
        ParallelFor.RunRange(rows, new BackwardWork(x, dy, f, dx), Math.Max(1, Unary.ParallelThreshold / Math.Max(1, 2 * f)));

    /// <summary>Scalar reference of the forward (GeluOp's double form), for tests.</summary>
    internal static void Reference(ReadOnlySpan<float> x, int rows, int f, Span<float> y)
    {
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < f; j++) y[r * f + j] = x[r * 2 * f + j] * GeluOp.Invoke(x[r * 2 * f + f + j]);
    }

    /// <summary>d · gelu'(x) = d · (Φ(x) + x·φ(x)) on eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> GeluGrad(Vector256<float> d, Vector256<float> x)
    {
        var cdf = SpecialFunctions.GeluCdf(x, out var gauss);
        return d * Vector256.FusedMultiplyAdd(x * gauss, Vector256.Create(0.39894228040143268f), cdf);
    }

    readonly struct ForwardWork(float* x, int f, float* y) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            float* pad = stackalloc float[16];
            for (int r = begin; r < end; r++)
            {
                float* h = x + (long)r * 2 * f, g = h + f, yr = y + (long)r * f;
                int j = 0;
                for (; j + 8 <= f; j += 8) (Vector256.Load(h + j) * GeluOp.Invoke(Vector256.Load(g + j))).Store(yr + j);
                if (j == f) continue;
                new Span<float>(pad, 16).Clear();
                for (int k = j; k < f; k++) { pad[k - j] = h[k]; pad[8 + k - j] = g[k]; }
                (Vector256.Load(pad) * GeluOp.Invoke(Vector256.Load(pad + 8))).Store(pad);
                for (int k = j; k < f; k++) yr[k] = pad[k - j];
            }
        }
    }

    readonly struct BackwardWork(float* x, float* dy, int f, float* dx) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            float* pad = stackalloc float[24];
            for (int r = begin; r < end; r++)
            {
                float* h = x + (long)r * 2 * f, g = h + f, d = dy + (long)r * f, dh = dx + (long)r * 2 * f, dg = dh + f;
                int j = 0;
                for (; j + 8 <= f; j += 8)
                {
                    var dv = Vector256.Load(d + j); var gv = Vector256.Load(g + j);
                    (Vector256.Load(dh + j) + dv * GeluOp.Invoke(gv)).Store(dh + j);
                    (Vector256.Load(dg + j) + GeluGrad(dv * Vector256.Load(h + j), gv)).Store(dg + j);
                }
                if (j == f) continue;
                new Span<float>(pad, 24).Clear();
                for (int k = j; k < f; k++) { pad[k - j] = h[k]; pad[8 + k - j] = g[k]; pad[16 + k - j] = d[k]; }
                var dt = Vector256.Load(pad + 16); var gt = Vector256.Load(pad + 8);
                var a = dt * GeluOp.Invoke(gt);
                var b = GeluGrad(dt * Vector256.Load(pad), gt);
                a.Store(pad); b.Store(pad + 8);
                for (int k = j; k < f; k++) { dh[k] += pad[k - j]; dg[k] += pad[8 + k - j]; }
            }
        }
    }
}
