// A Linear layer's product y = x·Wᵀ + b against a weight packed once, at load, into the layout its kernel streams:
// an inference-only model (a pipeline's text encoder) keeps its Linear weights this way, in place of W's own layout,
// so it holds no second copy. Output features are the vector lanes, so a row count like the text encoder's 2 × 77 =
// 154 = 11 · 14 is computed with no padding (Gemm.Linear puts tokens in the lanes and computes 154 as 160), and each
// 32-feature panel of y is copied out row by row with the bias, where Gemm.Linear transposes yᵀ in 8 × 8 blocks.
// Measured on the SD 1.5 text encoder (2 cores, AVX-512): 138 → 132-135 ms a call, the same bits.
//
// Layout of a packed W (n × k, n a multiple of 32): K block after K block (Sgemm's cuts, which fix the bits), and in K
// block (p0, kc) panel after panel of 32 output features, each kc × 32 floats p-major:
//     packed[p0·n + (j / 32)·kc·32 + (p − p0)·32 + j % 32] = W[j, p]
// x is packed per call, 14 rows at a time, p-major with a stride of 16 (a 64-byte line per k step; lanes 14, 15 unused).
// Bits: each element is the FMA chain over its K block from 0, added to the previous blocks' sum, the bias added
// last: those of Sgemm(false, true, …) followed by y[r, :] += b, as Gemm.Linear's are.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

public static unsafe partial class Gemm
{
    /// <summary>Output features per panel of a packed weight (two Vector512 lanes).</summary>
    internal const int PrepackedNR = 32;
    /// <summary>Rows of x per tile of the packed-weight kernel.</summary>
    const int PrepackedMR = 14;
    /// <summary>Floats per k step of a packed x tile (14 rows, padded to a 64-byte line).</summary>
    const int PrepackedXStride = 16;

    /// <summary>Whether models should pack an n × k Linear weight with <see cref="PrepackLinearWeight"/> on this machine:
    /// the kernel runs here (AVX-512 with FMA for its two 16-lane vectors per panel, n a multiple of 32) and no
    /// <see cref="KernelSwitches"/> scope turned packing off.</summary>
    public static bool CanPrepackLinear(int n, int k) => PrepackedKernelRuns(n, k) && !KernelSwitches.Current.PrepackedLinearDisabled;

    /// <summary>Whether <see cref="LinearPrepacked(int, int, int, float*, float*, float*, float*)"/> can run an n × k
    /// weight on this machine (a weight packed earlier still runs inside a scope that turns packing off).</summary>
    static bool PrepackedKernelRuns(int n, int k)
        => Vector512.IsHardwareAccelerated && Fma.IsSupported && Avx.IsSupported && n > 0 && k > 0 && n % PrepackedNR == 0;

    /// <summary>Offset in a packed n × k weight of W[j, p] (kBlocks K blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static long PrepackedOffset(int n, int k, int kBlocks, int kb, int j, int p)
    {
        var (p0, kc) = KBlock(k, kBlocks, kb);
        return (long)p0 * n + (long)(j / PrepackedNR) * kc * PrepackedNR + (long)(p - p0) * PrepackedNR + j % PrepackedNR;
    }

    /// <summary>Rewrites the n × k row-major weight at <paramref name="w"/> in place into the packed layout
    /// (<see cref="CanPrepackLinear"/> must hold); <see cref="UnpackLinearWeight"/> undoes it exactly.</summary>
    public static void PrepackLinearWeight(int n, int k, float* w) => Repack(n, k, w, pack: true);

    /// <summary>Rewrites a packed n × k weight in place back into W's row-major layout.</summary>
    public static void UnpackLinearWeight(int n, int k, float* w) => Repack(n, k, w, pack: false);

    static void Repack(int n, int k, float* w, bool pack)
    {
        if (n <= 0 || k <= 0 || n % PrepackedNR != 0) throw new ArgumentException($"a packed Linear weight needs n a positive multiple of {PrepackedNR} and k > 0, got n={n}, k={k}");
        long count = (long)n * k;
        float* copy = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
        try
        {
            Buffer.MemoryCopy(w, copy, count * sizeof(float), count * sizeof(float));
            int kBlocks = KBlockCount(k, Blocking.Default);
            for (int kb = 0; kb < kBlocks; kb++)
            {
                var (p0, kc) = KBlock(k, kBlocks, kb);
                for (int j = 0; j < n; j++)
                {
                    long packed = PrepackedOffset(n, k, kBlocks, kb, j, p0), row = (long)j * k + p0;
                    for (int p = 0; p < kc; p++)
                    {
                        if (pack) w[packed + p * PrepackedNR] = copy[row + p];
                        else w[row + p] = copy[packed + p * PrepackedNR];
                    }
                }
            }
        }
        finally { NativeMemory.AlignedFree(copy); }
    }

