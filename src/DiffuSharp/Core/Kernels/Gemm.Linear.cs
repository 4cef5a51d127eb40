// A Linear layer's product y = x·Wᵀ + b for few rows of x (a text encoder's 2 × 77 tokens, a cross-attention's
// context), computed as yᵀ = W·xᵀ: W (n×k, as a Linear layer stores it) is the broadcast operand, read in place a
// few rows at a time, and xᵀ the streamed operand, packed once per call. Sgemm(transB) would instead transpose all
// of W into B panels on every call: 9.4 MB read and written for a 768×3072 weight, about a tenth of the whole product
// at 154 rows, while x is 40 times smaller. The row blocks of W go to whichever thread asks next, each into its own
// block of yᵀ in scratch, which is then transposed into y with the bias added in the same pass.
// Bits: every element is the FMA chain of Sgemm's, K block by K block with the same K blocks (a·b = b·a exactly), and
// the bias is added once at the end, so the result is that of Sgemm(false, true, …) followed by y[r, :] += b.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

public static unsafe partial class Gemm
{
    /// <summary>Rows of x up to which <see cref="Linear"/> takes the weight-rows path; above it W's packing is a small
    /// share of the product and Sgemm's taller tiles win.</summary>
    internal const int LinearMaxRows = 512;

    /// <summary>Rows of W per unit of work handed to a thread (a multiple of every kernel's MR).</summary>
    const int LinearUnitRows = 48;

