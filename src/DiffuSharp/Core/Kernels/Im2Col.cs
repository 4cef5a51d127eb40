// im2col / col2im for NCHW convolution (Caffe's im2col_cpu / col2im_cpu, and PyTorch's slow_conv2d which lowers
// conv2d to GEMM the same way), plus the scalar direct convolution that tests compare against.
//
// Layout. One image x (C, H, W) with a kh×kw kernel, stride s and zero padding p gives output (Ho, Wo),
// Ho = (H + 2p − kh)/s + 1. Its column matrix has CKK = C·kh·kw rows and Ho·Wo columns:
//     col[(c·kh + i)·kw + j, oy·Wo + ox] = x[c, oy·s − p + i, ox·s − p + j]   (0 outside the image)
// Rows are written with a caller-given leading dimension, so a chunk of G images can share one matrix
// (CKK, G·Ho·Wo) with image b in columns [b·Ho·Wo, (b+1)·Ho·Wo): "folded" into the GEMM's N (forward, dx) or
// K (dW) dimension. col2im is the adjoint: dx[c, iy, ix] += Σ over the (i, j, oy, ox) that read it.
//
// Deviations from Caffe: stride-1 convolutions that keep the width copy whole planes at a shift instead of
// short rows (see SameChannel). Work is split over (image, channel) pairs. A pair owns its kh·kw column rows in im2col
// and its own dx plane in col2im, so the parallel split never changes a sum's order (bit-identical results for
// any thread count).
namespace DiffuSharp.Kernels;

