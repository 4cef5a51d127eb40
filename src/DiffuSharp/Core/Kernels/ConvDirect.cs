// Direct convolution for "same" stride-1 convolutions with a square odd kernel (3×3 pad 1, 5×5 pad 2): the
// register-blocked scheme of oneDNN's direct convolution and of "Anatomy of High-Performance Deep Learning
// Convolutions on SIMD Architectures" (Georganas et al., SC'18), on NCHW planes instead of blocked layouts.
//
// Each input plane is first copied into a zero-padded plane of width Wp = W + 2p. Read as one flat array, output
// pixel q = oy·Wp + ox then needs xp[q + i·Wp + j] for tap (i, j): every tap of a run of consecutive output pixels
// is one contiguous vector load, with no bounds checks and no im2col matrix. The two padding columns of each row
// make Wp − W "garbage" outputs per row, computed and dropped (7% at 28×28, 22% at 7×7), which is far cheaper
// than im2col's 9× copy plus the GEMM's packing of it.
//
// Tile: 8 output channels × 3 Vector512s of consecutive pixels in 24 accumulators; per (input channel, tap) it
// loads 3 input vectors and 8 broadcast weights for 24 FMAs (with Vector256 only: 8 × 1 vector, see Tiles256). Weights are packed as [output block][c][tap][8] so the
// broadcasts read consecutive floats. Work items are (image, output block): each writes only its own outputs and
// sums in a fixed order, so results do not depend on the thread count. Large images are cut into bands of output
// pixels whose input rows stay cached while every output block reads them (BandFloats). The same kernel gives dx for backward,
// convolving dy with the flipped, transposed kernel (PackWeights with flipTranspose); WeightGrad gives dW for 3×3.
using System.Buffers;

namespace DiffuSharp.Kernels;

internal static unsafe class ConvDirect
{
    const int OutBlock = 8;

    /// <summary>Stride 1, square odd kernel, padding (k − 1)/2 (output size = input size), not 1×1, and SIMD.</summary>
    public static bool IsSupported(in ConvGeometry g) =>
        !Disabled && g.IsSame && g.Kh == g.Kw && g.Kh > 1 && Vector256.IsHardwareAccelerated;

    /// <summary>True when the direct forward (and the direct dW) beat im2col + GEMM: images at least 14 wide. Below
    /// that the Wp − W dropped columns of every row and the ragged last tile waste a quarter of the FMAs; measured on
    /// one thread (min of 9, batch 32, 64 channels): 7×7 forward 2.3-2.6 ms direct against 1.6-2.2 ms im2col + GEMM,
    /// dW 2.5-3.3 ms against 1.6-1.9 ms from the forward's saved column matrix; at 14×14 and 28×28 direct wins every
    /// pass (forward 11 against 12-24 ms, dx 8-11 against 13-17 ms). dx stays direct at 7×7 (1.5-2.2 against 2.0-2.6 ms).</summary>
    public static bool PreferForward(in ConvGeometry g) => g.W >= 14;

    /// <summary>Benchmarks and tests turn this on (KernelSwitches) to time or check the im2col path on the same shapes.</summary>
    internal static bool Disabled => KernelSwitches.Current.DirectDisabled;

    /// <summary>Tests turn this on (KernelSwitches) to run the Vector256 kernel on an AVX-512 machine.</summary>
    internal static bool ForceVector256 => KernelSwitches.Current.DirectVector256;

    static bool Use512 => Vector512.IsHardwareAccelerated && !ForceVector256;

    /// <summary>Granularity of the flat pixel count: one Vector512 (tiles of 3, then 2 or 1 of them), or one Vector256.</summary>
    static int Tile => Use512 ? 16 : 8;

    static int Wp(in ConvGeometry g) => g.W + 2 * g.Pad;
    static int PlaneFloats(in ConvGeometry g) => (g.H + 2 * g.Pad) * Wp(g);
    /// <summary>Flat output pixels of one padded plane, rounded up to whole tiles.</summary>
    static int Pixels(in ConvGeometry g) => (g.H * Wp(g) + Tile - 1) / Tile * Tile;

    /// <summary>Floats of the padded copy of count images (C, H, W), with slack for the last tile's over-read.</summary>
    public static long PaddedFloats(in ConvGeometry g, int count) =>
        (long)count * g.C * PlaneFloats(g) + Pixels(g) + (g.Kh - 1) * Wp(g) + g.Kw;

