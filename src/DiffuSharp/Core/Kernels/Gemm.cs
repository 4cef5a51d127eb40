// Float32 GEMM, C = beta·C + op(A)·op(B), row-major: a packed, register-blocked (Goto/BLIS-style) driver over the
// microkernels in Gemm.Microkernel.cs (12×32 or 8×32 Vector512 where AVX-512 is accelerated, else 6×16 / 4×24 Vector256,
// else a portable Vector128 kernel), an unpacked path for tiny products and m ≤ 4 (Gemm.Direct.cs), and threading
// over Parallelism.MaxThreads: whole products per thread for batches, else an N (or M) split of one product, where
// a thread that runs out of column chunks takes M blocks of the chunks still running.
// A summed product (SgemmSum) runs its K through several pieces lying apart in memory, piece after piece, each cut
// into K blocks exactly like a plain product of that depth.
// Determinism: K is cut into blocks that depend only on k and KC, and every element of C is the same FMA chain over
// each K block added to C block by block, whatever the thread split, tile position, FMA kernel or path. The result
// bits therefore never depend on the thread count, nor on how many rows share the product.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

/// <summary>Float32 matrix products C = beta·C + op(A)·op(B) on row-major spans: packed, register-blocked and threaded
/// over <see cref="Parallelism.MaxThreads"/>, with bit-identical results for any thread count.</summary>
public static unsafe partial class Gemm
{
    /// <summary>Cache blocking: KC (depth of a packed panel), MC (rows of packed A, L2), NC (columns of packed B, L2/L3).</summary>
    internal readonly record struct Blocking(int KC, int MC, int NC)
    {
        // AVX-512 kernels (B streamed): one A panel of KC·MR·4 B = 8-12 KiB stays in L1 (48 KiB) while the B slivers
        // (KC·NR·4 B = 32 KiB each) stream from the B panel in L2, prefetched ahead; MC·KC·4 B = 144 KiB A block.
        // Measured on 2 threads (medians of 40 interleaved calls): KC 256 over 128 +3-5% at 1024³ and 2048³, equal on
        // conv shapes (M = 32/64); 384 loses 9% at K = 288. The AVX2 kernels (B sliver in L1) were tuned at 256 too.
        // KC is shared by all kernels and the direct path on purpose: it fixes the K blocks, hence the result bits.
        public static readonly Blocking Default = new(256, 144, 2048);
    }

    internal enum KernelKind { Auto, Direct, K6x16, K4x24, K8x32, K12x32, Portable, K6x32 }

    /// <summary>Below this many multiply-adds (about 160³) a product runs on one thread: Parallel.For's fork/join
    /// (~10 µs) plus both threads packing the shared operand cost more than they save (measured: 2 threads lose at
    /// 128³ and 160³, win from about 192³).</summary>
    internal const long ParallelThreshold = 1L << 22;

    /// <summary>
    /// C (m×n, row stride ldc) = beta·C + op(A)·op(B), row-major; op(A) is m×k (A is k×m with row stride lda when
    /// transA), op(B) is k×n (B is n×k when transB). beta must be 0 or 1 (0: C is overwritten and may hold garbage/NaN).
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => Run(KernelKind.Auto, Blocking.Default, 1, transA, transB, m, n, k, a, lda, 0, b, ldb, 0, beta, c, ldc, 0);