    /// <summary>
    /// y (m×n) = x (m×k) · Wᵀ + bias (n, or null) with W packed by <see cref="PrepackLinearWeight"/>: bit-identical to
    /// <see cref="Linear"/> on the unpacked W, on any thread count. Needs AVX-512 and n a multiple of 32 (see
    /// <see cref="CanPrepackLinear"/>).
    /// </summary>
    public static void LinearPrepacked(int m, int n, int k, float* x, float* wPacked, float* bias, float* y)
    {
        var one = new PrepackedProduct(n, wPacked, bias, y);
        LinearPrepacked(m, k, x, new ReadOnlySpan<PrepackedProduct>(&one, 1));
    }

    /// <summary>One packed weight's product in <see cref="LinearPrepacked(int, int, float*, ReadOnlySpan{PrepackedProduct})"/>:
    /// y (m×N) = x·Wᵀ + Bias (N, or null).</summary>
    public readonly struct PrepackedProduct(int n, float* w, float* bias, float* y)
    {
        /// <summary>Output features (a multiple of 32).</summary>
        public readonly int N = n;
        /// <summary>The packed N × k weight.</summary>
        public readonly float* W = w;
        /// <summary>N biases, or null.</summary>
        public readonly float* Bias = bias;
        /// <summary>The m × N output, row-major.</summary>
        public readonly float* Y = y;
    }

    /// <summary>
    /// Several packed weights' products with the same x (a self-attention's q, k and v): x is packed once and the
    /// threads share out the panels of all of them, so the call costs what one product with the summed width would.
    /// Each output has the bits of <see cref="Linear"/> on its unpacked weight.
    /// </summary>
    public static void LinearPrepacked(int m, int k, float* x, ReadOnlySpan<PrepackedProduct> products)
    {
        long width = 0;
        foreach (var pr in products)
        {
            if (!PrepackedKernelRuns(pr.N, k)) throw new ArgumentException($"Gemm.LinearPrepacked cannot run n={pr.N}, k={k} on this machine");
            width += pr.N;
        }
        if (m < 0 || products.Length == 0) throw new ArgumentException($"Gemm.LinearPrepacked needs m ≥ 0 and a product, got m={m}, {products.Length} products");
        if (m == 0) return;
        int tiles = (m + PrepackedMR - 1) / PrepackedMR;
        int kBlocks = KBlockCount(k, Blocking.Default);
        float* xs = Scratch(ref t_prepackedX, ref t_prepackedXCap, (nuint)((long)tiles * PrepackedXStride * k));
        // whole tiles of x are read where they lie unless 14 rows k floats apart would crowd one L1 set (k = 1024, 2048,
        // 3072: fc2's 3072 inputs); a ragged last tile (rows past m) is always packed
        int inPlace = SharesL1Sets(k, PrepackedMR) ? 0 : m / PrepackedMR;
        int packs = kBlocks * (tiles - inPlace), units = (int)(width / PrepackedNR);
        int packNext = 0, packDone = 0, unitNext = 0;
        fixed (PrepackedProduct* pp = products)
        {
            var work = new PrepackedWork(m, k, x, pp, xs, tiles, inPlace, kBlocks, packs, units, &packNext, &packDone, &unitNext);
            int threads = m * width * k < ParallelThreshold ? 1 : Math.Min(Parallelism.MaxThreads, units);
            if (threads <= 1) work.Invoke(0, 1);
            else ParallelFor.RunRange(threads, work);
        }
    }

    [ThreadStatic] static float* t_prepackedX;
    [ThreadStatic] static nuint t_prepackedXCap;
    [ThreadStatic] static float* t_prepackedC;
    [ThreadStatic] static nuint t_prepackedCCap;