    /// <summary>xp[b, c] = x[b, c] zero-padded by p on every side, planes (H + 2p)·(W + 2p) apart; the slack
    /// after the last plane is zeroed too (read only by dropped outputs, but must not hold NaNs from the pool).</summary>
    public static void Pad(float* x, int count, in ConvGeometry g, float* xp)
    {
        var work = new PadWork(x, g, xp);
        ParallelFor.Run(count * g.C, work, Math.Max(1, (1 << 15) / Math.Max(1, PlaneFloats(g))));
        long planes = (long)count * g.C * PlaneFloats(g);
        new Span<float>(xp + planes, (int)(PaddedFloats(g, count) - planes)).Clear();
    }

    readonly struct PadWork(float* x, ConvGeometry g, float* xp) : IWorkItem
    {
        public void Invoke(int plane)
        {
            int w = g.W, p = g.Pad, wp = w + 2 * p;
            float* src = x + (long)plane * g.H * w, dst = xp + (long)plane * PlaneFloats(g);
            new Span<float>(dst, p * wp + p).Clear();                                    // top rows, first left pad
            for (int r = 0; r < g.H; r++)
            {
                float* d = dst + (r + p) * wp + p;
                Buffer.MemoryCopy(src + r * w, d, w * sizeof(float), w * sizeof(float));
                new Span<float>(d + w, r + 1 < g.H ? 2 * p : p).Clear();                  // right pad, next left pad
            }
            new Span<float>(dst + (g.H + p) * wp, p * wp).Clear();                        // bottom rows
        }
    }

    /// <summary>Floats of the packed weight for outC output channels.</summary>
    public static int PackedWeightFloats(int outC, int inC, int k) => (outC + OutBlock - 1) / OutBlock * OutBlock * inC * k * k;

    /// <summary>wpk[ob][c][tap][r] = w[ob·8 + r, c, tap] for w (cout, cin, k, k) (zero past cout). With flipTranspose
    /// the roles swap for dx: outputs are w's input channels and taps are mirrored,
    /// wpk[cb][o][(i, j)][r] = w[o, cb·8 + r, k−1−i, k−1−j].</summary>
    public static void PackWeights(float* w, int cout, int cin, int k, bool flipTranspose, float* wpk)
    {
        int outC = flipTranspose ? cin : cout;
        var work = new PackWork(w, cout, cin, k, flipTranspose, wpk);
        ParallelFor.Run((outC + OutBlock - 1) / OutBlock, work);
    }

    readonly struct PackWork(float* w, int cout, int cin, int k, bool flipTranspose, float* wpk) : IWorkItem
    {
        /// <summary>One block of 8 output channels.</summary>
        public void Invoke(int ob)
        {
            int outC = flipTranspose ? cin : cout, inC = flipTranspose ? cout : cin, kk = k * k;
            float* d = wpk + (long)ob * inC * kk * OutBlock;
            for (int c = 0; c < inC; c++)
                for (int t = 0; t < kk; t++, d += OutBlock)
                    for (int r = 0; r < OutBlock; r++)
                    {
                        int o = ob * OutBlock + r;
                        d[r] = o >= outC ? 0f
                             : flipTranspose ? w[((long)c * cin + o) * kk + (kk - 1 - t)] : w[((long)o * cin + c) * kk + t];
                    }
        }
    }

    /// <summary>Floats of the input a band of output pixels should read at most (1 MB): the planes' rows under one
    /// band, over all input channels, then stay in the L2/L3 caches while every block of 8 output channels reads them
    /// in turn, where whole VAE-sized images (128 channels at 512×512: 135 MB) came from memory once per output block
    /// and ran at 40% of the FMA ceiling. Tests shrink it to cut small images into many bands.</summary>
    internal static int BandFloats => KernelSwitches.Current.DirectBandFloats;

    /// <summary>Flat output pixels per band: whole 48-pixel tiles, as many as keep the input rows they read (over all
    /// channels, the k − 1 halo rows included) within BandFloats; at least one tile; all of them when that covers
    /// the image.</summary>
    internal static int BandPixels(in ConvGeometry g)
    {
        int n = Pixels(g), wp = Wp(g);
        long rows = BandFloats / Math.Max(1L, (long)g.C * wp) - (g.Kh - 1);
        long pixels = Math.Max(48, rows * wp / 48 * 48);
        return pixels >= n ? n : (int)pixels;
    }