    /// <summary>The same for <paramref name="batch"/> independent products at element strides strideA/strideB/strideC
    /// (strideA or strideB may be 0 to share an operand; C blocks must not overlap).</summary>
    public static void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA,
        float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC)
        => Run(KernelKind.Auto, Blocking.Default, batch, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC);

    /// <summary>The same with every row r of each C_i starting from rowBias[r] (C_i = bias + op(A_i)·op(B_i)) and, when
    /// residual is not null, R_i added to the result (R laid out as C): a product's C is filled right before that product
    /// runs and R_i added right after, while C_i is still in cache. The bits of filling every C first, calling
    /// <see cref="SgemmBatched"/> with beta 1, then adding R.</summary>
    public static void SgemmBatchedBias(int batch, bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA,
        float* b, int ldb, long strideB, float* rowBias, float* c, int ldc, long strideC, float* residual = null)
        => Run(KernelKind.Auto, Blocking.Default, batch, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, 1f, c, ldc, strideC,
            rowBias: rowBias, residual: residual);

    /// <summary>C (m×n) = beta·C + Σ_e op(A_e)·op(B_e) over <paramref name="count"/> products whose operands lie
    /// strideA / strideB elements apart: one product whose K runs through the pieces in order (a weight gradient summed
    /// over the images of a batch, with nothing copied side by side first). Thread-count independent like Sgemm.</summary>
    public static void SgemmSum(int count, bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA,
        float* b, int ldb, long strideB, float beta, float* c, int ldc)
        => Run(KernelKind.Auto, Blocking.Default, 1, transA, transB, m, n, k, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, count, strideA, strideB);

    /// <summary>Entry with an explicit kernel and blocking, so tests can run every kernel and every blocking edge.
    /// Each of the <paramref name="batch"/> products sums <paramref name="kCount"/> pieces kStrideA / kStrideB apart.</summary>
    internal static void Run(KernelKind kernel, Blocking blocking, int batch, bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC,
        int kCount = 1, long kStrideA = 0, long kStrideB = 0, float* rowBias = null, float* residual = null)
    {
        Validate(batch, transA, transB, m, n, k, lda, strideA, ldb, strideB, beta, ldc, strideC);
        if (kCount < 0 || kStrideA < 0 || kStrideB < 0)
            throw new ArgumentException($"Sgemm: the pieces of a summed product need a non-negative count and strides, got {kCount}, {kStrideA}, {kStrideB}");
        if (batch == 0 || m == 0 || n == 0) return;
        if (kCount == 0) k = 0;
        var g = new Operands(transA, transB, m, n, k, a, lda, b, ldb, beta != 0, c, ldc, Math.Max(kCount, 1), kStrideA, kStrideB);
        if (rowBias != null && k == 0)
        {
            for (int bi = 0; bi < batch; bi++)
            {
                FillRows(c + bi * strideC, m, n, ldc, rowBias);
                if (residual != null) AddRows(c + bi * strideC, residual + bi * strideC, m, n, ldc);
            }
            return;
        }
        if (k == 0)
        {
            if (!g.Accumulate)
                for (int bi = 0; bi < batch; bi++)
                    for (int i = 0; i < m; i++)
                        new Span<float>(c + bi * strideC + (nint)i * ldc, n).Clear();
            return;
        }
        if (kernel == KernelKind.Auto) kernel = PickKernel(m, n, (int)Math.Min(int.MaxValue, (long)k * g.KCount));
        var batched = new Batch(g, batch, strideA, strideB, strideC, blocking, rowBias, residual);
        switch (kernel)
        {
            case KernelKind.Direct: Dispatch<Unpacked>(batched); break;
            case KernelKind.K6x16: Dispatch<Packed<Kernel6x16>>(batched); break;
            case KernelKind.K4x24: Dispatch<Packed<Kernel4x24>>(batched); break;
            case KernelKind.K8x32: Dispatch<Packed<Kernel8x32>>(batched); break;
            case KernelKind.K12x32: Dispatch<Packed<Kernel12x32>>(batched); break;
            default: Dispatch<Packed<KernelPortable>>(batched); break;
        }
    }

    /// <summary>Direct for tiny products and m ≤ 4; else 12×32 or 8×32 with AVX-512; else 6×16 unless 4×24 pads the m×n area
    /// less (M = 32, 64, …); the portable kernel without AVX2+FMA.</summary>
    internal static KernelKind PickKernel(int m, int n, int k)
    {
        if (!Vector256.IsHardwareAccelerated || !Fma.IsSupported) return KernelKind.Portable;
        if (m <= DirectMaxRows || (long)m * n * k < DirectWork) return KernelKind.Direct;
        // 12×32 (24 accumulators) unless it pads M by more than about 3% over 8×32 (M = 32, 64: 8×32).
        if (Vector512.IsHardwareAccelerated) return RoundUp(m, 12) * 32 <= RoundUp(m, 8) * 33 ? KernelKind.K12x32 : KernelKind.K8x32;
        long area6 = RoundUp(m, 6) * RoundUp(n, 16), area4 = RoundUp(m, 4) * RoundUp(n, 24);
        return area4 < area6 ? KernelKind.K4x24 : KernelKind.K6x16;
    }

    static long RoundUp(long x, int r) => (x + r - 1) / r * r;

    static void Validate(int batch, bool transA, bool transB, int m, int n, int k, int lda, long strideA, int ldb, long strideB,
        float beta, int ldc, long strideC)
    {
        if (batch < 0 || m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"Sgemm sizes must be non-negative, got batch={batch}, m={m}, n={n}, k={k}");
        if (beta != 0f && beta != 1f)
            throw new ArgumentException($"Sgemm supports beta 0 or 1, got {beta}", nameof(beta));
        int aRow = transA ? m : k, bRow = transB ? k : n;
        if (lda < aRow)
            throw new ArgumentException($"lda={lda} is shorter than a row of A ({(transA ? "k×m" : "m×k")} = {(transA ? k : m)}×{(transA ? m : k)})", nameof(lda));
        if (ldb < bRow)
            throw new ArgumentException($"ldb={ldb} is shorter than a row of B ({(transB ? "n×k" : "k×n")} = {(transB ? n : k)}×{(transB ? k : n)})", nameof(ldb));
        if (ldc < n)
            throw new ArgumentException($"ldc={ldc} is shorter than a row of C (m×n = {m}×{n})", nameof(ldc));
        if (strideA < 0 || strideB < 0 || strideC < 0)
            throw new ArgumentException($"Sgemm strides must be non-negative, got {strideA}, {strideB}, {strideC}");
        if (batch > 1 && m > 0 && n > 0 && strideC < (long)(m - 1) * ldc + n)
            throw new ArgumentException($"strideC={strideC} makes the {batch} C blocks (m×n = {m}×{n}, ldc={ldc}) overlap", nameof(strideC));
    }

    /// <summary>One product, C (+)= Σ_e op(A + e·KStrideA)·op(B + e·KStrideB) over KCount pieces of depth K (one
    /// piece for a plain product); Rows/Columns give sub-products that share A or B.</summary>
    readonly struct Operands(bool transA, bool transB, int m, int n, int k, float* a, nint lda, float* b, nint ldb, bool accumulate, float* c, nint ldc,
        int kCount, long kStrideA, long kStrideB)
    {
        public readonly bool TransA = transA, TransB = transB, Accumulate = accumulate;
        public readonly int M = m, N = n, K = k, KCount = kCount;
        public readonly float* A = a, B = b, C = c;
        public readonly nint Lda = lda, Ldb = ldb, Ldc = ldc;
        public readonly long KStrideA = kStrideA, KStrideB = kStrideB;

        public Operands At(long offA, long offB, long offC) =>
            new(TransA, TransB, M, N, K, A + offA, Lda, B + offB, Ldb, Accumulate, C + offC, Ldc, KCount, KStrideA, KStrideB);

        public Operands Rows(int i0, int i1) =>
            new(TransA, TransB, i1 - i0, N, K, TransA ? A + i0 : A + i0 * Lda, Lda, B, Ldb, Accumulate, C + i0 * Ldc, Ldc, KCount, KStrideA, KStrideB);

        public Operands Columns(int j0, int j1) =>
            new(TransA, TransB, M, j1 - j0, K, A, Lda, TransB ? B + j0 * Ldb : B + j0, Ldb, Accumulate, C + j0, Ldc, KCount, KStrideA, KStrideB);

        /// <summary>A and B of piece e of a summed product.</summary>
        public float* PieceA(int e) => A + e * KStrideA;
        public float* PieceB(int e) => B + e * KStrideB;
    }

    readonly struct Batch(Operands g, int count, long strideA, long strideB, long strideC, Blocking blocking, float* rowBias, float* residual)
    {
        public readonly Operands G = g;
        public readonly int Count = count;
        public readonly long StrideA = strideA, StrideB = strideB, StrideC = strideC;
        public readonly Blocking Blocking = blocking;
        public Operands Item(int i) => G.At(i * StrideA, i * StrideB, i * StrideC);

        /// <summary>Product i's C filled with the row bias, when there is one (then G accumulates into it).</summary>
        public void Prepare(int i)
        {
            if (rowBias != null) FillRows(G.C + i * StrideC, G.M, G.N, G.Ldc, rowBias);
        }

        /// <summary>Product i's residual added to its C, when there is one.</summary>
        public void Finish(int i)
        {
            if (residual != null) AddRows(G.C + i * StrideC, residual + i * StrideC, G.M, G.N, G.Ldc);
        }
    }

    /// <summary>c[r, 0 .. n) += res[r, 0 .. n) for the m rows of c and res (row stride ldc).</summary>
    static void AddRows(float* c, float* res, int m, int n, nint ldc)
    {
        for (int r = 0; r < m; r++)
        {
            float* cr = c + r * ldc, rr = res + r * ldc;
            int j = 0;
            for (; j + 8 <= n; j += 8) (Vector256.Load(cr + j) + Vector256.Load(rr + j)).Store(cr + j);
            for (; j < n; j++) cr[j] += rr[j];
        }
    }

    /// <summary>c[r, 0 .. n) = bias[r] for the m rows of c (row stride ldc).</summary>
    static void FillRows(float* c, int m, int n, nint ldc, float* bias)
    {
        for (int r = 0; r < m; r++) new Span<float>(c + (long)r * ldc, n).Fill(bias[r]);
    }

    /// <summary>How one product runs on one thread, and the row/column granularity at which it may be split.</summary>
    interface IProductKernel
    {
        static abstract int RowGrain { get; }
        static abstract int ColGrain { get; }
        /// <summary>Runs the product; <paramref name="packedA"/> is all of op(A) packed by <see cref="SharedA"/>,
        /// or null to pack A as it goes; with a shared A, <paramref name="progress"/> (given exactly then) is where the
        /// product shows its M blocks to threads that help (<see cref="Help"/>).</summary>
        static abstract void Run(in Operands g, Blocking blocking, float* packedA, ChunkProgress* progress = null);
        /// <summary>Takes M blocks of the product that <paramref name="progress"/> shows until it is finished.</summary>
        static abstract void Help(ChunkProgress* progress, in Operands g, Blocking blocking, float* packedA);
        /// <summary>Whether column chunks may share one packed copy of A.</summary>
        static abstract bool SharesA { get; }
        static abstract SharedA Plan(in Operands g, Blocking blocking);
        static abstract void PackA(in Operands g, SharedA plan, int block);
    }

    readonly struct Packed<TK> : IProductKernel where TK : struct, IMicroKernel
    {
        public static int RowGrain => TK.MR;
        public static int ColGrain => TK.NR;
        public static void Run(in Operands g, Blocking blocking, float* packedA, ChunkProgress* progress = null) =>
            Serial<TK>(g, blocking, packedA, progress);
        public static void Help(ChunkProgress* progress, in Operands g, Blocking blocking, float* packedA) =>
            HelpSerial<TK>(progress, g, blocking, packedA);
        public static bool SharesA => true;
        public static SharedA Plan(in Operands g, Blocking blocking) => SharedA.Of(g, blocking, TK.MR);
        public static void PackA(in Operands g, SharedA plan, int block) => plan.Pack<TK>(g, block);
    }

    readonly struct Unpacked : IProductKernel
    {
        public static int RowGrain => 1;
        public static int ColGrain => 32;
        public static void Run(in Operands g, Blocking blocking, float* packedA, ChunkProgress* progress = null) => Direct(g, blocking);
        public static void Help(ChunkProgress* progress, in Operands g, Blocking blocking, float* packedA) { }
        public static bool SharesA => false;
        public static SharedA Plan(in Operands g, Blocking blocking) => default;
        public static void PackA(in Operands g, SharedA plan, int block) { }
    }

    /// <summary>All of op(A) of a plain product packed once, for column chunks that would each pack it again: the
    /// rows [i·MC0, …) of K block kb lie at i·(MC0·K + PackSlack) + ⌈rows/MR⌉·MR·p0 — the A block that
    /// <see cref="Serial{TK}"/> would pack at that point, so it computes the same bits either way. One row block is
    /// one unit of packing work, its K blocks in order: a packing routine's overlapping stores may spill a few floats
    /// past a block, into the next K block (packed after it, which overwrites them) or the slack after the row block.</summary>
    readonly struct SharedA(int mBlocks, int kBlocks, int mc0, int m, int k, float* buffer)
    {
        public readonly int MBlocks = mBlocks, KBlocks = kBlocks, Mc0 = mc0;
        public readonly float* Buffer = buffer;
        long RowBlock => (long)Mc0 * k + PackSlack;

        public static SharedA Of(in Operands g, Blocking blocking, int mr)
        {
            var (kBlocks, _, mBlocks, mc0) = Cuts(g.M, g.K, mr, blocking);
            return new SharedA(mBlocks, kBlocks, mc0, g.M, g.K, null);
        }

        public SharedA With(float* buffer) => new(MBlocks, KBlocks, Mc0, m, k, buffer);

        public long Floats => MBlocks * RowBlock;

        public float* Block(int ic, int mc, int p0, int mr) => Buffer + ic / Mc0 * RowBlock + (nint)RoundUp(mc, mr) * p0;

        /// <summary>Packs row block <paramref name="i"/>, K block after K block.</summary>
        public void Pack<TK>(in Operands g, int i) where TK : struct, IMicroKernel
        {
            int ic = i * Mc0, mc = Math.Min(Mc0, m - ic);
            for (int kb = 0; kb < KBlocks; kb++)
            {
                var (p0, kc) = KBlock(k, KBlocks, kb);
                PackA<TK>(g.TransA, g.A, g.Lda, ic, mc, p0, kc, Block(ic, mc, p0, TK.MR));
            }
        }
    }

    /// <summary>The K blocks (balanced, at most KC deep) and the M blocks (balanced, whole panels, at most MC rows).</summary>
    static (int KBlocks, int KcMax, int MBlocks, int Mc0) Cuts(int m, int k, int mr, Blocking blocking)
    {
        int kBlocks = KBlockCount(k, blocking);
        int mcCap = Math.Max(mr, blocking.MC / mr * mr);
        int mBlocks = (m + mcCap - 1) / mcCap;
        return (kBlocks, (k + kBlocks - 1) / kBlocks, mBlocks, (int)RoundUp((m + mBlocks - 1) / mBlocks, mr));
    }

    /// <summary>How many K blocks a depth of k is cut into: the fewest at most KC deep.</summary>
    static int KBlockCount(int k, Blocking blocking) => (k + blocking.KC - 1) / blocking.KC;

    /// <summary>K block kb of kBlocks: its first k and its depth. Every path cuts K here, which fixes the result bits.</summary>
    static (int P0, int Kc) KBlock(int k, int kBlocks, int kb)
    {
        int p0 = (int)((long)k * kb / kBlocks);
        return (p0, (int)((long)k * (kb + 1) / kBlocks) - p0);
    }

    static float* s_sharedA;
    static nuint s_sharedCap;
    static readonly Lock s_sharedLock = new();

    /// <summary>Least columns (rows) per chunk of a split product unless that leaves a thread idle: each chunk packs
    /// its own copy of the other operand, about 10/width of the multiply (1% at 1024), and each A panel held in L1 is
    /// used against the chunk's width of B slivers before the next is loaded. Measured on the shared 2-core box: 8
    /// chunks beat a static halving by 8-25% on conv shapes; 2 chunks of 512 are best at 1024³; at 2048³ 2 chunks of
    /// 1024 beat 4 of 512 by 2-7% (medians of 30 interleaved products, three runs) and 8 of 256 lose 10%.</summary>
    const int MinChunk = 1024;

    static void Dispatch<TP>(in Batch batch) where TP : struct, IProductKernel
    {
        int threads = Parallelism.MaxThreads;
        long work = (long)batch.G.M * batch.G.N * batch.G.K * batch.G.KCount;
        int first = 0;
        int next = 0;
        if (threads > 1 && batch.Count >= threads && work * batch.Count >= ParallelThreshold)
        {
            // Whole products handed out one at a time; a remainder smaller than the thread count is split inside.
            first = batch.Count / threads * threads;
            ParallelFor.RunRange(threads, new BatchQueue<TP>(batch, first, &next));
        }
        for (int i = first; i < batch.Count; i++)
        {
            batch.Prepare(i);
            var g = batch.Item(i);
            if (threads == 1 || work < ParallelThreshold)
            {
                TP.Run(g, batch.Blocking, null);
                batch.Finish(i);
                continue;
            }
            // Split N (or M when M > N) into grain-aligned chunks, about 4 per thread, handed out through a shared
            // counter: a thread that starts late or shares its core with another process simply takes fewer.
            bool byColumns = g.N >= g.M;
            int length = byColumns ? g.N : g.M, grain = byColumns ? TP.ColGrain : TP.RowGrain;
            int width = (int)RoundUp(Math.Max(length / (4 * threads), Math.Min(MinChunk, length / threads)), grain);
            int chunks = (length + width - 1) / width;
            next = 0;
            if (chunks < 2)
                TP.Run(g, batch.Blocking, null);
            else if (byColumns && TP.SharesA && g.KCount == 1 && s_sharedLock.TryEnter())
            {
                try
                {
                    SharedColumnChunks<TP>(g, batch.Blocking, threads, width, chunks);
                }
                finally
                {
                    s_sharedLock.Exit();
                }
            }
            else
                ParallelFor.RunRange(Math.Min(threads, chunks), new ChunkQueue<TP>(g, batch.Blocking, byColumns, width, chunks, &next, null, null));
            batch.Finish(i);
        }
    }

    /// <summary>Column chunks of one product that all need all of A: A is packed once, both threads at once, and
    /// shared. A thread that runs out of chunks helps the others with their M blocks, so the product ends when the
    /// work does, not when the slower thread (a shared core, a late start) gets through its half.</summary>
    static void SharedColumnChunks<TP>(in Operands g, Blocking blocking, int threads, int width, int chunks) where TP : struct, IProductKernel
    {
        var plan = TP.Plan(g, blocking);
        plan = plan.With(Scratch(ref s_sharedA, ref s_sharedCap, (nuint)plan.Floats));
        int packed = 0;
        ParallelFor.RunRange(plan.MBlocks, new PackQueue<TP>(g, plan, &packed));
        var progress = stackalloc ChunkProgress[chunks];
        new Span<ChunkProgress>(progress, chunks).Clear();
        progress->PauseMs = SlowFirstChunkMs;
        int next = 0;
        ParallelFor.RunRange(Math.Min(threads, chunks), new ChunkQueue<TP>(g, blocking, true, width, chunks, &next, plan.Buffer, progress));
    }

    /// <summary>Products [0, count) of a batch, one at a time, to whichever thread asks next.</summary>
    readonly struct BatchQueue<TP>(Batch batch, int count, int* next) : IRangeWorkItem where TP : struct, IProductKernel
    {
        public void Invoke(int begin, int end)
        {
            for (int i; (i = Interlocked.Increment(ref *next) - 1) < count;)
            {
                batch.Prepare(i);
                TP.Run(batch.Item(i), batch.Blocking, null);
                batch.Finish(i);
            }
        }
    }

    /// <summary>Column (or row) chunks [c·width, (c+1)·width) of one product, one at a time, to whichever thread asks
    /// next; with <paramref name="progress"/> (column chunks over a shared A), a thread that finds none left helps
    /// the chunks still running.</summary>
    readonly struct ChunkQueue<TP>(Operands g, Blocking blocking, bool byColumns, int width, int count, int* next, float* packedA,
        ChunkProgress* progress) : IRangeWorkItem
        where TP : struct, IProductKernel
    {
        public void Invoke(int begin, int end)
        {
            for (int c; (c = Interlocked.Increment(ref *next) - 1) < count;)
                TP.Run(Chunk(c), blocking, packedA, progress == null ? null : progress + c);
            if (progress == null || HelpDisabled) return;
            for (int c = 0; c < count; c++)
                TP.Help(progress + c, Chunk(c), blocking, packedA);
        }

        Operands Chunk(int c)
        {
            int lo = c * width, hi = Math.Min(lo + width, byColumns ? g.N : g.M);
            return byColumns ? g.Columns(lo, hi) : g.Rows(lo, hi);
        }
    }

    /// <summary>Tests and benchmarks: threads that run out of chunks do not help the others.</summary>
    internal static bool HelpDisabled => KernelSwitches.Current.GemmHelpDisabled;

    /// <summary>Tests: the owner of the first column chunk sleeps this long before each M block it takes (a thread
    /// on a shared core), so that the others help it.</summary>
    internal static int SlowFirstChunkMs => KernelSwitches.Current.GemmSlowFirstChunkMs;

    /// <summary>M blocks computed by helping threads since the start of the process (tests read it).</summary>
    internal static long HelpedBlocks;

    /// <summary>Where the thread that owns a column chunk (over a shared packed A) stands, for threads with nothing
    /// left to do: <see cref="Claim"/> holds the step (NC block, K block; from 1) in its high half and the next
    /// unclaimed M block of it in the low half, <see cref="Finished"/> once the chunk is done. The step's packed B
    /// panel is the owner's; the owner moves to the next step only when all <see cref="Done"/>, so whoever computes
    /// an M block, each tile of C sees its K blocks in order: the same bits.</summary>
    internal struct ChunkProgress
    {
        public const long Finished = long.MaxValue;
        public long Claim;
        public int Done;
        public int Jc, Nc, P0, Kc;
        public bool Accumulate;
        public float* PackedB;
        public int PauseMs;                     // tests: see SlowFirstChunkMs
    }

    /// <summary>Tests: pack a shared A's row blocks last to first (no row block may rely on the next one being packed after it).</summary>
    internal static bool PackBackwards => KernelSwitches.Current.GemmPackBackwards;

    /// <summary>The row blocks of a shared packed A, one at a time, to whichever thread asks next (a thread slowed by
    /// a shared core packs fewer).</summary>
    readonly struct PackQueue<TP>(Operands g, SharedA plan, int* next) : IRangeWorkItem where TP : struct, IProductKernel
    {
        public void Invoke(int begin, int end)
        {
            for (int i; (i = Interlocked.Increment(ref *next) - 1) < plan.MBlocks;)
                TP.PackA(g, plan, PackBackwards ? plan.MBlocks - 1 - i : i);
        }
    }

    /// <summary>One product on the calling thread: loops NC columns → KC depth → MC rows → NR slivers → MR panels. With a
    /// shared packed A (which always comes with <paramref name="progress"/>), each (NC block, K block) step's M blocks
    /// are claimed through it, so that threads with nothing left to do can take some (<see cref="HelpSerial{TK}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Serial<TK>(in Operands g, Blocking blocking, float* packedA, ChunkProgress* progress = null) where TK : struct, IMicroKernel
    {
        Debug.Assert((packedA == null) == (progress == null), "a shared packed A comes with the progress helpers read");
        int mr = TK.MR, nr = TK.NR, m = g.M, n = g.N, k = g.K;
        // Balanced blocks: K=288 becomes 2×144, not 256+32 (a thin last K block costs a whole extra pass over C).
        // The K cut depends on k and KC only, never on the thread split, which keeps results deterministic.
        var (kBlocks, kcMax, mBlocks, mc0) = Cuts(m, k, mr, blocking);
        int ncCap = Math.Max(nr, blocking.NC / nr * nr);
        int nBlocks = (n + ncCap - 1) / ncCap;
        int nc0 = (int)RoundUp((n + nBlocks - 1) / nBlocks, nr);
        // When all of A is one MC block it is packed once, for every K block, and reused by every NC block.
        bool packAOnce = mBlocks == 1 && nBlocks > 1 && g.KCount == 1;
        var shared = new SharedA(mBlocks, kBlocks, mc0, m, k, packedA);
        float* pa = packedA != null ? null : Scratch(ref t_packA, ref t_capA, (nuint)((packAOnce ? (long)mc0 * k : (long)mc0 * kcMax) + PackSlack));
        float* pb = Scratch(ref t_packB, ref t_capB, (nuint)((long)nc0 * kcMax));
        float* tile = stackalloc float[TK.MR * TK.NR];

        long step = 0;
        for (int jc = 0; jc < n; jc += nc0)
        {
            int nc = Math.Min(nc0, n - jc);
            for (int e = 0; e < g.KCount; e++)
            {
                float* pieceA = g.PieceA(e), pieceB = g.PieceB(e);
                for (int kb = 0; kb < kBlocks; kb++)
                {
                    var (p0, kc) = KBlock(k, kBlocks, kb);
                    PackB<TK>(g.TransB, pieceB, g.Ldb, p0, kc, jc, nc, pb);
                    bool accumulate = g.Accumulate || e > 0 || kb > 0;     // pieces after the first add to C
                    if (packedA != null)
                    {
                        // show the step to helpers, take its M blocks with them, then wait for theirs to be done
                        progress->PackedB = pb;
                        progress->Jc = jc;
                        progress->Nc = nc;
                        progress->Accumulate = accumulate;
                        progress->P0 = p0;
                        progress->Kc = kc;
                        progress->Done = 0;
                        long first = ++step << 32;
                        Volatile.Write(ref progress->Claim, first);
                        for (int i; (i = (int)(Interlocked.Increment(ref progress->Claim) - 1 - first)) < mBlocks;)
                        {
                            if (progress->PauseMs > 0) Thread.Sleep(progress->PauseMs);
                            Block<TK>(g, shared, i, p0, kc, jc, nc, pb, accumulate, tile);
                            Interlocked.Increment(ref progress->Done);
                        }
                        var spin = new SpinWait();
                        while (Volatile.Read(ref progress->Done) < mBlocks) spin.SpinOnce(sleep1Threshold: -1);
                        continue;
                    }
                    for (int ic = 0; ic < m; ic += mc0)
                    {
                        int mc = Math.Min(mc0, m - ic);
                        float* aBlock = packAOnce ? pa + (nint)mc0 * p0 : pa;
                        if (!packAOnce || jc == 0) PackA<TK>(g.TransA, pieceA, g.Lda, ic, mc, p0, kc, aBlock);
                        Macro<TK>(mc, nc, kc, aBlock, pb, g.C + ic * g.Ldc + jc, g.Ldc, accumulate, tile);
                    }
                }
            }
        }
        if (packedA != null) Volatile.Write(ref progress->Claim, ChunkProgress.Finished);
    }

    /// <summary>M block <paramref name="i"/> of one step of a product over a shared packed A.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block<TK>(in Operands g, SharedA shared, int i, int p0, int kc, int jc, int nc, float* pb, bool accumulate, float* tile)
        where TK : struct, IMicroKernel
    {
        int ic = i * shared.Mc0, mc = Math.Min(shared.Mc0, g.M - ic);
        Macro<TK>(mc, nc, kc, shared.Block(ic, mc, p0, TK.MR), pb, g.C + ic * g.Ldc + jc, g.Ldc, accumulate, tile);
    }

    /// <summary>Takes M blocks of the steps that the owner of <paramref name="progress"/> shows, until it is finished.
    /// A block is claimed by moving Claim from (step, i) to (step, i + 1) only if it still reads (step, i): the step's
    /// fields read before that were the step's own (the owner rewrites them only after every block is done).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void HelpSerial<TK>(ChunkProgress* progress, in Operands g, Blocking blocking, float* packedA) where TK : struct, IMicroKernel
    {
        var (kBlocks, _, mBlocks, mc0) = Cuts(g.M, g.K, TK.MR, blocking);
        var shared = new SharedA(mBlocks, kBlocks, mc0, g.M, g.K, packedA);
        float* tile = stackalloc float[TK.MR * TK.NR];
        var spin = new SpinWait();
        while (true)
        {
            long claim = Volatile.Read(ref progress->Claim);
            if (claim == ChunkProgress.Finished) return;
            int i = (int)(claim & uint.MaxValue);
            if (claim >> 32 == 0 || i >= mBlocks)
            {
                spin.SpinOnce(sleep1Threshold: -1);        // not started, or between steps
                continue;
            }
            float* pb = progress->PackedB;
            int jc = progress->Jc, nc = progress->Nc, p0 = progress->P0, kc = progress->Kc;
            bool accumulate = progress->Accumulate;
            if (Interlocked.CompareExchange(ref progress->Claim, claim + 1, claim) != claim) continue;
            Block<TK>(g, shared, i, p0, kc, jc, nc, pb, accumulate, tile);
            Interlocked.Increment(ref HelpedBlocks);
            Interlocked.Increment(ref progress->Done);
            spin = new SpinWait();
        }
    }

    /// <summary>C block (mc×nc) (+)= packed A block · packed B panel; ragged edge tiles go through <paramref name="tile"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Macro<TK>(int mc, int nc, int kc, float* pa, float* pb, float* c, nint ldc, bool accumulate, float* tile)
        where TK : struct, IMicroKernel
    {
        // Both orders visit the same tiles with the same operands, so they give the same bits.
        if (TK.StreamsB)
            for (int ir = 0; ir < mc; ir += TK.MR)
                for (int jr = 0; jr < nc; jr += TK.NR)
                    Tile<TK>(ir, jr, mc, nc, kc, pa, pb, c, ldc, accumulate, tile);
        else
            for (int jr = 0; jr < nc; jr += TK.NR)
                for (int ir = 0; ir < mc; ir += TK.MR)
                    Tile<TK>(ir, jr, mc, nc, kc, pa, pb, c, ldc, accumulate, tile);
    }

    /// <summary>The MR×NR tile of C at (ir, jr) of the block; a ragged edge tile goes through <paramref name="tile"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile<TK>(int ir, int jr, int mc, int nc, int kc, float* pa, float* pb, float* c, nint ldc, bool accumulate, float* tile)
        where TK : struct, IMicroKernel
    {
        int rows = Math.Min(TK.MR, mc - ir), cols = Math.Min(TK.NR, nc - jr);
        float* a = pa + (nint)ir * kc, b = pb + (nint)jr * kc, cTile = c + ir * ldc + jr;
        if (rows == TK.MR && cols == TK.NR)
        {
            TK.Run(kc, a, b, TK.NR, cTile, ldc, accumulate);
            return;
        }
        TK.Run(kc, a, b, TK.NR, tile, TK.NR, false);
        for (int r = 0; r < rows; r++)
        {
            float* src = tile + r * TK.NR, dst = cTile + r * ldc;
            if (accumulate)
                for (int q = 0; q < cols; q++) dst[q] += src[q];
            else
                for (int q = 0; q < cols; q++) dst[q] = src[q];
        }
    }

    /// <summary>Plain triple loop in double, rounded once per element: the test oracle. Never used in production.</summary>
    internal static void Reference(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)                     // C: m×n
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)             // op(A)[i, p] · op(B)[p, j]
                {
                    double aip = transA ? a[(nint)p * lda + i] : a[(nint)i * lda + p];
                    double bpj = transB ? b[(nint)j * ldb + p] : b[(nint)p * ldb + j];
                    sum += aip * bpj;
                }
                float* cij = c + (nint)i * ldc + j;
                *cij = beta == 0 ? (float)sum : (float)(beta * (double)*cij + sum);
            }
    }
}