    /// <summary>One call's work: x's tiles packed first (K block, tile), claimed one at a time; a thread that finds none
    /// left waits until all are packed, then takes panels of W (32 output features of one product) until none is left,
    /// each K block after K block, every tile of x against it. (Units of one panel balance the two threads of a shared
    /// host best: four panels a unit were up to 10% slower when one thread ran behind.)</summary>
    readonly struct PrepackedWork(int m, int k, float* x, PrepackedProduct* products, float* xs, int tiles, int inPlace, int kBlocks,
        int packs, int units, int* packNext, int* packDone, int* unitNext) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int i; (i = Interlocked.Increment(ref *packNext) - 1) < packs;)
            {
                int kb = i / (tiles - inPlace), t = inPlace + i % (tiles - inPlace);
                var (p0, kc) = KBlock(k, kBlocks, kb);
                PackXTile(x, k, m, t * PrepackedMR, p0, kc, xs + (long)p0 * tiles * PrepackedXStride + (long)t * kc * PrepackedXStride);
                Interlocked.Increment(ref *packDone);
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref *packDone) < packs) spin.SpinOnce(sleep1Threshold: -1);

            // the unit's panel of y, all rows, accumulated here (64-byte aligned rows of 32) and stored once with the bias:
            // C tiles written in place into y, whose rows are n floats apart from wherever the pool put it, ran 3% slower
            float* c = Scratch(ref t_prepackedC, ref t_prepackedCCap, (nuint)tiles * PrepackedMR * PrepackedNR);
            for (int u; (u = Interlocked.Increment(ref *unitNext) - 1) < units;)
            {
                int which = 0, jp = u;
                while (jp >= products[which].N / PrepackedNR) jp -= products[which++].N / PrepackedNR;
                var pr = products[which];
                int n = pr.N;
                float* w = pr.W, bias = pr.Bias, y = pr.Y;
                for (int kb = 0; kb < kBlocks; kb++)
                {
                    var (p0, kc) = KBlock(k, kBlocks, kb);
                    float* b = w + (long)p0 * n + (long)jp * kc * PrepackedNR;
                    // the panel's next K block, fetched into L2 a line per k step by the passes of tiles 1 and 2, while
                    // this block's panel comes from L2 (the first pass, tile 0, brought it in)
                    float* next = b;
                    if (kb + 1 < kBlocks)
                    {
                        var (q0, qc) = KBlock(k, kBlocks, kb + 1);
                        next = w + (long)q0 * n + (long)jp * qc * PrepackedNR;
                    }
                    for (int t = 0; t < tiles; t++)
                    {
                        float* pf = t is 1 or 2 && next != b ? next + (long)(t - 1) * kc * 16 : b;
                        float* ct = c + (long)t * PrepackedMR * PrepackedNR;
                        if (t < inPlace) PrepackedKernel14x32(kc, x + (long)t * PrepackedMR * k + p0, k, 1, b, pf, ct, kb > 0);
                        else PrepackedKernel14x32(kc, xs + (long)p0 * tiles * PrepackedXStride + (long)t * kc * PrepackedXStride, 1, PrepackedXStride, b, pf, ct, kb > 0);
                    }
                }
                StoreColumns(c, y + jp * PrepackedNR, n, bias == null ? null : bias + jp * PrepackedNR);
            }
        }

        /// <summary>y[i, 0..32) = c[i] + bias[0..32) for every row i (row stride n).</summary>
        void StoreColumns(float* c, float* y, int n, float* bias)
        {
            Vector512<float> b0 = default, b1 = default;
            if (bias != null) { b0 = Vector512.Load(bias); b1 = Vector512.Load(bias + 16); }
            for (int i = 0; i < m; i++)
            {
                float* src = c + (long)i * PrepackedNR, dst = y + (long)i * n;
                var v0 = Vector512.Load(src); var v1 = Vector512.Load(src + 16);
                if (bias != null) { v0 += b0; v1 += b1; }
                v0.Store(dst);
                v1.Store(dst + 16);
            }
        }
    }

    /// <summary>x's rows [i0, i0 + 14) (the last of them repeated past row m − 1), columns [p0, p0 + kc), into one tile:
    /// dst[p·16 + r] = x[i0 + r, p0 + p], by 8 × 8 transposes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackXTile(float* x, int ldx, int m, int i0, int p0, int kc, float* dst)
    {
        float** rows = stackalloc float*[PrepackedXStride];
        int last = Math.Min(m, i0 + PrepackedMR) - 1;
        for (int r = 0; r < PrepackedXStride; r++) rows[r] = x + (long)Math.Min(i0 + r, last) * ldx + p0;
        int p = 0;
        for (; p + 8 <= kc; p += 8)
            for (int g = 0; g < PrepackedXStride; g += 8)
            {
                var r0 = Vector256.Load(rows[g] + p); var r1 = Vector256.Load(rows[g + 1] + p);
                var r2 = Vector256.Load(rows[g + 2] + p); var r3 = Vector256.Load(rows[g + 3] + p);
                var r4 = Vector256.Load(rows[g + 4] + p); var r5 = Vector256.Load(rows[g + 5] + p);
                var r6 = Vector256.Load(rows[g + 6] + p); var r7 = Vector256.Load(rows[g + 7] + p);
                Transpose8.InPlace(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                float* d = dst + (long)p * PrepackedXStride + g;
                r0.Store(d); r1.Store(d + PrepackedXStride); r2.Store(d + 2 * PrepackedXStride); r3.Store(d + 3 * PrepackedXStride);
                r4.Store(d + 4 * PrepackedXStride); r5.Store(d + 5 * PrepackedXStride); r6.Store(d + 6 * PrepackedXStride); r7.Store(d + 7 * PrepackedXStride);
            }
        for (; p < kc; p++)
            for (int r = 0; r < PrepackedXStride; r++) dst[(long)p * PrepackedXStride + r] = rows[r][p];
    }

    /// <summary>A 14 × 32 tile of y: 14 rows of x (broadcast; row r's element p at a[r·rs + p·ps]: a packed tile, or x
    /// read in place) times one panel of W (two vectors per k step), 28 Vector512 accumulators, stored into c (14 rows
    /// of 32) as acc, or c + acc when <paramref name="accumulate"/>; one line at <paramref name="pf"/> + 16·p is fetched
    /// into L2 per k step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PrepackedKernel14x32(nint kc, float* a, nint rs, nint ps, float* b, float* pf, float* c, bool accumulate)
    {
        float* a4 = a + 4 * rs, a8 = a + 8 * rs, a12 = a + 12 * rs;
        nint r2 = 2 * rs, r3 = 3 * rs;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default,
            c80 = default, c81 = default, c90 = default, c91 = default, c100 = default, c101 = default, c110 = default, c111 = default,
            c120 = default, c121 = default, c130 = default, c131 = default;
        for (nint p = 0; p < kc; p++)
        {
            PrefetchSliver(b + PrefetchAhead * PrepackedNR);
            Sse.Prefetch1(pf + p * 16);
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            Vector512<float> av;
            av = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[rs]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[r2]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[r3]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a4[0]); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a4[rs]); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a4[r2]); c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a4[r3]); c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            av = Vector512.Create(a8[0]); c80 = Vector512.FusedMultiplyAdd(av, b0, c80); c81 = Vector512.FusedMultiplyAdd(av, b1, c81);
            av = Vector512.Create(a8[rs]); c90 = Vector512.FusedMultiplyAdd(av, b0, c90); c91 = Vector512.FusedMultiplyAdd(av, b1, c91);
            av = Vector512.Create(a8[r2]); c100 = Vector512.FusedMultiplyAdd(av, b0, c100); c101 = Vector512.FusedMultiplyAdd(av, b1, c101);
            av = Vector512.Create(a8[r3]); c110 = Vector512.FusedMultiplyAdd(av, b0, c110); c111 = Vector512.FusedMultiplyAdd(av, b1, c111);
            av = Vector512.Create(a12[0]); c120 = Vector512.FusedMultiplyAdd(av, b0, c120); c121 = Vector512.FusedMultiplyAdd(av, b1, c121);
            av = Vector512.Create(a12[rs]); c130 = Vector512.FusedMultiplyAdd(av, b0, c130); c131 = Vector512.FusedMultiplyAdd(av, b1, c131);
            a += ps; a4 += ps; a8 += ps; a12 += ps;
            b += PrepackedNR;
        }
        StoreTileRow(c, c00, c01, accumulate); StoreTileRow(c + 32, c10, c11, accumulate);
        StoreTileRow(c + 64, c20, c21, accumulate); StoreTileRow(c + 96, c30, c31, accumulate);
        StoreTileRow(c + 128, c40, c41, accumulate); StoreTileRow(c + 160, c50, c51, accumulate);
        StoreTileRow(c + 192, c60, c61, accumulate); StoreTileRow(c + 224, c70, c71, accumulate);
        StoreTileRow(c + 256, c80, c81, accumulate); StoreTileRow(c + 288, c90, c91, accumulate);
        StoreTileRow(c + 320, c100, c101, accumulate); StoreTileRow(c + 352, c110, c111, accumulate);
        StoreTileRow(c + 384, c120, c121, accumulate); StoreTileRow(c + 416, c130, c131, accumulate);
    }

    /// <summary>c[0..32) = acc, or c + acc when accumulating.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreTileRow(float* c, Vector512<float> v0, Vector512<float> v1, bool accumulate)
    {
        if (accumulate) { v0 = Vector512.Load(c) + v0; v1 = Vector512.Load(c + 16) + v1; }
        v0.Store(c);
        v1.Store(c + 16);
    }
}