    /// <summary>y (count, outC, H, W) = (or +=, with accumulate) conv(xp, wpk) + bias: xp from <see cref="Pad"/> with
    /// g's C input channels, wpk from <see cref="PackWeights"/>, bias (outC) or null. Work items are (image, band of
    /// output pixels, block of 8 output channels), the blocks of a band next to each other; every output sums the
    /// same terms in the same order whatever the band, so the bits do not depend on the banding.</summary>
    public static void Forward(float* xp, int count, in ConvGeometry g, float* wpk, int outC, float* bias, float* y, bool accumulate)
    {
        int blocks = (outC + OutBlock - 1) / OutBlock, band = BandPixels(g), n = Pixels(g), bands = (n + band - 1) / band;
        bool use512 = Use512;                                              // the switches read once per call
        var work = new ForwardWork(xp, g, wpk, outC, bias, y, accumulate, band, bands, n, use512, use512 && outC <= NarrowOutputs);
        ParallelFor.Run(count * bands * blocks, work);
    }

    readonly struct ForwardWork(float* xp, ConvGeometry g, float* wpk, int outC, float* bias, float* y, bool accumulate, int band, int bands,
        int n, bool use512, bool narrow) : IWorkItem
    {
        public void Invoke(int index)
        {
            int blocks = (outC + OutBlock - 1) / OutBlock, b = index / (blocks * bands), ob = index % blocks, bi = index / blocks % bands;
            int kk = g.Kh * g.Kw, q0 = bi * band, q1 = Math.Min(n, q0 + band), len = q1 - q0;
            using var buf = new AlignedScratch((long)OutBlock * len);
            float* acc = buf.Pointer - q0;                                 // acc[r·len + q] for q in [q0, q1)
            float* x = xp + (long)b * g.C * PlaneFloats(g), w = wpk + (long)ob * g.C * kk * OutBlock;
            if (narrow)
                for (int r = 0; r < outC; r++) Narrow512(x, g, w + r, acc + (long)r * len, q0, q1);
            else if (use512) Tiles512(x, g, w, acc, len, q0, q1);
            else Tiles256(x, g, w, acc, len, q0, q1);
            // keep the W real columns of every row: acc[r, oy·Wp + ox] → y[b, ob·8 + r, oy, ox] (+ bias)
            int wp = Wp(g), rows = Math.Min(OutBlock, outC - ob * OutBlock), qEnd = Math.Min(q1, g.H * wp);
            for (int r = 0; r < rows; r++)
            {
                int o = ob * OutBlock + r;
                float bv = bias == null ? 0f : bias[o];
                float* yo = y + ((long)b * outC + o) * g.H * g.W, ar = acc + (long)r * len;
                for (int oy = q0 / wp; oy * wp < qEnd; oy++)
                {
                    int c0 = Math.Max(q0 - oy * wp, 0), c1 = Math.Min(qEnd - oy * wp, g.W);
                    if (c1 > c0) StoreRow(yo + oy * g.W + c0, ar + oy * wp + c0, c1 - c0, bv, accumulate);
                }
            }
        }
    }

    // ---- weight gradient, 3×3 with AVX-512 ----
    // dW[o, c, i, j] = Σ_b Σ_q dyz[b, o, q] · xp[b, c, q + i·Wp + j], where dyz is dy laid out on the padded width
    // with zeros in the Wp − W extra columns (so the dropped outputs contribute nothing). Tile: 3 output channels ×
    // 1 input channel × 9 taps = 27 accumulators; per 16 pixels 3 dy loads and 9 x loads (misaligned, so each splits
    // across two cache lines) feed 27 FMAs. (2 outputs were load-bound at half the forward's speed.) Work items
    // are (c, output triple) and each sums over a block of images on its own thread; blocks (sized from the shapes
    // only) are added into dW in order, so the result does not depend on the thread count.

    /// <summary>True when <see cref="WeightGrad"/> applies: a supported 3×3 convolution on an AVX-512 machine.</summary>
    public static bool WeightGradSupported(in ConvGeometry g) => IsSupported(g) && g.Kh == 3 && Use512;

    /// <summary>Pixels of a dy plane laid out on the padded width, rounded up to whole Vector512s.</summary>
    static int GradPixels(in ConvGeometry g) => (g.H * Wp(g) + 15) / 16 * 16;