    /// <summary>
    /// y (m×n, row-major) = x (m×k, row-major) · Wᵀ (W: n×k, row-major) + bias (n, or null): a Linear layer's forward
    /// product. Bit-identical to <see cref="Sgemm"/>(false, true, m, n, k, x, k, w, k, 0, y, n) followed by adding the
    /// bias to every row, on any thread count.
    /// </summary>
    public static void Linear(int m, int n, int k, float* x, float* w, float* bias, float* y)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"Gemm.Linear sizes must be non-negative, got m={m}, n={n}, k={k}");
        if (m == 0 || n == 0) return;
        switch (PickLinear(m, n, k))
        {
            case KernelKind.K12x32: LinearRows<RowsKernel12x32>(m, n, k, x, w, bias, y); break;
            case KernelKind.K6x16: LinearRows<RowsKernel6x16>(m, n, k, x, w, bias, y); break;
            case KernelKind.K6x32: LinearRows<RowsKernel6x32>(m, n, k, x, w, bias, y); break;
            default: LinearPacked(m, n, k, x, w, bias, y); break;
        }
    }

    /// <summary>The weight-rows kernel for these sizes (K12x32 with AVX-512, or K6x32 where 12 rows of W would share an
    /// L1 set; K6x16 with AVX2 + FMA), or Auto for Sgemm's path: no FMA, tiny products, m ≤ 4 (the direct path reads W
    /// in place already) or many rows.</summary>
    internal static KernelKind PickLinear(int m, int n, int k)
    {
        var forced = KernelSwitches.Current.LinearKernel;
        if (forced != KernelKind.Auto) return forced;
        if (!Vector256.IsHardwareAccelerated || !Fma.IsSupported || !Avx.IsSupported) return KernelKind.Auto;
        if (k == 0 || m <= DirectMaxRows || m > LinearMaxRows || (long)m * n * k < DirectWork) return KernelKind.Auto;
        if (!Vector512.IsHardwareAccelerated) return KernelKind.K6x16;
        return SharesL1Sets(k, 12) ? KernelKind.K6x32 : KernelKind.K12x32;
    }

    /// <summary>Sgemm, then the bias (rows split over the threads: 8192 × 2560 in SD 1.5's UNet): the path for many
    /// rows, and the reference the weight-rows path must match bit for bit.</summary>
    internal static void LinearPacked(int m, int n, int k, float* x, float* w, float* bias, float* y)
    {
        Sgemm(false, true, m, n, k, x, k, w, k, 0f, y, n);
        if (bias != null) ParallelFor.RunRange(m, new AddBiasWork(y, bias, n), Math.Max(1, (1 << 15) / n));
    }

    /// <summary>y[r, :] += bias for rows [begin, end).</summary>
    readonly struct AddBiasWork(float* y, float* bias, int n) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int r = begin; r < end; r++)
            {
                float* row = y + (long)r * n;
                int j = 0;
                for (; j + 8 <= n; j += 8) (Vector256.Load(row + j) + Vector256.Load(bias + j)).Store(row + j);
                for (; j < n; j++) row[j] += bias[j];
            }
        }
    }

    /// <summary>Whether W's rows, k floats apart, put more than 6 of <paramref name="rows"/> consecutive rows into one
    /// set of a 64-set L1 (row strides of 4 KiB multiples: k = 1024, 2048, 3072): a 12-row tile's lines then evict
    /// each other from an 8-way L1 at every k step. Measured at 154 × 3072 → 768 (one thread, CPU time): the 12×32
    /// kernel 1-6% slower than Sgemm, the same panels copied to a padded stride (the next one prefetched) 1% faster,
    /// the 6×32 kernel in place 6-8% faster; at k = 768, 3056 or 3088 the 12×32 kernel is 7-9% faster than Sgemm
    /// and the 6×32 kernel no better.</summary>
    internal static bool SharesL1Sets(int k, int rows)
    {
        Span<int> count = stackalloc int[64];
        int most = 0;
        for (int r = 0; r < rows; r++) most = Math.Max(most, ++count[(int)(((long)r * k * sizeof(float) >> 6) & 63)]);
        return most > 6;
    }

    [ThreadStatic] static float* t_linearX;
    [ThreadStatic] static nuint t_linearXCap;
    [ThreadStatic] static float* t_linearC;
    [ThreadStatic] static nuint t_linearCCap;

    static void LinearRows<TK>(int m, int n, int k, float* x, float* w, float* bias, float* y) where TK : struct, IWeightRowsKernel
    {
        int mPad = (int)RoundUp(m, TK.NR);
        var (kBlocks, _, _, _) = Cuts(m, k, TK.MR, Blocking.Default);
        // xᵀ, K block after K block: block kb (p0, kc) holds mPad/NR slivers of kc × NR from p0·mPad on
        float* xt = Scratch(ref t_linearX, ref t_linearXCap, (nuint)((long)mPad * k + PackSlack));
        int packs = kBlocks * (mPad / TK.NR), units = (n + LinearUnitRows - 1) / LinearUnitRows;
        int packNext = 0, packDone = 0, unitNext = 0;
        var work = new LinearWork<TK>(m, n, k, x, w, bias, y, xt, mPad, kBlocks, packs, units, &packNext, &packDone, &unitNext);
        int threads = (long)m * n * k < ParallelThreshold ? 1 : Math.Min(Parallelism.MaxThreads, units);
        if (threads <= 1) work.Invoke(0, 1);
        else ParallelFor.RunRange(threads, work);
    }

    /// <summary>One call's work: the xᵀ slivers (K block, sliver) first, claimed one at a time; a thread that finds
    /// none left waits until all are packed (each claimed one is being packed by a running thread), then takes units of
    /// <see cref="LinearUnitRows"/> rows of W until none is left.</summary>
    readonly struct LinearWork<TK>(int m, int n, int k, float* x, float* w, float* bias, float* y, float* xt, int mPad, int kBlocks,
        int packs, int units, int* packNext, int* packDone, int* unitNext) : IRangeWorkItem where TK : struct, IWeightRowsKernel
    {
        public void Invoke(int begin, int end)
        {
            int slivers = mPad / TK.NR;
            for (int i; (i = Interlocked.Increment(ref *packNext) - 1) < packs;)
            {
                int kb = i / slivers, s = i % slivers;
                var (p0, kc) = KBlock(k, kBlocks, kb);
                int i0 = s * TK.NR;
                TK.PackX(x, k, i0, Math.Min(TK.NR, m - i0), p0, kc, xt + (long)p0 * mPad + (long)i0 * kc);
                Interlocked.Increment(ref *packDone);
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref *packDone) < packs) spin.SpinOnce(sleep1Threshold: -1);

            int rowsCap = LinearUnitRows;
            float* ct = Scratch(ref t_linearC, ref t_linearCCap, (nuint)((long)rowsCap * mPad + (long)TK.MR * KcMax(k, kBlocks)));
            float* pad = ct + (long)rowsCap * mPad;                  // a ragged last panel of W, padded to MR rows
            for (int u; (u = Interlocked.Increment(ref *unitNext) - 1) < units;)
            {
                int j0 = u * LinearUnitRows, j1 = Math.Min(n, j0 + LinearUnitRows);
                Unit(j0, j1, ct, pad);
                Store(ct, j0, j1);
            }
        }

        static int KcMax(int k, int kBlocks) => (k + kBlocks - 1) / kBlocks;

        /// <summary>ct (rows j0..j1 of yᵀ, row stride mPad) = W[j0..j1) · xᵀ, K block after K block.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Unit(int j0, int j1, float* ct, float* pad)
        {
            int slivers = mPad / TK.NR;
            for (int kb = 0; kb < kBlocks; kb++)
            {
                var (p0, kc) = KBlock(k, kBlocks, kb);
                float* xb = xt + (long)p0 * mPad;
                for (int r0 = j0; r0 < j1; r0 += TK.MR)
                {
                    int rows = Math.Min(TK.MR, j1 - r0);
                    float* a = w + (long)r0 * k + p0;
                    nint lda = k;
                    if (rows < TK.MR)
                    {
                        // a ragged last panel, copied: rows past the end repeat the last one (valid memory; their tile
                        // rows are never stored)
                        for (int r = 0; r < TK.MR; r++)
                            new ReadOnlySpan<float>(a + (long)Math.Min(r, rows - 1) * k, kc).CopyTo(new Span<float>(pad + (long)r * kc, kc));
                        a = pad;
                        lda = kc;
                    }
                    float* c = ct + (long)(r0 - j0) * mPad;
                    for (int s = 0; s < slivers; s++)
                        TK.Run(kc, a, lda, xb + (long)s * TK.NR * kc, c + s * TK.NR, mPad, kb > 0);
                }
            }
        }

        /// <summary>y[i, j0..j1) = ct[j - j0, i] + bias[j] for every row i: 8×8 transposes, the ragged edges one by one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Store(float* ct, int j0, int j1)
        {
            int cols = j1 - j0, i = 0;
            for (; i + 8 <= m; i += 8)
            {
                int j = 0;
                for (; j + 8 <= cols; j += 8)
                {
                    Transpose8.LoadTransposed(ct + (long)j * mPad + i, mPad, out var r0, out var r1, out var r2, out var r3,
                        out var r4, out var r5, out var r6, out var r7);
                    float* d = y + (long)i * n + j0 + j;
                    if (bias != null)
                    {
                        var bv = Vector256.Load(bias + j0 + j);
                        r0 += bv; r1 += bv; r2 += bv; r3 += bv; r4 += bv; r5 += bv; r6 += bv; r7 += bv;
                    }
                    r0.Store(d); r1.Store(d + n); r2.Store(d + 2 * n); r3.Store(d + 3 * n);
                    r4.Store(d + 4 * n); r5.Store(d + 5 * n); r6.Store(d + 6 * n); r7.Store(d + 7 * n);
                }
                for (; j < cols; j++)
                    for (int q = 0; q < 8; q++) StoreOne(ct, i + q, j, j0);
            }
            for (; i < m; i++)
                for (int j = 0; j < cols; j++) StoreOne(ct, i, j, j0);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void StoreOne(float* ct, int i, int j, int j0)
        {
            float v = ct[(long)j * mPad + i];
            y[(long)i * n + j0 + j] = bias != null ? v + bias[j0 + j] : v;
        }
    }
}