/// <summary>Geometry of a 2-D convolution of one image: input (C, H, W), kernel Kh×Kw, stride, zero padding.</summary>
internal readonly record struct ConvGeometry(int C, int H, int W, int Kh, int Kw, int Stride, int Pad)
{
    public int Ho { get; } = (H + 2 * Pad - Kh) / Stride + 1;     // stored: read in every row of the kernels
    public int Wo { get; } = (W + 2 * Pad - Kw) / Stride + 1;
    /// <summary>Rows of the column matrix: C·Kh·Kw.</summary>
    public int Ckk => C * Kh * Kw;
    /// <summary>True when the column matrix of an image is the image itself (1×1, stride 1, no padding).</summary>
    public bool IsPointwise => Kh == 1 && Kw == 1 && Stride == 1 && Pad == 0;
    /// <summary>True for a stride-1 convolution that keeps the width (Kw = 2·Pad + 1, e.g. 3×3 pad 1).</summary>
    public bool IsSame => Stride == 1 && Kw == 2 * Pad + 1;

    /// <summary>The output columns [lo, hi) whose input column ox·s − p + j lies inside [0, W).</summary>
    public (int Lo, int Hi) ValidColumns(int j)
    {
        int lo = Math.Min(Wo, Math.Max(0, CeilDiv(Pad - j, Stride)));
        int hi = Math.Min(Wo, FloorDiv(W - 1 + Pad - j, Stride) + 1);
        return (lo, Math.Max(lo, hi));                   // lo == hi when padding exceeds the image
    }

    static int CeilDiv(int a, int b) => a <= 0 ? -(-a / b) : (a + b - 1) / b;
    static int FloorDiv(int a, int b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}

internal static unsafe class Im2Col
{
    /// <summary>col[(c·Kh + i)·Kw + j, oy·Wo + ox] = x[c, oy·s − p + i, ox·s − p + j] for one channel c:
    /// xc is that channel's (H, W) plane, col points at row 0, column 0 of this image's block.</summary>
    public static void Channel(float* xc, in ConvGeometry g, int c, float* col, int ldCol)
    {
        if (g.IsSame) { SameChannel(xc, g, c, col, ldCol); return; }
        int ho = g.Ho, wo = g.Wo, s = g.Stride, p = g.Pad, w = g.W;
        for (int i = 0; i < g.Kh; i++)
            for (int j = 0; j < g.Kw; j++)
            {
                float* row = col + (long)((c * g.Kh + i) * g.Kw + j) * ldCol;
                var (lo, hi) = g.ValidColumns(j);
                int x0 = lo * s - p + j;                    // input column of output column lo
                for (int oy = 0; oy < ho; oy++)
                {
                    float* dst = row + oy * wo;
                    int iy = oy * s - p + i;
                    if ((uint)iy >= (uint)g.H) { new Span<float>(dst, wo).Clear(); continue; }
                    float* src = xc + iy * w + x0;
                    for (int ox = 0; ox < lo; ox++) dst[ox] = 0f;
                    if (s == 1) Buffer.MemoryCopy(src, dst + lo, (hi - lo) * sizeof(float), (hi - lo) * sizeof(float));
                    else for (int ox = lo, k = 0; ox < hi; ox++, k += s) dst[ox] = src[k];
                    for (int ox = hi; ox < wo; ox++) dst[ox] = 0f;
                }
            }
    }

    /// <summary>dxc[iy, ix] += Σ col[(c·Kh + i)·Kw + j, oy·Wo + ox] over every (i, j, oy, ox) with
    /// iy = oy·s − p + i, ix = ox·s − p + j: the adjoint of <see cref="Channel"/> for one channel.</summary>
    public static void Col2ImChannel(float* col, int ldCol, in ConvGeometry g, int c, float* dxc)
    {
        if (g.IsSame) { SameCol2ImChannel(col, ldCol, g, c, dxc); return; }
        int ho = g.Ho, wo = g.Wo, s = g.Stride, p = g.Pad, w = g.W;
        for (int i = 0; i < g.Kh; i++)
            for (int j = 0; j < g.Kw; j++)
            {
                float* row = col + (long)((c * g.Kh + i) * g.Kw + j) * ldCol;
                var (lo, hi) = g.ValidColumns(j);
                int x0 = lo * s - p + j;
                for (int oy = 0; oy < ho; oy++)
                {
                    int iy = oy * s - p + i;
                    if ((uint)iy >= (uint)g.H) continue;
                    float* src = row + oy * wo + lo;
                    float* dst = dxc + iy * w + x0;
                    if (s == 1) AddRow(dst, src, hi - lo);
                    else for (int k = 0, n = hi - lo; k < n; k++) dst[k * s] += src[k];
                }
            }
    }

    // "Same" convolutions (stride 1, Wo = W, e.g. 3×3 pad 1): a column row is the input plane read as one flat
    // array shifted by d = (i − p)·W + (j − p), except for whole rows above/below the image and the |j − p|
    // columns per row that would wrap into the neighbouring row. So each row is one long copy (or add) plus
    // those edge fix-ups, instead of Ho short copies: this is what keeps 7×7 and 14×14 images cheap.

    /// <summary>What a column row of a same convolution reads: valid output rows [RowLo, RowHi), the flat range
    /// [QLo, QHi) whose source q + D lies in the plane, and how many columns wrap on the left and right.</summary>
    readonly record struct SameRow(int RowLo, int RowHi, int D, int QLo, int QHi, int Left, int Right)
    {
        public static SameRow Of(in ConvGeometry g, int i, int j)
        {
            int w = g.W, p = g.Pad;
            int rowLo = Math.Min(g.Ho, Math.Max(0, p - i)), rowHi = Math.Max(rowLo, Math.Min(g.Ho, g.H + p - i));
            int d = (i - p) * w + (j - p);
            int qLo = Math.Max(rowLo * w, -d), qHi = Math.Min(rowHi * w, g.H * w - d);
            return new SameRow(rowLo, rowHi, d, qLo, Math.Max(qLo, qHi), Math.Min(w, Math.Max(0, p - j)), Math.Min(w, Math.Max(0, j - p)));
        }

        /// <summary>Zeroes the wrapping columns of the valid rows of one column row.</summary>
        public void ClearWrapped(float* row, int w)
        {
            if (Left + Right == 0) return;
            for (int oy = RowLo; oy < RowHi; oy++)
            {
                float* r = row + oy * w;
                for (int k = 0; k < Left; k++) r[k] = 0f;
                for (int k = w - Right; k < w; k++) r[k] = 0f;
            }
        }
    }

    static void SameChannel(float* xc, in ConvGeometry g, int c, float* col, int ldCol)
    {
        int w = g.W, ho = g.Ho;
        for (int i = 0; i < g.Kh; i++)
            for (int j = 0; j < g.Kw; j++)
            {
                float* row = col + (long)((c * g.Kh + i) * g.Kw + j) * ldCol;
                var r = SameRow.Of(g, i, j);
                if (r.RowLo > 0) new Span<float>(row, r.RowLo * w).Clear();                         // rows above the image
                if (r.RowHi < ho) new Span<float>(row + r.RowHi * w, (ho - r.RowHi) * w).Clear();   // rows below it
                CopyRow(row + r.QLo, xc + r.QLo + r.D, r.QHi - r.QLo);
                r.ClearWrapped(row, w);                                                 // also covers [RowLo·W, QLo), [QHi, RowHi·W)
            }
    }

    static void SameCol2ImChannel(float* col, int ldCol, in ConvGeometry g, int c, float* dxc)
    {
        int w = g.W;
        for (int i = 0; i < g.Kh; i++)
            for (int j = 0; j < g.Kw; j++)
            {
                float* row = col + (long)((c * g.Kh + i) * g.Kw + j) * ldCol;
                var r = SameRow.Of(g, i, j);
                r.ClearWrapped(row, w);              // the column matrix is scratch: zeroed entries add nothing below
                AddRow(dxc + r.QLo + r.D, row + r.QLo, r.QHi - r.QLo);
            }
    }

    /// <summary>dst[k] = src[k] for k in [0, n); inlined vectors rather than a memmove call, since rows of small
    /// images are only tens of floats. The last vector overlaps the previous one instead of a scalar tail.</summary>
    static void CopyRow(float* dst, float* src, int n)
    {
        if (!Vector256.IsHardwareAccelerated || n < 8)
        {
            for (int q = 0; q < n; q++) dst[q] = src[q];
            return;
        }
        int k = 0;
        for (; k + 8 <= n; k += 8) Vector256.Load(src + k).Store(dst + k);
        if (k < n) Vector256.Load(src + n - 8).Store(dst + n - 8);
    }

    /// <summary>dst[k] = 0 for k in [0, n).</summary>
    static void ClearRow(float* dst, int n)
    {
        int k = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; k + 8 <= n; k += 8) Vector256<float>.Zero.Store(dst + k);
        for (; k < n; k++) dst[k] = 0f;
    }

    /// <summary>dst[k] += src[k] for k in [0, n).</summary>
    static void AddRow(float* dst, float* src, int n)
    {
        int k = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; k + 8 <= n; k += 8)
                (Vector256.Load(dst + k) + Vector256.Load(src + k)).Store(dst + k);
        for (; k < n; k++) dst[k] += src[k];
    }

    /// <summary>im2col of images [0, count) of x (count, C, H, W) into a folded column matrix (CKK, count·Ho·Wo):
    /// image b's columns start at column b·Ho·Wo. Split over (image, channel) pairs.</summary>
    public static void FoldedIm2Col(float* x, int count, in ConvGeometry g, float* col)
    {
        int hw = g.Ho * g.Wo;
        if (g.IsSame)
        {
            var same = new SameIm2ColWork(x, g, count, col, count * hw);
            ParallelFor.RunRange(count * g.C, same, MinPairsPerThread(g));
            return;
        }
        var work = new Im2ColWork(x, g, col, count * hw);
        ParallelFor.Run(count * g.C, work, MinPairsPerThread(g));
    }

    /// <summary>Same-convolution im2col over a range of (channel, image) pairs, index = channel·count + image:
    /// kernel tap by kernel tap, so each tap's row geometry is worked out once per range rather than once per
    /// 49-float row of a 7×7 image, and consecutive pairs fill one column row left to right (whole cache lines).</summary>
    readonly struct SameIm2ColWork(float* x, ConvGeometry g, int count, float* col, int ldCol) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            int c = g.C, hw = g.H * g.W, ohw = g.Ho * g.Wo, w = g.W, kk = g.Kh * g.Kw;
            for (int t = 0; t < kk; t++)
            {
                var r = SameRow.Of(g, t / g.Kw, t % g.Kw);
                int above = r.RowLo * w, below = (g.Ho - r.RowHi) * w, n = r.QHi - r.QLo;
                for (int index = begin; index < end; index++)
                {
                    int ch = index / count, b = index % count;
                    float* row = col + (long)(ch * kk + t) * ldCol + (long)b * ohw;
                    float* xc = x + ((long)b * c + ch) * hw;
                    if (above > 0) ClearRow(row, above);
                    if (below > 0) ClearRow(row + r.RowHi * w, below);
                    CopyRow(row + r.QLo, xc + r.QLo + r.D, n);
                    r.ClearWrapped(row, w);
                }
            }
        }
    }

    /// <summary>col2im of a folded column matrix (CKK, count·Ho·Wo) into dx (count, C, H, W), accumulating (+=).</summary>
    public static void FoldedCol2Im(float* col, int count, in ConvGeometry g, float* dx)
    {
        int hw = g.Ho * g.Wo;
        var work = new Col2ImWork(col, count * hw, g, dx);
        ParallelFor.Run(count * g.C, work, MinPairsPerThread(g));
    }

    /// <summary>Enough (image, channel) pairs per thread that a thread moves at least ~16K floats.</summary>
    static int MinPairsPerThread(in ConvGeometry g) => Math.Max(1, (1 << 14) / Math.Max(1, g.Kh * g.Kw * g.Ho * g.Wo));

    readonly struct Im2ColWork(float* x, ConvGeometry g, float* col, int ldCol) : IWorkItem
    {
        public void Invoke(int index)
        {
            int b = index / g.C, c = index % g.C;
            float* xc = x + ((long)b * g.C + c) * g.H * g.W;
            Channel(xc, g, c, col + (long)b * g.Ho * g.Wo, ldCol);
        }
    }

    readonly struct Col2ImWork(float* col, int ldCol, ConvGeometry g, float* dx) : IWorkItem
    {
        public void Invoke(int index)
        {
            int b = index / g.C, c = index % g.C;
            float* dxc = dx + ((long)b * g.C + c) * g.H * g.W;
            Col2ImChannel(col + (long)b * g.Ho * g.Wo, ldCol, g, c, dxc);
        }
    }

    enum FoldMode { Fold, Unfold }

    /// <summary>Folds rows of y (count, R, n) into yF (R, count·n): yF[r, b·n + q] = y[b, r, q]. Split over (b, r).</summary>
    public static void Fold(float* y, int count, int rows, int n, float* yF)
    {
        var work = new FoldWork(y, rows, n, yF, count * n, null, FoldMode.Fold);
        ParallelFor.Run(count * rows, work, Math.Max(1, (1 << 14) / Math.Max(1, n)));
    }

    /// <summary>The inverse of <see cref="Fold"/> with a per-row bias: y[b, r, q] = yF[r, b·n + q] + bias[r]
    /// (bias may be null).</summary>
    public static void Unfold(float* yF, int count, int rows, int n, float* bias, float* y)
    {
        var work = new FoldWork(y, rows, n, yF, count * n, bias, FoldMode.Unfold);
        ParallelFor.Run(count * rows, work, Math.Max(1, (1 << 14) / Math.Max(1, n)));
    }

    readonly struct FoldWork(float* y, int rows, int n, float* yF, int ldF, float* bias, FoldMode mode) : IWorkItem
    {
        public void Invoke(int index)
        {
            int b = index / rows, r = index % rows;
            float* a = y + (long)index * n;                      // y[b, r, :]
            float* f = yF + (long)r * ldF + (long)b * n;         // yF[r, b·n :]
            long bytes = (long)n * sizeof(float);
            if (mode == FoldMode.Fold) Buffer.MemoryCopy(a, f, bytes, bytes);
            else if (bias == null) Buffer.MemoryCopy(f, a, bytes, bytes);
            else
            {
                float v = bias[r];
                int k = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var bv = Vector256.Create(v);
                    for (; k + 8 <= n; k += 8) (Vector256.Load(f + k) + bv).Store(a + k);
                }
                for (; k < n; k++) a[k] = f[k] + v;
            }
        }
    }

    /// <summary>db[r] += Σ_b Σ_q dy[b, r, q] for dy (count, rows, n). One thread per r, images summed in order.</summary>
    public static void BiasGrad(float* dy, int count, int rows, int n, float* db)
    {
        var work = new BiasGradWork(dy, count, rows, n, db);
        ParallelFor.Run(rows, work, Math.Max(1, (1 << 14) / Math.Max(1, count * n)));
    }

    readonly struct BiasGradWork(float* dy, int count, int rows, int n, float* db) : IWorkItem
    {
        public void Invoke(int r)
        {
            double total = 0;
            for (int b = 0; b < count; b++)
            {
                float* a = dy + ((long)b * rows + r) * n;
                var acc = Vector256<float>.Zero;
                int k = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; k + 8 <= n; k += 8) acc += Vector256.Load(a + k);
                float tail = 0f;
                for (; k < n; k++) tail += a[k];
                total += (double)Vector256.Sum(acc) + tail;
            }
            db[r] += (float)total;
        }
    }

    /// <summary>Direct convolution, plain loops in double (the reference for tests; never on a production path).
    /// x: (B, Cin, H, W), w: (Cout, Cin, Kh, Kw), bias: (Cout) or null → y: (B, Cout, Ho, Wo).</summary>
    internal static void Conv2dReference(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, int batch, int cout,
        in ConvGeometry g, Span<float> y)
    {
        int ho = g.Ho, wo = g.Wo;
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < cout; o++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double s = bias.IsEmpty ? 0 : bias[o];
                        for (int c = 0; c < g.C; c++)
                            for (int i = 0; i < g.Kh; i++)
                                for (int j = 0; j < g.Kw; j++)
                                {
                                    int iy = oy * g.Stride - g.Pad + i, ix = ox * g.Stride - g.Pad + j;
                                    if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
                                    s += (double)x[((b * g.C + c) * g.H + iy) * g.W + ix] * w[((o * g.C + c) * g.Kh + i) * g.Kw + j];
                                }
                        y[((b * cout + o) * ho + oy) * wo + ox] = (float)s;
                    }
    }

    /// <summary>im2col by its definition, one image (the reference for tests): col (CKK, Ho·Wo), row stride ldCol.</summary>
    internal static void Im2ColReference(ReadOnlySpan<float> x, in ConvGeometry g, Span<float> col, int ldCol)
    {
        int ho = g.Ho, wo = g.Wo;
        for (int c = 0; c < g.C; c++)
            for (int i = 0; i < g.Kh; i++)
                for (int j = 0; j < g.Kw; j++)
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++)
                        {
                            int iy = oy * g.Stride - g.Pad + i, ix = ox * g.Stride - g.Pad + j;
                            bool inside = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
                            col[((c * g.Kh + i) * g.Kw + j) * ldCol + oy * wo + ox] = inside ? x[(c * g.H + iy) * g.W + ix] : 0f;
                        }
    }
}