    /// <summary>Floats of <see cref="PadRows"/>'s output for count images of cout channels.</summary>
    public static long PaddedRowsFloats(in ConvGeometry g, int count, int cout) => (long)count * cout * GradPixels(g);

    /// <summary>dyz[b, o, oy·Wp + ox] = dy[b, o, oy, ox] for ox &lt; W, 0 in the extra columns and the tail.</summary>
    public static void PadRows(float* dy, int count, int cout, in ConvGeometry g, float* dyz)
    {
        var work = new PadRowsWork(dy, g, dyz);
        ParallelFor.Run(count * cout, work, Math.Max(1, (1 << 15) / Math.Max(1, GradPixels(g))));
    }

    readonly struct PadRowsWork(float* dy, ConvGeometry g, float* dyz) : IWorkItem
    {
        public void Invoke(int plane)
        {
            int w = g.W, wp = Wp(g), n = GradPixels(g);
            float* src = dy + (long)plane * g.H * w, dst = dyz + (long)plane * n;
            for (int r = 0; r < g.H; r++)
            {
                Buffer.MemoryCopy(src + r * w, dst + r * wp, w * sizeof(float), w * sizeof(float));
                new Span<float>(dst + r * wp + w, wp - w).Clear();
            }
            new Span<float>(dst + g.H * wp, n - g.H * wp).Clear();
        }
    }

    /// <summary>Floats of x and dy planes per image block (1 MB). Blocks of 2^18 to 2^22 floats measured the same.</summary>
    const int WeightGradBlockFloats = 1 << 18;

    /// <summary>dW (cout, g.C, 3, 3) += Σ_b dyz[b] ⋆ xp[b]: xp from <see cref="Pad"/>, dyz from <see cref="PadRows"/>.</summary>
    public static void WeightGrad(float* xp, float* dyz, int count, in ConvGeometry g, int cout, float* dw)
    {
        int triples = (cout + 2) / 3, items = g.C * triples;
        // images per block: the block's x and dy planes stay in L2 while every item walks them
        int block = Math.Max(1, WeightGradBlockFloats / Math.Max(1, (g.C + cout) * PlaneFloats(g)));
        int blocks = (count + block - 1) / block;
        // One parallel loop over (block, item), block-major, handed out through a shared counter so both threads
        // walk the same block's planes. Each block writes its own partial dW; the partials are then added into dW in
        // block order, the same sums in the same order as adding block after block, whatever the thread count.
        long wFloats = (long)cout * g.C * 9;
        float[] partBuf = ArrayPool<float>.Shared.Rent(checked((int)(blocks * wFloats)));
        try
        {
            fixed (float* part = partBuf)
            {
                int next = 0;
                var work = new WeightGradWork(xp, dyz, g, cout, block, count, part, wFloats, blocks * items, &next);
                ParallelFor.RunRange(Math.Min(Parallelism.MaxThreads, blocks * items), work);
                for (int b = 0; b < blocks; b++)
                {
                    float* pb = part + b * wFloats;
                    for (long t = 0; t < wFloats; t++) dw[t] += pb[t];
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(partBuf);
        }
    }

    readonly struct WeightGradWork(float* xp, float* dyz, ConvGeometry g, int cout, int block, int count, float* part,
        long wFloats, int total, int* next) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            int items = g.C * ((cout + 2) / 3);
            for (int t; (t = Interlocked.Increment(ref *next) - 1) < total;)
            {
                int blk = t / items, b0 = blk * block;
                Item(t % items, b0, Math.Min(block, count - b0), part + blk * wFloats);
            }
        }

        /// <summary>dw[o..o+3, c] = Σ over images [b0, b0 + nb) for item (c, output triple).</summary>
        void Item(int index, int b0, int nb, float* dw)
        {
            int cin = g.C, c = index % cin, o = index / cin * 3;        // consecutive items share the dy triple (kept in L1)
            int rows = Math.Min(3, cout - o);
            int plane = PlaneFloats(g), wp = Wp(g), n = GradPixels(g);
            var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0; var a8 = a0;
            var b0_ = a0; var b1 = a0; var b2 = a0; var b3 = a0; var b4 = a0; var b5 = a0; var b6 = a0; var b7 = a0; var b8 = a0;
            var c0 = a0; var c1 = a0; var c2 = a0; var c3 = a0; var c4 = a0; var c5 = a0; var c6 = a0; var c7 = a0; var c8 = a0;
            for (int b = b0; b < b0 + nb; b++)
            {
                float* xc = xp + ((long)b * cin + c) * plane;
                float* d0p = dyz + ((long)b * cout + o) * n;
                float* d1p = rows > 1 ? d0p + n : d0p, d2p = rows > 2 ? d0p + 2 * n : d0p;
                for (int q = 0; q < n; q += 16)
                {
                    var d0 = Vector512.Load(d0p + q);
                    var d1 = Vector512.Load(d1p + q);
                    var d2 = Vector512.Load(d2p + q);
                    float* s0 = xc + q, s1 = s0 + wp, s2 = s1 + wp;
                    var x = Vector512.Load(s0);
                    a0 = Vector512.FusedMultiplyAdd(d0, x, a0); b0_ = Vector512.FusedMultiplyAdd(d1, x, b0_); c0 = Vector512.FusedMultiplyAdd(d2, x, c0);
                    x = Vector512.Load(s0 + 1);
                    a1 = Vector512.FusedMultiplyAdd(d0, x, a1); b1 = Vector512.FusedMultiplyAdd(d1, x, b1); c1 = Vector512.FusedMultiplyAdd(d2, x, c1);
                    x = Vector512.Load(s0 + 2);
                    a2 = Vector512.FusedMultiplyAdd(d0, x, a2); b2 = Vector512.FusedMultiplyAdd(d1, x, b2); c2 = Vector512.FusedMultiplyAdd(d2, x, c2);
                    x = Vector512.Load(s1);
                    a3 = Vector512.FusedMultiplyAdd(d0, x, a3); b3 = Vector512.FusedMultiplyAdd(d1, x, b3); c3 = Vector512.FusedMultiplyAdd(d2, x, c3);
                    x = Vector512.Load(s1 + 1);
                    a4 = Vector512.FusedMultiplyAdd(d0, x, a4); b4 = Vector512.FusedMultiplyAdd(d1, x, b4); c4 = Vector512.FusedMultiplyAdd(d2, x, c4);
                    x = Vector512.Load(s1 + 2);
                    a5 = Vector512.FusedMultiplyAdd(d0, x, a5); b5 = Vector512.FusedMultiplyAdd(d1, x, b5); c5 = Vector512.FusedMultiplyAdd(d2, x, c5);
                    x = Vector512.Load(s2);
                    a6 = Vector512.FusedMultiplyAdd(d0, x, a6); b6 = Vector512.FusedMultiplyAdd(d1, x, b6); c6 = Vector512.FusedMultiplyAdd(d2, x, c6);
                    x = Vector512.Load(s2 + 1);
                    a7 = Vector512.FusedMultiplyAdd(d0, x, a7); b7 = Vector512.FusedMultiplyAdd(d1, x, b7); c7 = Vector512.FusedMultiplyAdd(d2, x, c7);
                    x = Vector512.Load(s2 + 2);
                    a8 = Vector512.FusedMultiplyAdd(d0, x, a8); b8 = Vector512.FusedMultiplyAdd(d1, x, b8); c8 = Vector512.FusedMultiplyAdd(d2, x, c8);
                }
            }
            Reduce9(dw + ((long)o * cin + c) * 9, add: false, a0, a1, a2, a3, a4, a5, a6, a7, a8);
            if (rows > 1) Reduce9(dw + ((long)(o + 1) * cin + c) * 9, add: false, b0_, b1, b2, b3, b4, b5, b6, b7, b8);
            if (rows > 2) Reduce9(dw + ((long)(o + 2) * cin + c) * 9, add: false, c0, c1, c2, c3, c4, c5, c6, c7, c8);
        }
    }

    /// <summary>w[t] = (or += with add) Σ lanes of v_t for the 9 taps of one (o, c); shared with ConvLanes. Inlined: a
    /// call would make the JIT keep every accumulator live across it and spill all 27 to the stack inside the hot loop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Reduce9(float* w, bool add, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> v4, Vector512<float> v5, Vector512<float> v6, Vector512<float> v7, Vector512<float> v8)
    {
        if (!add) new Span<float>(w, 9).Clear();
        w[0] += Vector512.Sum(v0); w[1] += Vector512.Sum(v1); w[2] += Vector512.Sum(v2);
        w[3] += Vector512.Sum(v3); w[4] += Vector512.Sum(v4); w[5] += Vector512.Sum(v5);
        w[6] += Vector512.Sum(v6); w[7] += Vector512.Sum(v7); w[8] += Vector512.Sum(v8);
    }

    /// <summary>dst[k] = src[k] + bias, or dst[k] += src[k] (accumulate, bias ignored).</summary>
    static void StoreRow(float* dst, float* src, int n, float bias, bool accumulate)
    {
        int k = 0;
        var bv = Vector256.Create(bias);
        if (accumulate)
        {
            for (; k + 8 <= n; k += 8) (Vector256.Load(dst + k) + Vector256.Load(src + k)).Store(dst + k);
            for (; k < n; k++) dst[k] += src[k];
        }
        else
        {
            for (; k + 8 <= n; k += 8) (Vector256.Load(src + k) + bv).Store(dst + k);
            for (; k < n; k++) dst[k] = src[k] + bias;
        }
    }

    /// <summary>Up to this many output channels (a UNet's last convolution: 1 or 3), each runs on its own through
    /// <see cref="Narrow512"/> instead of as a block of 8 mostly zero ones.</summary>
    internal static int NarrowOutputs => KernelSwitches.Current.DirectNarrowOutputs;

    /// <summary>acc[q] = Σ_c Σ_taps w[(c·k·k + tap)·8] · x[c, q + tap offset] for one output channel (w points at its
    /// lane of the packed block): 8 Vector512s of pixels per tile, per (c, tap) 8 loads and one broadcast for 8 FMAs.
    /// The same sums in the same order as Tiles512, so the same bits; with 1 output channel of 8 it does an eighth of
    /// the work (mnist-s, 32 → 1 at 28×28, batch 32: 1.2 ms as a block of 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Narrow512(float* x, in ConvGeometry g, float* w0, float* acc, int q0, int q1)
    {
        int wp = Wp(g), plane = PlaneFloats(g), cin = g.C, k = g.Kh;
        int q = q0;
        for (; q + 128 <= q1; q += 128)
        {
            var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                    {
                        float* s = xc + i * wp + j;
                        var v = Vector512.Create(w[0]);
                        a0 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s), a0); a1 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 16), a1);
                        a2 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 32), a2); a3 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 48), a3);
                        a4 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 64), a4); a5 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 80), a5);
                        a6 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 96), a6); a7 = Vector512.FusedMultiplyAdd(v, Vector512.Load(s + 112), a7);
                    }
            }
            float* d = acc + q;
            a0.Store(d); a1.Store(d + 16); a2.Store(d + 32); a3.Store(d + 48); a4.Store(d + 64); a5.Store(d + 80); a6.Store(d + 96); a7.Store(d + 112);
        }
        for (; q < q1; q += 16)
        {
            var a = Vector512<float>.Zero;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                        a = Vector512.FusedMultiplyAdd(Vector512.Create(w[0]), Vector512.Load(xc + i * wp + j), a);
            }
            a.Store(acc + q);
        }
    }

    /// <summary>acc[r, q .. q+48) = Σ_c Σ_(i,j) w[c][(i,j)][r] · x[c, q + i·Wp + j .. +48) for every tile q of one image;
    /// the last 32 or 16 pixels (n is a multiple of 16) by <see cref="Tail512"/>. 24 accumulators, 3 input vectors and
    /// one broadcast: per (c, tap) 24 FMAs for 3 + 8 loads, where 8 × 2 vectors issued 16 FMAs for 2 + 8 loads and
    /// was bound by the front end and the load ports rather than the FMA units.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tiles512(float* x, in ConvGeometry g, float* w0, float* acc, int n, int q0, int q1)
    {
        int wp = Wp(g), plane = PlaneFloats(g), cin = g.C, k = g.Kh;
        int q = q0;
        for (; q + 48 <= q1; q += 48)
        {
            var a00 = Vector512<float>.Zero; var a01 = a00; var a02 = a00; var a10 = a00; var a11 = a00; var a12 = a00;
            var a20 = a00; var a21 = a00; var a22 = a00; var a30 = a00; var a31 = a00; var a32 = a00;
            var a40 = a00; var a41 = a00; var a42 = a00; var a50 = a00; var a51 = a00; var a52 = a00;
            var a60 = a00; var a61 = a00; var a62 = a00; var a70 = a00; var a71 = a00; var a72 = a00;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                    {
                        float* s = xc + i * wp + j;
                        var x0 = Vector512.Load(s);
                        var x1 = Vector512.Load(s + 16);
                        var x2 = Vector512.Load(s + 32);
                        var v = Vector512.Create(w[0]); a00 = Vector512.FusedMultiplyAdd(v, x0, a00); a01 = Vector512.FusedMultiplyAdd(v, x1, a01); a02 = Vector512.FusedMultiplyAdd(v, x2, a02);
                        v = Vector512.Create(w[1]); a10 = Vector512.FusedMultiplyAdd(v, x0, a10); a11 = Vector512.FusedMultiplyAdd(v, x1, a11); a12 = Vector512.FusedMultiplyAdd(v, x2, a12);
                        v = Vector512.Create(w[2]); a20 = Vector512.FusedMultiplyAdd(v, x0, a20); a21 = Vector512.FusedMultiplyAdd(v, x1, a21); a22 = Vector512.FusedMultiplyAdd(v, x2, a22);
                        v = Vector512.Create(w[3]); a30 = Vector512.FusedMultiplyAdd(v, x0, a30); a31 = Vector512.FusedMultiplyAdd(v, x1, a31); a32 = Vector512.FusedMultiplyAdd(v, x2, a32);
                        v = Vector512.Create(w[4]); a40 = Vector512.FusedMultiplyAdd(v, x0, a40); a41 = Vector512.FusedMultiplyAdd(v, x1, a41); a42 = Vector512.FusedMultiplyAdd(v, x2, a42);
                        v = Vector512.Create(w[5]); a50 = Vector512.FusedMultiplyAdd(v, x0, a50); a51 = Vector512.FusedMultiplyAdd(v, x1, a51); a52 = Vector512.FusedMultiplyAdd(v, x2, a52);
                        v = Vector512.Create(w[6]); a60 = Vector512.FusedMultiplyAdd(v, x0, a60); a61 = Vector512.FusedMultiplyAdd(v, x1, a61); a62 = Vector512.FusedMultiplyAdd(v, x2, a62);
                        v = Vector512.Create(w[7]); a70 = Vector512.FusedMultiplyAdd(v, x0, a70); a71 = Vector512.FusedMultiplyAdd(v, x1, a71); a72 = Vector512.FusedMultiplyAdd(v, x2, a72);
                    }
            }
            float* d = acc + q;
            a00.Store(d); a01.Store(d + 16); a02.Store(d + 32); d += n; a10.Store(d); a11.Store(d + 16); a12.Store(d + 32); d += n;
            a20.Store(d); a21.Store(d + 16); a22.Store(d + 32); d += n; a30.Store(d); a31.Store(d + 16); a32.Store(d + 32); d += n;
            a40.Store(d); a41.Store(d + 16); a42.Store(d + 32); d += n; a50.Store(d); a51.Store(d + 16); a52.Store(d + 32); d += n;
            a60.Store(d); a61.Store(d + 16); a62.Store(d + 32); d += n; a70.Store(d); a71.Store(d + 16); a72.Store(d + 32);
        }
        if (q < q1) Tail512(x, g, w0, acc, n, q, q1);
    }

    /// <summary>Tiles512's last n − q pixels (32 or 16): one tile of 2 Vector512s, or of one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void Tail512(float* x, in ConvGeometry g, float* w0, float* acc, int n, int q, int q1)
    {
        int wp = Wp(g), plane = PlaneFloats(g), cin = g.C, k = g.Kh;
        if (q1 - q >= 32)
        {
            var a00 = Vector512<float>.Zero; var a01 = a00; var a10 = a00; var a11 = a00; var a20 = a00; var a21 = a00; var a30 = a00; var a31 = a00;
            var a40 = a00; var a41 = a00; var a50 = a00; var a51 = a00; var a60 = a00; var a61 = a00; var a70 = a00; var a71 = a00;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                    {
                        float* s = xc + i * wp + j;
                        var x0 = Vector512.Load(s);
                        var x1 = Vector512.Load(s + 16);
                        var v = Vector512.Create(w[0]); a00 = Vector512.FusedMultiplyAdd(v, x0, a00); a01 = Vector512.FusedMultiplyAdd(v, x1, a01);
                        v = Vector512.Create(w[1]); a10 = Vector512.FusedMultiplyAdd(v, x0, a10); a11 = Vector512.FusedMultiplyAdd(v, x1, a11);
                        v = Vector512.Create(w[2]); a20 = Vector512.FusedMultiplyAdd(v, x0, a20); a21 = Vector512.FusedMultiplyAdd(v, x1, a21);
                        v = Vector512.Create(w[3]); a30 = Vector512.FusedMultiplyAdd(v, x0, a30); a31 = Vector512.FusedMultiplyAdd(v, x1, a31);
                        v = Vector512.Create(w[4]); a40 = Vector512.FusedMultiplyAdd(v, x0, a40); a41 = Vector512.FusedMultiplyAdd(v, x1, a41);
                        v = Vector512.Create(w[5]); a50 = Vector512.FusedMultiplyAdd(v, x0, a50); a51 = Vector512.FusedMultiplyAdd(v, x1, a51);
                        v = Vector512.Create(w[6]); a60 = Vector512.FusedMultiplyAdd(v, x0, a60); a61 = Vector512.FusedMultiplyAdd(v, x1, a61);
                        v = Vector512.Create(w[7]); a70 = Vector512.FusedMultiplyAdd(v, x0, a70); a71 = Vector512.FusedMultiplyAdd(v, x1, a71);
                    }
            }
            float* d = acc + q;
            a00.Store(d); a01.Store(d + 16); d += n; a10.Store(d); a11.Store(d + 16); d += n;
            a20.Store(d); a21.Store(d + 16); d += n; a30.Store(d); a31.Store(d + 16); d += n;
            a40.Store(d); a41.Store(d + 16); d += n; a50.Store(d); a51.Store(d + 16); d += n;
            a60.Store(d); a61.Store(d + 16); d += n; a70.Store(d); a71.Store(d + 16);
            q += 32;
        }
        if (q < q1)
        {
            var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                    {
                        var x0 = Vector512.Load(xc + i * wp + j);
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Create(w[0]), x0, a0);
                        a1 = Vector512.FusedMultiplyAdd(Vector512.Create(w[1]), x0, a1);
                        a2 = Vector512.FusedMultiplyAdd(Vector512.Create(w[2]), x0, a2);
                        a3 = Vector512.FusedMultiplyAdd(Vector512.Create(w[3]), x0, a3);
                        a4 = Vector512.FusedMultiplyAdd(Vector512.Create(w[4]), x0, a4);
                        a5 = Vector512.FusedMultiplyAdd(Vector512.Create(w[5]), x0, a5);
                        a6 = Vector512.FusedMultiplyAdd(Vector512.Create(w[6]), x0, a6);
                        a7 = Vector512.FusedMultiplyAdd(Vector512.Create(w[7]), x0, a7);
                    }
            }
            float* d = acc + q;
            a0.Store(d); d += n; a1.Store(d); d += n; a2.Store(d); d += n; a3.Store(d); d += n;
            a4.Store(d); d += n; a5.Store(d); d += n; a6.Store(d); d += n; a7.Store(d);
        }
    }

    /// <summary>The same with one Vector256 (8 pixels) per tile, for machines without AVX-512: AVX2 has 16 vector
    /// registers, so 8 accumulators + 1 input + 1 broadcast fit where the 16-accumulator tile would spill.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tiles256(float* x, in ConvGeometry g, float* w0, float* acc, int n, int q0, int q1)
    {
        int wp = Wp(g), plane = PlaneFloats(g), cin = g.C, k = g.Kh;
        for (int q = q0; q < q1; q += 8)
        {
            var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
            float* w = w0;
            for (int c = 0; c < cin; c++)
            {
                float* xc = x + (long)c * plane + q;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++, w += OutBlock)
                    {
                        var x0 = Vector256.Load(xc + i * wp + j);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[0]), x0, a0);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.Create(w[1]), x0, a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.Create(w[2]), x0, a2);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.Create(w[3]), x0, a3);
                        a4 = Vector256.FusedMultiplyAdd(Vector256.Create(w[4]), x0, a4);
                        a5 = Vector256.FusedMultiplyAdd(Vector256.Create(w[5]), x0, a5);
                        a6 = Vector256.FusedMultiplyAdd(Vector256.Create(w[6]), x0, a6);
                        a7 = Vector256.FusedMultiplyAdd(Vector256.Create(w[7]), x0, a7);
                    }
            }
            float* d = acc + q;
            a0.Store(d); d += n; a1.Store(d); d += n; a2.Store(d); d += n; a3.Store(d); d += n;
            a4.Store(d); d += n; a5.Store(d); d += n; a6.Store(d); d += n; a7.Store(d);
        }
    }
}
